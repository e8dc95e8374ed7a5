// End to end over loopback: traceslo's real receivers (ingest::Receivers, feeding a 2-shard
// ShardedPipeline with CountingProcessors) next to null-sink receivers on the same transports,
// started in the same process and measured in the same run:
//   e2e/grpc/*           OTLP/gRPC Export as raw ByteBuffer unary calls (grpc::GenericStub),
//                        kInFlight calls outstanding on one channel
//   e2e/http_protobuf/*  POST /v1/traces, application/x-protobuf, over kInFlight keep-alive
//                        HTTP/1.1 connections driven round-robin by a blocking client
//   e2e/grpc_mesh/*      OTLP/gRPC again, with service-mesh traffic (MakeMeshOtlpProtoRequest:
//                        traces of 8 spans over 2-3 of 20 services) that carries new trace ids
//                        and current times in every request, sent to the null receiver, to the
//                        receivers above (CountingProcessor) and to `sli`: everything on, as
//                        `traceslo serve` wires it with the default configuration (Receivers ->
//                        2-shard ShardedPipeline -> SliShardProcessor with trace assembly,
//                        SeriesRegistry, SliStore, SystemClock), its pipeline ticked every
//                        tick_interval (1 s) by the client's loop instead of a Ticker thread: a
//                        Ticker would complete the live traces of one repetition 15 s later,
//                        inside whichever benchmark runs then; and rule evaluation on: an
//                        slo::Evaluator with two SLOs per mesh service (availability 99.9 %,
//                        latency 99 % under 250 ms, default windows and tiers), evaluated by the
//                        client's loop every tick_interval, ten times as often as the default
//                        rules.evaluation_interval (10 s), so its cost is overstated
//   e2e/http_mesh/*      the same mesh requests, everything on, over OTLP/HTTP (POST /v1/traces,
//                        application/x-protobuf, the keep-alive client above): to `sli`, to
//                        the receivers with CountingProcessors and to the null HTTP server
// The null receivers answer without decoding: for gRPC a raw callback TraceService returning an
// empty ExportTraceServiceResponse, for HTTP a traceslo::http::Server whose handler answers 200
// with an empty body. Rates are spans per CPU-second of the whole process (client, servers and
// shard threads together: MeasureProcessCPUTime), so 1e9/real - 1e9/null is the CPU
// per span that decoding + enqueueing (+ the SLI engine) adds. The client sending to `sli` waits
// while the pipeline is more than kMaxBacklogSpans behind, so the shards' CPU for the spans sent
// is spent, and counted, within the measurement. One iteration = one request answered (512
// spans).
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
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
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/slo/evaluator.h"
#include "traceslo/slo/rule_file.h"
#include "traceslo/slo/sli_engine.h"

namespace traceslo::bench {
namespace {

namespace otlp = opentelemetry::proto::collector::trace::v1;

constexpr int kInFlight = 4;
constexpr char kExportMethod[] = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
constexpr uint32_t kMeshTemplates = 8;
constexpr uint64_t kMaxBacklogSpans = 16 * 512;

int64_t UnixNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

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

// --- requests with fresh trace ids -------------------------------------------------------------

// Mesh requests for every call: one of kMeshTemplates requests with new trace ids (a counter, so
// no trace id ever comes back) and its times moved so that it is sent now, written into a buffer
// that gRPC then sends without a copy. A buffer is reused once gRPC has dropped the slice that
// wraps it. Owned by the benchmark thread (gRPC releases slices on its own threads, hence the
// atomic flag).
class MeshRequests {
 public:
  explicit MeshRequests(const Clock& clock) : clock_(clock) {}

  absl::Status Init() {
    for (uint32_t i = 0; i < kMeshTemplates; ++i) {
      Template t;
      t.shape.seed = 100 + i;
      t.bytes = MakeMeshOtlpProtoRequest(t.shape);
      t.offsets = FindSpanFields(t.bytes);
      if (t.offsets.trace_ids.size() != t.shape.spans() ||
          t.offsets.start_times.size() != t.shape.spans() ||
          t.offsets.end_times.size() != t.shape.spans()) {
        return absl::InternalError("mesh request: span fields not found");
      }
      bytes_ += t.bytes.size();
      templates_.push_back(std::move(t));
    }
    bytes_ /= kMeshTemplates;
    return absl::OkStatus();
  }

  grpc::ByteBuffer Next() {
    Buffer* buffer = nullptr;
    for (const auto& b : buffers_) {
      if (!b->in_use.load(std::memory_order_acquire)) {
        buffer = b.get();
        break;
      }
    }
    if (buffer == nullptr) {
      auto b = std::make_unique<Buffer>();
      b->template_index = buffers_.size() % templates_.size();
      b->bytes = templates_[b->template_index].bytes;
      buffer = buffers_.emplace_back(std::move(b)).get();
    }
    buffer->in_use.store(true, std::memory_order_relaxed);
    const Template& t = templates_[buffer->template_index];
    RestampRequest(t.bytes, t.offsets, ++salt_,
                   UnixNanos(clock_.Now()) - static_cast<int64_t>(t.shape.sent_unix_nano),
                   buffer->bytes);
    grpc::Slice slice(buffer->bytes.data(), buffer->bytes.size(), &Release, buffer);
    return grpc::ByteBuffer(&slice, 1);
  }

  // The next mesh request as an OTLP/HTTP protobuf POST, written over `out`.
  void NextHttp(std::string& out) {
    const Template& t = templates_[(http_next_++) % templates_.size()];
    http_body_ = t.bytes;  // RestampRequest rewrites a copy of the template in place
    RestampRequest(t.bytes, t.offsets, ++salt_,
                   UnixNanos(clock_.Now()) - static_cast<int64_t>(t.shape.sent_unix_nano),
                   http_body_);
    out.assign(
        "POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-protobuf\r\nContent-Length: ");
    out += std::to_string(http_body_.size());
    out += "\r\n\r\n";
    out += http_body_;
  }

  uint32_t spans() const { return MeshShape{}.spans(); }
  size_t bytes() const { return bytes_; }  // protobuf bytes per request, on average

 private:
  struct Template {
    MeshShape shape;
    std::string bytes;
    SpanFieldOffsets offsets;
  };
  struct Buffer {
    std::string bytes;
    size_t template_index = 0;
    std::atomic<bool> in_use{false};
  };
  static void Release(void* buffer) {
    static_cast<Buffer*>(buffer)->in_use.store(false, std::memory_order_release);
  }

  const Clock& clock_;
  std::vector<Template> templates_;
  std::vector<std::unique_ptr<Buffer>> buffers_;
  uint64_t salt_ = 0;
  size_t bytes_ = 0;
  size_t http_next_ = 0;
  std::string http_body_;
};

// --- the servers of one run -------------------------------------------------------------------

// Everything the benchmarks talk to, started once before they run. Owned by main's thread.
class Environment {
 public:
  Environment() : logger_(clock_, LogFormat::kLogfmt, LogLevel::kWarn), mesh_(clock_) {}

  absl::Status Start() {
    if (absl::Status status = mesh_.Init(); !status.ok()) return status;
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
    return StartSli(config);
  }

  void Shutdown() {
    if (sli_receivers_) sli_receivers_->Shutdown(clock_, std::chrono::nanoseconds(0));
    if (sli_pipeline_) sli_pipeline_->Shutdown(std::chrono::steady_clock::time_point::max());
    if (receivers_) receivers_->Shutdown(clock_, std::chrono::nanoseconds(0));
    if (null_grpc_server_) null_grpc_server_->Shutdown();
    if (null_http_server_)
      null_http_server_->Shutdown(std::chrono::steady_clock::time_point::min());
    if (pipeline_) pipeline_->Shutdown(std::chrono::steady_clock::time_point::max());
  }

  const Clock& clock() const { return clock_; }
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
  MeshRequests& mesh() { return mesh_; }
  std::string sli_grpc_address() const { return sli_receivers_->grpc_address(); }
  std::string sli_http_address() const { return sli_receivers_->http_address(); }
  pipeline::ShardedPipeline& sli_pipeline() const { return *sli_pipeline_; }
  std::chrono::nanoseconds tick_interval() const { return tick_interval_; }
  const pipeline::SliStore& sli_store() const { return sli_engine_->store(); }
  slo::Evaluator& evaluator() const { return *evaluator_; }

 private:
  // The SLI engine as `traceslo serve` wires it (slo::SliEngine), with the default
  // configuration, behind its own receivers (and its own metric registry: the names repeat).
  absl::Status StartSli(const config::OtlpConfig& otlp) {
    const config::PipelineConfig pc;
    sli_engine_ = std::make_unique<slo::SliEngine>(pc, clock_);
    auto created = pipeline::ShardedPipeline::Create(
        pipeline::PipelineOptions{.shards = pc.shards,
                                  .queue_capacity_spans = pc.queue_capacity_spans},
        sli_engine_->MakeProcessors(), sli_registry_);
    if (!created.ok()) return created.status();
    sli_pipeline_ = std::move(*created);
    tick_interval_ = pc.tick_interval;
    // Two SLOs per mesh service, as a rule file per service would have them.
    evaluator_ =
        std::make_unique<slo::Evaluator>(sli_engine_->evaluator_options(), sli_engine_->source());
    std::vector<slo::Slo> slos;
    for (const std::string& service : MeshServiceNames(MeshShape{}.services)) {
      std::vector<slo::Diagnostic> diagnostics;
      auto rules = slo::ParseRuleFile("service: " + service +
                                          "\nslos:\n"
                                          "  - {name: availability, objective: 99.9, sli: {errors: "
                                          "{}}}\n"
                                          "  - {name: latency, objective: 99, sli: {latency: "
                                          "{threshold: 250ms}}}\n",
                                      service + ".yaml", diagnostics);
      if (!rules.ok() || !diagnostics.empty()) {
        return absl::InternalError("bench rules for " + service + " do not parse");
      }
      slos.insert(slos.end(), rules->slos.begin(), rules->slos.end());
    }
    evaluator_->SetRules(slos);
    auto receivers = ingest::Receivers::Start(otlp, *sli_pipeline_, sli_registry_, logger_);
    if (!receivers.ok()) return receivers.status();
    sli_receivers_ = std::move(*receivers);
    return absl::OkStatus();
  }

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
  MeshRequests mesh_;
  prometheus::Registry sli_registry_;
  std::unique_ptr<slo::SliEngine> sli_engine_;
  std::unique_ptr<slo::Evaluator> evaluator_;
  std::unique_ptr<pipeline::ShardedPipeline> sli_pipeline_;
  std::chrono::nanoseconds tick_interval_{};
  std::unique_ptr<ingest::Receivers> sli_receivers_;
};

// One outstanding Export call.
struct GrpcCall {
  grpc::ClientContext context;
  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  grpc::Status status;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
};

// The SLI pipeline a benchmark feeds: the client ticks it every `tick_interval` and waits while
// it is more than kMaxBacklogSpans behind what it accepted, so the shards' CPU for what was sent
// is spent (and counted) within the measurement. pipeline == nullptr: no pacing.
struct SliFeed {
  pipeline::ShardedPipeline* pipeline = nullptr;
  std::chrono::nanoseconds tick_interval{};
  slo::Evaluator* evaluator = nullptr;  // evaluated at every tick
  // Spans `pipeline` accepted over the whole run, from every benchmark that feeds it.
  uint64_t* fed_spans = nullptr;
  std::chrono::steady_clock::time_point next_tick{};

  void Accepted(uint32_t spans) {
    if (fed_spans != nullptr) *fed_spans += spans;
  }
  // Ticks when due and waits (no CPU, 200 us at a time) while the pipeline lags too far
  // behind; returns how many waits that took.
  uint64_t Pace(const Clock& clock) {
    if (pipeline == nullptr) return 0;
    if (const auto now = clock.SteadyNow(); now >= next_tick) {
      pipeline->Tick();
      if (evaluator != nullptr) evaluator->Evaluate(clock.Now());
      next_tick = now + tick_interval;
    }
    uint64_t waits = 0;
    while (*fed_spans > pipeline->spans_processed() + kMaxBacklogSpans) {
      clock.SleepUntil(clock.SteadyNow() + std::chrono::microseconds(200));
      ++waits;
    }
    return waits;
  }
};

// Where a gRPC benchmark sends, and what. Owned by main's thread, used by the benchmark thread.
struct GrpcTarget {
  std::string address;
  MeshRequests* mesh = nullptr;  // fresh mesh requests; nullptr: the fixed RequestShape{} one
  SliFeed sli;
};

void GrpcExport(benchmark::State& state, const Environment& env, GrpcTarget& target) {
  auto channel = grpc::CreateChannel(target.address, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  const uint32_t spans = target.mesh ? target.mesh->spans() : env.shape().spans();
  std::vector<std::unique_ptr<GrpcCall>> calls(kInFlight);
  auto start = [&](intptr_t slot) {
    calls[slot] = std::make_unique<GrpcCall>();
    GrpcCall& call = *calls[slot];
    call.request = target.mesh ? target.mesh->Next() : env.grpc_request();
    call.reader = stub.PrepareUnaryCall(&call.context, kExportMethod, call.request, &cq);
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
    } else {
      target.sli.Accepted(spans);
    }
    return slot;
  };
  uint64_t waits = 0;

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
    waits += target.sli.Pace(env.clock());
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
  if (target.sli.pipeline != nullptr) {
    state.counters["backlog_waits"] =
        benchmark::Counter(static_cast<double>(waits), benchmark::Counter::kAvgIterations);
  }
  SetSpanCounters(state, spans, target.mesh ? target.mesh->bytes() : env.request().size());
}

// Where an HTTP benchmark sends, and what. Owned by main's thread, used by the benchmark thread.
struct HttpTarget {
  std::string address;
  MeshRequests* mesh = nullptr;  // fresh mesh requests; nullptr: the fixed RequestShape{} one
  SliFeed sli;
};

void HttpExport(benchmark::State& state, const Environment& env, HttpTarget& target) {
  std::vector<std::unique_ptr<BlockingHttpClient>> connections;
  for (int i = 0; i < kInFlight; ++i) {
    auto connection = std::make_unique<BlockingHttpClient>();
    if (absl::Status status = connection->Connect(target.address); !status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      return;
    }
    connections.push_back(std::move(connection));
  }
  const uint32_t spans = target.mesh ? target.mesh->spans() : env.shape().spans();
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
    } else {
      target.sli.Accepted(spans);
    }
  };
  std::string request;
  auto send = [&](BlockingHttpClient& connection) {
    if (target.mesh != nullptr) target.mesh->NextHttp(request);
    const std::string& bytes = target.mesh != nullptr ? request : env.http_request();
    if (absl::Status status = connection.Send(bytes); !status.ok()) error = status.ToString();
  };
  uint64_t waits = 0;
  for (auto& connection : connections) send(*connection);
  size_t next = 0;
  for (auto _ : state) {
    BlockingHttpClient& connection = *connections[next];
    next = (next + 1) % connections.size();
    answer(connection);
    if (!error.empty()) break;
    waits += target.sli.Pace(env.clock());
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
  if (target.sli.pipeline != nullptr) {
    state.counters["backlog_waits"] =
        benchmark::Counter(static_cast<double>(waits), benchmark::Counter::kAvgIterations);
  }
  SetSpanCounters(state, spans, target.mesh ? target.mesh->bytes() : env.request().size());
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
      "request: %u spans, %zu protobuf bytes (mesh requests: %u spans, %zu bytes on average); %d "
      "requests in flight; rates are spans per CPU-second of the whole process (client + servers "
      "+ shard threads)\n",
      env.shape().spans(), env.request().size(), env.mesh().spans(), env.mesh().bytes(), kInFlight);
  // Registered as lambdas: RegisterBenchmark would copy extra arguments. One second per
  // repetition (not the default 0.5 s): transport figures are noisier than decode ones.
  Environment* e = &env;
  uint64_t sli_fed_spans = 0;  // by e2e/grpc_mesh/sli and e2e/http_mesh/sli
  std::vector<std::unique_ptr<GrpcTarget>> targets;
  auto grpc_case = [&](const char* name, GrpcTarget target) {
    GrpcTarget* t = targets.emplace_back(std::make_unique<GrpcTarget>(std::move(target))).get();
    benchmark::RegisterBenchmark(name,
                                 [e, t](benchmark::State& state) { GrpcExport(state, *e, *t); })
        ->MeasureProcessCPUTime()
        ->MinTime(1.0);
  };
  std::vector<std::unique_ptr<HttpTarget>> http_targets;
  auto http_case = [&](const char* name, HttpTarget target) {
    HttpTarget* t =
        http_targets.emplace_back(std::make_unique<HttpTarget>(std::move(target))).get();
    benchmark::RegisterBenchmark(name,
                                 [e, t](benchmark::State& state) { HttpExport(state, *e, *t); })
        ->MeasureProcessCPUTime()
        ->MinTime(1.0);
  };
  grpc_case("e2e/grpc/traceslo_receiver", {.address = env.grpc_address(true)});
  grpc_case("e2e/grpc/null_receiver", {.address = env.grpc_address(false)});
  http_case("e2e/http_protobuf/traceslo_receiver", {.address = env.http_address(true)});
  http_case("e2e/http_protobuf/null_receiver", {.address = env.http_address(false)});
  grpc_case("e2e/grpc_mesh/sli", {.address = env.sli_grpc_address(),
                                  .mesh = &env.mesh(),
                                  .sli = {.pipeline = &env.sli_pipeline(),
                                          .tick_interval = env.tick_interval(),
                                          .evaluator = &env.evaluator(),
                                          .fed_spans = &sli_fed_spans}});
  grpc_case("e2e/grpc_mesh/traceslo_receiver",
            {.address = env.grpc_address(true), .mesh = &env.mesh()});
  grpc_case("e2e/grpc_mesh/null_receiver",
            {.address = env.grpc_address(false), .mesh = &env.mesh()});
  http_case("e2e/http_mesh/sli", {.address = env.sli_http_address(),
                                  .mesh = &env.mesh(),
                                  .sli = {.pipeline = &env.sli_pipeline(),
                                          .tick_interval = env.tick_interval(),
                                          .evaluator = &env.evaluator(),
                                          .fed_spans = &sli_fed_spans}});
  http_case("e2e/http_mesh/traceslo_receiver",
            {.address = env.http_address(true), .mesh = &env.mesh()});
  http_case("e2e/http_mesh/null_receiver",
            {.address = env.http_address(false), .mesh = &env.mesh()});

  const std::vector<Comparison> comparisons = {
      {"e2e/grpc/traceslo_receiver", "e2e/grpc/null_receiver",
       "share of the null receiver's spans per CPU-second kept by decode + enqueue", true},
      {"e2e/http_protobuf/traceslo_receiver", "e2e/http_protobuf/null_receiver",
       "share of the null receiver's spans per CPU-second kept by decode + enqueue", true},
      {"e2e/grpc_mesh/sli", "e2e/grpc_mesh/null_receiver",
       "share of the null receiver's spans per CPU-second kept by decode + enqueue + SLI engine",
       true},
      {"e2e/grpc_mesh/sli", "e2e/grpc_mesh/traceslo_receiver",
       "share kept by the SLI engine (trace assembly on) over counting spans", true},
      {"e2e/http_mesh/sli", "e2e/http_mesh/null_receiver",
       "share of the null receiver's spans per CPU-second kept by decode + enqueue + SLI engine",
       true},
      {"e2e/http_mesh/sli", "e2e/http_mesh/traceslo_receiver",
       "share kept by the SLI engine (trace assembly on) over counting spans", true},
  };
  const std::vector<Goal> goals = {
      {"e2e/grpc_mesh/sli", 400e3,
       ">= 400 k spans per CPU-second end to end with everything on (OTLP/gRPC, client included)"},
      {"e2e/http_mesh/sli", 400e3,
       ">= 400 k spans per CPU-second end to end with everything on (OTLP/HTTP, client included)"},
  };
  const uint64_t processed_before = env.spans_processed();
  int status = RunBenchmarksAndCompare(argc, argv, comparisons, goals);
  env.Shutdown();
  std::printf("pipeline processed %llu spans from the real receivers\n",
              static_cast<unsigned long long>(env.spans_processed() - processed_before));
  const traceslo::pipeline::SliStore::GlobalTotals totals = env.sli_store().Totals();
  uint64_t requests = 0;
  for (const auto& series : env.sli_store().AllSeriesTotals()) requests += series.requests;
  uint64_t traces = 0;
  for (const auto& service : env.sli_store().AllServiceTotals()) traces += service.traces;
  std::printf(
      "SLI engine: %llu spans processed, %llu counted as requests (entry spans), %llu traces "
      "per service touched, %llu traces completed early at the live-trace cap, %llu late and "
      "%llu clock-skewed spans\n",
      static_cast<unsigned long long>(env.sli_pipeline().spans_processed()),
      static_cast<unsigned long long>(requests), static_cast<unsigned long long>(traces),
      static_cast<unsigned long long>(totals.evicted_traces),
      static_cast<unsigned long long>(totals.late_spans),
      static_cast<unsigned long long>(totals.clock_skew_spans));
  // The evaluator saw the traffic: every SLO's shortest window holds events.
  const std::vector<traceslo::slo::SloStatus> slos = env.evaluator().Slos();
  size_t with_events = 0;
  for (const traceslo::slo::SloStatus& slo : slos) {
    if (!slo.windows.empty() && slo.windows.front().events.total > 0) ++with_events;
  }
  std::printf("SLO evaluation: %zu SLOs, %zu with events in their shortest window\n", slos.size(),
              with_events);
  if (with_events == 0 && env.sli_pipeline().spans_processed() > 0) {
    std::fprintf(stderr, "ERROR: the evaluator saw no events\n");
    return 1;
  }
  return status;
}
