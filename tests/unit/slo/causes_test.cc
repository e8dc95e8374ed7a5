#include "traceslo/slo/causes.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/fakes/fake_clock.h"
#include "traceslo/pipeline/sli_processor.h"

namespace traceslo::slo {
namespace {

using pipeline::ExemplarRef;
using pipeline::SeriesRegistry;
using pipeline::ShardDelta;
using std::chrono::milliseconds;

constexpr int64_t kFirst = 170'000'000;  // the window is [kFirst, kLast]
constexpr int64_t kLast = kFirst + 5;
constexpr uint64_t kMs = 1'000'000;

TraceId TraceOf(uint8_t n) {
  TraceId id{};
  id[0] = 0xcd;
  id[15] = n;
  return id;
}

// SLIs written straight into a real SliStore; every expectation is computed from what a test
// feeds, not by the code under test.
class Harness {
 public:
  Harness() : registry(100, 100), store(pipeline::SliStoreOptions{.shards = 1}) {
    pay = registry.Resolve("checkout", "POST /pay");
    cart = registry.Resolve("checkout", "GET /cart");
  }

  // `n` error entry spans of `signature` in one bucket of a series, and the signature's
  // description in the registry.
  void Errors(SeriesRegistry::Ids ids, int64_t bucket, uint64_t signature, uint64_t n,
              std::string exception_type = "", std::string normalized_message = "",
              int32_t http_status = 0) {
    ShardDelta delta;
    pipeline::SeriesDelta& d = delta.series.emplace_back();
    d.series = ids.series;
    d.service = ids.service;
    d.bucket = bucket;
    d.requests = n + 100;
    d.errors = n;
    d.latency.Add(10 * kMs, d.requests);
    d.signatures.push_back({signature, n});
    if (signature != 0) {
      pipeline::SignatureDelta& s = delta.signatures.emplace_back();
      s.id = signature;
      s.series = ids.series;
      s.count = n;
      s.exception_type = std::move(exception_type);
      s.normalized_message = std::move(normalized_message);
      s.sample_message = "sample of " + std::to_string(signature);
      s.http_status = http_status;
    }
    store.Apply(std::move(delta));
  }

  // `n` entry spans of `duration` in one bucket of a series.
  void Latency(SeriesRegistry::Ids ids, int64_t bucket, uint64_t duration, uint64_t n) {
    ShardDelta delta;
    pipeline::SeriesDelta& d = delta.series.emplace_back();
    d.series = ids.series;
    d.service = ids.service;
    d.bucket = bucket;
    d.requests = n;
    d.latency.Add(duration, n);
    store.Apply(std::move(delta));
  }

  // A one-span exemplar trace whose span ends at bucket start + end_offset.
  static ExemplarRef Trace(uint8_t n, SeriesRegistry::Ids ids, int64_t bucket, uint64_t duration,
                           uint64_t signature = 0, bool orphan = false) {
    auto trace = std::make_shared<pipeline::ExemplarTrace>();
    trace->trace_id = TraceOf(n);
    trace->start_unix_nano = bucket * pipeline::kBucketNanos + 1'000;
    trace->duration_nanos = duration;
    trace->spans.push_back(pipeline::ExemplarSpan{.span_id = n,
                                                  .parent_span_id = orphan ? 99u : 0u,
                                                  .duration_nanos = duration,
                                                  .signature = signature,
                                                  .series = ids.series,
                                                  .error = signature != 0,
                                                  .orphan = orphan});
    return trace;
  }

  void ErrorExemplar(const ExemplarRef& trace, int64_t bucket) {
    ShardDelta delta;
    const pipeline::ExemplarSpan& span = trace->spans[0];
    delta.exemplars.push_back(
        {.series = span.series,
         .bucket = bucket,
         .signature = span.signature,
         .duration_nanos = span.duration_nanos,
         .end_unix_nano = trace->start_unix_nano + static_cast<int64_t>(span.duration_nanos),
         .trace = trace});
    store.Apply(std::move(delta));
  }

  void SlowestExemplar(const ExemplarRef& trace, int64_t bucket) {
    ShardDelta delta;
    delta.exemplars.push_back({.series = trace->spans[0].series,
                               .bucket = bucket,
                               .signature = 0,
                               .duration_nanos = trace->spans[0].duration_nanos,
                               .end_unix_nano = 0,
                               .trace = trace});
    store.Apply(std::move(delta));
  }

  void Traces(uint32_t service, int64_t bucket, uint64_t partial, uint64_t breaks,
              uint64_t error_traces_root = 0, uint64_t error_traces_origin = 0) {
    ShardDelta delta;
    delta.services.push_back({.service = service,
                              .bucket = bucket,
                              .traces = partial + error_traces_root + 10,
                              .error_traces_root = error_traces_root,
                              .error_traces_origin = error_traces_origin,
                              .partial_traces = partial,
                              .propagation_breaks = breaks});
    store.Apply(std::move(delta));
  }

  std::vector<AlertCause> Find(const Slo& slo, CauseOptions options = {}) const {
    return CauseFinder(options, registry, store).Find(slo, kFirst, kLast);
  }

  SeriesRegistry registry;
  pipeline::SliStore store;
  SeriesRegistry::Ids pay;
  SeriesRegistry::Ids cart;
};

Slo MakeSlo(SliKind kind) {
  Slo slo;
  slo.service = "checkout";
  slo.name = "slo";
  slo.objective_percent = kind == SliKind::kLatencyQuantile ? 0 : 99;
  slo.sli.kind = kind;
  slo.sli.latency.threshold = milliseconds(100);
  slo.sli.latency_quantile.threshold = milliseconds(100);
  slo.sli.latency_quantile.quantile = 0.99;
  return slo;
}

std::vector<std::string> Ids(const std::vector<AlertCause>& causes) {
  std::vector<std::string> out;
  for (const AlertCause& c : causes) out.push_back(c.id);
  return out;
}

std::vector<TraceId> TraceIds(const std::vector<ExemplarRef>& traces) {
  std::vector<TraceId> out;
  for (const ExemplarRef& t : traces) out.push_back(t->trace_id);
  return out;
}

constexpr uint64_t kTimeout = 0x00a1000000000001;
constexpr uint64_t kUnavailable = 0x00b2000000000002;

// 70 and 30 error spans: the first covers 70 % only, so both are needed for 80 %.
TEST(CauseFinderTest, TwoSignaturesOf70And30AreBothNeededFor80Percent) {
  Harness h;
  h.Errors(h.pay, kFirst, kTimeout, 40, "TimeoutError", "upstream timed out after <num> ms");
  h.Errors(h.pay, kFirst + 3, kTimeout, 30);
  h.Errors(h.pay, kFirst + 1, kUnavailable, 30, "", "", 503);
  // Outside the window, and another service's signature inside it: neither counts.
  h.Errors(h.pay, kFirst - 1, 0x77, 500, "Old");
  h.Errors(h.pay, kLast + 1, 0x78, 500, "New");
  h.Errors(h.registry.Resolve("payment", "charge"), kFirst + 2, 0x79, 500, "Elsewhere");
  // Exemplars of the timeout: one per bucket (the store keeps the latest per bucket and
  // signature), the newest outside the window; one of the 503; a slowest trace without errors.
  for (int64_t b = kFirst - 1; b <= kLast + 1; ++b) {
    const auto n = static_cast<uint8_t>(b - kFirst + 10);
    h.ErrorExemplar(Harness::Trace(n, h.pay, b, 5 * kMs, kTimeout), b);
  }
  h.ErrorExemplar(Harness::Trace(50, h.pay, kFirst + 1, 5 * kMs, kUnavailable), kFirst + 1);
  h.SlowestExemplar(Harness::Trace(60, h.pay, kFirst + 4, 900 * kMs), kFirst + 4);

  const std::vector<AlertCause> causes = h.Find(MakeSlo(SliKind::kErrors));
  ASSERT_EQ(causes.size(), 2u);
  EXPECT_EQ(causes[0].kind, AlertCause::Kind::kSignature);
  EXPECT_EQ(causes[0].id, "00a1000000000001");
  EXPECT_EQ(causes[0].title, "TimeoutError: upstream timed out after <num> ms");
  EXPECT_EQ(causes[0].sample_message, "sample of " + std::to_string(kTimeout));
  EXPECT_EQ(causes[0].count, 70u);
  EXPECT_DOUBLE_EQ(causes[0].share, 70.0 / 100);
  // Newest first: buckets kFirst + 5 .. kFirst + 3 (kLast + 1 is outside the window).
  EXPECT_EQ(TraceIds(causes[0].traces),
            (std::vector<TraceId>{TraceOf(15), TraceOf(14), TraceOf(13)}));
  EXPECT_EQ(causes[1].id, "00b2000000000002");
  EXPECT_EQ(causes[1].title, "HTTP 503");
  EXPECT_EQ(causes[1].count, 30u);
  EXPECT_DOUBLE_EQ(causes[1].share, 30.0 / 100);
  EXPECT_EQ(TraceIds(causes[1].traces), std::vector<TraceId>{TraceOf(50)});

  CauseOptions one_trace;
  one_trace.max_traces = 1;
  EXPECT_EQ(TraceIds(h.Find(MakeSlo(SliKind::kErrors), one_trace)[0].traces),
            std::vector<TraceId>{TraceOf(15)});
}

TEST(CauseFinderTest, OneSignatureOf90PercentIsEnough) {
  Harness h;
  h.Errors(h.pay, kFirst, kTimeout, 60, "TimeoutError");
  h.Errors(h.pay, kLast, kTimeout, 30);
  h.Errors(h.pay, kFirst + 2, kUnavailable, 10, "", "", 503);
  const std::vector<AlertCause> causes = h.Find(MakeSlo(SliKind::kErrors));
  ASSERT_EQ(causes.size(), 1u);
  EXPECT_EQ(causes[0].id, "00a1000000000001");
  EXPECT_EQ(causes[0].title, "TimeoutError");
  EXPECT_EQ(causes[0].count, 90u);
  EXPECT_DOUBLE_EQ(causes[0].share, 90.0 / 100);
  EXPECT_TRUE(causes[0].traces.empty()) << "no exemplar kept";
}

TEST(CauseFinderTest, CoverageOption) {
  Harness h;
  h.Errors(h.pay, kFirst, kTimeout, 70, "TimeoutError");
  h.Errors(h.pay, kFirst, kUnavailable, 30, "", "", 503);
  auto with = [&](double coverage) {
    CauseOptions options;
    options.coverage = coverage;
    return Ids(h.Find(MakeSlo(SliKind::kErrors), options));
  };
  EXPECT_EQ(with(0.5), std::vector<std::string>{"00a1000000000001"});
  EXPECT_EQ(with(0.7), std::vector<std::string>{"00a1000000000001"});  // 70 of 100 reach 0.7
  EXPECT_EQ(with(0.71), (std::vector<std::string>{"00a1000000000001", "00b2000000000002"}));
  EXPECT_EQ(with(1.0), (std::vector<std::string>{"00a1000000000001", "00b2000000000002"}));
}

// Counts 30, 20, 20, 20, 10 (100): 80 % needs four causes (30 + 20 + 20 = 70 < 80 <= 90);
// equal counts rank by id.
TEST(CauseFinderTest, MaxCausesCutsTheListAndTiesRankById) {
  Harness h;
  h.Errors(h.pay, kFirst, 0x1, 10, "E1");
  h.Errors(h.pay, kFirst, 0x5, 20, "E5");
  h.Errors(h.pay, kFirst + 1, 0x3, 20, "E3");
  h.Errors(h.cart, kFirst + 2, 0x4, 20, "E4");
  h.Errors(h.cart, kFirst + 3, 0x2, 30, "E2");
  const std::vector<AlertCause> causes = h.Find(MakeSlo(SliKind::kErrors));
  EXPECT_EQ(Ids(causes), (std::vector<std::string>{"0000000000000002", "0000000000000003",
                                                   "0000000000000004", "0000000000000005"}));
  ASSERT_EQ(causes.size(), 4u);
  EXPECT_DOUBLE_EQ(causes[3].share, 20.0 / 100);
  CauseOptions options;
  options.max_causes = 2;
  EXPECT_EQ(Ids(h.Find(MakeSlo(SliKind::kErrors), options)),
            (std::vector<std::string>{"0000000000000002", "0000000000000003"}));
  options.max_causes = 0;
  EXPECT_TRUE(h.Find(MakeSlo(SliKind::kErrors), options).empty());
}

// Errors a signature cap left unnamed count in the shares but are no cause: 50 named of 100
// cannot reach 80 %.
TEST(CauseFinderTest, UnnamedErrorsCountInSharesButAreNoCause) {
  Harness h;
  h.Errors(h.pay, kFirst, kTimeout, 50, "TimeoutError");
  h.Errors(h.pay, kFirst, 0, 50);
  const std::vector<AlertCause> causes = h.Find(MakeSlo(SliKind::kErrors));
  ASSERT_EQ(causes.size(), 1u);
  EXPECT_EQ(causes[0].count, 50u);
  EXPECT_DOUBLE_EQ(causes[0].share, 50.0 / 100);
}

TEST(CauseFinderTest, FilterAndErrorTracesChooseTheSeries) {
  Harness h;
  h.Errors(h.pay, kFirst, kTimeout, 40, "TimeoutError");
  h.Errors(h.cart, kFirst, kUnavailable, 60, "", "", 503);
  Slo pay_only = MakeSlo(SliKind::kErrors);
  pay_only.filter.operations = {"POST /pay"};
  std::vector<AlertCause> causes = h.Find(pay_only);
  ASSERT_EQ(causes.size(), 1u);
  EXPECT_EQ(causes[0].id, "00a1000000000001");
  EXPECT_DOUBLE_EQ(causes[0].share, 1.0);

  // Error traces: every series of the service, but only once the window has error traces.
  Slo traces = MakeSlo(SliKind::kErrorTraces);
  EXPECT_TRUE(h.Find(traces).empty()) << "signatures, but no error traces";
  h.Traces(h.pay.service, kFirst + 1, 0, 0, /*error_traces_root=*/7);
  causes = h.Find(traces);
  ASSERT_EQ(causes.size(), 2u);
  EXPECT_EQ(causes[0].id, "00b2000000000002");
  EXPECT_DOUBLE_EQ(causes[0].share, 60.0 / 100);
  EXPECT_EQ(causes[1].id, "00a1000000000001");
  traces.sli.error_traces.role = ErrorTraceRole::kOrigin;
  EXPECT_TRUE(h.Find(traces).empty()) << "no error traces originated here";
}

TEST(CauseFinderTest, NoBadEventsNoCauses) {
  Harness h;
  h.Latency(h.pay, kFirst, 10 * kMs, 100);
  EXPECT_TRUE(h.Find(MakeSlo(SliKind::kErrors)).empty());
  EXPECT_TRUE(h.Find(MakeSlo(SliKind::kLatency)).empty());
  EXPECT_TRUE(h.Find(MakeSlo(SliKind::kLatencyQuantile)).empty());
  EXPECT_TRUE(h.Find(MakeSlo(SliKind::kPartialTraces)).empty());
  Slo unknown = MakeSlo(SliKind::kErrors);
  unknown.service = "nobody";
  h.Errors(h.pay, kFirst, kTimeout, 5, "TimeoutError");
  EXPECT_TRUE(h.Find(unknown).empty());
  EXPECT_TRUE(
      CauseFinder({}, h.registry, h.store).Find(MakeSlo(SliKind::kErrors), kLast, kFirst).empty());
}

TEST(CauseFinderTest, SignatureMissingFromTheRegistryIsNamedByItsId) {
  Harness h;
  pipeline::ShardDelta delta;
  pipeline::SeriesDelta& d = delta.series.emplace_back();
  d.series = h.pay.series;
  d.service = h.pay.service;
  d.bucket = kFirst;
  d.requests = 3;
  d.errors = 3;
  d.signatures = {{0xabc, 3}};
  h.store.Apply(std::move(delta));
  const std::vector<AlertCause> causes = h.Find(MakeSlo(SliKind::kErrors));
  ASSERT_EQ(causes.size(), 1u);
  EXPECT_EQ(causes[0].title, "error signature 0000000000000abc");
  EXPECT_EQ(causes[0].sample_message, "");
}

// Threshold 100 ms: POST /pay has 60 slow spans, GET /cart 40, so 80 % needs both.
TEST(CauseFinderTest, SlowOperationsWithTheirSlowestTraces) {
  Harness h;
  h.Latency(h.pay, kFirst, 250 * kMs, 35);
  h.Latency(h.pay, kFirst + 2, 400 * kMs, 25);
  h.Latency(h.pay, kFirst + 1, 20 * kMs, 500);
  h.Latency(h.cart, kFirst + 1, 500 * kMs, 40);
  h.Latency(h.cart, kFirst + 1, 50 * kMs, 100);
  h.Latency(h.cart, kLast + 1, 900 * kMs, 1000);  // outside the window
  // Slowest exemplars per bucket: 300, 250, 400, 50 (not slow) and 350 ms for POST /pay.
  const std::vector<std::pair<int64_t, uint64_t>> pay_slowest = {
      {kFirst, 300}, {kFirst + 1, 250}, {kFirst + 2, 400}, {kFirst + 3, 50}, {kFirst + 4, 350}};
  uint8_t n = 1;
  for (auto [bucket, ms] : pay_slowest) {
    h.SlowestExemplar(Harness::Trace(n++, h.pay, bucket, ms * kMs), bucket);
  }
  h.SlowestExemplar(Harness::Trace(20, h.cart, kFirst + 1, 500 * kMs), kFirst + 1);
  h.SlowestExemplar(Harness::Trace(21, h.cart, kLast + 1, 900 * kMs), kLast + 1);

  const std::vector<AlertCause> causes = h.Find(MakeSlo(SliKind::kLatency));
  ASSERT_EQ(causes.size(), 2u);
  EXPECT_EQ(causes[0].kind, AlertCause::Kind::kSlowOperation);
  EXPECT_EQ(causes[0].id, "POST /pay");
  EXPECT_EQ(causes[0].title, "POST /pay");
  EXPECT_EQ(causes[0].count, 35u + 25u);
  EXPECT_DOUBLE_EQ(causes[0].share, 60.0 / 100);
  // Slowest first: 400 ms (trace 3), 350 ms (trace 5), 300 ms (trace 1).
  EXPECT_EQ(TraceIds(causes[0].traces), (std::vector<TraceId>{TraceOf(3), TraceOf(5), TraceOf(1)}));
  EXPECT_EQ(causes[1].id, "GET /cart");
  EXPECT_EQ(causes[1].count, 40u);
  EXPECT_DOUBLE_EQ(causes[1].share, 40.0 / 100);
  EXPECT_EQ(TraceIds(causes[1].traces), std::vector<TraceId>{TraceOf(20)});

  // The quantile alert reads the same events; a filter narrows the series.
  EXPECT_EQ(Ids(h.Find(MakeSlo(SliKind::kLatencyQuantile))),
            (std::vector<std::string>{"POST /pay", "GET /cart"}));
  Slo cart_only = MakeSlo(SliKind::kLatency);
  cart_only.filter.operations = {"GET /cart"};
  const std::vector<AlertCause> cart = h.Find(cart_only);
  ASSERT_EQ(cart.size(), 1u);
  EXPECT_DOUBLE_EQ(cart[0].share, 1.0);
  // Above every duration: no slow events, no causes.
  Slo lenient = MakeSlo(SliKind::kLatencyQuantile);
  lenient.sli.latency_quantile.threshold = milliseconds(1000);
  EXPECT_TRUE(h.Find(lenient).empty());
}

// The SLO's service has 10 partial traces; propagation broke 8 times in payment and twice in
// inventory, so payment alone covers 80 %.
TEST(CauseFinderTest, PropagationBreaksByService) {
  Harness h;
  const SeriesRegistry::Ids charge = h.registry.Resolve("payment", "charge");
  const SeriesRegistry::Ids reserve = h.registry.Resolve("inventory", "reserve");
  Slo slo = MakeSlo(SliKind::kPartialTraces);
  h.Traces(charge.service, kFirst, 5, 5);
  h.Traces(charge.service, kFirst + 2, 3, 3);
  h.Traces(reserve.service, kFirst + 1, 2, 2);
  h.Traces(reserve.service, kFirst - 1, 100, 100);  // outside the window
  EXPECT_TRUE(h.Find(slo).empty()) << "no partial traces for checkout yet";
  h.Traces(h.pay.service, kFirst, 6, 0);
  h.Traces(h.pay.service, kFirst + 3, 4, 0);
  // Exemplars of payment: two with an orphan span of payment, one without.
  h.SlowestExemplar(Harness::Trace(1, charge, kFirst, 5 * kMs, 0, true), kFirst);
  h.SlowestExemplar(Harness::Trace(2, charge, kFirst + 1, 5 * kMs), kFirst + 1);
  h.SlowestExemplar(Harness::Trace(3, charge, kFirst + 2, 5 * kMs, 0, true), kFirst + 2);

  std::vector<AlertCause> causes = h.Find(slo);
  ASSERT_EQ(causes.size(), 1u);
  EXPECT_EQ(causes[0].kind, AlertCause::Kind::kPropagationBreak);
  EXPECT_EQ(causes[0].id, "payment");
  EXPECT_EQ(causes[0].title, "payment");
  EXPECT_EQ(causes[0].count, 8u);
  EXPECT_DOUBLE_EQ(causes[0].share, 8.0 / 10);
  EXPECT_EQ(TraceIds(causes[0].traces), (std::vector<TraceId>{TraceOf(3), TraceOf(1)}));

  CauseOptions all;
  all.coverage = 1;
  causes = h.Find(slo, all);
  ASSERT_EQ(causes.size(), 2u);
  EXPECT_EQ(causes[1].id, "inventory");
  EXPECT_EQ(causes[1].count, 2u);
  EXPECT_DOUBLE_EQ(causes[1].share, 2.0 / 10);
  EXPECT_TRUE(causes[1].traces.empty());
}

// End to end through the real shard processor: 7 timeouts and 3 refusals of one operation.
TEST(CauseFinderTest, FromTheShardProcessor) {
  fakes::FakeClock clock;
  SeriesRegistry registry(100, 100);
  pipeline::SliStore store(pipeline::SliStoreOptions{.shards = 1});
  pipeline::SliShardProcessor processor(pipeline::SliOptions{}, clock, registry, store);
  clock.Advance(std::chrono::seconds(30));
  const auto now = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock.Now().time_since_epoch()).count());
  SpanBatch batch;
  for (uint8_t i = 0; i < 10; ++i) {
    Span span;
    span.trace_id = TraceOf(i + 1);
    span.span_id = 1;
    span.kind = SpanKind::kServer;
    span.status = StatusCode::kError;
    span.service = batch.Add("checkout", kMaxNameBytes);
    span.name = batch.Add("POST /pay", kMaxNameBytes);
    span.exception_type = batch.Add(i < 7 ? "TimeoutError" : "ConnectError", kMaxNameBytes);
    span.exception_message = batch.Add(
        i < 7 ? "timed out after " + std::to_string(1000 + i) + " ms" : "connection refused",
        kMaxMessageBytes);
    span.start_unix_nano = now - 20'000 * kMs + i * kMs;
    span.end_unix_nano = span.start_unix_nano + 5 * kMs;
    batch.spans.push_back(span);
  }
  pipeline::ShardBatch shard_batch;
  shard_batch.strings = std::make_shared<const std::string>(std::move(batch.strings));
  shard_batch.spans = std::move(batch.spans);
  processor.Process(shard_batch);
  clock.Advance(std::chrono::seconds(16));
  processor.OnTick();

  const int64_t bucket = pipeline::BucketOfUnixNanos(static_cast<int64_t>(now) - 20'000 * kMs);
  CauseOptions options;
  options.coverage = 1;
  const std::vector<AlertCause> causes =
      CauseFinder(options, registry, store).Find(MakeSlo(SliKind::kErrors), bucket - 1, bucket + 1);
  ASSERT_EQ(causes.size(), 2u);
  EXPECT_EQ(causes[0].title, "TimeoutError: timed out after <num> ms");
  EXPECT_EQ(causes[0].sample_message, "timed out after 1000 ms");
  EXPECT_EQ(causes[0].count, 7u);
  EXPECT_DOUBLE_EQ(causes[0].share, 0.7);
  EXPECT_EQ(causes[0].id.size(), 16u);
  EXPECT_EQ(causes[0].id.find_first_not_of("0123456789abcdef"), std::string::npos);
  // The store keeps the latest error trace per (series, bucket, signature), trace 7, and the
  // slowest entry span's, trace 1 (all take 5 ms; the first completed wins), which failed with
  // the timeout too.
  EXPECT_EQ(TraceIds(causes[0].traces), (std::vector<TraceId>{TraceOf(7), TraceOf(1)}));
  EXPECT_EQ(causes[1].title, "ConnectError: connection refused");
  EXPECT_EQ(causes[1].count, 3u);
  EXPECT_EQ(TraceIds(causes[1].traces), std::vector<TraceId>{TraceOf(10)});
}

// checkout's entry span (its own signature) over a failing payment span (payment's signature):
// a two-span trace, both spans error spans, the payment span the child.
ExemplarRef Cascade(uint8_t n, SeriesRegistry::Ids checkout, uint64_t checkout_signature,
                    SeriesRegistry::Ids payment, uint64_t payment_signature, uint64_t duration) {
  auto trace = std::make_shared<pipeline::ExemplarTrace>();
  trace->trace_id[0] = 0xca;
  trace->trace_id[15] = n;
  trace->start_unix_nano = kFirst * pipeline::kBucketNanos;
  trace->duration_nanos = duration;
  trace->spans.push_back({.span_id = 1,
                          .duration_nanos = duration,
                          .signature = checkout_signature,
                          .series = checkout.series,
                          .kind = SpanKind::kServer,
                          .error = checkout_signature != 0});
  trace->spans.push_back({.span_id = 2,
                          .parent_span_id = 1,
                          .duration_nanos = duration / 2,
                          .signature = payment_signature,
                          .series = payment.series,
                          .kind = SpanKind::kServer,
                          .error = true});
  return trace;
}

// Most exemplar traces of checkout's signature show the error beginning in payment: the cause
// names payment and its signature; a signature whose traces show no deeper error has no origin.
TEST(CauseFinderTest, ASignatureWhoseErrorBeganDownstreamNamesTheOrigin) {
  Harness h;
  const SeriesRegistry::Ids payment = h.registry.Resolve("payment", "charge");
  constexpr uint64_t kDeclined = 0x00c3000000000003;
  h.Errors(h.pay, kFirst, kTimeout, 60, "CheckoutFailed", "payment failed");
  h.Errors(payment, kFirst, kDeclined, 60, "CardDeclined", "card declined");
  h.Errors(h.pay, kFirst + 1, kUnavailable, 40, "Unavailable", "no backend");
  // Two of three exemplars of kTimeout cascade from payment; kUnavailable's one does not.
  h.ErrorExemplar(Cascade(1, h.pay, kTimeout, payment, kDeclined, 50 * kMs), kFirst);
  h.ErrorExemplar(Cascade(2, h.pay, kTimeout, payment, kDeclined, 50 * kMs), kFirst + 1);
  h.ErrorExemplar(Harness::Trace(3, h.pay, kFirst + 2, 5 * kMs, kTimeout), kFirst + 2);
  h.ErrorExemplar(Harness::Trace(4, h.pay, kFirst + 1, 5 * kMs, kUnavailable), kFirst + 1);
  const std::vector<AlertCause> causes = h.Find(MakeSlo(SliKind::kErrors));
  ASSERT_EQ(Ids(causes), (std::vector<std::string>{"00a1000000000001", "00b2000000000002"}));
  EXPECT_EQ(causes[0].origin_service, "payment");
  EXPECT_EQ(causes[0].origin_signature, "00c3000000000003");
  EXPECT_EQ(causes[0].origin_title, "CardDeclined: card declined");
  EXPECT_TRUE(causes[1].origin_service.empty());
  EXPECT_TRUE(causes[1].origin_signature.empty());

  // Origins off (Kafka mode): the same causes, named by their own signatures, with the same
  // traces linked.
  const std::vector<AlertCause> own =
      h.Find(MakeSlo(SliKind::kErrors), CauseOptions{.origins = false});
  ASSERT_EQ(Ids(own), Ids(causes));
  for (size_t i = 0; i < own.size(); ++i) {
    EXPECT_TRUE(own[i].origin_service.empty());
    EXPECT_TRUE(own[i].origin_signature.empty());
    EXPECT_TRUE(own[i].origin_title.empty());
    EXPECT_EQ(own[i].title, causes[i].title);
    EXPECT_EQ(TraceIds(own[i].traces), TraceIds(causes[i].traces));
  }
  EXPECT_EQ(own[0].traces.size(), 3u) << "the cascading traces still link";
}

// Origins are for signatures only: a slow operation whose traces hold a failing payment span,
// or a propagation break, has none.
TEST(CauseFinderTest, SlowOperationsAndBreaksHaveNoOrigin) {
  Harness h;
  const SeriesRegistry::Ids payment = h.registry.Resolve("payment", "charge");
  ASSERT_EQ(h.pay.series, 0u) << "series 0 must not be taken for a signature id";
  h.Latency(h.pay, kFirst, 250 * kMs, 10);
  h.SlowestExemplar(Cascade(1, h.pay, 0, payment, 0x00c3000000000003, 250 * kMs), kFirst);
  const std::vector<AlertCause> slow = h.Find(MakeSlo(SliKind::kLatency));
  ASSERT_EQ(slow.size(), 1u);
  EXPECT_EQ(slow[0].kind, AlertCause::Kind::kSlowOperation);
  EXPECT_TRUE(slow[0].origin_service.empty());
  EXPECT_TRUE(slow[0].origin_signature.empty());
}

}  // namespace
}  // namespace traceslo::slo
