#pragma once

// Where a trace's records land on `otlp_spans`: the OpenTelemetry Collector's Kafka exporter with
// `partition_traces_by_id: true` keys each record by the trace id as 32 lower-case hex digits and
// places it with Sarama's default hash partitioner (FNV-1a); librdkafka's `partitioner=fnv1a`
// places the same keys on the same partitions. traceslo computes placements itself (its own
// front door producing to the topic, stage-1 ownership checks), so the three must agree; the
// tests check this against librdkafka's own partitioner.

#include <cstdint>
#include <string>
#include <string_view>

#include "traceslo/common/span.h"

namespace traceslo::kafka {

// 32-bit FNV-1a of `bytes` (offset basis 0x811c9dc5, prime 0x01000193).
uint32_t Fnv1a32(std::string_view bytes);

// The partition of `key` among `partitions` (> 0) partitions: Sarama's HashPartitioner with
// FNV-1a, the signed 32-bit hash modulo the count, negated when negative.
int32_t Fnv1aPartition(std::string_view key, int32_t partitions);

// The record key the Collector writes for a trace: its id as 32 lower-case hex digits.
std::string TraceRecordKey(const TraceId& trace_id);

}  // namespace traceslo::kafka
