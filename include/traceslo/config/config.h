#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace traceslo::config {

// TLS for one listener. Empty cert_file: plain text. client_ca_file set: clients must present a
// certificate signed by it (mTLS).
struct TlsConfig {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
  bool enabled() const { return !cert_file.empty(); }
};

struct ListenerConfig {
  std::string listen_address;  // host:port; port 0 picks a free port (logged at start-up)
};

struct OtlpConfig {
  ListenerConfig grpc{"127.0.0.1:4317"};
  ListenerConfig http{"127.0.0.1:4318"};
  // Bearer tokens accepted on both OTLP ports; empty: no authentication. Read from
  // auth.bearer_tokens (list) and/or auth.bearer_tokens_file (one token per line, # comments).
  std::vector<std::string> bearer_tokens;
  TlsConfig tls;                             // applies to both OTLP ports
  uint64_t max_request_bytes = 16ull << 20;  // after decompression
  uint32_t max_spans_per_request = 1'000'000;
  uint32_t grpc_max_concurrent_streams = 100;  // per connection
  uint32_t max_connections = 1024;             // per OTLP port
  uint64_t grpc_memory_bytes = 512ull << 20;   // gRPC resource quota
};

struct WebConfig {
  ListenerConfig listen{"127.0.0.1:8080"};
  std::string external_url = "http://localhost:8080";
  // Bearer token the API's write endpoints (silences, ack) require; empty: none required.
  // `api_token_file` reads it from a file (trailing newline removed).
  std::string api_token;
};

struct StorageConfig {
  std::string path = "./var";  // the data directory; the database is <path>/traceslo.db
  // SLI minute rollups are written at least this often (what a kill -9 can lose at most).
  std::chrono::milliseconds flush_interval{10'000};
  // Minute rollups older than this are deleted; keep it above the longest SLO window.
  std::chrono::milliseconds retention{35LL * 86'400'000};
};

struct PipelineConfig {
  uint32_t shards = 2;
  uint32_t queue_capacity_spans = 1u << 16;  // per shard
  std::chrono::milliseconds trace_idle_timeout{15'000};
  std::chrono::milliseconds trace_max_age{60'000};
  uint32_t max_live_traces = 200'000;  // total across shards, split evenly
  std::chrono::milliseconds max_lateness{300'000};
  // How often shards complete idle traces and publish their SLI deltas to the store.
  std::chrono::milliseconds tick_interval{1'000};
  uint32_t max_spans_per_trace = 1'000;  // further spans of a trace count SLIs but are not kept
  uint32_t max_services = 1'000;         // further services fold into service="other"
  uint32_t max_operations_per_service = 100;  // further operations fold into operation="other"
  uint32_t max_signatures = 10'000;           // error signatures kept in the registry
  std::chrono::milliseconds sli_retention{3'600'000};  // how long 10 s SLI buckets stay in memory
  std::chrono::milliseconds exemplar_retention{900'000};  // exemplar traces; <= sli_retention
  // Error classification of spans whose status is UNSET (status ERROR is always an error,
  // status OK never is).
  struct Errors {
    int32_t http_status_min = 500;  // HTTP status >= this is an error; 600: none is
    std::vector<int32_t> grpc_codes{2, 4, 12, 13, 14, 15};  // gRPC codes that are errors; [] none
  } errors;
};

struct RulesConfig {
  std::vector<std::string> files{"rules/*.yaml"};
  std::chrono::milliseconds evaluation_interval{10'000};
};

struct LogConfig {
  std::string format = "logfmt";  // logfmt | json
  std::string level = "info";     // debug | info | warn | error
};

// One destination of notifications (`alerting.receivers[]`). Which fields apply depends on
// `kind`. `url`, `hmac_secret`, `routing_key` and header values are secrets: they come from the
// file, `${VAR}` or a `*_file` key, and must never be logged or put in a message.
struct ReceiverConfig {
  enum class Kind { kWebhook, kSlack, kPagerDuty, kAlertmanager, kLog };
  std::string name;  // [A-Za-z0-9_.-], at most 64 bytes; unique
  Kind kind = Kind::kLog;
  // webhook, slack: where to POST; pagerduty: the Events API v2 endpoint; alertmanager: the
  // base URL (notifications go to <url>/api/v2/alerts). http:// or https:// only.
  std::string url;
  std::string hmac_secret;  // webhook: Standard Webhooks signing key; empty: unsigned
  std::vector<std::pair<std::string, std::string>> headers;  // webhook: added to every request
  std::string routing_key;  // pagerduty: the integration's routing key
  std::string ca_file;      // https with a private CA (PEM bundle); empty: the system's CAs
};

// alerting.delivery: how the outbox delivers notifications.
struct DeliveryConfig {
  std::chrono::milliseconds timeout{10'000};         // per attempt: connect, TLS, send, answer
  std::chrono::milliseconds initial_backoff{1'000};  // first retry waits up to this
  std::chrono::milliseconds max_backoff{300'000};    // retries wait at most this
  std::chrono::milliseconds max_age{86'400'000};     // undelivered notifications older are dropped
  std::chrono::milliseconds log_retention{7LL * 86'400'000};  // delivery log and finished entries
};

// alerting.routes[]: plain data for the router. First match wins unless `continue_matching`.
struct RouteConfig {
  std::map<std::string, std::string> match;  // label name -> value, all must equal
  std::string receiver;                      // names one of alerting.receivers
  bool continue_matching = false;            // `continue`
};

// The alerting section. Grouping and routing keys are read here and used by the router; the
// receivers and delivery settings by the notifiers and the outbox.
struct AlertingConfig {
  std::vector<std::string> group_by{"service", "signature"};  // label names
  std::chrono::milliseconds group_wait{30'000};
  // "warming": group_wait counts from when an alert of the group first warmed (its short window
  // burning while its long window fills); "firing": from its first firing alert (Alertmanager).
  std::string group_wait_start = "warming";
  std::chrono::milliseconds group_interval{300'000};
  std::chrono::milliseconds repeat_interval{4LL * 3'600'000};
  std::vector<RouteConfig> routes;
  std::string default_receiver = "log";  // where alerts no route matches go
  // As written, plus a receiver {name: log, log: {}} unless one named "log" is written.
  std::vector<ReceiverConfig> receivers{ReceiverConfig{.name = "log"}};
  DeliveryConfig delivery;
  // Cause attribution: a firing error alert names the smallest set of error signatures (highest
  // count first) that covers this share of its short window's errors, at most max_causes.
  uint32_t cause_coverage_percent = 80;
  uint32_t max_causes = 5;

  // The receiver named `name`, or null.
  const ReceiverConfig* FindReceiver(std::string_view name) const;
};

struct LinksConfig {
  // External trace viewer, with "{trace_id}" where the 32-hex-digit id goes; empty: only the
  // built-in page (web.external_url + "/traces/{trace_id}") is linked.
  std::string trace_url;
};

// Kafka mode (docs/kafka.md): off by default; when enabled, spans come from the otlp_spans topic
// instead of the OTLP listeners' shards, and the two stages run as described there.
struct KafkaConfig {
  bool enabled = false;
  std::vector<std::string> brokers;  // bootstrap servers, host:port; required when enabled
  struct Topics {
    std::string spans = "otlp_spans";
    std::string deltas = "traceslo_deltas";
    std::string state = "traceslo_state";
  } topics;
  struct GroupIds {
    std::string stage1 = "traceslo-stage1";
    std::string stage2 = "traceslo-stage2";
  } group_ids;
  std::string encoding = "otlp_proto";  // of otlp_spans records: otlp_proto | otlp_json
  // Passed to librdkafka as they are, for both stages' clients (security.protocol, sasl.*,
  // ssl.*, ...). Values may be secrets: never logged. Keys traceslo sets itself are refused.
  std::map<std::string, std::string> librdkafka;
  std::chrono::milliseconds epoch_length{1'000};             // stage 1's sealing period
  std::chrono::milliseconds commit_interval{1'000};          // stage 1's offset commits
  std::chrono::milliseconds idle_partition_timeout{10'000};  // then stream time follows the clock
  // Stage 2 evaluates a bucket once every source partition's watermark is this far past its end.
  std::chrono::milliseconds allowed_lateness{10'000};
  // How often stage 2 sends each owned partition's changes to the traceslo_state changelog.
  std::chrono::milliseconds snapshot_interval{60'000};
};

struct Config {
  OtlpConfig otlp;
  WebConfig web;
  StorageConfig storage;
  PipelineConfig pipeline;
  RulesConfig rules;
  LogConfig log;
  AlertingConfig alerting;
  LinksConfig links;
  KafkaConfig kafka;
};

// Parses a configuration document. `source_name` prefixes every error
// ("traceslo.yaml:12:5: pipeline.shards must be an integer between 1 and 256, got \"two\"").
// `${VAR}` expands from the environment through `getenv`; `*_file` keys are read relative to the
// process working directory. Unknown keys are errors (with a "did you mean" hint where one is
// close). Returns InvalidArgument describing the first problem. Pure apart from file and env reads.
absl::StatusOr<Config> ParseConfig(std::string_view yaml_text, std::string_view source_name);

// Reads and parses a file; NotFound / InvalidArgument with the path in the message.
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// "15s", "250ms", "5m", "2h", "30d" (and combinations like "1h30m"). InvalidArgument otherwise.
absl::StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text);

// The inverse of ParseDuration for messages: 90'000 ms gives "1m30s", 0 gives "0s". `duration`
// must not be negative.
std::string FormatDuration(std::chrono::milliseconds duration);

// "16MiB", "512KiB", "1GiB", "1000", "2MB" (decimal units too). InvalidArgument otherwise.
absl::StatusOr<uint64_t> ParseByteSize(std::string_view text);

}  // namespace traceslo::config
