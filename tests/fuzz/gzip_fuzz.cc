// Fuzzes Gunzip with a small output limit. Invariants (a violation traps): the output never
// exceeds the limit; failures are InvalidArgument or ResourceExhausted and leave no output.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "services/ingest/gzip.h"

namespace {

constexpr size_t kMaxOutputBytes = 64 * 1024;

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string out = "stale";
  const absl::Status status = traceslo::ingest::Gunzip(in, kMaxOutputBytes, out);
  Check(out.size() <= kMaxOutputBytes);
  if (!status.ok()) {
    Check(status.code() == absl::StatusCode::kInvalidArgument ||
          status.code() == absl::StatusCode::kResourceExhausted);
    Check(out.empty());
    return 0;
  }
  // The same input with a limit just below what it produced must be refused.
  if (!out.empty()) {
    std::string smaller;
    Check(traceslo::ingest::Gunzip(in, out.size() - 1, smaller).code() ==
          absl::StatusCode::kResourceExhausted);
  }
  return 0;
}
