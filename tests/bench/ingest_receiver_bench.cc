// End to end over loopback: traceslo's real receivers (ingest::Receivers, feeding a 2-shard
// ShardedPipeline with CountingProcessors) next to null-sink receivers on the same transports,
// started in the same process and measured in the same run:
//   e2e/grpc/*           OTLP/gRPC Export as raw ByteBuffer unary calls (grpc::GenericStub),
//                        kInFlight calls outstanding on one channel
//   e2e/http_protobuf/*  POST /v1/traces, application/x-protobuf, over kInFlight keep-alive
//                        HTTP/1.1 connections driven round-robin by a blocking client
// The null receivers answer without decoding: for gRPC a raw callback TraceService returning an
// empty ExportTraceServiceResponse, for HTTP a traceslo::http::Server whose handler answers 200
// with an empty body. Rates are spans per CPU-second of the whole process (client, servers and
// shard threads together: MeasureProcessCPUTime), so 1e9/real - 1e9/null is the CPU per span
// that decoding + enqueueing adds. One iteration = one request answered (512 spans).
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "prometheus/registry.h"
#include "tests/bench/bench_report.h"
#include "tests/bench/otlp_request.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/log.h"
#include "traceslo/config/config.h"
#include "traceslo/http/server.h"
#include "traceslo/ingest/receivers.h"
#include "traceslo/pipeline/sharded_pipeline.h"

namespace traceslo::bench {
namespace {

namespace otlp = opentelemetry::proto::collector::trace::v1;

constexpr int kInFlight = 4;
constexpr char kExportMethod[] = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

// --- null receivers ---------------------------------------------------------------------------

// Answers every Export with an empty response without looking at the request.
class NullTraceService final
    : public otlp::TraceService::WithRawCallbackMethod_Export<otlp::TraceService::Service> {
 public:
  grpc::ServerUnaryReactor* Export(grpc::CallbackServerContext* context,
                                   const grpc::ByteBuffer* /*request*/,
                                   grpc::ByteBuffer* response) override {
    otlp::ExportTraceServiceResponse message;
    std::string bytes = message.SerializeAsString();
    grpc::Slice slice(bytes);
    *response = grpc::ByteBuffer(&slice, 1);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

class NullHttpHandler final : public http::Handler {
 public:
  http::Response Handle(const http::Request& /*request*/) override {
    return http::Response{200, "application/x-protobuf", {}, {}};
  }
};

// --- clients ----------------------------------------------------------------------------------

// A keep-alive HTTP/1.1 client on a blocking socket: writes a prepared request, reads one
// response by Content-Length. Owned by one thread.
class BlockingHttpClient {
 public:
  ~BlockingHttpClient() {
    if (fd_ >= 0) close(fd_);
  }

  absl::Status Connect(const std::string& address) {
    std::string host;
    uint16_t port = 0;
    if (absl::Status status = http::SplitHostPort(address, host, port); !status.ok()) {
      return status;
    }
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return absl::InternalError(std::string("socket: ") + std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
      return absl::InvalidArgumentError("not an IPv4 address: " + host);
    }
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return absl::UnavailableError(std::string("connect: ") + std::strerror(errno));
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return absl::OkStatus();
  }

  absl::Status Send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = write(fd_, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return absl::UnavailableError(std::string("write: ") + std::strerror(errno));
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return absl::OkStatus();
  }

  // Reads one response; returns its status code and sets `body_size`.
  absl::StatusOr<int> ReadResponse(size_t& body_size) {
    size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (absl::Status status = Fill(); !status.ok()) return status;
    }
    std::string_view head(buffer_.data(), header_end);
    int code = 0;
    if (head.size() < 12 || !head.starts_with("HTTP/1.1 ") ||
        std::from_chars(head.data() + 9, head.data() + 12, code).ec != std::errc()) {
      return absl::InternalError("bad status line: " + std::string(head.substr(0, 40)));
    }
    size_t content_length = 0;
    size_t line = head.find("\r\n");
    while (line != std::string_view::npos) {
      size_t next = head.find("\r\n", line + 2);
      std::string_view field = head.substr(
          line + 2, next == std::string_view::npos ? std::string_view::npos : next - line - 2);
      constexpr std::string_view kName = "content-length:";
      if (field.size() > kName.size() &&
          strncasecmp(field.data(), kName.data(), kName.size()) == 0) {
        std::string_view value = field.substr(kName.size());
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        std::from_chars(value.data(), value.data() + value.size(), content_length);
      }
      line = next;
    }
    const size_t total = header_end + 4 + content_length;
    while (buffer_.size() < total) {
      if (absl::Status status = Fill(); !status.ok()) return status;
    }
    buffer_.erase(0, total);
    body_size = content_length;
    return code;
  }

 private:
  absl::Status Fill() {
    char chunk[4096];
    ssize_t n;
    do {
      n = read(fd_, chunk, sizeof chunk);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return absl::UnavailableError("connection closed while reading a response");
    buffer_.append(chunk, static_cast<size_t>(n));
    return absl::OkStatus();
  }

  int fd_ = -1;
  std::string buffer_;
};

// --- the servers of one run -------------------------------------------------------------------

// Everything the benchmarks talk to, started once before they run. Owned by main's thread.
class Environment {
 public:
  Environment() : logger_(clock_, LogFormat::kLogfmt, LogLevel::kWarn) {}

  absl::Status Start() {
    request_ = MakeOtlpProtoRequest(shape_);
    grpc::Slice slice(request_.data(), request_.size());
    grpc_request_ = grpc::ByteBuffer(&slice, 1);
    http_request_ =
        "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-protobuf\r\nContent-Length: " +
        std::to_string(request_.size()) + "\r\n\r\n" + request_;

    std::vector<std::unique_ptr<pipeline::ShardProcessor>> processors;
    processors.push_back(std::make_unique<pipeline::CountingProcessor>());
    processors.push_back(std::make_unique<pipeline::CountingProcessor>());
    auto created = pipeline::ShardedPipeline::Create(
        pipeline::PipelineOptions{.shards = 2, .queue_capacity_spans = 1u << 20},
        std::move(processors), registry_);
    if (!created.ok()) return created.status();
    pipeline_ = std::move(*created);

    config::OtlpConfig config;
    config.grpc.listen_address = "127.0.0.1:0";
    config.http.listen_address = "127.0.0.1:0";
    auto receivers = ingest::Receivers::Start(config, *pipeline_, registry_, logger_);
    if (!receivers.ok()) return receivers.status();
    receivers_ = std::move(*receivers);

    // The null gRPC server gets the same transport settings as the real one.
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&null_service_);
    builder.SetMaxReceiveMessageSize(static_cast<int>(config.max_request_bytes * 2));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               static_cast<int>(config.grpc_max_concurrent_streams));
    null_grpc_server_ = builder.BuildAndStart();
    if (!null_grpc_server_ || port == 0) return absl::UnavailableError("null gRPC server");
    null_grpc_address_ = "127.0.0.1:" + std::to_string(port);

    http::ServerOptions options;
    options.name = "null_http";
    options.listen_address = "127.0.0.1:0";
    options.threads = 2;  // as the OTLP/HTTP receiver
    auto server = http::Server::Create(options, null_http_handler_, logger_);
    if (!server.ok()) return server.status();
    null_http_server_ = std::move(*server);
    return absl::OkStatus();
  }

  void Shutdown() {
    if (receivers_) receivers_->Shutdown(clock_, std::chrono::nanoseconds(0));
    if (null_grpc_server_) null_grpc_server_->Shutdown();
    if (null_http_server_)
      null_http_server_->Shutdown(std::chrono::steady_clock::time_point::min());
    if (pipeline_) pipeline_->Shutdown(std::chrono::steady_clock::time_point::max());
  }

  const RequestShape& shape() const { return shape_; }
  const std::string& request() const { return request_; }
  const grpc::ByteBuffer& grpc_request() const { return grpc_request_; }
  const std::string& http_request() const { return http_request_; }
  std::string grpc_address(bool real) const {
    return real ? receivers_->grpc_address() : null_grpc_address_;
  }
  std::string http_address(bool real) const {
    return real ? receivers_->http_address() : null_http_server_->address();
  }
  uint64_t spans_processed() const { return pipeline_->spans_processed(); }

 private:
  SystemClock clock_;
  Logger logger_;
  prometheus::Registry registry_;
  RequestShape shape_;
  std::string request_;
  grpc::ByteBuffer grpc_request_;
  std::string http_request_;
  std::unique_ptr<pipeline::ShardedPipeline> pipeline_;
  std::unique_ptr<ingest::Receivers> receivers_;
  NullTraceService null_service_;
  std::unique_ptr<grpc::Server> null_grpc_server_;
  std::string null_grpc_address_;
  NullHttpHandler null_http_handler_;
  std::unique_ptr<http::Server> null_http_server_;
};

// One outstanding Export call.
struct GrpcCall {
  grpc::ClientContext context;
  grpc::ByteBuffer response;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
};

void GrpcExport(benchmark::State& state, const Environment& env, bool real) {
  auto channel = grpc::CreateChannel(env.grpc_address(real), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<GrpcCall>> calls(kInFlight);
  auto start = [&](intptr_t slot) {
    calls[slot] = std::make_unique<GrpcCall>();
    GrpcCall& call = *calls[slot];
    call.reader = stub.PrepareUnaryCall(&call.context, kExportMethod, env.grpc_request(), &cq);
    call.reader->StartCall();
    call.reader->Finish(&call.response, &call.status, reinterpret_cast<void*>(slot));
  };
  // The answer of an accepted request is an empty ExportTraceServiceResponse.
  auto finish = [&](std::string& error) {
    void* tag = nullptr;
    bool ok = false;
    if (!cq.Next(&tag, &ok) || !ok) {
      error = "completion queue failed";
      return intptr_t{-1};
    }
    const intptr_t slot = reinterpret_cast<intptr_t>(tag);
    const GrpcCall& call = *calls[slot];
    if (!call.status.ok()) {
      error =
          "Export: " + std::to_string(call.status.error_code()) + " " + call.status.error_message();
    } else if (call.response.Length() != 0) {
      error = "Export answered a partial success";
    }
    return slot;
  };

  // Warm the connection up before the timer starts.
  std::string error;
  start(0);
  finish(error);
  for (intptr_t slot = 0; slot < kInFlight; ++slot) start(slot);
  int outstanding = kInFlight;
  for (auto _ : state) {
    intptr_t slot = finish(error);
    --outstanding;
    if (!error.empty()) break;
    start(slot);
    ++outstanding;
  }
  for (; outstanding > 0; --outstanding) finish(error);
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  SetSpanCounters(state, env.shape().spans(), env.request().size());
}

void HttpExport(benchmark::State& state, const Environment& env, bool real) {
  std::vector<std::unique_ptr<BlockingHttpClient>> connections;
  for (int i = 0; i < kInFlight; ++i) {
    auto connection = std::make_unique<BlockingHttpClient>();
    if (absl::Status status = connection->Connect(env.http_address(real)); !status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      return;
    }
    connections.push_back(std::move(connection));
  }
  std::string error;
  auto answer = [&](BlockingHttpClient& connection) {
    size_t body_size = 0;
    absl::StatusOr<int> code = connection.ReadResponse(body_size);
    if (!code.ok()) {
      error = code.status().ToString();
    } else if (*code != 200) {
      error = "HTTP " + std::to_string(*code);
    } else if (body_size != 0) {
      error = "answered a partial success";
    }
  };
  auto send = [&](BlockingHttpClient& connection) {
    if (absl::Status status = connection.Send(env.http_request()); !status.ok()) {
      error = status.ToString();
    }
  };
  for (auto& connection : connections) send(*connection);
  size_t next = 0;
  for (auto _ : state) {
    BlockingHttpClient& connection = *connections[next];
    next = (next + 1) % connections.size();
    answer(connection);
    if (!error.empty()) break;
    send(connection);
    if (!error.empty()) break;
  }
  if (error.empty()) {
    for (size_t i = 0; i < connections.size(); ++i) {
      answer(*connections[(next + i) % connections.size()]);
    }
  }
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  SetSpanCounters(state, env.shape().spans(), env.request().size());
}

}  // namespace
}  // namespace traceslo::bench

int main(int argc, char** argv) {
  using namespace traceslo::bench;
  Environment env;
  if (absl::Status status = env.Start(); !status.ok()) {
    std::fprintf(stderr, "cannot start the receivers: %s\n", status.ToString().c_str());
    env.Shutdown();
    return 1;
  }
  std::printf(
      "request: %u spans, %zu protobuf bytes; %d requests in flight; rates are spans per "
      "CPU-second of the whole process (client + servers + shard threads)\n",
      env.shape().spans(), env.request().size(), kInFlight);
  // Registered as lambdas: RegisterBenchmark would copy extra arguments. One second per
  // repetition (not the default 0.5 s): transport figures are noisier than decode ones.
  const Environment* e = &env;
  struct Case {
    const char* name;
    void (*run)(benchmark::State&, const Environment&, bool real);
    bool real;
  };
  for (const Case& c : {Case{"e2e/grpc/traceslo_receiver", GrpcExport, true},
                        Case{"e2e/grpc/null_receiver", GrpcExport, false},
                        Case{"e2e/http_protobuf/traceslo_receiver", HttpExport, true},
                        Case{"e2e/http_protobuf/null_receiver", HttpExport, false}}) {
    benchmark::RegisterBenchmark(c.name,
                                 [e, c](benchmark::State& state) { c.run(state, *e, c.real); })
        ->MeasureProcessCPUTime()
        ->MinTime(1.0);
  }

  const std::vector<Comparison> comparisons = {
      {"e2e/grpc/traceslo_receiver", "e2e/grpc/null_receiver",
       "share of the null receiver's spans per CPU-second kept by decode + enqueue", true},
      {"e2e/http_protobuf/traceslo_receiver", "e2e/http_protobuf/null_receiver",
       "share of the null receiver's spans per CPU-second kept by decode + enqueue", true},
  };
  const uint64_t processed_before = env.spans_processed();
  int status = RunBenchmarksAndCompare(argc, argv, comparisons, {});
  env.Shutdown();
  std::printf("pipeline processed %llu spans from the real receivers\n",
              static_cast<unsigned long long>(env.spans_processed() - processed_before));
  return status;
}
