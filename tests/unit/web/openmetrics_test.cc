#include "traceslo/web/openmetrics.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "traceslo/common/metric_values.h"

namespace traceslo::web {
namespace {

using metrics::Exemplar;
using metrics::ExemplarFamily;
using prometheus::ClientMetric;
using prometheus::MetricType;

TEST(PrefersOpenMetricsTest, PrometheusScrapeHeaderAsksForOpenMetrics) {
  // What Prometheus 2.42 sends.
  EXPECT_TRUE(PrefersOpenMetrics(
      "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
      "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
  EXPECT_TRUE(PrefersOpenMetrics("application/openmetrics-text; version=1.0.0; charset=utf-8"));
  EXPECT_TRUE(PrefersOpenMetrics("Application/OpenMetrics-Text"));
  EXPECT_TRUE(PrefersOpenMetrics("text/plain;q=0.5, application/openmetrics-text;q=0.5"));
}

TEST(PrefersOpenMetricsTest, EverythingElseGetsTheTextFormat) {
  EXPECT_FALSE(PrefersOpenMetrics(""));
  EXPECT_FALSE(PrefersOpenMetrics("*/*"));
  EXPECT_FALSE(PrefersOpenMetrics("text/plain"));
  EXPECT_FALSE(PrefersOpenMetrics("text/plain;version=0.0.4,application/openmetrics-text;q=0.9"));
  EXPECT_FALSE(PrefersOpenMetrics("application/openmetrics-text;q=0"));
  // Malformed q-values drop their range, never the whole header's sense.
  EXPECT_FALSE(PrefersOpenMetrics("application/openmetrics-text;q=2"));
  EXPECT_FALSE(PrefersOpenMetrics("application/openmetrics-text;q=x"));
  EXPECT_FALSE(PrefersOpenMetrics("application/openmetrics-text;q=-1, text/plain"));
  EXPECT_FALSE(PrefersOpenMetrics(",,,;;;==="));
}

ClientMetric CounterMetric(std::vector<ClientMetric::Label> labels, double value) {
  return metrics::Counter(std::move(labels), value);
}

TEST(SerializeOpenMetricsTest, CounterWithExemplarAndEscapes) {
  ExemplarFamily f{.family = metrics::Family("app_requests_total", "Requests \"served\"\\\nok.",
                                             MetricType::Counter),
                   .exemplars = {}};
  f.family.metric.push_back(CounterMetric({{"path", "/a\"b\\c\nd"}}, 7));
  f.family.metric.push_back(CounterMetric({{"path", "/x"}}, 0));
  f.exemplars.push_back({Exemplar{.labels = {{"trace_id", "0af7651916cd43dd8448eb211c80319c"}},
                                  .value = 1,
                                  .timestamp_seconds = 1700000000.25}});
  EXPECT_EQ(SerializeOpenMetrics({f}),
            "# TYPE app_requests counter\n"
            "# HELP app_requests Requests \\\"served\\\"\\\\\\nok.\n"
            "app_requests_total{path=\"/a\\\"b\\\\c\\nd\"} 7 # "
            "{trace_id=\"0af7651916cd43dd8448eb211c80319c\"} 1 1700000000.25\n"
            "app_requests_total{path=\"/x\"} 0\n"
            "# EOF\n");
}

TEST(SerializeOpenMetricsTest, HistogramBucketsCarryExemplars) {
  ExemplarFamily f{
      .family = metrics::Family("app_duration_seconds", "Latency.", MetricType::Histogram),
      .exemplars = {}};
  ClientMetric h;
  h.label = {{"op", "get"}};
  h.histogram.sample_count = 3;
  h.histogram.sample_sum = 0.75;
  h.histogram.bucket = {{1, 0.005}, {2, 0.5}, {3, std::numeric_limits<double>::infinity()}};
  f.family.metric.push_back(h);
  f.exemplars.push_back(
      {std::nullopt, Exemplar{.labels = {{"trace_id", "ab"}}, .value = 0.3},
       Exemplar{.labels = {{"trace_id", "cd"}}, .value = 20, .timestamp_seconds = 1700000001}});
  EXPECT_EQ(SerializeOpenMetrics({f}),
            "# TYPE app_duration_seconds histogram\n"
            "# HELP app_duration_seconds Latency.\n"
            "app_duration_seconds_bucket{op=\"get\",le=\"0.005\"} 1\n"
            "app_duration_seconds_bucket{op=\"get\",le=\"0.5\"} 2 # {trace_id=\"ab\"} 0.3\n"
            "app_duration_seconds_bucket{op=\"get\",le=\"+Inf\"} 3 # {trace_id=\"cd\"} 20 "
            "1700000001\n"
            "app_duration_seconds_count{op=\"get\"} 3\n"
            "app_duration_seconds_sum{op=\"get\"} 0.75\n"
            "# EOF\n");
}

TEST(SerializeOpenMetricsTest, HistogramWithoutInfBucketGetsOne) {
  ExemplarFamily f{.family = metrics::Family("h", "", MetricType::Histogram), .exemplars = {}};
  ClientMetric h;
  h.histogram.sample_count = 4;
  h.histogram.sample_sum = 2;
  h.histogram.bucket = {{1, 1}};
  f.family.metric.push_back(h);
  EXPECT_EQ(SerializeOpenMetrics({f}),
            "# TYPE h histogram\n"
            "h_bucket{le=\"1\"} 1\n"
            "h_bucket{le=\"+Inf\"} 4\n"
            "h_count 4\n"
            "h_sum 2\n"
            "# EOF\n");
}

TEST(SerializeOpenMetricsTest, GaugeSummaryUntypedAndCounterWithoutTotal) {
  std::vector<ExemplarFamily> families;
  families.push_back(
      {.family = metrics::Family("g", "A gauge.", MetricType::Gauge), .exemplars = {}});
  families.back().family.metric.push_back(metrics::Gauge({}, -2.5));
  families.push_back(
      {.family = metrics::Family("s_seconds", "", MetricType::Summary), .exemplars = {}});
  ClientMetric s;
  s.label = {{"w", "1m"}};
  s.summary.sample_count = 10;
  s.summary.sample_sum = 1.5;
  s.summary.quantile = {{0.5, 0.1}, {0.99, std::numeric_limits<double>::quiet_NaN()}};
  families.back().family.metric.push_back(s);
  families.push_back({.family = metrics::Family("u", "", MetricType::Untyped), .exemplars = {}});
  ClientMetric u;
  u.untyped.value = 1e-7;
  families.back().family.metric.push_back(u);
  // A counter named without _total cannot be an OpenMetrics counter: unknown, exemplar dropped.
  families.push_back({.family = metrics::Family("c", "", MetricType::Counter),
                      .exemplars = {{Exemplar{.labels = {{"trace_id", "ab"}}, .value = 1}}}});
  families.back().family.metric.push_back(metrics::Counter({}, 3));
  EXPECT_EQ(SerializeOpenMetrics(families),
            "# TYPE g gauge\n"
            "# HELP g A gauge.\n"
            "g -2.5\n"
            "# TYPE s_seconds summary\n"
            "s_seconds{w=\"1m\",quantile=\"0.5\"} 0.1\n"
            "s_seconds{w=\"1m\",quantile=\"0.99\"} NaN\n"
            "s_seconds_sum{w=\"1m\"} 1.5\n"
            "s_seconds_count{w=\"1m\"} 10\n"
            "# TYPE u unknown\n"
            "u 1e-07\n"
            "# TYPE c unknown\n"
            "c 3\n"
            "# EOF\n");
}

TEST(SerializeOpenMetricsTest, SameNamedFamiliesAreWrittenOnceTogether) {
  std::vector<ExemplarFamily> families;
  for (double v : {1.0, 2.0}) {
    families.push_back(
        {.family = metrics::Family("x_total", "X.", MetricType::Counter), .exemplars = {}});
    families.back().family.metric.push_back(metrics::Counter({{"n", v == 1 ? "a" : "b"}}, v));
    families.push_back({.family = metrics::Family("y", "", MetricType::Gauge), .exemplars = {}});
    families.back().family.metric.push_back(metrics::Gauge({{"n", v == 1 ? "a" : "b"}}, v));
  }
  EXPECT_EQ(SerializeOpenMetrics(families),
            "# TYPE x counter\n"
            "# HELP x X.\n"
            "x_total{n=\"a\"} 1\n"
            "x_total{n=\"b\"} 2\n"
            "# TYPE y gauge\n"
            "y{n=\"a\"} 1\n"
            "y{n=\"b\"} 2\n"
            "# EOF\n");
}

TEST(SerializeOpenMetricsTest, OverlongExemplarLabelsAreLeftOut) {
  ExemplarFamily f{.family = metrics::Family("e_total", "", MetricType::Counter), .exemplars = {}};
  f.family.metric.push_back(metrics::Counter({}, 1));
  f.family.metric.push_back(metrics::Counter({{"k", "v"}}, 2));
  // 8 + 120 = 128 characters: allowed. 8 + 121: not.
  f.exemplars = {{Exemplar{.labels = {{"trace_id", std::string(121, 'a')}}, .value = 1}},
                 {Exemplar{.labels = {{"trace_id", std::string(120, 'b')}}, .value = 1}}};
  EXPECT_EQ(SerializeOpenMetrics({f}),
            "# TYPE e counter\n"
            "e_total 1\n"
            "e_total{k=\"v\"} 2 # {trace_id=\"" +
                std::string(120, 'b') +
                "\"} 1\n"
                "# EOF\n");
}

TEST(SerializeOpenMetricsTest, NothingIsJustEof) { EXPECT_EQ(SerializeOpenMetrics({}), "# EOF\n"); }

}  // namespace
}  // namespace traceslo::web
