#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "prometheus/registry.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/log.h"
#include "traceslo/config/config.h"
#include "traceslo/pipeline/span_sink.h"

namespace traceslo::ingest {

// The OTLP front door: gRPC (:4317) and HTTP (:4318) receivers sharing one decoder, one
// authenticator and one set of metrics. Thread-safe. Owns the servers and their threads.
// `sink`, `registry` and `logger` are borrowed and must outlive it. As a Collectable it adds the
// connection and transport-level figures that are read at scrape time (gRPC's channelz counters,
// open and refused connections).
class Receivers : public prometheus::Collectable {
 public:
  static absl::StatusOr<std::unique_ptr<Receivers>> Start(const config::OtlpConfig& config,
                                                          pipeline::SpanSink& sink,
                                                          prometheus::Registry& registry,
                                                          Logger& logger);
  virtual ~Receivers() = default;
  // Bound addresses (real ports when 0 was configured).
  virtual std::string grpc_address() const = 0;
  virtual std::string http_address() const = 0;
  // Stops accepting; calls and requests in flight are answered for up to `grace` (read from
  // `clock`), then the rest is cancelled.
  virtual void Shutdown(const Clock& clock, std::chrono::nanoseconds grace) = 0;
};

}  // namespace traceslo::ingest
