#pragma once

#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>

#include "traceslo/alerting/notification.h"
#include "traceslo/common/mutex.h"

namespace traceslo::alerting::testing_util {

// A directory of its own under the system temp dir, removed at the end of the test.
class ScratchDir {
 public:
  ScratchDir() {
    static int counter = 0;
    path_ =
        std::filesystem::temp_directory_path() /
        ("traceslo_alerting_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }
  std::string File(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// What a Logger wrote into a temporary file.
class CapturedLog {
 public:
  CapturedLog() : file_(std::tmpfile()) {}
  ~CapturedLog() { std::fclose(file_); }
  std::FILE* file() const { return file_; }
  std::string Text() const {
    std::fflush(file_);
    std::rewind(file_);
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) text.append(buf, n);
    std::fseek(file_, 0, SEEK_END);
    return text;
  }

 private:
  std::FILE* file_;
};

// Polls `condition` until it holds or about `timeout` of real time passed; tests wait for the
// dispatcher's threads this way instead of sleeping.
template <typename Condition>
bool PollUntil(Condition condition, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  Mutex mu;
  CondVar cv;
  constexpr auto kStep = std::chrono::milliseconds(2);
  for (auto waited = std::chrono::milliseconds(0); waited < timeout; waited += kStep) {
    if (condition()) return true;
    MutexLock lock(mu);
    cv.WaitFor(mu, kStep, [] { return false; });
  }
  return condition();
}

inline boost::json::value Json(std::string_view text) {
  return boost::json::parse(boost::json::string_view(text.data(), text.size()));
}

inline constexpr std::string_view kSignature = "3f2a9c0d1e2b4a5f";
inline constexpr std::string_view kTrace1 = "4bf92f3577b34da6a3ce929d0e0e4736";
inline constexpr std::string_view kTrace2 = "00f067aa0ba902b7a3ce929d0e0e4736";
inline constexpr std::string_view kTrace3 = "5b8efff798038103d269b633813fc60c";

// A group of two firing alerts (two SLOs, one signature), as the router would hand it over.
inline Notification SampleNotification(std::string receiver = "oncall") {
  Notification n;
  n.id = "n-0001";
  n.receiver = std::move(receiver);
  n.group_key = R"({}:{service="checkout",signature="3f2a9c0d1e2b4a5f"})";
  n.group_labels = {{"service", "checkout"}, {"signature", std::string(kSignature)}};
  n.common_labels = {{"alertname", "SloBurnRate"},
                     {"service", "checkout"},
                     {"severity", "page"},
                     {"signature", std::string(kSignature)}};
  n.common_annotations = {{"summary", "checkout is burning its error budget"}};
  n.firing = true;
  n.sequence = 3;
  n.created_unix_nano = 1'700'000'000'500'000'000;
  n.external_url = "http://traceslo.example:8080/";

  Alert availability;
  availability.labels = n.common_labels;
  availability.labels["slo"] = "availability";
  availability.annotations = {{"summary", "checkout is burning its error budget"},
                              {"runbook_url", "https://runbooks.example/checkout"}};
  availability.starts_at_unix_nano = 1'700'000'000'250'000'000;
  availability.causes.push_back(Cause{.kind = Cause::Kind::kSignature,
                                      .id = std::string(kSignature),
                                      .title = "PaymentDeclined: card declined for order <n>",
                                      .sample_message = "card declined for order 8812",
                                      .count = 120,
                                      .share = 0.8,
                                      .trace_ids = {std::string(kTrace1), std::string(kTrace2)}});
  Alert traces;
  traces.labels = n.common_labels;
  traces.labels["slo"] = "error-traces";
  traces.annotations = {{"summary", "checkout is burning its error budget"}};
  traces.starts_at_unix_nano = 1'700'000'001'000'000'000;
  traces.causes.push_back(Cause{.kind = Cause::Kind::kSignature,
                                .id = std::string(kSignature),
                                .title = "PaymentDeclined: card declined for order <n>",
                                .sample_message = "card declined for order 9001",
                                .count = 90,
                                .share = 0.75,
                                .trace_ids = {std::string(kTrace3)}});
  traces.causes.push_back(Cause{.kind = Cause::Kind::kPropagationBreak,
                                .id = "inventory",
                                .title = "inventory drops traceparent",
                                .count = 7,
                                .share = 0.05});
  n.alerts = {availability, traces};
  return n;
}

// The same group once both alerts resolved.
inline Notification ResolvedSample(std::string receiver = "oncall") {
  Notification n = SampleNotification(std::move(receiver));
  n.id = "n-0002";
  n.sequence = 4;
  n.firing = false;
  for (Alert& a : n.alerts) {
    a.firing = false;
    a.ends_at_unix_nano = 1'700'000'600'000'000'000;
  }
  return n;
}

}  // namespace traceslo::alerting::testing_util
