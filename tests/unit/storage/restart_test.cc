// A kill -9 of `traceslo serve` in the middle of an outage, at unit level: the storage wiring of
// serve (SLI store restored from SQLite, DurableSliSource, StorageWriter, evaluator with restored
// alert states) is rebuilt from the file alone, and the evaluation goes on where it was.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "tests/fakes/fake_clock.h"
#include "tests/unit/storage/storage_test_util.h"
#include "traceslo/slo/evaluator.h"
#include "traceslo/storage/durable_sli_source.h"
#include "traceslo/storage/sqlite_store.h"
#include "traceslo/storage/storage_writer.h"

namespace traceslo::storage {
namespace {

using slo::AlertState;
using slo::AlertTransition;
using slo::Events;
using slo::Severity;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr int64_t kStartMinute = 28'333'334;          // unix minutes
constexpr uint64_t kRequests = 100;                   // per 10 s bucket
constexpr uint64_t kOutageErrors = 15;                // 15 %: 15x the budget of a 99 % SLO
constexpr int kFlushBuckets = 3;                      // storage.flush_interval 30 s
constexpr milliseconds kStoreRetention{30 * 60'000};  // pipeline.sli_retention
constexpr milliseconds kStorageRetention{2 * 3'600'000};
constexpr double kBudget = 0.01;

// 99 % over 1 h; the page fires when 5 m and 1 m both burn at 10x (10 % errors).
slo::Slo Availability() {
  slo::Slo slo;
  slo.service = "checkout";
  slo.name = "availability";
  slo.objective_percent = 99;
  slo.window = milliseconds(3'600'000);
  slo.sli.kind = slo::SliKind::kErrors;
  slo.alerting.tiers = {slo::BurnRateTier{.severity = Severity::kPage,
                                          .long_window = milliseconds(300'000),
                                          .short_window = milliseconds(60'000),
                                          .burn_rate = 10}};
  return slo;
}

// What serve wires for storage, in its order: open, restore the rollups into a new SLI store,
// then the durable source, the writer and the evaluator with the saved alert states.
struct Process {
  static std::unique_ptr<Process> Start(const std::string& path, const Clock& clock,
                                        const std::vector<std::string>& seen_first) {
    auto p = std::make_unique<Process>();
    for (const std::string& op : seen_first) p->registry.Resolve("inventory", op);
    auto sqlite = SqliteStore::Open(path);
    if (!sqlite.ok()) {
      ADD_FAILURE() << sqlite.status();
      return nullptr;
    }
    p->sqlite = *std::move(sqlite);
    const int64_t now_minute =
        std::chrono::duration_cast<minutes>(clock.Now().time_since_epoch()).count();
    auto rollups = p->sqlite->LoadRollups(
        now_minute - std::chrono::duration_cast<minutes>(kStoreRetention).count() - 1, p->registry);
    if (!rollups.ok()) {
      ADD_FAILURE() << rollups.status();
      return nullptr;
    }
    p->store.Restore(*rollups);
    p->durable = std::make_unique<DurableSliSource>(p->recent, p->store, *p->sqlite);
    p->writer =
        std::make_unique<StorageWriter>(StorageWriterOptions{.retention = kStorageRetention}, clock,
                                        p->store, p->registry, *p->sqlite);
    p->evaluator = std::make_unique<slo::Evaluator>(Options(), *p->durable);
    auto alerts = p->sqlite->LoadAlerts();
    if (!alerts.ok()) {
      ADD_FAILURE() << alerts.status();
      return nullptr;
    }
    p->evaluator->RestoreAlerts(*std::move(alerts));
    p->evaluator->SetRules({Availability()});
    return p;
  }

  static slo::EvaluatorOptions Options() {
    slo::EvaluatorOptions options;
    options.source_retention = kStorageRetention;
    return options;
  }

  void Apply(int64_t bucket, uint64_t requests, uint64_t errors) {
    const pipeline::SeriesRegistry::Ids ids = registry.Resolve("checkout", "POST /pay");
    pipeline::ShardDelta delta;
    pipeline::SeriesDelta& d = delta.series.emplace_back();
    d.series = ids.series;
    d.service = ids.service;
    d.bucket = bucket;
    d.requests = requests;
    d.errors = errors;
    d.latency.Add(20'000'000, requests);
    store.Apply(std::move(delta));
  }

  slo::AlertStatus PageAlert() const {
    for (const slo::AlertStatus& a : evaluator->Alerts()) {
      if (a.severity == Severity::kPage && !a.no_data) return a;
    }
    ADD_FAILURE() << "no page alert";
    return {};
  }

  pipeline::SeriesRegistry registry{100, 100};
  pipeline::SliStore store{pipeline::SliStoreOptions{.retention = kStoreRetention}};
  slo::StoreSliSource recent{registry, store};
  std::unique_ptr<SqliteStore> sqlite;
  std::unique_ptr<DurableSliSource> durable;
  std::unique_ptr<StorageWriter> writer;
  std::unique_ptr<slo::Evaluator> evaluator;
};

class RestartTest : public ::testing::Test {
 protected:
  int64_t NowBucket() const {
    return pipeline::BucketOfUnixNanos(
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.Now().time_since_epoch())
            .count());
  }

  // One evaluation interval, as serve runs it: a bucket of traffic, the clock moves past it, the
  // evaluator runs (alert states are saved when one changed), and every kFlushBuckets buckets
  // the storage ticker flushes.
  std::vector<AlertTransition> Step(Process& p, uint64_t errors) {
    const int64_t bucket = NowBucket();
    p.Apply(bucket, kRequests, errors);
    ledger_[bucket] += Events{.total = kRequests, .bad = errors};
    clock_.Advance(seconds(pipeline::kBucketSeconds));
    std::vector<AlertTransition> transitions = p.evaluator->Evaluate(clock_.Now());
    if (!transitions.empty()) {
      EXPECT_TRUE(p.writer->SaveAlerts(p.evaluator->Alerts()).ok());
    }
    if (++steps_ % kFlushBuckets == 0) {
      EXPECT_TRUE(p.writer->Flush().ok());
    }
    return transitions;
  }

  // The ledger's events in buckets [first, last].
  Events Ledger(int64_t first, int64_t last) const {
    Events e;
    for (auto it = ledger_.lower_bound(first); it != ledger_.end() && it->first <= last; ++it) {
      e += it->second;
    }
    return e;
  }

  static double Remaining(const Process& p) {
    return p.evaluator->Slos().at(0).error_budget_remaining_ratio;
  }

  ScratchDir dir_;
  fakes::FakeClock clock_{std::chrono::system_clock::time_point(minutes(kStartMinute))};
  std::map<int64_t, Events> ledger_;
  int64_t steps_ = 0;
};

TEST_F(RestartTest, KillMidOutageKeepsTheBudgetAndTheFiringAlert) {
  const std::string path = dir_.File("traceslo.db");
  std::unique_ptr<Process> p = Process::Start(path, clock_, {});
  ASSERT_NE(p, nullptr);
  // 90 minutes clean: the 1 h window is full, its older half only on disk.
  for (int i = 0; i < 90 * 6; ++i) ASSERT_TRUE(Step(*p, 0).empty()) << i;
  // The outage, until the page fires.
  int fired = 0;
  int outage_steps = 0;
  while (fired == 0 && outage_steps < 60) {
    ++outage_steps;
    for (const AlertTransition& t : Step(*p, kOutageErrors)) {
      if (t.status.severity == Severity::kPage && t.status.state == AlertState::kFiring) ++fired;
    }
  }
  ASSERT_EQ(fired, 1) << "after " << outage_steps << " buckets of outage";
  // Half a 5 m window more (so losing a flush interval cannot take the page's condition away),
  // then up to a moment when two applied buckets are not flushed yet.
  for (int i = 0; i < 15 || steps_ % kFlushBuckets != kFlushBuckets - 1; ++i) {
    ASSERT_TRUE(Step(*p, kOutageErrors).empty());
  }
  const slo::AlertStatus before = p->PageAlert();
  ASSERT_EQ(before.state, AlertState::kFiring);
  const double remaining_before = Remaining(*p);
  const int64_t last_evaluated = NowBucket();  // the 1 h window: (last_evaluated - 360, ...]
  // What may differ between the last evaluation before the kill and the first after it: the
  // buckets applied since the last flush (lost with the process: at most one flush interval),
  // the bucket applied after the restart, and the window's start moving on by one bucket, which
  // the evaluator reads in whole minutes there (at most one minute of the traffic of an hour
  // ago). Both evaluations lie within what those changes do to the ledger's window.
  const Events window = Ledger(last_evaluated - 359, last_evaluated);
  const Events head = Ledger(last_evaluated - 359, last_evaluated - 354);
  const double lowest_ratio =
      static_cast<double>(window.bad - kFlushBuckets * kOutageErrors - head.bad) /
      static_cast<double>(window.total + kRequests);
  const double highest_ratio =
      static_cast<double>(window.bad + kOutageErrors) /
      static_cast<double>(window.total - kFlushBuckets * kRequests - head.total);
  const double lowest = 1 - highest_ratio / kBudget;
  const double highest = 1 - lowest_ratio / kBudget;
  EXPECT_GE(remaining_before, lowest);
  EXPECT_LE(remaining_before, highest);

  const int64_t old_id = p->registry.FindSeries("checkout", "POST /pay");

  // kill -9: nothing more is written; the process's memory is gone.
  p.reset();
  // The new process meets other names first, so its ids differ from the old one's.
  p = Process::Start(path, clock_, {"GET /stock", "PUT /stock"});
  ASSERT_NE(p, nullptr);
  ASSERT_NE(p->registry.FindSeries("checkout", "POST /pay"), old_id);
  EXPECT_EQ(p->PageAlert().state, AlertState::kFiring) << "restored before any evaluation";

  const std::vector<AlertTransition> first = Step(*p, kOutageErrors);
  EXPECT_TRUE(first.empty()) << "not fired again, not resolved";
  const slo::AlertStatus after = p->PageAlert();
  EXPECT_EQ(after.state, AlertState::kFiring);
  EXPECT_EQ(after.fired_at_unix_nano, before.fired_at_unix_nano);
  EXPECT_EQ(after.active_since_unix_nano, before.active_since_unix_nano);

  const double remaining_after = Remaining(*p);
  EXPECT_GE(remaining_after, lowest) << "before the kill: " << remaining_before;
  EXPECT_LE(remaining_after, highest) << "before the kill: " << remaining_before;
  EXPECT_LE(std::abs(remaining_after - remaining_before), highest - lowest);
  // The bound is tight enough to matter: had the restart lost the half hour that only SQLite
  // holds, the same errors over half the events would put the budget far below it.
  const double without_disk =
      1 - static_cast<double>(window.bad) / (static_cast<double>(window.total) / 2) / kBudget;
  EXPECT_LT(without_disk, lowest);

  // Control: an evaluator that did not get the saved states fires again at the same moment.
  {
    slo::Evaluator forgetful(Process::Options(), *p->durable);
    forgetful.SetRules({Availability()});
    bool refired = false;
    for (const AlertTransition& t : forgetful.Evaluate(clock_.Now())) {
      refired |= t.status.state == AlertState::kFiring;
    }
    EXPECT_TRUE(refired);
  }

  // The outage goes on for a minute, then ends: the page resolves exactly once.
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(Step(*p, kOutageErrors).empty()) << i;
  std::map<AlertState, int> transitions;
  for (int i = 0; i < 20 * 6; ++i) {
    for (const AlertTransition& t : Step(*p, 0)) ++transitions[t.status.state];
  }
  EXPECT_EQ(transitions, (std::map<AlertState, int>{{AlertState::kResolved, 1}}));
  EXPECT_EQ(p->PageAlert().state, AlertState::kResolved);
  EXPECT_EQ(p->durable->read_errors(), 0u);

  // And the resolution itself survives the next restart.
  ASSERT_TRUE(p->writer->Flush().ok());
  p.reset();
  p = Process::Start(path, clock_, {});
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->PageAlert().state, AlertState::kResolved);
  EXPECT_TRUE(Step(*p, 0).empty());
}

}  // namespace
}  // namespace traceslo::storage
