#include "traceslo/ingest/receivers.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>

#include <climits>
#include <fstream>
#include <sstream>

#include "google/protobuf/duration.pb.h"
#include "google/rpc/status.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "services/ingest/bearer_auth.h"
#include "services/ingest/otlp_http_handler.h"
#include "services/ingest/otlp_ingest.h"
#include "traceslo/http/server.h"

namespace traceslo::ingest {
namespace {

namespace otlp = opentelemetry::proto::collector::trace::v1;

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// UNAVAILABLE with a google.rpc.RetryInfo detail, so exporters back off and retry.
grpc::Status UnavailableWithRetry(const std::string& message) {
  google::rpc::RetryInfo retry;
  retry.mutable_retry_delay()->set_seconds(1);
  google::rpc::Status status;
  status.set_code(grpc::StatusCode::UNAVAILABLE);
  status.set_message(message);
  auto* detail = status.add_details();
  detail->set_type_url("type.googleapis.com/google.rpc.RetryInfo");
  detail->set_value(retry.SerializeAsString());
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, message, status.SerializeAsString());
}

// OTLP/gRPC Export on the raw request bytes: the request is scanned by DecodeOtlpProto, never
// parsed into protobuf messages. Called on gRPC's callback threads; thread-safe.
class TraceService final
    : public otlp::TraceService::WithRawCallbackMethod_Export<otlp::TraceService::Service> {
 public:
  explicit TraceService(OtlpIngest& ingest) : ingest_(ingest) {}

  grpc::ServerUnaryReactor* Export(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* request,
                                   grpc::ByteBuffer* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(Handle(*context, *request, *response));
    return reactor;
  }

 private:
  grpc::Status Handle(grpc::CallbackServerContext& context, const grpc::ByteBuffer& request,
                      grpc::ByteBuffer& response) {
    grpc::Status status = HandleUncounted(context, request, response);
    ingest_.CountRequest(Transport::kGrpc, status.error_code());
    return status;
  }

  grpc::Status HandleUncounted(grpc::CallbackServerContext& context,
                               const grpc::ByteBuffer& request, grpc::ByteBuffer& response) {
    if (ingest_.auth().enabled()) {
      const auto& metadata = context.client_metadata();
      auto it = metadata.find("authorization");
      std::string_view value;
      if (it != metadata.end()) value = std::string_view(it->second.data(), it->second.size());
      if (!ingest_.auth().Allows(value)) {
        return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or invalid bearer token");
      }
    }
    const uint64_t max_bytes = ingest_.options().max_request_bytes;
    if (request.Length() > max_bytes) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "request of " + std::to_string(request.Length()) + " bytes exceeds " +
                              std::to_string(max_bytes));
    }
    std::vector<grpc::Slice> slices;
    if (!request.Dump(&slices).ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unreadable request");
    }
    thread_local std::string joined;
    std::string_view body;
    if (slices.size() == 1) {
      body = std::string_view(reinterpret_cast<const char*>(slices[0].begin()), slices[0].size());
    } else {
      joined.clear();
      for (const auto& slice : slices) {
        joined.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
      }
      body = joined;
    }
    ExportOutcome outcome = ingest_.Export(Transport::kGrpc, Encoding::kProtobuf, body);
    switch (outcome.kind) {
      case ExportOutcome::Kind::kUndecodable:
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, outcome.message);
      case ExportOutcome::Kind::kTooLarge:
        return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, outcome.message);
      case ExportOutcome::Kind::kUnavailable:
        return UnavailableWithRetry(outcome.message);
      case ExportOutcome::Kind::kOk:
        break;
    }
    otlp::ExportTraceServiceResponse message;
    if (outcome.rejected_spans != 0) {
      message.mutable_partial_success()->set_rejected_spans(outcome.rejected_spans);
      message.mutable_partial_success()->set_error_message(outcome.message);
    }
    std::string bytes = message.SerializeAsString();
    grpc::Slice slice(bytes);
    response = grpc::ByteBuffer(&slice, 1);
    return grpc::Status::OK;
  }

  OtlpIngest& ingest_;
};

class OtlpReceivers final : public Receivers {
 public:
  OtlpReceivers(const config::OtlpConfig& config, pipeline::SpanSink& sink,
                prometheus::Registry& registry)
      : auth_(config.bearer_tokens),
        ingest_(IngestOptions{.max_request_bytes = config.max_request_bytes,
                              .limits = DecodeLimits{.max_spans = config.max_spans_per_request}},
                auth_, sink, registry),
        service_(ingest_),
        http_handler_(ingest_) {}

  ~OtlpReceivers() override { Shutdown(std::chrono::system_clock::time_point{}); }

  absl::Status Start(const config::OtlpConfig& config, Logger& logger) {
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (config.tls.enabled()) {
      auto cert = ReadFile(config.tls.cert_file);
      if (!cert.ok()) return cert.status();
      auto key = ReadFile(config.tls.key_file);
      if (!key.ok()) return key.status();
      grpc::SslServerCredentialsOptions options;
      options.pem_key_cert_pairs.push_back({*key, *cert});
      if (!config.tls.client_ca_file.empty()) {
        auto ca = ReadFile(config.tls.client_ca_file);
        if (!ca.ok()) return ca.status();
        options.pem_root_certs = *ca;
        options.client_certificate_request =
            GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
      }
      credentials = grpc::SslServerCredentials(options);
    }
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(config.grpc.listen_address, credentials, &port);
    builder.RegisterService(&service_);
    // Requests up to twice the limit reach the handler, which refuses and counts those over
    // it; gRPC itself refuses anything larger before decoding.
    builder.SetMaxReceiveMessageSize(
        static_cast<int>(std::min<uint64_t>(config.max_request_bytes * 2, INT_MAX)));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               static_cast<int>(config.grpc_max_concurrent_streams));
    builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, 16 * 1024);
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 5 * 60 * 1000);
    grpc::ResourceQuota quota("otlp_grpc");
    quota.Resize(config.grpc_memory_bytes);
    builder.SetResourceQuota(quota);
    grpc_server_ = builder.BuildAndStart();
    if (!grpc_server_ || port == 0) {
      return absl::UnavailableError("cannot listen for OTLP/gRPC on " + config.grpc.listen_address);
    }
    std::string host = config.grpc.listen_address.substr(0, config.grpc.listen_address.rfind(':'));
    grpc_address_ = host + ":" + std::to_string(port);

    http::ServerOptions http_options;
    http_options.name = "otlp_http";
    http_options.listen_address = config.http.listen_address;
    // The limit applies to the bytes on the wire; gzip bodies are capped again when inflated.
    http_options.body_limit = config.max_request_bytes + config.max_request_bytes / 64 + 1024;
    http_options.max_connections = config.max_connections;
    http_options.threads = 2;
    http_options.tls = {config.tls.cert_file, config.tls.key_file, config.tls.client_ca_file};
    auto server = http::Server::Create(http_options, http_handler_, logger);
    if (!server.ok()) return server.status();
    http_server_ = std::move(*server);
    return absl::OkStatus();
  }

  std::string grpc_address() const override { return grpc_address_; }
  std::string http_address() const override { return http_server_->address(); }

  void Shutdown(std::chrono::system_clock::time_point deadline) override {
    if (http_server_) http_server_->Shutdown();
    if (grpc_server_) {
      grpc_server_->Shutdown(deadline);
      grpc_server_.reset();
    }
  }

 private:
  BearerAuth auth_;
  OtlpIngest ingest_;
  TraceService service_;
  OtlpHttpHandler http_handler_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<http::Server> http_server_;
  std::string grpc_address_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Receivers>> Receivers::Start(const config::OtlpConfig& config,
                                                            pipeline::SpanSink& sink,
                                                            prometheus::Registry& registry,
                                                            Logger& logger) {
  auto receivers = std::make_unique<OtlpReceivers>(config, sink, registry);
  if (auto status = receivers->Start(config, logger); !status.ok()) return status;
  return receivers;
}

}  // namespace traceslo::ingest
