#include "traceslo/kafka/partitioning.h"

#include <cassert>

namespace traceslo::kafka {

uint32_t Fnv1a32(std::string_view bytes) {
  uint32_t hash = 0x811c9dc5u;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 0x01000193u;
  }
  return hash;
}

int32_t Fnv1aPartition(std::string_view key, int32_t partitions) {
  assert(partitions > 0);
  // Go's int32(hash) % n keeps the dividend's sign; Sarama then negates a negative result.
  const int32_t remainder = static_cast<int32_t>(Fnv1a32(key)) % partitions;
  return remainder < 0 ? -remainder : remainder;
}

std::string TraceRecordKey(const TraceId& trace_id) { return TraceIdHex(trace_id); }

}  // namespace traceslo::kafka
