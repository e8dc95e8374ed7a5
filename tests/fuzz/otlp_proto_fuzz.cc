// Fuzzes DecodeOtlpProto. Invariants (a violation traps): a failure is InvalidArgument and leaves
// the batch and result exactly as they were; a success appends only spans whose strings lie in
// the arena, whose ids and times are valid, and which the result counts.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "services/ingest/otlp_decode.h"
#include "traceslo/common/span.h"

namespace {

using traceslo::Span;
using traceslo::SpanBatch;
using traceslo::StrRef;
using traceslo::ingest::DecodeLimits;
using traceslo::ingest::DecodeResult;

constexpr std::string_view kPrefix = "earlier";

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

bool InArena(const SpanBatch& batch, StrRef ref) {
  return uint64_t{ref.offset} + ref.size <= batch.strings.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  // Small limits, so that the fuzzer reaches them.
  DecodeLimits limits;
  limits.max_spans = 64;
  limits.max_depth = 6;
  limits.max_attributes = 32;

  // A batch that already holds a span, as a reused batch would.
  SpanBatch batch;
  batch.strings = kPrefix;
  Span earlier;
  earlier.service = StrRef{0, static_cast<uint32_t>(kPrefix.size())};
  earlier.span_id = 1;
  batch.spans.push_back(earlier);
  DecodeResult result;
  result.accepted = 1;

  const absl::Status status = traceslo::ingest::DecodeOtlpProto(body, limits, batch, result);
  if (!status.ok()) {
    Check(status.code() == absl::StatusCode::kInvalidArgument);
    Check(!status.message().empty());
    Check(batch.strings == kPrefix);
    Check(batch.spans.size() == 1 && batch.spans[0].span_id == 1);
    Check(result.accepted == 1 && result.TotalRejected() == 0 && result.first_error.empty());
    return 0;
  }
  Check(batch.spans.size() == result.accepted);
  Check(batch.strings.compare(0, kPrefix.size(), kPrefix) == 0);
  Check(result.accepted - 1 + result.TotalRejected() <= limits.max_spans);
  Check(result.first_error.empty() == (result.TotalRejected() == 0));
  for (size_t i = 1; i < batch.spans.size(); ++i) {
    const Span& span = batch.spans[i];
    for (StrRef ref : {span.service, span.name, span.status_message, span.exception_type,
                       span.exception_message, span.exception_stacktrace}) {
      Check(InArena(batch, ref));
    }
    Check(span.service.size > 0 && span.service.size <= traceslo::kMaxNameBytes);
    Check(span.name.size <= traceslo::kMaxNameBytes);
    Check(span.status_message.size <= traceslo::kMaxMessageBytes);
    Check(span.exception_stacktrace.size <= traceslo::kMaxStacktraceBytes);
    Check(span.span_id != 0);
    bool trace_id_zero = true;
    for (uint8_t byte : span.trace_id) trace_id_zero &= byte == 0;
    Check(!trace_id_zero);
    Check(span.end_unix_nano >= span.start_unix_nano);
    Check(static_cast<uint8_t>(span.kind) <= 5 && static_cast<uint8_t>(span.status) <= 2);
    Check(span.http_status >= 0 && span.http_status < 1000);
    Check(span.rpc_status >= -1 && span.rpc_status <= 16);
  }
  return 0;
}
