#include "traceslo/pipeline/sli_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <thread>

namespace traceslo::pipeline {
namespace {

using namespace std::chrono_literals;

// A series delta built from raw durations: every count computed here, not by the store.
SeriesDelta MakeSeries(uint32_t series, uint32_t service, int64_t bucket,
                       const std::vector<uint64_t>& durations, uint64_t errors = 0) {
  SeriesDelta d;
  d.series = series;
  d.service = service;
  d.bucket = bucket;
  d.requests = durations.size();
  d.errors = errors;
  for (uint64_t nanos : durations) {
    d.sum_seconds += static_cast<double>(nanos) / 1e9;
    ++d.classic[ClassicBucketOf(nanos)];
    d.latency.Add(nanos);
  }
  return d;
}

// A series delta of `errors` 1 ms error requests with these signature counts (errors = their
// sum), as a shard publishes it.
SeriesDelta WithSignatures(uint32_t series, uint32_t service, int64_t bucket,
                           std::vector<SignatureCount> signatures) {
  uint64_t errors = 0;
  for (const SignatureCount& c : signatures) errors += c.count;
  SeriesDelta d =
      MakeSeries(series, service, bucket, std::vector<uint64_t>(errors, 1'000'000), errors);
  d.signatures = std::move(signatures);
  return d;
}

// Sorted as SignatureCounts() answers: highest count first, then by id.
std::vector<SignatureCount> Ranked(const std::map<uint64_t, uint64_t>& counts) {
  std::vector<SignatureCount> out;
  for (auto [id, count] : counts) {
    if (count > 0) out.push_back({id, count});
  }
  std::sort(out.begin(), out.end(), [](const SignatureCount& a, const SignatureCount& b) {
    return a.count != b.count ? a.count > b.count : a.id < b.id;
  });
  return out;
}

ShardDelta OneSeries(SeriesDelta d, uint32_t shard = 0) {
  ShardDelta delta;
  delta.shard = shard;
  delta.series.push_back(std::move(d));
  return delta;
}

LatencySketch SketchOf(const std::vector<uint64_t>& samples) {
  LatencySketch sketch;
  for (uint64_t v : samples) sketch.Add(v);
  return sketch;
}

// The exact nearest-rank quantile, for comparison with the sketch's estimate.
double ExactQuantile(std::vector<uint64_t> samples, double q) {
  std::sort(samples.begin(), samples.end());
  return static_cast<double>(samples[LatencySketch::NearestRank(q, samples.size()) - 1]);
}

std::vector<uint64_t> RandomDurations(std::mt19937_64& rng, size_t n) {
  std::lognormal_distribution<double> dist(std::log(50e6), 1.0);  // median 50 ms
  std::vector<uint64_t> out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(std::clamp<uint64_t>(static_cast<uint64_t>(dist(rng)), 2000, 1'000'000'000'000));
  }
  return out;
}

TraceId IdOf(uint8_t n) {
  TraceId id{};
  id[0] = 0xab;
  id[15] = n;
  return id;
}

ExemplarRef MakeTrace(uint8_t n, uint64_t duration_nanos = 1'000'000) {
  auto trace = std::make_shared<ExemplarTrace>();
  trace->trace_id = IdOf(n);
  trace->start_unix_nano = 1'700'000'000'000'000'000 + n;
  trace->duration_nanos = duration_nanos;
  trace->spans.push_back(ExemplarSpan{.span_id = n, .duration_nanos = duration_nanos});
  return trace;
}

ExemplarDelta Slowest(uint32_t series, int64_t bucket, const ExemplarRef& trace) {
  return ExemplarDelta{.series = series,
                       .bucket = bucket,
                       .signature = 0,
                       .duration_nanos = trace->duration_nanos,
                       .end_unix_nano = 0,
                       .trace = trace};
}

ExemplarDelta ErrorExemplar(uint32_t series, int64_t bucket, uint64_t signature,
                            int64_t end_unix_nano, const ExemplarRef& trace) {
  return ExemplarDelta{.series = series,
                       .bucket = bucket,
                       .signature = signature,
                       .duration_nanos = 1000,
                       .end_unix_nano = end_unix_nano,
                       .trace = trace};
}

SliStoreOptions Options(std::chrono::milliseconds retention = 3'600'000ms) {
  SliStoreOptions options;
  options.shards = 2;
  options.retention = retention;
  return options;
}

TEST(ClassicBucketTest, BoundsAreInclusiveAndExactInNanoseconds) {
  for (size_t i = 0; i < kClassicBoundsSeconds.size(); ++i) {
    const auto bound = static_cast<uint64_t>(std::llround(kClassicBoundsSeconds[i] * 1e9));
    EXPECT_EQ(ClassicBucketOf(bound), i) << "le=" << kClassicBoundsSeconds[i];
    EXPECT_EQ(ClassicBucketOf(bound + 1), i + 1) << "le=" << kClassicBoundsSeconds[i];
    EXPECT_EQ(ClassicBucketOf(bound - 1), i) << "le=" << kClassicBoundsSeconds[i];
  }
  EXPECT_EQ(ClassicBucketOf(0), 0u);
  EXPECT_EQ(ClassicBucketOf(100'000'000), 5u);  // 0.1 s, not representable as a double
  EXPECT_EQ(ClassicBucketOf(UINT64_MAX), kClassicBuckets - 1);
}

TEST(SliStoreTest, TotalsAddAcrossShards) {
  SliStore store(Options());
  ShardDelta a = OneSeries(MakeSeries(0, 0, 100, {1'000'000, 3'000'000}, 1), 0);
  a.services.push_back({.service = 0,
                        .bucket = 100,
                        .traces = 2,
                        .error_traces_root = 1,
                        .error_traces_origin = 1,
                        .partial_traces = 0,
                        .propagation_breaks = 0});
  a.late_spans = 1;
  a.evicted_traces = 2;
  a.clock_skew_spans = 3;
  a.truncated_spans = 4;
  a.signature_overflow = 5;
  a.live_traces = 10;
  a.live_trace_bytes = 1000;
  ShardDelta b = OneSeries(MakeSeries(0, 0, 101, {20'000'000'000}, 1), 1);
  b.services.push_back({.service = 0,
                        .bucket = 101,
                        .traces = 3,
                        .error_traces_root = 0,
                        .error_traces_origin = 2,
                        .partial_traces = 1,
                        .propagation_breaks = 1});
  b.late_spans = 10;
  b.evicted_traces = 20;
  b.clock_skew_spans = 30;
  b.truncated_spans = 40;
  b.signature_overflow = 50;
  b.live_traces = 7;
  b.live_trace_bytes = 700;
  store.Apply(std::move(a));
  store.Apply(std::move(b));
  // Shard 0 publishes again: its level replaces its previous one.
  ShardDelta again;
  again.shard = 0;
  again.live_traces = 4;
  again.live_trace_bytes = 400;
  store.Apply(std::move(again));

  const auto series = store.AllSeriesTotals();
  ASSERT_EQ(series.size(), 1u);
  EXPECT_EQ(series[0].requests, 3u);
  EXPECT_EQ(series[0].errors, 2u);
  EXPECT_DOUBLE_EQ(series[0].sum_seconds, 0.001 + 0.003 + 20.0);
  std::array<uint64_t, kClassicBuckets> classic{};
  classic[0] = 1;                    // 1 ms <= 2 ms
  classic[1] = 1;                    // 3 ms <= 5 ms
  classic[kClassicBuckets - 1] = 1;  // 20 s > 15 s
  EXPECT_EQ(series[0].classic, classic);

  const auto services = store.AllServiceTotals();
  ASSERT_EQ(services.size(), 1u);
  EXPECT_EQ(services[0].traces, 5u);
  EXPECT_EQ(services[0].error_traces_root, 1u);
  EXPECT_EQ(services[0].error_traces_origin, 3u);
  EXPECT_EQ(services[0].partial_traces, 1u);
  EXPECT_EQ(services[0].propagation_breaks, 1u);

  const SliStore::GlobalTotals totals = store.Totals();
  EXPECT_EQ(totals.late_spans, 11u);
  EXPECT_EQ(totals.evicted_traces, 22u);
  EXPECT_EQ(totals.clock_skew_spans, 33u);
  EXPECT_EQ(totals.truncated_spans, 44u);
  EXPECT_EQ(totals.signature_overflow, 55u);
  EXPECT_EQ(totals.live_traces, 4u + 7u);
  EXPECT_EQ(totals.live_trace_bytes, 400u + 700u);
  EXPECT_EQ(totals.signatures, 0u);
}

// Kafka mode forgets the services of a deltas partition another instance took over; when the
// partition comes back its file is applied again, and must then be counted once.
TEST(SliStoreTest, ForgetServicesDropsOnlyThoseServices) {
  SliStore store(Options());
  auto delta = [](uint32_t series, uint32_t service, int64_t bucket,
                  std::vector<uint64_t> durations, uint64_t errors, uint64_t partial) {
    ShardDelta d = OneSeries(MakeSeries(series, service, bucket, durations, errors));
    d.services.push_back(
        {.service = service, .bucket = bucket, .traces = 1, .partial_traces = partial});
    d.exemplars.push_back(Slowest(series, bucket, MakeTrace(static_cast<uint8_t>(series + 1))));
    return d;
  };
  store.Apply(delta(0, 0, 100, {1'000'000, 2'000'000}, 1, 1));  // service 0: series 0
  store.Apply(delta(1, 1, 100, {3'000'000}, 0, 0));             // service 1: series 1
  store.Apply(delta(2, 0, 101, {4'000'000}, 1, 0));             // service 0: series 2
  (void)store.TakeChangedMinutes();
  store.Apply(delta(0, 0, 101, {5'000'000}, 0, 0));  // a change not yet saved

  store.ForgetServices({0});
  for (uint32_t series : {0u, 2u}) {
    EXPECT_EQ(store.AllSeriesTotals()[series].requests, 0u) << series;
    EXPECT_EQ(store.SeriesWindow(series, 0, 200).requests, 0u) << series;
    EXPECT_TRUE(store.Exemplars(series, 0, 200).empty()) << series;
  }
  EXPECT_EQ(store.AllServiceTotals()[0].partial_traces, 0u);
  EXPECT_EQ(store.ServiceWindow(0, 0, 200).requests, 0u);
  EXPECT_EQ(store.FindTrace(IdOf(1)), nullptr);
  // The other service is untouched; the forgotten one's unsaved minute is not written.
  EXPECT_EQ(store.AllSeriesTotals()[1].requests, 1u);
  EXPECT_EQ(store.SeriesWindow(1, 0, 200).requests, 1u);
  EXPECT_NE(store.FindTrace(IdOf(2)), nullptr);
  EXPECT_TRUE(store.TakeChangedMinutes().series.empty());

  // Applied again (the partition's file, restored): counted once.
  store.Apply(delta(0, 0, 100, {1'000'000, 2'000'000}, 1, 1));
  EXPECT_EQ(store.AllSeriesTotals()[0].requests, 2u);
  EXPECT_EQ(store.SeriesWindow(0, 0, 200).errors, 1u);
  EXPECT_EQ(store.ServiceWindow(0, 0, 200).partial_traces, 1u);
  EXPECT_EQ(store.AllServiceTotals()[0].partial_traces, 1u);
}

TEST(SliStoreTest, SeriesWindowCountsOnlyInWindowBuckets) {
  SliStore store(Options());
  std::mt19937_64 rng(1);
  std::map<int64_t, std::vector<uint64_t>> samples;
  for (int64_t bucket = 1000; bucket < 1010; ++bucket) {
    samples[bucket] = RandomDurations(rng, 20 + static_cast<size_t>(bucket - 1000));
    store.Apply(OneSeries(MakeSeries(7, 1, bucket, samples[bucket], bucket - 1000)));
  }
  uint64_t requests = 0;
  uint64_t errors = 0;
  std::vector<uint64_t> in_window;
  for (int64_t bucket = 1003; bucket <= 1006; ++bucket) {
    requests += samples[bucket].size();
    errors += static_cast<uint64_t>(bucket - 1000);
    in_window.insert(in_window.end(), samples[bucket].begin(), samples[bucket].end());
  }
  const WindowStats stats = store.SeriesWindow(7, 1003, 1006);
  EXPECT_EQ(stats.requests, requests);
  EXPECT_EQ(stats.errors, errors);
  EXPECT_TRUE(stats.latency == SketchOf(in_window));
  for (double q : {0.5, 0.95, 0.99}) {
    const double exact = ExactQuantile(in_window, q);
    EXPECT_LE(std::abs(stats.latency.QuantileNanos(q) - exact),
              LatencySketch::kRelativeErrorBound * exact)
        << "q=" << q;
  }
  EXPECT_EQ(store.SeriesWindow(7, 2000, 3000).requests, 0u);
  EXPECT_EQ(store.SeriesWindow(8, 1000, 1010).requests, 0u);  // unknown series
  EXPECT_EQ(store.SeriesWindow(7, 1006, 1003).requests, 0u);  // empty range
}

TEST(SliStoreTest, ChangedMinutesAreWholeMinutesOnceEach) {
  SliStore store(Options());
  std::mt19937_64 rng(3);
  // Minute 200 = buckets 1200..1205; minute 201 = 1206..1211.
  std::vector<uint64_t> minute200;
  std::vector<uint64_t> minute201;
  for (int64_t bucket : {1200, 1203, 1205}) {
    auto d = RandomDurations(rng, 10);
    minute200.insert(minute200.end(), d.begin(), d.end());
    store.Apply(OneSeries(MakeSeries(4, 2, bucket, d, 1)));
  }
  {
    auto d = RandomDurations(rng, 7);
    minute201 = d;
    store.Apply(OneSeries(MakeSeries(4, 2, 1206, d, 2)));
  }
  ShardDelta traces;
  traces.services.push_back(ServiceDelta{
      .service = 2, .bucket = 1201, .traces = 5, .error_traces_root = 1, .partial_traces = 2});
  traces.services.push_back(ServiceDelta{.service = 2,
                                         .bucket = 1204,
                                         .traces = 3,
                                         .error_traces_origin = 1,
                                         .propagation_breaks = 1});
  store.Apply(traces);

  MinuteRollups first = store.TakeChangedMinutes();
  ASSERT_EQ(first.series.size(), 2u);
  EXPECT_EQ(first.series[0].series, 4u);
  EXPECT_EQ(first.series[0].service, 2u);
  EXPECT_EQ(first.series[0].minute, 200);
  EXPECT_EQ(first.series[0].last_offset, 5);  // bucket 1205
  EXPECT_EQ(first.series[0].requests, 30u);
  EXPECT_EQ(first.series[0].errors, 3u);
  EXPECT_TRUE(first.series[0].latency == SketchOf(minute200));
  EXPECT_EQ(first.series[1].minute, 201);
  EXPECT_EQ(first.series[1].requests, 7u);
  ASSERT_EQ(first.services.size(), 1u);
  EXPECT_EQ(first.services[0].minute, 200);
  EXPECT_EQ(first.services[0].traces, 8u);
  EXPECT_EQ(first.services[0].last_offset, 5);  // bucket 1205: its series had requests there
  EXPECT_EQ(first.services[0].error_traces_root, 1u);
  EXPECT_EQ(first.services[0].error_traces_origin, 1u);
  EXPECT_EQ(first.services[0].partial_traces, 2u);
  EXPECT_EQ(first.services[0].propagation_breaks, 1u);

  EXPECT_TRUE(store.TakeChangedMinutes().empty());  // nothing changed since
  // A late delta for minute 200: the minute comes again, whole (not just the delta).
  store.Apply(OneSeries(MakeSeries(4, 2, 1202, {1'000'000}, 1)));
  MinuteRollups second = store.TakeChangedMinutes();
  ASSERT_EQ(second.series.size(), 1u);
  EXPECT_EQ(second.series[0].minute, 200);
  EXPECT_EQ(second.series[0].requests, 31u);
  EXPECT_EQ(second.series[0].errors, 4u);
  EXPECT_TRUE(second.services.empty());
}

TEST(SliStoreTest, RestorePutsMinutesBackWithoutTotalsOrChanges) {
  SliStore original(Options());
  std::mt19937_64 rng(5);
  for (int64_t bucket = 1200; bucket < 1260; bucket += 7) {
    original.Apply(OneSeries(MakeSeries(1, 0, bucket, RandomDurations(rng, 5), 2)));
    original.Apply(OneSeries(MakeSeries(3, 0, bucket, RandomDurations(rng, 3), 0)));
  }
  ShardDelta traces;
  traces.services.push_back(
      ServiceDelta{.service = 0, .bucket = 1230, .traces = 9, .error_traces_root = 4});
  original.Apply(traces);
  const MinuteRollups saved = original.TakeChangedMinutes();

  SliStore restored(Options());
  restored.Restore(saved);
  EXPECT_TRUE(restored.TakeChangedMinutes().empty());
  EXPECT_TRUE(restored.AllSeriesTotals().empty() || restored.AllSeriesTotals()[1].requests == 0);
  // Whole minutes read the same as before the restart.
  for (int64_t minute = 200; minute < 210; ++minute) {
    const int64_t first = minute * kBucketsPerMinute;
    const int64_t last = first + kBucketsPerMinute - 1;
    for (uint32_t series : {1u, 3u}) {
      const WindowStats a = original.SeriesWindow(series, first, last);
      const WindowStats b = restored.SeriesWindow(series, first, last);
      EXPECT_EQ(a.requests, b.requests) << minute;
      EXPECT_EQ(a.errors, b.errors) << minute;
      EXPECT_TRUE(a.latency == b.latency) << minute;
    }
    const WindowStats a = original.ServiceWindow(0, first, last);
    const WindowStats b = restored.ServiceWindow(0, first, last);
    EXPECT_EQ(a.requests, b.requests);
    EXPECT_EQ(a.traces, b.traces);
    EXPECT_EQ(a.error_traces_root, b.error_traces_root);
  }
  // The newest restored minute is 209, whose newest bucket with data was 1256 (offset 2): the
  // restored minute sits there, and a 360-slot ring reaches back from it.
  ASSERT_EQ(saved.series.back().minute, 209);
  EXPECT_EQ(saved.series.back().last_offset, 2);
  EXPECT_EQ(restored.OldestHeldBucket(), 1256 - 360 + 1);
  EXPECT_EQ(restored.SeriesWindow(1, 1256, 1256).requests,
            original.SeriesWindow(1, 1254, 1259).requests);
  EXPECT_EQ(SliStore(Options()).OldestHeldBucket(), INT64_MAX);
  // New traffic after the restore adds to the restored minute.
  restored.Apply(OneSeries(MakeSeries(1, 0, 1250, {2'000'000}, 1)));
  MinuteRollups changed = restored.TakeChangedMinutes();
  ASSERT_EQ(changed.series.size(), 1u);
  EXPECT_EQ(changed.series[0].minute, 208);
  EXPECT_EQ(changed.series[0].requests, original.SeriesWindow(1, 1248, 1253).requests + 1);
}

TEST(SliStoreTest, RingWrapResetsOldSlot) {
  SliStore store(Options(60s));  // 6 slots
  store.Apply(OneSeries(MakeSeries(0, 0, 100, {1'000'000, 1'000'000, 1'000'000})));
  store.Apply(OneSeries(MakeSeries(0, 0, 106, {2'000'000})));  // the same slot as bucket 100
  const WindowStats stats = store.SeriesWindow(0, 0, 1000);
  EXPECT_EQ(stats.requests, 1u);
  EXPECT_TRUE(stats.latency == SketchOf({2'000'000}));
  EXPECT_EQ(store.SeriesWindow(0, 100, 100).requests, 0u);
  EXPECT_EQ(store.AllSeriesTotals()[0].requests, 4u);
}

TEST(SliStoreTest, TooOldDeltaIsDroppedFromRingButCountedInTotals) {
  SliStore store(Options(60s));  // 6 slots: after bucket 110, buckets 105..110
  store.Apply(OneSeries(MakeSeries(0, 0, 110, {1'000'000})));
  store.Apply(OneSeries(MakeSeries(0, 0, 104, {2'000'000, 2'000'000})));  // too old
  store.Apply(OneSeries(MakeSeries(0, 0, 105, {3'000'000})));             // the oldest kept
  const WindowStats stats = store.SeriesWindow(0, 0, 1000);
  EXPECT_EQ(stats.requests, 2u);
  EXPECT_TRUE(stats.latency == SketchOf({1'000'000, 3'000'000}));
  EXPECT_EQ(store.AllSeriesTotals()[0].requests, 4u);

  // Another series' newer bucket moves the store's horizon: series 0's old buckets leave the
  // window although their slots were never overwritten.
  store.Apply(OneSeries(MakeSeries(1, 0, 115, {1'000'000})));  // buckets 110..115
  EXPECT_EQ(store.SeriesWindow(0, 0, 1000).requests, 1u);      // bucket 110 only
  store.Apply(OneSeries(MakeSeries(1, 0, 200, {1'000'000})));
  EXPECT_EQ(store.SeriesWindow(0, 0, 1000).requests, 0u);
  EXPECT_EQ(store.AllSeriesTotals()[0].requests, 4u);
}

TEST(SliStoreTest, ServiceWindowMergesAllOfItsSeries) {
  SliStore store(Options());
  std::mt19937_64 rng(2);
  // Service 3 has series 70'000 and 5 (ids arrive out of order); service 1 has series 2.
  std::vector<uint64_t> service3;
  std::vector<uint64_t> service1;
  uint64_t service3_errors = 0;
  for (int64_t bucket = 500; bucket < 505; ++bucket) {
    for (uint32_t series : {70'000u, 5u}) {
      auto durations = RandomDurations(rng, 50);
      service3.insert(service3.end(), durations.begin(), durations.end());
      service3_errors += 2;
      store.Apply(OneSeries(MakeSeries(series, 3, bucket, durations, 2), series % 2));
    }
    auto durations = RandomDurations(rng, 30);
    service1.insert(service1.end(), durations.begin(), durations.end());
    ShardDelta delta = OneSeries(MakeSeries(2, 1, bucket, durations));
    delta.services.push_back({.service = 3,
                              .bucket = bucket,
                              .traces = 10,
                              .error_traces_root = 1,
                              .error_traces_origin = 2,
                              .partial_traces = 3,
                              .propagation_breaks = 4});
    store.Apply(std::move(delta));
  }
  const WindowStats stats = store.ServiceWindow(3, 500, 504);
  EXPECT_EQ(stats.requests, service3.size());
  EXPECT_EQ(stats.errors, service3_errors);
  EXPECT_TRUE(stats.latency == SketchOf(service3));
  EXPECT_EQ(stats.traces, 50u);
  EXPECT_EQ(stats.error_traces_root, 5u);
  EXPECT_EQ(stats.error_traces_origin, 10u);
  EXPECT_EQ(stats.partial_traces, 15u);
  EXPECT_EQ(stats.propagation_breaks, 20u);
  for (double q : {0.5, 0.95, 0.99}) {
    const double exact = ExactQuantile(service3, q);
    EXPECT_LE(std::abs(stats.latency.QuantileNanos(q) - exact),
              LatencySketch::kRelativeErrorBound * exact)
        << "q=" << q;
  }
  EXPECT_EQ(store.ServiceWindow(3, 502, 502).traces, 10u);

  const std::vector<LatencySketch> latencies = store.ServiceLatencies(500, 504);
  ASSERT_EQ(latencies.size(), 4u);  // service ids 0..3
  EXPECT_EQ(latencies[0].Count(), 0u);
  EXPECT_TRUE(latencies[1] == SketchOf(service1));
  EXPECT_EQ(latencies[2].Count(), 0u);
  EXPECT_TRUE(latencies[3] == SketchOf(service3));
}

TEST(SliStoreTest, SlowestExemplarKeepsTheLongest) {
  SliStore store(Options());
  const ExemplarRef a = MakeTrace(1, 5'000'000);
  const ExemplarRef b = MakeTrace(2, 9'000'000);
  const ExemplarRef c = MakeTrace(3, 7'000'000);
  ShardDelta delta;
  delta.exemplars = {Slowest(4, 100, a), Slowest(4, 100, b)};
  store.Apply(std::move(delta));
  ShardDelta later;
  later.shard = 1;
  later.exemplars = {Slowest(4, 100, c)};
  store.Apply(std::move(later));
  EXPECT_EQ(store.Exemplars(4, 100, 100), std::vector<ExemplarRef>{b});
  EXPECT_EQ(store.FindTrace(IdOf(2)), b);
  // a left `slowest`, but /metrics shows it as the exemplar of the le=0.005 bucket (5 ms), so the
  // trace page must still open it. b and c share the le=0.01 bucket: c came last and shows.
  EXPECT_EQ(store.FindTrace(IdOf(1)), a);
  const std::vector<SliStore::SeriesExemplars> shown = store.AllSeriesExemplars();
  ASSERT_EQ(shown.size(), 5u);
  ASSERT_TRUE(shown[4].duration[1].has_value());
  EXPECT_EQ(shown[4].duration[1]->trace_id, IdOf(1));
  ASSERT_TRUE(shown[4].duration[2].has_value());
  EXPECT_EQ(shown[4].duration[2]->trace_id, IdOf(3));
}

TEST(SliStoreTest, MetricExemplarsPerDurationBucketAndErrorsNewestFirst) {
  SliStore store(Options());
  const ExemplarRef fast = MakeTrace(1, 3'000'000);       // 3 ms: le=0.005, index 1
  const ExemplarRef slow = MakeTrace(2, 700'000'000);     // 700 ms: le=1, index 8
  const ExemplarRef slow2 = MakeTrace(3, 900'000'000);    // 900 ms: le=1 too, newer
  const ExemplarRef huge = MakeTrace(4, 20'000'000'000);  // 20 s: +Inf, index 13
  const ExemplarRef error_a = MakeTrace(5), error_b = MakeTrace(6);
  auto slowest = [](int64_t bucket, const ExemplarRef& t, int64_t end) {
    ExemplarDelta d = Slowest(2, bucket, t);
    d.end_unix_nano = end;
    return d;
  };
  ShardDelta delta;
  delta.exemplars = {slowest(100, fast, 1'000), slowest(100, slow, 2'000),
                     slowest(101, huge, 3'500), ErrorExemplar(2, 100, 7, 5'000, error_a)};
  store.Apply(std::move(delta));
  ShardDelta later;
  later.shard = 1;
  // Newer bucket in le=1: replaces slow. An error exemplar older than error_a: ignored.
  later.exemplars = {slowest(101, slow2, 3'000), ErrorExemplar(2, 100, 8, 4'000, error_b)};
  store.Apply(std::move(later));

  const std::vector<SliStore::SeriesExemplars> all = store.AllSeriesExemplars();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_FALSE(all[0].error.has_value());
  const SliStore::SeriesExemplars& e = all[2];
  for (size_t i = 0; i < kClassicBuckets; ++i) {
    if (i == 1 || i == 8 || i == 13) continue;
    EXPECT_FALSE(e.duration[i].has_value()) << "bucket " << i;
  }
  ASSERT_TRUE(e.duration[1] && e.duration[8] && e.duration[13] && e.error);
  EXPECT_EQ(e.duration[1]->trace_id, IdOf(1));
  EXPECT_DOUBLE_EQ(e.duration[1]->value, 0.003);
  EXPECT_EQ(e.duration[1]->unix_nano, 1'000);
  EXPECT_EQ(e.duration[8]->trace_id, IdOf(3));
  EXPECT_DOUBLE_EQ(e.duration[8]->value, 0.9);
  EXPECT_EQ(e.duration[13]->trace_id, IdOf(4));
  EXPECT_DOUBLE_EQ(e.duration[13]->value, 20.0);
  EXPECT_EQ(e.error->trace_id, IdOf(5));
  EXPECT_DOUBLE_EQ(e.error->value, 1.0);
  EXPECT_EQ(e.error->unix_nano, 5'000);
  // Every listed trace opens, and so does `slow`, which /metrics showed before slow2 (Prometheus
  // keeps it).
  for (uint8_t n : {1, 2, 3, 4, 5}) EXPECT_NE(store.FindTrace(IdOf(n)), nullptr) << int{n};
}

TEST(SliStoreTest, EveryShownExemplarOpensUpToTheCapPerSlot) {
  SliStore store(Options());
  std::vector<ExemplarRef> traces;
  for (uint8_t n = 1; n <= 17; ++n) {
    traces.push_back(MakeTrace(n, 1'000'000));  // the same duration: `slowest` stays trace 1
    ShardDelta delta;
    ExemplarDelta d = Slowest(0, 100, traces.back());
    d.end_unix_nano = n;
    delta.exemplars = {d};
    store.Apply(std::move(delta));
    const auto shown = store.AllSeriesExemplars().at(0).duration[0];
    ASSERT_TRUE(shown.has_value());
    // The 17th would be one more trace for the slot to hold: trace 16 stays shown.
    EXPECT_EQ(shown->trace_id, IdOf(std::min<uint8_t>(n, 16))) << int{n};
  }
  for (uint8_t n = 1; n <= 16; ++n) EXPECT_EQ(store.FindTrace(IdOf(n)), traces[n - 1]) << int{n};
  EXPECT_EQ(store.FindTrace(IdOf(17)), nullptr);
  EXPECT_EQ(store.Exemplars(0, 100, 100), std::vector<ExemplarRef>{traces[0]});
}

TEST(SliStoreTest, MetricExemplarsLeaveWithExemplarRetention) {
  SliStoreOptions options = Options();
  options.exemplar_retention = 30s;  // 3 slots
  SliStore store(options);
  ShardDelta delta;
  delta.exemplars = {Slowest(0, 100, MakeTrace(1)), ErrorExemplar(0, 100, 7, 10, MakeTrace(2))};
  store.Apply(std::move(delta));
  store.Apply(OneSeries(MakeSeries(0, 0, 102, {1'000'000})));
  ASSERT_EQ(store.AllSeriesExemplars().size(), 1u);
  EXPECT_TRUE(store.AllSeriesExemplars()[0].error.has_value());
  store.Apply(OneSeries(MakeSeries(0, 0, 103, {1'000'000})));
  const SliStore::SeriesExemplars none = store.AllSeriesExemplars().at(0);
  EXPECT_FALSE(none.error.has_value());
  EXPECT_TRUE(std::none_of(none.duration.begin(), none.duration.end(),
                           [](const auto& x) { return x.has_value(); }));
  EXPECT_EQ(store.FindTrace(IdOf(1)), nullptr);
  EXPECT_EQ(store.FindTrace(IdOf(2)), nullptr);
}

TEST(SliStoreTest, ErrorExemplarsKeepTheLatestPerSignatureUpToTheCap) {
  SliStoreOptions options = Options();
  options.max_signatures_per_bucket = 2;
  SliStore store(options);
  const ExemplarRef a = MakeTrace(1), b = MakeTrace(2), c = MakeTrace(3), d = MakeTrace(4),
                    e = MakeTrace(5);
  auto apply = [&](ExemplarDelta x) {
    ShardDelta delta;
    delta.exemplars.push_back(std::move(x));
    store.Apply(std::move(delta));
  };
  apply(ErrorExemplar(0, 100, 1, 10, a));
  apply(ErrorExemplar(0, 100, 1, 5, b));  // older than a, same signature: ignored
  EXPECT_EQ(store.Exemplars(0, 100, 100), std::vector<ExemplarRef>{a});
  apply(ErrorExemplar(0, 100, 2, 20, c));
  apply(ErrorExemplar(0, 100, 3, 15, d));  // full: replaces the oldest entry, a (10)
  EXPECT_EQ(store.Exemplars(0, 100, 100), (std::vector<ExemplarRef>{c, d}));
  apply(ErrorExemplar(0, 100, 4, 1, e));  // full and older than every entry: not kept
  EXPECT_EQ(store.Exemplars(0, 100, 100), (std::vector<ExemplarRef>{c, d}));
  apply(ErrorExemplar(0, 100, 3, 30, e));  // signature 3 again, later: replaces d
  EXPECT_EQ(store.Exemplars(0, 100, 100), (std::vector<ExemplarRef>{e, c}));
  EXPECT_EQ(store.FindTrace(IdOf(4)), nullptr);
  EXPECT_EQ(store.FindTrace(IdOf(5)), e);
}

TEST(SliStoreTest, ExemplarsListSlowestNewestBucketFirstThenErrorsWithoutDuplicates) {
  SliStore store(Options());
  const ExemplarRef slow100 = MakeTrace(1, 9'000'000), slow101 = MakeTrace(2, 8'000'000),
                    err_old = MakeTrace(3), err_new = MakeTrace(4);
  ShardDelta delta;
  delta.exemplars = {
      Slowest(0, 100, slow100), Slowest(0, 101, slow101), ErrorExemplar(0, 101, 7, 1'010, err_old),
      ErrorExemplar(0, 100, 8, 1'020, err_new),
      // The slowest trace of bucket 100 is also an error exemplar: listed once.
      ErrorExemplar(0, 100, 9, 1'030, slow100), Slowest(1, 101, MakeTrace(9))};  // another series
  store.Apply(std::move(delta));
  EXPECT_EQ(store.Exemplars(0, 100, 101),
            (std::vector<ExemplarRef>{slow101, slow100, err_new, err_old}));
  EXPECT_EQ(store.Exemplars(0, 101, 101), (std::vector<ExemplarRef>{slow101, err_old}));
  EXPECT_TRUE(store.Exemplars(0, 102, 200).empty());
  EXPECT_TRUE(store.Exemplars(99, 0, 200).empty());
}

TEST(SliStoreTest, ExemplarsExpireWithExemplarRetention) {
  SliStoreOptions options = Options();
  options.exemplar_retention = 30s;  // 3 slots
  SliStore store(options);
  const ExemplarRef trace = MakeTrace(1);
  ShardDelta delta;
  delta.exemplars = {Slowest(0, 100, trace)};
  store.Apply(std::move(delta));
  store.Apply(OneSeries(MakeSeries(0, 0, 102, {1'000'000})));
  EXPECT_EQ(store.FindTrace(IdOf(1)), trace);
  store.Apply(OneSeries(MakeSeries(0, 0, 103, {1'000'000})));
  EXPECT_EQ(store.FindTrace(IdOf(1)), nullptr);
  EXPECT_TRUE(store.Exemplars(0, 0, 200).empty());
  ShardDelta too_old;
  too_old.exemplars = {Slowest(0, 100, trace)};
  store.Apply(std::move(too_old));
  EXPECT_EQ(store.FindTrace(IdOf(1)), nullptr);
}

TEST(SliStoreTest, SignatureRegistryCapsAndMerges) {
  SliStoreOptions options = Options();
  options.max_signatures = 2;
  SliStore store(options);
  auto signature = [](uint64_t id, uint64_t count, int64_t first, int64_t last,
                      std::vector<TraceId> traces) {
    SignatureDelta d;
    d.id = id;
    d.series = 1;
    d.count = count;
    d.first_seen_unix_nano = first;
    d.last_seen_unix_nano = last;
    d.trace_ids = std::move(traces);
    return d;
  };
  ShardDelta first;
  first.signatures.push_back(signature(10, 3, 1'000, 2'000, {IdOf(1), IdOf(2), IdOf(3)}));
  first.signatures.push_back(signature(20, 3, 1'500, 1'500, {IdOf(9)}));
  first.signatures.back().http_status = 503;
  first.signatures.back().exception_type = "TimeoutError";
  store.Apply(std::move(first));

  ShardDelta second;
  second.shard = 1;
  SignatureDelta more = signature(10, 4, 500, 1'800, {IdOf(4), IdOf(5), IdOf(6), IdOf(7)});
  more.exception_type = "IOError";
  more.normalized_message = "connection to <ip> refused";
  more.http_status = 500;
  second.signatures.push_back(std::move(more));
  SignatureDelta again = signature(20, 1, 1'600, 2'500, {});
  again.exception_type = "Other";
  again.http_status = 504;
  second.signatures.push_back(std::move(again));
  second.signatures.push_back(signature(30, 6, 1'000, 1'000, {IdOf(8)}));  // over the cap
  store.Apply(std::move(second));

  const std::vector<SignatureInfo> signatures = store.Signatures();
  ASSERT_EQ(signatures.size(), 2u);
  EXPECT_EQ(signatures[0].id, 10u);
  EXPECT_EQ(signatures[0].count, 7u);
  EXPECT_EQ(signatures[0].first_seen_unix_nano, 500);
  EXPECT_EQ(signatures[0].last_seen_unix_nano, 2'000);
  EXPECT_EQ(signatures[0].trace_ids,
            (std::vector<TraceId>{IdOf(3), IdOf(4), IdOf(5), IdOf(6), IdOf(7)}));
  EXPECT_EQ(signatures[0].exception_type, "IOError");  // was empty
  EXPECT_EQ(signatures[0].normalized_message, "connection to <ip> refused");
  EXPECT_EQ(signatures[0].http_status, 500);
  EXPECT_EQ(signatures[1].id, 20u);
  EXPECT_EQ(signatures[1].count, 4u);
  EXPECT_EQ(signatures[1].first_seen_unix_nano, 1'500);
  EXPECT_EQ(signatures[1].last_seen_unix_nano, 2'500);
  EXPECT_EQ(signatures[1].exception_type, "TimeoutError");  // kept: set first
  EXPECT_EQ(signatures[1].http_status, 503);
  EXPECT_EQ(signatures[1].trace_ids, std::vector<TraceId>{IdOf(9)});

  const SliStore::GlobalTotals totals = store.Totals();
  EXPECT_EQ(totals.signatures, 2u);
  EXPECT_EQ(totals.signature_overflow, 6u);  // the dropped signature's error spans
}

TEST(SliStoreTest, SignaturesSortByCountThenId) {
  SliStore store(Options());
  ShardDelta delta;
  for (auto [id, count] :
       {std::pair{5u, 2u}, std::pair{3u, 9u}, std::pair{4u, 2u}, std::pair{1u, 1u}}) {
    SignatureDelta d;
    d.id = id;
    d.count = count;
    delta.signatures.push_back(d);
  }
  store.Apply(std::move(delta));
  std::vector<uint64_t> ids;
  for (const SignatureInfo& s : store.Signatures()) ids.push_back(s.id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{3, 4, 5, 1}));
}

TEST(SliStoreTest, LargeIdsGrowOnDemandAndMemoryIsCounted) {
  SliStore store(Options());
  const size_t empty = store.MemoryBytes();
  store.Apply(OneSeries(MakeSeries(1u << 17, 1u << 16, 100, {1'000'000})));
  store.Apply(OneSeries(MakeSeries(3, 2, 100, {2'000'000})));
  EXPECT_EQ(store.AllSeriesTotals().size(), (1u << 17) + 1);
  EXPECT_EQ(store.AllServiceTotals().size(), (1u << 16) + 1);
  EXPECT_EQ(store.ServiceWindow(1u << 16, 100, 100).requests, 1u);
  EXPECT_EQ(store.ServiceWindow(2, 100, 100).requests, 1u);
  const size_t with_series = store.MemoryBytes();
  EXPECT_GT(with_series, empty + (1u << 17) * sizeof(SliStore::SeriesTotals));

  // An exemplar trace is counted once however many slots hold it.
  auto trace = std::make_shared<ExemplarTrace>();
  trace->spans.resize(10'000);
  const ExemplarRef big = std::move(trace);
  ShardDelta delta;
  delta.exemplars = {Slowest(3, 100, big), ErrorExemplar(3, 100, 1, 1, big)};
  store.Apply(std::move(delta));
  const size_t with_trace = store.MemoryBytes();
  EXPECT_GE(with_trace - with_series, big->MemoryBytes());
  EXPECT_LT(with_trace - with_series, 2 * big->MemoryBytes());
}

TEST(SignatureCountTest, AddKeepsTheCapAndFoldsTheRestIntoIdZero) {
  std::vector<SignatureCount> counts;
  AddSignatureCount(counts, 7, 1, 2);
  AddSignatureCount(counts, 8, 2, 2);
  AddSignatureCount(counts, 7, 3, 2);
  AddSignatureCount(counts, 9, 4, 2);  // a third id: over the cap
  AddSignatureCount(counts, 0, 5, 2);  // already unnamed
  AddSignatureCount(counts, 8, 6, 2);  // named ones still count past the cap
  AddSignatureCount(counts, 10, 7, 2);
  EXPECT_EQ(counts, (std::vector<SignatureCount>{{7, 4}, {8, 8}, {0, 16}}));
  std::vector<SignatureCount> unnamed_first;
  AddSignatureCount(unnamed_first, 0, 1, 1);
  AddSignatureCount(unnamed_first, 5, 1, 1);  // id 0 takes no place of the cap
  AddSignatureCount(unnamed_first, 6, 1, 1);
  EXPECT_EQ(unnamed_first, (std::vector<SignatureCount>{{0, 2}, {5, 1}}));
}

// Signature counts of several series and shards over windows: every expectation from a ledger
// of what was applied.
TEST(SliStoreTest, SignatureCountsSumOverSeriesAndBucketsOfTheWindowOnly) {
  SliStore store(Options());
  std::mt19937_64 rng(3);
  // ledger[series][bucket][signature]
  std::map<uint32_t, std::map<int64_t, std::map<uint64_t, uint64_t>>> ledger;
  for (int64_t bucket = 500; bucket < 520; ++bucket) {
    for (uint32_t series : {1u, 2u, 4u}) {
      for (uint32_t shard = 0; shard < 2; ++shard) {
        std::vector<SignatureCount> counts;
        // Series 1 and 2 share signature 100 (not possible from real spans, but the store
        // must not care); series 4 has none of its own.
        for (uint64_t id : {uint64_t{100}, uint64_t{series * 10}, uint64_t{series * 10 + 1}}) {
          const uint64_t n = rng() % 4;
          if (n == 0 || series == 4) continue;
          counts.push_back({id, n});
          ledger[series][bucket][id] += n;
        }
        if (counts.empty()) continue;
        store.Apply(OneSeries(WithSignatures(series, 0, bucket, std::move(counts)), shard));
      }
    }
  }
  store.Apply(OneSeries(MakeSeries(4, 0, 510, {1'000'000, 2'000'000})));  // no errors
  auto expected = [&](const std::vector<uint32_t>& series, int64_t first, int64_t last) {
    std::map<uint64_t, uint64_t> sum;
    for (uint32_t s : series) {
      for (const auto& [bucket, counts] : ledger[s]) {
        if (bucket < first || bucket > last) continue;
        for (auto [id, n] : counts) sum[id] += n;
      }
    }
    return Ranked(sum);
  };
  for (const auto& [first, last] : std::vector<std::pair<int64_t, int64_t>>{
           {500, 519}, {505, 505}, {503, 511}, {519, 600}, {400, 500}, {520, 530}, {0, 499}}) {
    for (const std::vector<uint32_t>& series :
         std::vector<std::vector<uint32_t>>{{1}, {2}, {1, 2}, {1, 2, 4}, {4}, {99}}) {
      const std::vector<SignatureCount> got = store.SignatureCounts(series, first, last);
      EXPECT_EQ(got, expected(series, first, last)) << first << ".." << last;
      uint64_t sum = 0;
      for (const SignatureCount& c : got) sum += c.count;
      EXPECT_EQ(sum, store.SeriesCounts(series, first, last).errors) << first << ".." << last;
    }
  }
  EXPECT_TRUE(store.SignatureCounts({1}, 510, 505).empty());
}

TEST(SliStoreTest, SignatureCountsPerBucketAreCappedWithAnOverflowCount) {
  SliStoreOptions options = Options();
  options.max_signature_counts_per_bucket = 3;
  SliStore store(options);
  // Bucket 700: five signatures in two publications, and a shard's own overflow (id 0).
  store.Apply(OneSeries(WithSignatures(1, 0, 700, {{11, 5}, {12, 1}, {0, 2}}), 0));
  store.Apply(OneSeries(WithSignatures(1, 0, 700, {{13, 4}, {14, 9}, {15, 3}, {11, 1}}), 1));
  // Bucket 701 has room again for its own first three.
  store.Apply(OneSeries(WithSignatures(1, 0, 701, {{14, 2}, {15, 2}, {16, 2}, {17, 2}}), 0));
  // First come, first kept: 11, 12 and 13 in bucket 700; 14 (9) and 15 (3) are unnamed there.
  EXPECT_EQ(store.SignatureCounts({1}, 700, 700),
            (std::vector<SignatureCount>{{0, 2 + 9 + 3}, {11, 6}, {13, 4}, {12, 1}}));
  EXPECT_EQ(store.SignatureCounts({1}, 701, 701),
            (std::vector<SignatureCount>{{0, 2}, {14, 2}, {15, 2}, {16, 2}}));
  EXPECT_EQ(
      store.SignatureCounts({1}, 700, 701),
      (std::vector<SignatureCount>{{0, 16}, {11, 6}, {13, 4}, {14, 2}, {15, 2}, {16, 2}, {12, 1}}));
  EXPECT_EQ(store.SeriesCounts({1}, 700, 701).errors, 8u + 17u + 8u);
}

TEST(SliStoreTest, SignatureRingIsLazyAndWrapsLikeTheRequestRing) {
  SliStore store(Options(60s));  // 6 slots
  store.Apply(OneSeries(MakeSeries(0, 0, 100, {1'000'000, 1'000'000})));
  const size_t without_errors = store.MemoryBytes();
  store.Apply(OneSeries(WithSignatures(1, 0, 100, {{5, 3}})));
  store.Apply(OneSeries(WithSignatures(1, 0, 101, {{6, 1}})));
  const size_t with_errors = store.MemoryBytes();
  // Series 1 holds a request ring and a signature ring of 6 slots each; series 0 no signatures.
  EXPECT_GT(with_errors - without_errors, 6 * sizeof(int64_t) * 2);
  EXPECT_EQ(store.SignatureCounts({0, 1}, 0, 1000), (std::vector<SignatureCount>{{5, 3}, {6, 1}}));
  // Bucket 106 takes bucket 100's slot; bucket 101 is still held (101..106).
  store.Apply(OneSeries(WithSignatures(1, 0, 106, {{7, 2}})));
  EXPECT_TRUE(store.SignatureCounts({1}, 100, 100).empty());
  EXPECT_EQ(store.SignatureCounts({1}, 0, 1000), (std::vector<SignatureCount>{{7, 2}, {6, 1}}));
  // A delta for a bucket the ring no longer holds: its signatures are dropped like its requests.
  store.Apply(OneSeries(WithSignatures(1, 0, 100, {{5, 1}})));
  EXPECT_EQ(store.SignatureCounts({1}, 0, 1000), (std::vector<SignatureCount>{{7, 2}, {6, 1}}));
  EXPECT_EQ(store.SeriesCounts({1}, 0, 1000).errors, 3u);
}

TEST(SliStoreTest, RestoredMinutesCarryNoSignatures) {
  SliStore original(Options());
  original.Apply(OneSeries(WithSignatures(1, 0, 1200, {{5, 3}, {6, 1}})));
  SliStore restored(Options());
  restored.Restore(original.TakeChangedMinutes());
  EXPECT_EQ(restored.SeriesCounts({1}, 1200, 1205).errors, 4u);
  EXPECT_TRUE(restored.SignatureCounts({1}, 1200, 1205).empty());
  restored.Apply(OneSeries(WithSignatures(1, 0, 1201, {{6, 2}})));
  EXPECT_EQ(restored.SignatureCounts({1}, 1200, 1205), (std::vector<SignatureCount>{{6, 2}}));
}

TEST(SliStoreTest, SignatureLookupAndPropagationBreaks) {
  SliStore store(Options());
  ShardDelta delta;
  SignatureDelta signature;
  signature.id = 42;
  signature.count = 3;
  signature.exception_type = "TimeoutError";
  signature.sample_message = "timed out after 30 s";
  delta.signatures.push_back(signature);
  delta.services.push_back({.service = 0, .bucket = 300, .traces = 5, .propagation_breaks = 2});
  delta.services.push_back({.service = 0, .bucket = 303, .traces = 1, .propagation_breaks = 1});
  delta.services.push_back({.service = 2, .bucket = 301, .traces = 4, .propagation_breaks = 4});
  store.Apply(std::move(delta));
  const std::optional<SignatureInfo> found = store.Signature(42);
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->count, 3u);
  EXPECT_EQ(found->exception_type, "TimeoutError");
  EXPECT_EQ(found->sample_message, "timed out after 30 s");
  EXPECT_FALSE(store.Signature(43).has_value());
  EXPECT_EQ(store.PropagationBreaks(300, 303), (std::vector<uint64_t>{3, 0, 4}));
  EXPECT_EQ(store.PropagationBreaks(301, 302), (std::vector<uint64_t>{0, 0, 4}));
  EXPECT_EQ(store.PropagationBreaks(304, 400), (std::vector<uint64_t>{0, 0, 0}));
  for (uint32_t service : {0u, 1u, 2u}) {
    EXPECT_EQ(store.PropagationBreaks(300, 303)[service],
              store.ServiceWindow(service, 300, 303).propagation_breaks);
  }
}

// Shards publish while the evaluator and scrapes query: run under TSan in CI.
TEST(SliStoreTest, ConcurrentApplyAndQueries) {
  SliStoreOptions options = Options(300s);  // 30 slots: every bucket written stays
  options.shards = 4;
  SliStore store(options);
  constexpr int kWriters = 4;
  constexpr int kPublications = 200;
  std::atomic<bool> done{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&store, w] {
      for (int i = 0; i < kPublications; ++i) {
        const int64_t bucket = 1000 + i / 10;
        SeriesDelta series =
            MakeSeries(static_cast<uint32_t>(w % 2), 0, bucket, {1'000'000, 2'000'000}, 1);
        series.signatures = {{static_cast<uint64_t>(i % 3 + 1), 1}};
        ShardDelta delta = OneSeries(std::move(series), static_cast<uint32_t>(w));
        delta.services.push_back({.service = 0, .bucket = bucket, .traces = 1});
        delta.exemplars.push_back(Slowest(static_cast<uint32_t>(w % 2), bucket,
                                          MakeTrace(static_cast<uint8_t>(i), 1'000 + i)));
        SignatureDelta signature;
        signature.id = static_cast<uint64_t>(i % 7 + 1);
        signature.count = 1;
        delta.signatures.push_back(signature);
        delta.late_spans = 1;
        delta.live_traces = static_cast<uint64_t>(i);
        store.Apply(std::move(delta));
      }
    });
  }
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&store, &done] {
      while (!done.load()) {
        const WindowStats stats = store.ServiceWindow(0, 1000, 1100);
        EXPECT_EQ(stats.latency.Count(), stats.requests);
        store.SeriesWindow(1, 1000, 1100);
        store.ServiceLatencies(1000, 1100);
        store.Exemplars(0, 1000, 1100);
        store.FindTrace(IdOf(3));
        store.Signatures();
        store.SignatureCounts({0, 1}, 1000, 1100);
        store.Signature(1);
        store.PropagationBreaks(1000, 1100);
        store.Totals();
        store.AllSeriesTotals();
        store.MemoryBytes();
      }
    });
  }
  for (std::thread& t : writers) t.join();
  done = true;
  for (std::thread& t : readers) t.join();

  const uint64_t requests = 2ull * kWriters * kPublications;
  EXPECT_EQ(store.ServiceWindow(0, 1000, 1100).requests, requests);
  EXPECT_EQ(store.ServiceWindow(0, 1000, 1100).traces, uint64_t{kWriters} * kPublications);
  const auto series = store.AllSeriesTotals();
  EXPECT_EQ(series[0].requests + series[1].requests, requests);
  const SliStore::GlobalTotals totals = store.Totals();
  EXPECT_EQ(totals.late_spans, uint64_t{kWriters} * kPublications);
  EXPECT_EQ(totals.live_traces, uint64_t{kWriters} * (kPublications - 1));
  uint64_t signature_count = 0;
  for (const SignatureInfo& s : store.Signatures()) signature_count += s.count;
  EXPECT_EQ(signature_count, uint64_t{kWriters} * kPublications);
  uint64_t per_bucket = 0;
  for (const SignatureCount& c : store.SignatureCounts({0, 1}, 1000, 1100)) {
    EXPECT_NE(c.id, 0u);
    per_bucket += c.count;
  }
  EXPECT_EQ(per_bucket, uint64_t{kWriters} * kPublications);
}

}  // namespace
}  // namespace traceslo::pipeline
