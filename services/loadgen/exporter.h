#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace traceslo::loadgen {

struct ExportResult {
  enum class Kind {
    kOk,         // acknowledged (200 / OK); `rejected_spans` of them were refused one by one
    kRetryable,  // 429, 502-504, UNAVAILABLE, network failures: send again after a pause
    kPermanent,  // any other refusal: sending again cannot help
  };
  Kind kind = Kind::kOk;
  int64_t rejected_spans = 0;                            // partial success
  std::optional<std::chrono::milliseconds> retry_after;  // Retry-After / RetryInfo
  std::string reason;   // a short, closed label for counting: "http_503", "grpc_UNAVAILABLE"
  std::string message;  // details for a human
};

// Sends one encoded OTLP export request (ExportTraceServiceRequest as protobuf or JSON, as the
// exporter was built for) to a receiver and says how it was answered. Never throws; every
// failure is a result. Implementations own their connection and are used by one thread.
class Exporter {
 public:
  virtual ~Exporter() = default;
  virtual ExportResult Export(std::string_view body) = 0;
};

// Keeps a copy of every export request a run sends (traceslo-loadgen --record): one OTLP/JSON
// ExportTraceServiceRequest per call, however the requests are sent. Never throws; an
// implementation keeps its first failure for its owner to report after the run. Used by one
// thread.
class RequestRecorder {
 public:
  virtual ~RequestRecorder() = default;
  virtual void Record(std::string_view json_request) = 0;
};

}  // namespace traceslo::loadgen
