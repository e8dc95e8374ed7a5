#pragma once

// What the alert router's tests share: a recording sink, in-memory state and silence stores,
// alerts of the shape the evaluator produces, and a fixture whose times come from a fake clock.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tests/fakes/fake_clock.h"
#include "traceslo/alerting/router.h"
#include "traceslo/alerting/silence.h"

namespace traceslo::alerting::testing_util {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

inline constexpr char kSigA[] = "3f2a9c0d1e2b4a5f";
inline constexpr char kSigB[] = "9b1c7e2d4f6a8b0c";

// Records what it accepts; refuses everything while `fail` is set.
class RecordingSink final : public NotificationSink {
 public:
  absl::Status Send(const Notification& notification) override {
    if (fail) {
      refused.push_back(notification);
      return absl::UnavailableError("outbox down");
    }
    sent.push_back(notification);
    return absl::OkStatus();
  }
  std::vector<Notification> sent;
  std::vector<Notification> refused;
  bool fail = false;
};

class MemoryStateStore final : public RouterStateStore {
 public:
  absl::StatusOr<std::vector<RouterGroupState>> Load() override {
    std::vector<RouterGroupState> states;
    for (const auto& [id, state] : states_) states.push_back(state);
    return states;
  }
  absl::Status Save(const RouterGroupState& state) override {
    if (fail) return absl::UnavailableError("state store down");
    states_[{state.receiver, state.group_key}] = state;
    return absl::OkStatus();
  }
  absl::Status Erase(const std::string& receiver, const std::string& group_key) override {
    states_.erase({receiver, group_key});
    return absl::OkStatus();
  }
  size_t size() const { return states_.size(); }
  const RouterGroupState* Find(const std::string& receiver, const std::string& group_key) const {
    auto it = states_.find({receiver, group_key});
    return it == states_.end() ? nullptr : &it->second;
  }
  bool fail = false;  // Save() refuses while set

 private:
  std::map<std::pair<std::string, std::string>, RouterGroupState> states_;
};

class MemorySilenceStore final : public SilenceStore {
 public:
  absl::StatusOr<std::vector<Silence>> Load() override {
    std::vector<Silence> out;
    for (const auto& [id, silence] : silences_) out.push_back(silence);
    return out;
  }
  absl::Status Save(const Silence& silence) override {
    if (fail) return absl::UnavailableError("silence store down");
    silences_[silence.id] = silence;
    return absl::OkStatus();
  }
  absl::Status Expire(const std::string& id, int64_t at_unix_nano) override {
    if (fail) return absl::UnavailableError("silence store down");
    auto it = silences_.find(id);
    if (it == silences_.end()) return absl::NotFoundError("no silence " + id);
    ExpireSilenceAt(it->second, at_unix_nano);
    return absl::OkStatus();
  }
  absl::StatusOr<uint64_t> Prune(int64_t ended_before_unix_nano) override {
    if (fail) return absl::UnavailableError("silence store down");
    return static_cast<uint64_t>(std::erase_if(silences_, [&](const auto& entry) {
      return entry.second.ends_at_unix_nano < ended_before_unix_nano;
    }));
  }
  size_t size() const { return silences_.size(); }
  bool fail = false;

 private:
  std::map<std::string, Silence> silences_;
};

inline Alert MakeAlert(const std::string& service, const std::string& slo,
                       const std::string& severity, const std::string& signature,
                       bool firing = true) {
  Alert alert;
  alert.labels = {{"alertname", slo}, {"service", service}, {"slo", slo}, {"severity", severity}};
  if (!signature.empty()) alert.labels["signature"] = signature;
  alert.annotations = {{"summary", slo + " is burning"}};
  alert.firing = firing;
  return alert;
}

inline std::set<std::string> Fingerprints(const Notification& notification) {
  std::set<std::string> out;
  for (const Alert& alert : notification.alerts) out.insert(Fingerprint(alert.labels));
  return out;
}

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() {
    options_.group_wait = seconds(30);
    options_.group_interval = minutes(5);
    options_.repeat_interval = hours(4);
    options_.external_url = "http://traceslo.example";
  }

  std::unique_ptr<AlertRouter> MakeRouter() {
    absl::StatusOr<std::unique_ptr<AlertRouter>> router =
        AlertRouter::Create(options_, sink_, *state_store_, *silence_store_);
    EXPECT_TRUE(router.ok()) << router.status();
    return std::move(router).value();
  }

  int64_t Now() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.Now().time_since_epoch())
        .count();
  }
  void Upsert(AlertRouter& router, const Alert& alert) { router.Upsert(alert, Now()); }
  // Moves the clock by `d` and ticks.
  void AdvanceAndTick(AlertRouter& router, std::chrono::nanoseconds d) {
    clock_.Advance(d);
    ASSERT_TRUE(router.Tick(Now()).ok());
  }

  // A silence of `matchers` over [Now() + from, Now() + to).
  Silence SilenceOf(std::vector<SilenceMatcher> matchers, std::chrono::nanoseconds from,
                    std::chrono::nanoseconds to) const {
    return Silence{.matchers = std::move(matchers),
                   .starts_at_unix_nano = Now() + from.count(),
                   .ends_at_unix_nano = Now() + to.count(),
                   .created_by = "alice",
                   .comment = "deploying a fix"};
  }

  fakes::FakeClock clock_;
  RouterOptions options_;
  RecordingSink sink_;
  MemoryStateStore store_;
  MemorySilenceStore silences_;
  // What MakeRouter() passes; a fixture with other stores points these at them.
  RouterStateStore* state_store_ = &store_;
  SilenceStore* silence_store_ = &silences_;
};

}  // namespace traceslo::alerting::testing_util
