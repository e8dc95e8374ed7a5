#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "traceslo/common/clock.h"
#include "traceslo/common/mutex.h"

namespace traceslo::fakes {

// One request as the server read it.
struct RecordedRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::chrono::system_clock::time_point received_at;  // from Options::clock (epoch without one)

  // The first header with that lower-case name, or "".
  std::string Header(std::string_view lower_name) const;
};

// What the server answers.
struct ScriptedResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Never answers (until Stop()): for timeouts.
  bool hang = false;
  // Closes the connection without answering: for "connection reset" failures.
  bool close_without_answer = false;
};

// A small HTTP/1.1 server for tests, independent of the project's Beast code: one thread with a
// blocking accept loop on 127.0.0.1, one request per connection (Content-Length bodies), every
// request recorded, answers from a script (then a default, 200). Optional TLS through OpenSSL.
// Thread-safe. The clock, if given, is borrowed and must outlive the server.
class FakeHttpServer {
 public:
  struct Options {
    uint16_t port = 0;      // 0: a free port
    std::string cert_file;  // set: TLS with this certificate and key (PEM)
    std::string key_file;
    const Clock* clock = nullptr;
    // When set, answers every request instead of the script.
    std::function<ScriptedResponse(const RecordedRequest&)> handler;
  };

  FakeHttpServer();
  explicit FakeHttpServer(Options options);
  ~FakeHttpServer();
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  uint16_t port() const { return port_; }
  // "http(s)://127.0.0.1:<port>" + path.
  std::string Url(std::string_view path = "/") const;

  // Answers the next requests in order; once the script is used up, the default answers.
  void Push(ScriptedResponse response);
  void SetDefault(ScriptedResponse response);

  std::vector<RecordedRequest> requests() const;
  size_t request_count() const;
  // Waits until at least `n` requests were recorded or `timeout` (real time) passed; returns
  // whether they were. Tests poll with a deadline instead of sleeping.
  bool WaitForRequests(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(20));

  // Stops accepting, releases hung answers, closes the port and joins. Idempotent.
  void Stop();

 private:
  void Run();
  void Serve(int fd);

  Options options_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  void* tls_context_ = nullptr;  // SSL_CTX*, kept out of this header
  mutable Mutex mu_;
  CondVar cv_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<ScriptedResponse> script_ ABSL_GUARDED_BY(mu_);
  ScriptedResponse default_ ABSL_GUARDED_BY(mu_);
  std::vector<RecordedRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// A CA and a server certificate it signed, for "127.0.0.1" and "localhost", made with the
// openssl command in `dir` (which must exist). Empty paths when openssl failed.
struct TestCertificates {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string other_ca_file;  // a second CA that signed nothing the server presents
  // Signed by ca_file for "other.example" only: an https client to 127.0.0.1 must refuse it.
  std::string wrong_name_cert_file;
  std::string wrong_name_key_file;
};
TestCertificates MakeTestCertificates(const std::string& dir);

}  // namespace traceslo::fakes
