// Fuzzes DecodeOtlpJson. Besides not crashing, it checks the decoder's contract: on failure the
// batch is exactly as before the call; on success the spans already there are untouched and
// every string of the new spans lies within the arena.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "services/ingest/otlp_decode.h"
#include "services/ingest/span_builder.h"
#include "traceslo/common/span.h"

namespace {

using traceslo::Span;
using traceslo::SpanBatch;
using traceslo::StrRef;

bool WithinArena(const SpanBatch& batch, StrRef ref) {
  return static_cast<uint64_t>(ref.offset) + ref.size <= batch.strings.size();
}

bool AllStringsWithinArena(const SpanBatch& batch, const Span& span) {
  for (StrRef ref : {span.service, span.name, span.status_message, span.exception_type,
                     span.exception_message, span.exception_stacktrace}) {
    if (!WithinArena(batch, ref)) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);

  // A batch that already holds a span, as the ingest path's batches do.
  SpanBatch batch;
  Span existing;
  existing.span_id = 42;
  existing.name = batch.Add("existing", traceslo::kMaxNameBytes);
  batch.spans.push_back(existing);
  const std::string strings_before = batch.strings;

  // Small limits on odd-sized inputs, so the limit paths are explored too.
  traceslo::ingest::DecodeLimits limits;
  if (size % 2 == 1) {
    limits.max_spans = 4;
    limits.max_depth = 2;
    limits.max_attributes = 3;
  }

  traceslo::ingest::DecodeResult result;
  const absl::Status status = traceslo::ingest::DecodeOtlpJson(body, limits, batch, result);

  if (batch.strings.compare(0, strings_before.size(), strings_before) != 0 ||
      batch.strings.size() < strings_before.size() || batch.spans.empty() ||
      batch.spans[0].span_id != 42 || batch.spans[0].name.offset != existing.name.offset ||
      batch.spans[0].name.size != existing.name.size) {
    __builtin_trap();
  }
  if (!status.ok()) {
    if (status.code() != absl::StatusCode::kInvalidArgument || batch.spans.size() != 1 ||
        batch.strings != strings_before || result.accepted != 0 || result.TotalRejected() != 0) {
      __builtin_trap();
    }
    return 0;
  }
  if (batch.spans.size() != 1 + result.accepted) __builtin_trap();
  if (limits.max_spans < result.accepted + result.TotalRejected()) __builtin_trap();
  if ((result.TotalRejected() > 0) != !result.first_error.empty()) __builtin_trap();
  for (size_t i = 1; i < batch.spans.size(); ++i) {
    const Span& span = batch.spans[i];
    if (!AllStringsWithinArena(batch, span)) __builtin_trap();
    if (span.end_unix_nano < span.start_unix_nano || span.span_id == 0) __builtin_trap();
  }
  return 0;
}
