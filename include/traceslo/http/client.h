#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace traceslo::http {

struct ClientRequest {
  std::string method = "POST";
  std::string url;  // absolute http:// or https:// URL; may carry a secret (never logged)
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct ClientResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;             // at most HttpClientOptions::max_response_body_bytes
  bool body_truncated = false;  // the answer's body was longer and was cut

  // The first header with that (lower-case) name, or "".
  std::string_view Header(std::string_view lower_name) const;
};

// Sends one HTTP/1.1 request and reads its answer. Thread-safe. Never throws.
// Returns the answer whatever its status. Errors: InvalidArgument for a URL that cannot be used;
// Unavailable when no complete answer came back (resolution, connection, TLS handshake or
// certificate verification failed, timed out, connection closed early, answer headers too
// large). Error messages never contain the URL or any part of it (receiver URLs are secrets).
class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual absl::StatusOr<ClientResponse> Send(const ClientRequest& request) = 0;
};

struct HttpClientOptions {
  // For the whole request: resolution, connection, TLS handshake, sending and the answer.
  std::chrono::milliseconds timeout{10'000};
  // PEM bundle of CAs trusted for https; empty: the system's CAs. Host names (and IP addresses)
  // are always verified against the certificate.
  std::string ca_file;
  size_t max_response_header_bytes = 16 << 10;
  size_t max_response_body_bytes = 64 << 10;  // the rest of a longer body is discarded
  std::string user_agent = "traceslo";
};

// An HttpClient on Boost.Beast and OpenSSL: one connection per request (notifications are
// rare; no connection is kept), `Connection: close`, SNI and host name verification for https.
class BeastHttpClient final : public HttpClient {
 public:
  // InvalidArgument when `ca_file` cannot be loaded.
  static absl::StatusOr<std::unique_ptr<BeastHttpClient>> Create(const HttpClientOptions& options);
  ~BeastHttpClient() override;

  // traceslo::http::HttpClient
  absl::StatusOr<ClientResponse> Send(const ClientRequest& request) override;

 private:
  struct Tls;
  BeastHttpClient(const HttpClientOptions& options, std::unique_ptr<Tls> tls);

  const HttpClientOptions options_;
  std::unique_ptr<Tls> tls_;  // the TLS context, shared by every request
};

}  // namespace traceslo::http
