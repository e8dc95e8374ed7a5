// The web API's parsers of outside input: POST /api/v1/silences bodies, RFC 3339 times and trace
// ids in paths, and the Accept header of /metrics. Never crash; anything accepted is a valid
// silence.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "services/web/silence_request.h"
#include "traceslo/common/span.h"
#include "traceslo/common/time_format.h"
#include "traceslo/web/openmetrics.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  constexpr int64_t kNow = 1'700'000'000'000'000'000;
  auto silence = traceslo::web::ParseSilenceRequest(input, kNow);
  if (silence.ok()) {
    if (!traceslo::alerting::ValidateSilence(*silence).ok()) __builtin_trap();
    if (silence->starts_at_unix_nano < kNow) __builtin_trap();
  }
  if (auto t = traceslo::ParseRfc3339(input); t && *t < 0) __builtin_trap();
  if (auto id = traceslo::ParseTraceIdHex(input)) {
    if (traceslo::TraceIdHex(*id).size() != 32) __builtin_trap();
  }
  (void)traceslo::web::PrefersOpenMetrics(input);
  return 0;
}
