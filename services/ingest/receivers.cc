#include "traceslo/ingest/receivers.h"

#include <grpc/grpc.h>
#include <grpc/support/alloc.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/server_interceptor.h>

#include <boost/json.hpp>
#include <climits>
#include <fstream>
#include <sstream>

#include "google/protobuf/duration.pb.h"
#include "google/rpc/status.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "services/ingest/bearer_auth.h"
#include "services/ingest/grpc_connection_gate.h"
#include "services/ingest/gzip.h"
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
  // Answers are counted by StatusCountingInterceptor, which also sees gRPC's own refusals.
  grpc::Status Handle(grpc::CallbackServerContext& context, const grpc::ByteBuffer& request,
                      grpc::ByteBuffer& response) {
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
    // Per-thread scratch, emptied after each call: slices hold gRPC memory (charged to its
    // quota), and a buffer that grew past kKeepBytes is given back.
    thread_local std::vector<grpc::Slice> slices;
    thread_local std::string joined;
    thread_local std::string inflated;
    struct Release {
      ~Release() {
        slices.clear();
        if (joined.capacity() > kKeepBytes) std::string().swap(joined);
        if (inflated.capacity() > kKeepBytes) std::string().swap(inflated);
      }
    } release;
    if (!request.Dump(&slices).ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unreadable request");
    }
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
    // gRPC's own decompression is off (it inflates without a bound before checking the size):
    // a gzip message arrives as is and is inflated here, stopping at the limit. A protobuf
    // request cannot start with the gzip magic 1f 8b (field 3 with wire type 7 is invalid).
    if (body.size() >= 2 && static_cast<uint8_t>(body[0]) == 0x1f &&
        static_cast<uint8_t>(body[1]) == 0x8b) {
      absl::Status status = Gunzip(body, max_bytes, inflated);
      if (absl::IsResourceExhausted(status)) {
        return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, std::string(status.message()));
      }
      if (!status.ok()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(status.message()));
      }
      body = inflated;
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

  static constexpr size_t kKeepBytes = 1 << 20;

  OtlpIngest& ingest_;
};

// Counts every answer of the gRPC port by its status code, including the ones gRPC gives by
// itself (message too large, unsupported encoding) before the service sees the call.
class StatusCountingInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit StatusCountingInterceptor(OtlpIngest& ingest) : ingest_(ingest) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      ingest_.CountRequest(Transport::kGrpc, methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  OtlpIngest& ingest_;
};

class StatusCountingInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit StatusCountingInterceptorFactory(OtlpIngest& ingest) : ingest_(ingest) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo*) override {
    return new StatusCountingInterceptor(ingest_);
  }

 private:
  OtlpIngest& ingest_;
};

struct GrpcCalls {
  uint64_t started = 0;
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  uint64_t open_sockets = 0;
};

uint64_t JsonCount(const boost::json::object& object, std::string_view key) {
  const boost::json::value* v = object.if_contains(key);
  if (v == nullptr) return 0;  // proto3 JSON leaves zeros out
  if (v->is_string()) return std::strtoull(v->as_string().c_str(), nullptr, 10);
  if (v->is_int64()) return static_cast<uint64_t>(v->as_int64());
  if (v->is_uint64()) return v->as_uint64();
  return 0;
}

// The process's one gRPC server, as channelz describes it. Zeros when channelz says nothing.
GrpcCalls ReadGrpcChannelz() {
  GrpcCalls calls;
  char* text = grpc_channelz_get_servers(0);
  if (text == nullptr) return calls;
  boost::json::error_code ec;
  boost::json::value servers = boost::json::parse(text, ec);
  gpr_free(text);
  if (ec || !servers.is_object()) return calls;
  const boost::json::value* list = servers.as_object().if_contains("server");
  if (list == nullptr || !list->is_array() || list->as_array().empty()) return calls;
  const boost::json::value& server = list->as_array().front();
  if (!server.is_object()) return calls;
  if (const auto* data = server.as_object().if_contains("data"); data && data->is_object()) {
    calls.started = JsonCount(data->as_object(), "callsStarted");
    calls.succeeded = JsonCount(data->as_object(), "callsSucceeded");
    calls.failed = JsonCount(data->as_object(), "callsFailed");
  }
  const auto* ref = server.as_object().if_contains("ref");
  if (ref == nullptr || !ref->is_object()) return calls;
  const intptr_t id = static_cast<intptr_t>(JsonCount(ref->as_object(), "serverId"));
  char* sockets_text = grpc_channelz_get_server_sockets(id, 0, 100000);
  if (sockets_text == nullptr) return calls;
  boost::json::value sockets = boost::json::parse(sockets_text, ec);
  gpr_free(sockets_text);
  if (ec || !sockets.is_object()) return calls;
  if (const auto* refs = sockets.as_object().if_contains("socketRef"); refs && refs->is_array()) {
    calls.open_sockets = refs->as_array().size();
  }
  return calls;
}

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

  ~OtlpReceivers() override {
    ShutdownBy(std::chrono::system_clock::time_point{},
               std::chrono::steady_clock::time_point::min());
  }

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
    // traceslo accepts gRPC connections itself, to cap how many are open.
    auto gate = GrpcConnectionGate::Listen(config.grpc.listen_address);
    if (!gate.ok()) return gate.status();
    gate_ = std::move(*gate);
    grpc::ServerBuilder builder;
    grpc_acceptor_ = builder.experimental().AddExternalConnectionAcceptor(
        grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD, credentials);
    builder.RegisterService(&service_);
    // Messages are capped on the wire (compressed: a gzip stream is never much larger than its
    // content) and again, after inflating, by the service.
    // Messages up to 4x the limit reach the service, which refuses and counts those over it;
    // gRPC refuses larger ones itself, and no hook of gRPC 1.51 lets traceslo count those.
    builder.SetMaxReceiveMessageSize(
        static_cast<int>(std::min<uint64_t>(config.max_request_bytes * 4, INT_MAX)));
    builder.AddChannelArgument(GRPC_ARG_ENABLE_PER_MESSAGE_DECOMPRESSION, 0);
    builder.SetCompressionAlgorithmSupportStatus(GRPC_COMPRESS_DEFLATE, false);
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
        interceptors;
    interceptors.push_back(std::make_unique<StatusCountingInterceptorFactory>(ingest_));
    builder.experimental().SetInterceptorCreators(std::move(interceptors));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               static_cast<int>(config.grpc_max_concurrent_streams));
    builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, 16 * 1024);
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 5 * 60 * 1000);
    // Connections count against otlp.max_connections once gRPC holds them, i.e. after a TLS
    // handshake; a short handshake timeout bounds the ones still shaking hands.
    builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, 10 * 1000);
    grpc::ResourceQuota quota("otlp_grpc");
    quota.Resize(config.grpc_memory_bytes);
    builder.SetResourceQuota(quota);
    grpc_server_ = builder.BuildAndStart();
    if (!grpc_server_) {
      return absl::UnavailableError("cannot start the OTLP/gRPC server on " +
                                    config.grpc.listen_address);
    }
    gate_->Start(*grpc_acceptor_, config.max_connections,
                 [] { return ReadGrpcChannelz().open_sockets; });

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

  std::string grpc_address() const override { return gate_->address(); }

  // prometheus::Collectable
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families;
    GrpcCalls calls = ReadGrpcChannelz();
    prometheus::MetricFamily grpc_calls{
        "traceslo_otlp_grpc_calls_total",
        "Calls on the OTLP/gRPC port as gRPC's channelz counts them.",
        prometheus::MetricType::Counter,
        {}};
    for (auto [result, value] :
         {std::pair{"started", calls.started}, std::pair{"succeeded", calls.succeeded},
          std::pair{"failed", calls.failed}}) {
      prometheus::ClientMetric metric;
      metric.label = {{"result", result}};
      metric.counter.value = static_cast<double>(value);
      grpc_calls.metric.push_back(metric);
    }
    families.push_back(std::move(grpc_calls));

    prometheus::MetricFamily connections{"traceslo_otlp_connections",
                                         "Open connections on the OTLP ports.",
                                         prometheus::MetricType::Gauge,
                                         {}};
    for (auto [transport, value] :
         {std::pair{"grpc", static_cast<double>(calls.open_sockets)},
          std::pair{"http", static_cast<double>(http_server_->open_connections())}}) {
      prometheus::ClientMetric metric;
      metric.label = {{"transport", transport}};
      metric.gauge.value = value;
      connections.metric.push_back(metric);
    }
    families.push_back(std::move(connections));

    prometheus::MetricFamily refused{
        "traceslo_otlp_connections_refused_total",
        "Connections closed at once because otlp.max_connections were open.",
        prometheus::MetricType::Counter,
        {}};
    for (auto [transport, value] :
         {std::pair{"grpc", static_cast<double>(gate_->refused())},
          std::pair{"http", static_cast<double>(http_server_->connections_refused())}}) {
      prometheus::ClientMetric metric;
      metric.label = {{"transport", transport}};
      metric.counter.value = value;
      refused.metric.push_back(metric);
    }
    families.push_back(std::move(refused));
    return families;
  }
  std::string http_address() const override { return http_server_->address(); }

  void Shutdown(const Clock& clock, std::chrono::nanoseconds grace) override {
    ShutdownBy(clock.Now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(grace),
               clock.SteadyNow() + grace);
  }

 private:
  void ShutdownBy(std::chrono::system_clock::time_point deadline,
                  std::chrono::steady_clock::time_point steady_deadline) {
    if (gate_) gate_->Shutdown();
    if (http_server_) http_server_->Shutdown(steady_deadline);
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
  std::unique_ptr<GrpcConnectionGate> gate_;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> grpc_acceptor_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<http::Server> http_server_;
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
