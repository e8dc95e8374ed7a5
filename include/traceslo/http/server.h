#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "traceslo/common/log.h"

namespace traceslo::http {

// One HTTP/1.1 request, body fully read. Header names are lower-cased.
struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query, as sent
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // True when the body was larger than ServerOptions::body_limit: `body` is then empty and the
  // handler must answer 413 (the connection is closed after the response).
  bool body_too_large = false;

  // The first header with that (lower-case) name, or "".
  std::string_view Header(std::string_view lower_name) const;
  std::string_view Path() const;  // target without the query
};

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// Answers requests. Called concurrently from the server's I/O threads: must be thread-safe.
// Never throws.
class Handler {
 public:
  virtual ~Handler() = default;
  // Called with the method, target and headers (empty body) before the body is read. A
  // response refuses the request without reading its body, and the connection is closed, so
  // an unauthenticated client cannot make the server buffer a body. Default: read on.
  virtual std::optional<Response> CheckHeaders(const Request& request) {
    (void)request;
    return std::nullopt;
  }
  virtual Response Handle(const Request& request) = 0;
};

struct TlsOptions {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;  // set: clients must present a certificate it signed
};

struct ServerOptions {
  std::string name;            // for logs: "otlp_http", "web"
  std::string listen_address;  // host:port, port 0 picks one
  uint64_t body_limit = 16ull << 20;
  uint32_t max_connections = 1024;
  uint32_t threads = 1;
  std::chrono::seconds idle_timeout{60};
  TlsOptions tls;  // empty cert_file: plain HTTP
};

// An HTTP/1.1 server on Boost.Beast with keep-alive, a connection cap (connections over it are
// closed at once and counted), a body limit and optional TLS/mTLS. Thread-safe.
// Owns its I/O threads; Shutdown(deadline) stops accepting, closes idle connections at once,
// lets requests in flight be answered (then closes their connections) until `deadline`, and
// joins the threads.
// `handler` and `logger` are borrowed and must outlive the server.
class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Create(const ServerOptions& options,
                                                        Handler& handler, Logger& logger);
  virtual ~Server() = default;
  // The bound address, with the real port when 0 was asked for.
  virtual std::string address() const = 0;
  virtual void Shutdown(std::chrono::steady_clock::time_point deadline) = 0;
  // Connections refused because max_connections were open.
  virtual uint64_t connections_refused() const = 0;
  virtual uint32_t open_connections() const = 0;
};

// Splits "host:port" / "[v6]:port". InvalidArgument when malformed.
absl::Status SplitHostPort(std::string_view address, std::string& host, uint16_t& port);

// The numeric address to bind for a listen address's host, the same for every listener:
// "localhost" is 127.0.0.1, an empty host is every IPv4 interface, anything else as given.
std::string ListenHost(std::string_view host);

// "host:port", with brackets around an IPv6 host.
std::string JoinHostPort(std::string_view host, uint16_t port);

}  // namespace traceslo::http
