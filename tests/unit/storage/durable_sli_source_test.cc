#include "traceslo/storage/durable_sli_source.h"

#include <gtest/gtest.h>

#include <array>
#include <random>

#include "tests/fakes/fake_clock.h"
#include "tests/unit/storage/storage_test_util.h"
#include "traceslo/storage/storage_writer.h"

namespace traceslo::storage {
namespace {

using pipeline::LatencySketch;
using pipeline::SeriesRegistry;
using slo::Events;
using slo::SliKind;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int64_t kMinute0 = 28'333'334;  // unix minutes
constexpr int64_t kBucket0 = kMinute0 * pipeline::kBucketsPerMinute;
// 3 h and 30 s of traffic: with a 1 h store the oldest held bucket falls mid-minute.
constexpr int kBuckets = 3 * 360 + 3;
constexpr int kLast = kBuckets - 1;
constexpr int kRingBuckets = 360;  // pipeline.sli_retention 1 h of 10 s buckets
// The store holds buckets (kLast - 360, kLast]: its oldest is 723, mid-minute 120. Minute 120
// (buckets 720..725) is therefore read from disk, and the store answers from bucket 726 on.
constexpr int kOldestHeld = kLast - kRingBuckets + 1;
constexpr int kFirstFromMemory = (kOldestHeld + 5) / 6 * 6;
static_assert(kOldestHeld == 723 && kFirstFromMemory == 726);

// Entry-span durations: a latency SLI at 300 ms counts exactly the slow ones as bad (their
// sketch buckets lie far from the threshold's).
constexpr uint64_t kFastNanos = 4'000'000;
constexpr uint64_t kMediumNanos = 120'000'000;
constexpr uint64_t kSlowNanos = 900'000'000;
constexpr milliseconds kThreshold{300};

constexpr std::array<const char*, 2> kOperations = {"POST /pay", "GET /cart"};

struct OpBucket {
  uint64_t fast = 0, medium = 0, slow = 0, errors = 0;
  uint64_t requests() const { return fast + medium + slow; }
};
struct TraceBucket {
  uint64_t traces = 0, root = 0, origin = 0, partial = 0, breaks = 0;
};

// Per bucket: checkout's two operations and trace-level counts, and a search service whose
// operation has the same name as one of checkout's (it must never be counted).
struct Traffic {
  std::vector<std::array<OpBucket, 2>> checkout;
  std::vector<TraceBucket> checkout_traces;
  std::vector<OpBucket> search;
  std::vector<TraceBucket> search_traces;
};

Traffic Generate() {
  std::mt19937 rng(2024);
  auto op = [&] {
    OpBucket o{.fast = 20 + rng() % 30, .medium = rng() % 8, .slow = rng() % 5};
    o.errors = rng() % 4 == 0 ? rng() % (o.requests() + 1) : rng() % 2;
    return o;
  };
  auto traces = [&] {
    TraceBucket t{.traces = 10 + rng() % 20};
    t.root = rng() % 4;
    t.origin = rng() % 3;
    t.partial = rng() % 3;
    t.breaks = rng() % 2;
    return t;
  };
  Traffic out;
  for (int i = 0; i < kBuckets; ++i) {
    out.checkout.push_back({op(), op()});
    out.checkout_traces.push_back(traces());
    out.search.push_back(op());
    out.search_traces.push_back(traces());
  }
  return out;
}

slo::Slo MakeSlo(SliKind kind) {
  slo::Slo slo;
  slo.service = "checkout";
  slo.name = std::string(slo::SliKindName(kind));
  slo.objective_percent = 99;
  slo.sli.kind = kind;
  slo.sli.latency.threshold = kThreshold;
  return slo;
}

struct Case {
  std::string name;
  slo::Slo slo;
};

std::vector<Case> Cases() {
  std::vector<Case> out;
  out.push_back({"errors", MakeSlo(SliKind::kErrors)});
  out.push_back({"errors of POST /pay", MakeSlo(SliKind::kErrors)});
  out.back().slo.filter.operations = {"POST /pay"};
  out.push_back({"errors but POST /pay", MakeSlo(SliKind::kErrors)});
  out.back().slo.filter.exclude_operations = {"POST /pay"};
  out.push_back({"latency", MakeSlo(SliKind::kLatency)});
  out.push_back({"latency of GET /cart", MakeSlo(SliKind::kLatency)});
  out.back().slo.filter.operations = {"GET /cart"};
  out.push_back({"error traces (root)", MakeSlo(SliKind::kErrorTraces)});
  out.push_back({"error traces (origin)", MakeSlo(SliKind::kErrorTraces)});
  out.back().slo.sli.error_traces.role = slo::ErrorTraceRole::kOrigin;
  out.push_back({"partial traces", MakeSlo(SliKind::kPartialTraces)});
  return out;
}

bool SeriesKind(SliKind kind) { return kind == SliKind::kErrors || kind == SliKind::kLatency; }

class DurableSliSourceTest : public ::testing::Test {
 protected:
  DurableSliSourceTest()
      : clock_(std::chrono::system_clock::time_point(seconds(kBucket0 * pipeline::kBucketSeconds))),
        registry_(100, 100),
        store_(pipeline::SliStoreOptions{.retention = milliseconds(3'600'000)}),
        recent_(registry_, store_),
        traffic_(Generate()) {}

  // Feeds the traffic bucket by bucket, flushing to SQLite at the end of every minute (and
  // after the last, partial one), as serve's storage ticker would.
  void SetUp() override {
    auto sqlite = SqliteStore::Open(dir_.File("traceslo.db"));
    ASSERT_TRUE(sqlite.ok()) << sqlite.status();
    sqlite_ = *std::move(sqlite);
    durable_ = std::make_unique<DurableSliSource>(recent_, store_, *sqlite_);
    StorageWriter writer(StorageWriterOptions{}, clock_, store_, registry_, *sqlite_);
    const SeriesRegistry::Ids search = registry_.Resolve("search", "POST /pay");
    for (int i = 0; i < kBuckets; ++i) {
      const int64_t bucket = kBucket0 + i;
      pipeline::ShardDelta delta;
      for (size_t k = 0; k < kOperations.size(); ++k) {
        AddSeries(delta, registry_.Resolve("checkout", kOperations[k]), bucket,
                  traffic_.checkout[i][k]);
      }
      AddSeries(delta, search, bucket, traffic_.search[i]);
      AddService(delta, registry_.Resolve("checkout", kOperations[0]).service, bucket,
                 traffic_.checkout_traces[i]);
      AddService(delta, search.service, bucket, traffic_.search_traces[i]);
      store_.Apply(std::move(delta));
      clock_.Advance(seconds(pipeline::kBucketSeconds));
      if (i % 6 == 5 || i == kLast) {
        ASSERT_TRUE(writer.Flush().ok()) << i;
      }
    }
  }

  static void AddSeries(pipeline::ShardDelta& delta, SeriesRegistry::Ids ids, int64_t bucket,
                        const OpBucket& o) {
    pipeline::SeriesDelta& d = delta.series.emplace_back();
    d.series = ids.series;
    d.service = ids.service;
    d.bucket = bucket;
    d.requests = o.requests();
    d.errors = o.errors;
    d.latency.Add(kFastNanos, o.fast);
    d.latency.Add(kMediumNanos, o.medium);
    d.latency.Add(kSlowNanos, o.slow);
  }
  static void AddService(pipeline::ShardDelta& delta, uint32_t service, int64_t bucket,
                         const TraceBucket& t) {
    delta.services.push_back(pipeline::ServiceDelta{.service = service,
                                                    .bucket = bucket,
                                                    .traces = t.traces,
                                                    .error_traces_root = t.root,
                                                    .error_traces_origin = t.origin,
                                                    .partial_traces = t.partial,
                                                    .propagation_breaks = t.breaks});
  }

  // The SLI's events in bucket i (0-based), straight from the generated traffic.
  Events BucketEvents(const slo::Slo& slo, int i) const {
    Events e;
    switch (slo.sli.kind) {
      case SliKind::kErrors:
      case SliKind::kLatency:
        for (size_t k = 0; k < kOperations.size(); ++k) {
          if (!slo.filter.Matches(kOperations[k])) continue;
          const OpBucket& o = traffic_.checkout[i][k];
          e.total += o.requests();
          e.bad += slo.sli.kind == SliKind::kErrors ? o.errors : o.slow;
        }
        break;
      case SliKind::kErrorTraces:
      case SliKind::kPartialTraces: {
        const TraceBucket& t = traffic_.checkout_traces[i];
        e.total = t.traces;
        e.bad = slo.sli.kind == SliKind::kPartialTraces                   ? t.partial
                : slo.sli.error_traces.role == slo::ErrorTraceRole::kRoot ? t.root
                                                                          : t.origin;
        break;
      }
      case SliKind::kLatencyQuantile:
        ADD_FAILURE() << "not generated";
        break;
    }
    return e;
  }
  LatencySketch BucketLatency(const slo::Slo& slo, int i) const {
    LatencySketch s;
    for (size_t k = 0; k < kOperations.size(); ++k) {
      if (!slo.filter.Matches(kOperations[k])) continue;
      const OpBucket& o = traffic_.checkout[i][k];
      s.Add(kFastNanos, o.fast);
      s.Add(kMediumNanos, o.medium);
      s.Add(kSlowNanos, o.slow);
    }
    return s;
  }

  // Buckets [first, last] (0-based, clipped to the traffic).
  Events Sum(const slo::Slo& slo, int first, int last) const {
    Events e;
    for (int i = std::max(first, 0); i <= std::min(last, kLast); ++i) e += BucketEvents(slo, i);
    return e;
  }
  LatencySketch SumLatency(const slo::Slo& slo, int first, int last) const {
    LatencySketch s;
    for (int i = std::max(first, 0); i <= std::min(last, kLast); ++i) {
      s.Merge(BucketLatency(slo, i));
    }
    return s;
  }

  ScratchDir dir_;
  fakes::FakeClock clock_;
  SeriesRegistry registry_;
  pipeline::SliStore store_;
  slo::StoreSliSource recent_;
  const Traffic traffic_;
  std::unique_ptr<SqliteStore> sqlite_;
  std::unique_ptr<DurableSliSource> durable_;
};

void ExpectEvents(const Events& got, const Events& want, const std::string& what) {
  EXPECT_EQ(got.total, want.total) << what;
  EXPECT_EQ(got.bad, want.bad) << what;
}

TEST_F(DurableSliSourceTest, WindowsOverDiskAndMemoryEqualTheTraffic) {
  ASSERT_EQ(store_.OldestHeldBucket(), kBucket0 + kOldestHeld);
  // Windows whose disk part starts on a minute boundary.
  struct Window {
    std::string name;
    int first, last;
  };
  const std::vector<Window> windows = {
      {"all 3 h 30 s", 0, kLast},
      {"from minute 50: 2 h 10.5 m", 300, kLast},
      {"last 5 m, memory only", kLast - 29, kLast},
      {"from the first minute the store holds whole", kFirstFromMemory, kLast},
      {"disk only, minutes 10..99", 60, 599},
      {"disk up to the first held minute", 0, kFirstFromMemory - 1},
      {"disk into memory, minutes 100..129", 600, 779},
  };
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    for (const Window& w : windows) {
      ExpectEvents(durable_->EventsIn(c.slo, kBucket0 + w.first, kBucket0 + w.last),
                   Sum(c.slo, w.first, w.last), w.name);
      if (SeriesKind(c.slo.sli.kind)) {
        EXPECT_TRUE(durable_->LatencyIn(c.slo, kBucket0 + w.first, kBucket0 + w.last) ==
                    SumLatency(c.slo, w.first, w.last))
            << w.name;
      }
    }
  }
  // The premise: the store alone no longer holds the first two hours.
  const slo::Slo errors = MakeSlo(SliKind::kErrors);
  EXPECT_LT(recent_.EventsIn(errors, kBucket0, kBucket0 + kLast).total,
            Sum(errors, 0, kLast).total);
  EXPECT_EQ(recent_.EventsIn(errors, kBucket0, kBucket0 + kLast).total,
            Sum(errors, kOldestHeld, kLast).total);
  EXPECT_EQ(durable_->read_errors(), 0u);
}

TEST_F(DurableSliSourceTest, MinuteEventsEqualTheTrafficOfEachMinute) {
  const int64_t minutes = (kBuckets + 5) / 6;  // 181: minute 180 holds buckets 1080..1082
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    // One minute before the traffic and one after it: no events.
    const std::vector<Events> got = durable_->MinuteEvents(c.slo, kMinute0 - 1, kMinute0 + minutes);
    ASSERT_EQ(got.size(), static_cast<size_t>(minutes + 2));
    ExpectEvents(got.front(), Events{}, "minute -1");
    ExpectEvents(got.back(), Events{}, "minute after");
    for (int64_t m = 0; m < minutes; ++m) {
      ExpectEvents(got[static_cast<size_t>(m + 1)],
                   Sum(c.slo, static_cast<int>(m * 6), static_cast<int>(m * 6 + 5)),
                   "minute " + std::to_string(m));
    }
    // A range wholly on disk, and one wholly in memory.
    const std::vector<Events> disk = durable_->MinuteEvents(c.slo, kMinute0 + 3, kMinute0 + 5);
    ASSERT_EQ(disk.size(), 3u);
    ExpectEvents(disk[2], Sum(c.slo, 30, 35), "disk minute 5");
    const std::vector<Events> memory =
        durable_->MinuteEvents(c.slo, kMinute0 + 150, kMinute0 + 150);
    ASSERT_EQ(memory.size(), 1u);
    ExpectEvents(memory[0], Sum(c.slo, 900, 905), "memory minute 150");
  }
  EXPECT_EQ(durable_->read_errors(), 0u);
}

// The rule for edges that are not on minute boundaries: SQLite has whole minutes only, so a
// minute older than the store's reach (its first bucket is older than the oldest held bucket)
// counts whole when its first bucket lies in the range, and not at all otherwise. The store
// answers from the first minute it holds whole.
TEST_F(DurableSliSourceTest, DiskMinutesCountWholeAtTheirFirstBucket) {
  auto rule_sum = [&](const slo::Slo& slo, int first, int last) {
    Events e;
    for (int i = 0; i <= kLast; ++i) {
      const int at = i >= kFirstFromMemory ? i : i / 6 * 6;
      if (at >= first && at <= last) e += BucketEvents(slo, i);
    }
    return e;
  };
  struct Window {
    std::string name;
    int first, last;
    int plain_first, plain_last;  // the same, written as plain bucket ranges
  };
  const std::vector<Window> windows = {
      {"last 3 h: minute 0 begins before it", 3, kLast, 6, kLast},
      {"ends in minute 100: counted whole", 60, 603, 60, 605},
      {"only minute 0's first bucket", 0, 0, 0, 5},
      {"inside minute 0, without its first bucket", 2, 4, 1, 0},
      {"from the oldest held bucket: minute 120 began before it", kOldestHeld, 800,
       kFirstFromMemory, 800},
  };
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    for (const Window& w : windows) {
      const Events want = rule_sum(c.slo, w.first, w.last);
      const Events plain = Sum(c.slo, w.plain_first, w.plain_last);
      ASSERT_EQ(want.total, plain.total) << w.name;  // the two statements of the rule agree
      ExpectEvents(durable_->EventsIn(c.slo, kBucket0 + w.first, kBucket0 + w.last), want, w.name);
    }
  }
}

TEST_F(DurableSliSourceTest, AStoreThatHoldsNothingReadsEverythingFromDisk) {
  // A new process before any span: the whole history is on disk, up to the last flush.
  SeriesRegistry registry(100, 100);
  pipeline::SliStore empty(pipeline::SliStoreOptions{});
  slo::StoreSliSource recent(registry, empty);
  DurableSliSource durable(recent, empty, *sqlite_);
  ASSERT_EQ(empty.OldestHeldBucket(), INT64_MAX);
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    ExpectEvents(durable.EventsIn(c.slo, kBucket0, kBucket0 + kLast), Sum(c.slo, 0, kLast), "all");
    ExpectEvents(durable.EventsIn(c.slo, kBucket0 + 900, kBucket0 + 959), Sum(c.slo, 900, 959),
                 "minutes 150..159");
    if (SeriesKind(c.slo.sli.kind)) {
      EXPECT_TRUE(durable.LatencyIn(c.slo, kBucket0, kBucket0 + kLast) ==
                  SumLatency(c.slo, 0, kLast));
    }
  }
}

TEST_F(DurableSliSourceTest, AnUnreadableMinuteIsAReadErrorAndReadsAsNoEvents) {
  RawDb(dir_.File("traceslo.db"))
      .Exec("UPDATE series_minutes SET latency = X'01' WHERE minute = " +
            std::to_string(kMinute0 + 30));
  const slo::Slo latency = MakeSlo(SliKind::kLatency);
  // The disk part of the read fails as a whole; the store's part is still there.
  ExpectEvents(durable_->EventsIn(latency, kBucket0, kBucket0 + kLast),
               Sum(latency, kFirstFromMemory, kLast), "latency");
  EXPECT_EQ(durable_->read_errors(), 1u);
  EXPECT_TRUE(durable_->LatencyIn(latency, kBucket0, kBucket0 + kLast) ==
              SumLatency(latency, kFirstFromMemory, kLast));
  EXPECT_EQ(durable_->read_errors(), 2u);
  // Counts do not read the sketch: errors are whole.
  const slo::Slo errors = MakeSlo(SliKind::kErrors);
  ExpectEvents(durable_->EventsIn(errors, kBucket0, kBucket0 + kLast), Sum(errors, 0, kLast),
               "errors");
  EXPECT_EQ(durable_->read_errors(), 2u);
}

}  // namespace
}  // namespace traceslo::storage
