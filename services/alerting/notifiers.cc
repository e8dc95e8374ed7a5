// The five receivers and the factory that builds them from the configuration.
#include "traceslo/alerting/notifiers.h"

#include <utility>

#include "absl/status/status.h"
#include "services/alerting/http_notifier.h"
#include "services/alerting/payloads.h"
#include "traceslo/common/url.h"
#include "traceslo/http/client.h"

namespace traceslo::alerting {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kIdHeader = "X-Traceslo-Notification-Id";

Headers BaseHeaders(const Notification& n) {
  return {{"Content-Type", std::string(kJson)}, {std::string(kIdHeader), n.id}};
}

// Alertmanager webhook payload v4 (+ traceslo), optionally signed the Standard Webhooks way.
class WebhookNotifier final : public HttpNotifier {
 public:
  WebhookNotifier(const config::ReceiverConfig& config, std::string trace_url,
                  std::unique_ptr<http::HttpClient> client, const Clock& clock,
                  std::vector<std::string> secrets)
      : HttpNotifier(config.name, std::move(client), clock, std::move(secrets)),
        url_(config.url),
        hmac_secret_(config.hmac_secret),
        headers_(config.headers),
        trace_url_(std::move(trace_url)) {}

 protected:
  http::ClientRequest BuildRequest(const Notification& n) const override {
    http::ClientRequest request{.url = url_, .headers = BaseHeaders(n)};
    request.body = WebhookPayload(n, trace_url_);
    for (const auto& header : headers_) request.headers.push_back(header);
    if (!hmac_secret_.empty()) {
      const int64_t timestamp =
          std::chrono::duration_cast<std::chrono::seconds>(clock().Now().time_since_epoch())
              .count();
      request.headers.emplace_back("webhook-id", n.id);
      request.headers.emplace_back("webhook-timestamp", std::to_string(timestamp));
      request.headers.emplace_back(
          "webhook-signature",
          StandardWebhookSignature(hmac_secret_, n.id, timestamp, request.body));
    }
    return request;
  }

 private:
  const std::string url_;
  const std::string hmac_secret_;
  const Headers headers_;
  const std::string trace_url_;
};

// Slack incoming webhook with blocks.
class SlackNotifier final : public HttpNotifier {
 public:
  SlackNotifier(const config::ReceiverConfig& config, std::string trace_url,
                std::unique_ptr<http::HttpClient> client, const Clock& clock,
                std::vector<std::string> secrets)
      : HttpNotifier(config.name, std::move(client), clock, std::move(secrets)),
        url_(config.url),
        trace_url_(std::move(trace_url)) {}

 protected:
  http::ClientRequest BuildRequest(const Notification& n) const override {
    return http::ClientRequest{
        .url = url_, .headers = BaseHeaders(n), .body = SlackPayload(n, trace_url_)};
  }

 private:
  const std::string url_;
  const std::string trace_url_;
};

// PagerDuty Events API v2: trigger / resolve with dedup_key = the group key's hash.
class PagerDutyNotifier final : public HttpNotifier {
 public:
  PagerDutyNotifier(const config::ReceiverConfig& config, std::string trace_url,
                    std::unique_ptr<http::HttpClient> client, const Clock& clock,
                    std::vector<std::string> secrets)
      : HttpNotifier(config.name, std::move(client), clock, std::move(secrets)),
        url_(config.url),
        routing_key_(config.routing_key),
        trace_url_(std::move(trace_url)) {}

 protected:
  http::ClientRequest BuildRequest(const Notification& n) const override {
    return http::ClientRequest{.url = url_,
                               .headers = BaseHeaders(n),
                               .body = PagerDutyPayload(n, routing_key_, trace_url_)};
  }

 private:
  const std::string url_;
  const std::string routing_key_;
  const std::string trace_url_;
};

// Alertmanager's API: POST <url>/api/v2/alerts.
class AlertmanagerNotifier final : public HttpNotifier {
 public:
  AlertmanagerNotifier(const config::ReceiverConfig& config, std::string trace_url,
                       std::unique_ptr<http::HttpClient> client, const Clock& clock,
                       std::vector<std::string> secrets)
      : HttpNotifier(config.name, std::move(client), clock, std::move(secrets)),
        url_(AlertsUrl(config.url)),
        trace_url_(std::move(trace_url)) {}

  static std::string AlertsUrl(std::string base) {
    const size_t query = base.find_first_of("?#");
    std::string tail = query == std::string::npos ? "" : base.substr(query);
    base = base.substr(0, query);
    while (!base.empty() && base.back() == '/') base.pop_back();
    return base + "/api/v2/alerts" + tail;
  }

 protected:
  http::ClientRequest BuildRequest(const Notification& n) const override {
    return http::ClientRequest{
        .url = url_, .headers = BaseHeaders(n), .body = AlertmanagerPayload(n, trace_url_)};
  }

 private:
  const std::string url_;
  const std::string trace_url_;
};

// One logfmt (or JSON, as the log is configured) line per notification: the zero-config receiver.
class LogNotifier final : public Notifier {
 public:
  LogNotifier(std::string receiver, std::string trace_url, Logger& logger)
      : receiver_(std::move(receiver)), trace_url_(std::move(trace_url)), logger_(logger) {}

  // traceslo::alerting::Notifier
  const std::string& receiver() const override { return receiver_; }
  DeliveryResult Deliver(const Notification& n) override {
    const std::vector<Cause> causes = MergedCauses(n);
    std::string cause_ids;
    std::string trace;
    for (const Cause& cause : causes) {
      if (!cause_ids.empty()) cause_ids += ',';
      cause_ids += cause.id;
      if (trace.empty() && !cause.trace_ids.empty()) {
        trace = LinkTrace(n.external_url, trace_url_, cause.trace_ids[0]).url;
      }
    }
    logger_.Warn("notification", {{"receiver", receiver_},
                                  {"status", n.firing ? "firing" : "resolved"},
                                  {"title", Title(n)},
                                  {"group", n.group_key},
                                  {"id", n.id},
                                  {"sequence", std::to_string(n.sequence)},
                                  {"alerts", std::to_string(n.alerts.size())},
                                  {"causes", cause_ids},
                                  {"cause", causes.empty() ? "" : causes[0].title},
                                  {"trace_url", trace}});
    return DeliveryResult{};
  }

 private:
  const std::string receiver_;
  const std::string trace_url_;
  Logger& logger_;
};

// What must never appear in an error of this receiver.
std::vector<std::string> SecretsOf(const config::ReceiverConfig& config) {
  std::vector<std::string> secrets;
  if (!config.url.empty()) {
    secrets.push_back(config.url);
    if (absl::StatusOr<HttpUrl> url = ParseHttpUrl(config.url); url.ok()) {
      secrets.push_back(url->target);
    }
  }
  if (!config.hmac_secret.empty()) secrets.push_back(config.hmac_secret);
  if (!config.routing_key.empty()) secrets.push_back(config.routing_key);
  for (const auto& [name, value] : config.headers) secrets.push_back(value);
  return secrets;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Notifier>> CreateNotifier(const config::ReceiverConfig& receiver,
                                                         const NotifierOptions& options,
                                                         const Clock& clock, Logger& logger) {
  using Kind = config::ReceiverConfig::Kind;
  if (receiver.kind == Kind::kLog) {
    return std::make_unique<LogNotifier>(receiver.name, options.trace_url, logger);
  }
  if (absl::StatusOr<HttpUrl> url = ParseHttpUrl(receiver.url); !url.ok()) {
    return absl::InvalidArgumentError("receiver \"" + receiver.name +
                                      "\": " + std::string(url.status().message()));
  }
  absl::StatusOr<std::unique_ptr<http::BeastHttpClient>> client = http::BeastHttpClient::Create(
      http::HttpClientOptions{.timeout = options.timeout, .ca_file = receiver.ca_file});
  if (!client.ok()) {
    return absl::InvalidArgumentError("receiver \"" + receiver.name +
                                      "\": " + std::string(client.status().message()));
  }
  std::vector<std::string> secrets = SecretsOf(receiver);
  switch (receiver.kind) {
    case Kind::kWebhook:
      return std::make_unique<WebhookNotifier>(receiver, options.trace_url, std::move(*client),
                                               clock, std::move(secrets));
    case Kind::kSlack:
      return std::make_unique<SlackNotifier>(receiver, options.trace_url, std::move(*client), clock,
                                             std::move(secrets));
    case Kind::kPagerDuty:
      return std::make_unique<PagerDutyNotifier>(receiver, options.trace_url, std::move(*client),
                                                 clock, std::move(secrets));
    case Kind::kAlertmanager:
      return std::make_unique<AlertmanagerNotifier>(receiver, options.trace_url, std::move(*client),
                                                    clock, std::move(secrets));
    case Kind::kLog:
      break;
  }
  return absl::InternalError("unknown receiver kind");
}

absl::StatusOr<std::vector<std::unique_ptr<Notifier>>> CreateNotifiers(
    const config::AlertingConfig& alerting, const config::LinksConfig& links, const Clock& clock,
    Logger& logger) {
  std::vector<std::unique_ptr<Notifier>> out;
  const NotifierOptions options{.timeout = alerting.delivery.timeout, .trace_url = links.trace_url};
  for (const config::ReceiverConfig& receiver : alerting.receivers) {
    absl::StatusOr<std::unique_ptr<Notifier>> notifier =
        CreateNotifier(receiver, options, clock, logger);
    if (!notifier.ok()) return notifier.status();
    out.push_back(std::move(*notifier));
  }
  return out;
}

DispatcherOptions DispatcherOptionsFrom(const config::DeliveryConfig& delivery) {
  return DispatcherOptions{.initial_backoff = delivery.initial_backoff,
                           .max_backoff = delivery.max_backoff,
                           .max_age = delivery.max_age,
                           .log_retention = delivery.log_retention};
}

}  // namespace traceslo::alerting
