#include "traceslo/config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "tests/unit/config/config_test_util.h"

namespace traceslo::config {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Sets an environment variable for the length of a test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

void ExpectDefaults(const Config& config) {
  EXPECT_EQ(config.otlp.grpc.listen_address, "127.0.0.1:4317");
  EXPECT_EQ(config.otlp.http.listen_address, "127.0.0.1:4318");
  EXPECT_TRUE(config.otlp.bearer_tokens.empty());
  EXPECT_FALSE(config.otlp.tls.enabled());
  EXPECT_EQ(config.otlp.max_request_bytes, 16u << 20);
  EXPECT_EQ(config.otlp.max_spans_per_request, 1'000'000u);
  EXPECT_EQ(config.otlp.grpc_max_concurrent_streams, 100u);
  EXPECT_EQ(config.otlp.max_connections, 1024u);
  EXPECT_EQ(config.otlp.grpc_memory_bytes, 512ull << 20);
  EXPECT_EQ(config.web.listen.listen_address, "127.0.0.1:8080");
  EXPECT_EQ(config.web.external_url, "http://localhost:8080");
  EXPECT_EQ(config.storage.path, "./var");
  EXPECT_EQ(config.storage.flush_interval, milliseconds(10'000));
  EXPECT_EQ(config.storage.retention, milliseconds(35LL * 86'400'000));
  EXPECT_EQ(config.pipeline.shards, 2u);
  EXPECT_EQ(config.pipeline.queue_capacity_spans, 65536u);
  EXPECT_EQ(config.pipeline.trace_idle_timeout, milliseconds(15'000));
  EXPECT_EQ(config.pipeline.trace_max_age, milliseconds(60'000));
  EXPECT_EQ(config.pipeline.max_live_traces, 200'000u);
  EXPECT_EQ(config.pipeline.max_lateness, milliseconds(300'000));
  EXPECT_EQ(config.pipeline.tick_interval, milliseconds(1'000));
  EXPECT_EQ(config.pipeline.max_spans_per_trace, 1'000u);
  EXPECT_EQ(config.pipeline.max_services, 1'000u);
  EXPECT_EQ(config.pipeline.max_operations_per_service, 100u);
  EXPECT_EQ(config.pipeline.max_signatures, 10'000u);
  EXPECT_EQ(config.pipeline.sli_retention, milliseconds(3'600'000));
  EXPECT_EQ(config.pipeline.exemplar_retention, milliseconds(900'000));
  EXPECT_EQ(config.pipeline.errors.http_status_min, 500);
  EXPECT_EQ(config.pipeline.errors.grpc_codes, (std::vector<int32_t>{2, 4, 12, 13, 14, 15}));
  EXPECT_EQ(config.rules.files, std::vector<std::string>{"rules/*.yaml"});
  EXPECT_EQ(config.rules.evaluation_interval, milliseconds(10'000));
  EXPECT_EQ(config.log.format, "logfmt");
  EXPECT_EQ(config.log.level, "info");
}

// Compares every pipeline key; `context` names the case in failures.
void ExpectPipelineEq(const PipelineConfig& actual, const PipelineConfig& expected,
                      std::string_view context) {
  EXPECT_EQ(actual.shards, expected.shards) << context;
  EXPECT_EQ(actual.queue_capacity_spans, expected.queue_capacity_spans) << context;
  EXPECT_EQ(actual.trace_idle_timeout, expected.trace_idle_timeout) << context;
  EXPECT_EQ(actual.trace_max_age, expected.trace_max_age) << context;
  EXPECT_EQ(actual.max_live_traces, expected.max_live_traces) << context;
  EXPECT_EQ(actual.max_lateness, expected.max_lateness) << context;
  EXPECT_EQ(actual.tick_interval, expected.tick_interval) << context;
  EXPECT_EQ(actual.max_spans_per_trace, expected.max_spans_per_trace) << context;
  EXPECT_EQ(actual.max_services, expected.max_services) << context;
  EXPECT_EQ(actual.max_operations_per_service, expected.max_operations_per_service) << context;
  EXPECT_EQ(actual.max_signatures, expected.max_signatures) << context;
  EXPECT_EQ(actual.sli_retention, expected.sli_retention) << context;
  EXPECT_EQ(actual.exemplar_retention, expected.exemplar_retention) << context;
  EXPECT_EQ(actual.errors.http_status_min, expected.errors.http_status_min) << context;
  EXPECT_EQ(actual.errors.grpc_codes, expected.errors.grpc_codes) << context;
}

// --- Defaults and the shape of the document ---------------------------------------------------

TEST(ParseConfigTest, EmptyDocumentMeansDefaults) {
  ExpectDefaults(ParsedOrDie(""));
  ExpectDefaults(ParsedOrDie("# only a comment\n\n"));
  ExpectDefaults(ParsedOrDie("---\n"));
  ExpectDefaults(ParsedOrDie("~\n"));
}

TEST(ParseConfigTest, EmptySectionsAndValuesKeepDefaults) {
  ExpectDefaults(ParsedOrDie(Lines({
      "otlp:",
      "  grpc:",
      "  auth:",
      "  tls:",
      "web: {}",
      "storage:",
      "pipeline:",
      "  shards:",
      "  trace_idle_timeout: ~",
      "rules:",
      "  files:",
      "log: {level: null}",
  })));
}

TEST(ParseConfigTest, TopLevelMustBeAMapping) {
  EXPECT_EQ(ErrorOf(Lines({"- otlp", "- web"})),
            "t.yaml:1:1: the top level must be a mapping of sections (otlp, web, storage, "
            "pipeline, rules, log, alerting, links, kafka), got a list");
  EXPECT_THAT(ErrorOf("just a string\n"), StartsWith("t.yaml:1:1: the top level must be"));
}

TEST(ParseConfigTest, EveryKeyIsParsed) {
  TempDir dir;
  const std::string cert = dir.Write("cert.pem", "cert");
  const std::string key = dir.Write("key.pem", "key");
  const std::string ca = dir.Write("ca.pem", "ca");
  const std::string tokens = dir.Write("tokens", "# ops team\n\n  gamma  \ndelta\r\n#old\n");
  const std::string yaml = Lines({
                               "otlp:",
                               "  grpc: {listen_address: \"0.0.0.0:14317\"}",
                               "  http:",
                               "    listen_address: \"[::1]:14318\"",
                               "  auth:",
                               "    bearer_tokens: [alpha, beta]",
                           }) +
                           "    bearer_tokens_file: " + tokens +
                           "\n  tls:\n    cert_file: " + cert + "\n    key_file: " + key +
                           "\n    client_ca_file: " + ca + "\n" +
                           Lines({
                               "  max_request_bytes: 8MiB",
                               "  max_spans_per_request: 5000",
                               "  grpc_max_concurrent_streams: 50",
                               "  max_connections: 64",
                               "  grpc_memory_bytes: 1GiB",
                               "web:",
                               "  listen_address: \":9090\"",
                               "  external_url: https://slo.example.com/traceslo",
                               "storage:",
                               "  path: /var/lib/traceslo",
                               "pipeline:",
                               "  shards: 8",
                               "  queue_capacity_spans: 1024",
                               "  trace_idle_timeout: 30s",
                               "  trace_max_age: 2m",
                               "  max_live_traces: 5000",
                               "  max_lateness: 1h30m",
                               "  tick_interval: 250ms",
                               "  max_spans_per_trace: 200",
                               "  max_services: 50",
                               "  max_operations_per_service: 20",
                               "  max_signatures: 3000",
                               "  sli_retention: 6h",
                               "  exemplar_retention: 30m",
                               "  errors:",
                               "    http_status_min: 400",
                               "    grpc_codes: [13, 14]",
                               "rules:",
                               "  files: [\"a/*.yaml\", b.yaml]",
                               "  evaluation_interval: 250ms",
                               "log:",
                               "  format: json",
                               "  level: debug",
                           });
  Config config = ParsedOrDie(yaml);
  EXPECT_EQ(config.otlp.grpc.listen_address, "0.0.0.0:14317");
  EXPECT_EQ(config.otlp.http.listen_address, "[::1]:14318");
  EXPECT_EQ(config.otlp.bearer_tokens,
            (std::vector<std::string>{"alpha", "beta", "gamma", "delta"}));
  EXPECT_TRUE(config.otlp.tls.enabled());
  EXPECT_EQ(config.otlp.tls.cert_file, cert);
  EXPECT_EQ(config.otlp.tls.key_file, key);
  EXPECT_EQ(config.otlp.tls.client_ca_file, ca);
  EXPECT_EQ(config.otlp.max_request_bytes, 8u << 20);
  EXPECT_EQ(config.otlp.max_spans_per_request, 5000u);
  EXPECT_EQ(config.otlp.grpc_max_concurrent_streams, 50u);
  EXPECT_EQ(config.otlp.max_connections, 64u);
  EXPECT_EQ(config.otlp.grpc_memory_bytes, 1ull << 30);
  EXPECT_EQ(config.web.listen.listen_address, ":9090");
  EXPECT_EQ(config.web.external_url, "https://slo.example.com/traceslo");
  EXPECT_EQ(config.storage.path, "/var/lib/traceslo");
  EXPECT_EQ(config.pipeline.shards, 8u);
  EXPECT_EQ(config.pipeline.queue_capacity_spans, 1024u);
  EXPECT_EQ(config.pipeline.trace_idle_timeout, milliseconds(30'000));
  EXPECT_EQ(config.pipeline.trace_max_age, milliseconds(120'000));
  EXPECT_EQ(config.pipeline.max_live_traces, 5000u);
  EXPECT_EQ(config.pipeline.max_lateness, milliseconds(5'400'000));
  EXPECT_EQ(config.pipeline.tick_interval, milliseconds(250));
  EXPECT_EQ(config.pipeline.max_spans_per_trace, 200u);
  EXPECT_EQ(config.pipeline.max_services, 50u);
  EXPECT_EQ(config.pipeline.max_operations_per_service, 20u);
  EXPECT_EQ(config.pipeline.max_signatures, 3000u);
  EXPECT_EQ(config.pipeline.sli_retention, milliseconds(21'600'000));
  EXPECT_EQ(config.pipeline.exemplar_retention, milliseconds(1'800'000));
  EXPECT_EQ(config.pipeline.errors.http_status_min, 400);
  EXPECT_EQ(config.pipeline.errors.grpc_codes, (std::vector<int32_t>{13, 14}));
  EXPECT_EQ(config.rules.files, (std::vector<std::string>{"a/*.yaml", "b.yaml"}));
  EXPECT_EQ(config.rules.evaluation_interval, milliseconds(250));
  EXPECT_EQ(config.log.format, "json");
  EXPECT_EQ(config.log.level, "debug");
}

TEST(ParseConfigTest, EmptyRulesListMeansNoRules) {
  EXPECT_TRUE(ParsedOrDie("rules: {files: []}\n").rules.files.empty());
}

TEST(ParseConfigTest, DesignExampleAlertingAndLinksParse) {
  // The design's example; the alerting keys themselves are tested in alerting_config_test.cc.
  ScopedEnv webhook("TRACESLO_TEST_ONCALL_WEBHOOK", "https://hooks.example.com/x");
  Config config = ParsedOrDie(Lines({
      "alerting:",
      "  group_by: [service, signature]",
      "  group_wait: 30s",
      "  routes: [{match: {severity: page}, receiver: oncall}]",
      "  receivers:",
      "    - {name: oncall, webhook: {url: \"${TRACESLO_TEST_ONCALL_WEBHOOK}\"}}",
      "links:",
      "  trace_url: \"http://jaeger:16686/trace/{trace_id}\"",
  }));
  ExpectDefaults(config);
  ASSERT_NE(config.alerting.FindReceiver("oncall"), nullptr);
  EXPECT_EQ(config.alerting.FindReceiver("oncall")->url, "https://hooks.example.com/x");
  EXPECT_EQ(config.links.trace_url, "http://jaeger:16686/trace/{trace_id}");
  EXPECT_EQ(ErrorOf("alerting: 5\n"), "t.yaml:1:11: alerting must be a mapping, got a scalar");
}

// --- Unknown keys -------------------------------------------------------------------------------

TEST(ParseConfigTest, UnknownKeyHasHintAndLocation) {
  // Line 2 is "  shard: 4": the key starts in column 3.
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  shard: 4"})),
            "t.yaml:2:3: unknown key 'shard' in pipeline; did you mean 'shards'?");
  // Transposed letters, top level.
  EXPECT_EQ(ErrorOf(Lines({"storage: {path: x}", "pipleine:", "  shards: 2"})),
            "t.yaml:2:1: unknown key 'pipleine' at the top level; did you mean 'pipeline'?");
  // Flow mapping: in "  tls: {cert_flie: a.pem}" the key starts in column 9.
  EXPECT_EQ(ErrorOf(Lines({"otlp:", "  tls: {cert_flie: a.pem}"})),
            "t.yaml:2:9: unknown key 'cert_flie' in otlp.tls; did you mean 'cert_file'?");
  // Too far from any key for a hint (edit distance 5).
  EXPECT_EQ(ErrorOf(Lines({"otlp:", "  tls: {cert: a.pem}"})),
            "t.yaml:2:9: unknown key 'cert' in otlp.tls (valid keys: cert_file, key_file, "
            "client_ca_file)");
  // Line 4 "  http: {listen_adress: x}": the key starts in column 10.
  EXPECT_EQ(ErrorOf(Lines({"otlp:", "  grpc:", "    listen_address: 127.0.0.1:1",
                           "  http: {listen_adress: x}"})),
            "t.yaml:4:10: unknown key 'listen_adress' in otlp.http; did you mean "
            "'listen_address'?");
}

TEST(ParseConfigTest, UnknownKeyWithoutCloseMatchListsValidKeys) {
  EXPECT_EQ(ErrorOf(Lines({"log:", "  format: json", "  colour: true"})),
            "t.yaml:3:3: unknown key 'colour' in log (valid keys: format, level)");
  EXPECT_EQ(ErrorOf("zzzzzzzz: 1\n"),
            "t.yaml:1:1: unknown key 'zzzzzzzz' at the top level (valid keys: otlp, web, storage, "
            "pipeline, rules, log, alerting, links, kafka)");
}

TEST(ParseConfigTest, DuplicateAndNonStringKeysAreErrors) {
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  shards: 2", "  max_live_traces: 10", "  shards: 3"})),
            "t.yaml:4:3: duplicate key pipeline.shards (first set at 2:3)");
  // Line 2 "  ? [a]": the key (a flow sequence) starts in column 5.
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  ? [a]", "  : 1"})),
            "t.yaml:2:5: keys in pipeline must be non-empty strings, got a list");
}

// --- Type and range errors ----------------------------------------------------------------------

TEST(ParseConfigTest, TypeErrorsHaveLocations) {
  // "  shards: two": the value starts in column 11.
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  shards: two"})),
            "t.yaml:2:11: pipeline.shards must be an integer between 1 and 256, got \"two\"");
  // "pipeline: [1, 2]": the value starts in column 11.
  EXPECT_EQ(ErrorOf("pipeline: [1, 2]\n"), "t.yaml:1:11: pipeline must be a mapping, got a list");
  // Line 3 "  files: rules/*.yaml" (column 10).
  EXPECT_EQ(ErrorOf(Lines({"rules:", "  evaluation_interval: 5s", "  files: rules/*.yaml"})),
            "t.yaml:3:10: rules.files must be a list of strings, got a scalar");
  // Line 2 "  files: [a, [b]]": the inner list is at column 14.
  EXPECT_EQ(ErrorOf(Lines({"rules:", "  files: [a, [b]]"})),
            "t.yaml:2:14: rules.files[1] must be a string, got a list");
  // Block mapping as a value starts at its first key: line 3, column 5.
  EXPECT_EQ(ErrorOf(Lines({"storage:", "  path:", "    nested: x"})),
            "t.yaml:3:5: storage.path must be a string, got a mapping");
  EXPECT_EQ(ErrorOf(Lines({"otlp:", "  max_connections: [1]"})),
            "t.yaml:2:20: otlp.max_connections must be an integer between 1 and 1000000, got a "
            "list");
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  max_lateness: {a: 1}"})),
            "t.yaml:2:17: pipeline.max_lateness must be a duration like \"15s\", got a mapping");
}

TEST(ParseConfigTest, RangeErrors) {
  struct Case {
    std::string yaml;
    std::string error;
  };
  const Case cases[] = {
      {"pipeline: {shards: 0}",
       "t.yaml:1:20: pipeline.shards must be an integer between 1 and "
       "256, got \"0\""},
      {"pipeline: {shards: 257}",
       "t.yaml:1:20: pipeline.shards must be an integer between 1 "
       "and 256, got \"257\""},
      {"pipeline: {shards: -1}",
       "t.yaml:1:20: pipeline.shards must be an integer between 1 and "
       "256, got \"-1\""},
      {"pipeline: {shards: 2.5}",
       "t.yaml:1:20: pipeline.shards must be an integer between 1 "
       "and 256, got \"2.5\""},
      {"pipeline: {queue_capacity_spans: 67108865}",
       "t.yaml:1:34: pipeline.queue_capacity_spans must be an integer between 1 and 67108864, "
       "got \"67108865\""},
      {"pipeline: {trace_idle_timeout: 0s}",
       "t.yaml:1:32: pipeline.trace_idle_timeout must be greater than 0, got \"0s\""},
      {"rules: {evaluation_interval: 0ms}",
       "t.yaml:1:30: rules.evaluation_interval must be greater than 0, got \"0ms\""},
      {"otlp: {max_request_bytes: 1023}",
       "t.yaml:1:27: otlp.max_request_bytes must be between 1KiB and 1GiB, got \"1023\""},
      {"otlp: {max_request_bytes: 2GiB}",
       "t.yaml:1:27: otlp.max_request_bytes must be between 1KiB and 1GiB, got \"2GiB\""},
      {"log: {format: text}", "t.yaml:1:15: log.format must be one of logfmt, json, got \"text\""},
      {"log: {level: verbose}",
       "t.yaml:1:14: log.level must be one of debug, info, warn, error, got \"verbose\""},
      {"storage: {path: \"\"}", "t.yaml:1:17: storage.path must not be empty"},
      {"storage: {flush_interval: 50ms}",
       "t.yaml:1:27: storage.flush_interval must be between 100ms and 1h, got \"50ms\""},
      {"storage: {retention: 30m}",
       "t.yaml:1:22: storage.retention must be between 1h and 400d, got \"30m\""},
      {"storage: {retention: 1y}",
       "t.yaml:1:22: storage.retention: invalid duration \"1y\": unknown unit \"y\" (use ms, s, m, "
       "h, d)"},
      {"web: {external_url: localhost:8080}",
       "t.yaml:1:21: web.external_url must be an absolute http:// or https:// URL, got "
       "\"localhost:8080\""},
  };
  for (const Case& c : cases) EXPECT_EQ(ErrorOf(c.yaml + "\n"), c.error) << c.yaml;
  // Both bounds are inclusive.
  EXPECT_EQ(ParsedOrDie("pipeline: {shards: 256, queue_capacity_spans: 67108864}\n")
                .pipeline.queue_capacity_spans,
            67108864u);
  EXPECT_EQ(ParsedOrDie("otlp: {max_request_bytes: 1KiB}\n").otlp.max_request_bytes, 1024u);
  EXPECT_EQ(ParsedOrDie("otlp: {max_request_bytes: 1GiB}\n").otlp.max_request_bytes, 1u << 30);
}

TEST(ParseConfigTest, MaxAgeMustCoverIdleTimeout) {
  // Line 3 "  trace_max_age: 10s": value at column 18.
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  trace_idle_timeout: 20s", "  trace_max_age: 10s"})),
            "t.yaml:3:18: pipeline.trace_max_age (10s) must be at least "
            "pipeline.trace_idle_timeout (20s)");
  // Only the idle timeout is set, above the default max age: reported at the idle timeout.
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  trace_idle_timeout: 2m"})),
            "t.yaml:2:23: pipeline.trace_max_age (1m, the default) must be at least "
            "pipeline.trace_idle_timeout (2m)");
  EXPECT_EQ(ParsedOrDie("pipeline: {trace_idle_timeout: 1m, trace_max_age: 60s}\n")
                .pipeline.trace_max_age,
            milliseconds(60'000));
}

// --- Pipeline: SLI engine keys -------------------------------------------------------------------

TEST(ParseConfigTest, EachPipelineKeyIsReadAloneAndKeepsTheOthers) {
  // Each case sets one key (or one errors key); every other pipeline key keeps its default.
  struct Case {
    const char* yaml;
    void (*expect)(PipelineConfig&);
  };
  const Case cases[] = {
      {"pipeline: {shards: 7}", [](PipelineConfig& p) { p.shards = 7; }},
      {"pipeline: {queue_capacity_spans: 9}",
       [](PipelineConfig& p) { p.queue_capacity_spans = 9; }},
      {"pipeline: {trace_idle_timeout: 5s}",
       [](PipelineConfig& p) { p.trace_idle_timeout = milliseconds(5'000); }},
      {"pipeline: {trace_max_age: 2m}",
       [](PipelineConfig& p) { p.trace_max_age = milliseconds(120'000); }},
      {"pipeline: {max_live_traces: 11}", [](PipelineConfig& p) { p.max_live_traces = 11; }},
      {"pipeline: {max_lateness: 1m}",
       [](PipelineConfig& p) { p.max_lateness = milliseconds(60'000); }},
      {"pipeline: {tick_interval: 10ms}",
       [](PipelineConfig& p) { p.tick_interval = milliseconds(10); }},
      {"pipeline: {tick_interval: 1m}",
       [](PipelineConfig& p) { p.tick_interval = milliseconds(60'000); }},
      {"pipeline: {max_spans_per_trace: 1}", [](PipelineConfig& p) { p.max_spans_per_trace = 1; }},
      {"pipeline: {max_spans_per_trace: 100000}",
       [](PipelineConfig& p) { p.max_spans_per_trace = 100'000; }},
      {"pipeline: {max_services: 1}", [](PipelineConfig& p) { p.max_services = 1; }},
      {"pipeline: {max_services: 100000}", [](PipelineConfig& p) { p.max_services = 100'000; }},
      {"pipeline: {max_operations_per_service: 1}",
       [](PipelineConfig& p) { p.max_operations_per_service = 1; }},
      {"pipeline: {max_operations_per_service: 10000}",
       [](PipelineConfig& p) { p.max_operations_per_service = 10'000; }},
      {"pipeline: {max_signatures: 1}", [](PipelineConfig& p) { p.max_signatures = 1; }},
      {"pipeline: {max_signatures: 1000000}",
       [](PipelineConfig& p) { p.max_signatures = 1'000'000; }},
      {"pipeline: {sli_retention: 1h}",
       [](PipelineConfig& p) { p.sli_retention = milliseconds(3'600'000); }},
      {"pipeline: {sli_retention: 7d}",
       [](PipelineConfig& p) { p.sli_retention = milliseconds(604'800'000); }},
      {"pipeline: {exemplar_retention: 10s}",
       [](PipelineConfig& p) { p.exemplar_retention = milliseconds(10'000); }},
      {"pipeline: {exemplar_retention: 1h}",
       [](PipelineConfig& p) { p.exemplar_retention = milliseconds(3'600'000); }},
      {"pipeline: {errors: {http_status_min: 100}}",
       [](PipelineConfig& p) { p.errors.http_status_min = 100; }},
      {"pipeline: {errors: {http_status_min: 600}}",  // no HTTP status is an error
       [](PipelineConfig& p) { p.errors.http_status_min = 600; }},
      {"pipeline: {errors: {grpc_codes: []}}",  // no gRPC code is an error
       [](PipelineConfig& p) { p.errors.grpc_codes.clear(); }},
      {"pipeline: {errors: {grpc_codes: [16, 0]}}",  // bounds, in the order written
       [](PipelineConfig& p) {
         p.errors.grpc_codes = {16, 0};
       }},
      {"pipeline: {errors: {grpc_codes: ~, http_status_min: ~}}", [](PipelineConfig&) {}},
      {"pipeline: {errors: {}}", [](PipelineConfig&) {}},
      {"pipeline: {errors: ~, tick_interval: ~, sli_retention: ~, exemplar_retention: ~}",
       [](PipelineConfig&) {}},
  };
  for (const Case& c : cases) {
    PipelineConfig expected;
    c.expect(expected);
    ExpectPipelineEq(ParsedOrDie(std::string(c.yaml) + "\n").pipeline, expected, c.yaml);
  }
}

TEST(ParseConfigTest, PipelineErrorsBlockListWithEnvironment) {
  ScopedEnv code("TRACESLO_TEST_GRPC_CODE", "14");
  Config config = ParsedOrDie(Lines({
      "pipeline:",
      "  errors:",
      "    grpc_codes:",
      "      - ${TRACESLO_TEST_GRPC_CODE}",
      "      - 2",
      "  max_services: 3",
  }));
  EXPECT_EQ(config.pipeline.errors.grpc_codes, (std::vector<int32_t>{14, 2}));
  EXPECT_EQ(config.pipeline.errors.http_status_min, 500);
  EXPECT_EQ(config.pipeline.max_services, 3u);
}

TEST(ParseConfigTest, PipelineSliKeyRangeErrors) {
  struct Case {
    std::string yaml;
    std::string error;
  };
  const Case cases[] = {
      {"pipeline: {tick_interval: 9ms}",
       "t.yaml:1:27: pipeline.tick_interval must be between 10ms and 1m, got \"9ms\""},
      {"pipeline: {tick_interval: 1m1ms}",
       "t.yaml:1:27: pipeline.tick_interval must be between 10ms and 1m, got \"1m1ms\""},
      {"pipeline: {tick_interval: 0s}",
       "t.yaml:1:27: pipeline.tick_interval must be between 10ms and 1m, got \"0s\""},
      {"pipeline: {tick_interval: 1}",
       "t.yaml:1:27: pipeline.tick_interval: invalid duration \"1\": a unit is required (ms, s, "
       "m, h, d), e.g. \"1s\""},
      {"pipeline: {max_spans_per_trace: 0}",
       "t.yaml:1:33: pipeline.max_spans_per_trace must be an integer between 1 and 100000, got "
       "\"0\""},
      {"pipeline: {max_spans_per_trace: 100001}",
       "t.yaml:1:33: pipeline.max_spans_per_trace must be an integer between 1 and 100000, got "
       "\"100001\""},
      {"pipeline: {max_services: 0}",
       "t.yaml:1:26: pipeline.max_services must be an integer between 1 and 100000, got \"0\""},
      {"pipeline: {max_services: 100001}",
       "t.yaml:1:26: pipeline.max_services must be an integer between 1 and 100000, got "
       "\"100001\""},
      {"pipeline: {max_services: [1]}",
       "t.yaml:1:26: pipeline.max_services must be an integer between 1 and 100000, got a list"},
      {"pipeline: {max_operations_per_service: 0}",
       "t.yaml:1:40: pipeline.max_operations_per_service must be an integer between 1 and 10000, "
       "got \"0\""},
      {"pipeline: {max_operations_per_service: 10001}",
       "t.yaml:1:40: pipeline.max_operations_per_service must be an integer between 1 and 10000, "
       "got \"10001\""},
      {"pipeline: {max_signatures: 0}",
       "t.yaml:1:28: pipeline.max_signatures must be an integer between 1 and 1000000, got "
       "\"0\""},
      {"pipeline: {max_signatures: 1000001}",
       "t.yaml:1:28: pipeline.max_signatures must be an integer between 1 and 1000000, got "
       "\"1000001\""},
      {"pipeline: {sli_retention: 59m59s}",
       "t.yaml:1:27: pipeline.sli_retention must be between 1h and 7d, got \"59m59s\""},
      {"pipeline: {sli_retention: 7d1ms}",
       "t.yaml:1:27: pipeline.sli_retention must be between 1h and 7d, got \"7d1ms\""},
      {"pipeline: {exemplar_retention: 9s999ms}",
       "t.yaml:1:32: pipeline.exemplar_retention must be at least 10s, got \"9s999ms\""},
      {"pipeline: {exemplar_retention: 0s}",
       "t.yaml:1:32: pipeline.exemplar_retention must be at least 10s, got \"0s\""},
      {"pipeline: {errors: {http_status_min: 99}}",
       "t.yaml:1:38: pipeline.errors.http_status_min must be an integer between 100 and 600, got "
       "\"99\""},
      {"pipeline: {errors: {http_status_min: 601}}",
       "t.yaml:1:38: pipeline.errors.http_status_min must be an integer between 100 and 600, got "
       "\"601\""},
      {"pipeline: {errors: {http_status_min: 5xx}}",
       "t.yaml:1:38: pipeline.errors.http_status_min must be an integer between 100 and 600, got "
       "\"5xx\""},
  };
  for (const Case& c : cases) EXPECT_EQ(ErrorOf(c.yaml + "\n"), c.error) << c.yaml;
}

TEST(ParseConfigTest, PipelineErrorsSectionErrors) {
  // Line 3 "    http_status_mn: 500": the key starts in column 5.
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  errors:", "    http_status_mn: 500"})),
            "t.yaml:3:5: unknown key 'http_status_mn' in pipeline.errors; did you mean "
            "'http_status_min'?");
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  errors:", "    grpc_code: [13]"})),
            "t.yaml:3:5: unknown key 'grpc_code' in pipeline.errors; did you mean 'grpc_codes'?");
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  errors:", "    codes: [13]"})),
            "t.yaml:3:5: unknown key 'codes' in pipeline.errors (valid keys: http_status_min, "
            "grpc_codes)");
  // A typo of "errors" itself is caught in pipeline.
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  error: {http_status_min: 500}"})),
            "t.yaml:2:3: unknown key 'error' in pipeline; did you mean 'errors'?");
  // "pipeline: {errors: " is 19 characters: the value is in column 20.
  EXPECT_EQ(ErrorOf("pipeline: {errors: [500]}\n"),
            "t.yaml:1:20: pipeline.errors must be a mapping, got a list");
  // "pipeline: {errors: {grpc_codes: [], " is 36 characters.
  EXPECT_EQ(ErrorOf("pipeline: {errors: {grpc_codes: [], grpc_codes: [1]}}\n"),
            "t.yaml:1:37: duplicate key pipeline.errors.grpc_codes (first set at 1:21)");
}

TEST(ParseConfigTest, GrpcCodesErrors) {
  // "pipeline: {errors: {grpc_codes: " is 32 characters: the value is in column 33.
  EXPECT_EQ(ErrorOf("pipeline: {errors: {grpc_codes: 13}}\n"),
            "t.yaml:1:33: pipeline.errors.grpc_codes must be a list of integers between 0 and 16, "
            "got a scalar");
  // In line 3, "    grpc_codes: [2, " is 20 characters: the second item is in column 21.
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  errors:", "    grpc_codes: [2, 17]"})),
            "t.yaml:3:21: pipeline.errors.grpc_codes[1] must be an integer between 0 and 16, got "
            "\"17\"");
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  errors:", "    grpc_codes: [2, [4]]"})),
            "t.yaml:3:21: pipeline.errors.grpc_codes[1] must be an integer between 0 and 16, got "
            "a list");
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  errors:", "    grpc_codes: [2, ~]"})),
            "t.yaml:3:21: pipeline.errors.grpc_codes[1] must be an integer between 0 and 16, got "
            "null");
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  errors:", "    grpc_codes: [2, UNAVAILABLE]"})),
            "t.yaml:3:21: pipeline.errors.grpc_codes[1] must be an integer between 0 and 16, got "
            "\"UNAVAILABLE\"");
  // Block list: line 4 "      - -1", the item starts in column 9.
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  errors:", "    grpc_codes:", "      - -1"})),
            "t.yaml:4:9: pipeline.errors.grpc_codes[0] must be an integer between 0 and 16, got "
            "\"-1\"");
}

TEST(ParseConfigTest, DuplicateGrpcCodeIsReportedWhereItRepeats) {
  // Line 3 "    grpc_codes: [13, 14, 13]": the first 13 is in column 18, the second in column 26.
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  errors:", "    grpc_codes: [13, 14, 13]"})),
            "t.yaml:3:26: pipeline.errors.grpc_codes[2]: duplicate code 13 (first listed at 3:18)");
  // Block list: the items are on lines 4 to 6, each in column 9.
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  errors:", "    grpc_codes:", "      - 2", "      - 4",
                           "      - 2"})),
            "t.yaml:6:9: pipeline.errors.grpc_codes[2]: duplicate code 2 (first listed at 4:9)");
  // The same number written differently is still a duplicate.
  EXPECT_EQ(ErrorOf("pipeline: {errors: {grpc_codes: [4, \"04\"]}}\n"),
            "t.yaml:1:37: pipeline.errors.grpc_codes[1]: duplicate code 4 (first listed at 1:34)");
}

TEST(ParseConfigTest, ExemplarRetentionMustNotExceedSliRetention) {
  // Line 2 "  exemplar_retention: 2h": the value is in column 23.
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  exemplar_retention: 2h"})),
            "t.yaml:2:23: pipeline.exemplar_retention (2h) must be at most pipeline.sli_retention "
            "(1h, the default)");
  // Reported at exemplar_retention whichever key comes first.
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  exemplar_retention: 3h", "  sli_retention: 2h"})),
            "t.yaml:2:23: pipeline.exemplar_retention (3h) must be at most pipeline.sli_retention "
            "(2h)");
  EXPECT_EQ(ErrorOf(Lines({"pipeline:", "  sli_retention: 2h", "  exemplar_retention: 2h1ms"})),
            "t.yaml:3:23: pipeline.exemplar_retention (2h1ms) must be at most "
            "pipeline.sli_retention (2h)");
  // Equal is fine.
  Config config = ParsedOrDie("pipeline: {exemplar_retention: 7d, sli_retention: 7d}\n");
  EXPECT_EQ(config.pipeline.exemplar_retention, milliseconds(604'800'000));
  EXPECT_EQ(config.pipeline.sli_retention, milliseconds(604'800'000));
}

TEST(ParseConfigTest, ListenAddresses) {
  for (const char* good : {"127.0.0.1:4317", ":4317", "[::1]:4317", "[::]:0", "localhost:0",
                           "0.0.0.0:65535", "my-host.example.com:80"}) {
    std::string yaml = std::string("web: {listen_address: \"") + good + "\"}\n";
    EXPECT_EQ(ParsedOrDie(yaml).web.listen.listen_address, good);
  }
  struct Case {
    const char* address;
    const char* why;
  };
  const Case bad[] = {
      {"localhost", "missing \":port\""},
      {"::1:4317", "IPv6 addresses must be in brackets"},
      {"host:65536", "between 0 and 65535"},
      {"host:", "the port must be a number"},
      {"host:http", "the port must be a number"},
      {"[::1]", "missing \":port\""},
      {"[::1]4317", "missing \":port\""},
      {"[::1:4317", "missing \"]\""},
      {"[]:1", "empty IPv6 address"},
      {"[zz]:1", "invalid IPv6 address"},
      {"ho st:1", "invalid host name"},
      {"", "missing"},
  };
  for (const Case& c : bad) {
    // "otlp: {grpc: {listen_address: " is 30 characters: the quoted value starts in column 31.
    std::string yaml = std::string("otlp: {grpc: {listen_address: \"") + c.address + "\"}}\n";
    std::string error = ErrorOf(yaml);
    EXPECT_THAT(error, StartsWith("t.yaml:1:31: otlp.grpc.listen_address must be host:port "
                                  "(IPv6 as [::1]:4317), got "))
        << c.address;
    EXPECT_THAT(error, HasSubstr(c.why)) << c.address;
  }
}

// --- Durations and byte sizes -------------------------------------------------------------------

TEST(ParseDurationTest, Valid) {
  struct Case {
    const char* text;
    int64_t ms;
  };
  const Case cases[] = {
      {"250ms", 250},
      {"15s", 15'000},
      {"5m", 300'000},
      {"2h", 7'200'000},
      {"30d", 2'592'000'000},
      {"1h30m", 5'400'000},
      {"1d2h3m4s5ms", 93'784'005},
      {"0s", 0},
      {"0ms", 0},
      {"90s", 90'000},
      {"1m500ms", 60'500},
      {"007s", 7'000},
  };
  for (const Case& c : cases) {
    absl::StatusOr<milliseconds> d = ParseDuration(c.text);
    ASSERT_TRUE(d.ok()) << c.text << ": " << d.status();
    EXPECT_EQ(d->count(), c.ms) << c.text;
  }
}

TEST(ParseDurationTest, Invalid) {
  struct Case {
    const char* text;
    const char* why;
  };
  const Case cases[] = {
      {"", "empty"},
      {"15", "a unit is required (ms, s, m, h, d), e.g. \"15s\""},
      {"1.5s", "fractions are not supported"},
      {"5x", "unknown unit \"x\""},
      {"5mo", "unknown unit \"mo\""},
      {"5 s", "unknown unit \" s\""},
      {"5S", "unknown unit \"S\""},
      {"-5s", "must not be negative"},
      {"+5s", "expected a number"},
      {"s", "expected a number"},
      {"ms", "expected a number"},
      {"5m1h", "units must go from largest to smallest"},
      {"1s1s", "units must go from largest to smallest"},
      {"1h30", "a unit is required"},
      {"99999999999999999999s", "too large"},
      {"106751991167301d", "too large"},
      {"9223372036854775807ms1", "a unit is required"},
      {"106751991167d9223372036854775807ms", "too large"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<milliseconds> d = ParseDuration(c.text);
    ASSERT_FALSE(d.ok()) << c.text;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(d.status().message()), HasSubstr(c.why)) << c.text;
  }
}

TEST(ParseDurationTest, MaxLatenessIsAtMostThreeDays) {
  EXPECT_EQ(ErrorOf("pipeline: {max_lateness: 73h}\n"),
            "t.yaml:1:26: pipeline.max_lateness must be between 1ms and 3d, got \"73h\"");
  EXPECT_EQ(ErrorOf("pipeline: {max_lateness: 0s}\n"),
            "t.yaml:1:26: pipeline.max_lateness must be between 1ms and 3d, got \"0s\"");
}

TEST(ParseDurationTest, ConfigReportsUnitRequired) {
  // "pipeline: {max_lateness: " is 25 characters: the value is in column 26.
  EXPECT_EQ(ErrorOf("pipeline: {max_lateness: 300}\n"),
            "t.yaml:1:26: pipeline.max_lateness: invalid duration \"300\": a unit is required (ms, "
            "s, m, h, d), e.g. \"300s\"");
}

TEST(ParseByteSizeTest, Valid) {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  const Case cases[] = {
      {"16MiB", 16ull << 20},
      {"512KiB", 512ull << 10},
      {"1GiB", 1ull << 30},
      {"2TiB", 2ull << 40},
      {"2MB", 2'000'000},
      {"3kB", 3'000},
      {"3KB", 3'000},
      {"4GB", 4'000'000'000},
      {"5TB", 5'000'000'000'000},
      {"1000", 1000},
      {"64B", 64},
      {"0", 0},
      {"18446744073709551615", 18446744073709551615ull},
      {"16777215TiB", 16777215ull << 40},
  };
  for (const Case& c : cases) {
    absl::StatusOr<uint64_t> b = ParseByteSize(c.text);
    ASSERT_TRUE(b.ok()) << c.text << ": " << b.status();
    EXPECT_EQ(*b, c.bytes) << c.text;
  }
}

TEST(ParseByteSizeTest, Invalid) {
  struct Case {
    const char* text;
    const char* why;
  };
  const Case cases[] = {
      {"", "empty"},
      {"-1", "must not be negative"},
      {"-16MiB", "must not be negative"},
      {"16mb", "unknown unit \"mb\""},
      {"16M", "unknown unit \"M\""},
      {"16 MiB", "unknown unit \" MiB\""},
      {"1KiBB", "unknown unit \"KiBB\""},
      {"1.5GiB", "fractions are not supported"},
      {"MiB", "expected a number"},
      {"+5", "expected a number"},
      {"18446744073709551616", "too large"},
      {"16777216TiB", "too large"},
      {"18446744073709551615KB", "too large"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<uint64_t> b = ParseByteSize(c.text);
    ASSERT_FALSE(b.ok()) << c.text;
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(b.status().message()), HasSubstr(c.why)) << c.text;
  }
}

TEST(ParseByteSizeTest, ConfigReportsLocation) {
  // Line 2 "  grpc_memory_bytes: 1 GiB": value in column 22.
  EXPECT_EQ(ErrorOf(Lines({"otlp:", "  grpc_memory_bytes: 1 GiB"})),
            "t.yaml:2:22: otlp.grpc_memory_bytes: invalid byte size \"1 GiB\": unknown unit \" "
            "GiB\" (use B, KiB, MiB, GiB, TiB or KB, MB, GB, TB, or none for bytes)");
}

// --- Environment expansion ----------------------------------------------------------------------

TEST(ParseConfigTest, ExpandsEnvironmentVariables) {
  ScopedEnv dir("TRACESLO_TEST_DIR", "/data");
  ScopedEnv shards("TRACESLO_TEST_SHARDS", "16");
  ScopedEnv empty("TRACESLO_TEST_EMPTY", "");
  ScopedEnv unset("TRACESLO_TEST_UNSET", nullptr);
  Config config = ParsedOrDie(Lines({
      "storage: {path: \"${TRACESLO_TEST_DIR}/traceslo\"}",
      "pipeline:",
      "  shards: ${TRACESLO_TEST_SHARDS}",
      "  trace_idle_timeout: ${TRACESLO_TEST_UNSET:-20s}",
      "web:",
      "  external_url: \"https://${TRACESLO_TEST_UNSET:-example.com}/$${literal}$x$\"",
      "log:",
      "  level: ${TRACESLO_TEST_EMPTY:-warn}",
      "rules:",
      "  files: [\"${TRACESLO_TEST_DIR}/rules/*.yaml\", \"x${TRACESLO_TEST_EMPTY}y\"]",
  }));
  EXPECT_EQ(config.storage.path, "/data/traceslo");
  EXPECT_EQ(config.pipeline.shards, 16u);
  EXPECT_EQ(config.pipeline.trace_idle_timeout, milliseconds(20'000));
  EXPECT_EQ(config.web.external_url, "https://example.com/${literal}$x$");
  EXPECT_EQ(config.log.level, "warn");  // ":-" also applies when the variable is empty
  EXPECT_EQ(config.rules.files, (std::vector<std::string>{"/data/rules/*.yaml", "xy"}));
}

TEST(ParseConfigTest, EnvironmentErrorsHaveLocations) {
  ScopedEnv unset("TRACESLO_TEST_UNSET", nullptr);
  // Line 4 "    - ${TRACESLO_TEST_UNSET}": the scalar starts in column 7.
  EXPECT_EQ(
      ErrorOf(Lines({"otlp:", "  auth:", "    bearer_tokens:", "    - ${TRACESLO_TEST_UNSET}"})),
      "t.yaml:4:7: otlp.auth.bearer_tokens[0]: environment variable TRACESLO_TEST_UNSET is "
      "not set (use ${TRACESLO_TEST_UNSET:-default} to give a default)");
  EXPECT_EQ(ErrorOf("storage: {path: \"${TRACESLO_TEST_UNSET\"}\n"),
            "t.yaml:1:17: storage.path: unterminated \"${\" (write \"$$\" for a literal \"$\")");
  EXPECT_EQ(ErrorOf("storage: {path: \"${1X}\"}\n"),
            "t.yaml:1:17: storage.path: invalid environment variable reference \"${1X}\" "
            "(expected ${NAME} or ${NAME:-default})");
}

// --- Bearer tokens ------------------------------------------------------------------------------

TEST(ParseConfigTest, BearerTokensFile) {
  TempDir dir;
  const std::string file =
      dir.Write("tokens", "# comment\n\n  tok-1  \n\ttok_2\r\n   # indented comment\ntok3");
  Config config = ParsedOrDie("otlp: {auth: {bearer_tokens_file: " + file + "}}\n");
  EXPECT_EQ(config.otlp.bearer_tokens, (std::vector<std::string>{"tok-1", "tok_2", "tok3"}));
}

TEST(ParseConfigTest, BearerTokensFileErrors) {
  TempDir dir;
  const std::string missing = dir.Path("missing");
  // "otlp: {auth: {bearer_tokens_file: " is 34 characters: the value is in column 35.
  EXPECT_EQ(ErrorOf("otlp: {auth: {bearer_tokens_file: " + missing + "}}\n"),
            "t.yaml:1:35: otlp.auth.bearer_tokens_file: cannot read \"" + missing +
                "\": No such file or directory");
  const std::string empty = dir.Write("empty", "# nothing here\n\n");
  EXPECT_EQ(ErrorOf(Lines({"otlp:", "  auth:"}) + "    bearer_tokens_file: " + empty + "\n"),
            "t.yaml:3:25: otlp.auth.bearer_tokens_file: \"" + empty + "\" contains no tokens");
  const std::string spaced = dir.Write("spaced", "good\nhas space\n");
  EXPECT_EQ(ErrorOf("otlp: {auth: {bearer_tokens_file: " + spaced + "}}\n"),
            "t.yaml:1:35: otlp.auth.bearer_tokens_file: \"" + spaced +
                "\" line 2: a token must not contain spaces or control characters");
  EXPECT_THAT(ErrorOf("otlp: {auth: {bearer_tokens_file: " + dir.Path("") + "}}\n"),
              HasSubstr("Is a directory"));
}

TEST(ParseConfigTest, BearerTokenErrorsDoNotEchoTheToken) {
  // Line 2 "  auth: {bearer_tokens: [ok, \"s3cret value\"]}": the second item's quote is in
  // column 30.
  std::string error = ErrorOf(Lines({"otlp:", "  auth: {bearer_tokens: [ok, \"s3cret value\"]}"}));
  EXPECT_EQ(error,
            "t.yaml:2:30: otlp.auth.bearer_tokens[1] must not contain spaces or control "
            "characters");
  EXPECT_THAT(error, ::testing::Not(HasSubstr("s3cret")));
}

// --- TLS ----------------------------------------------------------------------------------------

TEST(ParseConfigTest, TlsValidation) {
  TempDir dir;
  const std::string cert = dir.Write("cert.pem", "c");
  const std::string key = dir.Write("key.pem", "k");
  const std::string missing = dir.Path("nope.pem");

  // Line 3 "    key_file: <key>": value in column 15.
  EXPECT_EQ(ErrorOf(Lines({"otlp:", "  tls:"}) + "    key_file: " + key + "\n"),
            "t.yaml:3:15: otlp.tls.key_file is set but otlp.tls.cert_file is not");
  EXPECT_EQ(ErrorOf(Lines({"otlp:", "  tls:"}) + "    cert_file: " + cert + "\n"),
            "t.yaml:3:16: otlp.tls.cert_file is set but otlp.tls.key_file is not");
  EXPECT_EQ(ErrorOf(Lines({"otlp:", "  tls:"}) + "    client_ca_file: " + cert + "\n"),
            "t.yaml:3:21: otlp.tls.client_ca_file (mTLS) needs otlp.tls.cert_file and "
            "otlp.tls.key_file");
  EXPECT_EQ(
      ErrorOf(Lines({"otlp:", "  tls:"}) + "    cert_file: " + cert + "\n    key_file: " + missing +
              "\n"),
      "t.yaml:4:15: otlp.tls.key_file: cannot read \"" + missing + "\": No such file or directory");
  EXPECT_EQ(ErrorOf(Lines({"otlp:", "  tls:"}) + "    cert_file: " + cert +
                    "\n    key_file: " + key + "\n    client_ca_file: " + missing + "\n"),
            "t.yaml:5:21: otlp.tls.client_ca_file: cannot read \"" + missing +
                "\": No such file or directory");

  Config config = ParsedOrDie("otlp: {tls: {cert_file: " + cert + ", key_file: " + key + "}}\n");
  EXPECT_TRUE(config.otlp.tls.enabled());
  EXPECT_TRUE(config.otlp.tls.client_ca_file.empty());
  // Empty values count as unset, so ${TLS_CERT:-} can switch TLS off.
  EXPECT_FALSE(ParsedOrDie("otlp: {tls: {cert_file: \"\", key_file: \"\"}}\n").otlp.tls.enabled());
}

// --- Syntax errors and limits -------------------------------------------------------------------

TEST(ParseConfigTest, YamlSyntaxErrorHasLocation) {
  // "storage: {path: a]": the stray "]" is in column 18.
  std::string error = ErrorOf("storage: {path: a]\n");
  EXPECT_THAT(error, StartsWith("t.yaml:1:18: invalid YAML: "));
  // A second ": " inside a value: yaml-cpp reports the illegal ":", in column 10 of line 2.
  EXPECT_EQ(ErrorOf(Lines({"storage:", "  path: a: b"})),
            "t.yaml:2:10: invalid YAML: illegal map value");
  // An unterminated quoted scalar: reported where the input ends, after the 12 characters of
  // line 2.
  EXPECT_EQ(ErrorOf("storage:\n  path: \"abc"), "t.yaml:2:13: invalid YAML: illegal EOF in scalar");
  // A tab where indentation is expected.
  EXPECT_THAT(ErrorOf("pipeline:\n\tshards: 2\n"), HasSubstr("invalid YAML"));
  // yaml-cpp quotes the offending byte; the message escapes it.
  std::string escape_error = ErrorOf(std::string("storage: {path: \"\\\x01\"}\n"));
  EXPECT_THAT(escape_error, HasSubstr("invalid YAML: unknown escape character: \\x01"));
  EXPECT_EQ(escape_error.find('\x01'), std::string::npos);
  // An alias without an anchor: "storage: {path: " is 16 characters.
  EXPECT_EQ(ErrorOf("storage: {path: *nope}\n"),
            "t.yaml:1:17: invalid YAML: alias to an undefined anchor");
}

TEST(ParseConfigTest, SecondDocumentIsAnError) {
  EXPECT_EQ(ErrorOf(Lines({"storage: {path: a}", "---", "storage: {path: b}"})),
            "t.yaml:2:1: unexpected content after the end of the document (a config file holds "
            "one YAML document)");
}

TEST(ParseConfigTest, AliasesWork) {
  Config config = ParsedOrDie(Lines({"rules: {files: [&d /srv/traceslo]}", "storage: {path: *d}"}));
  EXPECT_EQ(config.storage.path, "/srv/traceslo");
}

TEST(ParseConfigTest, DeepNestingIsRejected) {
  // 63 brackets under the top-level mapping are 64 levels: accepted. The 64th bracket would be
  // the 65th level; "alerting: " is 10 characters, so it sits in column 10 + 64 = 74.
  auto nested = [](int depth) {
    return "alerting: " + std::string(depth, '[') + std::string(depth, ']') + "\n";
  };
  // 63 levels pass the document limits (the section is then the wrong type).
  EXPECT_EQ(ErrorOf(nested(63)), "t.yaml:1:11: alerting must be a mapping, got a list");
  EXPECT_EQ(ErrorOf(nested(64)), "t.yaml:1:74: document is nested deeper than 64 levels");
  // Far deeper than yaml-cpp's own recursion could survive, and unbalanced.
  EXPECT_THAT(ErrorOf(std::string(500'000, '[')), HasSubstr("nested deeper than 64 levels"));
  EXPECT_THAT(ErrorOf("a: " + std::string(500'000, '{')), HasSubstr("nested deeper than 64"));
  // Block nesting: "k:" lines, each indented one more space.
  std::string block;
  for (int i = 0; i < 1000; ++i) block += std::string(i, ' ') + "k:\n";
  EXPECT_THAT(ErrorOf(block), HasSubstr("nested deeper than 64 levels"));
  // Block sequences: "- - - - ...".
  std::string dashes;
  for (int i = 0; i < 1000; ++i) dashes += "- ";
  EXPECT_THAT(ErrorOf("alerting:\n  " + dashes + "x\n"), HasSubstr("nested deeper than 64"));
}

TEST(ParseConfigTest, BillionLaughsIsRejected) {
  std::string yaml = "alerting:\n  l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; ++i) {
    std::string prev = "*l" + std::to_string(i - 1);
    yaml += "  l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) yaml += (j ? ", " : "") + prev;
    yaml += "]\n";
  }
  EXPECT_THAT(ErrorOf(yaml), HasSubstr("more than 100000 nodes (counting alias expansions)"));
  // Plain, large lists count too.
  std::string wide = "alerting: [";
  for (int i = 0; i < 150'000; ++i) wide += "1,";
  wide += "1]\n";
  EXPECT_THAT(ErrorOf(wide), HasSubstr("more than 100000 nodes"));
}

TEST(ParseConfigTest, RecursiveAliasIsRejected) {
  // "alerting: &a [*a]": the alias is in column 15.
  EXPECT_EQ(ErrorOf("alerting: &a [*a]\n"),
            "t.yaml:1:15: alias refers to a node that contains it (recursive alias)");
}

TEST(ParseConfigTest, DocumentSizeLimit) {
  const size_t kLimit = size_t{1} << 20;
  std::string at_limit = "#" + std::string(kLimit - 1, 'x');
  ExpectDefaults(ParsedOrDie(at_limit));
  EXPECT_EQ(ErrorOf(at_limit + "\n"), "t.yaml:1:1: the document is larger than 1 MiB");
}

TEST(ParseConfigTest, NeverThrowsOnOddBytes) {
  for (std::string_view text :
       {std::string_view("\0\0\0", 3), std::string_view("\xff\xfe\x00\x00", 4),
        std::string_view("\xef\xbb\xbfstorage: {path: x}\n"), std::string_view("%YAML 9.9\n---\n"),
        std::string_view("!<!> &a *a"), std::string_view("? ? ? ? ? ?"),
        std::string_view("[&a [*a]]"), std::string_view("{? : }")}) {
    absl::StatusOr<Config> config = ParseConfig(text, "t.yaml");
    if (!config.ok()) {
      EXPECT_THAT(std::string(config.status().message()), StartsWith("t.yaml:"));
    }
  }
}

// --- Files --------------------------------------------------------------------------------------

TEST(LoadConfigFileTest, MissingFileIsNotFound) {
  TempDir dir;
  const std::string path = dir.Path("traceslo.yaml");
  absl::StatusOr<Config> config = LoadConfigFile(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(config.status().message(), "config file " + path + ": not found");
}

TEST(LoadConfigFileTest, ParsesAndPrefixesErrorsWithThePath) {
  TempDir dir;
  const std::string good = dir.Write("good.yaml", "pipeline: {shards: 4}\n");
  absl::StatusOr<Config> config = LoadConfigFile(good);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->pipeline.shards, 4u);

  const std::string bad = dir.Write("bad.yaml", "pipeline:\n  shards: many\n");
  config = LoadConfigFile(bad);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(),
            bad + ":2:11: pipeline.shards must be an integer between 1 and 256, got \"many\"");

  const std::string big = dir.Write("big.yaml", std::string((1 << 20) + 10, '#'));
  config = LoadConfigFile(big);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(), big + ":1:1: the document is larger than 1 MiB");

  config = LoadConfigFile(dir.Path(""));
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LoadConfigFileTest, ExampleConfigIsValid) {
  ScopedEnv unset("TRACESLO_OTLP_TOKEN", nullptr);
  absl::StatusOr<Config> config =
      LoadConfigFile(std::string(TRACESLO_SOURCE_DIR) + "/examples/traceslo.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->otlp.grpc.listen_address, "127.0.0.1:4317");
  // The example's pipeline section shows the defaults.
  ExpectPipelineEq(config->pipeline, PipelineConfig{}, "examples/traceslo.yaml");
}

}  // namespace
}  // namespace traceslo::config
