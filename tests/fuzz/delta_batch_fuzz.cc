// DecodeDeltaBatch on arbitrary bytes: a record read from traceslo_deltas.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "traceslo/kafka/delta_batch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  traceslo::pipeline::SeriesRegistry registry(50, 50);
  (void)traceslo::kafka::DecodeDeltaBatch(
      std::string_view(reinterpret_cast<const char*>(data), size),
      traceslo::kafka::DeltaBatchLimits{.max_series = 1'000, .max_services = 1'000}, registry);
  return 0;
}
