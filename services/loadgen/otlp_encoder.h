#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "services/loadgen/trace_model.h"

namespace traceslo::loadgen {

enum class Encoding { kProtobuf, kJson };

// One span of an export request and the trace it belongs to (both borrowed).
struct BatchSpan {
  const GeneratedTrace* trace = nullptr;
  const GeneratedSpan* span = nullptr;
};

// The order in which to write `spans` (indices into it): grouped by service, the groups in order
// of their first span, each group in batch order. A receiver sees the spans in this order.
std::vector<uint32_t> WireOrder(std::span<const BatchSpan> spans);
// `spans` put in that order.
void OrderForWire(std::vector<BatchSpan>& spans);

// An ExportTraceServiceRequest with one ResourceSpans (service.name and a few SDK attributes)
// per run of consecutive spans of one service, written without generated protobuf types.
// OrderForWire first, or services appear in several ResourceSpans (still valid OTLP).
std::string EncodeProtobuf(std::span<const BatchSpan> spans);

// The same request as OTLP/JSON: lowerCamelCase names, hex ids, enums as integers, 64-bit
// integers as decimal strings.
std::string EncodeJson(std::span<const BatchSpan> spans);

std::string Encode(Encoding encoding, std::span<const BatchSpan> spans);

}  // namespace traceslo::loadgen
