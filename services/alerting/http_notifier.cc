#include "services/alerting/http_notifier.h"

#include <charconv>
#include <ctime>

namespace traceslo::alerting {
namespace {

constexpr size_t kMaxErrorBody = 200;

// Secrets shorter than this are not searched for ("/" would erase every slash).
constexpr size_t kMinSecretSize = 4;

std::string Redact(std::string text, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (secret.size() < kMinSecretSize) continue;
    for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 8)) {
      text.replace(at, secret.size(), "<secret>");
    }
  }
  return text;
}

// The start of a body, on one line.
std::string Snippet(std::string_view body) {
  std::string out(body.substr(0, kMaxErrorBody));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (body.size() > kMaxErrorBody) out += "...";
  return out;
}

}  // namespace

std::optional<std::chrono::milliseconds> ParseRetryAfter(
    std::string_view value, std::chrono::system_clock::time_point now) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (value.front() >= '0' && value.front() <= '9') {
    uint64_t seconds = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec != std::errc() || ptr != value.data() + value.size()) return std::nullopt;
    constexpr uint64_t kMaxSeconds = 10ull * 365 * 86'400;  // no overflow on silly values
    return std::chrono::milliseconds(std::min(seconds, kMaxSeconds) * 1000);
  }
  const std::string text(value);
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    std::tm tm{};
    const char* end = strptime(text.c_str(), format, &tm);
    if (end == nullptr || *end != '\0') continue;
    const auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
    const auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(at - now);
    return std::max(delay, std::chrono::milliseconds(0));
  }
  return std::nullopt;
}

DeliveryResult MapHttpResult(const absl::StatusOr<http::ClientResponse>& result,
                             std::chrono::system_clock::time_point now,
                             const std::vector<std::string>& secrets) {
  DeliveryResult out;
  if (!result.ok()) {
    out.outcome = result.status().code() == absl::StatusCode::kInvalidArgument
                      ? DeliveryResult::Outcome::kPermanent
                      : DeliveryResult::Outcome::kRetryable;
    out.error = Redact(std::string(result.status().message()), secrets);
    return out;
  }
  const int status = result->status;
  out.http_status = status;
  if (status >= 200 && status < 300) return out;
  const bool retryable = status == 408 || status == 429 || status >= 500;
  out.outcome =
      retryable ? DeliveryResult::Outcome::kRetryable : DeliveryResult::Outcome::kPermanent;
  if (retryable) out.retry_after = ParseRetryAfter(result->Header("retry-after"), now);
  out.error = "HTTP " + std::to_string(status);
  if (status >= 300 && status < 400) out.error += " (redirects are not followed)";
  const std::string body = Snippet(result->body);
  if (!body.empty()) out.error += ": " + body;
  out.error = Redact(std::move(out.error), secrets);
  return out;
}

HttpNotifier::HttpNotifier(std::string receiver, std::unique_ptr<http::HttpClient> client,
                           const Clock& clock, std::vector<std::string> secrets)
    : receiver_(std::move(receiver)),
      client_(std::move(client)),
      clock_(clock),
      secrets_(std::move(secrets)) {}

DeliveryResult HttpNotifier::Deliver(const Notification& notification) {
  const http::ClientRequest request = BuildRequest(notification);
  return MapHttpResult(client_->Send(request), clock_.Now(), secrets_);
}

}  // namespace traceslo::alerting
