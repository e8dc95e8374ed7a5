#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "traceslo/alerting/notifier.h"
#include "traceslo/common/clock.h"
#include "traceslo/http/client.h"

namespace traceslo::alerting {

// The Retry-After of an answer: delay-seconds or an HTTP-date (IMF-fixdate, RFC 850 or asctime)
// relative to `now`; a date in the past gives 0. nullopt when `value` is neither.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

// The outcome of one HTTP attempt, the same for every HTTP receiver: 2xx delivered; no answer,
// 408, 429 and 5xx retryable (with Retry-After when sent); any other status permanent, as is a
// URL the client cannot use. The error says what happened ("HTTP 503: <start of the body>",
// "cannot connect: Connection refused") with every string of `secrets` replaced by "<secret>",
// since a receiver may echo its URL or key.
DeliveryResult MapHttpResult(const absl::StatusOr<http::ClientResponse>& result,
                             std::chrono::system_clock::time_point now,
                             const std::vector<std::string>& secrets);

// A notifier that POSTs one request per attempt: the kinds differ only in the request they build.
// Thread-safe (the request is built from the notification alone).
class HttpNotifier : public Notifier {
 public:
  // `secrets`: the URL and credentials, kept out of every error. `clock` is borrowed.
  HttpNotifier(std::string receiver, std::unique_ptr<http::HttpClient> client, const Clock& clock,
               std::vector<std::string> secrets);

  // traceslo::alerting::Notifier
  const std::string& receiver() const override { return receiver_; }
  DeliveryResult Deliver(const Notification& notification) override;

 protected:
  virtual http::ClientRequest BuildRequest(const Notification& notification) const = 0;
  const Clock& clock() const { return clock_; }

 private:
  const std::string receiver_;
  const std::unique_ptr<http::HttpClient> client_;
  const Clock& clock_;
  const std::vector<std::string> secrets_;
};

}  // namespace traceslo::alerting
