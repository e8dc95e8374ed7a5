#include "traceslo/pipeline/sli_processor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include "tests/fakes/fake_clock.h"

namespace traceslo::pipeline {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int64_t kSecond = 1'000'000'000;

// One span as a test writes it; times are offsets from the fake clock's start, in ms.
struct TestSpan {
  uint64_t trace = 1;
  uint64_t id = 0;
  uint64_t parent = 0;
  std::string service = "a";
  std::string name = "op";
  SpanKind kind = SpanKind::kServer;
  int64_t start_ms = 0;
  int64_t duration_ms = 10;
  int64_t duration_ns = -1;  // when set, overrides duration_ms
  StatusCode status = StatusCode::kUnset;
  int32_t http_status = 0;
  std::string exception_type;
  std::string exception_message;
};

TraceId TraceOf(uint64_t n) {
  TraceId id{};
  id[0] = 0xab;
  for (int b = 0; b < 8; ++b) id[8 + b] = static_cast<uint8_t>(n >> (8 * b));
  return id;
}

class Harness {
 public:
  explicit Harness(SliOptions options = {}, uint32_t max_services = 100, uint32_t max_ops = 100)
      : registry(max_services, max_ops),
        store(SliStoreOptions{.shards = 1}),
        processor(options, clock, registry, store) {}

  int64_t start_nanos() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               fakes::FakeClock().Now().time_since_epoch())
        .count();
  }

  void Send(const std::vector<TestSpan>& spans) {
    SpanBatch batch;
    for (const TestSpan& t : spans) {
      Span s;
      s.trace_id = TraceOf(t.trace);
      s.span_id = t.id;
      s.parent_span_id = t.parent;
      s.service = batch.Add(t.service, kMaxNameBytes);
      s.name = batch.Add(t.name, kMaxNameBytes);
      s.kind = t.kind;
      s.status = t.status;
      s.http_status = t.http_status;
      s.exception_type = batch.Add(t.exception_type, kMaxMessageBytes);
      s.exception_message = batch.Add(t.exception_message, kMaxMessageBytes);
      s.start_unix_nano = static_cast<uint64_t>(start_nanos() + t.start_ms * 1'000'000);
      s.end_unix_nano =
          s.start_unix_nano +
          static_cast<uint64_t>(t.duration_ns >= 0 ? t.duration_ns : t.duration_ms * 1'000'000);
      batch.spans.push_back(s);
    }
    ShardBatch shard_batch;
    shard_batch.strings = std::make_shared<const std::string>(std::move(batch.strings));
    shard_batch.spans = std::move(batch.spans);
    processor.Process(shard_batch);
  }

  void Advance(milliseconds d) { clock.Advance(d); }
  void Tick() { processor.OnTick(); }

  SliStore::SeriesTotals Series(std::string_view service, std::string_view op) {
    const int64_t id = registry.FindSeries(service, op);
    if (id < 0) return {};
    auto all = store.AllSeriesTotals();
    return static_cast<size_t>(id) < all.size() ? all[id] : SliStore::SeriesTotals{};
  }
  SliStore::ServiceTotals Service(std::string_view service) {
    const int64_t id = registry.FindService(service);
    if (id < 0) return {};
    auto all = store.AllServiceTotals();
    return static_cast<size_t>(id) < all.size() ? all[id] : SliStore::ServiceTotals{};
  }

  fakes::FakeClock clock;
  SeriesRegistry registry;
  SliStore store;
  SliShardProcessor processor;
};

// Seed(): a trace completed elsewhere is late for trace_max_age after its completion, then its
// id starts a new trace; one still live there takes its spans (neither late nor a trace here)
// until the idle rule completes it at a tick.
TEST(SliProcessorTest, SeededTracesCompleteAndAreForgottenByTheEngineRules) {
  Harness h;  // idle timeout 15 s, max age 60 s
  const int64_t t0 = h.start_nanos();
  EXPECT_EQ(h.processor.Seed({{.trace_id = TraceOf(1),
                               .first_arrival_nanos = t0 - 30 * kSecond,
                               .last_arrival_nanos = t0 - 25 * kSecond,
                               .completed_nanos = t0 - 10 * kSecond},
                              {.trace_id = TraceOf(2),
                               .first_arrival_nanos = t0 - 8 * kSecond,
                               .last_arrival_nanos = t0 - 5 * kSecond}}),
            0u);
  auto child = [](uint64_t trace, uint64_t id) {
    return TestSpan{.trace = trace, .id = id, .parent = trace * 100, .name = "child"};
  };
  h.Send({child(1, 10), child(2, 20)});
  h.Tick();
  EXPECT_EQ(h.store.Totals().late_spans, 1u);  // trace 1's
  EXPECT_EQ(h.processor.seeded_late_spans(), 1u);
  EXPECT_EQ(h.processor.live_traces(), 0u);
  h.Advance(seconds(14));
  h.Tick();  // trace 2 idle for 14 s: still open
  h.Send({child(2, 21)});
  h.Advance(seconds(15));
  h.Tick();  // idle for 15 s: complete
  h.Send({child(2, 22)});
  h.Tick();
  EXPECT_EQ(h.store.Totals().late_spans, 2u);
  EXPECT_EQ(h.processor.seeded_late_spans(), 2u);
  h.Advance(seconds(21));
  h.Tick();  // 60 s after trace 1 completed: forgotten
  h.Send({{.trace = 1, .id = 11}});
  EXPECT_EQ(h.processor.live_traces(), 1u);
  h.Advance(seconds(16));
  h.Tick();
  EXPECT_EQ(h.Service("a").traces, 1u) << "only the new trace 1 is a trace here";
  EXPECT_EQ(h.Service("a").partial_traces, 0u);
  EXPECT_EQ(h.Series("a", "child").requests, 4u) << "every span is an entry span (SERVER)";
  EXPECT_EQ(h.store.Totals().late_spans, 2u);
  EXPECT_EQ(h.processor.seeded_late_spans(), 2u);
}

TEST(ErrorPolicyTest, StatusThenHttpThenGrpc) {
  ErrorPolicy policy;
  auto span = [](StatusCode status, int32_t http, int32_t rpc, SpanKind kind) {
    Span s;
    s.status = status;
    s.http_status = http;
    s.rpc_status = rpc;
    s.kind = kind;
    return s;
  };
  EXPECT_TRUE(IsErrorSpan(span(StatusCode::kError, 200, -1, SpanKind::kServer), policy));
  EXPECT_FALSE(IsErrorSpan(span(StatusCode::kOk, 503, 13, SpanKind::kServer), policy));
  EXPECT_TRUE(IsErrorSpan(span(StatusCode::kUnset, 500, -1, SpanKind::kServer), policy));
  EXPECT_TRUE(IsErrorSpan(span(StatusCode::kUnset, 599, -1, SpanKind::kInternal), policy));
  EXPECT_FALSE(IsErrorSpan(span(StatusCode::kUnset, 404, -1, SpanKind::kServer), policy));
  EXPECT_FALSE(IsErrorSpan(span(StatusCode::kUnset, 499, -1, SpanKind::kServer), policy));
  EXPECT_FALSE(IsErrorSpan(span(StatusCode::kUnset, 503, -1, SpanKind::kClient), policy));
  for (int code = 0; code <= 16; ++code) {
    const bool fault =
        code == 2 || code == 4 || code == 12 || code == 13 || code == 14 || code == 15;
    EXPECT_EQ(IsErrorSpan(span(StatusCode::kUnset, 0, code, SpanKind::kServer), policy), fault)
        << code;
  }
  ErrorPolicy strict{.http_status_min = 400, .grpc_code_mask = 1u << 5};
  EXPECT_TRUE(IsErrorSpan(span(StatusCode::kUnset, 404, -1, SpanKind::kServer), strict));
  EXPECT_TRUE(IsErrorSpan(span(StatusCode::kUnset, 0, 5, SpanKind::kServer), strict));
  EXPECT_FALSE(IsErrorSpan(span(StatusCode::kUnset, 0, 13, SpanKind::kServer), strict));
}

// Random traffic: counts of entry spans per (service, operation) and the exact p99 of their
// durations are computed here from the generated spans, not by the code under test.
TEST(SliProcessorTest, RequestsErrorsAndLatencyMatchAnIndependentCount) {
  Harness h;
  std::mt19937_64 rng(7);
  std::map<std::pair<std::string, std::string>, uint64_t> requests, errors;
  std::map<std::string, std::vector<double>> durations_by_service;
  const std::vector<std::string> services = {"checkout", "cart", "payment"};
  const std::vector<std::string> ops = {"GET /", "POST /pay", "GET /item"};
  uint64_t next_id = 1;
  for (int round = 0; round < 50; ++round) {
    std::vector<TestSpan> batch;
    for (int t = 0; t < 40; ++t) {
      const uint64_t trace = next_id;
      // A SERVER root plus two INTERNAL children of the same service: only the root is an entry.
      TestSpan root{.trace = trace, .id = next_id++, .parent = 0};
      root.service = services[rng() % services.size()];
      root.name = ops[rng() % ops.size()];
      root.duration_ms = 1 + static_cast<int64_t>(std::exp(std::normal_distribution<>(3, 1)(rng)));
      root.http_status = rng() % 10 == 0 ? 503 : 200;
      root.start_ms = round * 100;
      for (int c = 0; c < 2; ++c) {
        TestSpan child{.trace = trace, .id = next_id++, .parent = root.id};
        child.service = root.service;
        child.name = "internal";
        child.kind = SpanKind::kInternal;
        child.start_ms = root.start_ms;
        child.duration_ms = 1;
        child.status = rng() % 7 == 0 ? StatusCode::kError : StatusCode::kUnset;
        batch.push_back(child);  // children first, as SDKs export them
      }
      batch.push_back(root);
      ++requests[{root.service, root.name}];
      if (root.http_status >= 500) ++errors[{root.service, root.name}];
      durations_by_service[root.service].push_back(static_cast<double>(root.duration_ms) * 1e6);
    }
    h.Send(batch);
    h.Advance(milliseconds(100));
  }
  h.Tick();
  for (const auto& [key, n] : requests) {
    SliStore::SeriesTotals totals = h.Series(key.first, key.second);
    EXPECT_EQ(totals.requests, n) << key.first << " " << key.second;
    EXPECT_EQ(totals.errors, errors[key]) << key.first << " " << key.second;
  }
  EXPECT_EQ(h.Series("checkout", "internal").requests, 0u) << "INTERNAL children are not entries";
  const int64_t now_bucket = BucketOfUnixNanos(h.start_nanos() + 5 * kSecond);
  for (auto& [service, samples] : durations_by_service) {
    std::sort(samples.begin(), samples.end());
    for (double q : {0.5, 0.95, 0.99}) {
      const double exact = samples[LatencySketch::NearestRank(q, samples.size()) - 1];
      WindowStats w = h.store.ServiceWindow(static_cast<uint32_t>(h.registry.FindService(service)),
                                            now_bucket - 10, now_bucket + 10);
      EXPECT_NEAR(w.latency.QuantileNanos(q), exact, exact * LatencySketch::kRelativeErrorBound)
          << service << " q=" << q;
    }
  }
}

TEST(SliProcessorTest, EntrySpansAcrossServicesWhateverTheArrivalOrder) {
  Harness h;
  // Trace 1: INTERNAL span of "b" under a SERVER span of "a"; parent first.
  h.Send({{.trace = 1, .id = 10, .service = "a", .name = "root"}});
  h.Send({{.trace = 1,
           .id = 11,
           .parent = 10,
           .service = "b",
           .name = "work",
           .kind = SpanKind::kInternal}});
  // Trace 2: the same, child first (the parent arrives later).
  h.Send({{.trace = 2,
           .id = 21,
           .parent = 20,
           .service = "b",
           .name = "work",
           .kind = SpanKind::kInternal}});
  h.Send({{.trace = 2, .id = 20, .service = "a", .name = "root"}});
  // Trace 3: an INTERNAL child of the same service, child first: not an entry.
  h.Send({{.trace = 3,
           .id = 31,
           .parent = 30,
           .service = "a",
           .name = "inner",
           .kind = SpanKind::kInternal}});
  h.Send({{.trace = 3, .id = 30, .service = "a", .name = "root"}});
  // Trace 4: an INTERNAL span whose parent never arrives: an entry (its parent is absent).
  h.Send({{.trace = 4,
           .id = 41,
           .parent = 40,
           .service = "c",
           .name = "lost",
           .kind = SpanKind::kInternal}});
  h.Tick();
  EXPECT_EQ(h.Series("b", "work").requests, 2u);
  EXPECT_EQ(h.Series("a", "inner").requests, 0u);
  EXPECT_EQ(h.Series("c", "lost").requests, 0u) << "undecided until the trace completes";
  h.Advance(seconds(16));
  h.Tick();
  EXPECT_EQ(h.Series("c", "lost").requests, 1u);
  EXPECT_EQ(h.Series("a", "root").requests, 3u);
  EXPECT_EQ(h.Series("a", "inner").requests, 0u);
}

// Entry spans decided later (their parent arrives after them) are counted from the stored
// record: durations must survive it exactly at every classic bucket bound.
TEST(SliProcessorTest, DeferredEntrySpansKeepExactDurations) {
  Harness h;
  const std::vector<int64_t> durations = {
      100'000'000,   100'000'001,   999'999'999,    1'073'741'823,  1'073'741'825,
      2'500'000'000, 2'500'000'001, 15'000'000'000, 15'000'000'001, 7'200'000'000'000};
  uint64_t trace = 1;
  for (int64_t d : durations) {
    h.Send({{.trace = trace,
             .id = 2,
             .parent = 1,
             .service = "child",
             .name = "work",
             .kind = SpanKind::kInternal,
             .duration_ns = d}});
    h.Send({{.trace = trace, .id = 1, .service = "parent", .name = "root"}});
    ++trace;
  }
  h.Tick();
  const SliStore::SeriesTotals totals = h.Series("child", "work");
  ASSERT_EQ(totals.requests, durations.size());
  std::array<uint64_t, kClassicBuckets> expected{};
  double sum = 0;
  for (int64_t d : durations) {
    size_t i = 0;
    while (i < kClassicBoundsSeconds.size() &&
           static_cast<double>(d) > kClassicBoundsSeconds[i] * 1e9) {
      ++i;
    }
    ++expected[i];
    sum += static_cast<double>(d) * 1e-9;
  }
  EXPECT_EQ(totals.classic, expected);
  EXPECT_NEAR(totals.sum_seconds, sum, 1e-5);  // only the 7200 s span is rounded (to 1 ms)
}

TEST(SliProcessorTest, PartialTraceShapes) {
  Harness h;
  // Missing root: b's SERVER span has a parent that never arrives.
  h.Send({{.trace = 1, .id = 11, .parent = 10, .service = "b", .name = "api"},
          {.trace = 1,
           .id = 12,
           .parent = 11,
           .service = "b",
           .name = "db",
           .kind = SpanKind::kClient}});
  // Orphan in the middle: a → (b's span lost) → c.
  h.Send({{.trace = 2, .id = 20, .service = "a", .name = "front"},
          {.trace = 2, .id = 22, .parent = 21, .service = "c", .name = "leaf"}});
  // Complete async fan-out: a PRODUCER root and two CONSUMER children that end after it and
  // arrive later, within the idle timeout.
  h.Send({{.trace = 3,
           .id = 30,
           .service = "a",
           .name = "publish",
           .kind = SpanKind::kProducer,
           .duration_ms = 5}});
  h.Advance(seconds(10));
  h.Send({{.trace = 3,
           .id = 31,
           .parent = 30,
           .service = "d",
           .name = "consume",
           .kind = SpanKind::kConsumer,
           .start_ms = 9000},
          {.trace = 3,
           .id = 32,
           .parent = 30,
           .service = "e",
           .name = "consume",
           .kind = SpanKind::kConsumer,
           .start_ms = 9500}});
  h.Advance(seconds(14));
  h.Tick();  // traces 1 and 2 idle for 24 s; trace 3 for 14 s: still live
  EXPECT_EQ(h.processor.live_traces(), 1u);
  h.Advance(seconds(2));
  h.Tick();
  EXPECT_EQ(h.processor.live_traces(), 0u);
  // Late span of trace 3 after completion: late, and no second trace.
  h.Send({{.trace = 3,
           .id = 33,
           .parent = 31,
           .service = "d",
           .name = "late",
           .kind = SpanKind::kInternal}});
  h.Advance(seconds(20));
  h.Tick();
  EXPECT_EQ(h.store.Totals().late_spans, 1u);

  EXPECT_EQ(h.Service("a").traces, 2u);
  EXPECT_EQ(h.Service("a").partial_traces, 1u);  // trace 2
  EXPECT_EQ(h.Service("a").propagation_breaks, 0u);
  EXPECT_EQ(h.Service("b").traces, 1u);
  EXPECT_EQ(h.Service("b").partial_traces, 1u);
  EXPECT_EQ(h.Service("b").propagation_breaks, 1u);
  EXPECT_EQ(h.Service("c").traces, 1u);
  EXPECT_EQ(h.Service("c").partial_traces, 1u);
  EXPECT_EQ(h.Service("c").propagation_breaks, 1u);
  for (const char* s : {"d", "e"}) {
    EXPECT_EQ(h.Service(s).traces, 1u) << s;
    EXPECT_EQ(h.Service(s).partial_traces, 0u) << s;
  }
}

TEST(SliProcessorTest, ErrorTracesCountForRootAndOriginService) {
  Harness h;
  // a (root) → b → c; c fails first (deepest), b and a report the propagated error.
  h.Send({{.trace = 1,
           .id = 3,
           .parent = 2,
           .service = "c",
           .name = "query",
           .status = StatusCode::kError,
           .exception_type = "SQLException",
           .exception_message = "deadlock on row 42"},
          {.trace = 1, .id = 2, .parent = 1, .service = "b", .name = "rpc", .http_status = 500},
          {.trace = 1, .id = 1, .service = "a", .name = "GET /", .http_status = 502}});
  // An error trace whose only error is in the root service.
  h.Send({{.trace = 2, .id = 5, .parent = 4, .service = "b", .name = "rpc"},
          {.trace = 2, .id = 4, .service = "a", .name = "GET /", .http_status = 500}});
  // A clean trace.
  h.Send({{.trace = 3, .id = 7, .parent = 6, .service = "b", .name = "rpc"},
          {.trace = 3, .id = 6, .service = "a", .name = "GET /"}});
  h.Advance(seconds(16));
  h.Tick();
  EXPECT_EQ(h.Service("a").traces, 3u);
  EXPECT_EQ(h.Service("a").error_traces_root, 2u);
  EXPECT_EQ(h.Service("a").error_traces_origin, 1u);  // trace 2
  EXPECT_EQ(h.Service("b").error_traces_root, 0u);
  EXPECT_EQ(h.Service("b").error_traces_origin, 0u);
  EXPECT_EQ(h.Service("c").error_traces_root, 0u);
  EXPECT_EQ(h.Service("c").error_traces_origin, 1u);
  EXPECT_EQ(h.Service("c").traces, 1u);
}

TEST(SliProcessorTest, MaxAgeCompletesABusyTraceAndEvictionIsOldestFirst) {
  Harness h(SliOptions{
      .trace_idle_timeout = seconds(15), .trace_max_age = seconds(60), .max_live_traces = 2});
  for (int i = 0; i < 7; ++i) {  // a span every 10 s: never idle, completes at 60 s
    h.Send({{.trace = 1,
             .id = static_cast<uint64_t>(100 + i),
             .parent = i == 0 ? 0u : 100u,
             .service = "a",
             .name = "busy",
             .kind = SpanKind::kInternal}});
    h.Advance(seconds(10));
    h.Tick();
  }
  EXPECT_EQ(h.Service("a").traces, 1u);
  EXPECT_EQ(h.processor.live_traces(), 0u) << "the 7th span arrived after completion: late";
  EXPECT_EQ(h.store.Totals().late_spans, 1u);

  h.Send({{.trace = 10, .id = 1, .service = "x"}});
  h.Advance(seconds(1));
  h.Send({{.trace = 11, .id = 2, .service = "y"}});
  h.Advance(seconds(1));
  h.Send({{.trace = 12, .id = 3, .service = "z"}});  // evicts trace 10 (oldest)
  h.Tick();
  EXPECT_EQ(h.store.Totals().evicted_traces, 1u);
  EXPECT_EQ(h.Service("x").traces, 1u);
  EXPECT_EQ(h.Service("y").traces, 0u);
  EXPECT_EQ(h.processor.live_traces(), 2u);
  EXPECT_EQ(h.store.Totals().live_traces, 2u);
  h.processor.OnShutdown();
  EXPECT_EQ(h.Service("y").traces, 1u);
  EXPECT_EQ(h.Service("z").traces, 1u);
  EXPECT_EQ(h.store.Totals().live_traces, 0u);
}

TEST(SliProcessorTest, ClockSkewIsClampedAndCounted) {
  Harness h;
  h.Advance(seconds(600));
  const int64_t now = h.start_nanos() + 600 * kSecond;
  // One span from the future (+1 h), one from the far past (-1 h), one on time.
  h.Send({{.trace = 1, .id = 1, .name = "future", .start_ms = 600'000 + 3'600'000},
          {.trace = 2, .id = 2, .name = "past", .start_ms = 600'000 - 3'600'000},
          {.trace = 3, .id = 3, .name = "now", .start_ms = 599'000}});
  h.Tick();
  EXPECT_EQ(h.store.Totals().clock_skew_spans, 2u);
  const auto series = [&](const char* op) {
    return static_cast<uint32_t>(h.registry.FindSeries("a", op));
  };
  const int64_t now_bucket = BucketOfUnixNanos(now);
  const int64_t oldest_bucket = BucketOfUnixNanos(now - 300 * kSecond);
  EXPECT_EQ(h.store.SeriesWindow(series("future"), now_bucket, now_bucket).requests, 1u);
  EXPECT_EQ(h.store.SeriesWindow(series("past"), oldest_bucket, oldest_bucket).requests, 1u);
  const int64_t on_time_bucket = BucketOfUnixNanos(now - 990'000'000);  // ends at 599.01 s
  EXPECT_EQ(h.store.SeriesWindow(series("now"), on_time_bucket, on_time_bucket).requests, 1u);
  // Latency is the span's own duration, whatever its clock.
  EXPECT_NEAR(h.store.SeriesWindow(series("future"), 0, INT64_MAX).latency.QuantileNanos(0.5), 10e6,
              10e6 * LatencySketch::kRelativeErrorBound);
}

TEST(SliProcessorTest, SpansBeyondTheTraceCapCountButAreNotKept) {
  Harness h(SliOptions{.max_spans_per_trace = 3});
  std::vector<TestSpan> spans;
  for (uint64_t i = 1; i <= 5; ++i) {
    spans.push_back({.trace = 1,
                     .id = i,
                     .parent = i == 1 ? uint64_t{0} : uint64_t{1},
                     .service = "a",
                     .name = "s",
                     .kind = SpanKind::kServer});
  }
  h.Send(spans);
  h.Advance(seconds(16));
  h.Tick();
  EXPECT_EQ(h.store.Totals().truncated_spans, 2u);
  EXPECT_EQ(h.Series("a", "s").requests, 5u);
  EXPECT_EQ(h.Service("a").traces, 1u);
}

TEST(SliProcessorTest, OperationsBeyondTheCapFoldIntoOther) {
  Harness h(SliOptions{}, 100, 2);
  h.Send({{.trace = 1, .id = 1, .name = "op1"},
          {.trace = 2, .id = 2, .name = "op2"},
          {.trace = 3, .id = 3, .name = "op3"},
          {.trace = 4, .id = 4, .name = "op4"},
          {.trace = 5, .id = 5, .name = "op1"}});
  h.Tick();
  EXPECT_EQ(h.Series("a", "op1").requests, 2u);
  EXPECT_EQ(h.Series("a", "op2").requests, 1u);
  EXPECT_EQ(h.Series("a", "other").requests, 2u);
  EXPECT_EQ(h.registry.FindSeries("a", "op3"), -1);
  EXPECT_EQ(h.registry.overflow().operations, 2u);
}

TEST(SliProcessorTest, ExemplarsKeepTheSlowestAndTheLatestErrorPerSignature) {
  Harness h;
  h.Send({{.trace = 1, .id = 1, .name = "op", .duration_ms = 30},
          {.trace = 2, .id = 2, .name = "op", .duration_ms = 90},
          {.trace = 3, .id = 3, .name = "op", .duration_ms = 60},
          {.trace = 4,
           .id = 4,
           .name = "op",
           .start_ms = 1,
           .status = StatusCode::kError,
           .exception_type = "Timeout",
           .exception_message = "after 1500 ms"},
          {.trace = 5,
           .id = 5,
           .name = "op",
           .start_ms = 2,
           .status = StatusCode::kError,
           .exception_type = "Timeout",
           .exception_message = "after 2500 ms"}});
  h.Advance(seconds(16));
  h.Tick();
  const auto series = static_cast<uint32_t>(h.registry.FindSeries("a", "op"));
  std::vector<ExemplarRef> exemplars = h.store.Exemplars(series, 0, INT64_MAX);
  ASSERT_EQ(exemplars.size(), 2u);
  EXPECT_EQ(exemplars[0]->trace_id, TraceOf(2));  // slowest
  EXPECT_EQ(exemplars[1]->trace_id, TraceOf(5));  // latest of the one signature
  ASSERT_EQ(exemplars[1]->spans.size(), 1u);
  EXPECT_TRUE(exemplars[1]->spans[0].error);
  EXPECT_NE(exemplars[1]->spans[0].signature, 0u);
  std::vector<SignatureInfo> signatures = h.store.Signatures();
  ASSERT_EQ(signatures.size(), 1u) << "numbers are masked: one signature";
  EXPECT_EQ(signatures[0].count, 2u);
  EXPECT_EQ(signatures[0].exception_type, "Timeout");
  EXPECT_EQ(signatures[0].id, exemplars[1]->spans[0].signature);
  ASSERT_EQ(signatures[0].trace_ids.size(), 2u);
  EXPECT_EQ(signatures[0].trace_ids.back(), TraceOf(5));
  EXPECT_EQ(h.store.FindTrace(TraceOf(2)), exemplars[0]);
}

// The id the store's signature registry gives (series, exception type): signatures include the
// service and operation, so each pair has its own.
std::map<std::pair<uint32_t, std::string>, uint64_t> SignatureIds(const SliStore& store) {
  std::map<std::pair<uint32_t, std::string>, uint64_t> ids;
  for (const SignatureInfo& info : store.Signatures()) {
    ids[{info.series, info.exception_type}] = info.id;
  }
  return ids;
}

// Highest count first, then by id: the order of SliStore::SignatureCounts.
std::vector<SignatureCount> Ranked(const std::map<uint64_t, uint64_t>& counts) {
  std::vector<SignatureCount> out;
  for (auto [id, count] : counts) out.push_back({id, count});
  std::sort(out.begin(), out.end(), [](const SignatureCount& a, const SignatureCount& b) {
    return a.count != b.count ? a.count > b.count : a.id < b.id;
  });
  return out;
}

// Error entry spans are counted per (series, bucket) by signature; error spans that are not entry
// spans are not. Expected counts per (operation, bucket, exception type) come from the spans
// generated here.
TEST(SliProcessorTest, SignatureCountsPerBucketMatchTheErrorEntrySpansSent) {
  Harness h;
  h.Advance(seconds(60));
  std::mt19937_64 rng(11);
  const std::vector<std::string> types = {"Timeout", "SQLException", "NullPointer"};
  const std::vector<std::string> ops = {"GET /a", "GET /b"};
  std::map<std::tuple<std::string, int64_t, std::string>, uint64_t> expected;
  std::set<int64_t> buckets;
  uint64_t next_id = 1;
  for (int round = 0; round < 8; ++round) {
    std::vector<TestSpan> batch;
    for (int t = 0; t < 50; ++t) {
      TestSpan root{.trace = next_id, .id = next_id};
      ++next_id;
      root.name = ops[rng() % ops.size()];
      root.start_ms = static_cast<int64_t>(rng() % 55'000);
      root.duration_ms = 5;
      const bool fail = rng() % 3 == 0;
      if (fail) {
        root.status = StatusCode::kError;
        root.exception_type = types[rng() % types.size()];
        root.exception_message = "failed after " + std::to_string(rng() % 1000) + " ms";
      }
      // An INTERNAL child of the same service, exported first: its entry decision waits for the
      // root, which then finds it is not an entry. Its own error is never counted.
      TestSpan child{.trace = root.trace,
                     .id = next_id++,
                     .parent = root.id,
                     .name = "inner",
                     .kind = SpanKind::kInternal,
                     .start_ms = root.start_ms,
                     .duration_ms = 1,
                     .status = StatusCode::kError,
                     .exception_type = "Inner"};
      batch.push_back(child);
      batch.push_back(root);
      const int64_t bucket = BucketOfUnixNanos(h.start_nanos() + root.start_ms * 1'000'000 +
                                               root.duration_ms * 1'000'000);
      buckets.insert(bucket);
      if (fail) ++expected[{root.name, bucket, root.exception_type}];
    }
    h.Send(batch);
    if (round % 3 == 2) h.Tick();  // several publications per bucket
  }
  h.Advance(seconds(16));
  h.Tick();
  const auto ids = SignatureIds(h.store);
  auto expected_counts = [&](const std::string& op, int64_t first, int64_t last) {
    const auto series = static_cast<uint32_t>(h.registry.FindSeries("a", op));
    std::map<uint64_t, uint64_t> counts;
    for (const auto& [key, n] : expected) {
      const auto& [key_op, bucket, type] = key;
      if (key_op != op || bucket < first || bucket > last) continue;
      counts[ids.at({series, type})] += n;
    }
    return Ranked(counts);
  };
  ASSERT_GE(buckets.size(), 5u);
  const int64_t lo = *buckets.begin();
  const int64_t hi = *buckets.rbegin();
  uint64_t total = 0;
  for (const std::string& op : ops) {
    const auto series = static_cast<uint32_t>(h.registry.FindSeries("a", op));
    for (int64_t b = lo - 1; b <= hi + 1; ++b) {
      EXPECT_EQ(h.store.SignatureCounts({series}, b, b), expected_counts(op, b, b))
          << op << " bucket " << b;
    }
    EXPECT_EQ(h.store.SignatureCounts({series}, lo + 1, hi - 1),
              expected_counts(op, lo + 1, hi - 1))
        << op;
    for (const SignatureCount& c : h.store.SignatureCounts({series}, lo, hi)) total += c.count;
  }
  const std::vector<uint32_t> both = {static_cast<uint32_t>(h.registry.FindSeries("a", ops[0])),
                                      static_cast<uint32_t>(h.registry.FindSeries("a", ops[1]))};
  uint64_t sent = 0;
  for (const auto& [key, n] : expected) sent += n;
  EXPECT_GT(sent, 100u);
  EXPECT_EQ(total, sent);
  EXPECT_EQ(h.store.SeriesCounts(both, lo, hi).errors, sent);
  const auto inner = static_cast<uint32_t>(h.registry.FindSeries("a", "inner"));
  EXPECT_TRUE(h.store.SignatureCounts({inner}, lo, hi).empty());
}

// An entry span whose decision waits for its parent carries its signature to where it is
// finally counted: when the parent arrives, or when the trace completes without it. Spans
// beyond the trace's span cap are counted at once, with theirs.
TEST(SliProcessorTest, DeferredEntrySpansAreCountedWithTheirSignature) {
  Harness h(SliOptions{.max_spans_per_trace = 2});
  auto failing = [](uint64_t trace, uint64_t id, uint64_t parent, std::string service,
                    std::string type) {
    return TestSpan{.trace = trace,
                    .id = id,
                    .parent = parent,
                    .service = std::move(service),
                    .name = "work",
                    .kind = SpanKind::kInternal,
                    .status = StatusCode::kError,
                    .exception_type = std::move(type)};
  };
  // Trace 1: b's failing span before its parent in a: an entry once the parent arrives.
  h.Send({failing(1, 11, 10, "b", "Resolved")});
  h.Send({{.trace = 1, .id = 10, .service = "a", .name = "root"}});
  // Trace 2: b's failing span whose parent never arrives: an entry when the trace completes.
  h.Send({failing(2, 21, 20, "b", "Orphaned")});
  // Trace 3: a failing INTERNAL span of b under b's own SERVER span, child first: no entry.
  h.Send({failing(3, 31, 30, "b", "Internal")});
  h.Send({{.trace = 3, .id = 30, .service = "b", .name = "serve"}});
  // Trace 4: two spans fill the trace; b's third (parent unknown) is past the cap and counts.
  h.Send({{.trace = 4, .id = 40, .service = "a", .name = "root"},
          {.trace = 4, .id = 41, .parent = 40, .service = "a", .name = "root2"},
          failing(4, 42, 49, "b", "Truncated")});
  h.Tick();
  const auto work = static_cast<uint32_t>(h.registry.FindSeries("b", "work"));
  auto counts = [&] {
    std::map<std::string, uint64_t> by_type;
    std::map<uint64_t, std::string> type_of;
    for (const SignatureInfo& info : h.store.Signatures()) type_of[info.id] = info.exception_type;
    for (const SignatureCount& c : h.store.SignatureCounts({work}, 0, INT64_MAX)) {
      by_type[type_of.at(c.id)] += c.count;
    }
    return by_type;
  };
  EXPECT_EQ(counts(), (std::map<std::string, uint64_t>{{"Resolved", 1}, {"Truncated", 1}}));
  h.Advance(seconds(16));
  h.Tick();
  EXPECT_EQ(counts(),
            (std::map<std::string, uint64_t>{{"Orphaned", 1}, {"Resolved", 1}, {"Truncated", 1}}));
  EXPECT_EQ(h.store.SeriesCounts({work}, 0, INT64_MAX).errors, 3u);
  EXPECT_EQ(h.Series("b", "work").errors, 3u);
}

// Past SliOptions::max_signatures_per_series_bucket distinct signatures in one (series, bucket)
// and publication, the error spans are counted under id 0; the next publication starts afresh.
TEST(SliProcessorTest, SignaturesPerSeriesBucketAreCapped) {
  Harness h(SliOptions{.max_signatures_per_series_bucket = 2});
  h.Advance(seconds(30));
  auto failing = [](uint64_t trace, std::string type) {
    return TestSpan{.trace = trace,
                    .id = trace,
                    .start_ms = 25'000,
                    .status = StatusCode::kError,
                    .exception_type = std::move(type)};
  };
  // In arrival order: T1, T2 are named; T3 and T4 are not.
  const std::vector<std::pair<std::string, int>> sent = {
      {"T1", 3}, {"T2", 2}, {"T3", 4}, {"T4", 1}};
  uint64_t trace = 1;
  std::vector<TestSpan> batch;
  for (const auto& [type, n] : sent) {
    for (int i = 0; i < n; ++i) batch.push_back(failing(trace++, type));
  }
  h.Send(batch);
  h.Tick();
  const auto series = static_cast<uint32_t>(h.registry.FindSeries("a", "op"));
  const int64_t bucket = BucketOfUnixNanos(h.start_nanos() + 25'010'000'000);
  auto ids = SignatureIds(h.store);
  const uint64_t t1 = ids.at({series, "T1"}), t2 = ids.at({series, "T2"});
  EXPECT_EQ(h.store.SignatureCounts({series}, bucket, bucket),
            Ranked({{t1, 3}, {t2, 2}, {0, 4 + 1}}));
  // A second publication for the same bucket: T3 is named in its delta, and the store (cap 16)
  // names it from then on.
  h.Send({failing(trace++, "T3"), failing(trace++, "T3")});
  h.Tick();
  ids = SignatureIds(h.store);
  EXPECT_EQ(h.store.SignatureCounts({series}, bucket, bucket),
            Ranked({{t1, 3}, {t2, 2}, {ids.at({series, "T3"}), 2}, {0, 5}}));
  EXPECT_EQ(h.store.SeriesCounts({series}, bucket, bucket).errors, 12u);
}

// A 40-span trace (past several block sizes) whose parents arrive after their children: the root
// last, each mid-level span after its own children. Entry decisions, parent links and the
// exemplar's ids are those of the tree sent.
TEST(SliProcessorTest, ParentsAfterTheirChildrenInATraceOfSeveralBlocks) {
  Harness h;
  // Root 1000 (service a); mid spans 2000 + m (service b, SERVER) under the root; leaves
  // 3000 + 8m + l under mid m: INTERNAL spans of b (not entries) or of c (entries).
  std::map<uint64_t, uint64_t> parent_of;
  std::vector<TestSpan> order;
  uint64_t entries_c = 0;
  for (uint64_t m = 0; m < 4; ++m) {
    for (uint64_t l = 0; l < 8; ++l) {
      const uint64_t id = 3000 + 8 * m + l;
      const bool in_c = l % 3 == 0;
      entries_c += in_c ? 1 : 0;
      order.push_back({.trace = 1,
                       .id = id,
                       .parent = 2000 + m,
                       .service = in_c ? "c" : "b",
                       .name = "leaf",
                       .kind = SpanKind::kInternal});
      parent_of[id] = 2000 + m;
    }
    order.push_back({.trace = 1, .id = 2000 + m, .parent = 1000, .service = "b", .name = "mid"});
    parent_of[2000 + m] = 1000;
  }
  order.push_back({.trace = 1, .id = 1000, .service = "a", .name = "root", .duration_ms = 50});
  parent_of[1000] = 0;
  ASSERT_EQ(order.size(), 37u);
  for (const TestSpan& span : order) h.Send({span});  // one batch per span
  h.Tick();
  EXPECT_EQ(h.Series("c", "leaf").requests, entries_c) << "decided when their parent arrived";
  EXPECT_EQ(h.Series("b", "leaf").requests, 0u);
  EXPECT_EQ(h.Series("b", "mid").requests, 4u);
  h.Advance(seconds(16));
  h.Tick();
  EXPECT_EQ(h.Series("c", "leaf").requests, entries_c);
  EXPECT_EQ(h.Series("b", "leaf").requests, 0u);
  EXPECT_EQ(h.Service("b").partial_traces, 0u);
  EXPECT_EQ(h.Service("b").propagation_breaks, 0u);
  const ExemplarRef trace = h.store.FindTrace(TraceOf(1));
  ASSERT_NE(trace, nullptr);
  ASSERT_EQ(trace->spans.size(), order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    EXPECT_EQ(trace->spans[i].span_id, order[i].id);
    EXPECT_EQ(trace->spans[i].parent_span_id, parent_of.at(order[i].id)) << order[i].id;
    EXPECT_FALSE(trace->spans[i].orphan);
  }
}

// Spans whose parents never arrive keep their parents' full 64-bit ids; siblings share one.
TEST(SliProcessorTest, OrphansKeepTheirParentIds) {
  Harness h;
  constexpr uint64_t kLost = 0xfedc'ba98'7654'3210;
  constexpr uint64_t kLostToo = 0x8000'0000'0000'0001;
  std::vector<TestSpan> spans;
  for (uint64_t i = 0; i < 6; ++i) {
    spans.push_back({.trace = 7,
                     .id = 0x1111'0000'0000'0000 + i,
                     .parent = i % 2 == 0 ? kLost : kLostToo,
                     .service = i < 3 ? "b" : "c",
                     .name = "work",
                     .kind = SpanKind::kInternal,
                     .start_ms = static_cast<int64_t>(i)});
  }
  spans.push_back({.trace = 7,
                   .id = 5,
                   .parent = spans[0].id,
                   .service = "b",
                   .name = "child",
                   .kind = SpanKind::kInternal});
  for (const TestSpan& span : spans) h.Send({span});
  h.Advance(seconds(16));
  h.Tick();
  EXPECT_EQ(h.Series("b", "work").requests, 3u) << "orphans enter their service";
  EXPECT_EQ(h.Series("c", "work").requests, 3u);
  EXPECT_EQ(h.Series("b", "child").requests, 0u);
  EXPECT_EQ(h.Service("b").propagation_breaks, 1u);
  EXPECT_EQ(h.Service("c").propagation_breaks, 1u);
  const ExemplarRef trace = h.store.FindTrace(TraceOf(7));
  ASSERT_NE(trace, nullptr);
  ASSERT_EQ(trace->spans.size(), spans.size());
  for (size_t i = 0; i < spans.size(); ++i) {
    EXPECT_EQ(trace->spans[i].span_id, spans[i].id);
    EXPECT_EQ(trace->spans[i].parent_span_id, spans[i].parent) << i;
    EXPECT_EQ(trace->spans[i].orphan, i < 6) << i;
  }
}

// Traces grow through every block size up to 24 spans, in step, while others complete: the
// bytes held do not grow from one wave of such traces to the next, and go back to nothing when
// no trace is live.
TEST(SliProcessorTest, GrownTracesFreeTheirBlocksForTheNext) {
  Harness h;
  const size_t empty = h.processor.LiveTraceBytes();
  EXPECT_EQ(empty, 0u);
  auto wave = [&](uint64_t first_trace) {
    size_t peak = 0;
    for (uint64_t s = 0; s < 24; ++s) {
      std::vector<TestSpan> batch;
      for (uint64_t t = first_trace; t < first_trace + 300; ++t) {
        batch.push_back({.trace = t,
                         .id = s + 1,
                         .parent = s,
                         .service = "a",
                         .name = "op",
                         .kind = SpanKind::kInternal});
      }
      h.Send(batch);
      peak = std::max(peak, h.processor.LiveTraceBytes());
    }
    EXPECT_EQ(h.processor.live_traces(), 300u + (first_trace > 1 ? 1 : 0));
    h.Advance(seconds(10));
    h.Send({{.trace = 999'999, .id = first_trace, .service = "keep"}});  // stays live
    h.Advance(seconds(6));
    h.Tick();
    EXPECT_EQ(h.processor.live_traces(), 1u);
    return std::pair{peak, h.processor.LiveTraceBytes()};
  };
  const auto [peak1, after1] = wave(1);
  const auto [peak2, after2] = wave(1001);
  const auto [peak3, after3] = wave(2001);
  EXPECT_GT(peak1, 300u * 24 * 24);
  EXPECT_LE(peak2, peak1 + 100) << "the trace kept live fits in what the first wave left";
  EXPECT_EQ(peak3, peak2);
  EXPECT_EQ(after3, after2);
  h.Advance(seconds(16));
  h.Tick();
  EXPECT_EQ(h.processor.live_traces(), 0u);
  EXPECT_EQ(h.processor.LiveTraceBytes(), empty);
  EXPECT_EQ(h.Service("a").traces, 900u);
}

// Error spans keep their signatures while their trace's spans move to larger blocks, and the
// exemplar names each error span's own signature.
TEST(SliProcessorTest, SignaturesOfSeveralSpansSurviveGrowth) {
  Harness h;
  const std::vector<std::string> types = {"Timeout", "SQLException", "NullPointer", "IOError"};
  std::vector<TestSpan> spans;
  spans.push_back({.trace = 3, .id = 1, .service = "a", .name = "root"});
  for (uint64_t i = 2; i <= 20; ++i) {
    TestSpan span{.trace = 3,
                  .id = i,
                  .parent = 1,
                  .service = "a",
                  .name = "step",
                  .kind = SpanKind::kInternal};
    if (i % 3 == 0) {
      span.status = StatusCode::kError;
      span.exception_type = types[(i / 3) % types.size()];
    }
    spans.push_back(span);
  }
  for (const TestSpan& span : spans) h.Send({span});
  h.Advance(seconds(16));
  h.Tick();
  const auto ids = SignatureIds(h.store);
  const auto step = static_cast<uint32_t>(h.registry.FindSeries("a", "step"));
  const ExemplarRef trace = h.store.FindTrace(TraceOf(3));
  ASSERT_NE(trace, nullptr);
  ASSERT_EQ(trace->spans.size(), spans.size());
  for (size_t i = 0; i < spans.size(); ++i) {
    if (spans[i].exception_type.empty()) {
      EXPECT_EQ(trace->spans[i].signature, 0u) << i;
      EXPECT_FALSE(trace->spans[i].error);
    } else {
      EXPECT_TRUE(trace->spans[i].error);
      EXPECT_EQ(trace->spans[i].signature, ids.at({step, spans[i].exception_type})) << i;
    }
  }
}

// Eviction at max_live_traces takes the oldest live trace, also when younger traces took the
// slots of completed ones.
TEST(SliProcessorTest, EvictionTakesTheOldestAfterSlotsAreReused) {
  Harness h(SliOptions{.trace_idle_timeout = seconds(15), .max_live_traces = 3});
  auto send = [&](uint64_t trace) {
    h.Send({{.trace = trace, .id = trace, .service = "s" + std::to_string(trace)}});
  };
  send(1);
  h.Advance(seconds(10));
  send(2);
  h.Advance(seconds(6));
  h.Tick();  // trace 1 idle for 16 s: completes, its slot is free
  EXPECT_EQ(h.Service("s1").traces, 1u);
  h.Advance(seconds(1));
  send(3);  // takes trace 1's slot
  h.Advance(seconds(1));
  send(4);
  h.Advance(seconds(1));
  send(5);  // at the cap: evicts trace 2, the oldest
  h.Tick();
  EXPECT_EQ(h.store.Totals().evicted_traces, 1u);
  EXPECT_EQ(h.Service("s2").traces, 1u);
  EXPECT_EQ(h.Service("s3").traces, 0u);
  h.Advance(seconds(1));
  send(6);  // evicts trace 3
  send(7);  // evicts trace 4
  h.Tick();
  EXPECT_EQ(h.store.Totals().evicted_traces, 3u);
  EXPECT_EQ(h.Service("s3").traces, 1u);
  EXPECT_EQ(h.Service("s4").traces, 1u);
  EXPECT_EQ(h.Service("s5").traces, 0u);
  EXPECT_EQ(h.processor.live_traces(), 3u);
}

// A trace at max_spans_per_trace, its spans children first: the first max_spans_per_trace are
// kept and assembled, the rest counted as truncated.
TEST(SliProcessorTest, ATraceAtTheSpanCap) {
  constexpr uint64_t kCap = 300;
  Harness h(SliOptions{.max_spans_per_trace = kCap});
  std::vector<TestSpan> spans;
  // A chain sent leaf first: span i's parent is span i - 1; span 1 is the root.
  for (uint64_t i = kCap + 5; i >= 1; --i) {
    spans.push_back({.trace = 9,
                     .id = i,
                     .parent = i - 1,
                     .service = "a",
                     .name = "op",
                     .kind = i == 1 ? SpanKind::kServer : SpanKind::kInternal,
                     .start_ms = static_cast<int64_t>(i)});
  }
  h.Send(spans);
  h.Advance(seconds(16));
  h.Tick();
  EXPECT_EQ(h.store.Totals().truncated_spans, 5u);
  // Kept: spans 306..7 (their parents 305..6 kept, except span 7's parent 6: not kept).
  EXPECT_EQ(h.Service("a").partial_traces, 1u);
  EXPECT_EQ(h.Series("a", "op").requests, 1u + 5u) << "the orphan at the cut, the 5 truncated";
  const ExemplarRef trace = h.store.FindTrace(TraceOf(9));
  ASSERT_NE(trace, nullptr);
  ASSERT_EQ(trace->spans.size(), kCap);
  for (size_t i = 0; i < kCap; ++i) {
    EXPECT_EQ(trace->spans[i].span_id, spans[i].id);
    EXPECT_EQ(trace->spans[i].parent_span_id, spans[i].parent);
    EXPECT_EQ(trace->spans[i].orphan, i == kCap - 1) << i;
  }
}

// Arrival times are kept relative to an epoch that moves forward every 12 days or so: over 30
// days of traces (some always live, some always waiting out their idle timeout), idle timeouts
// and max age complete each trace at the tick an independent model says.
TEST(SliProcessorTest, ArrivalTimesSurviveEpochMoves) {
  Harness h(SliOptions{.trace_idle_timeout = std::chrono::hours(1),
                       .trace_max_age = std::chrono::hours(72)});
  constexpr int64_t kStepMs = 600'000;  // 10 minutes
  constexpr int kSteps = 30 * 144;
  struct Model {
    int first = -1;
    int last = -1;
    bool done = false;
  };
  // Trace k gets a span every step from step k + 1 on: for 2 to 3 hours (completes an hour after
  // its last span), or for every third trace 500 steps (completes at the 72 h max age, 432
  // steps; its later spans are late).
  std::vector<Model> model(kSteps);
  uint64_t late = 0, completed = 0;
  for (int step = 1; step <= kSteps; ++step) {
    h.Advance(milliseconds(kStepMs));
    const int64_t now_ms = step * kStepMs;
    std::vector<TestSpan> batch;
    for (int k = std::max(0, step - 500); k < step; ++k) {
      const int length = k % 3 == 0 ? 500 : 12 + k % 7;
      if (step > k + length) continue;
      Model& m = model[k];
      batch.push_back({.trace = static_cast<uint64_t>(k),
                       .id = static_cast<uint64_t>(step),
                       .parent = m.first < 0 ? 0 : static_cast<uint64_t>(m.first),
                       .service = "a",
                       .name = "op",
                       .kind = SpanKind::kInternal,
                       .start_ms = now_ms - 10});
      if (m.done) {
        ++late;
      } else {
        if (m.first < 0) m.first = step;
        m.last = step;
      }
    }
    h.Send(batch);
    h.Tick();
    size_t live = 0;
    for (int k = std::max(0, step - 500); k < step; ++k) {
      Model& m = model[k];
      if (m.done || m.first < 0) continue;
      if ((step - m.last) * kStepMs >= 3'600'000 || (step - m.first) * kStepMs >= 72 * 3'600'000) {
        m.done = true;
        ++completed;
      } else {
        ++live;
      }
    }
    ASSERT_EQ(h.processor.live_traces(), live) << "step " << step;
  }
  EXPECT_GT(completed, 4000u);
  EXPECT_EQ(h.Service("a").traces, completed);
  EXPECT_EQ(h.Service("a").partial_traces, 0u);
  EXPECT_GT(late, 10'000u);
  EXPECT_EQ(h.store.Totals().late_spans, late);
}

// Without ticks, a trace whose spans arrive days apart completes when the span that its bucket
// range cannot hold arrives; that span is late.
TEST(SliProcessorTest, ATraceUntickedForDaysCompletesAtItsNextSpan) {
  Harness h;
  h.Send({{.trace = 1, .id = 1, .service = "a", .name = "root"}});
  h.Advance(std::chrono::hours(24));
  h.Send(
      {{.trace = 1, .id = 2, .parent = 1, .service = "b", .name = "day1", .start_ms = 86'400'000}});
  EXPECT_EQ(h.processor.live_traces(), 1u) << "a day apart: still one trace";
  h.Advance(std::chrono::hours(24 * 4));
  h.Send({{.trace = 1,
           .id = 3,
           .parent = 1,
           .service = "c",
           .name = "day5",
           .start_ms = 5 * 86'400'000}});
  EXPECT_EQ(h.processor.live_traces(), 0u);
  h.Tick();
  EXPECT_EQ(h.store.Totals().late_spans, 1u);
  EXPECT_EQ(h.Service("a").traces, 1u);
  EXPECT_EQ(h.Service("b").traces, 1u);
  EXPECT_EQ(h.Service("c").traces, 0u);
  EXPECT_EQ(h.Series("b", "day1").requests, 1u);
  EXPECT_EQ(h.Series("c", "day5").requests, 1u) << "a late entry span still counts";
}

// After a burst, the storage of completed traces is released at the tick (what is left is about
// what the live traces need), and the live traces' spans survive the move.
TEST(SliProcessorTest, StorageIsReleasedAfterABurstAndLiveTracesSurviveTheMove) {
  Harness h(SliOptions{.trace_idle_timeout = seconds(15), .trace_max_age = seconds(600)});
  constexpr uint64_t kTraces = 40'000, kKept = 1'000;
  // Traces 1..kKept: 7 spans now, an 8th and a 9th later; the others 8 spans. A chain each.
  for (uint64_t first = 1; first <= kTraces; first += 100) {
    std::vector<TestSpan> batch;
    for (uint64_t t = first; t < first + 100; ++t) {
      for (uint64_t i = 1; i <= (t <= kKept ? 7u : 8u); ++i) {
        batch.push_back({.trace = t,
                         .id = i,
                         .parent = i - 1,
                         .service = "a",
                         .name = i == 1 ? "root" : "step",
                         .kind = i == 1 ? SpanKind::kServer : SpanKind::kInternal,
                         .duration_ms = t == 1 && i == 1 ? 5'000 : 10});
      }
    }
    h.Send(batch);
  }
  const size_t peak = h.processor.LiveTraceBytes();
  EXPECT_GT(peak, kTraces * 8 * 24);
  auto extend = [&](uint64_t id) {
    std::vector<TestSpan> batch;
    for (uint64_t t = 1; t <= kKept; ++t) {
      batch.push_back({.trace = t,
                       .id = id,
                       .parent = id - 1,
                       .service = "a",
                       .name = "step",
                       .kind = SpanKind::kInternal,
                       .start_ms = 10'000});
    }
    h.Send(batch);
  };
  h.Advance(seconds(10));
  extend(8);
  h.Advance(seconds(6));
  h.Tick();
  ASSERT_EQ(h.processor.live_traces(), kKept);
  EXPECT_LT(h.processor.LiveTraceBytes(), kKept * 256 + 128 * 1024) << "peak " << peak;
  extend(9);  // grows the moved traces
  h.Advance(seconds(16));
  h.Tick();
  EXPECT_EQ(h.processor.live_traces(), 0u);
  EXPECT_EQ(h.Service("a").traces, kTraces);
  EXPECT_EQ(h.Service("a").partial_traces, 0u);
  EXPECT_EQ(h.Series("a", "root").requests, kTraces);
  EXPECT_EQ(h.Series("a", "step").requests, 0u);
  const ExemplarRef trace = h.store.FindTrace(TraceOf(1));
  ASSERT_NE(trace, nullptr) << "the slowest root";
  ASSERT_EQ(trace->spans.size(), 9u);
  for (uint64_t i = 1; i <= 9; ++i) {
    EXPECT_EQ(trace->spans[i - 1].span_id, i);
    EXPECT_EQ(trace->spans[i - 1].parent_span_id, i - 1);
  }
}

TEST(SliProcessorTest, LiveTraceMemoryIsCompact) {
  Harness h;
  constexpr int kTraces = 10'000;
  for (int t = 0; t < kTraces; ++t) {
    std::vector<TestSpan> spans;
    for (uint64_t i = 0; i < 8; ++i) {
      spans.push_back({.trace = static_cast<uint64_t>(t + 1),
                       .id = i + 1,
                       .parent = i,
                       .service = "a",
                       .name = "s",
                       .kind = SpanKind::kInternal});
    }
    h.Send(spans);
  }
  ASSERT_EQ(h.processor.live_traces(), static_cast<size_t>(kTraces));
  const double per_trace = static_cast<double>(h.processor.LiveTraceBytes()) / kTraces;
  // 8 spans of 24 bytes, a 44-byte slab entry, an index slot and chunk rounding.
  EXPECT_LE(per_trace, 256);
}

// Shards on their own threads, producers on others, ticks and scrapes concurrently: totals
// equal the generator's counts (and TSan sees no race).
TEST(SliProcessorTest, ShardedPipelineUnderConcurrentProducersTicksAndQueries) {
  fakes::FakeClock clock;
  SeriesRegistry registry(100, 100);
  constexpr uint32_t kShards = 3;
  SliStore store(SliStoreOptions{.shards = kShards});
  std::vector<std::unique_ptr<ShardProcessor>> processors;
  for (uint32_t i = 0; i < kShards; ++i) {
    processors.push_back(
        std::make_unique<SliShardProcessor>(SliOptions{.shard = i}, clock, registry, store));
  }
  prometheus::Registry prom;
  auto pipeline = *ShardedPipeline::Create({.shards = kShards}, std::move(processors), prom);
  constexpr int kProducers = 3, kBatches = 200, kTracesPerBatch = 10;
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int b = 0; b < kBatches; ++b) {
        SpanBatch batch;
        for (int t = 0; t < kTracesPerBatch; ++t) {
          const uint64_t trace = (uint64_t(p) << 32) | uint64_t(b * kTracesPerBatch + t + 1);
          for (uint64_t s = 0; s < 2; ++s) {
            Span span;
            span.trace_id = TraceOf(trace);
            span.span_id = s + 1;
            span.parent_span_id = s;
            span.kind = s == 0 ? SpanKind::kServer : SpanKind::kClient;
            span.service = batch.Add(p == 0 ? "svc0" : "svc1", kMaxNameBytes);
            span.name = batch.Add("op", kMaxNameBytes);
            span.start_unix_nano = 1'700'000'000ull * kSecond;
            span.end_unix_nano = span.start_unix_nano + 1'000'000;
            batch.spans.push_back(span);
          }
          while (!pipeline->TryEnqueue(batch).ok()) {
          }
        }
      }
    });
  }
  std::atomic<bool> done{false};
  std::thread ticker([&] {
    while (!done.load()) {
      pipeline->Tick();
      clock.Advance(milliseconds(1));
      (void)store.AllSeriesTotals();
      (void)store.ServiceLatencies(0, INT64_MAX);
    }
  });
  for (auto& t : threads) t.join();
  done = true;
  ticker.join();
  ASSERT_TRUE(pipeline->Shutdown(std::chrono::steady_clock::time_point::max()));
  const uint64_t traces_per_producer = kBatches * kTracesPerBatch;
  auto totals = store.AllSeriesTotals();
  auto service_totals = store.AllServiceTotals();
  const auto svc0 = registry.FindService("svc0");
  const auto svc1 = registry.FindService("svc1");
  EXPECT_EQ(totals[registry.FindSeries("svc0", "op")].requests, traces_per_producer);
  EXPECT_EQ(totals[registry.FindSeries("svc1", "op")].requests,
            traces_per_producer * (kProducers - 1));
  EXPECT_EQ(service_totals[svc0].traces, traces_per_producer);
  EXPECT_EQ(service_totals[svc1].traces, traces_per_producer * (kProducers - 1));
  EXPECT_EQ(store.Totals().live_traces, 0u);
}

}  // namespace
}  // namespace traceslo::pipeline
