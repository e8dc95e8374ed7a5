#include "services/loadgen/otlp_grpc_exporter.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/status.h>

#include <array>
#include <utility>

#include "services/loadgen/otlp_response.h"

#ifndef TRACESLO_VERSION
#define TRACESLO_VERSION "0.0.0-dev"
#endif

namespace traceslo::loadgen {
namespace {

constexpr char kExportMethod[] = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

constexpr std::array<std::string_view, 17> kCodeNames = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& endpoint) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(4 * 1024 * 1024);
  args.SetMaxSendMessageSize(-1);
  args.SetUserAgentPrefix("traceslo-loadgen/" TRACESLO_VERSION);
  return grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

OtlpGrpcExporter::OtlpGrpcExporter(const std::string& endpoint, HttpHeaders metadata, bool gzip,
                                   std::chrono::milliseconds timeout, const Clock& clock)
    : channel_(MakeChannel(endpoint)),
      stub_(channel_),
      metadata_(std::move(metadata)),
      gzip_(gzip),
      timeout_(timeout),
      clock_(clock) {}

OtlpGrpcExporter::~OtlpGrpcExporter() {
  queue_.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (queue_.Next(&tag, &ok)) {
  }
}

ExportResult OtlpGrpcExporter::Export(std::string_view body) {
  grpc::ClientContext context;
  context.set_deadline(clock_.Now() + timeout_);
  for (const auto& [key, value] : metadata_) context.AddMetadata(key, value);
  if (gzip_) context.set_compression_algorithm(GRPC_COMPRESS_GZIP);

  grpc::Slice slice(body.data(), body.size());
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
      stub_.PrepareUnaryCall(&context, kExportMethod, request, &queue_);
  call->StartCall();
  int tag_value = 0;
  call->Finish(&response, &status, &tag_value);
  void* tag = nullptr;
  bool ok = false;
  // The only call in flight on this queue: the next event is its completion.
  queue_.Next(&tag, &ok);

  ExportResult result;
  if (status.ok()) {
    std::vector<grpc::Slice> slices;
    std::string bytes;
    if (response.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    result.rejected_spans = RejectedSpansFromProtobuf(bytes).value_or(0);
    return result;
  }
  const int code = static_cast<int>(status.error_code());
  const std::string name = code >= 0 && code < static_cast<int>(kCodeNames.size())
                               ? std::string(kCodeNames[static_cast<size_t>(code)])
                               : std::to_string(code);
  result.reason = "grpc_" + name;
  result.message = name + ": " + status.error_message();
  result.retry_after = RetryDelayFromRpcStatus(status.error_details());
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::DATA_LOSS:
      result.kind = ExportResult::Kind::kRetryable;
      break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      result.kind =
          result.retry_after ? ExportResult::Kind::kRetryable : ExportResult::Kind::kPermanent;
      break;
    default:
      result.kind = ExportResult::Kind::kPermanent;
  }
  return result;
}

}  // namespace traceslo::loadgen
