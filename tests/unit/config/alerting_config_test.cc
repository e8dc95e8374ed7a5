// The alerting and links sections: receivers, routes, delivery, secrets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "tests/unit/config/config_test_util.h"
#include "traceslo/config/config.h"

namespace traceslo::config {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::Not;
using Kind = ReceiverConfig::Kind;

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

// A secret that must never show up in an error message.
constexpr std::string_view kSecret = "s3cr3t-T0KEN";

TEST(AlertingConfigTest, DefaultsAreAlertmanagersAndALogReceiver) {
  Config config = ParsedOrDie("");
  const AlertingConfig& a = config.alerting;
  EXPECT_EQ(a.group_by, (std::vector<std::string>{"service", "signature"}));
  EXPECT_EQ(a.group_wait, milliseconds(30'000));
  EXPECT_EQ(a.group_wait_start, "warming");
  EXPECT_EQ(a.group_interval, milliseconds(300'000));
  EXPECT_EQ(a.repeat_interval, milliseconds(4 * 3'600'000));
  EXPECT_TRUE(a.routes.empty());
  EXPECT_EQ(a.default_receiver, "log");
  ASSERT_EQ(a.receivers.size(), 1u);
  EXPECT_EQ(a.receivers[0].name, "log");
  EXPECT_EQ(a.receivers[0].kind, Kind::kLog);
  EXPECT_EQ(a.delivery.timeout, milliseconds(10'000));
  EXPECT_EQ(a.delivery.initial_backoff, milliseconds(1'000));
  EXPECT_EQ(a.delivery.max_backoff, milliseconds(300'000));
  EXPECT_EQ(a.delivery.max_age, milliseconds(86'400'000));
  EXPECT_EQ(a.delivery.log_retention, milliseconds(7LL * 86'400'000));
  EXPECT_TRUE(config.links.trace_url.empty());
  EXPECT_EQ(a.cause_coverage_percent, 80u);
  EXPECT_EQ(a.max_causes, 5u);
  EXPECT_TRUE(config.web.api_token.empty());
}

TEST(AlertingConfigTest, CauseAttributionAndApiToken) {
  TempDir dir;
  const std::string token_file = dir.Write("token", "t0ken-1\n");
  Config config = ParsedOrDie(Lines({
      "alerting: {cause_coverage_percent: 95, max_causes: 2}",
      "web: {api_token_file: " + token_file + "}",
  }));
  EXPECT_EQ(config.alerting.cause_coverage_percent, 95u);
  EXPECT_EQ(config.alerting.max_causes, 2u);
  EXPECT_EQ(config.web.api_token, "t0ken-1");
  EXPECT_EQ(ParsedOrDie("web: {api_token: abc}\n").web.api_token, "abc");
  EXPECT_EQ(ErrorOf("alerting: {cause_coverage_percent: 0}\n"),
            "t.yaml:1:36: alerting.cause_coverage_percent must be an integer between 1 and 100, "
            "got \"0\"");
  EXPECT_EQ(ErrorOf("alerting: {max_causes: 21}\n"),
            "t.yaml:1:24: alerting.max_causes must be an integer between 1 and 20, got \"21\"");
  EXPECT_THAT(ErrorOf("web: {api_token: a, api_token_file: /x}\n"),
              HasSubstr("set either api_token or api_token_file, not both"));
  EXPECT_THAT(ErrorOf("web: {api_token: \"a b\"}\n"), HasSubstr("printable ASCII without spaces"));
  EXPECT_THAT(ErrorOf("web: {api_token_file: /nonexistent/token}\n"), HasSubstr("api_token_file"));
}

TEST(AlertingConfigTest, EveryKeyIsRead) {
  TempDir dir;
  const std::string slack_file = dir.Write("slack", "https://hooks.slack.com/services/T/B/x\n");
  const std::string key_file = dir.Write("pd", "0123456789abcdef0123456789abcdef\r\n");
  const std::string secret_file = dir.Write("hmac", "whsec_c2VjcmV0\n");
  const std::string ca_file = dir.Write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
  ScopedEnv token("TRACESLO_TEST_TOKEN", "Bearer abc");
  Config config = ParsedOrDie(Lines({
      "alerting:",
      "  group_by: [service]",
      "  group_wait: 0s",
      "  group_wait_start: firing",
      "  group_interval: 1s",
      "  repeat_interval: 2m",
      "  routes:",
      "    - {match: {severity: page, service: checkout}, receiver: oncall, continue: true}",
      "    - {match: {severity: ticket}, receiver: chat}",
      "  default_receiver: am",
      "  receivers:",
      "    - name: oncall",
      "      webhook:",
      "        url: https://hooks.example.com/traceslo?x=1",
      "        hmac_secret_file: " + secret_file,
      "        headers: {Authorization: \"${TRACESLO_TEST_TOKEN}\", X-Team: sre}",
      "        ca_file: " + ca_file,
      "    - {name: chat, slack: {url_file: " + slack_file + "}}",
      "    - {name: pd, pagerduty: {routing_key_file: " + key_file + "}}",
      "    - {name: pd-eu, pagerduty: {routing_key: abc, url: \"http://127.0.0.1:9/v2\"}}",
      "    - {name: am, alertmanager: {url: \"http://[::1]:9093\"}}",
      "    - {name: audit, log: {}}",
      "  delivery: {timeout: 2s, initial_backoff: 100ms, max_backoff: 1m, max_age: 1h,"
      " log_retention: 2d}",
      "links:",
      "  trace_url: \"https://grafana.example.com/explore?traceId={trace_id}\"",
  }));
  const AlertingConfig& a = config.alerting;
  EXPECT_EQ(a.group_by, std::vector<std::string>{"service"});
  EXPECT_EQ(a.group_wait, milliseconds(0));
  EXPECT_EQ(a.group_wait_start, "firing");
  EXPECT_EQ(a.group_interval, milliseconds(1'000));
  EXPECT_EQ(a.repeat_interval, milliseconds(120'000));
  ASSERT_EQ(a.routes.size(), 2u);
  EXPECT_EQ(a.routes[0].match,
            (std::map<std::string, std::string>{{"service", "checkout"}, {"severity", "page"}}));
  EXPECT_EQ(a.routes[0].receiver, "oncall");
  EXPECT_TRUE(a.routes[0].continue_matching);
  EXPECT_EQ(a.routes[1].receiver, "chat");
  EXPECT_FALSE(a.routes[1].continue_matching);
  EXPECT_EQ(a.default_receiver, "am");
  // The five written and the implicit "log".
  ASSERT_EQ(a.receivers.size(), 7u);
  const ReceiverConfig* oncall = a.FindReceiver("oncall");
  ASSERT_NE(oncall, nullptr);
  EXPECT_EQ(oncall->kind, Kind::kWebhook);
  EXPECT_EQ(oncall->url, "https://hooks.example.com/traceslo?x=1");
  EXPECT_EQ(oncall->hmac_secret, "whsec_c2VjcmV0");  // the file's newline trimmed
  EXPECT_EQ(oncall->headers, (std::vector<std::pair<std::string, std::string>>{
                                 {"Authorization", "Bearer abc"}, {"X-Team", "sre"}}));
  EXPECT_EQ(oncall->ca_file, ca_file);
  const ReceiverConfig* chat = a.FindReceiver("chat");
  ASSERT_NE(chat, nullptr);
  EXPECT_EQ(chat->kind, Kind::kSlack);
  EXPECT_EQ(chat->url, "https://hooks.slack.com/services/T/B/x");
  const ReceiverConfig* pd = a.FindReceiver("pd");
  ASSERT_NE(pd, nullptr);
  EXPECT_EQ(pd->kind, Kind::kPagerDuty);
  EXPECT_EQ(pd->routing_key, "0123456789abcdef0123456789abcdef");  // "\r\n" trimmed
  EXPECT_EQ(pd->url, "https://events.pagerduty.com/v2/enqueue");
  EXPECT_EQ(a.FindReceiver("pd-eu")->url, "http://127.0.0.1:9/v2");
  EXPECT_EQ(a.FindReceiver("am")->kind, Kind::kAlertmanager);
  EXPECT_EQ(a.FindReceiver("am")->url, "http://[::1]:9093");
  EXPECT_EQ(a.FindReceiver("audit")->kind, Kind::kLog);
  EXPECT_EQ(a.FindReceiver("log")->kind, Kind::kLog);
  EXPECT_EQ(a.delivery.timeout, milliseconds(2'000));
  EXPECT_EQ(a.delivery.initial_backoff, milliseconds(100));
  EXPECT_EQ(a.delivery.max_backoff, milliseconds(60'000));
  EXPECT_EQ(a.delivery.max_age, milliseconds(3'600'000));
  EXPECT_EQ(a.delivery.log_retention, milliseconds(2 * 86'400'000));
  EXPECT_EQ(config.links.trace_url, "https://grafana.example.com/explore?traceId={trace_id}");
}

TEST(AlertingConfigTest, AReceiverNamedLogReplacesTheImplicitOne) {
  Config config = ParsedOrDie(Lines({
      "alerting:",
      "  receivers: [{name: log, webhook: {url: \"http://127.0.0.1:1/\"}}]",
  }));
  ASSERT_EQ(config.alerting.receivers.size(), 1u);
  EXPECT_EQ(config.alerting.receivers[0].kind, Kind::kWebhook);
}

TEST(AlertingConfigTest, EnvironmentVariablesExpandInSecrets) {
  ScopedEnv url("TRACESLO_TEST_SLACK_URL", "https://hooks.slack.com/services/abc");
  Config config = ParsedOrDie(Lines({
      "alerting:",
      "  receivers: [{name: chat, slack: {url: \"${TRACESLO_TEST_SLACK_URL}\"}}]",
  }));
  EXPECT_EQ(config.alerting.FindReceiver("chat")->url, "https://hooks.slack.com/services/abc");
  // An unset variable names the variable, with the key's location.
  EXPECT_EQ(ErrorOf(Lines({
                "alerting:",
                "  receivers: [{name: chat, slack: {url: \"${TRACESLO_TEST_UNSET_URL}\"}}]",
            })),
            "t.yaml:2:41: alerting.receivers[0].slack.url: environment variable "
            "TRACESLO_TEST_UNSET_URL is not set (use ${TRACESLO_TEST_UNSET_URL:-default} to give a "
            "default)");
}

TEST(AlertingConfigTest, ReceiverErrorsHaveLocations) {
  // Line 3 is "    - {name: oncall, webhook: {url: ...}}"; the second name is on line 4.
  EXPECT_EQ(ErrorOf(Lines({
                "alerting:",
                "  receivers:",
                "    - {name: oncall, log: {}}",
                "    - {name: oncall, slack: {url: \"https://hooks.slack.com/x\"}}",
            })),
            "t.yaml:4:14: alerting.receivers[1].name: duplicate receiver \"oncall\" (first named "
            "at 3:14)");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  receivers: [{name: a, webhok: {}}]"})),
            "t.yaml:2:25: unknown key 'webhok' in alerting.receivers[0]; did you mean 'webhook'?");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  receivers: [{log: {}}]"})),
            "t.yaml:2:15: alerting.receivers[0] needs a name");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  receivers: [{name: a}]"})),
            "t.yaml:2:15: alerting.receivers[0] (\"a\") needs one of webhook, slack, pagerduty, "
            "alertmanager, log");
  EXPECT_EQ(ErrorOf(Lines(
                {"alerting:", "  receivers: [{name: a, log: {}, slack: {url: \"http://x/\"}}]"})),
            "t.yaml:2:41: alerting.receivers[0]: a receiver has one kind, found log and slack "
            "(write a receiver for each)");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  receivers: [{name: \"on call\", log: {}}]"})),
            "t.yaml:2:22: alerting.receivers[0].name must be 1 to 64 letters, digits, '_', '.' or "
            "'-', got \"on call\"");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  receivers: [{name: a, log: {level: x}}]"})),
            "t.yaml:2:30: alerting.receivers[0].log takes no settings (write log: {})");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  receivers: [{name: a, webhook: {}}]"})),
            "t.yaml:2:34: alerting.receivers[0].webhook needs url or url_file");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  receivers: [{name: a, pagerduty: {}}]"})),
            "t.yaml:2:36: alerting.receivers[0].pagerduty needs routing_key or routing_key_file");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  receivers: [{name: a, slack: {hmac_secret: x}}]"})),
            "t.yaml:2:33: unknown key 'hmac_secret' in alerting.receivers[0].slack (valid keys: "
            "url, url_file, ca_file)");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  receivers: {name: a}"})),
            "t.yaml:2:14: alerting.receivers must be a list of receivers ({name: ..., webhook: "
            "{...}}), got a mapping");
}

TEST(AlertingConfigTest, RoutesMustNameKnownReceivers) {
  EXPECT_EQ(ErrorOf(Lines({
                "alerting:",
                "  routes: [{match: {severity: page}, receiver: oncal}]",
                "  receivers: [{name: oncall, log: {}}]",
            })),
            "t.yaml:2:48: alerting.routes[0].receiver: unknown receiver \"oncal\"; did you mean "
            "\"oncall\"?");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  default_receiver: pager"})),
            "t.yaml:2:21: alerting.default_receiver: unknown receiver \"pager\" (receivers: log)");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  routes: [{match: {severity: page}}]"})),
            "t.yaml:2:12: alerting.routes[0] needs a receiver");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  routes: [{match: {9x: a}, receiver: log}]"})),
            "t.yaml:2:21: alerting.routes[0].match: keys must be label names "
            "([a-zA-Z_][a-zA-Z0-9_]*), got \"9x\"");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  routes: [{receiver: log, continue: maybe}]"})),
            "t.yaml:2:38: alerting.routes[0].continue must be true or false, got \"maybe\"");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  group_by: [service, service]"})),
            "t.yaml:2:23: alerting.group_by[1]: duplicate label service (first listed at 2:14)");
  EXPECT_EQ(ErrorOf(Lines({"alerting:", "  group_by: [a-b]"})),
            "t.yaml:2:14: alerting.group_by[0] must be a label name ([a-zA-Z_][a-zA-Z0-9_]*), got "
            "\"a-b\"");
}

TEST(AlertingConfigTest, GroupWaitStartIsWarmingOrFiring) {
  EXPECT_EQ(ErrorOf("alerting: {group_wait_start: pending}\n"),
            "t.yaml:1:30: alerting.group_wait_start must be one of warming, firing, got "
            "\"pending\"");
}

TEST(AlertingConfigTest, DurationsHaveBounds) {
  EXPECT_EQ(ErrorOf("alerting: {group_interval: 500ms}\n"),
            "t.yaml:1:28: alerting.group_interval must be between 1s and 1d, got \"500ms\"");
  EXPECT_EQ(ErrorOf("alerting: {delivery: {timeout: 50ms}}\n"),
            "t.yaml:1:32: alerting.delivery.timeout must be between 100ms and 5m, got \"50ms\"");
  EXPECT_EQ(ErrorOf("alerting: {delivery: {initial_backoff: 10s, max_backoff: 5s}}\n"),
            "t.yaml:1:58: alerting.delivery.max_backoff (5s) must be at least "
            "alerting.delivery.initial_backoff (10s)");
  EXPECT_EQ(ErrorOf("alerting: {delivery: {initial_backoff: 10m}}\n"),
            "t.yaml:1:40: alerting.delivery.max_backoff (5m, the default) must be at least "
            "alerting.delivery.initial_backoff (10m)");
}

TEST(AlertingConfigTest, SecretsAreNeverInErrors) {
  ScopedEnv secret("TRACESLO_TEST_SECRET", std::string(kSecret).c_str());
  TempDir dir;
  const std::string empty_file = dir.Write("empty", "\n");
  const std::string url_file = dir.Write("url", "ftp://" + std::string(kSecret) + "\n");
  struct Case {
    std::string yaml;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"alerting: {receivers: [{name: a, webhook: {url: \"gopher://" + std::string(kSecret) +
           "\"}}]}",
       "t.yaml:1:49: alerting.receivers[0].webhook.url: the URL must start with http:// or "
       "https:// (the value is not shown: receiver URLs are secrets)"},
      {"alerting: {receivers: [{name: a, slack: {url: \"https://" + std::string(kSecret) +
           ":pw@hooks.slack.com/\"}}]}",
       "t.yaml:1:47: alerting.receivers[0].slack.url: the URL must not contain user:password@ "
       "(put credentials in a header) (the value is not shown: receiver URLs are secrets)"},
      {"alerting: {receivers: [{name: a, webhook: {url: \"http://h/${TRACESLO_TEST_SECRET} x\"}}]}",
       "t.yaml:1:49: alerting.receivers[0].webhook.url: the URL must not contain spaces or "
       "control characters (the value is not shown: receiver URLs are secrets)"},
      {"alerting: {receivers: [{name: a, slack: {url_file: " + url_file + "}}]}",
       "t.yaml:1:52: alerting.receivers[0].slack.url_file: the URL must start with http:// or "
       "https:// (the value is not shown: receiver URLs are secrets)"},
      {"alerting: {receivers: [{name: a, pagerduty: {routing_key: \"" + std::string(kSecret) +
           " x\"}}]}",
       "t.yaml:1:59: alerting.receivers[0].pagerduty.routing_key must be non-empty, without "
       "spaces or control characters"},
      {"alerting: {receivers: [{name: a, webhook: {url: \"http://h/\", headers: {X-Key: \"" +
           std::string(kSecret) + "\\n\"}}}]}",
       "t.yaml:1:79: alerting.receivers[0].webhook.headers.X-Key must not contain control "
       "characters"},
      {"alerting: {receivers: [{name: a, webhook: {url: \"http://h/\", hmac_secret: \"whsec_" +
           std::string(kSecret) + "!\"}}]}",
       "t.yaml:1:75: alerting.receivers[0].webhook.hmac_secret starts with \"whsec_\" but the rest "
       "is not base64 (Standard Webhooks keys are whsec_<base64>)"},
      {"alerting: {receivers: [{name: a, webhook: {url: \"http://h/\", url_file: " + url_file +
           "}}]}",
       "t.yaml:1:72: alerting.receivers[0].webhook: set either url or url_file, not both"},
      {"alerting: {receivers: [{name: a, webhook: {url_file: " + empty_file + "}}]}",
       "t.yaml:1:54: alerting.receivers[0].webhook.url_file: \"" + empty_file + "\" is empty"},
  };
  for (const Case& c : cases) {
    const std::string message = ErrorOf(c.yaml);
    EXPECT_EQ(message, c.message) << c.yaml;
    EXPECT_THAT(message, Not(HasSubstr(std::string(kSecret))));
  }
}

TEST(AlertingConfigTest, HeadersTrafficSetsItselfAreRefused) {
  EXPECT_EQ(ErrorOf("alerting: {receivers: [{name: a, webhook: {url: \"http://h/\", headers: "
                    "{Webhook-Signature: x}}}]}"),
            "t.yaml:1:72: alerting.receivers[0].webhook.headers.Webhook-Signature is set by "
            "traceslo and cannot be configured");
  EXPECT_EQ(ErrorOf("alerting: {receivers: [{name: a, webhook: {url: \"http://h/\", headers: "
                    "{X-A: x, x-a: y}}}]}"),
            "t.yaml:1:80: alerting.receivers[0].webhook.headers.x-a is set twice (header names "
            "ignore case)");
  EXPECT_EQ(ErrorOf("alerting: {receivers: [{name: a, webhook: {url: \"http://h/\", headers: "
                    "{\"a b\": x}}}]}"),
            "t.yaml:1:72: alerting.receivers[0].webhook.headers: \"a b\" is not a valid header "
            "name");
}

TEST(AlertingConfigTest, SecretFilesMustBeReadable) {
  EXPECT_EQ(ErrorOf("alerting: {receivers: [{name: a, pagerduty: {routing_key_file: "
                    "/nonexistent/traceslo/key}}]}"),
            "t.yaml:1:64: alerting.receivers[0].pagerduty.routing_key_file: cannot read "
            "\"/nonexistent/traceslo/key\": No such file or directory");
  EXPECT_EQ(ErrorOf("alerting: {receivers: [{name: a, webhook: {url: \"https://h/\", ca_file: "
                    "/nonexistent/ca.pem}}]}"),
            "t.yaml:1:72: alerting.receivers[0].webhook.ca_file: cannot read "
            "\"/nonexistent/ca.pem\": No such file or directory");
}

TEST(AlertingConfigTest, TraceUrlNeedsThePlaceholder) {
  EXPECT_EQ(ErrorOf("links: {trace_url: \"http://jaeger:16686/trace/\"}\n"),
            "t.yaml:1:20: links.trace_url must contain {trace_id} where the trace id goes, e.g. "
            "\"http://jaeger:16686/trace/{trace_id}\"");
  EXPECT_EQ(ErrorOf("links: {trace_url: \"jaeger/{trace_id}\"}\n"),
            "t.yaml:1:20: links.trace_url: the URL must start with http:// or https://");
  EXPECT_EQ(ErrorOf("links: {trace_uri: x}\n"),
            "t.yaml:1:9: unknown key 'trace_uri' in links; did you mean 'trace_url'?");
  EXPECT_TRUE(ParsedOrDie("links: {trace_url: \"\"}\n").links.trace_url.empty());
}

}  // namespace
}  // namespace traceslo::config
