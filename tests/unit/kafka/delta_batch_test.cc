// The traceslo_deltas record: a shard delta goes out as one record per destination partition and
// comes back, in another process's registry, with every count, sketch and signature; bad records
// are refused with the problem named, before any name reaches the registry.
#include "traceslo/kafka/delta_batch.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <tuple>

#include "traceslo/kafka/partitioning.h"
#include "traceslo/v1/delta_batch.pb.h"

namespace traceslo::kafka {
namespace {

using pipeline::SeriesDelta;
using pipeline::SeriesRegistry;
using pipeline::ServiceDelta;
using pipeline::ShardDelta;

// What a shard counts for one entry span (as SliShardProcessor::CountRequest does).
void AddRequest(SeriesDelta& d, uint64_t nanos, uint64_t signature) {
  ++d.requests;
  d.sum_seconds += static_cast<double>(nanos) * 1e-9;
  ++d.classic[pipeline::ClassicBucketOf(nanos)];
  d.latency.Add(nanos);
  if (signature != 0) {
    ++d.errors;
    auto it = std::find_if(d.signatures.begin(), d.signatures.end(),
                           [&](const pipeline::SignatureCount& c) { return c.id == signature; });
    if (it == d.signatures.end()) {
      d.signatures.push_back({.id = signature, .count = 1});
    } else {
      ++it->count;
    }
  }
}

using Key = std::tuple<std::string, std::string, int64_t>;  // service, operation, bucket

std::map<Key, SeriesDelta> ByName(const ShardDelta& delta, const SeriesRegistry& registry) {
  std::map<Key, SeriesDelta> out;
  for (const SeriesDelta& d : delta.series) {
    out[{std::string(registry.ServiceName(d.service)),
         std::string(registry.OperationName(d.series)), d.bucket}] = d;
  }
  return out;
}

TEST(DeltaBatchTest, EveryCountComesBackInAnotherRegistryOnItsServicesPartition) {
  SeriesRegistry source(100, 100);
  SeriesRegistry other(100, 100);
  other.Resolve("unrelated", "first");  // the reader's ids differ from the writer's
  ShardDelta delta;
  delta.late_spans = 3;
  delta.evicted_traces = 4;
  delta.clock_skew_spans = 5;
  delta.truncated_spans = 6;
  std::mt19937_64 random(7);
  std::lognormal_distribution<double> millis(std::log(50.0), 1.0);
  const std::vector<std::pair<std::string, std::string>> names = {
      {"checkout", "POST /cart"}, {"checkout", "GET /cart"}, {"payment", "charge"},
      {"inventory", "reserve"},   {"gateway", "GET /"},      {"database", "SELECT"}};
  for (const auto& [service, operation] : names) {
    for (int64_t bucket : {180'000'000, 180'000'001}) {
      SeriesDelta& d = delta.series.emplace_back();
      const SeriesRegistry::Ids ids = source.Resolve(service, operation);
      d.series = ids.series;
      d.service = ids.service;
      d.bucket = bucket;
      for (int i = 0; i < 200; ++i) {
        const uint64_t signature = random() % 10 == 0 ? 0x1000 + random() % 3 : 0;
        AddRequest(d, static_cast<uint64_t>(millis(random) * 1e6), signature);
      }
    }
  }
  for (const std::string service : {"checkout", "payment", "gateway"}) {
    delta.services.push_back(ServiceDelta{.service = source.ResolveService(service),
                                          .bucket = 180'000'000,
                                          .traces = 90,
                                          .error_traces_root = 4,
                                          .error_traces_origin = 3,
                                          .partial_traces = 2,
                                          .propagation_breaks = 1});
  }
  const DeltaBatchHeader header{.config_hash = 0xfeedface12345678,
                                .src_topic = "otlp_spans",
                                .src_partition = 11,
                                .epoch = 1'800'000'123,
                                .stream_time_ms = 1'800'000'123'456,
                                .dst_partition = 99};
  constexpr int32_t kPartitions = 4;
  const std::vector<std::string> records = EncodeDeltaBatches(header, delta, source, kPartitions);
  ASSERT_EQ(records.size(), static_cast<size_t>(kPartitions));

  ShardDelta merged;
  for (int32_t p = 0; p < kPartitions; ++p) {
    absl::StatusOr<DecodedDeltaBatch> decoded =
        DecodeDeltaBatch(records[static_cast<size_t>(p)], DeltaBatchLimits{}, other);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    DeltaBatchHeader expected_header = header;
    expected_header.dst_partition = p;
    EXPECT_EQ(decoded->header, expected_header);
    // Each service's entries are on the partition its name hashes to (computed here with the
    // Collector-compatible partitioner), and the epoch's counters only on partition 0.
    for (const SeriesDelta& d : decoded->delta.series) {
      EXPECT_EQ(Fnv1aPartition(other.ServiceName(d.service), kPartitions), p);
    }
    for (const ServiceDelta& d : decoded->delta.services) {
      EXPECT_EQ(Fnv1aPartition(other.ServiceName(d.service), kPartitions), p);
    }
    EXPECT_EQ(decoded->delta.late_spans, p == 0 ? 3u : 0u);
    EXPECT_EQ(decoded->delta.evicted_traces, p == 0 ? 4u : 0u);
    EXPECT_EQ(decoded->delta.clock_skew_spans, p == 0 ? 5u : 0u);
    EXPECT_EQ(decoded->delta.truncated_spans, p == 0 ? 6u : 0u);
    for (SeriesDelta& d : decoded->delta.series) merged.series.push_back(std::move(d));
    for (ServiceDelta& d : decoded->delta.services) merged.services.push_back(d);
  }

  const std::map<Key, SeriesDelta> want = ByName(delta, source);
  const std::map<Key, SeriesDelta> got = ByName(merged, other);
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [key, w] : want) {
    const auto it = got.find(key);
    ASSERT_NE(it, got.end()) << std::get<0>(key) << " " << std::get<1>(key);
    const SeriesDelta& g = it->second;
    EXPECT_EQ(g.requests, w.requests);
    EXPECT_EQ(g.errors, w.errors);
    EXPECT_EQ(g.sum_seconds, w.sum_seconds);
    EXPECT_EQ(g.classic, w.classic);
    EXPECT_EQ(g.signatures, w.signatures);
    EXPECT_EQ(g.latency.Count(), w.latency.Count());
    for (double q : {0.5, 0.95, 0.99}) {
      EXPECT_EQ(g.latency.QuantileNanos(q), w.latency.QuantileNanos(q)) << q;
    }
    EXPECT_EQ(other.ServiceOf(g.series), g.service);
  }
  ASSERT_EQ(merged.services.size(), 3u);
  for (const ServiceDelta& d : merged.services) {
    EXPECT_EQ(d.traces, 90u);
    EXPECT_EQ(d.error_traces_root, 4u);
    EXPECT_EQ(d.error_traces_origin, 3u);
    EXPECT_EQ(d.partial_traces, 2u);
    EXPECT_EQ(d.propagation_breaks, 1u);
  }
}

// A valid one-series record to break in the tests below.
v1::DeltaBatch ValidBatch() {
  v1::DeltaBatch batch;
  batch.set_schema_version(1);
  batch.set_src_topic("otlp_spans");
  v1::SeriesEntry& e = *batch.add_series();
  e.set_service("payment");
  e.set_operation("charge");
  e.set_bucket(180'000'000);
  e.set_requests(3);
  e.set_errors(1);
  for (size_t b = 0; b < pipeline::kClassicBuckets; ++b) e.add_classic(b == 2 ? 3 : 0);
  pipeline::LatencySketch sketch;
  for (uint64_t nanos : {20'000'000, 30'000'000, 40'000'000}) sketch.Add(nanos);
  std::string encoded;
  sketch.AppendEncoded(encoded);
  e.set_latency(encoded);
  v1::SignatureCount& s = *e.add_signatures();
  s.set_id(0xabc);
  s.set_count(1);
  batch.add_services()->set_service("payment");
  return batch;
}

TEST(DeltaBatchTest, BadRecordsAreRefusedWithTheProblemNamed) {
  struct Case {
    std::string name;
    std::function<void(v1::DeltaBatch&)> breaks;
    std::string message;
  };
  const std::string long_name(1025, 'x');
  const std::vector<Case> cases = {
      {"schema", [](v1::DeltaBatch& b) { b.set_schema_version(2); },
       "schema_version 2 (this traceslo reads 1)"},
      {"no schema", [](v1::DeltaBatch& b) { b.clear_schema_version(); },
       "schema_version 0 (this traceslo reads 1)"},
      {"empty service", [](v1::DeltaBatch& b) { b.mutable_series(0)->clear_service(); },
       "series[0].service is empty"},
      {"empty operation", [](v1::DeltaBatch& b) { b.mutable_series(0)->clear_operation(); },
       "series[0].operation is empty"},
      {"long name", [&](v1::DeltaBatch& b) { b.mutable_series(0)->set_operation(long_name); },
       "series[0].operation is 1025 bytes, more than 1024"},
      {"classic size", [](v1::DeltaBatch& b) { b.mutable_series(0)->add_classic(0); },
       "series[0]: " + std::to_string(pipeline::kClassicBuckets + 1) +
           " classic buckets, expected " + std::to_string(pipeline::kClassicBuckets)},
      {"errors", [](v1::DeltaBatch& b) { b.mutable_series(0)->set_errors(4); },
       "series[0]: 4 errors of 3 requests"},
      {"classic sum", [](v1::DeltaBatch& b) { b.mutable_series(0)->set_classic(0, 1); },
       "series[0]: classic buckets count 4, requests 3"},
      {"classic overflow",
       [](v1::DeltaBatch& b) {
         b.mutable_series(0)->set_classic(0, ~uint64_t{0});
         b.mutable_series(0)->set_classic(1, 4);
       },
       "series[0]: classic buckets count"},
      {"sketch", [](v1::DeltaBatch& b) { b.mutable_series(0)->set_latency("\xff\x01"); },
       "series[0].latency: a malformed sketch"},
      {"sketch count",
       [](v1::DeltaBatch& b) {
         pipeline::LatencySketch sketch;
         sketch.Add(1'000'000);
         std::string encoded;
         sketch.AppendEncoded(encoded);
         b.mutable_series(0)->set_latency(encoded);
       },
       "series[0].latency counts 1 durations, requests 3"},
      {"signatures",
       [](v1::DeltaBatch& b) { b.mutable_series(0)->mutable_signatures(0)->set_count(2); },
       "series[0]: signature counts sum to 2, errors 1"},
      {"service entry", [](v1::DeltaBatch& b) { b.mutable_services(0)->clear_service(); },
       "services[0].service is empty"},
      {"partition", [](v1::DeltaBatch& b) { b.set_src_partition(-1); },
       "negative partition (src -1, dst 0)"},
  };
  for (const Case& c : cases) {
    v1::DeltaBatch batch = ValidBatch();
    c.breaks(batch);
    SeriesRegistry registry(100, 100);
    absl::StatusOr<DecodedDeltaBatch> decoded =
        DecodeDeltaBatch(batch.SerializeAsString(), DeltaBatchLimits{}, registry);
    ASSERT_FALSE(decoded.ok()) << c.name;
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(decoded.status().message().find("delta batch: " + c.message), std::string::npos)
        << c.name << ": " << decoded.status().message();
    EXPECT_EQ(registry.series_count(), 0u) << c.name << ": nothing reaches the registry";
    EXPECT_EQ(registry.service_count(), 0u) << c.name;
  }
  SeriesRegistry registry(100, 100);
  ASSERT_TRUE(DecodeDeltaBatch(ValidBatch().SerializeAsString(), {}, registry).ok());
}

TEST(DeltaBatchTest, LimitsAndGarbage) {
  SeriesRegistry registry(100, 100);
  EXPECT_EQ(DecodeDeltaBatch("\x0a\xff\xff", {}, registry).status().message(),
            "delta batch: not a traceslo.v1.DeltaBatch protobuf");
  v1::DeltaBatch two = ValidBatch();
  *two.add_series() = two.series(0);
  const std::string bytes = two.SerializeAsString();
  EXPECT_EQ(DecodeDeltaBatch(bytes, {.max_series = 1}, registry).status().message(),
            "delta batch: 2 series, more than 1");
  EXPECT_EQ(DecodeDeltaBatch(bytes, {.max_bytes = 10}, registry).status().message(),
            "delta batch: " + std::to_string(bytes.size()) + " bytes, more than 10");
  EXPECT_EQ(DecodeDeltaBatch(bytes, {.max_services = 0}, registry).status().message(),
            "delta batch: 1 services, more than 0");
  EXPECT_EQ(registry.series_count(), 0u);
  ASSERT_TRUE(DecodeDeltaBatch(bytes, {}, registry).ok());
  EXPECT_EQ(registry.series_count(), 1u);
}

}  // namespace
}  // namespace traceslo::kafka
