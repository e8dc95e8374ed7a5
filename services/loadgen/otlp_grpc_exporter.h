#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/generic/generic_stub.h>

#include <chrono>
#include <memory>
#include <string>

#include "services/loadgen/exporter.h"
#include "services/loadgen/http_client.h"
#include "traceslo/common/clock.h"

namespace traceslo::loadgen {

// OTLP/gRPC: unary TraceService/Export calls with a raw ByteBuffer (the body is already an
// encoded ExportTraceServiceRequest) through grpc::GenericStub on one insecure channel, the
// extra headers as metadata (keys lower-case), gzip message compression when asked, a deadline
// of `timeout` from `clock`. OK is acknowledged (partial_success read); UNAVAILABLE, CANCELLED,
// DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, DATA_LOSS, and RESOURCE_EXHAUSTED with a RetryInfo
// are retryable (RetryInfo honoured), as the OTLP specification says; other codes are permanent.
// `clock` is borrowed and must outlive the exporter. Owned by one thread.
class OtlpGrpcExporter final : public Exporter {
 public:
  OtlpGrpcExporter(const std::string& endpoint, HttpHeaders metadata, bool gzip,
                   std::chrono::milliseconds timeout, const Clock& clock);
  ~OtlpGrpcExporter() override;

  // traceslo::loadgen::Exporter
  ExportResult Export(std::string_view body) override;

 private:
  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
  grpc::CompletionQueue queue_;
  const HttpHeaders metadata_;
  const bool gzip_;
  const std::chrono::milliseconds timeout_;
  const Clock& clock_;
};

}  // namespace traceslo::loadgen
