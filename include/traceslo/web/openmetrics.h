#pragma once

// The OpenMetrics 1.0 text format for /metrics, with exemplars. prometheus-cpp collects the
// families and writes the Prometheus text format; it has neither OpenMetrics nor exemplars, so
// this writes prometheus-cpp's collected families (and our exemplars) in OpenMetrics.

#include <string>
#include <string_view>
#include <vector>

#include "traceslo/common/metric_values.h"

namespace traceslo::web {

inline constexpr std::string_view kOpenMetricsContentType =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
inline constexpr std::string_view kPrometheusTextContentType =
    "text/plain; version=0.0.4; charset=utf-8";

// Whether an HTTP Accept header asks for OpenMetrics at least as much as for the Prometheus text
// format (by q-value; OpenMetrics must be named, wildcards alone get the text format). Prometheus
// asks with "application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5".
// Any header is accepted: a malformed one gets the text format.
bool PrefersOpenMetrics(std::string_view accept);

// The families in OpenMetrics text, ending with "# EOF". Counters are written as family
// "name" with samples "name_total" (a counter whose name lacks _total is written as unknown);
// exemplars go on counter and histogram bucket samples only, others are ignored.
std::string SerializeOpenMetrics(const std::vector<metrics::ExemplarFamily>& families);

}  // namespace traceslo::web
