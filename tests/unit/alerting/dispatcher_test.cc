// The outbox and its dispatcher: durable enqueue, ordering per group, retries on a fake clock,
// isolation between receivers, restarts (including kill -9), metrics.
#include "traceslo/alerting/dispatcher.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "prometheus/text_serializer.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/fake_http_server.h"
#include "tests/fakes/fake_notifier.h"
#include "tests/unit/alerting/alerting_test_util.h"
#include "traceslo/alerting/notifiers.h"
#include "traceslo/alerting/sqlite_outbox_store.h"
#include "traceslo/storage/sqlite_store.h"

extern char** environ;

namespace traceslo::alerting {
namespace {

using config::ReceiverConfig;
using fakes::FakeHttpServer;
using fakes::FakeNotifier;
using fakes::ScriptedResponse;
using ::testing::HasSubstr;
using ::testing::Not;
using testing_util::CapturedLog;
using testing_util::Json;
using testing_util::PollUntil;
using testing_util::SampleNotification;
using testing_util::ScratchDir;
using Metric = DispatcherMetrics::Outcome;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A notification of `group` at `sequence` for `receiver`, with a stable id.
Notification Make(const std::string& receiver, const std::string& group, uint64_t sequence,
                  bool firing = true) {
  Notification n = SampleNotification(receiver);
  n.group_key = group;
  n.group_labels = {{"group", group}};
  n.sequence = sequence;
  n.firing = firing;
  n.id = NotificationId("test-instance", receiver, group, sequence);
  return n;
}

DeliveryResult Retryable(std::string error = "HTTP 503", int status = 503) {
  return DeliveryResult{.outcome = DeliveryResult::Outcome::kRetryable,
                        .http_status = status,
                        .error = std::move(error)};
}

// (group, sequence) of each webhook request, in arrival order.
std::vector<std::pair<std::string, uint64_t>> GroupsAndSequences(
    const std::vector<fakes::RecordedRequest>& requests) {
  std::vector<std::pair<std::string, uint64_t>> out;
  for (const fakes::RecordedRequest& r : requests) {
    const boost::json::value body = Json(r.body);
    out.emplace_back(std::string(body.at("groupKey").as_string()),
                     body.at("traceslo").at("sequence").to_number<uint64_t>());
  }
  return out;
}

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenStore(); }

  void OpenStore() {
    store_.reset();
    db_.reset();
    absl::StatusOr<std::unique_ptr<storage::SqliteStore>> db = storage::SqliteStore::Open(db_path_);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    store_ = std::make_unique<SqliteOutboxStore>(*db_);
  }

  static DispatcherOptions Options() {
    return DispatcherOptions{.initial_backoff = seconds(1),
                             .max_backoff = seconds(10),
                             .max_age = hours(1),
                             .jitter_seed = 42};
  }

  std::unique_ptr<Dispatcher> Start(std::vector<std::unique_ptr<Notifier>> notifiers,
                                    DispatcherOptions options = Options()) {
    std::vector<std::string> names;
    for (const auto& n : notifiers) names.push_back(n->receiver());
    metrics_ = std::make_unique<DispatcherMetrics>(names);
    absl::StatusOr<std::unique_ptr<Dispatcher>> d =
        Dispatcher::Create(clock_, *store_, *metrics_, logger_, std::move(notifiers), options);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? std::move(*d) : nullptr;
  }

  std::unique_ptr<Notifier> Webhook(const std::string& name, const std::string& url,
                                    milliseconds timeout = milliseconds(5'000)) {
    absl::StatusOr<std::unique_ptr<Notifier>> n = CreateNotifier(
        ReceiverConfig{.name = name, .kind = ReceiverConfig::Kind::kWebhook, .url = url},
        NotifierOptions{.timeout = timeout}, clock_, logger_);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? std::move(*n) : nullptr;
  }

  // Moves the fake clock and makes the receiver threads look at it.
  void Advance(Dispatcher& d, std::chrono::nanoseconds by) {
    clock_.Advance(by);
    d.Wake();
  }

  uint64_t Count(const std::string& receiver, Metric outcome) const {
    return metrics_->count(receiver, outcome);
  }

  std::vector<DeliveryRecord> History(const Notification& n) {
    absl::StatusOr<std::vector<DeliveryRecord>> h = store_->History(n.id);
    EXPECT_TRUE(h.ok()) << h.status();
    return h.ok() ? *h : std::vector<DeliveryRecord>{};
  }

  ScratchDir dir_;
  const std::string db_path_ = dir_.File("traceslo.db");
  fakes::FakeClock clock_;
  CapturedLog log_;
  Logger logger_{clock_, LogFormat::kLogfmt, LogLevel::kDebug, log_.file()};
  std::unique_ptr<storage::SqliteStore> db_;
  std::unique_ptr<SqliteOutboxStore> store_;
  std::unique_ptr<DispatcherMetrics> metrics_;
};

TEST_F(DispatcherTest, DeliversEachNotificationAndRecordsTheAttempt) {
  FakeHttpServer server;
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(Webhook("oncall", server.Url("/hook")));
  auto d = Start(std::move(notifiers));
  const Notification n = Make("oncall", "g", 1);
  ASSERT_TRUE(d->Enqueue(n).ok());
  ASSERT_TRUE(server.WaitForRequests(1));
  ASSERT_TRUE(PollUntil([&] { return Count("oncall", Metric::kDelivered) == 1; }));
  EXPECT_EQ(d->pending("oncall"), 0u);
  EXPECT_EQ(metrics_->queue_length("oncall"), 0u);
  EXPECT_EQ(server.requests()[0].Header("x-traceslo-notification-id"), n.id);
  ASSERT_TRUE(PollUntil([&] { return History(n).size() == 1; }));
  const DeliveryRecord record = History(n)[0];
  EXPECT_EQ(record.outcome, DeliveryRecord::Outcome::kDelivered);
  EXPECT_EQ(record.attempt, 1u);
  EXPECT_EQ(record.http_status, 200);
  EXPECT_EQ(record.receiver, "oncall");
}

TEST_F(DispatcherTest, EnqueueCommitsBeforeAnyNetworkCall) {
  auto fake = std::make_unique<FakeNotifier>("oncall");
  FakeNotifier& notifier = *fake;
  notifier.Block();
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(std::move(fake));
  auto d = Start(std::move(notifiers));
  ASSERT_TRUE(d->Enqueue(Make("oncall", "g", 1)).ok());
  ASSERT_TRUE(notifier.WaitForAttempts(1));
  // The attempt is in flight; the notification is already committed, as another process sees.
  SQLite::Database raw(db_path_, SQLite::OPEN_READONLY);
  EXPECT_EQ(raw.execAndGet("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").getInt(), 1);
  notifier.Unblock();
  ASSERT_TRUE(PollUntil([&] { return Count("oncall", Metric::kDelivered) == 1; }));
}

TEST_F(DispatcherTest, PermanentFailuresAreRecordedCountedAndNeverRetried) {
  FakeHttpServer server;
  server.Push(ScriptedResponse{.status = 400, .body = "invalid payload"});
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(Webhook("oncall", server.Url("/hook")));
  auto d = Start(std::move(notifiers));
  const Notification refused = Make("oncall", "a", 1);
  ASSERT_TRUE(d->Enqueue(refused).ok());
  ASSERT_TRUE(PollUntil([&] { return Count("oncall", Metric::kFailed) == 1; }));
  Advance(*d, hours(2));
  // A later notification goes through; the refused one was not tried again in between.
  ASSERT_TRUE(d->Enqueue(Make("oncall", "b", 1)).ok());
  ASSERT_TRUE(PollUntil([&] { return Count("oncall", Metric::kDelivered) == 1; }));
  EXPECT_EQ(server.request_count(), 2u);
  EXPECT_EQ(Count("oncall", Metric::kRetried), 0u);
  const std::vector<DeliveryRecord> history = History(refused);
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].outcome, DeliveryRecord::Outcome::kFailed);
  EXPECT_EQ(history[0].http_status, 400);
  EXPECT_EQ(history[0].error, "HTTP 400: invalid payload");
  EXPECT_THAT(log_.Text(), HasSubstr("notification refused by the receiver, not retried"));
}

TEST_F(DispatcherTest, RetryAfterIsHonoured) {
  FakeHttpServer server(FakeHttpServer::Options{.clock = &clock_});
  server.Push(ScriptedResponse{.status = 429, .headers = {{"Retry-After", "30"}}});
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(Webhook("oncall", server.Url("/hook")));
  DispatcherOptions options = Options();
  options.max_backoff = seconds(60);
  auto d = Start(std::move(notifiers), options);
  const Notification n = Make("oncall", "g", 1);
  ASSERT_TRUE(d->Enqueue(n).ok());
  ASSERT_TRUE(PollUntil([&] { return Count("oncall", Metric::kRetried) == 1; }));
  EXPECT_THAT(log_.Text(), HasSubstr("retry_in=30000ms"));
  Advance(*d, seconds(30));
  ASSERT_TRUE(server.WaitForRequests(2));
  ASSERT_TRUE(PollUntil([&] { return Count("oncall", Metric::kDelivered) == 1; }));
  const std::vector<fakes::RecordedRequest> requests = server.requests();
  EXPECT_EQ(requests[1].received_at - requests[0].received_at, seconds(30));
  const std::vector<DeliveryRecord> history = History(n);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].outcome, DeliveryRecord::Outcome::kRetryable);
  EXPECT_EQ(history[0].http_status, 429);
  EXPECT_EQ(history[1].attempt, 2u);
}

TEST_F(DispatcherTest, BackoffIsExponentialWithFullJitter) {
  auto fake = std::make_unique<FakeNotifier>("oncall");
  FakeNotifier& notifier = *fake;
  notifier.SetDefault(Retryable());
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(std::move(fake));
  DispatcherOptions options = Options();
  options.initial_backoff = seconds(1);
  options.max_backoff = seconds(8);
  auto d = Start(std::move(notifiers), options);
  ASSERT_TRUE(d->Enqueue(Make("oncall", "g", 1)).ok());
  constexpr size_t kAttempts = 7;
  for (size_t i = 1; i <= kAttempts; ++i) {
    ASSERT_TRUE(notifier.WaitForAttempts(i));
    ASSERT_TRUE(PollUntil([&] { return Count("oncall", Metric::kRetried) == i; }));
    Advance(*d, seconds(8));
  }
  std::vector<int64_t> delays;
  const std::string text = log_.Text();
  const std::regex retry_in("retry_in=([0-9]+)ms");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), retry_in);
       it != std::sregex_iterator(); ++it) {
    delays.push_back(std::stoll((*it)[1].str()));
  }
  ASSERT_GE(delays.size(), kAttempts);
  for (size_t i = 0; i < kAttempts; ++i) {
    const int64_t cap = std::min<int64_t>(8'000, 1'000LL << i);  // initial * 2^(failures - 1)
    EXPECT_GE(delays[i], 0) << i;
    EXPECT_LE(delays[i], cap) << i;
  }
  // Jitter: not every delay sits at its cap.
  EXPECT_NE(delays[kAttempts - 1], delays[kAttempts - 2]);
}

TEST_F(DispatcherTest, ReceiverDownThenUpDeliversEverythingInOrderPerGroup) {
  uint16_t port;
  {
    FakeHttpServer gone;  // the receiver is down: its port refuses connections
    port = gone.port();
  }
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(Webhook("oncall", "http://127.0.0.1:" + std::to_string(port) + "/hook"));
  auto d = Start(std::move(notifiers));
  // Two groups, interleaved; group a is a trigger followed by its resolve.
  ASSERT_TRUE(d->Enqueue(Make("oncall", "a", 1)).ok());
  ASSERT_TRUE(d->Enqueue(Make("oncall", "b", 1)).ok());
  ASSERT_TRUE(d->Enqueue(Make("oncall", "a", 2, /*firing=*/false)).ok());
  ASSERT_TRUE(d->Enqueue(Make("oncall", "b", 2)).ok());
  ASSERT_TRUE(d->Enqueue(Make("oncall", "b", 3)).ok());
  ASSERT_TRUE(PollUntil([&] {
    if (Count("oncall", Metric::kRetried) >= 3) return true;
    Advance(*d, seconds(10));
    return false;
  }));
  EXPECT_EQ(d->pending("oncall"), 5u);
  EXPECT_EQ(metrics_->queue_length("oncall"), 5u);

  FakeHttpServer server(FakeHttpServer::Options{.port = port});  // back up
  ASSERT_TRUE(PollUntil([&] {
    if (Count("oncall", Metric::kDelivered) == 5) return true;
    Advance(*d, seconds(10));
    return false;
  }));
  const auto order = GroupsAndSequences(server.requests());
  ASSERT_EQ(order.size(), 5u);  // each exactly once
  std::map<std::string, std::vector<uint64_t>> per_group;
  for (const auto& [group, sequence] : order) per_group[group].push_back(sequence);
  EXPECT_EQ(per_group["a"], (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(per_group["b"], (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(d->pending("oncall"), 0u);
}

TEST_F(DispatcherTest, ADeadReceiverNeverDelaysAnother) {
  auto dead_fake = std::make_unique<FakeNotifier>("dead");
  auto live_fake = std::make_unique<FakeNotifier>("live");
  FakeNotifier& dead = *dead_fake;
  FakeNotifier& live = *live_fake;
  dead.Block();  // its attempt hangs, as against a receiver that never answers
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(std::move(dead_fake));
  notifiers.push_back(std::move(live_fake));
  auto d = Start(std::move(notifiers));
  ASSERT_TRUE(d->Enqueue(Make("dead", "g", 1)).ok());
  ASSERT_TRUE(dead.WaitForAttempts(1));
  for (uint64_t i = 1; i <= 3; ++i) ASSERT_TRUE(d->Enqueue(Make("live", "g", i)).ok());
  ASSERT_TRUE(PollUntil([&] { return Count("live", Metric::kDelivered) == 3; }));
  EXPECT_EQ(live.attempt_count(), 3u);
  EXPECT_EQ(d->pending("dead"), 1u);
  EXPECT_EQ(Count("dead", Metric::kDelivered), 0u);
  dead.Unblock();
  ASSERT_TRUE(PollUntil([&] { return Count("dead", Metric::kDelivered) == 1; }));
}

TEST_F(DispatcherTest, NotificationsPendingAtARestartAreDelivered) {
  {
    auto fake = std::make_unique<FakeNotifier>("oncall");
    fake->SetDefault(Retryable("cannot connect: Connection refused", 0));
    FakeNotifier& notifier = *fake;
    std::vector<std::unique_ptr<Notifier>> notifiers;
    notifiers.push_back(std::move(fake));
    auto d = Start(std::move(notifiers));
    ASSERT_TRUE(d->Enqueue(Make("oncall", "a", 1)).ok());
    ASSERT_TRUE(d->Enqueue(Make("oncall", "a", 2, false)).ok());
    ASSERT_TRUE(d->Enqueue(Make("oncall", "b", 7)).ok());
    ASSERT_TRUE(notifier.WaitForAttempts(1));
  }  // stopped with everything undelivered
  OpenStore();
  FakeHttpServer server;
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(Webhook("oncall", server.Url("/hook")));
  auto d = Start(std::move(notifiers));
  EXPECT_EQ(metrics_->queue_length("oncall"), 3u);  // known at start, before any attempt
  ASSERT_TRUE(PollUntil([&] { return Count("oncall", Metric::kDelivered) == 3; }));
  const auto order = GroupsAndSequences(server.requests());
  ASSERT_EQ(order.size(), 3u);
  std::map<std::string, std::vector<uint64_t>> per_group;
  for (const auto& [group, sequence] : order) per_group[group].push_back(sequence);
  EXPECT_EQ(per_group["a"], (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(per_group["b"], (std::vector<uint64_t>{7}));
}

// The child process of the kill -9 test (run by it with --gtest_also_run_disabled_tests):
// enqueues three notifications for a receiver that never answers, then waits to be killed.
TEST(DispatcherCrashChild, DISABLED_EnqueueAndWaitToBeKilled) {
  const char* db_path = std::getenv("TRACESLO_CRASH_CHILD_DB");
  const char* url = std::getenv("TRACESLO_CRASH_CHILD_URL");
  if (db_path == nullptr || url == nullptr) GTEST_SKIP() << "runs only as the kill -9 test's child";
  fakes::FakeClock clock;
  Logger logger(clock, LogFormat::kLogfmt, LogLevel::kError, stderr);
  auto db = storage::SqliteStore::Open(db_path);
  ASSERT_TRUE(db.ok()) << db.status();
  SqliteOutboxStore store(**db);
  DispatcherMetrics metrics({"oncall"});
  auto webhook = CreateNotifier(
      ReceiverConfig{.name = "oncall", .kind = ReceiverConfig::Kind::kWebhook, .url = url},
      NotifierOptions{.timeout = milliseconds(600'000)}, clock, logger);
  ASSERT_TRUE(webhook.ok()) << webhook.status();
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(std::move(*webhook));
  DispatcherOptions options;
  auto d = Dispatcher::Create(clock, store, metrics, logger, std::move(notifiers), options);
  ASSERT_TRUE(d.ok()) << d.status();
  for (const Notification& n :
       {Make("oncall", "a", 1), Make("oncall", "b", 1), Make("oncall", "a", 2, false)}) {
    ASSERT_TRUE((*d)->Enqueue(n).ok());
  }
  for (;;) ::pause();
}

// kill -9 of a process with an attempt in flight: after the restart everything is delivered, and
// only the notification that was in flight is delivered twice.
TEST_F(DispatcherTest, AfterKillNineOnlyTheAttemptInFlightIsRepeated) {
  FakeHttpServer first;  // the receiver as the killed process saw it: never answers
  first.SetDefault(ScriptedResponse{.hang = true});
  char exe[4096];
  const ssize_t exe_size = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  ASSERT_GT(exe_size, 0);
  exe[exe_size] = '\0';
  std::vector<std::string> args = {exe, "--gtest_also_run_disabled_tests",
                                   "--gtest_filter=DispatcherCrashChild.*"};
  std::vector<std::string> env = {"TRACESLO_CRASH_CHILD_DB=" + db_path_,
                                  "TRACESLO_CRASH_CHILD_URL=" + first.Url("/hook")};
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  std::vector<char*> argv, envp;
  for (std::string& a : args) argv.push_back(a.data());
  for (std::string& e : env) envp.push_back(e.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t child = 0;
  ASSERT_EQ(::posix_spawn(&child, exe, &actions, nullptr, argv.data(), envp.data()), 0);
  ASSERT_GT(child, 0);
  posix_spawn_file_actions_destroy(&actions);
  struct Reaper {
    pid_t pid;
    ~Reaper() {  // only ever the child's own id: never 0 or -1
      if (pid <= 0) return;
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
  } reaper{child};

  // Killed once all three are committed and the first attempt is in flight.
  ASSERT_TRUE(first.WaitForRequests(1));
  ASSERT_TRUE(PollUntil([&] {
    SQLite::Database raw(db_path_, SQLite::OPEN_READONLY);
    return raw.execAndGet("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").getInt() == 3;
  }));
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  reaper.pid = 0;
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);

  OpenStore();
  FakeHttpServer second;
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(Webhook("oncall", second.Url("/hook")));
  auto d = Start(std::move(notifiers));
  ASSERT_TRUE(PollUntil([&] { return Count("oncall", Metric::kDelivered) == 3; }));
  std::map<std::string, int> deliveries;
  for (const auto& requests : {first.requests(), second.requests()}) {
    for (const fakes::RecordedRequest& r : requests) {
      ++deliveries[r.Header("x-traceslo-notification-id")];
    }
  }
  ASSERT_EQ(deliveries.size(), 3u);
  const std::string in_flight = first.requests()[0].Header("x-traceslo-notification-id");
  for (const auto& [id, count] : deliveries) {
    EXPECT_EQ(count, id == in_flight ? 2 : 1) << id;
  }
  const auto order = GroupsAndSequences(second.requests());
  std::map<std::string, std::vector<uint64_t>> per_group;
  for (const auto& [group, sequence] : order) per_group[group].push_back(sequence);
  EXPECT_EQ(per_group["a"], (std::vector<uint64_t>{1, 2}));
  first.Stop();
}

TEST_F(DispatcherTest, AStaleTriggerIsNeverSentAfterItsResolve) {
  FakeHttpServer server;
  server.SetDefault(ScriptedResponse{.status = 202});
  auto pagerduty = [&] {
    absl::StatusOr<std::unique_ptr<Notifier>> n =
        CreateNotifier(ReceiverConfig{.name = "pd",
                                      .kind = ReceiverConfig::Kind::kPagerDuty,
                                      .url = server.Url("/v2/enqueue"),
                                      .routing_key = "R0UT1NGKEY"},
                       NotifierOptions{}, clock_, logger_);
    EXPECT_TRUE(n.ok()) << n.status();
    std::vector<std::unique_ptr<Notifier>> notifiers;
    notifiers.push_back(std::move(*n));
    return notifiers;
  };
  const Notification resolve = Make("pd", "g", 2, /*firing=*/false);
  const Notification stale_trigger = Make("pd", "g", 1);
  {
    auto d = Start(pagerduty());
    ASSERT_TRUE(d->Enqueue(resolve).ok());
    ASSERT_TRUE(PollUntil([&] { return Count("pd", Metric::kDelivered) == 1; }));
    ASSERT_TRUE(d->Enqueue(stale_trigger).ok());
    ASSERT_TRUE(PollUntil([&] { return Count("pd", Metric::kSuperseded) == 1; }));
  }
  // The group's progress survives a restart too.
  OpenStore();
  auto d = Start(pagerduty());
  Notification replayed = Make("pd", "g", 1);
  replayed.id = "replayed-trigger";
  ASSERT_TRUE(d->Enqueue(replayed).ok());
  ASSERT_TRUE(PollUntil([&] { return Count("pd", Metric::kSuperseded) == 1; }));
  ASSERT_TRUE(d->Enqueue(Make("pd", "other", 1)).ok());  // a barrier: the queue moved on
  ASSERT_TRUE(PollUntil([&] { return Count("pd", Metric::kDelivered) == 1; }));
  const std::vector<fakes::RecordedRequest> requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(Json(requests[0].body).at("event_action"), "resolve");
  EXPECT_EQ(Json(requests[1].body).at("event_action"), "trigger");
  EXPECT_EQ(Json(requests[1].body).at("payload").at("custom_details").at("group_key"), "other");
  const std::vector<DeliveryRecord> history = History(stale_trigger);
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].outcome, DeliveryRecord::Outcome::kSuperseded);
  EXPECT_EQ(history[0].attempt, 0u);
}

TEST_F(DispatcherTest, NotificationsOlderThanMaxAgeAreGivenUpAndCounted) {
  auto fake = std::make_unique<FakeNotifier>("oncall");
  FakeNotifier& notifier = *fake;
  notifier.SetDefault(Retryable());
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(std::move(fake));
  auto d = Start(std::move(notifiers));
  const Notification n = Make("oncall", "g", 1);
  ASSERT_TRUE(d->Enqueue(n).ok());
  ASSERT_TRUE(notifier.WaitForAttempts(1));
  ASSERT_TRUE(PollUntil([&] { return Count("oncall", Metric::kRetried) == 1; }));
  Advance(*d, hours(1) + seconds(1));
  ASSERT_TRUE(PollUntil([&] { return Count("oncall", Metric::kExpired) == 1; }));
  EXPECT_EQ(d->pending("oncall"), 0u);
  EXPECT_EQ(notifier.attempt_count(), 1u);
  const std::vector<DeliveryRecord> history = History(n);
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].outcome, DeliveryRecord::Outcome::kExpired);
  EXPECT_THAT(log_.Text(), HasSubstr("notification expired undelivered"));
}

TEST_F(DispatcherTest, SecretsNeverReachTheLogOrTheDeliveryLog) {
  const std::string secret_path = "/services/T0/B0/s3cr3tP4th";
  FakeHttpServer echo;  // answers with the URL it was called on
  echo.SetDefault(ScriptedResponse{.status = 404, .body = "cannot POST " + secret_path});
  uint16_t closed_port;
  {
    FakeHttpServer closed;
    closed_port = closed.port();
  }
  std::vector<std::unique_ptr<Notifier>> notifiers;
  for (const auto& [name, url] : std::vector<std::pair<std::string, std::string>>{
           {"refusing", echo.Url(secret_path)},
           {"down", "http://127.0.0.1:" + std::to_string(closed_port) + secret_path}}) {
    absl::StatusOr<std::unique_ptr<Notifier>> n =
        CreateNotifier(ReceiverConfig{.name = name,
                                      .kind = ReceiverConfig::Kind::kWebhook,
                                      .url = url,
                                      .hmac_secret = "whsec_c2VjcmV0S2V5",
                                      .headers = {{"Authorization", "Bearer h3aderT0ken"}}},
                       NotifierOptions{}, clock_, logger_);
    ASSERT_TRUE(n.ok()) << n.status();
    notifiers.push_back(std::move(*n));
  }
  auto d = Start(std::move(notifiers));
  const Notification refused = Make("refusing", "g", 1);
  const Notification undelivered = Make("down", "g", 1);
  ASSERT_TRUE(d->Enqueue(refused).ok());
  ASSERT_TRUE(d->Enqueue(undelivered).ok());
  ASSERT_TRUE(PollUntil([&] {
    return Count("refusing", Metric::kFailed) == 1 && Count("down", Metric::kRetried) >= 1;
  }));
  std::string recorded;
  for (const Notification& n : {refused, undelivered}) {
    for (const DeliveryRecord& r : History(n)) recorded += r.error + "\n";
  }
  const std::string log = log_.Text();
  EXPECT_THAT(recorded, HasSubstr("HTTP 404: cannot POST <secret>"));
  EXPECT_THAT(recorded, HasSubstr("cannot connect"));
  EXPECT_THAT(log, HasSubstr("receiver=refusing"));
  EXPECT_THAT(log, HasSubstr("receiver=down"));
  for (const std::string& secret :
       {std::string("s3cr3t"), std::string("c2VjcmV0S2V5"), std::string("h3aderT0ken")}) {
    EXPECT_THAT(log, Not(HasSubstr(secret)));
    EXPECT_THAT(recorded, Not(HasSubstr(secret)));
  }
}

TEST_F(DispatcherTest, EnqueueChecksItsInput) {
  auto fake = std::make_unique<FakeNotifier>("oncall");
  FakeNotifier& notifier = *fake;
  notifier.Block();
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(std::move(fake));
  DispatcherOptions options = Options();
  options.max_pending_per_receiver = 2;
  auto d = Start(std::move(notifiers), options);
  EXPECT_EQ(d->Enqueue(Make("nobody", "g", 1)).code(), absl::StatusCode::kNotFound);
  Notification anonymous = Make("oncall", "g", 1);
  anonymous.id.clear();
  EXPECT_EQ(d->Enqueue(anonymous).code(), absl::StatusCode::kInvalidArgument);
  Notification injected = Make("oncall", "g", 1);
  injected.id = "abc\r\nX-Injected: 1";
  EXPECT_EQ(d->Enqueue(injected).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(d->Enqueue(Make("oncall", "g", 1)).ok());
  ASSERT_TRUE(d->Enqueue(Make("oncall", "g", 1)).ok());  // the same id: accepted once
  EXPECT_EQ(d->pending("oncall"), 1u);
  ASSERT_TRUE(d->Enqueue(Make("oncall", "g", 2)).ok());
  EXPECT_EQ(d->Enqueue(Make("oncall", "g", 3)).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Count("oncall", Metric::kDropped), 1u);
  notifier.Unblock();
  ASSERT_TRUE(PollUntil([&] { return Count("oncall", Metric::kDelivered) == 2; }));
  EXPECT_EQ(notifier.attempt_count(), 2u);
}

TEST_F(DispatcherTest, ConcurrentEnqueuesKeepEveryGroupInOrder) {
  std::vector<FakeNotifier*> fakes;
  std::vector<std::unique_ptr<Notifier>> notifiers;
  for (const char* name : {"a", "b"}) {
    auto fake = std::make_unique<FakeNotifier>(name);
    fakes.push_back(fake.get());
    notifiers.push_back(std::move(fake));
  }
  auto d = Start(std::move(notifiers));
  constexpr int kThreads = 4;
  constexpr uint64_t kPerThread = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 1; i <= kPerThread; ++i) {
        const std::string receiver = i % 2 == 0 ? "a" : "b";
        EXPECT_TRUE(d->Enqueue(Make(receiver, "thread" + std::to_string(t), i)).ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(PollUntil([&] {
    return Count("a", Metric::kDelivered) + Count("b", Metric::kDelivered) +
               Count("a", Metric::kSuperseded) + Count("b", Metric::kSuperseded) ==
           kThreads * kPerThread;
  }));
  for (FakeNotifier* fake : fakes) {
    std::map<std::string, uint64_t> last;
    for (const Notification& n : fake->attempts()) {
      EXPECT_GT(n.sequence, last[n.group_key]) << n.group_key;
      last[n.group_key] = n.sequence;
    }
  }
}

TEST_F(DispatcherTest, MetricsPassPromtool) {
  FakeHttpServer server;
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(Webhook("oncall", server.Url("/hook")));
  notifiers.push_back(std::make_unique<FakeNotifier>("log"));
  auto d = Start(std::move(notifiers));
  ASSERT_TRUE(d->Enqueue(Make("oncall", "g", 1)).ok());
  ASSERT_TRUE(PollUntil([&] { return Count("oncall", Metric::kDelivered) == 1; }));
  const std::string text = prometheus::TextSerializer().Serialize(metrics_->Collect());
  EXPECT_THAT(
      text, HasSubstr("traceslo_notifications_total{receiver=\"oncall\",outcome=\"delivered\"} 1"));
  EXPECT_THAT(text,
              HasSubstr("traceslo_notifications_total{receiver=\"log\",outcome=\"expired\"} 0"));
  EXPECT_THAT(text, HasSubstr("traceslo_notification_queue_length{receiver=\"oncall\"} 0"));
  EXPECT_THAT(text,
              HasSubstr("traceslo_notification_delivery_seconds_count{receiver=\"oncall\"} 1"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "traceslo_notification_delivery_seconds_bucket{receiver=\"oncall\",le=\"+Inf\"} 1"));
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool is not installed";
  }
  const std::string file = dir_.File("metrics.txt");
  std::ofstream(file) << text;
  EXPECT_EQ(std::system(("promtool check metrics < " + file + " >/dev/null 2>&1").c_str()), 0)
      << text;
}

TEST_F(DispatcherTest, EntriesOfReceiversNoLongerConfiguredStayStored) {
  {
    auto fake = std::make_unique<FakeNotifier>("old");
    fake->SetDefault(Retryable());
    FakeNotifier& notifier = *fake;
    std::vector<std::unique_ptr<Notifier>> notifiers;
    notifiers.push_back(std::move(fake));
    auto d = Start(std::move(notifiers));
    ASSERT_TRUE(d->Enqueue(Make("old", "g", 1)).ok());
    ASSERT_TRUE(notifier.WaitForAttempts(1));
  }
  OpenStore();
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(std::make_unique<FakeNotifier>("new"));
  auto d = Start(std::move(notifiers));
  EXPECT_THAT(log_.Text(), HasSubstr("receiver=old pending=1"));
  absl::StatusOr<std::vector<OutboxEntry>> pending = store_->LoadPending();
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->size(), 1u);
}

TEST_F(DispatcherTest, TwoNotifiersForOneReceiverAreRefused) {
  std::vector<std::unique_ptr<Notifier>> notifiers;
  notifiers.push_back(std::make_unique<FakeNotifier>("x"));
  notifiers.push_back(std::make_unique<FakeNotifier>("x"));
  DispatcherMetrics metrics({"x"});
  absl::StatusOr<std::unique_ptr<Dispatcher>> d =
      Dispatcher::Create(clock_, *store_, metrics, logger_, std::move(notifiers), Options());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace traceslo::alerting
