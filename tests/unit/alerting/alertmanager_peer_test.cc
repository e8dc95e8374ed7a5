// The alertmanager receiver against a real Alertmanager 0.25 (Debian's prometheus-alertmanager)
// on 127.0.0.1: notifications go through the outbox and show in Alertmanager's own API.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tests/fakes/fake_clock.h"
#include "tests/unit/alerting/alerting_test_util.h"
#include "traceslo/alerting/dispatcher.h"
#include "traceslo/alerting/notifiers.h"
#include "traceslo/alerting/sqlite_outbox_store.h"
#include "traceslo/http/client.h"
#include "traceslo/storage/sqlite_store.h"

extern char** environ;

namespace traceslo::alerting {
namespace {

using testing_util::Json;
using testing_util::PollUntil;
using testing_util::ScratchDir;

constexpr const char* kAlertmanager = "/usr/bin/prometheus-alertmanager";

uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t size = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Alertmanager as a child process: started with a minimal configuration, stopped (SIGTERM, then
// waited for) when the test ends.
class AlertmanagerProcess {
 public:
  explicit AlertmanagerProcess(const std::string& dir) : port_(FreePort()) {
    const std::string config = dir + "/alertmanager.yml";
    std::ofstream(config) << "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n";
    std::vector<std::string> args = {kAlertmanager,
                                     "--config.file=" + config,
                                     "--storage.path=" + dir + "/data",
                                     "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                     "--cluster.listen-address=",
                                     "--log.level=warn"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, kAlertmanager, nullptr, nullptr, argv.data(), environ) != 0) {
      pid_ = -1;
    }
  }
  ~AlertmanagerProcess() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  bool started() const { return pid_ > 0; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
};

absl::StatusOr<http::ClientResponse> Get(http::HttpClient& client, const std::string& url) {
  return client.Send(http::ClientRequest{.method = "GET", .url = url});
}

TEST(AlertmanagerPeerTest, AlertsShowInAlertmanagersApiAndResolve) {
  if (::access(kAlertmanager, X_OK) != 0) {
    GTEST_SKIP() << kAlertmanager << " is not installed (apt-get install prometheus-alertmanager)";
  }
  ScratchDir dir;
  AlertmanagerProcess alertmanager(dir.path());
  ASSERT_TRUE(alertmanager.started());
  auto client = http::BeastHttpClient::Create(http::HttpClientOptions{
      .timeout = std::chrono::milliseconds(2'000), .max_response_body_bytes = 1 << 20});
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE(PollUntil(
      [&] {
        absl::StatusOr<http::ClientResponse> ready = Get(**client, alertmanager.url() + "/-/ready");
        return ready.ok() && ready->status == 200;
      },
      std::chrono::seconds(30)))
      << "Alertmanager did not become ready";

  fakes::FakeClock clock;
  testing_util::CapturedLog log;
  Logger logger(clock, LogFormat::kLogfmt, LogLevel::kDebug, log.file());
  auto db = storage::SqliteStore::Open(dir.File("traceslo.db"));
  ASSERT_TRUE(db.ok()) << db.status();
  SqliteOutboxStore store(**db);
  DispatcherMetrics metrics({"am"});
  absl::StatusOr<std::unique_ptr<Notifier>> notifier = CreateNotifier(
      config::ReceiverConfig{.name = "am",
                             .kind = config::ReceiverConfig::Kind::kAlertmanager,
                             .url = alertmanager.url()},
      NotifierOptions{.trace_url = "http://jaeger:16686/trace/{trace_id}"}, clock, logger);
  ASSERT_TRUE(notifier.ok()) << notifier.status();
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(std::move(*notifier));
  auto dispatcher =
      Dispatcher::Create(clock, store, metrics, logger, std::move(notifiers),
                         DispatcherOptions{.max_age = std::chrono::hours(24 * 365 * 50)});
  ASSERT_TRUE(dispatcher.ok()) << dispatcher.status();

  const Notification firing = testing_util::SampleNotification("am");
  ASSERT_TRUE((*dispatcher)->Enqueue(firing).ok());
  ASSERT_TRUE(PollUntil([&] {
    return metrics.count("am", DispatcherMetrics::Outcome::kDelivered) == 1;
  })) << log.Text();

  absl::StatusOr<http::ClientResponse> listed =
      Get(**client, alertmanager.url() + "/api/v2/alerts");
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->status, 200) << listed->body;
  const boost::json::value alerts = Json(listed->body);
  ASSERT_EQ(alerts.as_array().size(), 2u) << listed->body;
  for (const Alert& sent : firing.alerts) {
    const boost::json::value* found = nullptr;
    for (const boost::json::value& a : alerts.as_array()) {
      if (a.at("labels").at("slo") == sent.labels.at("slo").c_str()) found = &a;
    }
    ASSERT_NE(found, nullptr) << sent.labels.at("slo");
    // Alertmanager computes the same fingerprint from the labels.
    EXPECT_EQ(found->at("fingerprint"), Fingerprint(sent.labels).c_str());
    EXPECT_EQ(found->at("status").at("state"), "active");
    EXPECT_EQ(found->at("labels").at("signature"), "3f2a9c0d1e2b4a5f");
    EXPECT_EQ(found->at("generatorURL"), "http://traceslo.example:8080/alerts");
    EXPECT_EQ(found->at("annotations").at("traceslo_cause"),
              "PaymentDeclined: card declined for order <n>");
    EXPECT_THAT(std::string(found->at("annotations").at("traceslo_trace_url").as_string()),
                ::testing::StartsWith("http://traceslo.example:8080/traces/"));
    EXPECT_EQ(found->at("startsAt"), sent.starts_at_unix_nano == 1'700'000'000'250'000'000
                                         ? "2023-11-14T22:13:20.250Z"
                                         : "2023-11-14T22:13:21.000Z");
  }

  // The group resolves: Alertmanager no longer lists the alerts as active.
  ASSERT_TRUE((*dispatcher)->Enqueue(testing_util::ResolvedSample("am")).ok());
  ASSERT_TRUE(
      PollUntil([&] { return metrics.count("am", DispatcherMetrics::Outcome::kDelivered) == 2; }));
  listed = Get(**client, alertmanager.url() + "/api/v2/alerts?active=true");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(Json(listed->body).as_array().empty()) << listed->body;
  (*dispatcher)->Shutdown(clock.SteadyNow());
}

}  // namespace
}  // namespace traceslo::alerting
