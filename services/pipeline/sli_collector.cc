#include "traceslo/pipeline/sli_collector.h"

#include <array>
#include <limits>
#include <string>
#include <utility>

#include "traceslo/common/metric_values.h"

namespace traceslo::pipeline {

namespace {

using metrics::Counter;
using metrics::Exemplar;
using metrics::ExemplarFamily;
using metrics::Family;
using metrics::Gauge;

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

struct QuantileWindow {
  const char* name;
  int64_t buckets;
};
constexpr std::array<QuantileWindow, 3> kQuantileWindows = {
    QuantileWindow{"1m", 6}, QuantileWindow{"5m", 30}, QuantileWindow{"1h", 360}};
constexpr std::array<std::pair<const char*, double>, 3> kQuantiles = {
    std::pair{"0.5", 0.5}, std::pair{"0.95", 0.95}, std::pair{"0.99", 0.99}};

MetricFamily SingleCounter(std::string name, std::string help, uint64_t value) {
  MetricFamily family = Family(std::move(name), std::move(help), MetricType::Counter);
  family.metric.push_back(Counter({}, static_cast<double>(value)));
  return family;
}

MetricFamily SingleGauge(std::string name, std::string help, uint64_t value) {
  MetricFamily family = Family(std::move(name), std::move(help), MetricType::Gauge);
  family.metric.push_back(Gauge({}, static_cast<double>(value)));
  return family;
}

std::optional<Exemplar> ExemplarOf(const std::optional<SliStore::MetricExemplar>& e) {
  if (!e) return std::nullopt;
  return Exemplar{.labels = {{"trace_id", TraceIdHex(e->trace_id)}},
                  .value = e->value,
                  .timestamp_seconds = static_cast<double>(e->unix_nano) / 1e9};
}

}  // namespace

SliCollector::SliCollector(const Clock& clock, const SeriesRegistry& registry,
                           const SliStore& store)
    : clock_(clock), registry_(registry), store_(store) {}

std::vector<ExemplarFamily> SliCollector::CollectWithExemplars() const {
  const int64_t now_bucket = BucketOfUnixNanos(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.Now().time_since_epoch())
          .count());
  // Store first, registry second: every id the store returns is then known to the registry.
  const std::vector<SliStore::SeriesTotals> series = store_.AllSeriesTotals();
  const std::vector<SliStore::SeriesExemplars> exemplars = store_.AllSeriesExemplars();
  const std::vector<SliStore::ServiceTotals> services = store_.AllServiceTotals();
  const SliStore::GlobalTotals totals = store_.Totals();
  std::vector<int64_t> window_buckets;
  for (const QuantileWindow& w : kQuantileWindows) window_buckets.push_back(w.buckets);
  // [service][window]
  const std::vector<std::vector<LatencySketch>> latencies =
      store_.ServiceLatencyWindows(window_buckets, now_bucket);
  const uint32_t series_count = registry_.series_count();
  const uint32_t service_count = registry_.service_count();

  std::vector<ExemplarFamily> families;
  const auto add = [&families](MetricFamily family) {
    families.push_back({.family = std::move(family), .exemplars = {}});
  };

  MetricFamily requests =
      Family("traceslo_requests_total",
             "Requests: entry spans of the service and operation (count).", MetricType::Counter);
  MetricFamily errors =
      Family("traceslo_request_errors_total",
             "Requests that failed: entry spans with an error (count).", MetricType::Counter);
  MetricFamily durations =
      Family("traceslo_request_duration_seconds",
             "Request latency: entry span durations (seconds).", MetricType::Histogram);
  std::vector<std::vector<std::optional<Exemplar>>> error_exemplars;
  std::vector<std::vector<std::optional<Exemplar>>> duration_exemplars;
  for (uint32_t id = 0; id < series.size() && id < series_count; ++id) {
    const SliStore::SeriesTotals& t = series[id];
    if (t.requests == 0) continue;
    std::vector<ClientMetric::Label> labels = {
        {"service", std::string(registry_.ServiceName(registry_.ServiceOf(id)))},
        {"operation", std::string(registry_.OperationName(id))}};
    requests.metric.push_back(Counter(labels, static_cast<double>(t.requests)));
    errors.metric.push_back(Counter(labels, static_cast<double>(t.errors)));
    ClientMetric histogram;
    histogram.label = std::move(labels);
    histogram.histogram.sample_count = t.requests;
    histogram.histogram.sample_sum = t.sum_seconds;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kClassicBuckets; ++i) {
      cumulative += t.classic[i];
      histogram.histogram.bucket.push_back(
          {cumulative, i < kClassicBoundsSeconds.size() ? kClassicBoundsSeconds[i]
                                                        : std::numeric_limits<double>::infinity()});
    }
    durations.metric.push_back(std::move(histogram));
    if (id < exemplars.size()) {
      const SliStore::SeriesExemplars& e = exemplars[id];
      error_exemplars.push_back({ExemplarOf(e.error)});
      std::vector<std::optional<Exemplar>>& buckets = duration_exemplars.emplace_back();
      for (const auto& bucket : e.duration) buckets.push_back(ExemplarOf(bucket));
    } else {
      error_exemplars.emplace_back();
      duration_exemplars.emplace_back();
    }
  }
  add(std::move(requests));
  families.push_back({.family = std::move(errors), .exemplars = std::move(error_exemplars)});
  families.push_back({.family = std::move(durations), .exemplars = std::move(duration_exemplars)});

  // A summary (not a gauge) because the label is `quantile`, which Prometheus reserves for
  // summaries. Its _count and _sum are those of the window, so they can go down: use
  // traceslo_request_duration_seconds for rates.
  MetricFamily quantiles =
      Family("traceslo_latency_seconds",
             "Request latency quantiles of the service over a sliding window, read from merged "
             "sketches (seconds, relative error under 0.55 %); _count and _sum cover the window.",
             MetricType::Summary);
  for (uint32_t service = 0; service < service_count; ++service) {
    for (size_t w = 0; w < kQuantileWindows.size(); ++w) {
      if (service >= latencies.size() || latencies[service][w].Count() == 0) continue;
      const LatencySketch& sketch = latencies[service][w];
      ClientMetric metric;
      metric.label = {{"service", std::string(registry_.ServiceName(service))},
                      {"window", kQuantileWindows[w].name}};
      metric.summary.sample_count = sketch.Count();
      metric.summary.sample_sum = sketch.SumNanos() / 1e9;
      for (const auto& [label, q] : kQuantiles) {
        metric.summary.quantile.push_back(
            ClientMetric::Quantile{.quantile = q, .value = sketch.QuantileNanos(q) / 1e9});
      }
      quantiles.metric.push_back(std::move(metric));
    }
  }
  add(std::move(quantiles));

  MetricFamily traces =
      Family("traceslo_traces_total", "Completed traces that touched the service (count).",
             MetricType::Counter);
  MetricFamily error_traces = Family(
      "traceslo_error_traces_total",
      "Completed traces with an error span (count), for the trace's root service (role=root) "
      "and for the service where the deepest error originated (role=origin).",
      MetricType::Counter);
  MetricFamily partial =
      Family("traceslo_partial_traces_total",
             "Completed traces with an orphan span or no root (count).", MetricType::Counter);
  MetricFamily breaks =
      Family("traceslo_propagation_breaks_total",
             "Partial traces whose orphan span belongs to the service: it lost the trace context "
             "(count).",
             MetricType::Counter);
  for (uint32_t service = 0; service < services.size() && service < service_count; ++service) {
    const SliStore::ServiceTotals& t = services[service];
    if (t.traces == 0 && t.error_traces_root == 0 && t.error_traces_origin == 0 &&
        t.partial_traces == 0 && t.propagation_breaks == 0) {
      continue;
    }
    const std::string name(registry_.ServiceName(service));
    traces.metric.push_back(Counter({{"service", name}}, static_cast<double>(t.traces)));
    error_traces.metric.push_back(
        Counter({{"service", name}, {"role", "root"}}, static_cast<double>(t.error_traces_root)));
    error_traces.metric.push_back(Counter({{"service", name}, {"role", "origin"}},
                                          static_cast<double>(t.error_traces_origin)));
    partial.metric.push_back(Counter({{"service", name}}, static_cast<double>(t.partial_traces)));
    breaks.metric.push_back(
        Counter({{"service", name}}, static_cast<double>(t.propagation_breaks)));
  }
  add(std::move(traces));
  add(std::move(error_traces));
  add(std::move(partial));
  add(std::move(breaks));

  add(SingleGauge("traceslo_live_traces", "Traces being assembled, not yet complete (count).",
                  totals.live_traces));
  add(SingleGauge("traceslo_live_trace_bytes", "Memory held by the traces being assembled (bytes).",
                  totals.live_trace_bytes));
  add(SingleCounter("traceslo_traces_evicted_total",
                    "Traces completed early because pipeline.max_live_traces were live (count).",
                    totals.evicted_traces));
  add(SingleCounter(
      "traceslo_late_spans_total",
      "Spans that arrived after their trace was completed; counted in SLIs, not in traces "
      "(count).",
      totals.late_spans));
  add(SingleCounter(
      "traceslo_clock_skew_spans_total",
      "Spans whose end time was outside [now - max_lateness, now] and was clamped (count).",
      totals.clock_skew_spans));
  add(SingleCounter(
      "traceslo_trace_spans_truncated_total",
      "Spans beyond the per-trace span cap, counted in SLIs but not kept for assembly (count).",
      totals.truncated_spans));
  add(SingleGauge("traceslo_error_signatures",
                  "Distinct error signatures kept in the registry (count).", totals.signatures));
  add(SingleCounter(
      "traceslo_error_signatures_dropped_total",
      "Error spans whose signature was not recorded because a signature cap was reached "
      "(count).",
      totals.signature_overflow));
  add(SingleGauge("traceslo_series", "(service, operation) series known to the registry (count).",
                  series_count));

  const SeriesRegistry::Overflow overflow = registry_.overflow();
  MetricFamily series_overflow = Family(
      "traceslo_series_overflow_total",
      "Span names folded into service or operation \"other\" because a series cap was reached "
      "(count).",
      MetricType::Counter);
  series_overflow.metric.push_back(
      Counter({{"kind", "service"}}, static_cast<double>(overflow.services)));
  series_overflow.metric.push_back(
      Counter({{"kind", "operation"}}, static_cast<double>(overflow.operations)));
  add(std::move(series_overflow));
  return families;
}

}  // namespace traceslo::pipeline
