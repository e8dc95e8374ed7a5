// Feeds arbitrary bytes to the configuration parser. It must return a Status for every input
// (never throw, crash or hang), every error must carry the "source:line:col: " prefix, and every
// accepted config must satisfy the documented ranges.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "traceslo/common/url.h"
#include "traceslo/config/config.h"

namespace {

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

bool HasLocationPrefix(std::string_view message) {
  constexpr std::string_view kSource = "fuzz.yaml:";
  if (message.substr(0, kSource.size()) != kSource) return false;
  message.remove_prefix(kSource.size());
  // line ":" column ": "
  for (int field = 0; field < 2; ++field) {
    size_t digits = 0;
    while (digits < message.size() && message[digits] >= '0' && message[digits] <= '9') ++digits;
    if (digits == 0 || digits >= message.size() || message[digits] != ':') return false;
    message.remove_prefix(digits + 1);
  }
  return message.substr(0, 1) == " ";
}

void CheckConfig(const traceslo::config::Config& c) {
  Check(c.pipeline.shards >= 1 && c.pipeline.shards <= 256);
  Check(c.pipeline.queue_capacity_spans >= 1 && c.pipeline.queue_capacity_spans <= (1u << 26));
  Check(c.pipeline.trace_idle_timeout.count() > 0);
  Check(c.pipeline.trace_max_age >= c.pipeline.trace_idle_timeout);
  Check(c.pipeline.max_lateness.count() > 0);
  Check(c.rules.evaluation_interval.count() > 0);
  Check(c.otlp.max_request_bytes >= 1024 && c.otlp.max_request_bytes <= (1u << 30));
  Check(c.log.format == "logfmt" || c.log.format == "json");
  Check(!c.storage.path.empty());
  Check(c.otlp.tls.key_file.empty() || c.otlp.tls.enabled());
  // Alerting: every reference names a receiver, names are unique, URLs are http(s).
  const traceslo::config::AlertingConfig& a = c.alerting;
  Check(a.FindReceiver(a.default_receiver) != nullptr);
  Check(a.FindReceiver("log") != nullptr);
  for (const auto& route : a.routes) Check(a.FindReceiver(route.receiver) != nullptr);
  for (size_t i = 0; i < a.receivers.size(); ++i) {
    const auto& r = a.receivers[i];
    Check(!r.name.empty() && r.name.size() <= 64);
    for (size_t j = 0; j < i; ++j) Check(a.receivers[j].name != r.name);
    if (r.kind != traceslo::config::ReceiverConfig::Kind::kLog) {
      Check(traceslo::ParseHttpUrl(r.url).ok());
    }
    if (r.kind == traceslo::config::ReceiverConfig::Kind::kPagerDuty) {
      Check(!r.routing_key.empty());
    }
  }
  Check(a.delivery.initial_backoff <= a.delivery.max_backoff);
  Check(a.delivery.timeout.count() >= 100);
  Check(a.group_interval.count() >= 1000 && a.repeat_interval.count() >= 1000);
  Check(c.links.trace_url.empty() || c.links.trace_url.find("{trace_id}") != std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    absl::StatusOr<traceslo::config::Config> config =
        traceslo::config::ParseConfig(text, "fuzz.yaml");
    if (config.ok()) {
      CheckConfig(*config);
    } else {
      Check(config.status().code() == absl::StatusCode::kInvalidArgument);
      auto message = config.status().message();  // absl::string_view on Debian
      Check(HasLocationPrefix(std::string_view(message.data(), message.size())));
    }
    // The scalar grammars on their own: any answer but an exception is fine.
    absl::StatusOr<std::chrono::milliseconds> duration = traceslo::config::ParseDuration(text);
    Check(!duration.ok() || duration->count() >= 0);
    (void)traceslo::config::ParseByteSize(text);
  } catch (...) {
    __builtin_trap();  // ParseConfig promises never to throw
  }
  return 0;
}
