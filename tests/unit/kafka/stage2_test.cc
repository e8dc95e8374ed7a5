// Stage 2 on one traceslo_deltas partition without Kafka: records in, merged buckets (in SQLite)
// and deltas to the sink out. The properties that make redelivery, a zombie and a replaying stage
// 1 harmless: every (source, epoch) counts once whatever the order, batching or repetition; what
// was committed survives a restart and comes back to the sink once; a failed transaction leaves
// nothing behind. Expected values are summed here from the numbers the records were built from.
#include "traceslo/kafka/stage2.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <google/protobuf/stubs/logging.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "tests/unit/kafka/kafka_test_util.h"
#include "traceslo/common/int_math.h"
#include "traceslo/kafka/delta_batch.h"
#include "traceslo/kafka/stage1.h"
#include "traceslo/v1/delta_batch.pb.h"
#include "traceslo/v1/state.pb.h"

namespace traceslo::kafka {
namespace {

using testutil::TempDir;

constexpr uint64_t kHash = 0xc0ffee;
constexpr int64_t kBaseEpoch = 1'800'000'000;  // unix seconds: epochs of 1 s
constexpr int32_t kSources = 3;

// Sums by name, so inputs built with one registry compare with outputs of another.
struct SeriesSum {
  uint64_t requests = 0;
  uint64_t errors = 0;
  double sum_seconds = 0;
  std::array<uint64_t, pipeline::kClassicBuckets> classic{};
  pipeline::LatencySketch latency;
  std::map<uint64_t, uint64_t> signatures;
};
using SeriesKey = std::tuple<std::string, std::string, int64_t>;
using ServiceKey = std::tuple<std::string, int64_t>;
struct Totals {
  std::map<SeriesKey, SeriesSum> series;
  std::map<ServiceKey, std::array<uint64_t, 5>> services;
  std::array<uint64_t, 4> counters{};  // late, evicted, clock skew, truncated spans

  void Add(const pipeline::ShardDelta& delta, const pipeline::SeriesRegistry& names) {
    for (const pipeline::SeriesDelta& d : delta.series) {
      SeriesSum& s = series[{std::string(names.ServiceName(d.service)),
                             std::string(names.OperationName(d.series)), d.bucket}];
      s.requests += d.requests;
      s.errors += d.errors;
      s.sum_seconds += d.sum_seconds;
      for (size_t i = 0; i < s.classic.size(); ++i) s.classic[i] += d.classic[i];
      s.latency.Merge(d.latency);
      for (const pipeline::SignatureCount& c : d.signatures) s.signatures[c.id] += c.count;
    }
    for (const pipeline::ServiceDelta& d : delta.services) {
      std::array<uint64_t, 5>& s = services[{std::string(names.ServiceName(d.service)), d.bucket}];
      s[0] += d.traces;
      s[1] += d.error_traces_root;
      s[2] += d.error_traces_origin;
      s[3] += d.partial_traces;
      s[4] += d.propagation_breaks;
    }
    counters[0] += delta.late_spans;
    counters[1] += delta.evicted_traces;
    counters[2] += delta.clock_skew_spans;
    counters[3] += delta.truncated_spans;
  }
};

void ExpectSameTotals(const Totals& got, const Totals& want, bool with_counters,
                      const std::string& what) {
  ASSERT_EQ(got.series.size(), want.series.size()) << what;
  for (const auto& [key, w] : want.series) {
    auto it = got.series.find(key);
    ASSERT_NE(it, got.series.end()) << what << ": " << std::get<0>(key) << " " << std::get<1>(key)
                                    << " bucket " << std::get<2>(key);
    const SeriesSum& g = it->second;
    EXPECT_EQ(g.requests, w.requests) << what;
    EXPECT_EQ(g.errors, w.errors) << what;
    EXPECT_NEAR(g.sum_seconds, w.sum_seconds, 1e-9 * std::max(1.0, w.sum_seconds)) << what;
    EXPECT_EQ(g.classic, w.classic) << what;
    EXPECT_TRUE(g.latency == w.latency) << what;
    EXPECT_EQ(g.signatures, w.signatures) << what;
  }
  EXPECT_EQ(got.services, want.services) << what;
  if (with_counters) {
    EXPECT_EQ(got.counters, want.counters) << what;
  }
}

// The process's SliStore stand-in: sums what it is given.
class CapturingSink final : public pipeline::DeltaSink {
 public:
  explicit CapturingSink(const pipeline::SeriesRegistry& names) : names_(names) {}
  void Apply(pipeline::ShardDelta delta) override {
    ++calls;
    totals.Add(delta, names_);
  }
  Totals totals;
  int calls = 0;

 private:
  const pipeline::SeriesRegistry& names_;
};

struct Input {
  int32_t src = 0;
  int64_t epoch = 0;
  std::string value;
};

// The deltas one source partition seals in epoch kBaseEpoch + k, with known numbers; `want`
// gets the same numbers by name. Every fifth epoch is empty (its record only carries the
// watermark).
pipeline::ShardDelta MakeDelta(pipeline::SeriesRegistry& names, int32_t src, int64_t k,
                               Totals* want) {
  pipeline::ShardDelta delta;
  delta.late_spans = static_cast<uint64_t>(src) + 1;
  delta.truncated_spans = static_cast<uint64_t>(k % 2);
  if (want != nullptr) {
    want->counters[0] += delta.late_spans;
    want->counters[3] += delta.truncated_spans;
  }
  if (k % 5 == 4) return delta;
  const int64_t epoch = kBaseEpoch + k;
  const int64_t bucket = FloorDiv(epoch, pipeline::kBucketSeconds) - (k % 2);
  const std::array<std::string, 2> services = {"checkout", "payment"};
  const std::array<std::string, 2> operations = {"GET /cart", "POST /pay"};
  for (size_t i = 0; i < services.size(); ++i) {
    uint64_t service_requests = 0;
    for (size_t j = 0; j < operations.size(); ++j) {
      if ((static_cast<size_t>(src) + static_cast<size_t>(k) + i + j) % 3 == 0) continue;
      const pipeline::SeriesRegistry::Ids ids = names.Resolve(services[i], operations[j]);
      pipeline::SeriesDelta d;
      d.series = ids.series;
      d.service = ids.service;
      d.bucket = bucket;
      d.requests =
          1 + static_cast<uint64_t>(src * 7 + k * 3 + static_cast<int64_t>(i * 5 + j)) % 11;
      d.errors = d.requests % 3;
      const uint64_t nanos =
          1'000'000 * (1 + static_cast<uint64_t>(k + static_cast<int64_t>(j)) % 50);
      d.sum_seconds = static_cast<double>(d.requests * nanos) / 1e9;
      d.classic[pipeline::ClassicBucketOf(nanos)] = d.requests;
      d.latency.Add(nanos, d.requests);
      if (d.errors > 0) d.signatures.push_back({.id = 0x51 + i + 16 * j, .count = d.errors});
      service_requests += d.requests;
      if (want != nullptr) {
        SeriesSum& w = want->series[{services[i], operations[j], bucket}];
        w.requests += d.requests;
        w.errors += d.errors;
        w.sum_seconds += d.sum_seconds;
        w.classic[pipeline::ClassicBucketOf(nanos)] += d.requests;
        w.latency.Add(nanos, d.requests);
        if (d.errors > 0) w.signatures[0x51 + i + 16 * j] += d.errors;
      }
      delta.series.push_back(std::move(d));
    }
    if (service_requests == 0) continue;
    const pipeline::ServiceDelta s{.service = names.ResolveService(services[i]),
                                   .bucket = bucket,
                                   .traces = service_requests,
                                   .error_traces_root = service_requests / 4,
                                   .error_traces_origin = service_requests / 5,
                                   .partial_traces = static_cast<uint64_t>(k % 3),
                                   .propagation_breaks = static_cast<uint64_t>(src)};
    if (want != nullptr) {
      std::array<uint64_t, 5>& w = want->services[{services[i], bucket}];
      w[0] += s.traces;
      w[1] += s.error_traces_root;
      w[2] += s.error_traces_origin;
      w[3] += s.partial_traces;
      w[4] += s.propagation_breaks;
    }
    delta.services.push_back(s);
  }
  return delta;
}

DeltaBatchHeader Header(int32_t src, int64_t epoch, uint64_t hash = kHash) {
  return DeltaBatchHeader{.config_hash = hash,
                          .src_topic = "otlp_spans",
                          .src_partition = src,
                          .epoch = epoch,
                          .stream_time_ms = (epoch + 1) * 1000,
                          .dst_partition = 0};
}

// The records of epochs kBaseEpoch + [first_k, last_k] of every source, source by source as
// stage 1 would write them (one destination partition), with their expected sums.
std::vector<Input> MakeInputs(int64_t first_k, int64_t last_k, Totals* want,
                              int32_t sources = kSources) {
  pipeline::SeriesRegistry names(100, 100);  // stage 1's own process
  std::vector<Input> out;
  for (int64_t k = first_k; k <= last_k; ++k) {
    for (int32_t src = 0; src < sources; ++src) {
      const pipeline::ShardDelta delta = MakeDelta(names, src, k, want);
      std::vector<std::string> records =
          EncodeDeltaBatches(Header(src, kBaseEpoch + k), delta, names, 1);
      out.push_back({src, kBaseEpoch + k, std::move(records.at(0))});
    }
  }
  return out;
}

Stage2Options Options() {
  Stage2Options options;
  options.partition = 0;
  options.source_partitions = kSources;
  options.config_hashes = {kHash};
  options.allowed_lateness = std::chrono::seconds(30);
  options.applied_epoch_window = 600;
  return options;
}

// The records as a consumer hands them over: offsets from `first_offset` on.
std::vector<Stage2Record> AsRecords(const std::vector<Input>& inputs, int64_t first_offset) {
  std::vector<Stage2Record> out;
  for (const Input& in : inputs)
    out.push_back({first_offset + static_cast<int64_t>(out.size()), in.value});
  return out;
}

// One open partition with its own registry and sink (a process).
struct Process {
  explicit Process(const std::string& dir, Stage2Options options = Options()) : sink(registry) {
    absl::StatusOr<std::unique_ptr<Stage2Partition>> opened =
        Stage2Partition::Open(dir, std::move(options), registry, sink);
    EXPECT_TRUE(opened.ok()) << opened.status();
    if (opened.ok()) stage = std::move(*opened);
  }
  Stage2Counters Apply(std::span<const Stage2Record> records) {
    absl::StatusOr<Stage2Counters> counters = stage->Apply(records);
    EXPECT_TRUE(counters.ok()) << counters.status();
    return counters.ok() ? *counters : Stage2Counters{};
  }
  pipeline::SeriesRegistry registry{1000, 1000};
  CapturingSink sink;
  std::unique_ptr<Stage2Partition> stage;
};

// The stored applied epochs and sources, as rows.
std::vector<std::vector<int64_t>> Rows(const std::string& dir, const std::string& sql) {
  SQLite::Database db(Stage2Partition::FilePath(dir, 0), SQLite::OPEN_READONLY);
  SQLite::Statement q(db, sql);
  std::vector<std::vector<int64_t>> rows;
  while (q.executeStep()) {
    std::vector<int64_t> row;
    for (int i = 0; i < q.getColumnCount(); ++i) row.push_back(q.getColumn(i).getInt64());
    rows.push_back(std::move(row));
  }
  return rows;
}

// What a restart hands to a new sink: the stored buckets.
Totals Restored(const std::string& dir) {
  Process again(dir);
  EXPECT_EQ(again.sink.totals.counters, (std::array<uint64_t, 4>{}))
      << "the epochs' span counters are not restored";
  return again.sink.totals;
}

TEST(Stage2Test, SameRecordsOnceTwiceShuffledOrRebatchedGiveTheSameBuckets) {
  Totals want;
  const std::vector<Input> inputs = MakeInputs(0, 24, &want);
  ASSERT_EQ(inputs.size(), 75u);
  ASSERT_GT(want.series.size(), 10u);

  struct Run {
    std::string name;
    std::vector<Input> delivered;
    std::vector<size_t> batches;  // sizes, cycled
    uint64_t duplicates = 0;
  };
  std::vector<Run> runs;
  runs.push_back({"once, one batch", inputs, {inputs.size()}, 0});
  std::vector<Input> twice = inputs;
  twice.insert(twice.end(), inputs.begin(), inputs.end());
  runs.push_back({"twice, batches of 7", twice, {7}, inputs.size()});
  std::mt19937_64 random(7);
  std::vector<Input> shuffled = inputs;
  // A third of the records again (a zombie's or a replaying stage 1's), then shuffled.
  for (size_t i = 0; i < inputs.size(); i += 3) shuffled.push_back(inputs[i]);
  std::shuffle(shuffled.begin(), shuffled.end(), random);
  runs.push_back({"shuffled with repeats, batches of 1-9",
                  shuffled,
                  {1, 5, 9, 2, 3},
                  (inputs.size() + 2) / 3});
  runs.push_back({"one record per call", inputs, {1}, 0});

  std::vector<std::vector<std::vector<int64_t>>> applied_rows;
  std::vector<std::vector<std::vector<int64_t>>> source_rows;
  for (const Run& run : runs) {
    TempDir dir{"traceslo_stage2_test"};
    {
      Process p(dir.path());
      const std::vector<Stage2Record> records = AsRecords(run.delivered, 100);
      Stage2Counters sum;
      for (size_t at = 0, b = 0; at < records.size(); ++b) {
        const size_t n = std::min(run.batches[b % run.batches.size()], records.size() - at);
        sum += p.Apply(std::span(records).subspan(at, n));
        at += n;
      }
      EXPECT_EQ(sum.applied, inputs.size()) << run.name;
      EXPECT_EQ(sum.duplicates, run.duplicates) << run.name;
      EXPECT_EQ(sum.refused_invalid + sum.refused_config + sum.refused_partition +
                    sum.refused_too_late + sum.late,
                0u)
          << run.name;
      EXPECT_EQ(p.stage->counters(), sum) << run.name;
      EXPECT_EQ(p.stage->next_offset(), 100 + static_cast<int64_t>(records.size())) << run.name;
      ExpectSameTotals(p.sink.totals, want, true, run.name + ": sink");
      EXPECT_EQ(p.stage->WatermarkMs(kSources), (kBaseEpoch + 25) * 1000) << run.name;
    }
    ExpectSameTotals(Restored(dir.path()), want, false, run.name + ": stored");
    applied_rows.push_back(Rows(dir.path(), "SELECT src, epoch FROM applied_epochs ORDER BY 1, 2"));
    source_rows.push_back(Rows(dir.path(), "SELECT * FROM sources ORDER BY src"));
  }
  ASSERT_EQ(applied_rows[0].size(), inputs.size());
  for (size_t i = 1; i < runs.size(); ++i) {
    EXPECT_EQ(applied_rows[i], applied_rows[0]) << runs[i].name;
    EXPECT_EQ(source_rows[i], source_rows[0]) << runs[i].name;
  }
  EXPECT_EQ(source_rows[0],
            (std::vector<std::vector<int64_t>>{{0, kBaseEpoch, kBaseEpoch + 24, kBaseEpoch + 24},
                                               {1, kBaseEpoch, kBaseEpoch + 24, kBaseEpoch + 24},
                                               {2, kBaseEpoch, kBaseEpoch + 24, kBaseEpoch + 24}}));
}

TEST(Stage2Test, ReopeningRestoresTheBucketsOnceAndRedeliveryChangesNothing) {
  TempDir dir{"traceslo_stage2_test"};
  Totals first_half;
  const std::vector<Input> early = MakeInputs(0, 9, &first_half);
  Totals all = first_half;
  const std::vector<Input> late_inputs = MakeInputs(10, 19, &all);
  const std::vector<Stage2Record> early_records = AsRecords(early, 1'000);
  {
    Process p(dir.path());
    EXPECT_EQ(p.stage->next_offset(), 0);
    EXPECT_EQ(p.stage->WatermarkMs(kSources), std::nullopt);
    p.Apply(std::span(early_records).first(10));
    p.Apply(std::span(early_records).subspan(10));
    EXPECT_EQ(p.stage->next_offset(), 1'000 + static_cast<int64_t>(early.size()));
  }
  Process p(dir.path());
  EXPECT_EQ(p.sink.calls, 1) << "the buckets arrive once, in one ShardDelta of this size";
  ExpectSameTotals(p.sink.totals, first_half, false, "restored");
  EXPECT_EQ(p.stage->next_offset(), 1'000 + static_cast<int64_t>(early.size()));
  EXPECT_EQ(p.stage->WatermarkMs(kSources), (kBaseEpoch + 10) * 1000);
  EXPECT_EQ(p.stage->ContiguousEpoch(1), kBaseEpoch + 9);
  EXPECT_EQ(p.stage->counters().applied, early.size());

  // Kafka redelivers from an older offset: all duplicates, nothing reaches the sink, and the
  // offset does not go back.
  const Stage2Counters redelivered = p.Apply(std::span(early_records).subspan(4, 10));
  EXPECT_EQ(redelivered.duplicates, 10u);
  EXPECT_EQ(redelivered.applied, 0u);
  EXPECT_EQ(p.sink.calls, 1);
  EXPECT_EQ(p.stage->next_offset(), 1'000 + static_cast<int64_t>(early.size()));

  const std::vector<Stage2Record> late_records =
      AsRecords(late_inputs, 1'000 + static_cast<int64_t>(early.size()));
  EXPECT_EQ(p.Apply(late_records).applied, late_inputs.size());
  ExpectSameTotals(p.sink.totals, all, false, "restored + applied");
  Totals later_only;
  MakeInputs(10, 19, &later_only);
  EXPECT_EQ(p.sink.totals.counters, later_only.counters);
  EXPECT_EQ(p.stage->next_offset(),
            1'000 + static_cast<int64_t>(early.size() + late_inputs.size()));
  EXPECT_EQ(p.stage->WatermarkMs(kSources), (kBaseEpoch + 20) * 1000);
  ExpectSameTotals(Restored(dir.path()), all, false, "restored again");
}

TEST(Stage2Test, AFailedTransactionLeavesNothingBehind) {
  TempDir dir{"traceslo_stage2_test"};
  Totals want_first;
  const std::vector<Input> first = MakeInputs(0, 4, &want_first);
  Totals want_all = want_first;
  const std::vector<Input> second = MakeInputs(5, 9, &want_all);
  const std::vector<Stage2Record> first_records = AsRecords(first, 0);
  const std::vector<Stage2Record> second_records =
      AsRecords(second, static_cast<int64_t>(first.size()));
  {
    Stage2Options options = Options();
    options.busy_timeout_ms = 50;
    Process p(dir.path(), options);
    p.Apply(first_records);
    const int calls = p.sink.calls;
    const Stage2Counters counters = p.stage->counters();
    const int64_t offset = p.stage->next_offset();
    const std::optional<int64_t> watermark = p.stage->WatermarkMs(kSources);

    // The last statement of the transaction fails: everything before it must roll back.
    {
      SQLite::Database other(Stage2Partition::FilePath(dir.path(), 0), SQLite::OPEN_READWRITE);
      other.exec(
          "CREATE TRIGGER fail BEFORE UPDATE ON kafka_offset "
          "BEGIN SELECT RAISE(ABORT, 'forced failure'); END");
    }
    absl::StatusOr<Stage2Counters> failed = p.stage->Apply(second_records);
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_NE(failed.status().message().find("forced failure"), std::string::npos)
        << failed.status();
    EXPECT_EQ(p.sink.calls, calls) << "nothing reaches the sink";
    EXPECT_EQ(p.stage->next_offset(), offset);
    EXPECT_EQ(p.stage->counters(), counters);
    EXPECT_EQ(p.stage->WatermarkMs(kSources), watermark);
    EXPECT_EQ(Rows(dir.path(), "SELECT next_offset FROM kafka_offset"),
              (std::vector<std::vector<int64_t>>{{offset}}));
    EXPECT_EQ(Rows(dir.path(), "SELECT count(*) FROM applied_epochs"),
              (std::vector<std::vector<int64_t>>{{static_cast<int64_t>(first.size())}}));
    ExpectSameTotals(p.sink.totals, want_first, false, "after the failure");

    // Busy: another writer holds the lock past the busy timeout.
    {
      SQLite::Database other(Stage2Partition::FilePath(dir.path(), 0), SQLite::OPEN_READWRITE);
      other.exec("DROP TRIGGER fail");
      SQLite::Transaction hold(other, SQLite::TransactionBehavior::IMMEDIATE);
      EXPECT_FALSE(p.stage->Apply(second_records).ok());
      EXPECT_EQ(p.sink.calls, calls);
      EXPECT_EQ(p.stage->next_offset(), offset);
    }
  }
  // What the file holds is the first batch only.
  ExpectSameTotals(Restored(dir.path()), want_first, false, "restored after the failure");
  Process p(dir.path());
  EXPECT_EQ(p.stage->next_offset(), static_cast<int64_t>(first.size()));
  const Stage2Counters retried = p.Apply(second_records);
  EXPECT_EQ(retried.applied, second.size());
  EXPECT_EQ(retried.duplicates, 0u);
  ExpectSameTotals(Restored(dir.path()), want_all, false, "after the retry");
}

TEST(Stage2Test, OtherConfigsOtherPartitionsAndGarbageAreRefusedAndCounted) {
  TempDir dir{"traceslo_stage2_test"};
  Stage2Options options = Options();
  options.config_hashes = {kHash, 0xbeef};  // a two-step rollout accepts both
  Process p(dir.path(), options);

  pipeline::SeriesRegistry names(100, 100);
  auto delta_of = [&](std::string service) {
    pipeline::ShardDelta delta;
    const pipeline::SeriesRegistry::Ids ids = names.Resolve(service, "op");
    pipeline::SeriesDelta d{
        .series = ids.series, .service = ids.service, .bucket = kBaseEpoch / 10, .requests = 2};
    d.classic[0] = 2;
    d.latency.Add(1'000'000, 2);
    delta.series.push_back(std::move(d));
    return delta;
  };
  std::vector<std::string> values;
  // Accepted: both hashes.
  values.push_back(EncodeDeltaBatches(Header(0, kBaseEpoch), delta_of("a"), names, 1)[0]);
  values.push_back(EncodeDeltaBatches(Header(1, kBaseEpoch, 0xbeef), delta_of("b"), names, 1)[0]);
  // Another configuration.
  values.push_back(
      EncodeDeltaBatches(Header(2, kBaseEpoch, 0xbad), delta_of("refused-config"), names, 1)[0]);
  // Another destination partition: of two partitions, the record for the one that is not ours.
  const std::string service_elsewhere = [] {
    for (int i = 0;; ++i) {
      std::string s = "elsewhere-" + std::to_string(i);
      if (DeltaPartitionOf(s, 2) == 1) return s;
    }
  }();
  values.push_back(
      EncodeDeltaBatches(Header(2, kBaseEpoch), delta_of(service_elsewhere), names, 2)[1]);
  // A source partition out of range, a negative epoch.
  values.push_back(
      EncodeDeltaBatches(Header(kSources, kBaseEpoch), delta_of("bad-source"), names, 1)[0]);
  values.push_back(EncodeDeltaBatches(Header(2, -5), delta_of("bad-epoch"), names, 1)[0]);
  // Counts that do not add up (built by hand: the encoder only writes consistent ones).
  {
    v1::DeltaBatch bad;
    bad.set_schema_version(kDeltaBatchSchemaVersion);
    bad.set_config_hash(kHash);
    bad.set_src_partition(2);
    bad.set_epoch(kBaseEpoch);
    v1::SeriesEntry& e = *bad.add_series();
    e.set_service("inconsistent");
    e.set_operation("op");
    e.set_requests(3);
    for (size_t i = 0; i < pipeline::kClassicBuckets; ++i) e.add_classic(0);
    values.push_back(bad.SerializeAsString());
  }
  // Not protobuf, empty (schema version 0), truncated, another schema version.
  values.push_back("\xff\xff\xff not a delta batch");
  values.push_back("");
  const std::string good = values[0];
  values.push_back(good.substr(0, good.size() / 2));
  {
    v1::DeltaBatch future;
    ASSERT_TRUE(future.ParseFromString(good));
    future.set_schema_version(2);
    future.set_src_partition(2);
    values.push_back(future.SerializeAsString());
  }
  std::vector<Stage2Record> records;
  for (const std::string& v : values) records.push_back({static_cast<int64_t>(records.size()), v});
  const Stage2Counters c = p.Apply(records);
  EXPECT_EQ(c.applied, 2u);
  EXPECT_EQ(c.refused_config, 1u);
  EXPECT_EQ(c.refused_partition, 1u);
  EXPECT_EQ(c.refused_invalid, 7u);
  EXPECT_EQ(c.duplicates, 0u);
  EXPECT_EQ(p.stage->next_offset(), static_cast<int64_t>(values.size()));
  EXPECT_EQ(p.sink.totals.series.size(), 2u);
  const SeriesKey a{"a", "op", kBaseEpoch / 10};
  const SeriesKey b{"b", "op", kBaseEpoch / 10};
  EXPECT_EQ(p.sink.totals.series[a].requests, 2u);
  EXPECT_EQ(p.sink.totals.series[b].requests, 2u);
  // Refused records leave no names behind (their headers are read before the entries).
  for (const char* name : {"refused-config", "bad-source", "bad-epoch", "inconsistent"}) {
    EXPECT_EQ(p.registry.FindService(name), -1) << name;
  }
  EXPECT_EQ(p.registry.FindService(service_elsewhere), -1);
  // Source 2's epoch was never applied: a valid record for it still is.
  EXPECT_EQ(p.stage->ContiguousEpoch(2), std::nullopt);

  // Mutated records (bit flips, truncations, splices): each counted once, never a crash.
  const google::protobuf::LogSilencer quiet;  // protobuf logs every string that is not UTF-8
  std::mt19937_64 random(3);
  std::vector<std::string> mutated;
  for (int i = 0; i < 3'000; ++i) {
    std::string v = values[random() % 2];
    switch (random() % 3) {
      case 0:
        for (int flips = 1 + static_cast<int>(random() % 4); flips > 0; --flips) {
          v[random() % v.size()] ^= static_cast<char>(1u << (random() % 8));
        }
        break;
      case 1:
        v.resize(random() % v.size());
        break;
      default:
        v.insert(random() % v.size(), values[random() % values.size()]);
    }
    mutated.push_back(std::move(v));
  }
  std::vector<Stage2Record> mutated_records;
  for (const std::string& v : mutated) {
    mutated_records.push_back({100 + static_cast<int64_t>(mutated_records.size()), v});
  }
  const Stage2Counters m = p.Apply(mutated_records);
  EXPECT_EQ(m.applied + m.duplicates + m.refused_invalid + m.refused_config + m.refused_partition +
                m.refused_too_late,
            mutated.size());
  EXPECT_GT(m.refused_invalid, 1'000u);
}

TEST(Stage2Test, WatermarkIsTheMinimumOverSourcesOfTheContiguousEpoch) {
  TempDir dir{"traceslo_stage2_test"};
  Process p(dir.path());
  pipeline::SeriesRegistry names(100, 100);
  auto record = [&](int32_t src, int64_t k) {
    return EncodeDeltaBatches(Header(src, kBaseEpoch + k), MakeDelta(names, src, k, nullptr), names,
                              1)[0];
  };
  int64_t offset = 0;
  auto apply = [&](std::vector<std::pair<int32_t, int64_t>> epochs) {
    std::vector<std::string> values;
    for (const auto& [src, k] : epochs) values.push_back(record(src, k));
    std::vector<Stage2Record> records;
    for (const std::string& v : values) records.push_back({offset++, v});
    return p.Apply(records);
  };
  auto ms = [](int64_t k) { return (kBaseEpoch + k) * 1000; };

  EXPECT_EQ(p.stage->WatermarkMs(kSources), std::nullopt);
  apply({{0, 10}, {0, 11}, {0, 12}});
  EXPECT_EQ(p.stage->WatermarkMs(1), ms(13));
  EXPECT_EQ(p.stage->WatermarkMs(kSources), std::nullopt) << "sources 1 and 2 have nothing yet";
  apply({{1, 10}, {1, 12}, {2, 10}, {2, 11}, {2, 12}, {2, 13}});
  EXPECT_EQ(p.stage->ContiguousEpoch(1), kBaseEpoch + 10) << "epoch 11 is missing";
  EXPECT_EQ(p.stage->WatermarkMs(kSources), ms(11)) << "the gap holds source 1 back";
  EXPECT_EQ(p.stage->WatermarkMs(1), ms(13));
  EXPECT_EQ(p.stage->FinalThroughMs(kSources, std::chrono::seconds(2)), ms(9));
  apply({{1, 13}});
  EXPECT_EQ(p.stage->WatermarkMs(kSources), ms(11)) << "still the gap";
  apply({{1, 11}});
  EXPECT_EQ(p.stage->ContiguousEpoch(1), kBaseEpoch + 13) << "11 fills the gap, 12 and 13 follow";
  EXPECT_EQ(p.stage->WatermarkMs(kSources), ms(13)) << "now source 0 is the slowest";
  EXPECT_EQ(p.stage->WatermarkMs(2), ms(13));
  // An epoch before a source's first one is applied but does not move its watermark.
  EXPECT_EQ(apply({{0, 8}}).applied, 1u);
  EXPECT_EQ(apply({{0, 8}}).duplicates, 1u);
  EXPECT_EQ(p.stage->WatermarkMs(1), ms(13));

  // The watermarks survive a restart.
  p.stage.reset();
  Process again(dir.path());
  EXPECT_EQ(again.stage->WatermarkMs(kSources), ms(13));
  EXPECT_EQ(again.stage->ContiguousEpoch(1), kBaseEpoch + 13);
  offset = again.stage->next_offset();
  const std::string dup = record(0, 8);
  const std::string after_gap = record(0, 14);
  const std::string gap = record(0, 13);
  const std::vector<Stage2Record> records = {
      {offset, dup}, {offset + 1, after_gap}, {offset + 2, gap}};
  const Stage2Counters c = *again.stage->Apply(records);
  EXPECT_EQ(c.duplicates, 1u) << "epoch 8, applied before the restart below the first epoch";
  EXPECT_EQ(c.applied, 2u);
  EXPECT_EQ(again.stage->ContiguousEpoch(0), kBaseEpoch + 14);
  EXPECT_EQ(again.stage->WatermarkMs(kSources), ms(14)) << "source 1 is at 13 now";
}

TEST(Stage2Test, RetentionPrunesOldBucketsAndEpochsAndRefusesWhatIsTooLateToCheck) {
  TempDir dir{"traceslo_stage2_test"};
  Stage2Options options = Options();
  options.source_partitions = 1;
  options.retention = std::chrono::seconds(120);
  options.applied_epoch_window = 30;
  options.allowed_lateness = std::chrono::seconds(20);
  Process p(dir.path(), options);
  pipeline::SeriesRegistry names(100, 100);
  // One request per epoch, in the epoch's own bucket (or an older one).
  auto record = [&](int64_t k, int64_t bucket) {
    pipeline::ShardDelta delta;
    const pipeline::SeriesRegistry::Ids ids = names.Resolve("svc", "op");
    pipeline::SeriesDelta d{
        .series = ids.series, .service = ids.service, .bucket = bucket, .requests = 1};
    d.classic[0] = 1;
    d.latency.Add(1'000'000);
    delta.series.push_back(std::move(d));
    return EncodeDeltaBatches(Header(0, kBaseEpoch + k), delta, names, 1)[0];
  };
  auto own_bucket = [](int64_t k) { return FloorDiv(kBaseEpoch + k, 10); };
  int64_t offset = 0;
  auto apply = [&](std::vector<std::pair<int64_t, int64_t>> epochs_and_buckets) {
    std::vector<std::string> values;
    for (const auto& [k, bucket] : epochs_and_buckets) values.push_back(record(k, bucket));
    std::vector<Stage2Record> records;
    for (const std::string& v : values) records.push_back({offset++, v});
    return p.Apply(records);
  };
  // Epochs 0 .. 399 in batches of 10, except epoch 50 (a gap).
  Stage2Counters total;
  for (int64_t k = 0; k < 400; k += 10) {
    std::vector<std::pair<int64_t, int64_t>> batch;
    for (int64_t j = k; j < k + 10; ++j) {
      if (j != 50) batch.push_back({j, own_bucket(j)});
    }
    total += apply(batch);
    if (k == 60) {
      EXPECT_EQ(p.stage->ContiguousEpoch(0), kBaseEpoch + 49) << "the gap holds it back";
    }
  }
  EXPECT_EQ(total.applied, 399u);
  EXPECT_EQ(total.abandoned_epochs, 1u) << "epoch 50 fell out of the window: moved past";
  EXPECT_EQ(p.stage->ContiguousEpoch(0), kBaseEpoch + 399);
  EXPECT_EQ(p.stage->OldestCheckedEpoch(0), kBaseEpoch + 370);
  EXPECT_EQ(Rows(dir.path(), "SELECT min(epoch), count(*) FROM applied_epochs"),
            (std::vector<std::vector<int64_t>>{{kBaseEpoch + 370, 30}}));

  // Buckets: those ending before watermark - retention are gone (deleted a minute at a time).
  const int64_t watermark_ms = (kBaseEpoch + 400) * 1000;
  EXPECT_EQ(p.stage->WatermarkMs(1), watermark_ms);
  const int64_t cutoff = FloorDiv(watermark_ms - 120'000, 10'000);
  const std::vector<std::vector<int64_t>> kept =
      Rows(dir.path(), "SELECT min(bucket), max(bucket) FROM series_buckets");
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_LE(kept[0][0], cutoff);
  EXPECT_GT(kept[0][0], cutoff - 6 - 1);
  EXPECT_EQ(kept[0][1], own_bucket(399));
  const Totals restored = Restored(dir.path());
  for (const auto& [key, sum] : restored.series) {
    EXPECT_GE(std::get<2>(key), kept[0][0]);
    // Every kept bucket but the first whole: 10 epochs, one request each.
    if (std::get<2>(key) > kept[0][0] && std::get<2>(key) < own_bucket(399)) {
      EXPECT_EQ(sum.requests, 10u) << std::get<2>(key);
    }
  }

  // Too late to check: refused. Within the window: a duplicate.
  const Stage2Counters old =
      apply({{369, own_bucket(369)}, {370, own_bucket(370)}, {50, own_bucket(50)}});
  EXPECT_EQ(old.refused_too_late, 2u);
  EXPECT_EQ(old.duplicates, 1u);
  EXPECT_EQ(old.applied, 0u);

  // A new epoch that adds to a bucket already final (ending 20 s before the watermark or more)
  // is merged and flagged late.
  const int calls = p.sink.calls;
  const int64_t final_bucket = FloorDiv(watermark_ms - 20'000, 10'000) - 1;
  const Stage2Counters late = apply({{400, final_bucket}, {401, own_bucket(401)}});
  EXPECT_EQ(late.applied, 2u);
  EXPECT_EQ(late.late, 1u);
  EXPECT_EQ(p.sink.calls, calls + 1);
  EXPECT_EQ(p.stage->counters().late, 1u);
  EXPECT_EQ(p.stage->counters().refused_too_late, 2u);
}

// Stage 1's own output: two otlp_spans partitions assembled by Stage1Partition, their records
// spread over two traceslo_deltas partitions, each merged by its own Stage2Partition with a
// replaying stage 1's re-sent epochs mixed in. Each partition's sink gets exactly the decoded
// records meant for it, and the watermark is where stage 1 sealed.
TEST(Stage2Test, MergesWhatStage1PublishesExactlyOnce) {
  namespace otlp = ::opentelemetry::proto;
  constexpr int64_t kBaseMs = kBaseEpoch * 1000;
  struct Collect final : EpochPublisher {
    void Publish(int64_t epoch, std::vector<std::string> records) override {
      published.emplace_back(epoch, std::move(records));
    }
    std::vector<std::pair<int64_t, std::vector<std::string>>> published;
  };
  pipeline::SeriesRegistry stage1_names(100, 100);
  std::array<Collect, 2> collected;
  for (int32_t src = 0; src < 2; ++src) {
    Stage1Options options;
    options.partition = src;
    options.dst_partitions = 2;
    options.config_hash = kHash;
    options.sli.trace_idle_timeout = std::chrono::seconds(2);
    Stage1Partition stage1(options, stage1_names, collected[static_cast<size_t>(src)],
                           CommitPoint{});
    std::mt19937_64 random(static_cast<uint64_t>(src) + 5);
    // Two services on each traceslo_deltas partition.
    std::vector<std::string> services;
    for (int i = 0, on_zero = 0, on_one = 0; services.size() < 4; ++i) {
      std::string name = "service-" + std::to_string(i);
      int& on = DeltaPartitionOf(name, 2) == 0 ? on_zero : on_one;
      if (on < 2) {
        ++on;
        services.push_back(std::move(name));
      }
    }
    int64_t at = kBaseMs;
    for (int t = 0; t < 300; ++t) {
      at += 20 + static_cast<int64_t>(random() % 80);
      otlp::collector::trace::v1::ExportTraceServiceRequest request;
      auto* resource = request.add_resource_spans();
      auto* attribute = resource->mutable_resource()->add_attributes();
      attribute->set_key("service.name");
      attribute->mutable_value()->set_string_value(services[random() % services.size()]);
      otlp::trace::v1::Span* span = resource->add_scope_spans()->add_spans();
      std::string trace_id(16, '\0');
      trace_id[0] = static_cast<char>(src + 1);
      trace_id[14] = static_cast<char>(t >> 8);
      trace_id[15] = static_cast<char>(t);
      span->set_trace_id(trace_id);
      span->set_span_id(std::string(7, '\0') + static_cast<char>(1 + t % 200));
      span->set_name(t % 3 == 0 ? "GET /a" : "POST /b");
      span->set_kind(otlp::trace::v1::Span::SPAN_KIND_SERVER);
      span->set_start_time_unix_nano(static_cast<uint64_t>(at - 30 - t % 50) * 1'000'000);
      span->set_end_time_unix_nano(static_cast<uint64_t>(at) * 1'000'000);
      if (random() % 7 == 0) {
        span->mutable_status()->set_code(otlp::trace::v1::Status::STATUS_CODE_ERROR);
      }
      stage1.Process(t, at, request.SerializeAsString());
    }
    EXPECT_EQ(stage1.counters().spans, 300u);
    EXPECT_EQ(stage1.counters().rejected_spans, 0u);
    EXPECT_EQ(stage1.counters().bad_records, 0u);
    stage1.AdvanceTo(at + 10'000 + 1'000 * src);  // every trace completes and is published
  }

  for (int32_t dst = 0; dst < 2; ++dst) {
    // What partition dst must end up with: every published record for it, decoded here.
    Totals want;
    pipeline::SeriesRegistry names(100, 100);
    std::vector<std::string> values;
    std::array<int64_t, 2> last_epoch{};
    uint64_t resent = 0;
    const size_t epochs = std::max(collected[0].published.size(), collected[1].published.size());
    for (size_t e = 0; e < epochs; ++e) {
      for (size_t src = 0; src < 2; ++src) {
        if (e >= collected[src].published.size()) continue;
        const auto& [epoch, records] = collected[src].published[e];
        absl::StatusOr<DecodedDeltaBatch> batch =
            DecodeDeltaBatch(records[static_cast<size_t>(dst)], {}, names);
        ASSERT_TRUE(batch.ok()) << batch.status();
        want.Add(batch->delta, names);
        values.push_back(records[static_cast<size_t>(dst)]);
        last_epoch[src] = epoch;
        // A replaying stage 1 re-sends source 0's epochs from five back, every 10 epochs.
        if (src == 0 && e % 10 == 9) {
          for (size_t back = e - 4; back <= e; ++back) {
            values.push_back(collected[0].published[back].second[static_cast<size_t>(dst)]);
            ++resent;
          }
        }
      }
    }
    ASSERT_GT(want.series.size(), 5u) << "dst " << dst;
    ASSERT_GT(epochs, 20u);
    ASSERT_GT(resent, 5u);
    TempDir dir{"traceslo_stage2_test"};
    Stage2Options options = Options();
    options.partition = dst;
    options.source_partitions = 2;
    Process p(dir.path(), options);
    std::vector<Stage2Record> records;
    for (const std::string& v : values) {
      records.push_back({static_cast<int64_t>(records.size()), v});
    }
    Stage2Counters sum;
    for (size_t at = 0; at < records.size(); at += 16) {
      sum += p.Apply(std::span(records).subspan(at, std::min<size_t>(16, records.size() - at)));
    }
    const std::string what = "dst " + std::to_string(dst);
    EXPECT_EQ(sum.applied, collected[0].published.size() + collected[1].published.size()) << what;
    EXPECT_EQ(sum.duplicates, resent) << what;
    EXPECT_EQ(sum.refused_invalid + sum.refused_config + sum.refused_partition +
                  sum.refused_too_late + sum.late,
              0u)
        << what;
    ExpectSameTotals(p.sink.totals, want, true, what);
    EXPECT_EQ(p.stage->WatermarkMs(2), (std::min(last_epoch[0], last_epoch[1]) + 1) * 1000) << what;
    EXPECT_EQ(p.stage->ContiguousEpoch(0), last_epoch[0]) << what;
    EXPECT_EQ(p.stage->ContiguousEpoch(1), last_epoch[1]) << what;
  }
}

// The process's real sink: the SliStore answers the windows the inputs add up to, before and
// after a restart (which restores it from the file alone).
TEST(Stage2Test, TheSliStoreAnswersWhatTheRecordsAddUpTo) {
  TempDir dir{"traceslo_stage2_test"};
  Totals want;
  const std::vector<Input> inputs = MakeInputs(0, 29, &want);
  auto check = [&](const pipeline::SliStore& store, const pipeline::SeriesRegistry& registry,
                   const std::string& what) {
    for (const auto& [key, w] : want.series) {
      const int64_t series = registry.FindSeries(std::get<0>(key), std::get<1>(key));
      ASSERT_GE(series, 0) << what;
      const pipeline::WindowStats got =
          store.SeriesWindow(static_cast<uint32_t>(series), std::get<2>(key), std::get<2>(key));
      EXPECT_EQ(got.requests, w.requests) << what;
      EXPECT_EQ(got.errors, w.errors) << what;
      EXPECT_TRUE(got.latency == w.latency) << what;
    }
    for (const auto& [key, w] : want.services) {
      const int64_t service = registry.FindService(std::get<0>(key));
      ASSERT_GE(service, 0) << what;
      const pipeline::WindowStats got =
          store.ServiceWindow(static_cast<uint32_t>(service), std::get<1>(key), std::get<1>(key));
      EXPECT_EQ((std::array<uint64_t, 5>{got.traces, got.error_traces_root, got.error_traces_origin,
                                         got.partial_traces, got.propagation_breaks}),
                w)
          << what;
    }
  };
  {
    pipeline::SeriesRegistry registry(100, 100);
    pipeline::SliStore store(pipeline::SliStoreOptions{});
    absl::StatusOr<std::unique_ptr<Stage2Partition>> stage =
        Stage2Partition::Open(dir.path(), Options(), registry, store);
    ASSERT_TRUE(stage.ok()) << stage.status();
    const std::vector<Stage2Record> records = AsRecords(inputs, 0);
    for (size_t at = 0; at < records.size(); at += 8) {
      ASSERT_TRUE(
          (*stage)
              ->Apply(std::span(records).subspan(at, std::min<size_t>(8, records.size() - at)))
              .ok());
    }
    ASSERT_TRUE((*stage)->Apply(records).ok());  // all again: duplicates
    check(store, registry, "applied");
    EXPECT_EQ(store.Totals().late_spans, want.counters[0]);
  }
  pipeline::SeriesRegistry registry(100, 100);
  pipeline::SliStore store(pipeline::SliStoreOptions{});
  absl::StatusOr<std::unique_ptr<Stage2Partition>> stage =
      Stage2Partition::Open(dir.path(), Options(), registry, store);
  ASSERT_TRUE(stage.ok()) << stage.status();
  check(store, registry, "restored");
}

TEST(Stage2Test, OpenRefusesBadOptionsAnotherPartitionsFileAndDamage) {
  TempDir dir{"traceslo_stage2_test"};
  pipeline::SeriesRegistry registry(10, 10);
  CapturingSink sink(registry);
  Stage2Options no_hash = Options();
  no_hash.config_hashes.clear();
  EXPECT_EQ(Stage2Partition::Open(dir.path(), no_hash, registry, sink).status().code(),
            absl::StatusCode::kInvalidArgument);
  { Process p(dir.path()); }
  // A file renamed into another partition's place, or read with another epoch length.
  std::filesystem::rename(Stage2Partition::FilePath(dir.path(), 0),
                          Stage2Partition::FilePath(dir.path(), 4));
  Stage2Options four = Options();
  four.partition = 4;
  EXPECT_EQ(Stage2Partition::Open(dir.path(), four, registry, sink).status().code(),
            absl::StatusCode::kFailedPrecondition);
  std::filesystem::rename(Stage2Partition::FilePath(dir.path(), 4),
                          Stage2Partition::FilePath(dir.path(), 0));
  Stage2Options slow = Options();
  slow.epoch_length = std::chrono::seconds(2);
  EXPECT_EQ(Stage2Partition::Open(dir.path(), slow, registry, sink).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Stage2Partition::FilePath("/data", 7), "/data/stage2-p7.db");

  // Restoring in small batches gives the same buckets.
  Totals want;
  const std::vector<Input> inputs = MakeInputs(0, 9, &want);
  { Process(dir.path()).Apply(AsRecords(inputs, 0)); }
  Stage2Options small = Options();
  small.restore_batch = 3;
  {
    Process p(dir.path(), small);
    EXPECT_GT(p.sink.calls, 3);
    ExpectSameTotals(p.sink.totals, want, false, "restored 3 at a time");
  }
  // A damaged bucket: Apply() refuses to merge into it, Open() to restore it (before the sink
  // is given anything).
  {
    Process p(dir.path());
    const int calls = p.sink.calls;
    {
      SQLite::Database db(Stage2Partition::FilePath(dir.path(), 0), SQLite::OPEN_READWRITE);
      db.exec(
          "UPDATE series_buckets SET entry = x'ffff' "
          "WHERE bucket = (SELECT max(bucket) FROM series_buckets)");
    }
    const std::vector<Input> more = MakeInputs(10, 14, nullptr);
    absl::StatusOr<Stage2Counters> damaged = p.stage->Apply(AsRecords(more, 100));
    EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss) << damaged.status();
    EXPECT_EQ(p.sink.calls, calls);
  }
  CapturingSink untouched(registry);
  EXPECT_EQ(Stage2Partition::Open(dir.path(), Options(), registry, untouched).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(untouched.calls, 0);
}

// A replaying stage 1 that decides otherwise than the first time re-sends an epoch with other
// content: still a duplicate (the applied one stays), and counted as divergent. The same content
// in another entry order is not; the check also holds after a reopen (digests in the file).
TEST(Stage2Test, AReSentEpochWithOtherContentIsCountedDivergent) {
  TempDir dir{"traceslo_stage2_test"};
  Totals want;
  const std::vector<Input> inputs = MakeInputs(0, 9, &want);
  pipeline::SeriesRegistry names(100, 100);
  auto encode = [&](int32_t src, int64_t k, bool reversed, int64_t content_k) {
    pipeline::ShardDelta delta = MakeDelta(names, src, content_k, nullptr);
    if (reversed) {
      std::reverse(delta.series.begin(), delta.series.end());
      std::reverse(delta.services.begin(), delta.services.end());
    }
    return EncodeDeltaBatches(Header(src, kBaseEpoch + k), delta, names, 1).at(0);
  };
  // Epoch 3 of source 1: the same content reordered, then another epoch's content under it.
  const std::string same = encode(1, 3, true, 3);
  const std::string other = encode(1, 3, false, 7);
  ASSERT_NE(same, inputs[3 * kSources + 1].value) << "the reordered record has other bytes";
  {
    Process p(dir.path());
    p.Apply(AsRecords(inputs, 0));
    const std::vector<Stage2Record> again = {{100, same}, {101, inputs[5].value}};
    const Stage2Counters c = p.Apply(again);
    EXPECT_EQ(c.duplicates, 2u);
    EXPECT_EQ(c.divergent, 0u);
    const std::vector<Stage2Record> diverging = {{102, other}};
    const Stage2Counters d = p.Apply(diverging);
    EXPECT_EQ(d.duplicates, 1u);
    EXPECT_EQ(d.divergent, 1u);
    EXPECT_EQ(d.applied, 0u);
    ExpectSameTotals(p.sink.totals, want, true, "the applied records only");
    // Within one call too: the first of two records of a new epoch is applied, the second
    // (other content) diverges.
    const std::string first = encode(2, 10, false, 10);
    const std::string second = encode(2, 10, false, 11);
    const std::vector<Stage2Record> pair = {{103, first}, {104, second}};
    const Stage2Counters e = p.Apply(pair);
    EXPECT_EQ(e.applied, 1u);
    EXPECT_EQ(e.divergent, 1u);
  }
  Process reopened(dir.path());
  const std::vector<Stage2Record> later = {{105, other}, {106, same}};
  const Stage2Counters f = reopened.Apply(later);
  EXPECT_EQ(f.duplicates, 2u);
  EXPECT_EQ(f.divergent, 1u);
  EXPECT_EQ(reopened.stage->counters().divergent, 3u);
}

// --- The traceslo_state changelog ------------------------------------------------------------

Stage2Options ChangelogOptions() {
  Stage2Options options = Options();
  options.changelog = true;
  return options;
}

// A state topic's partition as a vector in offset order.
using Topic = std::vector<StateRecord>;

// Takes a snapshot onto `topic`; `delivered`: and tells the partition it was delivered.
void Append(Topic& topic, Stage2Partition& stage, bool delivered = true) {
  absl::StatusOr<std::optional<StateSnapshot>> snapshot = stage.Snapshot();
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  if (!snapshot->has_value()) return;
  topic.insert(topic.end(), (*snapshot)->buckets.begin(), (*snapshot)->buckets.end());
  topic.push_back((*snapshot)->checkpoint);
  if (delivered) {
    ASSERT_TRUE(stage.SnapshotDelivered(**snapshot).ok());
  }
}

// What a compacted topic keeps: the latest record of each key, in offset order; tombstones too
// (Kafka removes them later, after delete.retention.ms).
Topic Compacted(const Topic& topic) {
  std::map<std::string, size_t> latest;
  for (size_t i = 0; i < topic.size(); ++i) latest[topic[i].key] = i;
  Topic out;
  for (size_t i = 0; i < topic.size(); ++i) {
    if (latest[topic[i].key] == i) out.push_back(topic[i]);
  }
  return out;
}

// The kind of a record's key (the test reads the format on its own).
v1::StateKey KeyOf(const StateRecord& record) {
  v1::StateKey key;
  EXPECT_TRUE(key.ParseFromString(record.key));
  return key;
}

// A process that takes the partition over from the changelog alone.
struct Restorer {
  Restorer(const std::string& dir, const Topic& topic, Stage2Options options = ChangelogOptions())
      : sink(registry), reader(options.partition) {
    for (const StateRecord& r : topic) reader.Add(r.key, r.value);
    absl::StatusOr<std::unique_ptr<Stage2Partition>> opened =
        Stage2Partition::OpenRestored(dir, std::move(options), reader, registry, sink);
    EXPECT_TRUE(opened.ok()) << opened.status();
    if (opened.ok()) stage = std::move(*opened);
  }
  pipeline::SeriesRegistry registry{1000, 1000};
  CapturingSink sink;
  StateChangelogReader reader;
  std::unique_ptr<Stage2Partition> stage;
};

TEST(Stage2ChangelogTest, AnotherInstanceTakesThePartitionOverFromTheChangelogAlone) {
  TempDir dir_a{"traceslo_stage2_test"};
  TempDir dir_b{"traceslo_stage2_test"};
  Totals early_want;
  const std::vector<Input> early = MakeInputs(0, 14, &early_want);
  Totals all_want = early_want;
  const std::vector<Input> later = MakeInputs(15, 29, &all_want);
  const std::vector<Stage2Record> early_records = AsRecords(early, 500);
  const std::vector<Stage2Record> later_records =
      AsRecords(later, 500 + static_cast<int64_t>(early.size()));

  Topic topic;
  Process a(dir_a.path(), ChangelogOptions());
  // Three snapshots over the early records; the second and third send only what changed.
  std::vector<size_t> sizes;
  for (size_t at = 0; at < early_records.size(); at += 15) {
    a.Apply(std::span(early_records).subspan(at, std::min<size_t>(15, early_records.size() - at)));
    const size_t before = topic.size();
    Append(topic, *a.stage);
    sizes.push_back(topic.size() - before);
  }
  ASSERT_EQ(sizes.size(), 3u);
  // Records 15-29 are epochs 5-9 of the three sources: the second snapshot sends their buckets
  // (counted from the inputs) and the checkpoint, nothing of epochs 0-4.
  Totals second_batch;
  MakeInputs(5, 9, &second_batch);
  EXPECT_EQ(sizes[1], second_batch.series.size() + second_batch.services.size() + 1)
      << "a later snapshot sends the changed buckets only";
  EXPECT_EQ(KeyOf(topic.back()).kind(), v1::StateKey::CHECKPOINT) << "the checkpoint goes last";
  {
    absl::StatusOr<std::optional<StateSnapshot>> none = a.stage->Snapshot();
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none->has_value()) << "nothing changed, nothing sent";
  }

  for (const Topic& log : {topic, Compacted(topic)}) {
    TempDir dir{"traceslo_stage2_test"};
    Restorer b(dir.path(), log);
    ASSERT_NE(b.stage, nullptr);
    EXPECT_EQ(b.reader.invalid(), 0u);
    EXPECT_EQ(b.reader.cut_short(), 0u);
    ExpectSameTotals(b.sink.totals, early_want, false, "restored from the changelog");
    EXPECT_EQ(b.stage->next_offset(), a.stage->next_offset());
    EXPECT_EQ(b.stage->WatermarkMs(kSources), a.stage->WatermarkMs(kSources));
    EXPECT_EQ(b.stage->counters(), a.stage->counters());
    for (int32_t src = 0; src < kSources; ++src) {
      EXPECT_EQ(b.stage->ContiguousEpoch(src), a.stage->ContiguousEpoch(src));
      EXPECT_EQ(b.stage->FirstEpoch(src), a.stage->FirstEpoch(src));
    }
  }

  // B resumes where the checkpoint points: a redelivery of epochs A applied is all duplicates,
  // the rest adds up to what every record adds up to, and B's file is A's.
  Restorer b(dir_b.path(), topic);
  ASSERT_NE(b.stage, nullptr);
  absl::StatusOr<Stage2Counters> again = b.stage->Apply(std::span(early_records).subspan(20, 10));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->duplicates, 10u);
  ASSERT_TRUE(b.stage->Apply(later_records).ok());
  ExpectSameTotals(b.sink.totals, all_want, false, "restored, then the rest");
  a.Apply(later_records);
  for (const char* sql : {"SELECT src, epoch FROM applied_epochs ORDER BY 1, 2",
                          "SELECT * FROM sources ORDER BY 1", "SELECT * FROM kafka_offset"}) {
    EXPECT_EQ(Rows(dir_b.path(), sql), Rows(dir_a.path(), sql)) << sql;
  }
  ExpectSameTotals(Restored(dir_b.path()), all_want, false, "B's file");
}

TEST(Stage2ChangelogTest, ASnapshotCutShortIsLeftOutAndSentAgainByTheNextOwner) {
  TempDir dir_a{"traceslo_stage2_test"};
  Totals first_want;
  const std::vector<Input> first = MakeInputs(0, 9, &first_want);
  const std::vector<Input> second = MakeInputs(10, 19, nullptr);
  Topic topic;
  Process a(dir_a.path(), ChangelogOptions());
  a.Apply(AsRecords(first, 0));
  Append(topic, *a.stage);
  a.Apply(AsRecords(second, static_cast<int64_t>(first.size())));
  absl::StatusOr<std::optional<StateSnapshot>> snapshot = a.stage->Snapshot();
  ASSERT_TRUE(snapshot.ok());
  ASSERT_TRUE(snapshot->has_value());
  const std::vector<StateRecord>* cut = &(*snapshot)->buckets;
  ASSERT_GT(cut->size(), 3u);
  // A crash after half of the second snapshot: bucket records without their checkpoint.
  const size_t sent = cut->size() / 2;
  topic.insert(topic.end(), cut->begin(), cut->begin() + static_cast<std::ptrdiff_t>(sent));

  TempDir dir_b{"traceslo_stage2_test"};
  Restorer b(dir_b.path(), topic);
  ASSERT_NE(b.stage, nullptr);
  EXPECT_EQ(b.reader.cut_short(), sent);
  ExpectSameTotals(b.sink.totals, first_want, false, "the state of the last checkpoint");
  EXPECT_EQ(b.stage->next_offset(), static_cast<int64_t>(first.size()));

  // B's first snapshot sends those keys again with the values it restored, so that whatever
  // compaction keeps is consistent: the compacted topic then restores B's state.
  Topic repair;
  Append(repair, *b.stage);
  std::set<std::string> repaired;
  for (const StateRecord& r : repair) repaired.insert(r.key);
  for (size_t i = 0; i < sent; ++i) EXPECT_TRUE(repaired.contains((*cut)[i].key)) << i;
  EXPECT_EQ(repair.size(), sent + 1) << "only those keys, and the checkpoint";
  topic.insert(topic.end(), repair.begin(), repair.end());
  TempDir dir_c{"traceslo_stage2_test"};
  Restorer c(dir_c.path(), Compacted(topic));
  ASSERT_NE(c.stage, nullptr);
  EXPECT_EQ(c.reader.cut_short(), 0u);
  ExpectSameTotals(c.sink.totals, first_want, false, "after the repair, compacted");
}

TEST(Stage2ChangelogTest, DeletedBucketsBecomeTombstonesAndBadRecordsAreCounted) {
  TempDir dir{"traceslo_stage2_test"};
  Stage2Options options = ChangelogOptions();
  options.retention = std::chrono::seconds(60);
  Process a(dir.path(), options);
  Topic topic;
  // 40 s of epochs, snapshot, then 200 s more: the first buckets fall out of the retention.
  a.Apply(AsRecords(MakeInputs(0, 39, nullptr), 0));
  Append(topic, *a.stage);
  std::set<std::string> early_keys;
  for (const StateRecord& r : topic) {
    if (KeyOf(r).kind() != v1::StateKey::CHECKPOINT) early_keys.insert(r.key);
  }
  Totals late_want;
  a.Apply(AsRecords(MakeInputs(40, 239, &late_want), 1'000));
  const size_t before = topic.size();
  Append(topic, *a.stage);
  // Buckets made and deleted between two snapshots get a tombstone too (harmless).
  size_t early_tombstones = 0;
  for (size_t i = before; i < topic.size(); ++i) {
    if (topic[i].value.empty() && early_keys.contains(topic[i].key)) ++early_tombstones;
  }
  EXPECT_EQ(early_tombstones, early_keys.size()) << "every early bucket was deleted, and said so";

  // Garbage among the records is counted and skipped; the state is the same.
  Topic noisy = Compacted(topic);
  noisy.insert(noisy.begin(), StateRecord{"not a key", "not a value"});
  noisy.insert(noisy.begin() + 1, StateRecord{noisy[2].key, "\xff\xff"});
  v1::StateKey other = KeyOf(noisy.back());
  other.set_partition(3);
  noisy.push_back(StateRecord{other.SerializeAsString(), noisy.back().value});
  TempDir dir_b{"traceslo_stage2_test"};
  Restorer b(dir_b.path(), noisy, options);
  ASSERT_NE(b.stage, nullptr);
  EXPECT_EQ(b.reader.invalid(), 3u);
  // What is left after the retention: the buckets of the later epochs still kept by A.
  ExpectSameTotals(b.sink.totals, Restored(dir.path()), false, "restored");
  EXPECT_EQ(b.stage->next_offset(), a.stage->next_offset());

  // No checkpoint at all: refused, and nothing reached the sink.
  Topic no_checkpoint(topic.begin(), topic.begin() + 3);
  pipeline::SeriesRegistry registry(100, 100);
  CapturingSink sink(registry);
  StateChangelogReader reader(0);
  for (const StateRecord& r : no_checkpoint) reader.Add(r.key, r.value);
  TempDir dir_c{"traceslo_stage2_test"};
  EXPECT_EQ(
      Stage2Partition::OpenRestored(dir_c.path(), options, reader, registry, sink).status().code(),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sink.calls, 0);
  EXPECT_FALSE(std::filesystem::exists(Stage2Partition::FilePath(dir_c.path(), 0)));
}

// Outbox records (the handoff of pending notifications): the latest record of each (receiver,
// id) counts wherever it stands relative to checkpoints; a tombstone ends it; bad ones are
// counted and skipped; past max_outbox, new ones are refused.
TEST(Stage2ChangelogTest, OutboxRecordsAreTheLatestOfEachNotification) {
  const OutboxItem one{.receiver = "hook", .id = "n-1", .notification = "{\"id\":\"n-1\"}"};
  const OutboxItem two{.receiver = "hook", .id = "n-2", .notification = "{\"id\":\"n-2\"}"};
  const OutboxItem three{.receiver = "pager", .id = "n-1", .notification = "{\"id\":\"x\"}"};
  const OutboxItem four{.receiver = "pager", .id = "n-4", .notification = "{\"id\":\"n-4\"}"};
  auto done = [](OutboxItem item) {
    item.notification.clear();
    return item;
  };
  TempDir dir{"traceslo_stage2_test"};
  Process a(dir.path(), ChangelogOptions());
  a.Apply(AsRecords(MakeInputs(0, 9, nullptr), 0));
  Topic topic;
  topic.push_back(OutboxStateRecord(0, one));
  topic.push_back(OutboxStateRecord(0, two));
  Append(topic, *a.stage);  // a checkpoint between them
  topic.push_back(OutboxStateRecord(0, done(one)));
  topic.push_back(OutboxStateRecord(0, three));
  topic.push_back(OutboxStateRecord(0, four));
  topic.push_back(OutboxStateRecord(0, done(four)));
  topic.push_back(OutboxStateRecord(1, two));  // another partition's: invalid here
  v1::StateKey no_id;
  no_id.set_kind(v1::StateKey::OUTBOX);
  no_id.set_receiver("hook");
  topic.push_back({no_id.SerializeAsString(), OutboxStateRecord(0, one).value});
  v1::StateKey long_id = no_id;
  long_id.set_notification_id(std::string(kMaxOutboxIdBytes + 1, 'i'));
  topic.push_back({long_id.SerializeAsString(), OutboxStateRecord(0, one).value});
  // An outbox key with a bucket's value.
  const auto bucket = std::find_if(topic.begin(), topic.end(), [](const StateRecord& r) {
    return KeyOf(r).kind() == v1::StateKey::SERIES;
  });
  ASSERT_NE(bucket, topic.end());
  topic.push_back({OutboxStateRecord(0, four).key, bucket->value});
  StateChangelogReader reader(0);
  for (const StateRecord& r : topic) reader.Add(r.key, r.value);
  EXPECT_EQ(reader.outbox(), (std::vector<OutboxItem>{two, three}))
      << "n-1 of hook delivered, n-4 of pager too; n-2 of hook and n-1 of pager pending";
  EXPECT_EQ(reader.invalid(), 4u);
  EXPECT_EQ(reader.cut_short(), 0u) << "outbox records do not wait for a checkpoint";
  // The buckets' state is untouched by them: it restores as before.
  TempDir dir_b{"traceslo_stage2_test"};
  Restorer b(dir_b.path(), topic, ChangelogOptions());
  ASSERT_NE(b.stage, nullptr);
  EXPECT_EQ(b.stage->next_offset(), a.stage->next_offset());

  // The cap: a new notification past it is refused; one already held still changes.
  StateChangelogReader capped(0, StateReaderLimits{.max_outbox = 1});
  capped.Add(OutboxStateRecord(0, two).key, OutboxStateRecord(0, two).value);
  capped.Add(OutboxStateRecord(0, four).key, OutboxStateRecord(0, four).value);
  EXPECT_EQ(capped.outbox(), std::vector<OutboxItem>{two});
  EXPECT_EQ(capped.invalid(), 1u);
  capped.Add(OutboxStateRecord(0, done(two)).key, "");
  EXPECT_TRUE(capped.outbox().empty());

  // An outbox value without a notification is refused (it could never be sent).
  v1::StateValue empty;
  empty.set_schema_version(1);
  empty.mutable_outbox();
  StateChangelogReader hollow(0);
  hollow.Add(OutboxStateRecord(0, two).key, empty.SerializeAsString());
  EXPECT_TRUE(hollow.outbox().empty());
  EXPECT_EQ(hollow.invalid(), 1u);
}

// Alert records (the handoff of alert episodes): the latest record of each alert, a tombstone
// ends it; an unknown severity, an empty name or another kind's value is counted and skipped.
TEST(Stage2ChangelogTest, AlertRecordsAreTheLatestOfEachAlert) {
  const FiringAlert page{.service = "checkout",
                         .slo = "availability",
                         .severity = "page",
                         .active_since_unix_nano = 10,
                         .fired_at_unix_nano = 20};
  FiringAlert again = page;
  again.fired_at_unix_nano = 90;
  FiringAlert ticket = page;
  ticket.severity = "ticket";
  FiringAlert no_data = page;
  no_data.no_data = true;
  FiringAlert critical = page;
  critical.severity = "critical";
  FiringAlert unnamed = page;
  unnamed.slo.clear();
  StateChangelogReader reader(0);
  for (const StateRecord& r :
       {AlertStateRecord(0, page), AlertStateRecord(0, ticket), AlertStateRecord(0, no_data),
        AlertStateRecord(0, again), AlertStateRecord(0, ticket, false),
        AlertStateRecord(0, critical), AlertStateRecord(0, unnamed), AlertStateRecord(1, page),
        StateRecord{
            AlertStateRecord(0, ticket).key,
            OutboxStateRecord(0, {.receiver = "r", .id = "i", .notification = "n"}).value}}) {
    reader.Add(r.key, r.value);
  }
  std::vector<FiringAlert> got = reader.alerts();
  std::sort(got.begin(), got.end(), [](const FiringAlert& a, const FiringAlert& b) {
    return std::tie(a.severity, a.no_data) < std::tie(b.severity, b.no_data);
  });
  EXPECT_EQ(got, (std::vector<FiringAlert>{again, no_data}));
  EXPECT_EQ(reader.invalid(), 4u);
  EXPECT_TRUE(reader.outbox().empty());
}

TEST(Stage2ChangelogTest, ChangesNotDeliveredGoAgainAfterARestart) {
  TempDir dir{"traceslo_stage2_test"};
  Totals all_want;
  const std::vector<Input> first = MakeInputs(0, 9, &all_want);
  Totals second_want;
  const std::vector<Input> second = MakeInputs(10, 19, &second_want);
  MakeInputs(10, 19, &all_want);
  Topic topic;
  {
    Process a(dir.path(), ChangelogOptions());
    a.Apply(AsRecords(first, 0));
    Append(topic, *a.stage);
    a.Apply(AsRecords(second, static_cast<int64_t>(first.size())));
    Topic lost;
    Append(lost, *a.stage, /*delivered=*/false);
    ASSERT_FALSE(lost.empty());
  }  // killed before the second snapshot was delivered
  Process a(dir.path(), ChangelogOptions());
  Topic again;
  Append(again, *a.stage);
  std::set<std::string> keys;
  for (const StateRecord& r : again) {
    if (KeyOf(r).kind() != v1::StateKey::CHECKPOINT) keys.insert(r.key);
  }
  EXPECT_EQ(keys.size(), second_want.series.size() + second_want.services.size())
      << "what the second batch changed, from the file, and nothing of the first";
  topic.insert(topic.end(), again.begin(), again.end());
  TempDir dir_b{"traceslo_stage2_test"};
  Restorer b(dir_b.path(), Compacted(topic));
  ASSERT_NE(b.stage, nullptr);
  ExpectSameTotals(b.sink.totals, all_want, false, "restored");
  EXPECT_EQ(b.stage->next_offset(), static_cast<int64_t>(first.size() + second.size()));
}

}  // namespace
}  // namespace traceslo::kafka
