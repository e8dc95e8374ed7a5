// DecodeDeltaBatch on arbitrary bytes: a record read from traceslo_deltas. What decodes must be
// usable as is: every exemplar names a trace with spans, and every series id is the registry's.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "traceslo/kafka/delta_batch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  traceslo::pipeline::SeriesRegistry registry(50, 50);
  auto decoded = traceslo::kafka::DecodeDeltaBatch(
      std::string_view(reinterpret_cast<const char*>(data), size),
      traceslo::kafka::DeltaBatchLimits{.max_series = 1'000, .max_services = 1'000}, registry);
  if (!decoded.ok()) return 0;
  for (const traceslo::pipeline::ExemplarDelta& e : decoded->delta.exemplars) {
    if (e.trace == nullptr || e.trace->spans.empty() || e.series >= registry.series_count()) {
      std::abort();
    }
    for (const traceslo::pipeline::ExemplarSpan& span : e.trace->spans) {
      if (span.series >= registry.series_count() || span.start_offset_nanos < 0) std::abort();
    }
  }
  return 0;
}
