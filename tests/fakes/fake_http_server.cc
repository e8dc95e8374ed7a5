#include "tests/fakes/fake_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <stdexcept>

namespace traceslo::fakes {
namespace {

constexpr size_t kMaxRequestBytes = 4 << 20;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

// Reads and writes one connection, plain or TLS.
class Connection {
 public:
  Connection(int fd, SSL* ssl) : fd_(fd), ssl_(ssl) {}
  long Read(char* buf, size_t n) {
    if (ssl_ != nullptr) return SSL_read(ssl_, buf, static_cast<int>(n));
    return ::recv(fd_, buf, n, 0);
  }
  bool WriteAll(std::string_view bytes) {
    while (!bytes.empty()) {
      long n = ssl_ != nullptr ? SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size()))
                               : ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

 private:
  int fd_;
  SSL* ssl_;
};

// Reads one request; false when the connection ended first or the request is malformed.
bool ReadRequest(Connection& conn, RecordedRequest& out) {
  std::string data;
  char buf[16 * 1024];
  size_t header_end;
  while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
    long n = conn.Read(buf, sizeof buf);
    if (n <= 0 || data.size() > kMaxRequestBytes) return false;
    data.append(buf, static_cast<size_t>(n));
  }
  std::string_view head(data.data(), header_end);
  size_t line_end = head.find("\r\n");
  std::string_view request_line = head.substr(0, line_end);
  size_t sp1 = request_line.find(' ');
  size_t sp2 = request_line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) return false;
  out.method = std::string(request_line.substr(0, sp1));
  out.target = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));
  size_t content_length = 0;
  std::string_view rest =
      line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
  while (!rest.empty()) {
    size_t next = rest.find("\r\n");
    std::string_view field = rest.substr(0, next);
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 2);
    size_t colon = field.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name = Lower(Trim(field.substr(0, colon)));
    std::string value(Trim(field.substr(colon + 1)));
    if (name == "content-length") content_length = std::strtoul(value.c_str(), nullptr, 10);
    out.headers.emplace_back(std::move(name), std::move(value));
  }
  if (content_length > kMaxRequestBytes) return false;
  std::string body = data.substr(header_end + 4);
  while (body.size() < content_length) {
    long n = conn.Read(buf, sizeof buf);
    if (n <= 0) return false;
    body.append(buf, static_cast<size_t>(n));
  }
  body.resize(content_length);
  out.body = std::move(body);
  return true;
}

}  // namespace

std::string RecordedRequest::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return "";
}

FakeHttpServer::FakeHttpServer() : FakeHttpServer(Options{}) {}

FakeHttpServer::FakeHttpServer(Options options) : options_(std::move(options)) {
  if (!options_.cert_file.empty()) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr ||
        SSL_CTX_use_certificate_chain_file(ctx, options_.cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, options_.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      throw std::runtime_error("FakeHttpServer: cannot load the test certificate");
    }
    tls_context_ = ctx;
  }
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(options_.port);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    throw std::runtime_error("FakeHttpServer: cannot listen on 127.0.0.1:" +
                             std::to_string(options_.port));
  }
  socklen_t size = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &size);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Run(); });
}

FakeHttpServer::~FakeHttpServer() {
  Stop();
  if (tls_context_ != nullptr) SSL_CTX_free(static_cast<SSL_CTX*>(tls_context_));
}

std::string FakeHttpServer::Url(std::string_view path) const {
  return std::string(tls_context_ != nullptr ? "https" : "http") +
         "://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

void FakeHttpServer::Push(ScriptedResponse response) {
  MutexLock lock(mu_);
  script_.push_back(std::move(response));
}

void FakeHttpServer::SetDefault(ScriptedResponse response) {
  MutexLock lock(mu_);
  default_ = std::move(response);
}

std::vector<RecordedRequest> FakeHttpServer::requests() const {
  MutexLock lock(mu_);
  return requests_;
}

size_t FakeHttpServer::request_count() const {
  MutexLock lock(mu_);
  return requests_.size();
}

bool FakeHttpServer::WaitForRequests(size_t n, std::chrono::milliseconds timeout) {
  MutexLock lock(mu_);
  return cv_.WaitFor(mu_, timeout,
                     [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return requests_.size() >= n; });
}

void FakeHttpServer::Stop() {
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.NotifyAll();
  ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
}

void FakeHttpServer::Run() {
  for (;;) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      MutexLock lock(mu_);
      if (stopping_) return;
      continue;
    }
    timeval tv{.tv_sec = 5, .tv_usec = 0};  // a stuck client cannot hold the test forever
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    Serve(fd);
    ::close(fd);
  }
}

void FakeHttpServer::Serve(int fd) {
  SSL* ssl = nullptr;
  if (tls_context_ != nullptr) {
    ssl = SSL_new(static_cast<SSL_CTX*>(tls_context_));
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) {
      ERR_clear_error();
      SSL_free(ssl);
      return;
    }
  }
  Connection conn(fd, ssl);
  RecordedRequest request;
  if (ReadRequest(conn, request)) {
    if (options_.clock != nullptr) request.received_at = options_.clock->Now();
    ScriptedResponse response;
    {
      MutexLock lock(mu_);
      if (options_.handler == nullptr) {
        if (!script_.empty()) {
          response = std::move(script_.front());
          script_.pop_front();
        } else {
          response = default_;
        }
      }
    }
    if (options_.handler != nullptr) response = options_.handler(request);
    {
      MutexLock lock(mu_);
      requests_.push_back(request);
    }
    cv_.NotifyAll();
    if (response.hang) {
      MutexLock lock(mu_);
      cv_.Wait(mu_, [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_; });
    } else if (!response.close_without_answer) {
      std::string out =
          "HTTP/1.1 " + std::to_string(response.status) + " " + Reason(response.status) + "\r\n";
      for (const auto& [name, value] : response.headers) out += name + ": " + value + "\r\n";
      out += "Content-Length: " + std::to_string(response.body.size()) +
             "\r\nConnection: close\r\n\r\n" + response.body;
      conn.WriteAll(out);
    }
  }
  if (ssl != nullptr) {
    SSL_shutdown(ssl);
    SSL_free(ssl);
  }
}

TestCertificates MakeTestCertificates(const std::string& dir) {
  // EC keys keep generation fast. The server certificate names both the address and the host.
  const std::string script =
      "set -e; cd '" + dir +
      "'; "
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
      "-subj /CN=traceslo-test-ca -keyout ca.key -out ca.pem; "
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
      "-subj /CN=traceslo-other-ca -keyout other.key -out other-ca.pem; "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-subj /CN=localhost -keyout server.key -out server.csr; "
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext; "
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile san.ext -out server.pem; "
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-subj /CN=other.example -keyout wrong.key -out wrong.csr; "
      "printf 'subjectAltName=DNS:other.example\\n' > wrong.ext; "
      "openssl x509 -req -in wrong.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile wrong.ext -out wrong.pem";
  const std::string command = "sh -c \"" + script + "\" >/dev/null 2>&1";
  if (std::system(command.c_str()) != 0) return {};
  return TestCertificates{.ca_file = dir + "/ca.pem",
                          .cert_file = dir + "/server.pem",
                          .key_file = dir + "/server.key",
                          .other_ca_file = dir + "/other-ca.pem",
                          .wrong_name_cert_file = dir + "/wrong.pem",
                          .wrong_name_key_file = dir + "/wrong.key"};
}

}  // namespace traceslo::fakes
