#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "services/ingest/bearer_auth.h"
#include "services/ingest/otlp_decode.h"
#include "traceslo/pipeline/span_sink.h"

namespace traceslo::ingest {

enum class Transport : uint8_t { kGrpc = 0, kHttp = 1 };
enum class Encoding : uint8_t { kProtobuf, kJson };

// The outcome of one export, which each transport maps to its own codes in one place.
struct ExportOutcome {
  enum class Kind : uint8_t {
    kOk,           // all or some spans kept; `rejected_spans` > 0 means partial success
    kUndecodable,  // 400 / INVALID_ARGUMENT
    kTooLarge,     // 413 / RESOURCE_EXHAUSTED
    kUnavailable,  // 503 / UNAVAILABLE, retry later
  };
  Kind kind = Kind::kOk;
  uint32_t rejected_spans = 0;
  std::string message;  // partial-success or error message
};

struct IngestOptions {
  uint64_t max_request_bytes = 16ull << 20;  // after decompression
  DecodeLimits limits;
};

// Decodes OTLP requests from either transport, enqueues the spans and counts everything.
// Thread-safe: called from gRPC and HTTP threads at once. `sink` and `registry` are borrowed and
// must outlive it; metric handles are resolved at construction.
class OtlpIngest {
 public:
  OtlpIngest(const IngestOptions& options, const BearerAuth& auth, pipeline::SpanSink& sink,
             prometheus::Registry& registry);

  const IngestOptions& options() const { return options_; }
  const BearerAuth& auth() const { return auth_; }

  // `body` is already decompressed and no larger than max_request_bytes.
  ExportOutcome Export(Transport transport, Encoding encoding, std::string_view body);

  // Counts one answered request under traceslo_otlp_requests_total{transport,code}. `code` is
  // an HTTP status for kHttp and a grpc::StatusCode for kGrpc.
  void CountRequest(Transport transport, int code);

 private:
  static constexpr size_t kTransports = 2;
  static constexpr size_t kRejectReasons = kSpanRejectReasonCount + 2;  // + queue_full, shutdown
  static constexpr size_t kCodes = 17;  // gRPC codes 0..16; HTTP statuses map into this range

  const IngestOptions options_;
  const BearerAuth& auth_;
  pipeline::SpanSink& sink_;
  std::array<prometheus::Counter*, kTransports> received_{};
  std::array<std::array<prometheus::Counter*, kRejectReasons>, kTransports> rejected_{};
  std::array<std::array<prometheus::Counter*, kCodes>, kTransports> requests_{};
  prometheus::Family<prometheus::Counter>* requests_family_ = nullptr;
};

}  // namespace traceslo::ingest
