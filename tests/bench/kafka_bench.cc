// Kafka mode against single-node mode on one corpus (docs/kafka.md, "Measure it"):
//   kafka/stage1_consume          a Stage1Consumer reading the whole pre-produced corpus from
//                                 librdkafka's in-process mock cluster and producing its
//                                 traceslo_deltas records (a new group and deltas topic per run).
//                                 Timed from the complete assignment (seen in Stats()) until every
//                                 record is processed and every epoch delivered; the start-up
//                                 before it (Start(), joining the group) is measured apart. The
//                                 Kafka summary's rate is per CPU-second of stage 1's own threads
//                                 (per-thread run time, /proc/self/task/*/schedstat): the consumer
//                                 thread and the threads of its librdkafka consumer and producer,
//                                 i.e. every thread started from Create() on. The mock brokers'
//                                 thread, the cluster's own client and the benchmark thread
//                                 polling Stats() were there before and are shown apart; Google
//                                 Benchmark's table and the first summary count the whole process
//                                 (MeasureProcessCPUTime), those threads included
//   kafka/stage1_offline          the same records through one Stage1Partition per partition in
//                                 memory (no Kafka): stage 1's own work
//   kafka/single_node_same_corpus **baseline**: the same spans as the Collector received them
//                                 (the unsplit requests), decoded by DecodeOtlpProto and fed to
//                                 one SliShardProcessor publishing to an SliStore, ticked every
//                                 simulated second: single-node mode's per-core work without
//                                 network
//   kafka/single_node_split_records  the same engine fed the otlp_spans records one by one: what
//                                 splitting per trace costs before Kafka is involved
//   kafka/stage2_apply/per_epoch  Stage2Partition::Apply of the traceslo_deltas records stage 1
//                                 produced for the corpus (collected by the offline run), one
//                                 call per epoch's records, as a consumer that keeps up reads
//                                 them; into an SliStore, fresh SQLite files every iteration
//   kafka/stage2_apply/batch_1000 the same in calls of up to 1000 records (a consumer catching up)
// Corpus: MakeMeshOtlpProtoRequest traffic (traces of 8 spans over 2-3 of 20 services, 10
// operations each, 2 % error spans with exception events, log-normal durations) at
// kTracesPerSecond, split as the Collector's Kafka exporter with partition_traces_by_id does: one
// record per (resource, scope, trace id), keyed by the 32-hex trace id, placed by FNV-1a, the
// request's send time as its timestamp. Each partition ends with an empty request kTailMs after
// the last record, so every trace completes and every epoch is sealed; the single-node runs tick
// on to the same time. Each otlp_spans partition stays under kMaxPartitionBytes (the mock keeps
// at most 5 MiB per partition and drops older data silently: checked by the watermarks).
#include <benchmark/benchmark.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "services/ingest/otlp_decode.h"
#include "tests/bench/bench_report.h"
#include "tests/bench/otlp_request.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/log.h"
#include "traceslo/common/malloc_tuning.h"
#include "traceslo/common/manual_clock.h"
#include "traceslo/kafka/delta_batch.h"
#include "traceslo/kafka/partitioning.h"
#include "traceslo/kafka/stage1.h"
#include "traceslo/kafka/stage1_consumer.h"
#include "traceslo/kafka/stage2.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_processor.h"
#include "traceslo/pipeline/sli_store.h"

namespace traceslo::bench {
namespace {

namespace otlp = ::opentelemetry::proto;
using PbRequest = otlp::collector::trace::v1::ExportTraceServiceRequest;
using std::chrono::milliseconds;

constexpr int32_t kSpansPartitions = 8;
constexpr int32_t kDeltasPartitions = 2;
constexpr size_t kMaxPartitionBytes = 3'500'000;
// Bytes a record takes in the mock's log beyond key and value (record and batch headers), for
// the partition budget.
constexpr size_t kRecordOverhead = 64;
constexpr uint32_t kTracesPerSecond = 1'600;  // cluster-wide
constexpr int64_t kNanosPerMs = 1'000'000;
constexpr int64_t kNanosPerSecond = 1'000'000'000;
// The first request's send time: a whole second after 2023-11-14 22:13:20 UTC.
constexpr int64_t kBaseNanos = 1'700'000'001'000'000'000;
// After the last record: the idle timeout (15 s) and two epochs, so every trace completes.
constexpr int64_t kTailMs = 17'000;
constexpr milliseconds kEpoch{1'000};
constexpr size_t kCatchUpBatch = 1'000;
constexpr char kSpansTopic[] = "otlp_spans";
// Passes over the corpus per repetition: a consumer run takes ~0.1-0.3 CPU-s and ~3.5 s of wall
// time, 3 s of it joining the group on the mock; an in-memory pass ~40 ms; a stage-2 pass (fresh
// SQLite files) ~10-40 ms.
constexpr int kConsumeRuns = 3;
constexpr int kInMemoryRuns = 6;
constexpr int kStage2Runs = 10;

// ---- The corpus ----------------------------------------------------------------------------

struct Request {
  std::string bytes;  // an ExportTraceServiceRequest as the Collector received it
  int64_t sent_ms = 0;
};

struct Record {
  int32_t partition = 0;
  std::string key;  // empty: an end-of-stream record produced to `partition` explicitly
  int64_t timestamp_ms = 0;
  std::string value;
};

struct Corpus {
  std::vector<Request> requests;
  std::vector<Record> records;  // in production order; the last kSpansPartitions are the tails
  uint64_t spans = 0;
  uint64_t traces = 0;
  size_t request_bytes = 0;
  size_t record_bytes = 0;  // values of the keyed records
  std::array<size_t, kSpansPartitions> partition_bytes{};
  std::array<int64_t, kSpansPartitions> partition_records{};
  int64_t first_ms = 0;
  int64_t last_ms = 0;  // the last keyed record
};

// One record per (resource, scope, trace id) of `request`, in order of first appearance.
std::vector<std::pair<TraceId, std::string>> SplitByTrace(const PbRequest& request) {
  std::vector<std::pair<TraceId, std::string>> out;
  for (const auto& resource : request.resource_spans()) {
    for (const auto& scope : resource.scope_spans()) {
      std::vector<std::pair<std::string, PbRequest>> groups;
      for (const auto& span : scope.spans()) {
        auto it = std::find_if(groups.begin(), groups.end(),
                               [&](const auto& g) { return g.first == span.trace_id(); });
        if (it == groups.end()) {
          PbRequest part;
          auto* r = part.add_resource_spans();
          *r->mutable_resource() = resource.resource();
          r->set_schema_url(resource.schema_url());
          auto* s = r->add_scope_spans();
          *s->mutable_scope() = scope.scope();
          s->set_schema_url(scope.schema_url());
          groups.emplace_back(span.trace_id(), std::move(part));
          it = std::prev(groups.end());
        }
        *it->second.mutable_resource_spans(0)->mutable_scope_spans(0)->add_spans() = span;
      }
      for (auto& [id, part] : groups) {
        TraceId trace{};
        std::memcpy(trace.data(), id.data(), std::min(id.size(), trace.size()));
        out.emplace_back(trace, part.SerializeAsString());
      }
    }
  }
  return out;
}

// Mesh requests every 64 / kTracesPerSecond seconds until one more would take a partition over
// kMaxPartitionBytes; then the end-of-stream records.
Corpus BuildCorpus() {
  Corpus corpus;
  const MeshShape shape_template;
  const int64_t interval_nanos =
      kNanosPerSecond * static_cast<int64_t>(shape_template.traces) / kTracesPerSecond;
  for (uint64_t i = 0;; ++i) {
    MeshShape shape;
    shape.seed = 5'000 + i;
    shape.sent_unix_nano =
        static_cast<uint64_t>(kBaseNanos + static_cast<int64_t>(i) * interval_nanos);
    shape.window_nanos = static_cast<uint64_t>(interval_nanos);
    Request request{.bytes = MakeMeshOtlpProtoRequest(shape),
                    .sent_ms = static_cast<int64_t>(shape.sent_unix_nano) / kNanosPerMs};
    PbRequest parsed;
    if (!parsed.ParseFromString(request.bytes)) std::abort();
    std::vector<Record> records;
    std::array<size_t, kSpansPartitions> bytes = corpus.partition_bytes;
    bool fits = true;
    for (auto& [trace, value] : SplitByTrace(parsed)) {
      Record record;
      record.key = kafka::TraceRecordKey(trace);
      record.partition = kafka::Fnv1aPartition(record.key, kSpansPartitions);
      record.timestamp_ms = request.sent_ms;
      record.value = std::move(value);
      size_t& at = bytes[static_cast<size_t>(record.partition)];
      at += record.key.size() + record.value.size() + kRecordOverhead;
      fits = fits && at <= kMaxPartitionBytes;
      records.push_back(std::move(record));
    }
    if (!fits) break;
    corpus.partition_bytes = bytes;
    for (Record& record : records) {
      ++corpus.partition_records[static_cast<size_t>(record.partition)];
      corpus.record_bytes += record.value.size();
      corpus.records.push_back(std::move(record));
    }
    if (corpus.requests.empty()) corpus.first_ms = request.sent_ms;
    corpus.last_ms = request.sent_ms;
    corpus.spans += shape.spans();
    corpus.traces += shape.traces;
    corpus.request_bytes += request.bytes.size();
    corpus.requests.push_back(std::move(request));
  }
  for (int32_t p = 0; p < kSpansPartitions; ++p) {
    corpus.records.push_back(
        {.partition = p, .key = "", .timestamp_ms = corpus.last_ms + kTailMs, .value = ""});
    ++corpus.partition_records[static_cast<size_t>(p)];
  }
  return corpus;
}

pipeline::SliOptions Sli() { return pipeline::SliOptions{}; }  // single-node's defaults

uint64_t ConfigHash() { return kafka::DeltaConfigHash(Sli(), kEpoch); }

// ---- Per-thread CPU (to tell the mock broker's share) ------------------------------------

// Run time of every thread of this process, from /proc/self/task/<tid>/schedstat (ns).
struct ThreadTime {
  std::string name;
  uint64_t run_nanos = 0;
};
std::map<int, ThreadTime> SnapshotThreads() {
  std::map<int, ThreadTime> out;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", error)) {
    const std::string tid = entry.path().filename().string();
    ThreadTime t;
    std::ifstream comm(entry.path() / "comm");
    std::getline(comm, t.name);
    std::ifstream schedstat(entry.path() / "schedstat");
    schedstat >> t.run_nanos;
    out[std::atoi(tid.c_str())] = t;
  }
  return out;
}

// CPU seconds between two snapshots by kind of thread. Stage 1's threads are those that did not
// exist yet before its consumer was created (`earlier`): the mock cluster's thread and client,
// and the benchmark thread, are older.
struct CpuSplit {
  double mock = 0;        // rdk:mock, the in-process brokers
  double cluster = 0;     // the mock cluster's own client (its rdk:* threads), idle while timed
  double librdkafka = 0;  // stage 1's consumer and producer clients (rdk:* threads)
  double stage1 = 0;      // stage 1's consumer thread
  double bench_main = 0;  // the benchmark thread (polling Stats())
  CpuSplit& operator+=(const CpuSplit& o) {
    mock += o.mock;
    cluster += o.cluster;
    librdkafka += o.librdkafka;
    stage1 += o.stage1;
    bench_main += o.bench_main;
    return *this;
  }
  double stage1_total() const { return librdkafka + stage1; }
  double total() const { return mock + cluster + librdkafka + stage1 + bench_main; }
};
CpuSplit Difference(const std::map<int, ThreadTime>& earlier,
                    const std::map<int, ThreadTime>& before,
                    const std::map<int, ThreadTime>& after) {
  CpuSplit split;
  const int main_tid = static_cast<int>(::getpid());
  for (const auto& [tid, t] : after) {
    auto it = before.find(tid);
    const uint64_t base = it == before.end() ? 0 : it->second.run_nanos;
    const double seconds = static_cast<double>(t.run_nanos - std::min(base, t.run_nanos)) * 1e-9;
    const bool stage1 = !earlier.contains(tid);
    if (t.name == "rdk:mock") {
      split.mock += seconds;
    } else if (tid == main_tid) {
      split.bench_main += seconds;
    } else if (!stage1) {
      split.cluster += seconds;
    } else if (t.name.starts_with("rdk:")) {
      split.librdkafka += seconds;
    } else {
      split.stage1 += seconds;
    }
  }
  return split;
}

// ---- Figures for the summary (medians over repetitions) ----------------------------------

// CPU seconds of the whole process (getrusage RUSAGE_SELF, user + system), summed over the
// timed stretches of a benchmark, next to Google Benchmark's own process-CPU timer.
double ProcessCpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

class CpuMeter {
 public:
  void Start() { started_ = ProcessCpuSeconds(); }
  void Stop() { total_ += ProcessCpuSeconds() - started_; }
  double total() const { return total_; }

 private:
  double started_ = 0;
  double total_ = 0;
};

// ---- The mock cluster --------------------------------------------------------------------

using HandlePtr = std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)>;

HandlePtr NewClient(rd_kafka_type_t type, const std::map<std::string, std::string>& settings) {
  char error[512] = {0};
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof error) !=
        RD_KAFKA_CONF_OK) {
      std::fprintf(stderr, "librdkafka setting %s: %s\n", key.c_str(), error);
      std::abort();
    }
  }
  rd_kafka_t* handle = rd_kafka_new(type, conf, error, sizeof error);
  if (handle == nullptr) {
    std::fprintf(stderr, "librdkafka client: %s\n", error);
    std::abort();
  }
  return HandlePtr(handle, &rd_kafka_destroy);
}

// Three mock brokers in this process (one thread, "rdk:mock"), otlp_spans holding the corpus.
// Owned by the main thread.
class Cluster {
 public:
  Cluster() : owner_(NewClient(RD_KAFKA_PRODUCER, {{"test.mock.num.brokers", "3"}})) {
    mock_ = rd_kafka_handle_mock_cluster(owner_.get());
    bootstrap_ = rd_kafka_mock_cluster_bootstraps(mock_);
  }

  const std::string& bootstrap() const { return bootstrap_; }
  // A new number for each consumer's group and deltas topic.
  int NextRound() { return ++rounds_; }

  absl::Status CreateTopic(const std::string& name, int32_t partitions) {
    if (const rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mock_, name.c_str(), partitions, 3)) {
      return absl::InternalError("mock topic " + name + ": " + rd_kafka_err2str(err));
    }
    return absl::OkStatus();
  }

  // Produces the corpus as the Collector would (keyed records placed by librdkafka's fnv1a
  // partitioner, explicit timestamps, idempotent), then checks that every partition holds
  // exactly the records Fnv1aPartition put there, from offset 0 (nothing dropped by the mock).
  absl::Status Produce(const Corpus& corpus) {
    HandlePtr producer = NewClient(RD_KAFKA_PRODUCER, {{"bootstrap.servers", bootstrap_},
                                                       {"partitioner", "fnv1a"},
                                                       {"enable.idempotence", "true"},
                                                       {"linger.ms", "5"}});
    for (const Record& r : corpus.records) {
      const int32_t partition = r.key.empty() ? r.partition : RD_KAFKA_PARTITION_UA;
      for (;;) {
        const rd_kafka_resp_err_t err = rd_kafka_producev(
            producer.get(), RD_KAFKA_V_TOPIC(kSpansTopic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY(r.key.data(), r.key.size()),
            RD_KAFKA_V_VALUE(const_cast<char*>(r.value.data()), r.value.size()),
            RD_KAFKA_V_TIMESTAMP(r.timestamp_ms), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
          return absl::InternalError(std::string("produce: ") + rd_kafka_err2str(err));
        }
        rd_kafka_poll(producer.get(), 10);
      }
      rd_kafka_poll(producer.get(), 0);
    }
    if (const rd_kafka_resp_err_t err = rd_kafka_flush(producer.get(), 60'000)) {
      return absl::InternalError(std::string("flush: ") + rd_kafka_err2str(err));
    }
    for (int32_t p = 0; p < kSpansPartitions; ++p) {
      int64_t low = -1, high = -1;
      if (const rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
              producer.get(), kSpansTopic, p, &low, &high, 10'000)) {
        return absl::InternalError(std::string("watermarks: ") + rd_kafka_err2str(err));
      }
      if (low != 0 || high != corpus.partition_records[static_cast<size_t>(p)]) {
        return absl::InternalError(
            "otlp_spans partition " + std::to_string(p) + " holds [" + std::to_string(low) + ", " +
            std::to_string(high) + "), expected [0, " +
            std::to_string(corpus.partition_records[static_cast<size_t>(p)]) + ")");
      }
    }
    return absl::OkStatus();
  }

 private:
  HandlePtr owner_;
  rd_kafka_mock_cluster_t* mock_ = nullptr;
  std::string bootstrap_;
  int rounds_ = 0;
};

// ---- Stage 1 offline: what the consumer must publish, and the stage-2 input -----------------

// Acknowledges every epoch once the Process() call that sealed it returns (as a cluster that
// delivers at once); keeps the records when asked to.
class CollectingPublisher final : public kafka::EpochPublisher {
 public:
  explicit CollectingPublisher(bool keep) : keep_(keep) {}
  // traceslo::kafka::EpochPublisher
  void Publish(int64_t epoch, std::vector<std::string> records) override {
    unacked_.push_back(epoch);
    ++epochs_;
    for (std::string& record : records) {
      bytes_ += record.size();
      if (keep_) kept_.emplace_back(epoch, std::move(record));
    }
  }
  void AcknowledgeAll(kafka::Stage1Partition& stage) {
    for (int64_t epoch : unacked_) stage.Acknowledge(epoch);
    unacked_.clear();
  }
  uint64_t epochs() const { return epochs_; }
  uint64_t bytes() const { return bytes_; }
  // (epoch, record) in publication order; record i of an epoch is for deltas partition i.
  std::vector<std::pair<int64_t, std::string>>& kept() { return kept_; }

 private:
  const bool keep_;
  std::vector<int64_t> unacked_;
  uint64_t epochs_ = 0;
  uint64_t bytes_ = 0;
  std::vector<std::pair<int64_t, std::string>> kept_;
};

kafka::Stage1Options PartitionOptions(int32_t partition) {
  kafka::Stage1Options options;
  options.topic = kSpansTopic;
  options.partition = partition;
  options.dst_partitions = kDeltasPartitions;
  options.config_hash = ConfigHash();
  options.epoch_length = kEpoch;
  options.sli = Sli();
  return options;
}

struct OfflineResult {
  uint64_t spans = 0;
  uint64_t epochs = 0;
  uint64_t delta_bytes = 0;
  // The traceslo_deltas records per deltas partition, ordered by (epoch, source partition),
  // grouped by epoch: what each stage-2 partition reads.
  std::array<std::vector<std::vector<std::string>>, kDeltasPartitions> by_epoch;
};

// Every record of the corpus, in production order, through one Stage1Partition per partition.
OfflineResult RunStage1Offline(const Corpus& corpus, bool keep) {
  pipeline::SeriesRegistry registry(1'000, 100);
  std::vector<std::unique_ptr<CollectingPublisher>> publishers;
  std::vector<std::unique_ptr<kafka::Stage1Partition>> stages;
  for (int32_t p = 0; p < kSpansPartitions; ++p) {
    publishers.push_back(std::make_unique<CollectingPublisher>(keep));
    stages.push_back(std::make_unique<kafka::Stage1Partition>(
        PartitionOptions(p), registry, *publishers.back(), kafka::CommitPoint{}));
  }
  std::array<int64_t, kSpansPartitions> offsets{};
  for (const Record& r : corpus.records) {
    const auto p = static_cast<size_t>(r.partition);
    stages[p]->Process(offsets[p]++, r.timestamp_ms, r.value);
    publishers[p]->AcknowledgeAll(*stages[p]);
  }
  OfflineResult out;
  std::map<int64_t, std::array<std::vector<std::string>, kDeltasPartitions>> epochs;
  for (size_t p = 0; p < stages.size(); ++p) {
    out.spans += stages[p]->counters().spans;
    out.epochs += publishers[p]->epochs();
    out.delta_bytes += publishers[p]->bytes();
    if (!keep) continue;
    std::map<int64_t, size_t> index;  // the record's deltas partition within its epoch
    for (auto& [epoch, record] : publishers[p]->kept()) {
      const size_t dst = index[epoch]++;
      epochs[epoch][dst].push_back(std::move(record));
    }
  }
  for (auto& [epoch, per_dst] : epochs) {
    for (size_t d = 0; d < per_dst.size(); ++d) out.by_epoch[d].push_back(std::move(per_dst[d]));
  }
  return out;
}

// ---- The benchmarks ----------------------------------------------------------------------

// Single-node mode's shard: one SliShardProcessor on a ManualClock at the traffic's time,
// ticked at every whole second the clock passes (as the pipeline's ticker does), publishing to
// an SliStore. Owned by the benchmark thread.
class SingleNode {
 public:
  SingleNode()
      : clock_(std::chrono::system_clock::time_point(std::chrono::nanoseconds(kBaseNanos))),
        registry_(1'000, 100),
        store_(pipeline::SliStoreOptions{.shards = 1}),
        processor_(Sli(), clock_, registry_, store_),
        now_nanos_(kBaseNanos),
        next_tick_nanos_(kBaseNanos + kNanosPerSecond) {}

  // Moves the clock to `unix_ms`, ticking at each whole second on the way; decodes `bytes` and
  // processes its spans. Returns the spans accepted.
  uint64_t Feed(int64_t unix_ms, std::string_view bytes) {
    AdvanceTo(unix_ms * kNanosPerMs);
    SpanBatch batch;
    ingest::DecodeResult result;
    if (!ingest::DecodeOtlpProto(bytes, {}, batch, result).ok()) return 0;
    if (batch.spans.empty()) return 0;
    pipeline::ShardBatch shard_batch;
    shard_batch.strings = std::make_shared<const std::string>(std::move(batch.strings));
    shard_batch.spans = std::move(batch.spans);
    processor_.Process(shard_batch);
    return result.accepted;
  }

  void AdvanceTo(int64_t unix_nanos) {
    while (next_tick_nanos_ <= unix_nanos) {
      now_nanos_ = next_tick_nanos_;
      clock_.AdvanceTo(At(now_nanos_));
      processor_.OnTick();
      next_tick_nanos_ += kNanosPerSecond;
    }
    now_nanos_ = std::max(now_nanos_, unix_nanos);
    clock_.AdvanceTo(At(now_nanos_));
  }

  pipeline::SliStore::GlobalTotals Totals() const { return store_.Totals(); }
  size_t live_traces() const { return processor_.live_traces(); }

 private:
  static std::chrono::system_clock::time_point At(int64_t unix_nanos) {
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::nanoseconds(unix_nanos)));
  }

  ManualClock clock_;
  pipeline::SeriesRegistry registry_;
  pipeline::SliStore store_;
  pipeline::SliShardProcessor processor_;
  int64_t now_nanos_;
  int64_t next_tick_nanos_;
};

// Records spans per CPU-second (getrusage) of a benchmark run for the summary.
void RecordRate(Figures& figures, const std::string& name, double items, const CpuMeter& cpu) {
  if (cpu.total() > 0) figures.Record("rate " + name, items / cpu.total());
}

// The corpus through single-node mode's shard: the requests as the Collector received them, or
// (`split`) the otlp_spans records one by one.
void SingleNodeRun(benchmark::State& state, const Corpus& corpus, bool split, Figures& figures,
                   const std::string& name) {
  uint64_t spans = 0;
  CpuMeter cpu;
  for (auto _ : state) {
    state.PauseTiming();
    auto node = std::make_unique<SingleNode>();
    cpu.Start();
    state.ResumeTiming();
    spans = 0;
    if (split) {
      for (const Record& r : corpus.records) {
        if (!r.key.empty()) spans += node->Feed(r.timestamp_ms, r.value);
      }
    } else {
      for (const Request& r : corpus.requests) spans += node->Feed(r.sent_ms, r.bytes);
    }
    node->AdvanceTo((corpus.last_ms + kTailMs) * kNanosPerMs);
    state.PauseTiming();
    cpu.Stop();
    const pipeline::SliStore::GlobalTotals totals = node->Totals();
    if (spans != corpus.spans || node->live_traces() != 0) {
      state.SkipWithError("single node: not every span processed or trace completed");
      return;
    }
    // Every span arrives in time, once, with its trace: anything else measures another path.
    if (totals.late_spans != 0 || totals.clock_skew_spans != 0 || totals.truncated_spans != 0) {
      state.SkipWithError("single node: late, skewed or truncated spans");
      return;
    }
    node.reset();
    state.ResumeTiming();
  }
  SetSpanCounters(state, spans, split ? corpus.record_bytes : corpus.request_bytes);
  RecordRate(figures, name, static_cast<double>(spans * state.iterations()), cpu);
}

void Stage1Offline(benchmark::State& state, const Corpus& corpus, uint64_t expected_epochs,
                   Figures& figures, const std::string& name) {
  CpuMeter cpu;
  for (auto _ : state) {
    cpu.Start();
    const OfflineResult result = RunStage1Offline(corpus, /*keep=*/false);
    cpu.Stop();
    if (result.spans != corpus.spans || result.epochs != expected_epochs) {
      state.SkipWithError("stage 1 offline: spans or epochs differ from the first run");
      return;
    }
  }
  SetSpanCounters(state, corpus.spans, corpus.record_bytes);
  RecordRate(figures, name, static_cast<double>(corpus.spans * state.iterations()), cpu);
}

struct Stage1Expectation {
  uint64_t records = 0;
  uint64_t spans = 0;
  uint64_t epochs = 0;
};

// Polls `consumer`'s Stats() every `interval` until `condition` holds or `deadline` passes;
// returns the last stats and whether it held.
template <typename Condition>
std::pair<kafka::Stage1ConsumerStats, bool> WaitFor(const kafka::Stage1Consumer& consumer,
                                                    const Clock& clock,
                                                    std::chrono::steady_clock::time_point deadline,
                                                    milliseconds interval, Condition condition) {
  for (;;) {
    const kafka::Stage1ConsumerStats stats = consumer.Stats();
    if (condition(stats)) return {stats, true};
    if (clock.SteadyNow() >= deadline) return {stats, false};
    clock.SleepUntil(clock.SteadyNow() + interval);
  }
}

// One run = one new consumer group reading the whole corpus. The benchmark's timer (and the
// rates) cover the consuming phase: from the first assignment seen in Stats() to the last
// epoch delivered. The start-up before it (Create() aside: Start(), joining the group, the
// assignment) is measured apart and also reported added in, as the "from Start" figure.
void Stage1Consume(benchmark::State& state, Cluster& cluster, const Corpus& corpus,
                   const Stage1Expectation& expect, Figures& figures, const std::string& name) {
  const SystemClock clock;
  Logger logger(clock, LogFormat::kLogfmt, LogLevel::kWarn);
  CpuSplit consuming_split;
  CpuMeter consuming, joining;
  double consuming_wall = 0, joining_wall = 0;
  uint64_t spans_before_window = 0;
  for (auto _ : state) {
    state.PauseTiming();
    // A fresh group reads otlp_spans from the start; a fresh deltas topic stays small.
    const int round = cluster.NextRound();
    const std::string deltas = "traceslo_deltas_" + std::to_string(round);
    if (absl::Status status = cluster.CreateTopic(deltas, kDeltasPartitions); !status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      return;
    }
    kafka::Stage1ConsumerOptions options;
    options.brokers = cluster.bootstrap();
    options.spans_topic = kSpansTopic;
    options.deltas_topic = deltas;
    options.group_id = "traceslo-stage1-" + std::to_string(round);
    options.librdkafka = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
    options.epoch_length = kEpoch;
    options.config_hash = ConfigHash();
    options.sli = Sli();
    // No idle advance (it follows the wall clock): every epoch is sealed by records.
    options.idle_partition_timeout = std::chrono::hours(1);
    pipeline::SeriesRegistry registry(1'000, 100);
    const auto earlier = SnapshotThreads();  // not stage 1's threads
    absl::StatusOr<std::unique_ptr<kafka::Stage1Consumer>> created =
        kafka::Stage1Consumer::Create(options, clock, registry, logger);
    if (!created.ok()) {
      state.SkipWithError(created.status().ToString().c_str());
      return;
    }
    kafka::Stage1Consumer& consumer = **created;

    // Start-up: subscribe, join, get every partition.
    const auto start = clock.SteadyNow();
    joining.Start();
    if (absl::Status status = consumer.Start(); !status.ok()) {
      state.SkipWithError(status.ToString().c_str());
      return;
    }
    const auto [assigned, joined] =
        WaitFor(consumer, clock, start + std::chrono::seconds(60), milliseconds(1),
                [](const kafka::Stage1ConsumerStats& s) {
                  return s.assignment_done && s.owned_partitions == kSpansPartitions;
                });
    joining.Stop();
    const auto before = SnapshotThreads();
    const auto window_start = clock.SteadyNow();
    if (!joined) {
      state.SkipWithError("stage 1 consumer: no complete assignment within 60 s");
      return;
    }
    spans_before_window += assigned.spans;

    // Consuming: every record processed, every epoch published and delivered.
    consuming.Start();
    state.ResumeTiming();
    const auto [stats, done] =
        WaitFor(consumer, clock, window_start + std::chrono::seconds(120), milliseconds(1),
                [&](const kafka::Stage1ConsumerStats& s) {
                  return s.records == expect.records && s.published_epochs == expect.epochs &&
                         s.published_records == expect.epochs * kDeltasPartitions;
                });
    state.PauseTiming();
    consuming.Stop();
    const auto end = clock.SteadyNow();
    consuming_split += Difference(earlier, before, SnapshotThreads());
    joining_wall += std::chrono::duration<double>(window_start - start).count();
    consuming_wall += std::chrono::duration<double>(end - window_start).count();
    consumer.Shutdown(clock.SteadyNow() + std::chrono::seconds(20));
    created->reset();
    if (!done || stats.spans != expect.spans || stats.bad_records != 0 ||
        stats.rejected_spans != 0 || stats.delivery_errors != 0) {
      char error[320];
      std::snprintf(error, sizeof error,
                    "stage 1 consumer: records %llu/%llu, spans %llu/%llu, epochs %llu/%llu, "
                    "delivered %llu, bad %llu, delivery errors %llu, owned %d",
                    static_cast<unsigned long long>(stats.records),
                    static_cast<unsigned long long>(expect.records),
                    static_cast<unsigned long long>(stats.spans),
                    static_cast<unsigned long long>(expect.spans),
                    static_cast<unsigned long long>(stats.published_epochs),
                    static_cast<unsigned long long>(expect.epochs),
                    static_cast<unsigned long long>(stats.published_records),
                    static_cast<unsigned long long>(stats.bad_records),
                    static_cast<unsigned long long>(stats.delivery_errors), stats.owned_partitions);
      state.SkipWithError(error);
      return;
    }
    state.ResumeTiming();
  }
  SetSpanCounters(state, expect.spans, corpus.record_bytes);
  const auto n = static_cast<double>(state.iterations());
  const CpuSplit& split = consuming_split;
  if (n == 0 || split.total() <= 0 || consuming.total() <= 0) return;
  // Spans processed inside the window (a round may have run before the assignment was seen).
  const double spans =
      static_cast<double>(expect.spans) * n - static_cast<double>(spans_before_window);
  // Stage 1's own threads (the headline), and the whole process (getrusage) for comparison.
  const double stage1_rate = spans / split.stage1_total();
  state.counters["mock_cpu_share"] = split.mock / split.total();
  state.counters["spans_per_cpu_s_stage1_threads"] = stage1_rate;
  state.counters["startup_cpu_s"] = joining.total() / n;
  state.counters["startup_wall_s"] = joining_wall / n;
  figures.Record("rate " + name, stage1_rate);
  RecordRate(figures, name + " process", spans, consuming);
  figures.Record("rate " + name + " excl_mock",
                 spans / (consuming.total() * (1 - split.mock / split.total())));
  figures.Record("rate " + name + " from_start",
                 static_cast<double>(expect.spans) * n / (consuming.total() + joining.total()));
  figures.Record("stage1 cpu_s", split.stage1_total() / n);
  figures.Record("stage1 process_cpu_s", consuming.total() / n);
  figures.Record("stage1 thread_cpu_s", split.total() / n);
  figures.Record("stage1 share cluster", split.cluster / split.total());
  figures.Record("stage1 share mock", split.mock / split.total());
  figures.Record("stage1 share librdkafka", split.librdkafka / split.total());
  figures.Record("stage1 share stage1_thread", split.stage1 / split.total());
  figures.Record("stage1 share bench_main", split.bench_main / split.total());
  figures.Record("stage1 wall_s", consuming_wall / n);
  figures.Record("stage1 startup_wall_s", joining_wall / n);
  figures.Record("stage1 startup_cpu_s", joining.total() / n);
  figures.Record("stage1 spans_before_window", static_cast<double>(spans_before_window) / n);
}

// The calls a stage-2 consumer makes for deltas partition `d`: one per epoch's records (keeping
// up) or up to kCatchUpBatch records each (catching up). Offsets count from 0.
std::vector<std::vector<kafka::Stage2Record>> Calls(const OfflineResult& offline, size_t d,
                                                    bool per_epoch) {
  std::vector<std::vector<kafka::Stage2Record>> calls;
  std::vector<kafka::Stage2Record> call;
  int64_t offset = 0;
  for (const std::vector<std::string>& epoch : offline.by_epoch[d]) {
    for (const std::string& value : epoch) {
      call.push_back({.offset = offset++, .value = value});
      if (!per_epoch && call.size() == kCatchUpBatch) calls.push_back(std::exchange(call, {}));
    }
    if (per_epoch && !call.empty()) calls.push_back(std::exchange(call, {}));
  }
  if (!call.empty()) calls.push_back(std::move(call));
  return calls;
}

void Stage2Apply(benchmark::State& state, const OfflineResult& offline, bool per_epoch,
                 Figures& figures, const std::string& name) {
  const std::filesystem::path root = std::filesystem::temp_directory_path() /
                                     ("traceslo-kafka-bench-" + std::to_string(::getpid()));
  std::array<std::vector<std::vector<kafka::Stage2Record>>, kDeltasPartitions> calls;
  uint64_t records = 0, bytes = 0, call_count = 0;
  for (size_t d = 0; d < kDeltasPartitions; ++d) {
    calls[d] = Calls(offline, d, per_epoch);
    call_count += calls[d].size();
    for (const auto& call : calls[d]) {
      for (const kafka::Stage2Record& record : call) {
        ++records;
        bytes += record.value.size();
      }
    }
  }
  CpuMeter cpu;
  for (auto _ : state) {
    state.PauseTiming();
    std::filesystem::remove_all(root);
    std::filesystem::create_directories(root);
    auto registry = std::make_unique<pipeline::SeriesRegistry>(1'000, 100);
    auto store = std::make_unique<pipeline::SliStore>(pipeline::SliStoreOptions{.shards = 1});
    std::vector<std::unique_ptr<kafka::Stage2Partition>> partitions;
    for (int32_t d = 0; d < kDeltasPartitions; ++d) {
      kafka::Stage2Options options;
      options.partition = d;
      options.source_partitions = kSpansPartitions;
      options.config_hashes = {ConfigHash()};
      options.epoch_length = kEpoch;
      absl::StatusOr<std::unique_ptr<kafka::Stage2Partition>> partition =
          kafka::Stage2Partition::Open(root.string(), options, *registry, *store);
      if (!partition.ok()) {
        state.SkipWithError(partition.status().ToString().c_str());
        return;
      }
      partitions.push_back(std::move(*partition));
    }
    cpu.Start();
    state.ResumeTiming();

    uint64_t applied = 0;
    for (size_t d = 0; d < kDeltasPartitions; ++d) {
      for (const auto& call : calls[d]) {
        absl::StatusOr<kafka::Stage2Counters> counters = partitions[d]->Apply(call);
        if (!counters.ok()) {
          state.SkipWithError(counters.status().ToString().c_str());
          return;
        }
        applied += counters->applied;
      }
    }

    state.PauseTiming();
    cpu.Stop();
    partitions.clear();
    std::filesystem::remove_all(root);
    if (applied != records) {
      state.SkipWithError("stage 2: not every record applied");
      return;
    }
    state.ResumeTiming();
  }
  const auto n = static_cast<int64_t>(state.iterations());
  state.SetItemsProcessed(n * static_cast<int64_t>(records));
  state.SetBytesProcessed(n * static_cast<int64_t>(bytes));
  state.counters["records_per_iter"] = static_cast<double>(records);
  state.counters["calls_per_iter"] = static_cast<double>(call_count);
  RecordRate(figures, name, static_cast<double>(records * static_cast<uint64_t>(n)), cpu);
  if (cpu.total() > 0) {
    figures.Record("bytes " + name,
                   static_cast<double>(bytes * static_cast<uint64_t>(n)) / cpu.total());
  }
  figures.Record("records " + name, static_cast<double>(records));
  figures.Record("calls " + name, static_cast<double>(call_count));
}

struct Names {
  std::string consume = "kafka/stage1_consume";
  std::string offline = "kafka/stage1_offline";
  std::string single = "kafka/single_node_same_corpus";
  std::string split = "kafka/single_node_split_records";
  std::string stage2_epoch = "kafka/stage2_apply/per_epoch";
  std::string stage2_batch = "kafka/stage2_apply/batch_" + std::to_string(kCatchUpBatch);
};

void PrintSummary(const Names& names, const Corpus& corpus, const OfflineResult& offline,
                  const Figures& figures) {
  const auto rate = [&](const std::string& name) {
    return figures.Has("rate " + name) ? figures.Median("rate " + name) : 0.0;
  };
  std::printf(
      "\n== Kafka mode: medians of %zu repetitions, spans per CPU-second over the timed "
      "stretches: of the process (getrusage RUSAGE_SELF user + system), for %s of stage 1's "
      "own threads ==\n",
      figures.Count("rate " + names.single), names.consume.c_str());
  const double single = rate(names.single);
  for (const std::string& name : {names.single, names.split, names.offline, names.consume}) {
    if (rate(name) <= 0) continue;
    std::printf("%-34s %10.0f spans/CPU-s %8.1f ns/span", name.c_str(), rate(name),
                1e9 / rate(name));
    if (single > 0) std::printf("   ratio to single node %.3f", rate(name) / single);
    std::printf("\n");
  }
  if (figures.Has("stage1 cpu_s")) {
    const auto line = [&](const char* what, double r) {
      std::printf("  %-32s %10.0f spans/CPU-s %8.1f ns/span   ratio to single node %.3f\n", what, r,
                  1e9 / r, single > 0 ? r / single : 0.0);
    };
    const std::string& c = names.consume;
    std::printf(
        "  (%s: CPU of stage 1's own threads, the consumer thread and its librdkafka "
        "clients'; the same run counted as:)\n",
        c.c_str());
    line("whole process (getrusage)", figures.Median("rate " + c + " process"));
    line("whole process less mock brokers", figures.Median("rate " + c + " excl_mock"));
    line("from Start(), start-up included", figures.Median("rate " + c + " from_start"));
    const auto share = [&](const char* what) {
      return figures.Median(std::string("stage1 share ") + what);
    };
    std::printf(
        "%s: %.3f CPU-s of stage 1's threads for %llu spans while consuming (%.3f CPU-s of the "
        "process; %.0f spans were processed before the window opened); shares of the threads' "
        "CPU: stage-1 consumer thread %.0f %%, its librdkafka clients %.0f %%, mock brokers "
        "%.0f %%, the cluster's client %.1f %%, benchmark thread (polling Stats) %.1f %%\n",
        c.c_str(), figures.Median("stage1 cpu_s"), static_cast<unsigned long long>(corpus.spans),
        figures.Median("stage1 process_cpu_s"), figures.Median("stage1 spans_before_window"),
        100 * share("stage1_thread"), 100 * share("librdkafka"), 100 * share("mock"),
        100 * share("cluster"), 100 * share("bench_main"));
    const double records = static_cast<double>(corpus.records.size());
    const double thread_cpu_s = figures.Median("stage1 thread_cpu_s");
    const auto per_record = [&](const char* what) {
      return 1e6 * thread_cpu_s * share(what) / records;
    };
    const auto per_100mb = [&](const char* what) {
      return thread_cpu_s * share(what) * 1e8 / static_cast<double>(corpus.record_bytes);
    };
    std::printf(
        "  per otlp_spans record (%.0f B, %.1f spans): stage-1 consumer thread %.2f us, its "
        "librdkafka clients %.2f us (%.2f CPU-s per 100 MB); mock brokers %.2f us (%.2f CPU-s "
        "per 100 MB)\n",
        static_cast<double>(corpus.record_bytes) / records,
        static_cast<double>(corpus.spans) / records, per_record("stage1_thread"),
        per_record("librdkafka"), per_100mb("librdkafka"), per_record("mock"), per_100mb("mock"));
    const double wall = figures.Median("stage1 wall_s");
    std::printf(
        "  wall: %.3f s consuming -> %.0f spans/s, %.0f records/s, %.1f MB/s of records; "
        "start-up (Start() to a complete assignment): %.2f s wall, %.3f CPU-s\n",
        wall, static_cast<double>(corpus.spans) / wall,
        static_cast<double>(corpus.records.size()) / wall,
        static_cast<double>(corpus.record_bytes) / 1e6 / wall,
        figures.Median("stage1 startup_wall_s"), figures.Median("stage1 startup_cpu_s"));
    if (single > 0) {
      const double ratio = rate(c) / single;
      const double process = figures.Median("rate " + c + " process") / single;
      std::printf(
          "plan: stage 1 >= 50 %% of single node per CPU-second: %.3f (stage 1's threads) -> "
          "%s; %.3f counting the whole process -> %s\n",
          ratio, ratio >= 0.5 ? "met" : "NOT met", process, process >= 0.5 ? "met" : "NOT met");
    }
  }
  for (const std::string& name : {names.stage2_epoch, names.stage2_batch}) {
    if (rate(name) <= 0) continue;
    std::printf(
        "%-34s %10.0f records/CPU-s %8.2f MB/CPU-s  (%.0f records in %.0f Apply calls over %d "
        "partitions)\n",
        name.c_str(), rate(name), figures.Median("bytes " + name) / 1e6,
        figures.Median("records " + name), figures.Median("calls " + name), kDeltasPartitions);
  }
  size_t empty = 0, all = 0;
  pipeline::SeriesRegistry registry(1'000, 100);
  for (const auto& epochs : offline.by_epoch) {
    for (const auto& epoch : epochs) {
      for (const std::string& value : epoch) {
        absl::StatusOr<kafka::DecodedDeltaBatch> batch =
            kafka::DecodeDeltaBatch(value, {}, registry);
        ++all;
        if (batch.ok() && batch->delta.series.empty() && batch->delta.services.empty()) ++empty;
      }
    }
  }
  std::printf(
      "traceslo_deltas input: %zu records, %llu bytes (%.0f B per record); %zu carry no series "
      "or services (epochs without traffic, which carry the watermark)\n",
      all, static_cast<unsigned long long>(offline.delta_bytes),
      static_cast<double>(offline.delta_bytes) / static_cast<double>(std::max<size_t>(all, 1)),
      empty);
  std::fflush(stdout);
}

}  // namespace
}  // namespace traceslo::bench

int main(int argc, char** argv) {
  using namespace traceslo::bench;
  // As traceslo serve does (services/traceslo/main.cc), for every benchmark of this process.
  traceslo::KeepFreedMemoryForReuse();
  const Corpus corpus = BuildCorpus();
  size_t max_partition = 0;
  for (size_t b : corpus.partition_bytes) max_partition = std::max(max_partition, b);
  std::printf(
      "corpus: %zu requests of 512 spans (%llu spans, %llu traces of 8 over 2-3 of 20 services, "
      "%.1f MB of requests), %.1f s of traffic at %u traces/s; split into %zu otlp_spans records "
      "(%.0f B and %.1f spans per record, %.1f MB) over %d partitions (largest %.2f MB), + one "
      "end-of-stream record per partition %lld s later\n",
      corpus.requests.size(), static_cast<unsigned long long>(corpus.spans),
      static_cast<unsigned long long>(corpus.traces),
      static_cast<double>(corpus.request_bytes) / 1e6,
      static_cast<double>(corpus.last_ms - corpus.first_ms) / 1e3, kTracesPerSecond,
      corpus.records.size() - kSpansPartitions,
      static_cast<double>(corpus.record_bytes) /
          static_cast<double>(corpus.records.size() - kSpansPartitions),
      static_cast<double>(corpus.spans) /
          static_cast<double>(corpus.records.size() - kSpansPartitions),
      static_cast<double>(corpus.record_bytes) / 1e6, kSpansPartitions,
      static_cast<double>(max_partition) / 1e6, static_cast<long long>(kTailMs / 1000));

  Cluster cluster;
  if (absl::Status status = cluster.CreateTopic(kSpansTopic, kSpansPartitions); !status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    return 1;
  }
  if (absl::Status status = cluster.Produce(corpus); !status.ok()) {
    std::fprintf(stderr, "producing the corpus: %s\n", status.ToString().c_str());
    return 1;
  }
  const OfflineResult offline = RunStage1Offline(corpus, /*keep=*/true);
  if (offline.spans != corpus.spans) {
    std::fprintf(stderr, "stage 1 offline took %llu spans of %llu\n",
                 static_cast<unsigned long long>(offline.spans),
                 static_cast<unsigned long long>(corpus.spans));
    return 1;
  }
  const Stage1Expectation expect{
      .records = corpus.records.size(), .spans = corpus.spans, .epochs = offline.epochs};
  std::printf(
      "mock cluster: 3 brokers in this process; otlp_spans produced (every partition checked "
      "from offset 0); stage 1 publishes %llu epochs x %d traceslo_deltas partitions\n",
      static_cast<unsigned long long>(offline.epochs), kDeltasPartitions);

  Figures figures;
  const Names names;
  const Corpus* c = &corpus;
  const OfflineResult* o = &offline;
  Cluster* k = &cluster;
  Figures* f = &figures;
  // Registered as lambdas: RegisterBenchmark would copy extra arguments.
  benchmark::RegisterBenchmark(names.consume.c_str(),
                               [k, c, expect, f, name = names.consume](benchmark::State& state) {
                                 Stage1Consume(state, *k, *c, expect, *f, name);
                               })
      ->MeasureProcessCPUTime()
      ->Iterations(kConsumeRuns)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark(names.offline.c_str(),
                               [c, expect, f, name = names.offline](benchmark::State& state) {
                                 Stage1Offline(state, *c, expect.epochs, *f, name);
                               })
      ->MeasureProcessCPUTime()
      ->Iterations(kInMemoryRuns)
      ->Unit(benchmark::kMillisecond);
  for (const bool split : {false, true}) {
    const std::string name = split ? names.split : names.single;
    benchmark::RegisterBenchmark(
        name.c_str(),
        [c, split, f, name](benchmark::State& state) { SingleNodeRun(state, *c, split, *f, name); })
        ->MeasureProcessCPUTime()
        ->Iterations(kInMemoryRuns)
        ->Unit(benchmark::kMillisecond);
  }
  for (const bool per_epoch : {true, false}) {
    const std::string name = per_epoch ? names.stage2_epoch : names.stage2_batch;
    benchmark::RegisterBenchmark(name.c_str(),
                                 [o, per_epoch, f, name](benchmark::State& state) {
                                   Stage2Apply(state, *o, per_epoch, *f, name);
                                 })
        ->MeasureProcessCPUTime()
        ->Iterations(kStage2Runs)
        ->Unit(benchmark::kMillisecond);
  }

  const std::vector<Comparison> comparisons = {
      {names.consume, names.single,
       "Kafka stage 1 vs single node per CPU-second of the whole process: the mock brokers and "
       "the benchmark's polling included (stage 1's own threads: the Kafka summary below)",
       true},
      {names.offline, names.single, "stage 1 without Kafka vs single node"},
      {names.consume, names.offline,
       "share of stage 1's own rate kept with librdkafka + the mock brokers"},
      {names.split, names.single,
       "share kept when the engine is fed per-trace records instead of whole requests"},
  };
  const int status = RunBenchmarksAndCompare(argc, argv, comparisons, {});
  PrintSummary(names, corpus, offline, figures);
  return status;
}
