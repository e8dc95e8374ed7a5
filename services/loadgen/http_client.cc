#include "services/loadgen/http_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>

namespace traceslo::loadgen {
namespace {

constexpr size_t kMaxHeaderBytes = 64 * 1024;
constexpr size_t kMaxBodyBytes = 16 * 1024 * 1024;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

absl::Status Errno(std::string_view what) {
  return absl::UnavailableError(std::string(what) + ": " + std::strerror(errno));
}

}  // namespace

std::string_view HttpResponse::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return value;
  }
  return {};
}

absl::Status SplitHostPort(std::string_view address, std::string& host, uint16_t& port) {
  auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError("expected host:port, got '" + std::string(address) + "' (" +
                                      std::string(why) + ")");
  };
  if (address.find("://") != std::string_view::npos) return invalid("no scheme or path");
  std::string_view host_part;
  std::string_view port_part;
  if (address.starts_with('[')) {
    const size_t close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return invalid("an IPv6 host is written [::1]:4317");
    }
    host_part = address.substr(1, close - 1);
    port_part = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) return invalid("missing port");
    host_part = address.substr(0, colon);
    port_part = address.substr(colon + 1);
    if (host_part.find(':') != std::string_view::npos) {
      return invalid("an IPv6 host is written [::1]:4317");
    }
  }
  if (host_part.empty()) return invalid("missing host");
  if (host_part.find_first_of("/ \t") != std::string_view::npos) return invalid("bad host");
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port_part.data(), port_part.data() + port_part.size(), value);
  if (port_part.empty() || ec != std::errc() || ptr != port_part.data() + port_part.size() ||
      value == 0 || value > 65535) {
    return invalid("port must be 1 to 65535");
  }
  host = std::string(host_part);
  port = static_cast<uint16_t>(value);
  return absl::OkStatus();
}

BlockingHttpClient::BlockingHttpClient(std::string host, uint16_t port,
                                       std::chrono::milliseconds timeout)
    : host_(std::move(host)), port_(port), timeout_(timeout) {}

BlockingHttpClient::~BlockingHttpClient() { Close(); }

void BlockingHttpClient::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  buffer_.clear();
}

absl::Status BlockingHttpClient::Connect() {
  Close();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  const std::string port = std::to_string(port_);
  if (int rc = getaddrinfo(host_.c_str(), port.c_str(), &hints, &addresses); rc != 0) {
    return absl::UnavailableError("resolve " + host_ + ": " + gai_strerror(rc));
  }
  absl::Status last = absl::UnavailableError("connect " + host_ + ": no address");
  const int timeout_ms = static_cast<int>(timeout_.count());
  for (addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      last = Errno("socket");
      continue;
    }
    int rc = connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
      do {
        rc = poll(&p, 1, timeout_ms);
      } while (rc < 0 && errno == EINTR);
      if (rc == 0) {
        close(fd);
        last = absl::UnavailableError("connect " + host_ + ":" + port + ": timed out");
        continue;
      }
      int error = 0;
      socklen_t size = sizeof error;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size);
      errno = error;
      rc = error == 0 ? 0 : -1;
    }
    if (rc != 0) {
      last = Errno("connect " + host_ + ":" + port);
      close(fd);
      continue;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{.tv_sec = static_cast<time_t>(timeout_.count() / 1000),
               .tv_usec = static_cast<suseconds_t>(timeout_.count() % 1000 * 1000)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    fd_ = fd;
    ++connections_opened_;
    freeaddrinfo(addresses);
    return absl::OkStatus();
  }
  freeaddrinfo(addresses);
  return last;
}

absl::Status BlockingHttpClient::SendAll(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return absl::UnavailableError("send: timed out");
    }
    if (n <= 0) return Errno("send");
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status BlockingHttpClient::Fill(bool& eof) {
  char chunk[16 * 1024];
  ssize_t n;
  do {
    n = recv(fd_, chunk, sizeof chunk, 0);
  } while (n < 0 && errno == EINTR);
  if (n == 0) {
    eof = true;
    return absl::UnavailableError("connection closed by the server");
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return absl::UnavailableError("no answer within the timeout");
    }
    if (errno == ECONNRESET) eof = true;
    return Errno("recv");
  }
  buffer_.append(chunk, static_cast<size_t>(n));
  return absl::OkStatus();
}

absl::StatusOr<HttpResponse> BlockingHttpClient::ReadResponse(bool& nothing_received) {
  nothing_received = buffer_.empty();
  size_t header_end;
  while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    if (buffer_.size() > kMaxHeaderBytes) return absl::UnavailableError("answer header too long");
    bool eof = false;
    if (absl::Status s = Fill(eof); !s.ok()) {
      nothing_received = nothing_received && buffer_.empty() && eof;
      return s;
    }
    nothing_received = false;
  }
  HttpResponse response;
  std::string_view head(buffer_.data(), header_end);
  const size_t line_end = head.find("\r\n");
  std::string_view status_line = head.substr(0, line_end);
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 ||
      std::from_chars(status_line.data() + 9, status_line.data() + 12, response.status).ec !=
          std::errc()) {
    return absl::UnavailableError("malformed status line '" +
                                  std::string(status_line.substr(0, 40)) + "'");
  }
  bool close_after = status_line.starts_with("HTTP/1.0");
  bool chunked = false;
  std::optional<size_t> content_length;
  if (line_end != std::string_view::npos) {
    std::string_view rest = head.substr(line_end + 2);
    while (!rest.empty()) {
      const size_t next = rest.find("\r\n");
      std::string_view field = rest.substr(0, next);
      rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 2);
      const size_t colon = field.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view name = Trim(field.substr(0, colon));
      std::string_view value = Trim(field.substr(colon + 1));
      if (EqualsIgnoreCase(name, "content-length")) {
        size_t length = 0;
        auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
        if (ec != std::errc() || ptr != value.data() + value.size()) {
          return absl::UnavailableError("malformed Content-Length");
        }
        content_length = length;
      } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
        chunked = value.find("chunked") != std::string_view::npos;
      } else if (EqualsIgnoreCase(name, "connection")) {
        if (EqualsIgnoreCase(value, "close")) close_after = true;
        if (EqualsIgnoreCase(value, "keep-alive")) close_after = false;
      }
      response.headers.emplace_back(std::string(name), std::string(value));
    }
  }
  buffer_.erase(0, header_end + 4);

  bool eof = false;
  if (chunked) {
    for (;;) {
      size_t line;
      while ((line = buffer_.find("\r\n")) == std::string::npos) {
        if (absl::Status s = Fill(eof); !s.ok()) return s;
      }
      size_t size = 0;
      auto [ptr, ec] = std::from_chars(buffer_.data(), buffer_.data() + line, size, 16);
      if (ec != std::errc()) return absl::UnavailableError("malformed chunk size");
      if (response.body.size() + size > kMaxBodyBytes) {
        return absl::UnavailableError("answer body too large");
      }
      while (buffer_.size() < line + 2 + size + 2) {
        if (absl::Status s = Fill(eof); !s.ok()) return s;
      }
      response.body.append(buffer_, line + 2, size);
      buffer_.erase(0, line + 2 + size + 2);
      if (size == 0) break;  // trailers are not used by OTLP; the last chunk ends the answer
    }
  } else if (content_length) {
    if (*content_length > kMaxBodyBytes) return absl::UnavailableError("answer body too large");
    while (buffer_.size() < *content_length) {
      if (absl::Status s = Fill(eof); !s.ok()) return s;
    }
    response.body = buffer_.substr(0, *content_length);
    buffer_.erase(0, *content_length);
  } else if (response.status >= 200 && response.status != 204 && response.status != 304) {
    // No length: the body runs to the end of the connection.
    for (;;) {
      if (buffer_.size() > kMaxBodyBytes) return absl::UnavailableError("answer body too large");
      if (absl::Status s = Fill(eof); !s.ok()) {
        if (eof) break;
        return s;
      }
    }
    response.body = std::move(buffer_);
    close_after = true;
  }
  if (close_after) Close();
  return response;
}

absl::StatusOr<HttpResponse> BlockingHttpClient::Post(std::string_view path,
                                                      const HttpHeaders& headers,
                                                      std::string_view body) {
  std::string head = "POST " + std::string(path) + " HTTP/1.1\r\nHost: ";
  head += host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_;
  head +=
      ":" + std::to_string(port_) + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  for (const auto& [name, value] : headers) head += name + ": " + value + "\r\n";
  head += "\r\n";

  for (int attempt = 0;; ++attempt) {
    const bool reused = fd_ >= 0;
    if (!reused) {
      if (absl::Status s = Connect(); !s.ok()) return s;
    }
    absl::Status sent = SendAll(head);
    if (sent.ok()) sent = SendAll(body);
    bool nothing_received = true;
    absl::StatusOr<HttpResponse> response =
        sent.ok() ? ReadResponse(nothing_received) : absl::StatusOr<HttpResponse>(sent);
    if (response.ok()) return response;
    Close();
    // A kept-alive connection the server closed before it read the request: once more on a new
    // connection. Any other failure goes to the caller.
    if (!(reused && nothing_received && attempt == 0)) return response.status();
  }
}

}  // namespace traceslo::loadgen
