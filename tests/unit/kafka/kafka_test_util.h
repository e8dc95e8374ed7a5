#pragma once

// What the kafka unit tests share: OTLP export requests built from test spans, the decoded
// content of published DeltaBatch records, a recording EpochPublisher and librdkafka clients.

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "traceslo/common/span.h"
#include "traceslo/kafka/delta_batch.h"
#include "traceslo/kafka/stage1.h"
#include "traceslo/v1/delta_batch.pb.h"

namespace traceslo::kafka::testutil {

namespace otlp = ::opentelemetry::proto;
using PbRequest = otlp::collector::trace::v1::ExportTraceServiceRequest;
using PbSpan = otlp::trace::v1::Span;

// Stream time the test corpora start at (unix milliseconds).
inline constexpr int64_t kBaseMs = 1'800'000'000'000;

// ---- OTLP export requests. ----

struct TestSpan {
  TraceId trace{};
  uint64_t id = 0;
  uint64_t parent = 0;  // 0: a root
  std::string service;
  std::string name;
  PbSpan::SpanKind kind = PbSpan::SPAN_KIND_SERVER;
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  bool error = false;
  bool entry = false;  // counted as a request of its service (where a test counts requests)
};

// `value`'s low `n` bytes, big-endian.
inline std::string Bytes(uint64_t value, int n) {
  std::string out(static_cast<size_t>(n), '\0');
  for (int i = n - 1; i >= 0; --i, value >>= 8) {
    out[static_cast<size_t>(i)] = static_cast<char>(value);
  }
  return out;
}

// The trace id whose high and low 8 bytes are `high` and `low`, big-endian.
inline TraceId TraceIdOf(uint64_t high, uint64_t low) {
  const std::string bytes = Bytes(high, 8) + Bytes(low, 8);
  TraceId id{};
  std::copy(bytes.begin(), bytes.end(), id.begin());
  return id;
}

// One export request, a resource (with its service.name) per span; a failed span has status
// ERROR with `error_message`.
inline std::string Encode(const std::vector<TestSpan>& spans,
                          std::string_view error_message = "card declined") {
  PbRequest request;
  for (const TestSpan& s : spans) {
    auto* resource = request.add_resource_spans();
    auto* attribute = resource->mutable_resource()->add_attributes();
    attribute->set_key("service.name");
    attribute->mutable_value()->set_string_value(s.service);
    PbSpan* span = resource->add_scope_spans()->add_spans();
    span->set_trace_id(std::string(s.trace.begin(), s.trace.end()));
    span->set_span_id(Bytes(s.id, 8));
    if (s.parent != 0) span->set_parent_span_id(Bytes(s.parent, 8));
    span->set_name(s.name);
    span->set_kind(s.kind);
    span->set_start_time_unix_nano(static_cast<uint64_t>(s.start_ms) * 1'000'000);
    span->set_end_time_unix_nano(static_cast<uint64_t>(s.end_ms) * 1'000'000);
    if (s.error) {
      span->mutable_status()->set_code(otlp::trace::v1::Status::STATUS_CODE_ERROR);
      span->mutable_status()->set_message(std::string(error_message));
    }
  }
  return request.SerializeAsString();
}

// ---- The content of published DeltaBatch records. ----

// The decoded content of one epoch's records, by name, to compare records of two runs whose
// series may be listed in another order (the series registry's ids differ). Sums are compared to
// 1e-9 relative (the order of additions may differ between runs).
struct SeriesSummary {
  uint64_t requests = 0, errors = 0, sketch_count = 0;
  double sum_seconds = 0, p50 = 0, p99 = 0;
  std::array<uint64_t, pipeline::kClassicBuckets> classic{};
  std::vector<pipeline::SignatureCount> signatures;
};
struct EpochContent {
  // By (dst partition, service, operation, bucket).
  std::map<std::tuple<int, std::string, std::string, int64_t>, SeriesSummary> series;
  // By (dst partition, service, bucket): traces, error traces (root, origin), partial traces,
  // propagation breaks.
  std::map<std::tuple<int, std::string, int64_t>, std::array<uint64_t, 5>> services;
  std::array<uint64_t, 4> counters{};  // late, evicted, clock skew, truncated spans
};

// Fails the test on a record that does not decode or lists a series and bucket twice.
inline EpochContent Content(const std::vector<std::string>& records) {
  pipeline::SeriesRegistry names(1000, 1000);
  EpochContent out;
  for (const std::string& record : records) {
    absl::StatusOr<DecodedDeltaBatch> batch = DecodeDeltaBatch(record, {}, names);
    EXPECT_TRUE(batch.ok()) << batch.status();
    if (!batch.ok()) continue;
    const int dst = batch->header.dst_partition;
    for (const pipeline::SeriesDelta& d : batch->delta.series) {
      SeriesSummary& s = out.series[{dst, std::string(names.ServiceName(d.service)),
                                     std::string(names.OperationName(d.series)), d.bucket}];
      EXPECT_EQ(s.requests, 0u) << "one entry per series and bucket";
      s.requests = d.requests;
      s.errors = d.errors;
      s.sum_seconds = d.sum_seconds;
      s.classic = d.classic;
      s.sketch_count = d.latency.Count();
      s.p50 = d.latency.Count() ? d.latency.QuantileNanos(0.5) : 0;
      s.p99 = d.latency.Count() ? d.latency.QuantileNanos(0.99) : 0;
      s.signatures = d.signatures;
      std::sort(s.signatures.begin(), s.signatures.end(),
                [](const auto& a, const auto& b) { return a.id < b.id; });
    }
    for (const pipeline::ServiceDelta& d : batch->delta.services) {
      out.services[{dst, std::string(names.ServiceName(d.service)), d.bucket}] = {
          d.traces, d.error_traces_root, d.error_traces_origin, d.partial_traces,
          d.propagation_breaks};
    }
    out.counters[0] += batch->delta.late_spans;
    out.counters[1] += batch->delta.evicted_traces;
    out.counters[2] += batch->delta.clock_skew_spans;
    out.counters[3] += batch->delta.truncated_spans;
  }
  return out;
}

inline void ExpectSameContent(const EpochContent& got, const EpochContent& want,
                              const std::string& what) {
  EXPECT_EQ(got.services, want.services) << what;
  EXPECT_EQ(got.counters, want.counters) << what;
  ASSERT_EQ(got.series.size(), want.series.size()) << what;
  for (const auto& [key, w] : want.series) {
    auto it = got.series.find(key);
    ASSERT_NE(it, got.series.end()) << what << ": " << std::get<1>(key) << " " << std::get<2>(key);
    const SeriesSummary& g = it->second;
    EXPECT_EQ(g.requests, w.requests) << what;
    EXPECT_EQ(g.errors, w.errors) << what;
    EXPECT_EQ(g.classic, w.classic) << what;
    EXPECT_EQ(g.sketch_count, w.sketch_count) << what;
    EXPECT_EQ(g.p50, w.p50) << what;
    EXPECT_EQ(g.p99, w.p99) << what;
    EXPECT_EQ(g.signatures, w.signatures) << what;
    EXPECT_NEAR(g.sum_seconds, w.sum_seconds, 1e-9 * std::max(1.0, w.sum_seconds)) << what;
  }
}

// ---- librdkafka clients. ----

using HandlePtr = std::unique_ptr<rd_kafka_t, decltype(&rd_kafka_destroy)>;

// A client of `type` with these settings; fails the test on a bad setting.
inline HandlePtr NewClient(rd_kafka_type_t type,
                           const std::map<std::string, std::string>& settings) {
  char error[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [key, value] : settings) {
    EXPECT_EQ(rd_kafka_conf_set(conf, key.c_str(), value.c_str(), error, sizeof error),
              RD_KAFKA_CONF_OK)
        << key << ": " << error;
  }
  rd_kafka_t* handle = rd_kafka_new(type, conf, error, sizeof error);
  EXPECT_NE(handle, nullptr) << error;
  return HandlePtr(handle, &rd_kafka_destroy);
}

// A directory of its own under the system temp dir (`prefix`_<pid>_<n>), removed at the end of
// the test.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "traceslo_kafka_test") {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// One way to spoil a valid record, and the problem the refusal must name.
struct RefusalCase {
  std::string want;  // the error message contains this
  void (*spoil)(v1::DeltaBatch&);
  DeltaBatchLimits limits;
};

// Decodes `bytes` into a registry of its own and expects it refused: InvalidArgument, the
// message naming `want`, and no name of the record (not even of valid entries before the bad
// one) in the registry.
inline void ExpectRefusedByName(const std::string& bytes, const DeltaBatchLimits& limits,
                                std::string_view want) {
  pipeline::SeriesRegistry reader(100, 100);
  absl::StatusOr<DecodedDeltaBatch> decoded = DecodeDeltaBatch(bytes, limits, reader);
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(decoded.status().message()).find(want), std::string::npos)
      << decoded.status();
  EXPECT_EQ(reader.service_count(), 0u);
  EXPECT_EQ(reader.series_count(), 0u);
}

// Each case's spoiled copy of `valid()` is refused by name (ExpectRefusedByName).
inline void ExpectEachRefused(const std::vector<RefusalCase>& cases, v1::DeltaBatch (*valid)()) {
  for (const RefusalCase& c : cases) {
    SCOPED_TRACE(c.want);
    v1::DeltaBatch batch = valid();
    c.spoil(batch);
    ExpectRefusedByName(batch.SerializeAsString(), c.limits, c.want);
  }
}

}  // namespace traceslo::kafka::testutil

namespace traceslo::fakes {

// An EpochPublisher that keeps what was published and fails the test unless each epoch comes
// once, in order and none skipped, as one record per destination partition. Owned by the thread
// that drives the Stage1Partition.
class RecordingEpochPublisher final : public kafka::EpochPublisher {
 public:
  explicit RecordingEpochPublisher(int32_t dst_partitions) : dst_partitions_(dst_partitions) {}

  // traceslo::kafka::EpochPublisher
  void Publish(int64_t epoch, std::vector<std::string> records) override {
    EXPECT_FALSE(published.contains(epoch)) << "epoch " << epoch << " published twice";
    EXPECT_TRUE(published.empty() || epoch == published.rbegin()->first + 1)
        << "epochs in order, none skipped";
    EXPECT_EQ(records.size(), static_cast<size_t>(dst_partitions_));
    published[epoch] = std::move(records);
  }

  // Acknowledges to `stage` the epochs published up to `epoch` that it has not acknowledged.
  void AcknowledgeUpTo(kafka::Stage1Partition& stage, int64_t epoch) {
    for (const auto& [e, records] : published) {
      if (e > acked && e <= epoch) {
        stage.Acknowledge(e);
        acked = e;
      }
    }
  }

  std::map<int64_t, std::vector<std::string>> published;
  int64_t acked = -1;  // the newest acknowledged epoch

 private:
  int32_t dst_partitions_;
};

}  // namespace traceslo::fakes
