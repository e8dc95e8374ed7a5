// Error-signature details in the traceslo_deltas record: what names an alert's cause (exception
// type, messages, top frame, statuses, trace ids) goes out with the service's other entries,
// comes back field for field in another process's registry, is refused with the problem named
// (before any name reaches the registry), and reaches the SLI store's signature registry through
// stage 2 once per (source, epoch). Expected values are the test's own inputs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
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

using pipeline::SeriesRegistry;
using pipeline::ShardDelta;
using pipeline::SignatureDelta;

constexpr uint64_t kHash = 0x5eed;
constexpr int64_t kEpoch = 1'800'000'000;  // unix seconds: epochs of 1 s
constexpr int64_t kNanos = kEpoch * 1'000'000'000;

TraceId Trace(uint8_t seed) {
  TraceId id{};
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(seed + i);
  return id;
}

// One signature as a shard reports it, with every field set.
struct Sig {
  uint64_t id;
  std::string service;
  std::string operation;
  uint64_t count;
  int64_t first_seen;
  int64_t last_seen;
  int32_t http_status;
  int32_t rpc_status;
  std::string exception_type;
  std::string normalized_message;
  std::string sample_message;
  std::string top_frame;
  std::vector<TraceId> trace_ids;
};

const std::vector<Sig>& Sigs() {
  static const std::vector<Sig> sigs = {
      {0x195886b8a1c2d3e4,
       "checkout",
       "POST /cart",
       3,
       kNanos + 10,
       kNanos + 900,
       500,
       -1,
       "ServiceError",
       "request <num> failed after <num> ms",
       "request 42 failed after 1200 ms",
       "Cart.add (cart.py)",
       {Trace(1), Trace(2)}},
      {0x2222,
       "payment",
       "charge",
       1,
       kNanos + 5,
       kNanos + 5,
       0,
       14,
       "",
       "connection refused to <ip>",
       "connection refused to 10.0.0.7:5432",
       "",
       {Trace(20), Trace(21), Trace(22), Trace(23), Trace(24)}},
      {0x3333,
       "inventory",
       "reserve",
       2,
       kNanos + 1,
       kNanos + 2,
       409,
       -1,
       "ConflictError",
       "item <str> reserved",
       "item 'sku-9' reserved",
       "Stock.reserve (stock.go)",
       {Trace(40)}},
      {0x4444,
       "gateway",
       "GET /",
       7,
       kNanos + 3,
       kNanos + 800,
       502,
       2,
       "UpstreamError",
       "bad gateway",
       "bad gateway",
       "",
       {}},
  };
  return sigs;
}

SignatureDelta DeltaOf(const Sig& s, SeriesRegistry& names) {
  SignatureDelta d;
  d.id = s.id;
  d.series = names.Resolve(s.service, s.operation).series;
  d.count = s.count;
  d.first_seen_unix_nano = s.first_seen;
  d.last_seen_unix_nano = s.last_seen;
  d.http_status = s.http_status;
  d.rpc_status = s.rpc_status;
  d.exception_type = s.exception_type;
  d.normalized_message = s.normalized_message;
  d.sample_message = s.sample_message;
  d.top_frame = s.top_frame;
  d.trace_ids = s.trace_ids;
  return d;
}

void ExpectSame(const SignatureDelta& got, const Sig& want, const SeriesRegistry& names) {
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(names.ServiceName(names.ServiceOf(got.series)), want.service);
  EXPECT_EQ(names.OperationName(got.series), want.operation);
  EXPECT_EQ(got.count, want.count);
  EXPECT_EQ(got.first_seen_unix_nano, want.first_seen);
  EXPECT_EQ(got.last_seen_unix_nano, want.last_seen);
  EXPECT_EQ(got.http_status, want.http_status);
  EXPECT_EQ(got.rpc_status, want.rpc_status);
  EXPECT_EQ(got.exception_type, want.exception_type);
  EXPECT_EQ(got.normalized_message, want.normalized_message);
  EXPECT_EQ(got.sample_message, want.sample_message);
  EXPECT_EQ(got.top_frame, want.top_frame);
  EXPECT_EQ(got.trace_ids, want.trace_ids);
}

DeltaBatchHeader Header(int32_t src, int64_t epoch) {
  return DeltaBatchHeader{.config_hash = kHash,
                          .src_topic = "otlp_spans",
                          .src_partition = src,
                          .epoch = epoch,
                          .stream_time_ms = (epoch + 1) * 1000,
                          .dst_partition = 0};
}

// One error entry span of `service`/`operation` with `signature`, as a shard counts it.
void AddErrorRequest(ShardDelta& delta, SeriesRegistry& names, const std::string& service,
                     const std::string& operation, uint64_t signature, uint64_t count) {
  const SeriesRegistry::Ids ids = names.Resolve(service, operation);
  pipeline::SeriesDelta& d = delta.series.emplace_back();
  d.series = ids.series;
  d.service = ids.service;
  d.bucket = kEpoch / pipeline::kBucketSeconds;
  d.requests = count;
  d.errors = count;
  const uint64_t nanos = 20'000'000;
  d.sum_seconds = static_cast<double>(count * nanos) / 1e9;
  d.classic[pipeline::ClassicBucketOf(nanos)] = count;
  d.latency.Add(nanos, count);
  d.signatures.push_back({.id = signature, .count = count});
}

TEST(DeltaSignaturesTest, EveryFieldComesBackInAnotherRegistryOnItsServicesPartition) {
  SeriesRegistry source(100, 100);
  SeriesRegistry other(100, 100);
  other.Resolve("unrelated", "first");  // the reader's ids differ from the writer's
  ShardDelta delta;
  for (const Sig& s : Sigs()) delta.signatures.push_back(DeltaOf(s, source));
  constexpr int32_t kPartitions = 4;
  const std::vector<std::string> records =
      EncodeDeltaBatches(Header(2, kEpoch), delta, source, kPartitions);
  ASSERT_EQ(records.size(), static_cast<size_t>(kPartitions));

  std::map<uint64_t, SignatureDelta> got;
  for (int32_t p = 0; p < kPartitions; ++p) {
    absl::StatusOr<DecodedDeltaBatch> decoded =
        DecodeDeltaBatch(records[static_cast<size_t>(p)], DeltaBatchLimits{}, other);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    for (const SignatureDelta& d : decoded->delta.signatures) {
      // On the partition of its service, computed here with the Collector-compatible
      // partitioner.
      EXPECT_EQ(Fnv1aPartition(other.ServiceName(other.ServiceOf(d.series)), kPartitions), p);
      EXPECT_TRUE(got.emplace(d.id, d).second) << "id " << d.id << " twice";
    }
  }
  ASSERT_EQ(got.size(), Sigs().size());
  for (const Sig& s : Sigs()) {
    SCOPED_TRACE(s.service);
    ASSERT_TRUE(got.contains(s.id));
    ExpectSame(got.at(s.id), s, other);
  }
}

TEST(DeltaSignaturesTest, ARecordOfAnOlderWriterHasNoDetailsAndAnOlderReaderSkipsThem) {
  SeriesRegistry names(100, 100);
  ShardDelta delta;
  AddErrorRequest(delta, names, "checkout", "POST /cart", 0x195886b8a1c2d3e4, 3);
  const std::string without = EncodeDeltaBatches(Header(0, kEpoch), delta, names, 1).at(0);
  absl::StatusOr<DecodedDeltaBatch> decoded = DecodeDeltaBatch(without, DeltaBatchLimits{}, names);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(decoded->delta.signatures.empty());
  EXPECT_EQ(decoded->delta.series.size(), 1u);

  // A reader of the schema before field 14 sees the same record (field 14 is unknown to it).
  delta.signatures.push_back(DeltaOf(Sigs()[0], names));
  const std::string with = EncodeDeltaBatches(Header(0, kEpoch), delta, names, 1).at(0);
  v1::DeltaBatch old_reader;
  ASSERT_TRUE(old_reader.ParseFromString(with));
  EXPECT_EQ(old_reader.schema_version(), kDeltaBatchSchemaVersion);
  old_reader.clear_signature_details();
  EXPECT_EQ(old_reader.SerializeAsString(), without);
}

// A valid record of one destination partition: an error series and the four signatures.
v1::DeltaBatch ValidBatch() {
  SeriesRegistry names(100, 100);
  ShardDelta delta;
  AddErrorRequest(delta, names, "checkout", "POST /cart", 0x195886b8a1c2d3e4, 3);
  for (const Sig& s : Sigs()) delta.signatures.push_back(DeltaOf(s, names));
  v1::DeltaBatch batch;
  EXPECT_TRUE(batch.ParseFromString(EncodeDeltaBatches(Header(0, kEpoch), delta, names, 1).at(0)));
  EXPECT_EQ(batch.signature_details_size(), 4);
  return batch;
}

TEST(DeltaSignaturesTest, ABadDetailIsRefusedByNameAndAddsNoNameToTheRegistry) {
  const std::vector<testutil::RefusalCase> cases = {
      {"signature_details[2]: trace id of 7 bytes",
       [](v1::DeltaBatch& b) { b.mutable_signature_details(2)->set_trace_ids(0, "1234567"); }},
      {"signature_details[3]: trace id of 17 bytes",
       [](v1::DeltaBatch& b) {
         b.mutable_signature_details(3)->add_trace_ids(std::string(17, 'x'));
       }},
      {"signature_details[3]: trace id of 0 bytes",
       [](v1::DeltaBatch& b) { b.mutable_signature_details(3)->add_trace_ids(""); }},
      {"signature_details[1]: 6 trace ids, more than 5",
       [](v1::DeltaBatch& b) {
         b.mutable_signature_details(1)->add_trace_ids(std::string(16, 'x'));
       }},
      {"signature_details[2].service is empty",
       [](v1::DeltaBatch& b) { b.mutable_signature_details(2)->clear_service(); }},
      {"signature_details[1].operation is empty",
       [](v1::DeltaBatch& b) { b.mutable_signature_details(1)->clear_operation(); }},
      {"signature_details[3].service is 1025 bytes, more than 1024",
       [](v1::DeltaBatch& b) {
         b.mutable_signature_details(3)->set_service(std::string(1025, 's'));
       }},
      {"signature_details[2].exception_type is 1025 bytes, more than 1024",
       [](v1::DeltaBatch& b) {
         b.mutable_signature_details(2)->set_exception_type(std::string(1025, 'e'));
       }},
      {"signature_details[2].normalized_message is 1025 bytes, more than 1024",
       [](v1::DeltaBatch& b) {
         b.mutable_signature_details(2)->set_normalized_message(std::string(1025, 'n'));
       }},
      {"signature_details[2].sample_message is 1025 bytes, more than 1024",
       [](v1::DeltaBatch& b) {
         b.mutable_signature_details(2)->set_sample_message(std::string(1025, 'm'));
       }},
      {"signature_details[2].top_frame is 101 bytes, more than 100",
       [](v1::DeltaBatch& b) {
         b.mutable_signature_details(2)->set_top_frame(std::string(101, 'f'));
       },
       DeltaBatchLimits{.max_message_bytes = 100}},
      {"4 signature details, more than 3", [](v1::DeltaBatch&) {},
       DeltaBatchLimits{.max_signature_details = 3}},
  };
  testutil::ExpectEachRefused(cases, &ValidBatch);
  // The limits the cases spoil are exact: at them, the record is accepted.
  v1::DeltaBatch batch = ValidBatch();
  batch.mutable_signature_details(2)->set_exception_type(std::string(1024, 'e'));
  batch.mutable_signature_details(2)->set_top_frame(std::string(1024, 'f'));
  SeriesRegistry reader(100, 100);
  absl::StatusOr<DecodedDeltaBatch> decoded = DecodeDeltaBatch(
      batch.SerializeAsString(), DeltaBatchLimits{.max_signature_details = 4}, reader);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->delta.signatures.size(), 4u);
  EXPECT_EQ(decoded->delta.signatures[1].trace_ids.size(), pipeline::kMaxSignatureTraces);
}

Stage2Options Options() {
  Stage2Options options;
  options.partition = 0;
  options.source_partitions = 2;
  options.config_hashes = {kHash};
  return options;
}

// Stage 2 of one process: its registry, its SLI store and one open partition.
struct Process {
  explicit Process(const std::string& dir) : store(pipeline::SliStoreOptions{}) {
    absl::StatusOr<std::unique_ptr<Stage2Partition>> opened =
        Stage2Partition::Open(dir, Options(), registry, store);
    EXPECT_TRUE(opened.ok()) << opened.status();
    if (opened.ok()) stage = std::move(*opened);
  }
  SeriesRegistry registry{100, 100};
  pipeline::SliStore store;
  std::unique_ptr<Stage2Partition> stage;
};

// What two stage-1 partitions (each a process of its own) write for one epoch: source 0 saw
// ServiceError 3 times in checkout, source 1 twice more (one newer trace) and a timeout in
// payment.
std::vector<std::string> TwoSourcesRecords() {
  SeriesRegistry names0(100, 100);
  ShardDelta delta0;
  AddErrorRequest(delta0, names0, "checkout", "POST /cart", Sigs()[0].id, 3);
  delta0.signatures.push_back(DeltaOf(Sigs()[0], names0));

  SeriesRegistry names1(100, 100);
  names1.Resolve("payment", "charge");  // another process, other ids
  ShardDelta delta1;
  AddErrorRequest(delta1, names1, "checkout", "POST /cart", Sigs()[0].id, 2);
  SignatureDelta again = DeltaOf(Sigs()[0], names1);
  again.count = 2;
  again.first_seen_unix_nano = kNanos + 400;
  again.last_seen_unix_nano = kNanos + 950;
  again.trace_ids = {Trace(3)};
  delta1.signatures.push_back(std::move(again));
  SignatureDelta timeout;
  timeout.id = 0x7777;
  timeout.series = names1.Resolve("payment", "charge").series;
  timeout.count = 1;
  timeout.first_seen_unix_nano = kNanos + 7;
  timeout.last_seen_unix_nano = kNanos + 7;
  timeout.rpc_status = 4;
  timeout.exception_type = "TimeoutError";
  timeout.normalized_message = "deadline of <num>ms exceeded";
  timeout.sample_message = "deadline of 250ms exceeded";
  timeout.top_frame = "Payments.charge (payments.ts)";
  timeout.trace_ids = {Trace(70)};
  delta1.signatures.push_back(std::move(timeout));

  return {EncodeDeltaBatches(Header(0, kEpoch), delta0, names0, 1).at(0),
          EncodeDeltaBatches(Header(1, kEpoch), delta1, names1, 1).at(0)};
}

TEST(DeltaSignaturesTest, AppliedDetailsNameTheCausesInTheSliStoreOncePerEpoch) {
  TempDir dir{"traceslo_delta_signatures_test"};
  Process p(dir.path());
  ASSERT_NE(p.stage, nullptr);
  const std::vector<std::string> values = TwoSourcesRecords();
  const std::vector<Stage2Record> records = {{.offset = 0, .value = values[0]},
                                             {.offset = 1, .value = values[1]}};
  absl::StatusOr<Stage2Counters> counters = p.stage->Apply(records);
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_EQ(counters->applied, 2u);

  std::optional<pipeline::SignatureInfo> error = p.store.Signature(Sigs()[0].id);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->exception_type, "ServiceError");
  EXPECT_EQ(error->normalized_message, "request <num> failed after <num> ms");
  EXPECT_EQ(error->sample_message, "request 42 failed after 1200 ms");
  EXPECT_EQ(error->top_frame, "Cart.add (cart.py)");
  EXPECT_EQ(error->http_status, 500);
  EXPECT_EQ(error->rpc_status, -1);
  EXPECT_EQ(error->count, 3u + 2u);
  EXPECT_EQ(error->first_seen_unix_nano, kNanos + 10);
  EXPECT_EQ(error->last_seen_unix_nano, kNanos + 950);
  EXPECT_EQ(error->trace_ids, (std::vector<TraceId>{Trace(1), Trace(2), Trace(3)}));
  EXPECT_EQ(p.registry.ServiceName(p.registry.ServiceOf(error->series)), "checkout");
  EXPECT_EQ(p.registry.OperationName(error->series), "POST /cart");

  std::optional<pipeline::SignatureInfo> timeout = p.store.Signature(0x7777);
  ASSERT_TRUE(timeout.has_value());
  EXPECT_EQ(timeout->exception_type, "TimeoutError");
  EXPECT_EQ(timeout->normalized_message, "deadline of <num>ms exceeded");
  EXPECT_EQ(timeout->rpc_status, 4);
  EXPECT_EQ(timeout->count, 1u);
  EXPECT_EQ(timeout->trace_ids, std::vector<TraceId>{Trace(70)});
  EXPECT_EQ(p.registry.ServiceName(p.registry.ServiceOf(timeout->series)), "payment");
  EXPECT_EQ(p.registry.OperationName(timeout->series), "charge");

  // The same counts reached the SLI store's signature counts of the series.
  const int64_t series = p.registry.FindSeries("checkout", "POST /cart");
  ASSERT_GE(series, 0);
  const int64_t bucket = kEpoch / pipeline::kBucketSeconds;
  EXPECT_EQ(p.store.SignatureCounts({static_cast<uint32_t>(series)}, bucket, bucket),
            (std::vector<pipeline::SignatureCount>{{.id = Sigs()[0].id, .count = 5}}));
  const std::vector<pipeline::SignatureInfo> before = p.store.Signatures();
  ASSERT_EQ(before.size(), 2u);

  // Redelivered (and a stage-1 replay of source 0's epoch): duplicates, nothing added.
  const std::vector<Stage2Record> again = {{.offset = 2, .value = values[1]},
                                           {.offset = 3, .value = values[0]}};
  counters = p.stage->Apply(again);
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_EQ(counters->duplicates, 2u);
  EXPECT_EQ(counters->applied, 0u);
  EXPECT_EQ(p.store.Signature(Sigs()[0].id)->count, 5u);
  EXPECT_EQ(p.store.Signature(Sigs()[0].id)->trace_ids,
            (std::vector<TraceId>{Trace(1), Trace(2), Trace(3)}));
  EXPECT_EQ(p.store.Signature(0x7777)->count, 1u);
  EXPECT_EQ(p.store.Signatures().size(), before.size());
}

TEST(DeltaSignaturesTest, ARefusedRecordGivesTheStoreNoSignatureAndTheRegistryNoName) {
  TempDir dir{"traceslo_delta_signatures_test"};
  Process p(dir.path());
  ASSERT_NE(p.stage, nullptr);
  SeriesRegistry names(100, 100);
  ShardDelta delta;
  SignatureDelta bad = DeltaOf(Sigs()[2], names);
  delta.signatures.push_back(bad);
  bad.id = 0x9999;
  bad.series = names.Resolve("ghost", "haunt").series;
  delta.signatures.push_back(bad);
  v1::DeltaBatch batch;
  ASSERT_TRUE(batch.ParseFromString(EncodeDeltaBatches(Header(0, kEpoch), delta, names, 1).at(0)));
  batch.mutable_signature_details(1)->set_trace_ids(0, "1234567");
  const std::string value = batch.SerializeAsString();
  absl::StatusOr<Stage2Counters> counters =
      p.stage->Apply(std::vector<Stage2Record>{{.offset = 0, .value = value}});
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_EQ(counters->refused_invalid, 1u);
  EXPECT_TRUE(p.store.Signatures().empty());
  EXPECT_FALSE(p.store.Signature(Sigs()[2].id).has_value());
  EXPECT_EQ(p.registry.FindService("inventory"), -1);
  EXPECT_EQ(p.registry.FindService("ghost"), -1);
}

TEST(DeltaSignaturesTest, DetailsAreNotKeptInThePartitionFile) {
  TempDir dir{"traceslo_delta_signatures_test"};
  const std::vector<std::string> values = TwoSourcesRecords();
  {
    Process p(dir.path());
    ASSERT_NE(p.stage, nullptr);
    const std::vector<Stage2Record> records = {{.offset = 0, .value = values[0]},
                                               {.offset = 1, .value = values[1]}};
    ASSERT_TRUE(p.stage->Apply(records).ok());
    EXPECT_EQ(p.store.Signatures().size(), 2u);
  }
  // A restart gives the store the buckets back, their signature counts included, but no
  // details: the registry fills again from new records.
  Process p(dir.path());
  ASSERT_NE(p.stage, nullptr);
  const int64_t series = p.registry.FindSeries("checkout", "POST /cart");
  ASSERT_GE(series, 0);
  const int64_t bucket = kEpoch / pipeline::kBucketSeconds;
  EXPECT_EQ(p.store.SignatureCounts({static_cast<uint32_t>(series)}, bucket, bucket),
            (std::vector<pipeline::SignatureCount>{{.id = Sigs()[0].id, .count = 5}}));
  EXPECT_TRUE(p.store.Signatures().empty());
}

// An error storm of distinct signatures: one record carries at most
// kMaxSignatureDetailBytesPerRecord of details (plus the entry that crossed it); the counts of
// every signature still travel in the series entries.
TEST(DeltaSignaturesTest, DetailsPastTheRecordsBudgetAreLeftOutButCountsTravel) {
  SeriesRegistry names(100, 100);
  ShardDelta delta;
  constexpr int kSignatures = 2'000;
  const std::string long_message(900, 'm');
  uint64_t errors = 0;
  for (int i = 0; i < kSignatures; ++i) {
    const uint64_t id = 0x1000 + static_cast<uint64_t>(i);
    AddErrorRequest(delta, names, "checkout", "op" + std::to_string(i % 50), id, 1);
    ++errors;
    SignatureDelta d = DeltaOf(Sigs()[0], names);
    d.id = id;
    d.series = names.Resolve("checkout", "op" + std::to_string(i % 50)).series;
    d.count = 1;
    d.sample_message = long_message.substr(0, 256);
    d.normalized_message = long_message.substr(0, 512);
    delta.signatures.push_back(std::move(d));
  }
  const std::vector<std::string> records = EncodeDeltaBatches(Header(0, kEpoch), delta, names, 1);
  ASSERT_EQ(records.size(), 1u);
  v1::DeltaBatch batch;
  ASSERT_TRUE(batch.ParseFromString(records[0]));
  size_t detail_bytes = 0;
  size_t largest = 0;
  for (const v1::SignatureEntry& e : batch.signature_details()) {
    detail_bytes += e.ByteSizeLong();
    largest = std::max(largest, e.ByteSizeLong());
  }
  EXPECT_GT(batch.signature_details_size(), 0);
  EXPECT_LT(batch.signature_details_size(), kSignatures) << "some details left out";
  EXPECT_LE(detail_bytes, kMaxSignatureDetailBytesPerRecord + largest);
  EXPECT_GE(detail_bytes, kMaxSignatureDetailBytesPerRecord);
  uint64_t counted = 0;
  for (const v1::SeriesEntry& e : batch.series()) {
    for (const v1::SignatureCount& c : e.signatures()) counted += c.count();
  }
  EXPECT_EQ(counted, errors) << "every signature's count travels";
}

}  // namespace
}  // namespace traceslo::kafka
