// The keep-alive HTTP/1.1 client against a scripted socket server on 127.0.0.1.
#include "services/loadgen/http_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <thread>

namespace traceslo::loadgen {
namespace {

// Accepts connections on a free port and runs `serve(fd)` for each, in order, on one thread.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::function<void(int)>> connections)
      : connections_(std::move(connections)) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(listen_fd_, 8), 0);
    socklen_t size = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &size);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      for (auto& serve : connections_) {
        const int fd = accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) return;
        serve(fd);
        close(fd);
      }
    });
  }
  ~ScriptedServer() {
    shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    close(listen_fd_);
  }
  uint16_t port() const { return port_; }

 private:
  std::vector<std::function<void(int)>> connections_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

// Reads one request (head and Content-Length body); empty when the client closed.
std::string ReadRequest(int fd) {
  std::string data;
  char buf[4096];
  size_t head_end;
  while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return "";
    data.append(buf, static_cast<size_t>(n));
  }
  const size_t at = data.find("Content-Length: ");
  const size_t length = at == std::string::npos ? 0 : std::stoul(data.substr(at + 16));
  while (data.size() < head_end + 4 + length) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return "";
    data.append(buf, static_cast<size_t>(n));
  }
  return data;
}

void Write(int fd, std::string_view s) {
  ASSERT_EQ(write(fd, s.data(), s.size()), ssize_t(s.size()));
}

TEST(BlockingHttpClientTest, KeepsTheConnectionAlive) {
  std::vector<std::string> seen;
  ScriptedServer server({[&](int fd) {
    for (int i = 0; i < 2; ++i) {
      seen.push_back(ReadRequest(fd));
      Write(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
    }
  }});
  BlockingHttpClient client("127.0.0.1", server.port(), std::chrono::seconds(5));
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<HttpResponse> r =
        client.Post("/v1/traces", {{"Authorization", "Bearer t"}}, "body!");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "{}");
    EXPECT_EQ(r->Header("content-type"), "application/json");
  }
  EXPECT_EQ(client.connections_opened(), 1u);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_TRUE(seen[0].starts_with("POST /v1/traces HTTP/1.1\r\n")) << seen[0];
  EXPECT_NE(seen[0].find("\r\nAuthorization: Bearer t\r\n"), std::string::npos);
  EXPECT_NE(seen[0].find("\r\nContent-Length: 5\r\n"), std::string::npos);
  EXPECT_TRUE(seen[0].ends_with("\r\n\r\nbody!"));
}

TEST(BlockingHttpClientTest, ResendsOnceWhenTheServerClosedAnIdleConnection) {
  int requests = 0;
  ScriptedServer server({
      [&](int fd) {
        ReadRequest(fd);
        ++requests;
        Write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        // Then closes without saying so, as an idle timeout does.
      },
      [&](int fd) {
        if (!ReadRequest(fd).empty()) ++requests;
        Write(
            fd,
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nfull");
      },
  });
  BlockingHttpClient client("127.0.0.1", server.port(), std::chrono::seconds(5));
  ASSERT_TRUE(client.Post("/v1/traces", {}, "a").ok());
  absl::StatusOr<HttpResponse> r = client.Post("/v1/traces", {}, "b");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->Header("Retry-After"), "1");
  EXPECT_EQ(r->body, "full");
  EXPECT_EQ(client.connections_opened(), 2u);
  EXPECT_EQ(requests, 2) << "each request reached the server once";
}

TEST(BlockingHttpClientTest, ReadsChunkedAndCloseDelimitedBodies) {
  ScriptedServer server({
      [&](int fd) {
        ReadRequest(fd);
        Write(fd,
              "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
              "chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
        ReadRequest(fd);
        Write(fd, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\nno length");
      },
  });
  BlockingHttpClient client("127.0.0.1", server.port(), std::chrono::seconds(5));
  absl::StatusOr<HttpResponse> r = client.Post("/", {}, "x");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "abcde");
  r = client.Post("/", {}, "y");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(r->body, "no length");
}

TEST(BlockingHttpClientTest, NetworkFailuresAreUnavailable) {
  uint16_t port;
  {
    ScriptedServer server({});
    port = server.port();
  }  // closed: nothing listens there now
  BlockingHttpClient refused("127.0.0.1", port, std::chrono::seconds(5));
  absl::StatusOr<HttpResponse> r = refused.Post("/", {}, "x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("Connection refused"), std::string::npos) << r.status();

  // Reads the request, never answers, and waits for the client to give up and close.
  ScriptedServer silent({[&](int fd) {
    ReadRequest(fd);
    ReadRequest(fd);
  }});
  BlockingHttpClient client("127.0.0.1", silent.port(), std::chrono::milliseconds(100));
  r = client.Post("/", {}, "x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
}

TEST(SplitHostPortTest, Forms) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(SplitHostPort("127.0.0.1:4317", host, port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 4317);
  ASSERT_TRUE(SplitHostPort("[::1]:4318", host, port).ok());
  EXPECT_EQ(host, "::1");
  ASSERT_TRUE(SplitHostPort("otel.example:80", host, port).ok());
  EXPECT_EQ(SplitHostPort("http://x:1", host, port).message(),
            "expected host:port, got 'http://x:1' (no scheme or path)");
  EXPECT_EQ(SplitHostPort("x", host, port).message(), "expected host:port, got 'x' (missing port)");
  EXPECT_EQ(SplitHostPort("x:0", host, port).message(),
            "expected host:port, got 'x:0' (port must be 1 to 65535)");
  EXPECT_EQ(SplitHostPort(":80", host, port).message(),
            "expected host:port, got ':80' (missing host)");
  EXPECT_EQ(SplitHostPort("::1:80", host, port).message(),
            "expected host:port, got '::1:80' (an IPv6 host is written [::1]:4317)");
}

}  // namespace
}  // namespace traceslo::loadgen
