// Payloads field by field against JSON written by hand from each receiver's documentation.
#include "services/alerting/payloads.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>
#include <vector>

#include "tests/unit/alerting/alerting_test_util.h"
#include "traceslo/alerting/notification_codec.h"

namespace traceslo::alerting {
namespace {

using testing_util::Json;
using testing_util::ResolvedSample;
using testing_util::SampleNotification;

constexpr std::string_view kTraceUrl = "http://jaeger:16686/trace/{trace_id}";

// The keys of a JSON object in the order they were written.
std::vector<std::string> KeysInOrder(std::string_view text) {
  std::vector<std::string> keys;
  const boost::json::value parsed = Json(text);
  for (const auto& [key, value] : parsed.as_object()) keys.emplace_back(key);
  return keys;
}

TEST(FormatTimeTest, WritesTimesAsGoRfc3339Nano) {
  EXPECT_EQ(FormatTime(0), "0001-01-01T00:00:00Z");
  EXPECT_EQ(FormatTime(1'700'000'000'000'000'000), "2023-11-14T22:13:20Z");
  EXPECT_EQ(FormatTime(1'700'000'000'250'000'000), "2023-11-14T22:13:20.25Z");
  EXPECT_EQ(FormatTime(1'700'000'000'000'000'001), "2023-11-14T22:13:20.000000001Z");
}

TEST(FingerprintTest, MatchesPrometheusFnv) {
  // Computed independently (Python, FNV-1a 64 over sorted name/value with 0xff separators).
  EXPECT_EQ(Fingerprint({}), "cbf29ce484222325");
  Notification n = SampleNotification();
  EXPECT_EQ(Fingerprint(n.alerts[0].labels), "7d156c887b2dee6d");
  EXPECT_EQ(Fingerprint(n.alerts[1].labels), "7d2fa975f0fdc7e5");
}

TEST(NotificationIdTest, IsStableAndDistinct) {
  EXPECT_EQ(NotificationId("i1", "oncall", "{}:{a=\"b\"}", 1),
            NotificationId("i1", "oncall", "{}:{a=\"b\"}", 1));
  EXPECT_NE(NotificationId("i1", "oncall", "{}:{a=\"b\"}", 1),
            NotificationId("i1", "oncall", "{}:{a=\"b\"}", 2));
  EXPECT_NE(NotificationId("i1", "oncall", "{}:{a=\"b\"}", 1),
            NotificationId("i1", "chat", "{}:{a=\"b\"}", 1));
  EXPECT_NE(NotificationId("i1", "oncall", "{}:{a=\"b\"}", 1),
            NotificationId("i2", "oncall", "{}:{a=\"b\"}", 1));
  EXPECT_EQ(NotificationId("w", "x", "y", 0).size(), 32u);
}

TEST(WebhookPayloadTest, IsAlertmanagerVersion4PlusTraceslo) {
  const std::string payload = WebhookPayload(SampleNotification(), kTraceUrl);
  EXPECT_EQ(Json(payload), Json(R"json({
    "receiver": "oncall",
    "status": "firing",
    "alerts": [
      {
        "status": "firing",
        "labels": {"alertname": "SloBurnRate", "service": "checkout", "severity": "page",
                   "signature": "3f2a9c0d1e2b4a5f", "slo": "availability"},
        "annotations": {"runbook_url": "https://runbooks.example/checkout",
                        "summary": "checkout is burning its error budget"},
        "startsAt": "2023-11-14T22:13:20.25Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://traceslo.example:8080/alerts",
        "fingerprint": "7d156c887b2dee6d"
      },
      {
        "status": "firing",
        "labels": {"alertname": "SloBurnRate", "service": "checkout", "severity": "page",
                   "signature": "3f2a9c0d1e2b4a5f", "slo": "error-traces"},
        "annotations": {"summary": "checkout is burning its error budget"},
        "startsAt": "2023-11-14T22:13:21Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://traceslo.example:8080/alerts",
        "fingerprint": "7d2fa975f0fdc7e5"
      }
    ],
    "groupLabels": {"service": "checkout", "signature": "3f2a9c0d1e2b4a5f"},
    "commonLabels": {"alertname": "SloBurnRate", "service": "checkout", "severity": "page",
                     "signature": "3f2a9c0d1e2b4a5f"},
    "commonAnnotations": {"summary": "checkout is burning its error budget"},
    "externalURL": "http://traceslo.example:8080/",
    "version": "4",
    "groupKey": "{}:{service=\"checkout\",signature=\"3f2a9c0d1e2b4a5f\"}",
    "truncatedAlerts": 0,
    "traceslo": {
      "notificationId": "n-0001",
      "sequence": 3,
      "causes": [
        {
          "kind": "signature",
          "signature": "3f2a9c0d1e2b4a5f",
          "title": "PaymentDeclined: card declined for order <n>",
          "count": 120,
          "share": 0.8,
          "sampleMessage": "card declined for order 8812",
          "exemplars": [
            {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
             "url": "http://traceslo.example:8080/traces/4bf92f3577b34da6a3ce929d0e0e4736",
             "externalUrl": "http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736"},
            {"traceId": "00f067aa0ba902b7a3ce929d0e0e4736",
             "url": "http://traceslo.example:8080/traces/00f067aa0ba902b7a3ce929d0e0e4736",
             "externalUrl": "http://jaeger:16686/trace/00f067aa0ba902b7a3ce929d0e0e4736"}
          ]
        },
        {
          "kind": "propagation_break",
          "service": "inventory",
          "title": "inventory drops traceparent",
          "count": 7,
          "share": 0.05,
          "sampleMessage": "",
          "exemplars": []
        }
      ]
    }
  })json"));
  // Alertmanager's field order, so a receiver that compares text sees what it knows.
  EXPECT_EQ(KeysInOrder(payload),
            (std::vector<std::string>{"receiver", "status", "alerts", "groupLabels", "commonLabels",
                                      "commonAnnotations", "externalURL", "version", "groupKey",
                                      "truncatedAlerts", "traceslo"}));
  // Numbers as people write them.
  EXPECT_THAT(payload, ::testing::HasSubstr("\"share\":0.8,"));
}

TEST(WebhookPayloadTest, ResolvedAlertsCarryTheirEndAndNoExternalLinkWithoutATemplate) {
  const boost::json::value payload = Json(WebhookPayload(ResolvedSample(), ""));
  EXPECT_EQ(payload.at("status"), "resolved");
  for (const boost::json::value& alert : payload.at("alerts").as_array()) {
    EXPECT_EQ(alert.at("status"), "resolved");
    EXPECT_EQ(alert.at("endsAt"), "2023-11-14T22:23:20Z");
  }
  EXPECT_EQ(payload.at("traceslo").at("sequence"), 4);
  const boost::json::value& exemplar =
      payload.at("traceslo").at("causes").at(0).at("exemplars").at(0);
  EXPECT_EQ(exemplar, Json(R"json({"traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
      "url": "http://traceslo.example:8080/traces/4bf92f3577b34da6a3ce929d0e0e4736"})json"));
}

TEST(SlackPayloadTest, BlocksNameTheSignatureAndLinkTheTraces) {
  EXPECT_EQ(Json(SlackPayload(SampleNotification(), kTraceUrl)), Json(R"json({
    "text": "[FIRING:2] checkout is burning its error budget",
    "blocks": [
      {"type": "header",
       "text": {"type": "plain_text", "text": "[FIRING:2] checkout is burning its error budget"}},
      {"type": "section",
       "text": {"type": "mrkdwn", "text": "*service* checkout  *severity* page"}},
      {"type": "section",
       "text": {"type": "mrkdwn",
                "text": "*Signature* `3f2a9c0d1e2b4a5f`  PaymentDeclined: card declined for order &lt;n&gt;\n80% of bad events (120)\n>card declined for order 8812\nTraces: <http://traceslo.example:8080/traces/4bf92f3577b34da6a3ce929d0e0e4736|4bf92f3577b3\u2026> (<http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736|external>)  <http://traceslo.example:8080/traces/00f067aa0ba902b7a3ce929d0e0e4736|00f067aa0ba9\u2026> (<http://jaeger:16686/trace/00f067aa0ba902b7a3ce929d0e0e4736|external>)"}},
      {"type": "section",
       "text": {"type": "mrkdwn",
                "text": "*Propagation break* `inventory`  inventory drops traceparent\n5% of bad events (7)"}},
      {"type": "context",
       "elements": [{"type": "mrkdwn",
                     "text": "<http://traceslo.example:8080/alerts|traceslo>  notification n-0001"}]}
    ]
  })json"));
}

TEST(SlackPayloadTest, LongTitlesAreCutForTheHeaderBlock) {
  Notification n = SampleNotification();
  n.common_annotations["summary"] = std::string(400, 'x');
  const boost::json::value payload = Json(SlackPayload(n, ""));
  const std::string header(payload.at("blocks").at(0).at("text").at("text").as_string());
  EXPECT_LE(header.size(), 150u);
  EXPECT_TRUE(header.ends_with("\u2026"));
  EXPECT_GT(payload.at("text").as_string().size(), 400u);  // the fallback keeps it all
}

TEST(PagerDutyPayloadTest, TriggerIsAnEventsV2Event) {
  EXPECT_EQ(Json(PagerDutyPayload(SampleNotification(), "R0UT1NGKEY", kTraceUrl)), Json(R"json({
    "routing_key": "R0UT1NGKEY",
    "event_action": "trigger",
    "dedup_key": "c47877fcb97a239179382a3979b1faed85ff6f573bb2ea296b5ebef6d5048e4b",
    "payload": {
      "summary": "[FIRING:2] checkout is burning its error budget \u2014 PaymentDeclined: card declined for order <n>",
      "source": "checkout",
      "severity": "critical",
      "timestamp": "2023-11-14T22:13:20.25Z",
      "class": "3f2a9c0d1e2b4a5f",
      "custom_details": {
        "group_key": "{}:{service=\"checkout\",signature=\"3f2a9c0d1e2b4a5f\"}",
        "notification_id": "n-0001",
        "sequence": 3,
        "common_labels": {"alertname": "SloBurnRate", "service": "checkout", "severity": "page",
                          "signature": "3f2a9c0d1e2b4a5f"},
        "common_annotations": {"summary": "checkout is burning its error budget"},
        "alerts": [
          {"status": "firing",
           "labels": {"alertname": "SloBurnRate", "service": "checkout", "severity": "page",
                      "signature": "3f2a9c0d1e2b4a5f", "slo": "availability"},
           "starts_at": "2023-11-14T22:13:20.25Z"},
          {"status": "firing",
           "labels": {"alertname": "SloBurnRate", "service": "checkout", "severity": "page",
                      "signature": "3f2a9c0d1e2b4a5f", "slo": "error-traces"},
           "starts_at": "2023-11-14T22:13:21Z"}
        ],
        "causes": [
          {"kind": "signature", "signature": "3f2a9c0d1e2b4a5f",
           "title": "PaymentDeclined: card declined for order <n>", "count": 120, "share": 0.8,
           "sample_message": "card declined for order 8812"},
          {"kind": "propagation_break", "service": "inventory",
           "title": "inventory drops traceparent", "count": 7, "share": 0.05,
           "sample_message": ""}
        ]
      }
    },
    "client": "traceslo",
    "client_url": "http://traceslo.example:8080/alerts",
    "links": [
      {"href": "http://traceslo.example:8080/traces/4bf92f3577b34da6a3ce929d0e0e4736",
       "text": "Trace 4bf92f3577b3\u2026 (traceslo)"},
      {"href": "http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736",
       "text": "Trace 4bf92f3577b3\u2026"},
      {"href": "http://traceslo.example:8080/traces/00f067aa0ba902b7a3ce929d0e0e4736",
       "text": "Trace 00f067aa0ba9\u2026 (traceslo)"},
      {"href": "http://jaeger:16686/trace/00f067aa0ba902b7a3ce929d0e0e4736",
       "text": "Trace 00f067aa0ba9\u2026"}
    ]
  })json"));
}

TEST(PagerDutyPayloadTest, ResolveCarriesOnlyTheKeys) {
  EXPECT_EQ(Json(PagerDutyPayload(ResolvedSample(), "R0UT1NGKEY", kTraceUrl)), Json(R"json({
    "routing_key": "R0UT1NGKEY",
    "event_action": "resolve",
    "dedup_key": "c47877fcb97a239179382a3979b1faed85ff6f573bb2ea296b5ebef6d5048e4b"
  })json"));
}

TEST(PagerDutyPayloadTest, TicketsAreWarnings) {
  Notification n = SampleNotification();
  for (Alert& a : n.alerts) a.labels["severity"] = "ticket";
  EXPECT_EQ(Json(PagerDutyPayload(n, "k", "")).at("payload").at("severity"), "warning");
}

TEST(AlertmanagerPayloadTest, IsAListOfPostableAlerts) {
  EXPECT_EQ(Json(AlertmanagerPayload(SampleNotification(), kTraceUrl)), Json(R"json([
    {
      "labels": {"alertname": "SloBurnRate", "service": "checkout", "severity": "page",
                 "signature": "3f2a9c0d1e2b4a5f", "slo": "availability"},
      "annotations": {
        "runbook_url": "https://runbooks.example/checkout",
        "summary": "checkout is burning its error budget",
        "traceslo_cause": "PaymentDeclined: card declined for order <n>",
        "traceslo_trace_url": "http://traceslo.example:8080/traces/4bf92f3577b34da6a3ce929d0e0e4736",
        "traceslo_trace_external_url": "http://jaeger:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736"
      },
      "startsAt": "2023-11-14T22:13:20.25Z",
      "generatorURL": "http://traceslo.example:8080/alerts"
    },
    {
      "labels": {"alertname": "SloBurnRate", "service": "checkout", "severity": "page",
                 "signature": "3f2a9c0d1e2b4a5f", "slo": "error-traces"},
      "annotations": {
        "summary": "checkout is burning its error budget",
        "traceslo_cause": "PaymentDeclined: card declined for order <n>",
        "traceslo_trace_url": "http://traceslo.example:8080/traces/5b8efff798038103d269b633813fc60c",
        "traceslo_trace_external_url": "http://jaeger:16686/trace/5b8efff798038103d269b633813fc60c"
      },
      "startsAt": "2023-11-14T22:13:21Z",
      "generatorURL": "http://traceslo.example:8080/alerts"
    }
  ])json"));
}

TEST(AlertmanagerPayloadTest, ResolvedAlertsCarryEndsAt) {
  const boost::json::value payload = Json(AlertmanagerPayload(ResolvedSample(), ""));
  for (const boost::json::value& alert : payload.as_array()) {
    EXPECT_EQ(alert.at("endsAt"), "2023-11-14T22:23:20Z");
    EXPECT_EQ(alert.at("annotations").as_object().count("traceslo_trace_external_url"), 0u);
  }
}

// HMAC-SHA256 and base64 with OpenSSL directly, apart from the code under test.
std::string ExpectedSignature(const std::string& key, const std::string& content) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &size);
  unsigned char b64[128];
  const int n = EVP_EncodeBlock(b64, mac, static_cast<int>(size));
  return "v1," + std::string(reinterpret_cast<char*>(b64), static_cast<size_t>(n));
}

TEST(StandardWebhookSignatureTest, MatchesTheSpecificationsTestVector) {
  // The Standard Webhooks reference libraries' test vector.
  EXPECT_EQ(StandardWebhookSignature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                     "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                                     R"({"test": 2432232314})"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  // A secret without the prefix is used as it is.
  EXPECT_EQ(StandardWebhookSignature("plain secret", "n-1", 1700000000, "{}"),
            ExpectedSignature("plain secret", "n-1.1700000000.{}"));
}

TEST(NotificationCodecTest, RoundTripsEveryField) {
  Notification n = SampleNotification();
  n.alerts[0].generator_url = "http://traceslo.example:8080/slos/checkout/availability";
  n.alerts[1].causes[1].kind = Cause::Kind::kSlowOperation;
  const std::string encoded = EncodeNotification(n);
  absl::StatusOr<Notification> decoded = DecodeNotification(encoded);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(EncodeNotification(*decoded), encoded);
  EXPECT_EQ(decoded->alerts[1].causes[1].kind, Cause::Kind::kSlowOperation);
  EXPECT_EQ(decoded->alerts[0].causes[0].trace_ids.size(), 2u);
  EXPECT_EQ(decoded->sequence, 3u);

  for (std::string_view bad : {"", "[]", "{\"id\": 1}", "{\"id\": \"x\"}"}) {
    absl::StatusOr<Notification> result = DecodeNotification(bad);
    ASSERT_FALSE(result.ok()) << bad;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  }
}

}  // namespace
}  // namespace traceslo::alerting
