#include "traceslo/http/server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/fakes/fake_clock.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/log.h"

namespace traceslo::http {
namespace {

// Records every call; refuses requests for /refuse in CheckHeaders and throws for /throw.
// Thread-safe.
class RecordingHandler final : public Handler {
 public:
  std::vector<Request> handled() {
    std::lock_guard<std::mutex> lock(mu_);
    return handled_;
  }
  std::vector<Request> checked() {
    std::lock_guard<std::mutex> lock(mu_);
    return checked_;
  }

  // traceslo::http::Handler
  std::optional<Response> CheckHeaders(const Request& request) override {
    std::lock_guard<std::mutex> lock(mu_);
    checked_.push_back(request);
    if (request.Path() == "/refuse") {
      return Response{
          401, "text/plain; charset=utf-8", {{"WWW-Authenticate", "Bearer"}}, "refused\n"};
    }
    return std::nullopt;
  }
  Response Handle(const Request& request) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      handled_.push_back(request);
    }
    if (request.Path() == "/throw") throw std::runtime_error("boom");
    if (request.Path() == "/nocontent") {
      return Response{204, "text/plain", {}, "a body a 204 must not carry"};
    }
    if (request.body_too_large) return Response{413, "text/plain; charset=utf-8", {}, "big\n"};
    return Response{200,
                    "application/x-test",
                    {{"X-Echo-Size", std::to_string(request.body.size())}},
                    request.method + " " + request.target + "\n"};
  }

 private:
  std::mutex mu_;
  std::vector<Request> checked_;
  std::vector<Request> handled_;
};

struct ClientResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  std::string Header(std::string_view lower_name) const {
    for (const auto& [name, value] : headers) {
      if (name == lower_name) return value;
    }
    return "";
  }
};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A blocking HTTP/1.1 client over a plain POSIX socket. Every read and write gives up after
// 5 s, so a server that fails to answer fails the test instead of hanging it.
class Client {
 public:
  explicit Client(const std::string& address) {
    std::string host;
    uint16_t port = 0;
    if (!SplitHostPort(address, host, port).ok()) return;
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return;
    timeval timeout{};
    timeout.tv_sec = 5;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return;
    connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  // Raw bytes until `needle` has been received (or EOF / timeout); what was read.
  std::string ReadUntil(std::string_view needle) {
    std::string got;
    char buf[4096];
    while (got.find(needle) == std::string::npos) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // One whole response (read up to its Content-Length), or nullopt on EOF, error or timeout.
  std::optional<ClientResponse> ReadResponse() {
    size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    ClientResponse response;
    std::string_view head = std::string_view(buffer_).substr(0, header_end);
    size_t line_end = head.find("\r\n");
    std::string_view status_line = head.substr(0, line_end);
    if (!status_line.starts_with("HTTP/1.1 ") || status_line.size() < 12) return std::nullopt;
    response.status = std::stoi(std::string(status_line.substr(9, 3)));
    while (line_end != std::string_view::npos) {
      head.remove_prefix(line_end + 2);
      line_end = head.find("\r\n");
      std::string_view line = head.substr(0, line_end);
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) return std::nullopt;
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      response.headers.emplace_back(Lower(std::string(line.substr(0, colon))), value);
    }
    std::string length_text = response.Header("content-length");
    if (length_text.empty()) return std::nullopt;
    const size_t length = std::stoul(length_text);
    const size_t body_start = header_end + 4;
    while (buffer_.size() < body_start + length) {
      if (!Fill()) return std::nullopt;
    }
    response.body = buffer_.substr(body_start, length);
    buffer_.erase(0, body_start + length);
    return response;
  }

  // True when the server closed the connection (EOF or reset); false when more data arrived
  // or nothing happened within the timeout.
  bool ClosedByServer() {
    if (!buffer_.empty()) return false;
    char c;
    ssize_t n;
    do {
      n = ::recv(fd_, &c, 1, 0);
    } while (n < 0 && errno == EINTR);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  bool Fill() {
    char chunk[4096];
    ssize_t n;
    do {
      n = ::recv(fd_, chunk, sizeof(chunk), 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return false;
    buffer_.append(chunk, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;  // received, not yet parsed
};

class ServerTest : public ::testing::Test {
 protected:
  ~ServerTest() override {
    server_.reset();
    std::fclose(log_file_);
  }

  void Start(ServerOptions options = {}) {
    options.name = "test";
    options.listen_address = "127.0.0.1:0";
    auto server = Server::Create(options, handler_, logger_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  // What the logger wrote so far (it flushes every line).
  std::string LogText() {
    std::string text;
    char chunk[4096];
    ssize_t n;
    while ((n = ::pread(fileno(log_file_), chunk, sizeof(chunk), static_cast<off_t>(text.size()))) >
           0) {
      text.append(chunk, static_cast<size_t>(n));
    }
    return text;
  }

  fakes::FakeClock clock_;
  std::FILE* log_file_ = std::tmpfile();
  Logger logger_{clock_, LogFormat::kLogfmt, LogLevel::kDebug, log_file_};
  RecordingHandler handler_;
  std::unique_ptr<Server> server_;
};

TEST_F(ServerTest, ReportsTheBoundPort) {
  Start();
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(SplitHostPort(server_->address(), host, port).ok()) << server_->address();
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_NE(port, 0);
}

TEST_F(ServerTest, GetReachesHandleWithMethodTargetAndLowerCasedHeaders) {
  Start();
  Client client(server_->address());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send(
      "GET /path/x?q=1&r=2 HTTP/1.1\r\nHost: test\r\nX-Custom-Header: Mixed Case Value\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "GET /path/x?q=1&r=2\n");
  EXPECT_EQ(response->Header("content-type"), "application/x-test");
  EXPECT_EQ(response->Header("x-echo-size"), "0");
  EXPECT_EQ(response->Header("server"), "traceslo");

  auto handled = handler_.handled();
  ASSERT_EQ(handled.size(), 1u);
  const Request& request = handled[0];
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.target, "/path/x?q=1&r=2");
  EXPECT_EQ(request.Path(), "/path/x");
  EXPECT_EQ(request.Header("host"), "test");
  EXPECT_EQ(request.Header("x-custom-header"), "Mixed Case Value");
  EXPECT_EQ(request.Header("X-Custom-Header"), "");  // names are stored lower-cased
  EXPECT_TRUE(request.body.empty());
  EXPECT_FALSE(request.body_too_large);
  EXPECT_EQ(handler_.checked().size(), 1u);
}

TEST_F(ServerTest, PostBodyReachesHandle) {
  Start();
  Client client(server_->address());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(
      client.Send("POST /v1/traces HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                  "Content-Length: 11\r\nConnection: close\r\n\r\nhello world"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "POST /v1/traces\n");
  EXPECT_EQ(response->Header("x-echo-size"), "11");
  EXPECT_TRUE(client.ClosedByServer());  // Connection: close is honoured

  auto handled = handler_.handled();
  ASSERT_EQ(handled.size(), 1u);
  EXPECT_EQ(handled[0].method, "POST");
  EXPECT_EQ(handled[0].target, "/v1/traces");
  EXPECT_EQ(handled[0].Header("content-type"), "application/json");
  EXPECT_EQ(handled[0].body, "hello world");
  EXPECT_FALSE(handled[0].body_too_large);
  // CheckHeaders saw the headers before the body was read.
  auto checked = handler_.checked();
  ASSERT_EQ(checked.size(), 1u);
  EXPECT_EQ(checked[0].Header("content-length"), "11");
  EXPECT_TRUE(checked[0].body.empty());
}

TEST_F(ServerTest, ChunkedPostBodyReachesHandle) {
  Start();
  Client client(server_->address());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(
      client.Send("POST /chunked HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  auto handled = handler_.handled();
  ASSERT_EQ(handled.size(), 1u);
  EXPECT_EQ(handled[0].body, "hello world");
}

TEST_F(ServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  Start();
  Client client(server_->address());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send("GET /one HTTP/1.1\r\nHost: test\r\n\r\n"));
  auto first = client.ReadResponse();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->body, "GET /one\n");
  ASSERT_TRUE(client.Send("POST /two HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc"));
  auto second = client.ReadResponse();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->body, "POST /two\n");
  EXPECT_EQ(server_->open_connections(), 1u);

  auto handled = handler_.handled();
  ASSERT_EQ(handled.size(), 2u);
  EXPECT_EQ(handled[0].target, "/one");
  EXPECT_EQ(handled[1].target, "/two");
  EXPECT_EQ(handled[1].body, "abc");
}

TEST_F(ServerTest, HeadGetsTheLengthButNoBodyAndTheConnectionStaysInStep) {
  Start();
  Client client(server_->address());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(
      client.Send("HEAD /h HTTP/1.1\r\nHost: test\r\n\r\n"
                  "GET /after HTTP/1.1\r\nHost: test\r\n\r\n"));
  const std::string got = client.ReadUntil("GET /after\n");
  // The HEAD answer says how long "HEAD /h\n" would be (8 bytes) but does not send it.
  EXPECT_NE(got.find("Content-Length: 8\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("HEAD /h\n"), std::string::npos) << got;
  EXPECT_NE(got.find("GET /after\n"), std::string::npos) << got;
}

TEST_F(ServerTest, A204FromTheHandlerIsSentWithoutItsBodyAndDoesNotCrash) {
  Start();
  Client client(server_->address());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(
      client.Send("GET /nocontent HTTP/1.1\r\nHost: test\r\n\r\n"
                  "GET /next HTTP/1.1\r\nHost: test\r\n\r\n"));
  const std::string got = client.ReadUntil("GET /next\n");
  EXPECT_NE(got.find("HTTP/1.1 204"), std::string::npos) << got;
  EXPECT_EQ(got.find("must not carry"), std::string::npos) << got;
  EXPECT_NE(got.find("GET /next\n"), std::string::npos) << got;
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Start();
  Client client(server_->address());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(
      client.Send("POST /a HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nxy"
                  "GET /b HTTP/1.1\r\nHost: test\r\n\r\n"));
  auto first = client.ReadResponse();
  auto second = client.ReadResponse();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(first->body, "POST /a\n");
  EXPECT_EQ(second->body, "GET /b\n");
}

TEST_F(ServerTest, ContentLengthOverBodyLimitIsFlaggedAndTheConnectionClosed) {
  Start({.body_limit = 16});
  Client client(server_->address());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send("POST /big HTTP/1.1\r\nHost: test\r\nContent-Length: 17\r\n\r\n" +
                          std::string(17, 'x')));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413);
  EXPECT_TRUE(client.ClosedByServer());

  auto handled = handler_.handled();
  ASSERT_EQ(handled.size(), 1u);
  EXPECT_EQ(handled[0].target, "/big");
  EXPECT_TRUE(handled[0].body_too_large);
  EXPECT_TRUE(handled[0].body.empty());
}

TEST_F(ServerTest, BodyAtTheLimitIsAccepted) {
  Start({.body_limit = 16});
  Client client(server_->address());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send("POST /ok HTTP/1.1\r\nHost: test\r\nContent-Length: 16\r\n\r\n" +
                          std::string(16, 'x')));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  auto handled = handler_.handled();
  ASSERT_EQ(handled.size(), 1u);
  EXPECT_FALSE(handled[0].body_too_large);
  EXPECT_EQ(handled[0].body, std::string(16, 'x'));
}

TEST_F(ServerTest, ChunkedBodyOverBodyLimitIsFlaggedAndTheConnectionClosed) {
  Start({.body_limit = 16});
  Client client(server_->address());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(
      client.Send("POST /big HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "20\r\n" +
                  std::string(32, 'x') + "\r\n0\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 413);
  EXPECT_TRUE(client.ClosedByServer());
  auto handled = handler_.handled();
  ASSERT_EQ(handled.size(), 1u);
  EXPECT_TRUE(handled[0].body_too_large);
  EXPECT_TRUE(handled[0].body.empty());
}

TEST_F(ServerTest, RefusalFromCheckHeadersIsSentWithoutReadingTheBody) {
  Start();
  Client client(server_->address());
  ASSERT_TRUE(client.connected());
  // Announces 10 MB (under the default 16 MiB limit) but sends 5 bytes: a server that read
  // the body would wait for the rest and the read below would time out.
  ASSERT_TRUE(
      client.Send("POST /refuse HTTP/1.1\r\nHost: test\r\nContent-Length: 10000000\r\n\r\nabcde"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 401);
  EXPECT_EQ(response->body, "refused\n");
  EXPECT_EQ(response->Header("www-authenticate"), "Bearer");
  EXPECT_TRUE(client.ClosedByServer());

  EXPECT_TRUE(handler_.handled().empty());
  auto checked = handler_.checked();
  ASSERT_EQ(checked.size(), 1u);
  EXPECT_EQ(checked[0].method, "POST");
  EXPECT_EQ(checked[0].target, "/refuse");
  EXPECT_EQ(checked[0].Header("content-length"), "10000000");
}

TEST_F(ServerTest, ConnectionsOverTheCapAreClosedAtOnceAndCounted) {
  Start({.max_connections = 2});
  Client first(server_->address());
  Client second(server_->address());
  ASSERT_TRUE(first.connected());
  ASSERT_TRUE(second.connected());
  // A response on each proves the server accepted (and counted) both.
  for (Client* client : {&first, &second}) {
    ASSERT_TRUE(client->Send("GET /x HTTP/1.1\r\nHost: test\r\n\r\n"));
    auto response = client->ReadResponse();
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 200);
  }
  EXPECT_EQ(server_->open_connections(), 2u);
  EXPECT_EQ(server_->connections_refused(), 0u);

  Client third(server_->address());
  ASSERT_TRUE(third.connected());  // the kernel completes the handshake before accept()
  EXPECT_TRUE(third.ClosedByServer());
  EXPECT_EQ(server_->connections_refused(), 1u);
  EXPECT_EQ(server_->open_connections(), 2u);

  // The two admitted connections still work.
  for (Client* client : {&first, &second}) {
    ASSERT_TRUE(client->Send("GET /y HTTP/1.1\r\nHost: test\r\n\r\n"));
    auto response = client->ReadResponse();
    ASSERT_TRUE(response.has_value());
    EXPECT_EQ(response->status, 200);
  }
  EXPECT_EQ(handler_.handled().size(), 4u);
}

TEST_F(ServerTest, HandlerThatThrowsGives500AndALogLine) {
  Start();
  Client client(server_->address());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send("GET /throw HTTP/1.1\r\nHost: test\r\n\r\n"));
  auto response = client.ReadResponse();
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 500);
  EXPECT_EQ(response->body, "internal error\n");
  std::string log = LogText();
  EXPECT_NE(log.find("http handler threw"), std::string::npos) << log;
  EXPECT_NE(log.find("boom"), std::string::npos) << log;
  EXPECT_NE(log.find("test"), std::string::npos) << log;  // the listener name

  // The connection survives for the next request.
  ASSERT_TRUE(client.Send("GET /after HTTP/1.1\r\nHost: test\r\n\r\n"));
  auto next = client.ReadResponse();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->status, 200);
}

TEST_F(ServerTest, MalformedRequestDropsTheConnectionWithoutCallingTheHandler) {
  Start();
  Client client(server_->address());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send("NOT HTTP AT ALL\r\n\r\n"));
  EXPECT_TRUE(client.ClosedByServer());
  EXPECT_TRUE(handler_.checked().empty());
  EXPECT_TRUE(handler_.handled().empty());
}

TEST_F(ServerTest, ShutdownClosesIdleConnections) {
  Start();
  Client client(server_->address());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.Send("GET /x HTTP/1.1\r\nHost: test\r\n\r\n"));
  ASSERT_TRUE(client.ReadResponse().has_value());
  server_->Shutdown(SystemClock().SteadyNow() + std::chrono::seconds(5));
  EXPECT_TRUE(client.ClosedByServer());
  EXPECT_EQ(server_->open_connections(), 0u);
}

TEST(ServerCreateTest, RejectsBadListenAddresses) {
  fakes::FakeClock clock;
  std::FILE* log_file = std::tmpfile();
  Logger logger(clock, LogFormat::kLogfmt, LogLevel::kDebug, log_file);
  RecordingHandler handler;
  for (const char* address : {"not-an-ip:0", "127.0.0.1", "127.0.0.1:99999"}) {
    auto server = Server::Create({.name = "test", .listen_address = address}, handler, logger);
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << address;
  }
  std::fclose(log_file);
}

struct SplitCase {
  std::string address;
  bool ok;
  std::string host;
  uint16_t port;
};

TEST(ListenAddressTest, ListenHostAndJoinHostPort) {
  EXPECT_EQ(ListenHost("localhost"), "127.0.0.1");
  EXPECT_EQ(ListenHost(""), "0.0.0.0");
  EXPECT_EQ(ListenHost("::1"), "::1");
  EXPECT_EQ(ListenHost("10.1.2.3"), "10.1.2.3");
  EXPECT_EQ(JoinHostPort("127.0.0.1", 4317), "127.0.0.1:4317");
  EXPECT_EQ(JoinHostPort("::1", 8080), "[::1]:8080");
  // Join then split gives the parts back.
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(SplitHostPort(JoinHostPort("fe80::1", 9), host, port).ok());
  EXPECT_EQ(host, "fe80::1");
  EXPECT_EQ(port, 9);
}

TEST(SplitHostPortTest, GoodAndBadAddresses) {
  const SplitCase cases[] = {
      {"127.0.0.1:8080", true, "127.0.0.1", 8080},
      {"0.0.0.0:0", true, "0.0.0.0", 0},
      {"localhost:65535", true, "localhost", 65535},
      {"example.com:443", true, "example.com", 443},
      {"[::1]:4318", true, "::1", 4318},
      {"[::]:0", true, "::", 0},
      {"[fe80::1%eth0]:80", true, "fe80::1%eth0", 80},
      {"", false, "", 0},
      {"localhost", false, "", 0},
      {":8080", false, "", 0},  // empty host
      {"localhost:", false, "", 0},
      {"localhost:65536", false, "", 0},
      {"localhost:-1", false, "", 0},
      {"localhost:+80", false, "", 0},
      {"localhost: 80", false, "", 0},
      {"localhost:80x", false, "", 0},
      {"localhost:http", false, "", 0},
      {"localhost:99999999999999999999", false, "", 0},
      {"[::1]", false, "", 0},
      {"[::1]:", false, "", 0},
      {"[::1]4318", false, "", 0},
      {"[::1:4318", false, "", 0},
  };
  for (const SplitCase& c : cases) {
    std::string host = "unchanged";
    uint16_t port = 1;
    absl::Status status = SplitHostPort(c.address, host, port);
    EXPECT_EQ(status.ok(), c.ok) << '"' << c.address << "\": " << status;
    if (c.ok && status.ok()) {
      EXPECT_EQ(host, c.host) << c.address;
      EXPECT_EQ(port, c.port) << c.address;
    } else if (!status.ok()) {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.address;
      EXPECT_NE(status.message().find(c.address), std::string_view::npos) << status;
    }
  }
}

}  // namespace
}  // namespace traceslo::http
