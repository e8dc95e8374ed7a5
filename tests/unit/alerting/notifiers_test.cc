// Each notifier against a real HTTP server on 127.0.0.1: requests, signatures, result mapping.
#include "traceslo/alerting/notifiers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>

#include "services/alerting/http_notifier.h"
#include "services/alerting/payloads.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_http_server.h"
#include "tests/unit/alerting/alerting_test_util.h"

namespace traceslo::alerting {
namespace {

using config::ReceiverConfig;
using fakes::FakeHttpServer;
using fakes::ScriptedResponse;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::CapturedLog;
using testing_util::Json;
using testing_util::ResolvedSample;
using testing_util::SampleNotification;
using Outcome = DeliveryResult::Outcome;
using std::chrono::milliseconds;

constexpr std::string_view kTraceUrl = "http://jaeger:16686/trace/{trace_id}";
// base64 of "0123456789abcdef0123456789abcdef"
constexpr std::string_view kWebhookSecret = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

class NotifierTest : public ::testing::Test {
 protected:
  std::unique_ptr<Notifier> Make(const ReceiverConfig& receiver,
                                 milliseconds timeout = milliseconds(5'000)) {
    absl::StatusOr<std::unique_ptr<Notifier>> notifier = CreateNotifier(
        receiver, NotifierOptions{.timeout = timeout, .trace_url = std::string(kTraceUrl)}, clock_,
        logger_);
    EXPECT_TRUE(notifier.ok()) << notifier.status();
    return notifier.ok() ? std::move(*notifier) : nullptr;
  }

  fakes::FakeClock clock_;  // 2023-11-14T22:13:20Z
  CapturedLog log_;
  Logger logger_{clock_, LogFormat::kLogfmt, LogLevel::kDebug, log_.file()};
};

// Standard Webhooks verification written apart from the code under test: key from whsec_,
// HMAC-SHA256 over id.timestamp.body, base64.
bool VerifyStandardWebhook(std::string_view secret, const fakes::RecordedRequest& request) {
  std::string_view encoded = secret.substr(6);
  unsigned char key[64];
  int key_size = EVP_DecodeBlock(key, reinterpret_cast<const unsigned char*>(encoded.data()),
                                 static_cast<int>(encoded.size()));
  for (size_t i = encoded.size(); i > 0 && encoded[i - 1] == '='; --i) --key_size;
  const std::string content =
      request.Header("webhook-id") + "." + request.Header("webhook-timestamp") + "." + request.body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), key, key_size, reinterpret_cast<const unsigned char*>(content.data()),
       content.size(), mac, &mac_size);
  unsigned char b64[128];
  const int n = EVP_EncodeBlock(b64, mac, static_cast<int>(mac_size));
  return request.Header("webhook-signature") ==
         "v1," + std::string(reinterpret_cast<char*>(b64), static_cast<size_t>(n));
}

TEST_F(NotifierTest, WebhookPostsThePayloadSignedWithAStableId) {
  FakeHttpServer server;
  auto notifier = Make(ReceiverConfig{.name = "oncall",
                                      .kind = ReceiverConfig::Kind::kWebhook,
                                      .url = server.Url("/hooks/traceslo?team=sre"),
                                      .hmac_secret = std::string(kWebhookSecret),
                                      .headers = {{"Authorization", "Bearer t0k3n"}}});
  ASSERT_NE(notifier, nullptr);
  EXPECT_EQ(notifier->receiver(), "oncall");
  const Notification n = SampleNotification();
  DeliveryResult result = notifier->Deliver(n);
  EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
  EXPECT_EQ(result.http_status, 200);
  clock_.Advance(std::chrono::seconds(90));
  result = notifier->Deliver(n);  // a second attempt of the same notification
  EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;

  const std::vector<fakes::RecordedRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  for (const fakes::RecordedRequest& r : requests) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, "/hooks/traceslo?team=sre");
    EXPECT_EQ(r.Header("content-type"), "application/json");
    EXPECT_EQ(r.Header("authorization"), "Bearer t0k3n");
    EXPECT_EQ(r.Header("x-traceslo-notification-id"), "n-0001");
    EXPECT_EQ(r.Header("webhook-id"), "n-0001");
    EXPECT_TRUE(VerifyStandardWebhook(kWebhookSecret, r)) << r.Header("webhook-signature");
    EXPECT_EQ(Json(r.body), Json(WebhookPayload(n, kTraceUrl)));
  }
  // The timestamp is the attempt's (replay protection), the id is the notification's.
  EXPECT_EQ(requests[0].Header("webhook-timestamp"), "1700000000");
  EXPECT_EQ(requests[1].Header("webhook-timestamp"), "1700000090");
  EXPECT_NE(requests[0].Header("webhook-signature"), requests[1].Header("webhook-signature"));
}

TEST_F(NotifierTest, UnsignedWebhookHasNoSignatureHeaders) {
  FakeHttpServer server;
  auto notifier = Make(ReceiverConfig{
      .name = "hook", .kind = ReceiverConfig::Kind::kWebhook, .url = server.Url("/")});
  EXPECT_EQ(notifier->Deliver(SampleNotification()).outcome, Outcome::kDelivered);
  ASSERT_EQ(server.request_count(), 1u);
  const fakes::RecordedRequest r = server.requests()[0];
  EXPECT_EQ(r.Header("webhook-signature"), "");
  EXPECT_EQ(r.Header("webhook-id"), "");
  EXPECT_EQ(r.Header("x-traceslo-notification-id"), "n-0001");
}

TEST_F(NotifierTest, SlackPagerDutyAndAlertmanagerPostTheirPayloads) {
  FakeHttpServer server;
  server.SetDefault(ScriptedResponse{.status = 202, .body = "{\"status\":\"success\"}"});
  const Notification n = SampleNotification();
  auto slack = Make(ReceiverConfig{.name = "chat",
                                   .kind = ReceiverConfig::Kind::kSlack,
                                   .url = server.Url("/services/T0/B0/xyz")});
  auto pagerduty = Make(ReceiverConfig{.name = "pd",
                                       .kind = ReceiverConfig::Kind::kPagerDuty,
                                       .url = server.Url("/v2/enqueue"),
                                       .routing_key = "R0UT1NGKEY"});
  auto alertmanager = Make(ReceiverConfig{
      .name = "am", .kind = ReceiverConfig::Kind::kAlertmanager, .url = server.Url("/am/")});
  EXPECT_EQ(slack->Deliver(n).outcome, Outcome::kDelivered);
  EXPECT_EQ(pagerduty->Deliver(n).outcome, Outcome::kDelivered);
  EXPECT_EQ(pagerduty->Deliver(ResolvedSample()).outcome, Outcome::kDelivered);
  EXPECT_EQ(alertmanager->Deliver(n).outcome, Outcome::kDelivered);
  const std::vector<fakes::RecordedRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[0].target, "/services/T0/B0/xyz");
  EXPECT_EQ(Json(requests[0].body), Json(SlackPayload(n, kTraceUrl)));
  EXPECT_EQ(requests[1].target, "/v2/enqueue");
  EXPECT_EQ(Json(requests[1].body), Json(PagerDutyPayload(n, "R0UT1NGKEY", kTraceUrl)));
  EXPECT_EQ(Json(requests[2].body).at("event_action"), "resolve");
  EXPECT_EQ(requests[3].target, "/am/api/v2/alerts");
  EXPECT_EQ(Json(requests[3].body), Json(AlertmanagerPayload(n, kTraceUrl)));
  for (const fakes::RecordedRequest& r : requests) {
    EXPECT_EQ(r.Header("content-type"), "application/json");
  }
}

TEST_F(NotifierTest, AnswersMapToOutcomes) {
  FakeHttpServer server(FakeHttpServer::Options{.clock = &clock_});
  server.Push(ScriptedResponse{.status = 204});
  server.Push(ScriptedResponse{.status = 503, .headers = {{"Retry-After", "7"}}});
  server.Push(ScriptedResponse{.status = 429,
                               .headers = {{"Retry-After", "Tue, 14 Nov 2023 22:14:00 GMT"}}});
  server.Push(ScriptedResponse{.status = 500});
  server.Push(ScriptedResponse{.status = 408});
  server.Push(ScriptedResponse{.status = 400, .body = "{\"message\":\"Event object is invalid\"}"});
  server.Push(ScriptedResponse{.status = 301, .headers = {{"Location", "http://elsewhere/"}}});
  auto notifier = Make(ReceiverConfig{
      .name = "hook", .kind = ReceiverConfig::Kind::kWebhook, .url = server.Url("/")});
  const Notification n = SampleNotification();

  DeliveryResult r = notifier->Deliver(n);
  EXPECT_EQ(r.outcome, Outcome::kDelivered);
  EXPECT_EQ(r.http_status, 204);

  r = notifier->Deliver(n);
  EXPECT_EQ(r.outcome, Outcome::kRetryable);
  EXPECT_EQ(r.http_status, 503);
  EXPECT_EQ(r.retry_after, milliseconds(7'000));
  EXPECT_EQ(r.error, "HTTP 503");

  r = notifier->Deliver(n);  // an HTTP-date 40 s after the fake clock's now
  EXPECT_EQ(r.outcome, Outcome::kRetryable);
  EXPECT_EQ(r.retry_after, milliseconds(40'000));

  r = notifier->Deliver(n);
  EXPECT_EQ(r.outcome, Outcome::kRetryable);
  EXPECT_EQ(r.retry_after, std::nullopt);

  EXPECT_EQ(notifier->Deliver(n).outcome, Outcome::kRetryable);  // 408

  r = notifier->Deliver(n);
  EXPECT_EQ(r.outcome, Outcome::kPermanent);
  EXPECT_EQ(r.http_status, 400);
  EXPECT_EQ(r.error, "HTTP 400: {\"message\":\"Event object is invalid\"}");

  r = notifier->Deliver(n);
  EXPECT_EQ(r.outcome, Outcome::kPermanent);
  EXPECT_EQ(r.error, "HTTP 301 (redirects are not followed)");
}

TEST_F(NotifierTest, NetworkFailuresAreRetryableAndNeverShowTheUrl) {
  uint16_t port;
  {
    FakeHttpServer closed;
    port = closed.port();
  }
  const std::string secret_path = "/services/T0/B0/s3cr3tP4th";
  auto refused =
      Make(ReceiverConfig{.name = "hook",
                          .kind = ReceiverConfig::Kind::kSlack,
                          .url = "http://127.0.0.1:" + std::to_string(port) + secret_path});
  DeliveryResult r = refused->Deliver(SampleNotification());
  EXPECT_EQ(r.outcome, Outcome::kRetryable);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_THAT(r.error, HasSubstr("cannot connect"));
  EXPECT_THAT(r.error, Not(HasSubstr("s3cr3t")));

  FakeHttpServer hanging;
  hanging.Push(ScriptedResponse{.hang = true});
  auto slow = Make(
      ReceiverConfig{
          .name = "hook", .kind = ReceiverConfig::Kind::kSlack, .url = hanging.Url(secret_path)},
      milliseconds(200));
  r = slow->Deliver(SampleNotification());
  EXPECT_EQ(r.outcome, Outcome::kRetryable);
  EXPECT_EQ(r.error, "no complete answer within 200ms");

  // A receiver that echoes the URL and key in its error page: both are cut out.
  FakeHttpServer echo;
  echo.Push(ScriptedResponse{.status = 404,
                             .body = "no route for POST " + secret_path + " with key R0UT1NGKEY"});
  auto pd = Make(ReceiverConfig{.name = "pd",
                                .kind = ReceiverConfig::Kind::kPagerDuty,
                                .url = echo.Url(secret_path),
                                .routing_key = "R0UT1NGKEY"});
  r = pd->Deliver(SampleNotification());
  EXPECT_EQ(r.outcome, Outcome::kPermanent);
  EXPECT_EQ(r.error, "HTTP 404: no route for POST <secret> with key <secret>");
}

TEST_F(NotifierTest, HttpsWithAPrivateCa) {
  testing_util::ScratchDir dir;
  fakes::TestCertificates certs = fakes::MakeTestCertificates(dir.path());
  ASSERT_FALSE(certs.ca_file.empty()) << "openssl could not make test certificates";
  FakeHttpServer server(
      FakeHttpServer::Options{.cert_file = certs.cert_file, .key_file = certs.key_file});
  auto trusted = Make(ReceiverConfig{.name = "hook",
                                     .kind = ReceiverConfig::Kind::kWebhook,
                                     .url = server.Url("/tls"),
                                     .ca_file = certs.ca_file});
  EXPECT_EQ(trusted->Deliver(SampleNotification()).outcome, Outcome::kDelivered);
  auto untrusted = Make(ReceiverConfig{
      .name = "hook", .kind = ReceiverConfig::Kind::kWebhook, .url = server.Url("/tls")});
  DeliveryResult r = untrusted->Deliver(SampleNotification());
  EXPECT_EQ(r.outcome, Outcome::kRetryable);
  EXPECT_THAT(r.error, HasSubstr("TLS certificate not accepted"));
  EXPECT_EQ(server.request_count(), 1u);

  absl::StatusOr<std::unique_ptr<Notifier>> missing_ca =
      CreateNotifier(ReceiverConfig{.name = "hook",
                                    .kind = ReceiverConfig::Kind::kWebhook,
                                    .url = server.Url("/s3cr3t"),
                                    .ca_file = dir.File("missing.pem")},
                     NotifierOptions{}, clock_, logger_);
  ASSERT_FALSE(missing_ca.ok());
  EXPECT_THAT(missing_ca.status().message(), HasSubstr("receiver \"hook\""));
  EXPECT_THAT(missing_ca.status().message(), Not(HasSubstr("s3cr3t")));
}

TEST_F(NotifierTest, LogWritesOneLogfmtLinePerNotification) {
  auto notifier = Make(ReceiverConfig{.name = "log", .kind = ReceiverConfig::Kind::kLog});
  EXPECT_EQ(notifier->Deliver(SampleNotification("log")).outcome, Outcome::kDelivered);
  const std::string text = log_.Text();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
  EXPECT_THAT(text, HasSubstr("level=warn msg=notification receiver=log status=firing "
                              "title=\"[FIRING:2] checkout is burning its error budget\""));
  EXPECT_THAT(text, HasSubstr("id=n-0001 sequence=3 alerts=2 causes=3f2a9c0d1e2b4a5f,inventory"));
  EXPECT_THAT(text, HasSubstr("trace_url=http://traceslo.example:8080/traces/"
                              "4bf92f3577b34da6a3ce929d0e0e4736"));
}

TEST(ParseRetryAfterTest, SecondsAndHttpDates) {
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(784111777));
  EXPECT_EQ(ParseRetryAfter("120", now), milliseconds(120'000));
  EXPECT_EQ(ParseRetryAfter(" 0 ", now), milliseconds(0));
  // The three HTTP-date forms of RFC 9110, 1994-11-06T08:49:37Z = now + 0 s.
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:47 GMT", now), milliseconds(10'000));
  EXPECT_EQ(ParseRetryAfter("Sunday, 06-Nov-94 08:49:47 GMT", now), milliseconds(10'000));
  EXPECT_EQ(ParseRetryAfter("Sun Nov  6 08:49:47 1994", now), milliseconds(10'000));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:00:00 GMT", now), milliseconds(0));  // past
  for (std::string_view bad : {"", "soon", "-5", "1.5", "Sun, 06 Nov 1994"}) {
    EXPECT_EQ(ParseRetryAfter(bad, now), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace traceslo::alerting
