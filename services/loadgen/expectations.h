#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <span>
#include <string_view>
#include <utility>

#include "services/loadgen/topology.h"
#include "services/loadgen/trace_model.h"

namespace traceslo::loadgen {

// traceslo's error rule with its default policy: status ERROR; status UNSET with HTTP >= 500 or
// a gRPC code in {2, 4, 12, 13, 14, 15}, except on CLIENT and PRODUCER spans.
bool IsErrorSpan(const GeneratedSpan& span);

struct OperationCounts {
  uint64_t requests = 0;  // entry spans
  uint64_t errors = 0;    // entry spans that are errors
};

struct ServiceCounts {
  uint64_t traces = 0;  // completed traces that touched the service
  uint64_t error_traces_root = 0;
  uint64_t error_traces_origin = 0;
  uint64_t partial_traces = 0;
  uint64_t propagation_breaks = 0;
};

// What traceslo should count for the spans it received, by the definitions in docs/design.md
// and docs/sli-engine.md, computed from the generated spans (independently of traceslo's code),
// so a test can compare the two exactly. Owned by one thread.
class Expectations {
 public:
  // Counts one trace. `received`: the spans of the trace that reached the receiver, in the order
  // it received them (ties are broken by that order, as traceslo does). Nothing for an empty
  // list: a trace nobody received does not exist.
  void AddTrace(std::span<const GeneratedSpan* const> received);

  const std::map<std::pair<uint8_t, std::string_view>, OperationCounts>& operations() const {
    return operations_;
  }
  const std::array<ServiceCounts, kServiceCount>& services() const { return services_; }

 private:
  std::map<std::pair<uint8_t, std::string_view>, OperationCounts> operations_;
  std::array<ServiceCounts, kServiceCount> services_{};
};

}  // namespace traceslo::loadgen
