// Feeds arbitrary bytes to DecodeKeptSpans, which reads the spans BLOB of the kept exemplar
// traces in SQLite (a file anyone with access to storage.path can change). Invariants (a
// violation traps): an accepted input holds at most kMaxKeptSpans spans and strings of at most
// kMaxKeptStringBytes; it encodes to bytes that decode to the same spans, and that encoding is a
// fixed point.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "services/storage/kept_trace_codec.h"
#include "traceslo/storage/exemplar_store.h"

namespace {

using traceslo::storage::DecodeKeptSpans;
using traceslo::storage::EncodeKeptSpans;
using traceslo::storage::KeptSpan;
using traceslo::storage::kMaxKeptSpans;
using traceslo::storage::kMaxKeptStringBytes;

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<KeptSpan>> spans = DecodeKeptSpans(in);
  if (!spans.ok()) {
    Check(!spans.status().message().empty());
    return 0;
  }
  Check(spans->size() <= kMaxKeptSpans);
  for (const KeptSpan& s : *spans) {
    for (const std::string* text :
         {&s.service, &s.operation, &s.exception_type, &s.message, &s.top_frame}) {
      Check(text->size() <= kMaxKeptStringBytes);
    }
  }

  const std::string encoded = EncodeKeptSpans(*spans);
  absl::StatusOr<std::vector<KeptSpan>> again = DecodeKeptSpans(encoded);
  Check(again.ok());
  Check(*again == *spans);
  Check(EncodeKeptSpans(*again) == encoded);
  return 0;
}
