#include "traceslo/pipeline/sli_collector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>

#include "tests/fakes/fake_clock.h"

namespace traceslo::pipeline {
namespace {

using namespace std::chrono_literals;
using Labels = std::map<std::string, std::string>;

SeriesDelta MakeSeries(SeriesRegistry::Ids ids, int64_t bucket,
                       const std::vector<uint64_t>& durations, uint64_t errors = 0) {
  SeriesDelta d;
  d.series = ids.series;
  d.service = ids.service;
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

std::vector<uint64_t> RandomDurations(std::mt19937_64& rng, size_t n, double median_nanos) {
  std::lognormal_distribution<double> dist(std::log(median_nanos), 0.8);
  std::vector<uint64_t> out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(std::clamp<uint64_t>(static_cast<uint64_t>(dist(rng)), 2000, 100'000'000'000));
  }
  return out;
}

double ExactQuantile(std::vector<uint64_t> samples, double q) {
  std::sort(samples.begin(), samples.end());
  return static_cast<double>(samples[LatencySketch::NearestRank(q, samples.size()) - 1]);
}

Labels LabelsOf(const prometheus::ClientMetric& metric) {
  Labels labels;
  for (const auto& label : metric.label) labels[label.name] = label.value;
  return labels;
}

const prometheus::MetricFamily* FindFamily(const std::vector<prometheus::MetricFamily>& families,
                                           const std::string& name) {
  for (const auto& family : families) {
    if (family.name == name) return &family;
  }
  return nullptr;
}

// The one metric of `family` with exactly these labels, or nullptr.
const prometheus::ClientMetric* FindMetric(const std::vector<prometheus::MetricFamily>& families,
                                           const std::string& name, const Labels& labels) {
  const prometheus::MetricFamily* family = FindFamily(families, name);
  if (family == nullptr) return nullptr;
  const prometheus::ClientMetric* found = nullptr;
  for (const auto& metric : family->metric) {
    if (LabelsOf(metric) != labels) continue;
    EXPECT_EQ(found, nullptr) << "duplicate label set in " << name;
    found = &metric;
  }
  return found;
}

double CounterValue(const std::vector<prometheus::MetricFamily>& families, const std::string& name,
                    const Labels& labels = {}) {
  const prometheus::ClientMetric* metric = FindMetric(families, name, labels);
  EXPECT_NE(metric, nullptr) << name;
  return metric == nullptr ? -1 : metric->counter.value;
}

double GaugeValue(const std::vector<prometheus::MetricFamily>& families, const std::string& name,
                  const Labels& labels = {}) {
  const prometheus::ClientMetric* metric = FindMetric(families, name, labels);
  EXPECT_NE(metric, nullptr) << name;
  return metric == nullptr ? -1 : metric->gauge.value;
}

// The value of quantile `q` in the summary with these labels; -1 when absent.
double SummaryQuantile(const std::vector<prometheus::MetricFamily>& families,
                       const std::string& name, const Labels& labels, double q) {
  const prometheus::ClientMetric* metric = FindMetric(families, name, labels);
  EXPECT_NE(metric, nullptr) << name;
  if (metric == nullptr) return -1;
  for (const auto& quantile : metric->summary.quantile) {
    if (quantile.quantile == q) return quantile.value;
  }
  ADD_FAILURE() << "no quantile " << q;
  return -1;
}

struct Fixture {
  Fixture() : registry(3, 2), store(SliStoreOptions{}), collector(clock, registry, store) {}

  int64_t NowBucket() const {
    return BucketOfUnixNanos(
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock.Now().time_since_epoch())
            .count());
  }

  fakes::FakeClock clock;
  SeriesRegistry registry;
  SliStore store;
  SliCollector collector;
};

TEST(SliCollectorTest, ExportsRequestCountersAndCumulativeHistograms) {
  Fixture f;
  const auto pay = f.registry.Resolve("checkout", "POST /pay");
  const auto cart = f.registry.Resolve("checkout", "GET /cart");
  f.registry.Resolve("idle", "never called");
  const int64_t now = f.NowBucket();
  std::mt19937_64 rng(3);
  std::vector<uint64_t> pay_samples;
  ShardDelta delta;
  for (int64_t bucket = now - 400; bucket <= now; bucket += 100) {  // older buckets count too
    auto durations = RandomDurations(rng, 200, 80e6);
    pay_samples.insert(pay_samples.end(), durations.begin(), durations.end());
    delta.series.push_back(MakeSeries(pay, bucket, durations, 3));
  }
  // Samples on the bounds land in the bucket whose `le` they equal.
  const std::vector<uint64_t> cart_samples = {2'000'000, 100'000'000, 15'000'000'000,
                                              15'000'000'001};
  delta.series.push_back(MakeSeries(cart, now, cart_samples));
  f.store.Apply(std::move(delta));

  const auto families = f.collector.Collect();
  EXPECT_EQ(CounterValue(families, "traceslo_requests_total",
                         {{"service", "checkout"}, {"operation", "POST /pay"}}),
            static_cast<double>(pay_samples.size()));
  EXPECT_EQ(CounterValue(families, "traceslo_request_errors_total",
                         {{"service", "checkout"}, {"operation", "POST /pay"}}),
            15.0);
  EXPECT_EQ(CounterValue(families, "traceslo_request_errors_total",
                         {{"service", "checkout"}, {"operation", "GET /cart"}}),
            0.0);
  // A series without requests is omitted.
  EXPECT_EQ(FindFamily(families, "traceslo_requests_total")->metric.size(), 2u);

  const prometheus::MetricFamily* histograms =
      FindFamily(families, "traceslo_request_duration_seconds");
  ASSERT_NE(histograms, nullptr);
  EXPECT_EQ(histograms->type, prometheus::MetricType::Histogram);
  EXPECT_EQ(histograms->metric.size(), 2u);
  for (const auto& [ids, samples] : {std::pair{pay, pay_samples}, std::pair{cart, cart_samples}}) {
    const Labels labels = {{"service", "checkout"},
                           {"operation", std::string(f.registry.OperationName(ids.series))}};
    const prometheus::ClientMetric* metric =
        FindMetric(families, "traceslo_request_duration_seconds", labels);
    ASSERT_NE(metric, nullptr);
    const auto& h = metric->histogram;
    EXPECT_EQ(h.sample_count, samples.size());
    double sum = 0;
    for (uint64_t v : samples) sum += static_cast<double>(v) / 1e9;
    EXPECT_NEAR(h.sample_sum, sum, 1e-9 * sum);
    ASSERT_EQ(h.bucket.size(), kClassicBoundsSeconds.size() + 1);
    for (size_t i = 0; i < kClassicBoundsSeconds.size(); ++i) {
      EXPECT_EQ(h.bucket[i].upper_bound, kClassicBoundsSeconds[i]);
      const auto bound_nanos = static_cast<uint64_t>(std::llround(kClassicBoundsSeconds[i] * 1e9));
      const auto at_most = std::count_if(samples.begin(), samples.end(),
                                         [&](uint64_t v) { return v <= bound_nanos; });
      EXPECT_EQ(h.bucket[i].cumulative_count, static_cast<uint64_t>(at_most))
          << labels.at("operation") << " le=" << kClassicBoundsSeconds[i];
    }
    EXPECT_EQ(h.bucket.back().upper_bound, std::numeric_limits<double>::infinity());
    EXPECT_EQ(h.bucket.back().cumulative_count, samples.size());
  }
  const auto* cart_histogram = FindMetric(families, "traceslo_request_duration_seconds",
                                          {{"service", "checkout"}, {"operation", "GET /cart"}});
  EXPECT_EQ(cart_histogram->histogram.bucket[0].cumulative_count, 1u);   // le=0.002
  EXPECT_EQ(cart_histogram->histogram.bucket[5].cumulative_count, 2u);   // le=0.1
  EXPECT_EQ(cart_histogram->histogram.bucket[12].cumulative_count, 3u);  // le=15
}

TEST(SliCollectorTest, LatencyQuantilesPerWindowWithinBoundOfExact) {
  Fixture f;
  const auto pay = f.registry.Resolve("checkout", "POST /pay");
  const auto cart = f.registry.Resolve("checkout", "GET /cart");
  const auto query = f.registry.Resolve("search", "query");
  f.registry.Resolve("idle", "never called");
  const int64_t now = f.NowBucket();
  std::mt19937_64 rng(4);
  // checkout: traffic in the last minute, 100 s ago and 1000 s ago; search: 1000 s ago only.
  std::map<int64_t, std::vector<uint64_t>> checkout;
  std::vector<uint64_t> search;
  ShardDelta delta;
  for (int64_t age : {0, 5, 10, 100}) {
    for (const auto& ids : {pay, cart}) {
      auto durations = RandomDurations(rng, 300, ids.series == pay.series ? 40e6 : 300e6);
      checkout[age].insert(checkout[age].end(), durations.begin(), durations.end());
      delta.series.push_back(MakeSeries(ids, now - age, durations));
    }
  }
  search = RandomDurations(rng, 500, 10e6);
  delta.series.push_back(MakeSeries(query, now - 100, search));
  f.store.Apply(std::move(delta));

  auto window_samples = [&](int64_t buckets) {
    std::vector<uint64_t> out;
    for (const auto& [age, samples] : checkout) {
      if (age < buckets) out.insert(out.end(), samples.begin(), samples.end());
    }
    return out;
  };
  const auto families = f.collector.Collect();
  const prometheus::MetricFamily* family = FindFamily(families, "traceslo_latency_seconds");
  ASSERT_NE(family, nullptr);
  EXPECT_EQ(family->type, prometheus::MetricType::Summary);
  for (const auto& [window, buckets] :
       {std::pair{"1m", 6}, std::pair{"5m", 30}, std::pair{"1h", 360}}) {
    const std::vector<uint64_t> samples = window_samples(buckets);
    ASSERT_FALSE(samples.empty());
    for (const auto& [label, q] :
         {std::pair{"0.5", 0.5}, std::pair{"0.95", 0.95}, std::pair{"0.99", 0.99}}) {
      const double exact = ExactQuantile(samples, q) / 1e9;
      const double got = SummaryQuantile(families, "traceslo_latency_seconds",
                                         {{"service", "checkout"}, {"window", window}}, q);
      EXPECT_LE(std::abs(got - exact), LatencySketch::kRelativeErrorBound * exact * (1 + 1e-12))
          << "window=" << window << " q=" << label;
    }
  }
  for (const auto& [label, q] : {std::pair{"0.5", 0.5}, std::pair{"0.99", 0.99}}) {
    const double exact = ExactQuantile(search, q) / 1e9;
    const double got = SummaryQuantile(families, "traceslo_latency_seconds",
                                       {{"service", "search"}, {"window", "1h"}}, q);
    EXPECT_LE(std::abs(got - exact), LatencySketch::kRelativeErrorBound * exact * (1 + 1e-12));
  }
  // search has no sample in the last 5 minutes and idle none at all: those windows are omitted.
  std::set<std::pair<std::string, std::string>> windows;
  for (const auto& metric : family->metric) {
    const Labels labels = LabelsOf(metric);
    windows.emplace(labels.at("service"), labels.at("window"));
  }
  EXPECT_EQ(windows,
            (std::set<std::pair<std::string, std::string>>{
                {"checkout", "1m"}, {"checkout", "5m"}, {"checkout", "1h"}, {"search", "1h"}}));
  EXPECT_EQ(family->metric.size(), 4u);
  for (const auto& metric : family->metric) EXPECT_EQ(metric.summary.quantile.size(), 3u);
  EXPECT_EQ(
      FindMetric(families, "traceslo_latency_seconds", {{"service", "checkout"}, {"window", "1h"}})
          ->summary.sample_count,
      window_samples(360).size());

  // Ten minutes later only the hour window has samples.
  f.clock.Advance(10min);
  const auto later = f.collector.Collect();
  const prometheus::MetricFamily* later_family = FindFamily(later, "traceslo_latency_seconds");
  ASSERT_NE(later_family, nullptr);
  for (const auto& metric : later_family->metric) EXPECT_EQ(LabelsOf(metric).at("window"), "1h");
  EXPECT_EQ(later_family->metric.size(), 2u);
}

TEST(SliCollectorTest, ExportsTraceAndPipelineFamilies) {
  Fixture f;  // at most 3 services and 2 operations per service
  const auto pay = f.registry.Resolve("checkout", "POST /pay");
  f.registry.Resolve("checkout", "GET /cart");
  f.registry.Resolve("checkout", "GET /help");  // folds into operation "other"
  const auto query = f.registry.Resolve("search", "query");
  const auto idle = f.registry.Resolve("idle", "op");
  f.registry.Resolve("fourth", "op");  // folds into service "other"
  f.registry.Resolve("fifth", "op");
  const int64_t now = f.NowBucket();

  ShardDelta a;
  a.shard = 0;
  a.series.push_back(MakeSeries(pay, now, {1'000'000}));
  a.services.push_back({.service = pay.service,
                        .bucket = now,
                        .traces = 10,
                        .error_traces_root = 2,
                        .error_traces_origin = 1,
                        .partial_traces = 3,
                        .propagation_breaks = 0});
  a.services.push_back({.service = query.service,
                        .bucket = now,
                        .traces = 4,
                        .error_traces_root = 0,
                        .error_traces_origin = 1,
                        .partial_traces = 3,
                        .propagation_breaks = 3});
  a.late_spans = 5;
  a.evicted_traces = 6;
  a.clock_skew_spans = 7;
  a.truncated_spans = 8;
  a.live_traces = 100;
  a.live_trace_bytes = 64'000;
  SignatureDelta signature;
  signature.id = 42;
  signature.count = 1;
  a.signatures.push_back(signature);
  a.signature_overflow = 9;
  ShardDelta b;
  b.shard = 1;
  b.services.push_back({.service = pay.service,
                        .bucket = now - 1,
                        .traces = 5,
                        .error_traces_root = 1,
                        .error_traces_origin = 1,
                        .partial_traces = 0,
                        .propagation_breaks = 2});
  b.services.push_back({.service = idle.service, .bucket = now});  // all zero: omitted
  b.late_spans = 50;
  b.live_traces = 30;
  b.live_trace_bytes = 16'000;
  f.store.Apply(std::move(a));
  f.store.Apply(std::move(b));

  const auto families = f.collector.Collect();
  EXPECT_EQ(CounterValue(families, "traceslo_traces_total", {{"service", "checkout"}}), 15.0);
  EXPECT_EQ(CounterValue(families, "traceslo_traces_total", {{"service", "search"}}), 4.0);
  EXPECT_EQ(FindFamily(families, "traceslo_traces_total")->metric.size(), 2u);
  EXPECT_EQ(CounterValue(families, "traceslo_error_traces_total",
                         {{"service", "checkout"}, {"role", "root"}}),
            3.0);
  EXPECT_EQ(CounterValue(families, "traceslo_error_traces_total",
                         {{"service", "checkout"}, {"role", "origin"}}),
            2.0);
  EXPECT_EQ(CounterValue(families, "traceslo_error_traces_total",
                         {{"service", "search"}, {"role", "root"}}),
            0.0);
  EXPECT_EQ(CounterValue(families, "traceslo_error_traces_total",
                         {{"service", "search"}, {"role", "origin"}}),
            1.0);
  EXPECT_EQ(CounterValue(families, "traceslo_partial_traces_total", {{"service", "checkout"}}),
            3.0);
  EXPECT_EQ(CounterValue(families, "traceslo_propagation_breaks_total", {{"service", "search"}}),
            3.0);
  EXPECT_EQ(CounterValue(families, "traceslo_propagation_breaks_total", {{"service", "checkout"}}),
            2.0);

  EXPECT_EQ(GaugeValue(families, "traceslo_live_traces"), 130.0);
  EXPECT_EQ(GaugeValue(families, "traceslo_live_trace_bytes"), 80'000.0);
  EXPECT_EQ(CounterValue(families, "traceslo_traces_evicted_total"), 6.0);
  EXPECT_EQ(CounterValue(families, "traceslo_late_spans_total"), 55.0);
  EXPECT_EQ(CounterValue(families, "traceslo_clock_skew_spans_total"), 7.0);
  EXPECT_EQ(CounterValue(families, "traceslo_trace_spans_truncated_total"), 8.0);
  EXPECT_EQ(GaugeValue(families, "traceslo_error_signatures"), 1.0);
  EXPECT_EQ(CounterValue(families, "traceslo_error_signatures_dropped_total"), 9.0);
  // checkout: 2 operations + other; search: 1; idle: 1; other: other.
  EXPECT_EQ(GaugeValue(families, "traceslo_series"), 6.0);
  EXPECT_EQ(CounterValue(families, "traceslo_series_overflow_total", {{"kind", "service"}}), 2.0);
  EXPECT_EQ(CounterValue(families, "traceslo_series_overflow_total", {{"kind", "operation"}}), 1.0);
}

TEST(SliCollectorTest, FamiliesAreTheDocumentedSetWithTypesAndHelp) {
  Fixture f;
  const auto families = f.collector.Collect();  // an empty store still exports every family
  using prometheus::MetricType;
  const std::map<std::string, MetricType> expected = {
      {"traceslo_requests_total", MetricType::Counter},
      {"traceslo_request_errors_total", MetricType::Counter},
      {"traceslo_request_duration_seconds", MetricType::Histogram},
      {"traceslo_latency_seconds", MetricType::Summary},
      {"traceslo_traces_total", MetricType::Counter},
      {"traceslo_error_traces_total", MetricType::Counter},
      {"traceslo_partial_traces_total", MetricType::Counter},
      {"traceslo_propagation_breaks_total", MetricType::Counter},
      {"traceslo_live_traces", MetricType::Gauge},
      {"traceslo_live_trace_bytes", MetricType::Gauge},
      {"traceslo_traces_evicted_total", MetricType::Counter},
      {"traceslo_late_spans_total", MetricType::Counter},
      {"traceslo_clock_skew_spans_total", MetricType::Counter},
      {"traceslo_trace_spans_truncated_total", MetricType::Counter},
      {"traceslo_error_signatures", MetricType::Gauge},
      {"traceslo_error_signatures_dropped_total", MetricType::Counter},
      {"traceslo_series", MetricType::Gauge},
      {"traceslo_series_overflow_total", MetricType::Counter},
  };
  std::map<std::string, MetricType> got;
  for (const auto& family : families) {
    EXPECT_TRUE(got.emplace(family.name, family.type).second) << "duplicate " << family.name;
    const bool has_unit = family.help.find("(seconds") != std::string::npos ||
                          family.help.find("(bytes)") != std::string::npos ||
                          family.help.find("(count)") != std::string::npos;
    EXPECT_TRUE(has_unit) << family.name << ": " << family.help;
  }
  EXPECT_EQ(got, expected);
}

TEST(SliCollectorTest, DurationBucketsAndErrorCountersCarryTheStoresExemplars) {
  Fixture f;
  const auto pay = f.registry.Resolve("checkout", "POST /pay");
  const auto cart = f.registry.Resolve("checkout", "GET /cart");
  const int64_t now = f.NowBucket();
  auto trace = [](uint8_t n, uint64_t duration) {
    auto t = std::make_shared<ExemplarTrace>();
    t->trace_id[0] = 0xcd;
    t->trace_id[15] = n;
    t->duration_nanos = duration;
    return ExemplarRef(t);
  };
  ShardDelta delta;
  delta.series.push_back(MakeSeries(cart, now, {1'000'000}));  // no exemplars: none shown
  delta.series.push_back(MakeSeries(pay, now, {40'000'000, 300'000'000}, 1));
  delta.exemplars.push_back({.series = pay.series,
                             .bucket = now,
                             .signature = 0,
                             .duration_nanos = 300'000'000,  // 0.3 s: le=0.5, bucket index 7
                             .end_unix_nano = 1'700'000'000'500'000'000,
                             .trace = trace(1, 300'000'000)});
  delta.exemplars.push_back({.series = pay.series,
                             .bucket = now,
                             .signature = 42,
                             .duration_nanos = 1'000,
                             .end_unix_nano = 1'700'000'001'000'000'000,
                             .trace = trace(2, 1'000)});
  f.store.Apply(std::move(delta));

  const std::vector<metrics::ExemplarFamily> families = f.collector.CollectWithExemplars();
  auto find = [&](const std::string& name) -> const metrics::ExemplarFamily& {
    for (const auto& family : families) {
      if (family.family.name == name) return family;
    }
    ADD_FAILURE() << name;
    return families.front();
  };
  const Labels pay_labels = {{"service", "checkout"}, {"operation", "POST /pay"}};
  const Labels cart_labels = {{"service", "checkout"}, {"operation", "GET /cart"}};

  const metrics::ExemplarFamily& errors = find("traceslo_request_errors_total");
  const metrics::ExemplarFamily& durations = find("traceslo_request_duration_seconds");
  ASSERT_EQ(errors.exemplars.size(), errors.family.metric.size());
  ASSERT_EQ(durations.exemplars.size(), durations.family.metric.size());
  int checked = 0;
  for (size_t m = 0; m < errors.family.metric.size(); ++m) {
    const Labels labels = LabelsOf(errors.family.metric[m]);
    if (labels == cart_labels) {
      EXPECT_TRUE(errors.exemplars[m].empty() || !errors.exemplars[m][0].has_value());
      ++checked;
    } else if (labels == pay_labels) {
      ASSERT_EQ(errors.exemplars[m].size(), 1u);
      ASSERT_TRUE(errors.exemplars[m][0].has_value());
      const metrics::Exemplar& e = *errors.exemplars[m][0];
      EXPECT_EQ(LabelsOf({.label = e.labels}), (Labels{{"trace_id",
                                                        "cd00000000000000000000000000000"
                                                        "2"}}));
      EXPECT_EQ(e.value, 1.0);
      EXPECT_DOUBLE_EQ(*e.timestamp_seconds, 1'700'000'001.0);
      ++checked;
    }
  }
  for (size_t m = 0; m < durations.family.metric.size(); ++m) {
    const Labels labels = LabelsOf(durations.family.metric[m]);
    const auto& buckets = durations.exemplars[m];
    if (labels == cart_labels) {
      EXPECT_TRUE(std::none_of(buckets.begin(), buckets.end(),
                               [](const auto& e) { return e.has_value(); }));
      ++checked;
    } else if (labels == pay_labels) {
      ASSERT_EQ(buckets.size(), durations.family.metric[m].histogram.bucket.size());
      for (size_t b = 0; b < buckets.size(); ++b) {
        // The exemplar sits on the first bucket whose bound holds 0.3 s.
        EXPECT_EQ(buckets[b].has_value(), b == 7) << b;
        if (b < kClassicBoundsSeconds.size() && b == 7) EXPECT_EQ(kClassicBoundsSeconds[b], 0.5);
      }
      const metrics::Exemplar& e = *buckets[7];
      EXPECT_EQ(LabelsOf({.label = e.labels}), (Labels{{"trace_id",
                                                        "cd00000000000000000000000000000"
                                                        "1"}}));
      EXPECT_DOUBLE_EQ(e.value, 0.3);
      EXPECT_DOUBLE_EQ(*e.timestamp_seconds, 1'700'000'000.5);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 4);
  // The plain collection has the same families, without exemplars.
  EXPECT_EQ(f.collector.Collect().size(), families.size());
}

}  // namespace
}  // namespace traceslo::pipeline
