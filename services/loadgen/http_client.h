#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace traceslo::loadgen {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;  // names as received
  std::string body;

  // The first header named `name` (case-insensitive), or empty.
  std::string_view Header(std::string_view name) const;
};

// Splits "host:port", "[v6]:port". InvalidArgument with the reason otherwise.
absl::Status SplitHostPort(std::string_view address, std::string& host, uint16_t& port);

// A keep-alive HTTP/1.1 client for one host:port over a blocking POSIX socket: one request at a
// time, Content-Length or chunked responses, reconnecting when the server closed the connection.
// Owned by one thread.
//
// Post returns Unavailable for network failures (cannot connect, reset, timed out after
// `timeout` without progress, malformed or oversized answer); any answer the server completes is
// returned whatever its status. A request on a reused connection that the server had already
// closed (no byte of an answer arrived) is sent once more on a fresh connection, as browsers do.
class BlockingHttpClient {
 public:
  BlockingHttpClient(std::string host, uint16_t port, std::chrono::milliseconds timeout);
  ~BlockingHttpClient();
  BlockingHttpClient(const BlockingHttpClient&) = delete;
  BlockingHttpClient& operator=(const BlockingHttpClient&) = delete;

  absl::StatusOr<HttpResponse> Post(std::string_view path, const HttpHeaders& headers,
                                    std::string_view body);

  // Connections opened so far (for tests of keep-alive).
  uint64_t connections_opened() const { return connections_opened_; }

 private:
  absl::Status Connect();
  void Close();
  absl::Status SendAll(std::string_view bytes);
  // Reads more bytes into buffer_. Unavailable on EOF (`eof` set), error or timeout.
  absl::Status Fill(bool& eof);
  absl::StatusOr<HttpResponse> ReadResponse(bool& nothing_received);

  const std::string host_;
  const uint16_t port_;
  const std::chrono::milliseconds timeout_;
  int fd_ = -1;
  std::string buffer_;
  uint64_t connections_opened_ = 0;
};

}  // namespace traceslo::loadgen
