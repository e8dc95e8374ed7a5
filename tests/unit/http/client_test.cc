#include "traceslo/http/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "tests/fakes/fake_http_server.h"

namespace traceslo::http {
namespace {

using fakes::FakeHttpServer;
using fakes::ScriptedResponse;
using ::testing::HasSubstr;
using ::testing::Not;

// A path segment standing in for the secret part of a webhook URL.
constexpr std::string_view kSecretPath = "/services/T000/B000/s3cr3tT0ken";

std::unique_ptr<HttpClient> MakeClient(HttpClientOptions options = {}) {
  auto client = BeastHttpClient::Create(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

class ScratchDir {
 public:
  ScratchDir() {
    static int counter = 0;
    path_ =
        std::filesystem::temp_directory_path() /
        ("traceslo_client_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

TEST(BeastHttpClientTest, SendsMethodTargetHeadersAndBody) {
  FakeHttpServer server;
  server.Push(ScriptedResponse{.status = 202, .headers = {{"X-Answer", "yes"}}, .body = "{}"});
  auto client = MakeClient();
  absl::StatusOr<ClientResponse> response =
      client->Send(ClientRequest{.url = server.Url("/hook?x=1"),
                                 .headers = {{"Content-Type", "application/json"}, {"X-A", "b"}},
                                 .body = "{\"k\":1}"});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 202);
  EXPECT_EQ(response->Header("x-answer"), "yes");
  EXPECT_EQ(response->body, "{}");
  EXPECT_FALSE(response->body_truncated);
  ASSERT_EQ(server.request_count(), 1u);
  const fakes::RecordedRequest request = server.requests()[0];
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.target, "/hook?x=1");
  EXPECT_EQ(request.body, "{\"k\":1}");
  EXPECT_EQ(request.Header("content-type"), "application/json");
  EXPECT_EQ(request.Header("x-a"), "b");
  EXPECT_EQ(request.Header("host"), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(request.Header("user-agent"), "traceslo");
  EXPECT_EQ(request.Header("content-length"), "7");
}

TEST(BeastHttpClientTest, EveryStatusIsAnAnswer) {
  FakeHttpServer server;
  server.Push(ScriptedResponse{.status = 503, .headers = {{"Retry-After", "7"}}});
  server.Push(ScriptedResponse{.status = 404});
  auto client = MakeClient();
  absl::StatusOr<ClientResponse> first = client->Send(ClientRequest{.url = server.Url()});
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->status, 503);
  EXPECT_EQ(first->Header("retry-after"), "7");
  absl::StatusOr<ClientResponse> second = client->Send(ClientRequest{.url = server.Url()});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->status, 404);
}

TEST(BeastHttpClientTest, LongBodiesAreCutAndTheStatusKept) {
  FakeHttpServer server;
  server.Push(ScriptedResponse{.status = 400, .body = std::string(100'000, 'x')});
  auto client = MakeClient(HttpClientOptions{.max_response_body_bytes = 1'000});
  absl::StatusOr<ClientResponse> response = client->Send(ClientRequest{.url = server.Url()});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 400);
  EXPECT_TRUE(response->body_truncated);
  EXPECT_LE(response->body.size(), 1'000u);
}

TEST(BeastHttpClientTest, NoAnswerWithinTheTimeoutIsUnavailable) {
  FakeHttpServer server;
  server.Push(ScriptedResponse{.hang = true});
  auto client = MakeClient(HttpClientOptions{.timeout = std::chrono::milliseconds(300)});
  absl::StatusOr<ClientResponse> response =
      client->Send(ClientRequest{.url = server.Url(kSecretPath)});
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(response.status().message(), "no complete answer within 300ms");
}

TEST(BeastHttpClientTest, NetworkErrorsNeverContainTheUrl) {
  uint16_t port;
  {
    FakeHttpServer closed;  // a port that was just free and is closed again
    port = closed.port();
  }
  auto client = MakeClient();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + std::string(kSecretPath);
  absl::StatusOr<ClientResponse> refused = client->Send(ClientRequest{.url = url});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(refused.status().message(), HasSubstr("cannot connect"));
  EXPECT_THAT(refused.status().message(), Not(HasSubstr("s3cr3t")));
  EXPECT_THAT(refused.status().message(), Not(HasSubstr(std::to_string(port))));

  FakeHttpServer server;
  server.Push(ScriptedResponse{.close_without_answer = true});
  absl::StatusOr<ClientResponse> reset =
      client->Send(ClientRequest{.url = server.Url(kSecretPath)});
  ASSERT_FALSE(reset.ok());
  EXPECT_EQ(reset.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(reset.status().message(), HasSubstr("reading the answer"));
  EXPECT_THAT(reset.status().message(), Not(HasSubstr("s3cr3t")));

  absl::StatusOr<ClientResponse> bad =
      client->Send(ClientRequest{.url = "ftp://host" + std::string(kSecretPath)});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), Not(HasSubstr("s3cr3t")));
}

class HttpsClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = fakes::MakeTestCertificates(dir_.path());
    ASSERT_FALSE(certs_.ca_file.empty()) << "openssl could not make test certificates";
  }
  ScratchDir dir_;
  fakes::TestCertificates certs_;
};

TEST_F(HttpsClientTest, TrustsTheGivenCa) {
  FakeHttpServer server(
      FakeHttpServer::Options{.cert_file = certs_.cert_file, .key_file = certs_.key_file});
  server.Push(ScriptedResponse{.status = 200, .body = "ok"});
  server.Push(ScriptedResponse{.status = 200, .body = "ok"});
  auto client = MakeClient(HttpClientOptions{.ca_file = certs_.ca_file});
  absl::StatusOr<ClientResponse> response =
      client->Send(ClientRequest{.url = server.Url("/secure"), .body = "hello"});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->body, "ok");
  ASSERT_EQ(server.request_count(), 1u);
  EXPECT_EQ(server.requests()[0].body, "hello");
  // By name too (SNI and the DNS name in the certificate).
  response = client->Send(ClientRequest{
      .url = "https://localhost:" + std::to_string(server.port()) + "/secure", .body = "x"});
  ASSERT_TRUE(response.ok()) << response.status();
}

TEST_F(HttpsClientTest, RefusesCertificatesItCannotVerify) {
  FakeHttpServer server(
      FakeHttpServer::Options{.cert_file = certs_.cert_file, .key_file = certs_.key_file});
  // Neither the system's CAs nor an unrelated CA vouch for the test certificate.
  for (const std::string& ca : {std::string(), certs_.other_ca_file}) {
    auto client = MakeClient(HttpClientOptions{.ca_file = ca});
    absl::StatusOr<ClientResponse> response =
        client->Send(ClientRequest{.url = server.Url(kSecretPath)});
    ASSERT_FALSE(response.ok()) << ca;
    EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(response.status().message(), HasSubstr("TLS certificate not accepted"));
    EXPECT_THAT(response.status().message(), Not(HasSubstr("s3cr3t")));
  }
  EXPECT_EQ(server.request_count(), 0u);

  FakeHttpServer wrong_name(FakeHttpServer::Options{.cert_file = certs_.wrong_name_cert_file,
                                                    .key_file = certs_.wrong_name_key_file});
  auto client = MakeClient(HttpClientOptions{.ca_file = certs_.ca_file});
  absl::StatusOr<ClientResponse> response = client->Send(ClientRequest{.url = wrong_name.Url()});
  ASSERT_FALSE(response.ok());
  EXPECT_THAT(response.status().message(), HasSubstr("TLS certificate not accepted"));
  EXPECT_EQ(wrong_name.request_count(), 0u);
}

TEST(BeastHttpClientCreateTest, AMissingCaFileIsAnError) {
  auto client = BeastHttpClient::Create(HttpClientOptions{.ca_file = "/nonexistent/ca.pem"});
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(client.status().message(), HasSubstr("/nonexistent/ca.pem"));
}

}  // namespace
}  // namespace traceslo::http
