#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "services/ingest/span_builder.h"
#include "traceslo/common/span.h"

namespace traceslo::ingest {

// Decoders of an ExportTraceServiceRequest. Both append the valid spans to `out` and count the
// refused ones in `result`. A body that is not a well-formed request (or breaks `limits`) returns
// InvalidArgument with a message saying where; `out` is then restored to its size before the
// call. Never throw, never read past `body`. Pure functions, safe on any thread.

// What the protobuf decoder found in the Resource messages it parsed last, by their exact bytes:
// a stream of records that repeat their resource (the Collector's Kafka exporter writes one
// record per trace, each with a copy of its resource) parses each resource once while it stays
// in the cache. A hit gives what parsing the same bytes under the same limits gives (parsing is
// a function of the two); only resources that parsed cleanly are remembered. Bounded: kSlots
// entries, direct-mapped by a hash of the bytes, of at most kMaxResourceBytes each (larger
// resources are parsed every time). Owned by one thread.
class ResourceCache {
 public:
  static constexpr size_t kSlots = 128;
  static constexpr size_t kMaxResourceBytes = 2048;

  // service.name as a slice of the resource's bytes.
  struct Outcome {
    bool has_service_name = false;
    uint32_t service_name_offset = 0;
    uint32_t service_name_size = 0;
  };

  // The outcome remembered for `resource` parsed under `limits`; nullptr when there is none.
  const Outcome* Find(std::string_view resource, const DecodeLimits& limits) const;
  // Remembers the outcome of parsing `resource` under `limits` (replacing what its slot held;
  // all of them when the limits changed).
  void Remember(std::string_view resource, const DecodeLimits& limits, const Outcome& outcome);

 private:
  struct Entry {
    bool used = false;
    std::string bytes;
    Outcome outcome;
  };
  static size_t SlotOf(std::string_view resource);

  uint32_t max_depth_ = 0;  // the limits every used entry was parsed under
  uint32_t max_attributes_ = 0;
  std::array<Entry, kSlots> entries_;
};

// Protobuf binary wire format, scanned in place (no protobuf message is materialised).
// `resources` (optional, borrowed) skips parsing resources seen before.
absl::Status DecodeOtlpProto(std::string_view body, const DecodeLimits& limits, SpanBatch& out,
                             DecodeResult& result, ResourceCache* resources = nullptr);

// OTLP/JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding): lowerCamelCase
// or original field names, hex ids, enums as integers, 64-bit integers as strings or numbers,
// unknown fields ignored.
absl::Status DecodeOtlpJson(std::string_view body, const DecodeLimits& limits, SpanBatch& out,
                            DecodeResult& result);

}  // namespace traceslo::ingest
