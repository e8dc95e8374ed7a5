#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "traceslo/common/span.h"

namespace traceslo::pipeline {

// The spans of one shard from one request. The string arena is shared (read-only) by the
// shard batches cut from the same request.
struct ShardBatch {
  std::shared_ptr<const std::string> strings;
  std::vector<Span> spans;
  uint64_t charged_bytes = 0;  // what this batch counts against its shard's byte capacity
  bool tick = false;           // no spans: a timer tick for the shard (ShardProcessor::OnTick)

  std::string_view Str(StrRef ref) const {
    return std::string_view(*strings).substr(ref.offset, ref.size);
  }
};

// Where ingest hands decoded spans. Thread-safe.
class SpanSink {
 public:
  virtual ~SpanSink() = default;
  // Takes every span of `batch` or none of them. ResourceExhausted when a shard queue lacks
  // room, Unavailable when the pipeline is shutting down: either way the caller answers 503 /
  // UNAVAILABLE so the exporter retries, and `batch` is left as it was. On success `batch` is
  // consumed (left empty).
  virtual absl::Status TryEnqueue(SpanBatch& batch) = 0;
};

// The shard that owns a trace: a stable function of the trace id (ids are random, so the low
// bytes suffice; mixed anyway so that sequential test ids spread too).
inline uint32_t ShardOf(const TraceId& trace_id, uint32_t shard_count) {
  uint64_t v = 0;
  for (int i = 8; i < 16; ++i) v = v << 8 | trace_id[i];
  v ^= v >> 33;
  v *= 0xff51afd7ed558ccdULL;
  v ^= v >> 33;
  return static_cast<uint32_t>((v >> 32) * shard_count >> 32);
}

}  // namespace traceslo::pipeline
