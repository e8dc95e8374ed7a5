#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "services/loadgen/random.h"
#include "services/loadgen/trace_model.h"

namespace traceslo::loadgen {

// The simulated shop. Every trace enters at gateway:
//   POST /api/checkout  gateway → checkout → inventory (fan-out, one Reserve per item) → database
//                                          → payment
//                                          ⇢ orders publish (PRODUCER) ⇢ email, analytics
//                                            (CONSUMER spans that start after the producer ended)
//   GET /api/products   gateway → inventory → database (fan-out, one query per page)
//   GET /api/cart       gateway → checkout → database
enum Service : uint8_t {
  kGateway = 0,
  kCheckout,
  kPayment,
  kInventory,
  kDatabase,
  kEmail,
  kAnalytics,
  kServiceCount,
};
inline constexpr std::array<std::string_view, kServiceCount> kServiceNames = {
    "gateway", "checkout", "payment", "inventory", "database", "email", "analytics"};

// The service with this service.name, or nullopt.
std::optional<uint8_t> FindService(std::string_view name);
// The names of the entry spans (SERVER/CONSUMER) of `service`: the operations an error burst
// may target.
std::span<const std::string_view> EntryOperations(uint8_t service);
// "gateway, checkout, ..." for messages.
std::string ServiceList();

// What the active incidents do to the traces generated now (see incidents.h for the schedule).
struct ErrorEffect {
  uint8_t service = 0;
  std::string_view operation;  // empty: every entry operation of the service
  double ratio = 0;
  std::string_view exception_type;
  std::string_view message_template;  // {int}, {hex} and {uuid} are filled in per error
  size_t incident = 0;                // index in the run's incident list
};
struct LatencyEffect {
  double factor = 1;   // scales every interval the service spends itself
  int64_t add_us = 0;  // added once to each of its entry spans
  size_t incident = 0;
};
struct RatioEffect {
  uint8_t service = 0;  // unused for drops
  double ratio = 0;
  size_t incident = 0;
};
struct Effects {
  std::vector<ErrorEffect> errors;
  std::vector<std::pair<uint8_t, LatencyEffect>> latency;
  std::vector<RatioEffect> breaks;
  std::vector<RatioEffect> drops;
  bool empty() const {
    return errors.empty() && latency.empty() && breaks.empty() && drops.empty();
  }
};

struct TopologyOptions {
  // Approximate mean spans per trace; sets the fan-out (items per checkout, queries per product
  // page). The smallest reachable mean is about 9.
  uint32_t spans_per_trace = 20;
};

// Fills `s` (a template) in: {int} a decimal number, {hex} 16 hex digits, {uuid} a UUID.
std::string RenderMessage(std::string_view s, Random& random);

// Generates traces of the topology above. Deterministic: the same sequence of draws from
// `random` and the same effects give the same trace. Latencies are log-normal per service and
// step; children lie within their parents, except the asynchronous consumers. Pure; owned by one
// thread.
class TraceGenerator {
 public:
  explicit TraceGenerator(const TopologyOptions& options);

  // One trace with relative times (anchor 0). `affected[i]` is incremented by the spans
  // incident i changed (and by 1 for a dropped trace); it must have one slot per incident the
  // effects name.
  GeneratedTrace Generate(uint64_t index, Random& random, const Effects& effects,
                          std::vector<uint64_t>& affected) const;

  int64_t max_fanout() const { return max_fanout_; }

 private:
  int64_t max_fanout_;
};

}  // namespace traceslo::loadgen
