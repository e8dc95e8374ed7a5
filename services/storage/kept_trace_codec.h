#pragma once

// The BLOB of exemplar_traces.spans: a trace's KeptSpans in a versioned binary form.
//
//   u8 version (1)
//   varint n_strings, then n_strings x (varint length, bytes)   // each distinct string once
//   varint n_spans, then n_spans x:
//     u64 span_id, u64 parent_span_id, u64 signature             // little-endian
//     varint service, operation, exception_type, message, top_frame   // indexes of strings
//     u8 kind (SpanKind), u8 flags (1: error, 2: orphan)
//     varint zigzag(start_offset_nanos), varint duration_nanos
//
// Varints are LEB128 (at most 10 bytes). The file can be changed by anyone with access to
// storage.path, so decoding treats the bytes as untrusted.

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "traceslo/storage/exemplar_store.h"

namespace traceslo::storage {

inline constexpr uint8_t kKeptSpansVersion = 1;

// `text` cut to at most `max_bytes`, backing off over a UTF-8 character cut in two (at most 3
// bytes; invalid UTF-8 is cut at `max_bytes`).
std::string_view TruncateText(std::string_view text, size_t max_bytes);

// The encoding of the first kMaxKeptSpans of `spans`, strings cut by TruncateText to
// kMaxKeptStringBytes.
std::string EncodeKeptSpans(const std::vector<KeptSpan>& spans);

// The spans of an encoding. InvalidArgument (saying what is wrong and where) for an unknown
// version, a truncated or overlong input, more than kMaxKeptSpans spans, strings longer than
// kMaxKeptStringBytes, more strings than the spans can use, an index, kind or flag out of
// range, or bytes after the last span. Never reads outside `bytes`.
absl::StatusOr<std::vector<KeptSpan>> DecodeKeptSpans(std::string_view bytes);

}  // namespace traceslo::storage
