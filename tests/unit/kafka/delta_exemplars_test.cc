// Exemplar traces in the traceslo_deltas record: the traces a cause's link opens go out with
// the entries of their series' service, each trace once per record and whole (spans of every
// service), come back span for span in another process's registry, are refused with the
// problem named (before any name reaches the registry), stay under a byte budget per record
// (error exemplars first), and reach the SLI store through stage 2 once per (source, epoch).
// Expected values are the test's own inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "tests/unit/kafka/kafka_test_util.h"
#include "traceslo/kafka/delta_batch.h"
#include "traceslo/kafka/partitioning.h"
#include "traceslo/kafka/stage2.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/v1/delta_batch.pb.h"

namespace traceslo::kafka {
namespace {

using testutil::TempDir;

using pipeline::ExemplarDelta;
using pipeline::ExemplarRef;
using pipeline::SeriesRegistry;
using pipeline::ShardDelta;

constexpr uint64_t kHash = 0x5eed;
constexpr int64_t kEpoch = 1'800'000'000;  // unix seconds: epochs of 1 s
constexpr int64_t kNanos = kEpoch * 1'000'000'000;
constexpr int64_t kBucket = kEpoch / pipeline::kBucketSeconds;
constexpr uint64_t kCartFailed = 0x00a1000000000001;
constexpr uint64_t kDeclined = 0x00c3000000000003;

TraceId Trace(uint8_t seed) {
  TraceId id{};
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(seed * 16 + i);
  return id;
}

// One span of an exemplar trace, by names.
struct SpanSpec {
  uint64_t id;
  uint64_t parent;
  std::string service;
  std::string operation;
  int64_t offset;
  uint64_t duration;
  uint64_t signature;
  SpanKind kind;
  bool error;
  bool orphan;
  friend bool operator==(const SpanSpec&, const SpanSpec&) = default;
};

struct TraceSpec {
  TraceId id;
  int64_t start;
  uint64_t duration;
  std::vector<SpanSpec> spans;
};

// checkout's POST /cart failing over payment's declined charge, and a payment span whose parent
// never arrived; inventory's slow reserve alone.
TraceSpec Cascade() {
  return {
      Trace(1),
      kNanos + 1'000,
      80'000'000,
      {{1, 0, "checkout", "POST /cart", 0, 80'000'000, kCartFailed, SpanKind::kServer, true, false},
       {2, 1, "payment", "charge", 5'000'000, 60'000'000, kDeclined, SpanKind::kServer, true,
        false},
       {3, 9, "payment", "db query", 7'000'000, 2'000'000, 0, SpanKind::kClient, false, true}}};
}
TraceSpec Slow() {
  return {Trace(2),
          kNanos + 2'000,
          900'000'000,
          {{5, 0, "inventory", "reserve", 0, 900'000'000, 0, SpanKind::kServer, false, false}}};
}

ExemplarRef Build(const TraceSpec& spec, SeriesRegistry& names) {
  auto trace = std::make_shared<pipeline::ExemplarTrace>();
  trace->trace_id = spec.id;
  trace->start_unix_nano = spec.start;
  trace->duration_nanos = spec.duration;
  for (const SpanSpec& s : spec.spans) {
    trace->spans.push_back({.span_id = s.id,
                            .parent_span_id = s.parent,
                            .start_offset_nanos = s.offset,
                            .duration_nanos = s.duration,
                            .signature = s.signature,
                            .series = names.Resolve(s.service, s.operation).series,
                            .kind = s.kind,
                            .error = s.error,
                            .orphan = s.orphan});
  }
  return trace;
}

std::vector<SpanSpec> SpansOf(const pipeline::ExemplarTrace& trace, const SeriesRegistry& names) {
  std::vector<SpanSpec> out;
  for (const pipeline::ExemplarSpan& s : trace.spans) {
    out.push_back({s.span_id, s.parent_span_id,
                   std::string(names.ServiceName(names.ServiceOf(s.series))),
                   std::string(names.OperationName(s.series)), s.start_offset_nanos,
                   s.duration_nanos, s.signature, s.kind, s.error, s.orphan});
  }
  return out;
}

// An exemplar candidate by names: (service, operation, signature) → its trace and figures.
struct Candidate {
  std::string service;
  std::string operation;
  uint64_t signature;
  uint64_t duration;
  int64_t end;
  TraceId trace;
  friend bool operator==(const Candidate&, const Candidate&) = default;
};

Candidate CandidateOf(const ExemplarDelta& d, const SeriesRegistry& names) {
  return {std::string(names.ServiceName(names.ServiceOf(d.series))),
          std::string(names.OperationName(d.series)),
          d.signature,
          d.duration_nanos,
          d.end_unix_nano,
          d.trace->trace_id};
}

// The candidates a shard would report for the two traces: the slowest request of checkout and
// inventory, and the latest error trace of each signature.
ShardDelta ExemplarDeltas(SeriesRegistry& names) {
  const ExemplarRef cascade = Build(Cascade(), names);
  const ExemplarRef slow = Build(Slow(), names);
  auto add = [&](const std::string& service, const std::string& operation, uint64_t signature,
                 uint64_t duration, const ExemplarRef& trace) {
    return ExemplarDelta{.series = names.Resolve(service, operation).series,
                         .bucket = kBucket,
                         .signature = signature,
                         .duration_nanos = duration,
                         .end_unix_nano = trace->start_unix_nano + static_cast<int64_t>(duration),
                         .trace = trace};
  };
  ShardDelta delta;
  delta.exemplars = {add("checkout", "POST /cart", 0, 80'000'000, cascade),
                     add("inventory", "reserve", 0, 900'000'000, slow),
                     add("checkout", "POST /cart", kCartFailed, 80'000'000, cascade),
                     add("payment", "charge", kDeclined, 60'000'000, cascade)};
  return delta;
}

DeltaBatchHeader Header(int32_t src, int64_t epoch) {
  return DeltaBatchHeader{.config_hash = kHash,
                          .src_topic = "otlp_spans",
                          .src_partition = src,
                          .epoch = epoch,
                          .stream_time_ms = (epoch + 1) * 1000,
                          .dst_partition = 0};
}

TEST(DeltaExemplarsTest, EveryExemplarComesBackWholeInAnotherRegistryOnItsServicesPartition) {
  SeriesRegistry source(100, 100);
  SeriesRegistry other(100, 100);
  other.Resolve("unrelated", "first");  // the reader's ids differ from the writer's
  const ShardDelta delta = ExemplarDeltas(source);
  constexpr int32_t kPartitions = 4;
  const std::vector<std::string> records =
      EncodeDeltaBatches(Header(2, kEpoch), delta, source, kPartitions);
  ASSERT_EQ(records.size(), static_cast<size_t>(kPartitions));

  std::vector<Candidate> want;
  for (const ExemplarDelta& d : delta.exemplars) want.push_back(CandidateOf(d, source));
  const std::map<TraceId, TraceSpec> specs = {{Cascade().id, Cascade()}, {Slow().id, Slow()}};
  std::vector<Candidate> got;
  for (int32_t p = 0; p < kPartitions; ++p) {
    SCOPED_TRACE(p);
    const std::string& record = records[static_cast<size_t>(p)];
    absl::StatusOr<DecodedDeltaBatch> decoded = DecodeDeltaBatch(record, DeltaBatchLimits{}, other);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    std::set<const pipeline::ExemplarTrace*> distinct;
    for (const ExemplarDelta& d : decoded->delta.exemplars) {
      const Candidate c = CandidateOf(d, other);
      EXPECT_EQ(Fnv1aPartition(c.service, kPartitions), p) << c.service;
      EXPECT_EQ(d.bucket, kBucket);
      const TraceSpec& spec = specs.at(d.trace->trace_id);
      EXPECT_EQ(d.trace->start_unix_nano, spec.start);
      EXPECT_EQ(d.trace->duration_nanos, spec.duration);
      EXPECT_EQ(SpansOf(*d.trace, other), spec.spans);
      distinct.insert(d.trace.get());
      got.push_back(c);
    }
    // Each trace is written once per record, and its candidates share it after decoding.
    v1::DeltaBatch raw;
    ASSERT_TRUE(raw.ParseFromString(record));
    EXPECT_EQ(static_cast<size_t>(raw.exemplar_traces_size()), distinct.size());
  }
  auto order = [](std::vector<Candidate> v) {
    std::sort(v.begin(), v.end(), [](const Candidate& a, const Candidate& b) {
      return std::tie(a.service, a.operation, a.signature) <
             std::tie(b.service, b.operation, b.signature);
    });
    return v;
  };
  EXPECT_EQ(order(got), order(want));
}

TEST(DeltaExemplarsTest, AnOlderReaderSkipsThemAndTheCountsAreUnchanged) {
  SeriesRegistry names(100, 100);
  ShardDelta delta;
  const std::string without = EncodeDeltaBatches(Header(0, kEpoch), delta, names, 1).at(0);
  delta = ExemplarDeltas(names);
  const std::string with = EncodeDeltaBatches(Header(0, kEpoch), delta, names, 1).at(0);
  v1::DeltaBatch old_reader;
  ASSERT_TRUE(old_reader.ParseFromString(with));
  EXPECT_EQ(old_reader.exemplars_size(), 4);
  EXPECT_EQ(old_reader.exemplar_traces_size(), 2);
  old_reader.clear_exemplars();
  old_reader.clear_exemplar_traces();
  old_reader.clear_exemplar_names();
  EXPECT_EQ(old_reader.SerializeAsString(), without);
}

// One record with both traces and all four candidates.
v1::DeltaBatch ValidBatch() {
  SeriesRegistry names(100, 100);
  v1::DeltaBatch batch;
  EXPECT_TRUE(batch.ParseFromString(
      EncodeDeltaBatches(Header(0, kEpoch), ExemplarDeltas(names), names, 1).at(0)));
  EXPECT_EQ(batch.exemplars_size(), 4);
  EXPECT_EQ(batch.exemplar_traces_size(), 2);
  EXPECT_EQ(batch.exemplar_names_size(), 4);
  return batch;
}

TEST(DeltaExemplarsTest, ABadExemplarIsRefusedByNameAndAddsNoNameToTheRegistry) {
  const std::vector<testutil::RefusalCase> cases = {
      {"exemplar_traces[0]: trace id of 15 bytes",
       [](v1::DeltaBatch& b) { b.mutable_exemplar_traces(0)->set_trace_id(std::string(15, 't')); }},
      {"exemplar_traces[1]: trace id of 0 bytes",
       [](v1::DeltaBatch& b) { b.mutable_exemplar_traces(1)->clear_trace_id(); }},
      {"exemplar_traces[1]: no spans",
       [](v1::DeltaBatch& b) { b.mutable_exemplar_traces(1)->clear_spans(); }},
      {"exemplar_traces[0].spans[1]: name 9 of 4",
       [](v1::DeltaBatch& b) { b.mutable_exemplar_traces(0)->mutable_spans(1)->set_name(9); }},
      {"exemplar_traces[0].spans[0]: kind 6",
       [](v1::DeltaBatch& b) { b.mutable_exemplar_traces(0)->mutable_spans(0)->set_kind(6); }},
      {"exemplar_traces[0].spans[2]: start offset -1",
       [](v1::DeltaBatch& b) {
         b.mutable_exemplar_traces(0)->mutable_spans(2)->set_start_offset_nanos(-1);
       }},
      {"exemplars[1]: trace 7 of 2",
       [](v1::DeltaBatch& b) { b.mutable_exemplars(1)->set_trace(7); }},
      {"exemplars[3]: trace 2 of 2",
       [](v1::DeltaBatch& b) { b.mutable_exemplars(3)->set_trace(2); }},
      {"exemplars[0].service is empty",
       [](v1::DeltaBatch& b) { b.mutable_exemplars(0)->clear_service(); }},
      {"exemplars[2].operation is 1025 bytes, more than 1024",
       [](v1::DeltaBatch& b) { b.mutable_exemplars(2)->set_operation(std::string(1025, 'o')); }},
      {"exemplar_names[3].operation is empty",
       [](v1::DeltaBatch& b) { b.mutable_exemplar_names(3)->clear_operation(); }},
      {"exemplar_traces[0].spans[1]: duration 9223372036854775808",
       [](v1::DeltaBatch& b) {
         b.mutable_exemplar_traces(0)->mutable_spans(1)->set_duration_nanos(1ull << 63);
       }},
      {"exemplar_traces[1]: start -5 or duration",
       [](v1::DeltaBatch& b) { b.mutable_exemplar_traces(1)->set_start_unix_nano(-5); }},
      {"exemplars[2]: bucket 0 is not within a week of the stream time",
       [](v1::DeltaBatch& b) { b.mutable_exemplars(2)->set_bucket(0); }},
      {"exemplars[1]: bucket 180060481 is not within a week",
       [](v1::DeltaBatch& b) { b.mutable_exemplars(1)->set_bucket(kBucket + 60'481); }},
      {"exemplars[0]: duration or end out of range",
       [](v1::DeltaBatch& b) { b.mutable_exemplars(0)->set_end_unix_nano(-1); }},
      {"exemplar_traces[0]: 3 spans, more than 2", [](v1::DeltaBatch&) {},
       DeltaBatchLimits{.max_exemplar_spans = 2}},
      {"4 exemplars, more than 3", [](v1::DeltaBatch&) {}, DeltaBatchLimits{.max_exemplars = 3}},
      {"2 exemplar traces, more than 1", [](v1::DeltaBatch&) {},
       DeltaBatchLimits{.max_exemplar_traces = 1}},
      {"4 exemplar names, more than 3", [](v1::DeltaBatch&) {},
       DeltaBatchLimits{.max_exemplar_names = 3}},
  };
  testutil::ExpectEachRefused(cases, &ValidBatch);
  // The limits the cases spoil are exact: at them, the record is accepted.
  SeriesRegistry reader(100, 100);
  absl::StatusOr<DecodedDeltaBatch> decoded =
      DecodeDeltaBatch(ValidBatch().SerializeAsString(),
                       DeltaBatchLimits{.max_exemplars = 4,
                                        .max_exemplar_traces = 2,
                                        .max_exemplar_names = 4,
                                        .max_exemplar_spans = 3},
                       reader);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->delta.exemplars.size(), 4u);
}

// A storm of large traces: one record carries at most kMaxExemplarBytesPerRecord of exemplars
// (a trace that would cross it is left out), the error exemplars (what causes link) before the
// slowest requests', whatever their order in the delta.
TEST(DeltaExemplarsTest, ErrorExemplarsGoFirstAndTheRecordsBudgetHolds) {
  SeriesRegistry names(100, 100);
  ShardDelta delta;
  constexpr int kTraces = 40;  // per kind, each ~3000 spans (~100 KB): over the byte budget
  for (int kind = 0; kind < 2; ++kind) {
    for (int i = 0; i < kTraces; ++i) {
      auto trace = std::make_shared<pipeline::ExemplarTrace>();
      trace->trace_id = Trace(static_cast<uint8_t>(kind * kTraces + i));
      trace->start_unix_nano = kNanos;
      trace->duration_nanos = 1'000'000;
      const uint32_t series = names.Resolve("checkout", "op" + std::to_string(i % 7)).series;
      for (uint64_t s = 1; s <= 3'000; ++s) {
        trace->spans.push_back({.span_id = s * 0x9e3779b97f4a7c15ull,
                                .parent_span_id = (s - 1) * 0x9e3779b97f4a7c15ull,
                                .start_offset_nanos = static_cast<int64_t>(s) * 1'000,
                                .duration_nanos = 500'000 + s,
                                .series = series,
                                .kind = SpanKind::kInternal});
      }
      delta.exemplars.push_back({.series = series,
                                 .bucket = kBucket,
                                 .signature = kind == 0 ? 0 : 0x1000 + static_cast<uint64_t>(i),
                                 .duration_nanos = 1'000'000,
                                 .end_unix_nano = kNanos + 1'000'000,
                                 .trace = std::move(trace)});
    }
  }
  const std::string record = EncodeDeltaBatches(Header(0, kEpoch), delta, names, 1).at(0);
  v1::DeltaBatch batch;
  ASSERT_TRUE(batch.ParseFromString(record));
  size_t bytes = 0;
  size_t largest = 0;
  for (const v1::ExemplarTrace& t : batch.exemplar_traces()) {
    bytes += t.ByteSizeLong();
    largest = std::max(largest, t.ByteSizeLong());
  }
  for (const v1::ExemplarEntry& e : batch.exemplars()) bytes += e.ByteSizeLong();
  for (const v1::SeriesName& n : batch.exemplar_names()) bytes += n.ByteSizeLong();
  EXPECT_GT(batch.exemplars_size(), 0);
  EXPECT_LT(static_cast<size_t>(batch.exemplar_traces_size()), kMaxExemplarTracesPerRecord)
      << "the byte budget, not the trace cap, left some out";
  EXPECT_LE(bytes, kMaxExemplarBytesPerRecord) << "a trace that does not fit is left out whole";
  EXPECT_GT(bytes, kMaxExemplarBytesPerRecord - largest - 1'024) << "the budget is used";
  for (const v1::ExemplarEntry& e : batch.exemplars()) {
    EXPECT_NE(e.signature(), 0u) << "an error exemplar was left out for a slowest one";
  }
  SeriesRegistry reader(100, 100);
  EXPECT_TRUE(DecodeDeltaBatch(record, DeltaBatchLimits{}, reader).ok());

  // Small traces: at most kMaxExemplarTracesPerRecord per record, the error ones first (two
  // here), then the slowest requests', slowest first, whatever their order in the delta.
  ShardDelta small;
  const uint32_t op = names.Resolve("checkout", "op").series;
  auto small_trace = [&](uint8_t seed) {
    auto t = std::make_shared<pipeline::ExemplarTrace>();
    t->trace_id = Trace(seed);
    t->spans.push_back({.span_id = seed, .series = op, .kind = SpanKind::kServer});
    return t;
  };
  const std::vector<uint64_t> durations = {30, 10, 70, 20, 60, 40, 50};
  for (size_t i = 0; i < durations.size(); ++i) {
    small.exemplars.push_back({.series = op,
                               .bucket = kBucket,
                               .duration_nanos = durations[i],
                               .trace = small_trace(static_cast<uint8_t>(100 + i))});
  }
  for (uint8_t i = 0; i < 2; ++i) {
    small.exemplars.push_back(
        {.series = op, .bucket = kBucket, .signature = 0x77u + i, .trace = small_trace(120 + i)});
  }
  v1::DeltaBatch capped;
  ASSERT_TRUE(capped.ParseFromString(EncodeDeltaBatches(Header(0, kEpoch), small, names, 1).at(0)));
  ASSERT_EQ(static_cast<size_t>(capped.exemplars_size()), kMaxExemplarTracesPerRecord);
  std::vector<std::pair<uint64_t, uint64_t>> got;  // (signature, duration)
  for (const v1::ExemplarEntry& e : capped.exemplars()) {
    got.emplace_back(e.signature(), e.duration_nanos());
  }
  static_assert(kMaxExemplarTracesPerRecord == 4, "the expectation below lists four");
  EXPECT_EQ(got,
            (std::vector<std::pair<uint64_t, uint64_t>>{{0x77, 0}, {0x78, 0}, {0, 70}, {0, 60}}));

  // One trace larger than the budget by itself: left out whole, names and all; a smaller one
  // after it still goes.
  ShardDelta huge;
  auto big = std::make_shared<pipeline::ExemplarTrace>();
  big->trace_id = Trace(200);
  const uint32_t series = names.Resolve("checkout", "huge").series;
  for (uint64_t s = 1; s <= 20'000; ++s) {
    big->spans.push_back(
        {.span_id = s * 0x9e3779b97f4a7c15ull,
         .duration_nanos = s,
         .series = names.Resolve("checkout", "step" + std::to_string(s % 50)).series,
         .kind = SpanKind::kInternal});
  }
  huge.exemplars.push_back(
      {.series = series, .bucket = kBucket, .signature = 7, .trace = std::move(big)});
  huge.exemplars.push_back(ExemplarDeltas(names).exemplars[1]);  // inventory's slow trace
  v1::DeltaBatch left_out;
  ASSERT_TRUE(
      left_out.ParseFromString(EncodeDeltaBatches(Header(0, kEpoch), huge, names, 1).at(0)));
  ASSERT_EQ(left_out.exemplars_size(), 1);
  EXPECT_EQ(left_out.exemplars(0).service(), "inventory");
  EXPECT_EQ(left_out.exemplar_traces_size(), 1);
  EXPECT_EQ(left_out.exemplar_names_size(), 1) << "the huge trace's names went with it";
}

Stage2Options Options() {
  Stage2Options options;
  options.partition = 0;
  options.source_partitions = 2;
  options.config_hashes = {kHash};
  return options;
}

// The SLI store, counting the exemplars it is given.
class CountingStore final : public pipeline::DeltaSink {
 public:
  void Apply(ShardDelta delta) override {
    exemplars += delta.exemplars.size();
    store.Apply(std::move(delta));
  }
  pipeline::SliStore store{pipeline::SliStoreOptions{}};
  size_t exemplars = 0;
};

// Stage 2 of one process: its registry, its SLI store and one open partition.
struct Process {
  explicit Process(const std::string& dir) {
    absl::StatusOr<std::unique_ptr<Stage2Partition>> opened =
        Stage2Partition::Open(dir, Options(), registry, sink);
    EXPECT_TRUE(opened.ok()) << opened.status();
    if (opened.ok()) stage = std::move(*opened);
  }
  SeriesRegistry registry{100, 100};
  CountingStore sink;
  pipeline::SliStore& store = sink.store;
  std::unique_ptr<Stage2Partition> stage;
};

TEST(DeltaExemplarsTest, AppliedExemplarsOpenInTheSliStoreOncePerEpochAndStayOutOfTheFile) {
  TempDir dir{"traceslo_delta_exemplars_test"};
  SeriesRegistry names(100, 100);
  names.Resolve("other", "ids");  // the writer's ids differ from the reader's
  const std::string value =
      EncodeDeltaBatches(Header(0, kEpoch), ExemplarDeltas(names), names, 1).at(0);
  {
    Process p(dir.path());
    ASSERT_NE(p.stage, nullptr);
    absl::StatusOr<Stage2Counters> counters =
        p.stage->Apply(std::vector<Stage2Record>{{.offset = 0, .value = value}});
    ASSERT_TRUE(counters.ok()) << counters.status();
    EXPECT_EQ(counters->applied, 1u);
    EXPECT_EQ(p.sink.exemplars, 4u);
    for (const TraceSpec& spec : {Cascade(), Slow()}) {
      const ExemplarRef trace = p.store.FindTrace(spec.id);
      ASSERT_NE(trace, nullptr);
      EXPECT_EQ(SpansOf(*trace, p.registry), spec.spans);
    }
    const int64_t pay = p.registry.FindSeries("payment", "charge");
    ASSERT_GE(pay, 0);
    const std::vector<ExemplarRef> of_pay =
        p.store.Exemplars(static_cast<uint32_t>(pay), kBucket, kBucket);
    ASSERT_EQ(of_pay.size(), 1u);
    EXPECT_EQ(of_pay[0]->trace_id, Cascade().id);
    const int64_t cart = p.registry.FindSeries("checkout", "POST /cart");
    ASSERT_GE(cart, 0);
    const size_t of_cart = p.store.Exemplars(static_cast<uint32_t>(cart), kBucket, kBucket).size();
    EXPECT_GE(of_cart, 1u);

    // Redelivered: a duplicate, nothing added.
    counters = p.stage->Apply(std::vector<Stage2Record>{{.offset = 1, .value = value}});
    ASSERT_TRUE(counters.ok()) << counters.status();
    EXPECT_EQ(counters->duplicates, 1u);
    EXPECT_EQ(p.sink.exemplars, 4u) << "none given again";
    EXPECT_EQ(p.store.Exemplars(static_cast<uint32_t>(pay), kBucket, kBucket).size(), 1u);
    EXPECT_EQ(p.store.Exemplars(static_cast<uint32_t>(cart), kBucket, kBucket).size(), of_cart);
  }
  // Examples, not counts: a restart gives the buckets back but not the traces.
  Process p(dir.path());
  ASSERT_NE(p.stage, nullptr);
  EXPECT_EQ(p.store.FindTrace(Cascade().id), nullptr);
}

}  // namespace
}  // namespace traceslo::kafka
