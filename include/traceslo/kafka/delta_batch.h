#pragma once

// The traceslo_deltas record (proto/traceslo/v1/delta_batch.proto): stage 1 turns a sealed
// epoch's ShardDelta into one record per destination partition; stage 2 turns a record back into
// a ShardDelta of its own process's series ids. Series and services travel by name (ids are per
// process). Error-signature details (titles and trace ids of alert causes) and exemplar traces
// (what a cause's link opens) travel with them, under a byte budget per record.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "traceslo/common/span.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_processor.h"
#include "traceslo/pipeline/sli_store.h"

namespace traceslo::kafka {

inline constexpr uint32_t kDeltaBatchSchemaVersion = 1;
// Signature details (titles, messages, trace ids) written into one record at most, in bytes:
// EncodeDeltaBatches leaves further details of the epoch out (their counts still travel).
inline constexpr size_t kMaxSignatureDetailBytesPerRecord = 256 * 1024;
// Exemplar traces written into one record at most, in bytes (error exemplars first): past it,
// EncodeDeltaBatches leaves the epoch's further exemplars out.
inline constexpr size_t kMaxExemplarBytesPerRecord = 256 * 1024;
// And at most this many distinct traces per record: the error exemplars' first, then the
// slowest requests', slowest first (encoding whole traces every epoch is stage 1's cost).
inline constexpr size_t kMaxExemplarTracesPerRecord = 4;

struct DeltaBatchHeader {
  uint64_t config_hash = 0;
  std::string src_topic;
  int32_t src_partition = 0;
  int64_t epoch = 0;
  int64_t stream_time_ms = 0;
  int32_t dst_partition = 0;
  friend bool operator==(const DeltaBatchHeader&, const DeltaBatchHeader&) = default;
};

// The config hash every record carries and stage 2 checks: FNV-1a 64 of a canonical text of the
// settings that shape deltas (trace assembly, error classification, caps) and the epoch length,
// so instances with equal settings agree and any difference is refused. Not the shard number or
// its share of max_live_traces (per-process sizing).
uint64_t DeltaConfigHash(const pipeline::SliOptions& sli, std::chrono::milliseconds epoch_length);

// The traceslo_deltas partition of a service's deltas among `partitions`: all of a service's
// series go to one partition, so its SLOs are merged and evaluated in one place.
int32_t DeltaPartitionOf(std::string_view service, int32_t partitions);

// One record per destination partition 0 .. dst_partitions-1 (empty ones too: they carry the
// watermark), each with `header` and its dst_partition: the series and services of `delta` whose
// service maps there (DeltaPartitionOf), names from `registry` (which issued delta's ids); the
// epoch's counters in partition 0's. Each signature detail and exemplar goes with its series'
// service; each exemplar trace is written once per record, whole (its spans of every service).
std::vector<std::string> EncodeDeltaBatches(const DeltaBatchHeader& header,
                                            const pipeline::ShardDelta& delta,
                                            const pipeline::SeriesRegistry& registry,
                                            int32_t dst_partitions);

// Limits on a record read from Kafka.
struct DeltaBatchLimits {
  size_t max_bytes = 16u << 20;
  size_t max_series = 200'000;
  size_t max_services = 20'000;
  size_t max_name_bytes = 1'024;
  size_t max_signatures_per_series = 64;
  // Signature details per record: stage 1 writes at most SliOptions::max_signatures per epoch
  // (part of the config hash), so a reader sets this to the same value.
  size_t max_signature_details = 10'000;
  // Per exception type, message and top frame: the span decoders' cap on messages.
  size_t max_message_bytes = kMaxMessageBytes;
  // Exemplar candidates, distinct traces, and span names per record; spans per trace (stage 1
  // keeps at most SliOptions::max_spans_per_trace, in the hash).
  size_t max_exemplars = 20'000;
  size_t max_exemplar_traces = 20'000;
  size_t max_exemplar_names = 200'000;
  size_t max_exemplar_spans = pipeline::SliShardProcessor::kMaxSpansPerTrace;
  // Neither check nor decode the exemplars (a reader that wants the counts only).
  bool skip_exemplars = false;
};

struct DecodedDeltaBatch {
  DeltaBatchHeader header;
  pipeline::ShardDelta delta;  // ids from the registry given to DecodeDeltaBatch
};

// Decodes and checks a record: InvalidArgument naming the problem ("series[3]: 17 classic
// buckets, expected 15") for bytes that are not a DeltaBatch, an unknown schema_version, a limit
// exceeded, an empty name, or counts that do not add up (classic buckets and the latency sketch
// must count the requests, errors <= requests, signature counts sum to the errors), or a bad
// signature detail ("signature_details[2]: trace id of 7 bytes": more than
// pipeline::kMaxSignatureTraces trace ids, ids not of 16 bytes, texts over max_message_bytes),
// or a bad exemplar ("exemplar_traces[1].spans[4]: name 9 of 3": indexes out of range, a trace
// without spans, times or durations out of range (negative, or past INT64_MAX / 4 ns), a bucket
// not within a week of the record's stream time, a kind outside OTLP's).
// Names are resolved in `registry` (under its caps, as spans' are) only once the whole record is
// checked, so a refused record adds no name. Nothing is returned on error.
absl::StatusOr<DecodedDeltaBatch> DecodeDeltaBatch(std::string_view bytes,
                                                   const DeltaBatchLimits& limits,
                                                   pipeline::SeriesRegistry& registry);

}  // namespace traceslo::kafka
