// Decode and decode + enqueue cost per span, each next to a baseline measured in the same run:
//   decode/proto/*   DecodeOtlpProto (wire scan) vs libprotobuf parsing the same bytes into the
//                    generated ExportTraceServiceRequest (what materialising messages costs)
//   decode/json/*    DecodeOtlpJson vs simdjson's raw DOM parse of the same document (a floor)
//   enqueue/proto/*  DecodeOtlpProto + ShardedPipeline::TryEnqueue (2 shards, CountingProcessor)
//                    vs the same decode into a sink that discards; spans per CPU-second of the
//                    whole process, so the shard threads' CPU counts
// One iteration = one request of RequestShape{} (512 spans, 4 resources).
#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "google/protobuf/arena.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "prometheus/registry.h"
#include "services/ingest/otlp_decode.h"
#include "tests/bench/bench_report.h"
#include "tests/bench/otlp_request.h"
#include "traceslo/pipeline/sharded_pipeline.h"

namespace traceslo::bench {
namespace {

namespace collector = opentelemetry::proto::collector::trace::v1;

struct Requests {
  RequestShape shape;
  std::string proto;
  std::string json;
};

// Decodes once outside the timer and checks every span is accepted, so a decoder that refuses
// the request cannot look fast.
bool CheckDecodes(benchmark::State& state, const Requests& requests, bool json) {
  SpanBatch batch;
  ingest::DecodeResult result;
  absl::Status status = json ? ingest::DecodeOtlpJson(requests.json, {}, batch, result)
                             : ingest::DecodeOtlpProto(requests.proto, {}, batch, result);
  if (!status.ok() || result.accepted != requests.shape.spans() || result.TotalRejected() != 0) {
    state.SkipWithError(("request not fully decoded: " + status.ToString() + " accepted " +
                         std::to_string(result.accepted))
                            .c_str());
    return false;
  }
  return true;
}

void DecodeProto(benchmark::State& state, const Requests& requests) {
  if (!CheckDecodes(state, requests, false)) return;
  SpanBatch batch;
  ingest::DecodeResult result;
  const ingest::DecodeLimits limits;
  for (auto _ : state) {
    batch.Clear();
    result = {};
    absl::Status status = ingest::DecodeOtlpProto(requests.proto, limits, batch, result);
    benchmark::DoNotOptimize(status);
    benchmark::DoNotOptimize(batch.spans.data());
  }
  SetSpanCounters(state, requests.shape.spans(), requests.proto.size());
}

// A fresh message per request, as a generated (non-raw) gRPC service deserialises it.
void ProtobufParseFresh(benchmark::State& state, const Requests& requests) {
  for (auto _ : state) {
    collector::ExportTraceServiceRequest request;
    if (!request.ParseFromString(requests.proto)) {
      state.SkipWithError("protobuf refused the request");
      break;
    }
    benchmark::DoNotOptimize(request);
  }
  SetSpanCounters(state, requests.shape.spans(), requests.proto.size());
}

// The same on an arena: libprotobuf's fastest way to materialise a request.
void ProtobufParseArena(benchmark::State& state, const Requests& requests) {
  google::protobuf::ArenaOptions options;
  options.start_block_size = 1 << 20;
  options.max_block_size = 4 << 20;
  for (auto _ : state) {
    google::protobuf::Arena arena(options);
    auto* request =
        google::protobuf::Arena::CreateMessage<collector::ExportTraceServiceRequest>(&arena);
    if (!request->ParseFromString(requests.proto)) {
      state.SkipWithError("protobuf refused the request");
      break;
    }
    benchmark::DoNotOptimize(request);
  }
  SetSpanCounters(state, requests.shape.spans(), requests.proto.size());
}

void DecodeJson(benchmark::State& state, const Requests& requests) {
  if (!CheckDecodes(state, requests, true)) return;
  SpanBatch batch;
  ingest::DecodeResult result;
  const ingest::DecodeLimits limits;
  for (auto _ : state) {
    batch.Clear();
    result = {};
    absl::Status status = ingest::DecodeOtlpJson(requests.json, limits, batch, result);
    benchmark::DoNotOptimize(status);
    benchmark::DoNotOptimize(batch.spans.data());
  }
  SetSpanCounters(state, requests.shape.spans(), requests.json.size());
}

// simdjson at its best: a reused parser and an already padded document. The floor for any
// decoder built on its DOM.
void SimdjsonParseReused(benchmark::State& state, const Requests& requests) {
  simdjson::dom::parser parser;
  const simdjson::padded_string padded(requests.json);
  for (auto _ : state) {
    simdjson::dom::element root;
    if (parser.parse(padded).get(root) != simdjson::SUCCESS) {
      state.SkipWithError("simdjson refused the document");
      break;
    }
    benchmark::DoNotOptimize(root);
  }
  SetSpanCounters(state, requests.shape.spans(), requests.json.size());
}

// simdjson with a new parser allocated for the body and a padded copy of the body per request:
// what DecodeOtlpJson avoids by keeping a parser per thread. Shows what that reuse is worth.
void SimdjsonParseFreshParser(benchmark::State& state, const Requests& requests) {
  for (auto _ : state) {
    simdjson::dom::parser parser;
    if (parser.allocate(requests.json.size(), 64) != simdjson::SUCCESS) {
      state.SkipWithError("simdjson allocate failed");
      break;
    }
    const simdjson::padded_string padded(requests.json);
    simdjson::dom::element root;
    if (parser.parse(padded).get(root) != simdjson::SUCCESS) {
      state.SkipWithError("simdjson refused the document");
      break;
    }
    benchmark::DoNotOptimize(root);
  }
  SetSpanCounters(state, requests.shape.spans(), requests.json.size());
}

// Discards every batch (the floor for decode + enqueue).
class NullSink final : public pipeline::SpanSink {
 public:
  absl::Status TryEnqueue(SpanBatch& batch) override {
    batch.Clear();
    return absl::OkStatus();
  }
};

// Discards too, but takes the string arena away as ShardedPipeline does (it moves
// `batch.strings` into the shard batches), so the next decode starts from an empty arena.
class ArenaTakingNullSink final : public pipeline::SpanSink {
 public:
  absl::Status TryEnqueue(SpanBatch& batch) override {
    auto strings = std::make_shared<const std::string>(std::move(batch.strings));
    benchmark::DoNotOptimize(strings);
    batch.Clear();
    return absl::OkStatus();
  }
};

// Decode + TryEnqueue through `sink`; on a full queue, yields and retries (counted).
// Returns false on any other refusal.
bool DecodeAndEnqueue(benchmark::State& state, const Requests& requests, pipeline::SpanSink& sink,
                      SpanBatch& batch, uint64_t& retries) {
  batch.Clear();
  ingest::DecodeResult result;
  if (!ingest::DecodeOtlpProto(requests.proto, {}, batch, result).ok()) {
    state.SkipWithError("decode failed");
    return false;
  }
  while (true) {
    absl::Status status = sink.TryEnqueue(batch);
    if (status.ok()) return true;
    if (!absl::IsResourceExhausted(status)) {
      state.SkipWithError(("enqueue failed: " + status.ToString()).c_str());
      return false;
    }
    ++retries;
    std::this_thread::yield();
  }
}

void EnqueueNullSink(benchmark::State& state, const Requests& requests, bool take_arena) {
  if (!CheckDecodes(state, requests, false)) return;
  NullSink null_sink;
  ArenaTakingNullSink arena_sink;
  pipeline::SpanSink& sink = take_arena ? static_cast<pipeline::SpanSink&>(arena_sink) : null_sink;
  SpanBatch batch;
  uint64_t retries = 0;
  for (auto _ : state) {
    if (!DecodeAndEnqueue(state, requests, sink, batch, retries)) break;
  }
  SetSpanCounters(state, requests.shape.spans(), requests.proto.size());
}

// The pipeline is created before the timer starts and drained (Shutdown joins the shard
// threads once their queues are empty) inside the last iteration, so every span enqueued is
// also processed within the measured process CPU time.
void EnqueueShardedPipeline(benchmark::State& state, const Requests& requests) {
  if (!CheckDecodes(state, requests, false)) return;
  prometheus::Registry registry;
  std::vector<std::unique_ptr<pipeline::ShardProcessor>> processors;
  std::vector<pipeline::CountingProcessor*> counters;
  for (int i = 0; i < 2; ++i) {
    auto processor = std::make_unique<pipeline::CountingProcessor>();
    counters.push_back(processor.get());
    processors.push_back(std::move(processor));
  }
  auto created = pipeline::ShardedPipeline::Create(
      pipeline::PipelineOptions{.shards = 2, .queue_capacity_spans = 1u << 20},
      std::move(processors), registry);
  if (!created.ok()) {
    state.SkipWithError(created.status().ToString().c_str());
    return;
  }
  std::unique_ptr<pipeline::ShardedPipeline> sharded = std::move(*created);
  SpanBatch batch;
  uint64_t retries = 0;
  int64_t done = 0;
  for (auto _ : state) {
    if (!DecodeAndEnqueue(state, requests, *sharded, batch, retries)) break;
    if (++done == static_cast<int64_t>(state.max_iterations)) {
      sharded->Shutdown(std::chrono::steady_clock::time_point::max());
    }
  }
  sharded->Shutdown(std::chrono::steady_clock::time_point::max());
  const uint64_t processed = counters[0]->spans() + counters[1]->spans();
  if (processed != static_cast<uint64_t>(done) * requests.shape.spans()) {
    state.SkipWithError("pipeline lost spans");
    return;
  }
  state.counters["queue_full_retries"] = static_cast<double>(retries);
  SetSpanCounters(state, requests.shape.spans(), requests.proto.size());
}

}  // namespace
}  // namespace traceslo::bench

int main(int argc, char** argv) {
  using namespace traceslo::bench;
  Requests requests;
  requests.proto = MakeOtlpProtoRequest(requests.shape);
  requests.json = OtlpProtoToJson(requests.proto);
  if (requests.json.empty()) {
    std::fprintf(stderr, "cannot build the JSON request\n");
    return 1;
  }
  std::printf("request: %u spans over %u resources; protobuf %zu bytes, JSON %zu bytes\n",
              requests.shape.spans(), requests.shape.resources, requests.proto.size(),
              requests.json.size());

  // Lambdas: RegisterBenchmark would copy extra arguments (the requests) per benchmark.
  const Requests& r = requests;
  auto with = [&r](auto fn, auto... args) {
    return [fn, &r, args...](benchmark::State& state) { fn(state, r, args...); };
  };
  benchmark::RegisterBenchmark("decode/proto/traceslo_wire_scan", with(DecodeProto));
  benchmark::RegisterBenchmark("decode/proto/protobuf_parse_fresh", with(ProtobufParseFresh));
  benchmark::RegisterBenchmark("decode/proto/protobuf_parse_arena", with(ProtobufParseArena));
  benchmark::RegisterBenchmark("decode/json/traceslo_decode", with(DecodeJson));
  benchmark::RegisterBenchmark("decode/json/simdjson_parse_reused", with(SimdjsonParseReused));
  benchmark::RegisterBenchmark("decode/json/simdjson_parse_fresh_parser",
                               with(SimdjsonParseFreshParser));
  benchmark::RegisterBenchmark("enqueue/proto/sharded_pipeline_2_shards",
                               with(EnqueueShardedPipeline))
      ->MeasureProcessCPUTime();
  benchmark::RegisterBenchmark("enqueue/proto/null_sink", with(EnqueueNullSink, false))
      ->MeasureProcessCPUTime();
  benchmark::RegisterBenchmark("enqueue/proto/null_sink_taking_arena", with(EnqueueNullSink, true))
      ->MeasureProcessCPUTime();

  const std::vector<Comparison> comparisons = {
      {"decode/proto/traceslo_wire_scan", "decode/proto/protobuf_parse_fresh",
       "speed-up of the wire scan over materialising a fresh ExportTraceServiceRequest"},
      {"decode/proto/traceslo_wire_scan", "decode/proto/protobuf_parse_arena",
       "speed-up over materialising it on a protobuf arena"},
      {"decode/json/traceslo_decode", "decode/json/simdjson_parse_reused",
       "share of simdjson's raw DOM parse speed (the floor) that full decoding keeps"},
      {"decode/json/simdjson_parse_fresh_parser", "decode/json/simdjson_parse_reused",
       "rate kept with a new parser + padded copy per request (DecodeOtlpJson reuses one)"},
      {"enqueue/proto/sharded_pipeline_2_shards", "enqueue/proto/null_sink",
       "share of the null-sink rate kept with 2 shards; per process CPU-second"},
      {"enqueue/proto/null_sink_taking_arena", "enqueue/proto/null_sink",
       "cost of regrowing the string arena each request (the pipeline takes it)"},
  };
  const std::vector<Goal> goals = {
      {"decode/proto/traceslo_wire_scan", 1e6, ">= 1 M spans/s per core decoding OTLP/protobuf"},
      {"decode/json/traceslo_decode", 1e6, ">= 1 M spans/s per core decoding OTLP/JSON"},
      {"enqueue/proto/sharded_pipeline_2_shards", 1e6,
       ">= 1 M spans per CPU-second decoding + enqueueing OTLP/protobuf"},
  };
  return RunBenchmarksAndCompare(argc, argv, comparisons, goals);
}
