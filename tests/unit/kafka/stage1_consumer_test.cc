// Stage 1 against librdkafka's in-process mock cluster: a corpus of Collector-style otlp_spans
// records (keyed by trace id, placed by fnv1a) goes in, traceslo_deltas records come out. What
// comes out is checked against the corpus's own counts and against offline Stage1Partitions fed
// the same records, also across a graceful restart (commit metadata, suppression of the epochs
// already published) and under injected broker errors and latency.
#include "traceslo/kafka/stage1_consumer.h"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "tests/unit/kafka/kafka_test_util.h"
#include "traceslo/common/clock.h"
#include "traceslo/common/log.h"
#include "traceslo/kafka/delta_batch.h"
#include "traceslo/kafka/partitioning.h"
#include "traceslo/kafka/stage1.h"

namespace traceslo::kafka {
namespace {

using testutil::Content;
using testutil::Encode;
using testutil::EpochContent;
using testutil::HandlePtr;
using testutil::kBaseMs;
using testutil::NewClient;
using testutil::PbSpan;
using testutil::TestSpan;

constexpr int32_t kSpansPartitions = 4;
constexpr int32_t kDeltasPartitions = 2;
constexpr uint64_t kConfigHash = 0xc0ffee;
// Kafka API keys for rd_kafka_mock_push_request_errors.
constexpr int16_t kProduceApi = 0;
constexpr int16_t kFetchApi = 1;
constexpr int16_t kOffsetCommitApi = 8;

// A mock cluster of 3 brokers with otlp_spans (4 partitions) and traceslo_deltas (2).
class Cluster {
 public:
  Cluster() : owner_(NewClient(RD_KAFKA_PRODUCER, {{"test.mock.num.brokers", "3"}})) {
    mock_ = rd_kafka_handle_mock_cluster(owner_.get());
    EXPECT_NE(mock_, nullptr);
    EXPECT_EQ(rd_kafka_mock_topic_create(mock_, "otlp_spans", kSpansPartitions, 3),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    EXPECT_EQ(rd_kafka_mock_topic_create(mock_, "traceslo_deltas", kDeltasPartitions, 3),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    bootstrap_ = rd_kafka_mock_cluster_bootstraps(mock_);
  }
  rd_kafka_mock_cluster_t* mock() const { return mock_; }
  const std::string& bootstrap() const { return bootstrap_; }

  // Holds `condition` before the deadline? Each round waits up to 20 ms on the owner's event
  // queue (nothing arrives there: it paces the polling).
  bool Eventually(const std::function<bool()>& condition,
                  std::chrono::seconds limit = std::chrono::seconds(60)) const {
    const SystemClock clock;
    const auto deadline = clock.SteadyNow() + limit;
    while (clock.SteadyNow() < deadline) {
      if (condition()) return true;
      rd_kafka_poll(owner_.get(), 20);
    }
    return condition();
  }

 private:
  HandlePtr owner_;
  rd_kafka_mock_cluster_t* mock_ = nullptr;
  std::string bootstrap_;
};

// ---- The corpus: what a Collector with partition_traces_by_id writes. ----

struct CorpusRecord {
  int32_t partition = 0;
  std::string key;  // empty: produced to `partition` explicitly
  int64_t timestamp_ms = 0;
  std::string value;
  uint32_t spans = 0;
  uint32_t requests = 0;  // entry spans
  uint32_t errors = 0;    // entry spans with status ERROR
};

struct Corpus {
  std::vector<CorpusRecord> records;  // in production order
  uint64_t spans = 0;
  uint64_t requests = 0;  // entry spans (SERVER kind or root)
  uint64_t errors = 0;    // entry spans with status ERROR
  uint64_t bad = 0;       // records that are not export requests
};

// `traces` traces of 2-6 spans over 4 services (a SERVER span and its CLIENT child per service,
// the next service's SERVER span its child; one in 7 fails at a SERVER span, one in 15 misses its
// root), each span exported at its end. A span is a request (an entry of its service) when it is
// a SERVER span or its parent is missing. A record
// holds 1-3 spans of one trace that ended within 300 ms, keyed by the trace id and placed by
// FNV-1a, its timestamp increasing per partition. `bad` records that are not export requests are
// mixed in. With `ticks`, every partition ends with an empty export request 30 s after the last
// record, so every trace completes and every epoch before it is sealed. With `late_every` > 0,
// every `late_every`-th trace gets one more SERVER span, a child of its root, exported 5 s after
// the trace ended (a late span: its trace completed at the idle timeout).
Corpus MakeCorpus(uint64_t seed, int traces, int bad, bool ticks, int late_every = 0) {
  std::mt19937_64 random(seed);
  const std::vector<std::string> services = {"gateway", "checkout", "payment", "inventory"};
  std::vector<TestSpan> spans;
  Corpus corpus;
  uint64_t next_id = 1;
  int64_t start = kBaseMs;
  for (int t = 0; t < traces; ++t) {
    start += 20 + static_cast<int64_t>(random() % 60);
    if (random() % 60 == 0) start += 3'000;  // a quiet spell
    TraceId trace;
    for (auto& byte : trace) byte = static_cast<uint8_t>(random());
    const int n = 2 + static_cast<int>(random() % 5);
    const bool fails = random() % 7 == 0;
    const bool rootless = random() % 15 == 0;
    const int failing = (n - 1) / 2 * 2;  // the last SERVER span
    std::vector<TestSpan> trace_spans;
    for (int j = 0; j < n; ++j) {
      TestSpan s;
      s.trace = trace;
      s.id = next_id++;
      s.parent = j == 0 ? 0 : trace_spans[static_cast<size_t>(j - 1)].id;
      s.service = services[(static_cast<size_t>(t) + static_cast<size_t>(j / 2)) % services.size()];
      s.name = "op" + std::to_string(j % 3);
      s.kind = j % 2 == 0 ? PbSpan::SPAN_KIND_SERVER : PbSpan::SPAN_KIND_CLIENT;
      s.start_ms = start + 5 * j;
      s.end_ms = start + 400 - 20 * j + static_cast<int64_t>(random() % 15);
      s.error = fails && j == failing;
      s.entry = s.kind == PbSpan::SPAN_KIND_SERVER;
      trace_spans.push_back(s);
    }
    if (late_every > 0 && t % late_every == 0) {
      TestSpan late = trace_spans.front();
      late.id = next_id++;
      late.parent = trace_spans.front().id;
      late.name = "late";
      late.start_ms = start + 5'350;
      late.end_ms = start + 5'400;
      late.error = false;
      trace_spans.push_back(late);
    }
    if (rootless) {
      trace_spans.erase(trace_spans.begin());
      trace_spans.front().entry = true;  // its parent never comes
    }
    spans.insert(spans.end(), trace_spans.begin(), trace_spans.end());
  }
  std::stable_sort(spans.begin(), spans.end(),
                   [](const TestSpan& a, const TestSpan& b) { return a.end_ms < b.end_ms; });
  std::array<int64_t, kSpansPartitions> last{};
  last.fill(kBaseMs);
  std::vector<bool> used(spans.size(), false);
  for (size_t i = 0; i < spans.size(); ++i) {
    if (used[i]) continue;
    // This span and up to two later ones of its trace that ended within 300 ms.
    std::vector<TestSpan> group = {spans[i]};
    used[i] = true;
    const size_t want = 1 + random() % 3;
    for (size_t k = i + 1; k < spans.size() && group.size() < want; ++k) {
      if (spans[k].end_ms - spans[i].end_ms > 300) break;
      if (!used[k] && spans[k].trace == spans[i].trace) {
        group.push_back(spans[k]);
        used[k] = true;
      }
    }
    CorpusRecord record;
    record.key = TraceRecordKey(spans[i].trace);
    record.partition = Fnv1aPartition(record.key, kSpansPartitions);
    int64_t& at = last[static_cast<size_t>(record.partition)];
    at = std::max(at, group.back().end_ms) + static_cast<int64_t>(random() % 3);
    record.timestamp_ms = at;
    record.value = Encode(group);
    record.spans = static_cast<uint32_t>(group.size());
    for (const TestSpan& s : group) {
      record.requests += s.entry ? 1 : 0;
      record.errors += s.entry && s.error ? 1 : 0;
    }
    corpus.spans += record.spans;
    corpus.requests += record.requests;
    corpus.errors += record.errors;
    corpus.records.push_back(std::move(record));
  }
  for (int b = 0; b < bad; ++b) {
    const size_t at = random() % corpus.records.size();
    CorpusRecord record = corpus.records[at];  // its key, partition and timestamp
    record.value = "\xff\xff not an export request";
    record.spans = record.requests = record.errors = 0;
    corpus.records.insert(corpus.records.begin() + static_cast<std::ptrdiff_t>(at) + 1, record);
    ++corpus.bad;
  }
  if (ticks) {
    const int64_t end = *std::max_element(last.begin(), last.end()) + 30'000;
    for (int32_t p = 0; p < kSpansPartitions; ++p) {
      corpus.records.push_back({.partition = p, .key = "", .timestamp_ms = end, .value = ""});
    }
  }
  return corpus;
}

// Produces records [from, to) of `corpus` as the Collector would: keyed records placed by
// librdkafka's fnv1a partitioner, explicit timestamps, idempotent (order kept per partition).
void Produce(const std::string& bootstrap, const Corpus& corpus, size_t from, size_t to) {
  HandlePtr producer = NewClient(RD_KAFKA_PRODUCER, {{"bootstrap.servers", bootstrap},
                                                     {"partitioner", "fnv1a"},
                                                     {"enable.idempotence", "true"},
                                                     {"linger.ms", "5"}});
  for (size_t i = from; i < to; ++i) {
    const CorpusRecord& r = corpus.records[i];
    const int32_t partition = r.key.empty() ? r.partition : RD_KAFKA_PARTITION_UA;
    ASSERT_EQ(rd_kafka_producev(producer.get(), RD_KAFKA_V_TOPIC("otlp_spans"),
                                RD_KAFKA_V_PARTITION(partition),
                                RD_KAFKA_V_KEY(r.key.data(), r.key.size()),
                                RD_KAFKA_V_VALUE(const_cast<char*>(r.value.data()), r.value.size()),
                                RD_KAFKA_V_TIMESTAMP(r.timestamp_ms),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_poll(producer.get(), 0);
  }
  ASSERT_EQ(rd_kafka_flush(producer.get(), 30'000), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_outq_len(producer.get()), 0);
}

// ---- The offline computation: one Stage1Partition per partition over the same records. ----

Stage1Options PartitionOptions(int32_t partition) {
  Stage1Options options;
  options.topic = "otlp_spans";
  options.partition = partition;
  options.dst_partitions = kDeltasPartitions;
  options.config_hash = kConfigHash;
  options.epoch_length = std::chrono::milliseconds(1'000);
  options.sli.trace_idle_timeout = std::chrono::seconds(2);
  options.sli.trace_max_age = std::chrono::seconds(20);
  return options;
}

using SrcEpoch = std::pair<int32_t, int64_t>;

struct Offline {
  std::map<SrcEpoch, std::vector<std::string>> epochs;  // [dst] = record
  std::map<int32_t, CommitPoint> commits;               // after every epoch is acknowledged
  std::map<int32_t, uint64_t> suppressed;               // when resumed from `resume`
};

// Feeds each partition's records among the first `until` (offsets counted per partition) to a
// Stage1Partition resumed from `resume[p]` (from the start without), acknowledging every epoch at
// once.
Offline RunOffline(const Corpus& corpus, size_t until,
                   const std::map<int32_t, CommitPoint>& resume = {}) {
  Offline out;
  for (int32_t p = 0; p < kSpansPartitions; ++p) {
    pipeline::SeriesRegistry registry(1000, 1000);
    fakes::RecordingEpochPublisher recorder(kDeltasPartitions);
    const CommitPoint from = resume.contains(p) ? resume.at(p) : CommitPoint{};
    Stage1Partition stage(PartitionOptions(p), registry, recorder, from);
    int64_t offset = 0;
    for (size_t i = 0; i < until; ++i) {
      const CorpusRecord& r = corpus.records[i];
      if (r.partition != p) continue;
      if (offset >=
          (from.seed_offset >= 0 ? std::min(from.offset, from.seed_offset) : from.offset)) {
        stage.Process(offset, r.timestamp_ms, r.value);
        for (const auto& [epoch, records] : recorder.published) stage.Acknowledge(epoch);
      }
      ++offset;
    }
    for (auto& [epoch, records] : recorder.published) out.epochs[{p, epoch}] = std::move(records);
    out.commits[p] = stage.Commit();
    out.suppressed[p] = stage.counters().suppressed_epochs;
  }
  return out;
}

// ---- Reading traceslo_deltas back. ----

struct DeltaRecord {
  int32_t partition = 0;
  size_t key_len = 0;
  std::string schema;  // the traceslo-schema header
  std::string value;
};

// Reads traceslo_deltas from the start, every partition.
class DeltaReader {
 public:
  explicit DeltaReader(const std::string& bootstrap)
      : consumer_(NewClient(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                                {"group.id", "deltas-reader"},
                                                {"enable.auto.commit", "false"}})) {
    rd_kafka_topic_partition_list_t* all = rd_kafka_topic_partition_list_new(kDeltasPartitions);
    for (int32_t p = 0; p < kDeltasPartitions; ++p) {
      rd_kafka_topic_partition_list_add(all, "traceslo_deltas", p)->offset =
          RD_KAFKA_OFFSET_BEGINNING;
    }
    EXPECT_EQ(rd_kafka_assign(consumer_.get(), all), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(all);
  }
  ~DeltaReader() { rd_kafka_consumer_close(consumer_.get()); }

  // Reads what arrives within `timeout_ms` (at least one wait).
  void Poll(int timeout_ms) {
    for (rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer_.get(), timeout_ms);
         message != nullptr; message = rd_kafka_consumer_poll(consumer_.get(), 0)) {
      if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        DeltaRecord record;
        record.partition = message->partition;
        record.key_len = message->key_len;
        record.value.assign(static_cast<const char*>(message->payload), message->len);
        rd_kafka_headers_t* headers = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        if (rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            rd_kafka_header_get_last(headers, "traceslo-schema", &value, &size) ==
                RD_KAFKA_RESP_ERR_NO_ERROR) {
          record.schema.assign(static_cast<const char*>(value), size);
        }
        records_.push_back(std::move(record));
      }
      rd_kafka_message_destroy(message);
    }
  }

  // Everything the topic holds now.
  const std::vector<DeltaRecord>& ReadToEnd() {
    int64_t total = 0;
    for (int32_t p = 0; p < kDeltasPartitions; ++p) {
      int64_t low = 0, high = 0;
      EXPECT_EQ(rd_kafka_query_watermark_offsets(consumer_.get(), "traceslo_deltas", p, &low, &high,
                                                 10'000),
                RD_KAFKA_RESP_ERR_NO_ERROR);
      total += high - low;
    }
    const SystemClock clock;
    const auto deadline = clock.SteadyNow() + std::chrono::seconds(30);
    while (static_cast<int64_t>(records_.size()) < total && clock.SteadyNow() < deadline) {
      Poll(100);
    }
    EXPECT_EQ(static_cast<int64_t>(records_.size()), total);
    return records_;
  }
  const std::vector<DeltaRecord>& records() const { return records_; }

 private:
  HandlePtr consumer_;
  std::vector<DeltaRecord> records_;
};

std::vector<DeltaRecord> ReadDeltas(const std::string& bootstrap) {
  DeltaReader reader(bootstrap);
  return reader.ReadToEnd();
}

// The records by (src, epoch), each [dst]; fails the test on a record that does not decode, lacks
// its header or key discipline, or repeats a (src, epoch, dst) with other bytes.
std::map<SrcEpoch, std::vector<std::string>> Decode(const std::vector<DeltaRecord>& records,
                                                    int* duplicates) {
  pipeline::SeriesRegistry names(1000, 1000);
  std::map<SrcEpoch, std::vector<std::string>> out;
  *duplicates = 0;
  for (const DeltaRecord& record : records) {
    EXPECT_EQ(record.key_len, 0u);
    EXPECT_EQ(record.schema, "1");
    absl::StatusOr<DecodedDeltaBatch> batch = DecodeDeltaBatch(record.value, {}, names);
    EXPECT_TRUE(batch.ok()) << batch.status();
    if (!batch.ok()) continue;
    EXPECT_EQ(batch->header.dst_partition, record.partition);
    EXPECT_EQ(batch->header.config_hash, kConfigHash);
    EXPECT_EQ(batch->header.src_topic, "otlp_spans");
    std::vector<std::string>& slot = out[{batch->header.src_partition, batch->header.epoch}];
    slot.resize(kDeltasPartitions);
    std::string& at = slot[static_cast<size_t>(record.partition)];
    if (!at.empty()) ++*duplicates;
    at = record.value;
  }
  return out;
}

// The requests and errors the records count.
std::pair<uint64_t, uint64_t> Totals(const std::map<SrcEpoch, std::vector<std::string>>& epochs) {
  pipeline::SeriesRegistry names(1000, 1000);
  uint64_t requests = 0, errors = 0;
  for (const auto& [key, records] : epochs) {
    for (const std::string& record : records) {
      absl::StatusOr<DecodedDeltaBatch> batch = DecodeDeltaBatch(record, {}, names);
      if (!batch.ok()) continue;
      for (const pipeline::SeriesDelta& d : batch->delta.series) {
        requests += d.requests;
        errors += d.errors;
      }
    }
  }
  return {requests, errors};
}

// The content of the records read (an empty slot is a record not read).
EpochContent ReadContent(const std::vector<std::string>& records) {
  std::vector<std::string> read;
  std::copy_if(records.begin(), records.end(), std::back_inserter(read),
               [](const std::string& record) { return !record.empty(); });
  return Content(read);
}

void ExpectSameContent(const std::vector<std::string>& got, const std::vector<std::string>& want,
                       const std::string& what) {
  testutil::ExpectSameContent(ReadContent(got), ReadContent(want), what);
}

std::string Name(const SrcEpoch& key) {
  return "src " + std::to_string(key.first) + " epoch " + std::to_string(key.second);
}

// ---- The consumer under test. ----

class Stage1ConsumerTest : public ::testing::Test {
 protected:
  Stage1ConsumerOptions Options() const {
    Stage1ConsumerOptions options;
    options.brokers = cluster_.bootstrap();
    options.librdkafka = {{"session.timeout.ms", "6000"}, {"heartbeat.interval.ms", "500"}};
    options.config_hash = kConfigHash;
    options.commit_interval = std::chrono::milliseconds(200);
    // No idle advance (it follows the wall clock): every epoch is sealed by records.
    options.idle_partition_timeout = std::chrono::hours(1);
    const Stage1Options partition = PartitionOptions(0);
    options.epoch_length = partition.epoch_length;
    options.sli = partition.sli;
    return options;
  }

  std::unique_ptr<Stage1Consumer> Started(const Stage1ConsumerOptions& options) {
    absl::StatusOr<std::unique_ptr<Stage1Consumer>> consumer =
        Stage1Consumer::Create(options, clock_, registry_, logger_);
    EXPECT_TRUE(consumer.ok()) << consumer.status();
    if (!consumer.ok()) return nullptr;
    EXPECT_TRUE((*consumer)->Start().ok());
    return std::move(*consumer);
  }

  // Runs a consumer until it processed `records` and every epoch it published is delivered, and
  // `published_epochs` of them; returns its last stats after a graceful shutdown.
  Stage1ConsumerStats RunUntil(Stage1Consumer& consumer, uint64_t records,
                               uint64_t published_epochs) {
    const bool done = cluster_.Eventually([&] {
      const Stage1ConsumerStats s = consumer.Stats();
      return s.records == records && s.published_epochs == published_epochs &&
             s.published_records == published_epochs * kDeltasPartitions;
    });
    const Stage1ConsumerStats running = consumer.Stats();
    EXPECT_TRUE(done) << "records " << running.records << "/" << records << ", epochs "
                      << running.published_epochs << "/" << published_epochs
                      << ", delivered records " << running.published_records
                      << ", owned partitions " << running.owned_partitions << ", delivery errors "
                      << running.delivery_errors << ", commit errors " << running.commit_errors;
    EXPECT_TRUE(running.assignment_done);
    EXPECT_EQ(running.owned_partitions, kSpansPartitions);
    EXPECT_EQ(running.consumer_lag, 0);
    consumer.Shutdown(clock_.SteadyNow() + std::chrono::seconds(20));
    const Stage1ConsumerStats stopped = consumer.Stats();
    EXPECT_EQ(stopped.owned_partitions, 0);
    return stopped;
  }

  // Consumes the whole of `corpus` (produced already) with one consumer and checks the deltas:
  // one record per (src, epoch, dst), the corpus's request and error counts, and the content of
  // the offline run's records (decoded: the order of entries follows the series registry's ids,
  // which one registry shared by four partitions hands out in another order).
  void ExpectExactRun(const Corpus& corpus) {
    const Offline offline = RunOffline(corpus, corpus.records.size());
    std::unique_ptr<Stage1Consumer> consumer = Started(Options());
    ASSERT_NE(consumer, nullptr);
    const Stage1ConsumerStats stats =
        RunUntil(*consumer, corpus.records.size(), offline.epochs.size());
    EXPECT_EQ(stats.bad_records, corpus.bad);
    EXPECT_EQ(stats.spans, corpus.spans);
    EXPECT_EQ(stats.replayed_spans, 0u);
    EXPECT_EQ(stats.suppressed_epochs, 0u);
    EXPECT_EQ(stats.delivery_errors, 0u);
    EXPECT_EQ(stats.published_epochs, offline.epochs.size());
    EXPECT_EQ(stats.partitions_assigned, static_cast<uint64_t>(kSpansPartitions));
    EXPECT_EQ(stats.partitions_lost, 0u);
    EXPECT_GT(stats.commits, 0u);

    int duplicates = 0;
    const std::map<SrcEpoch, std::vector<std::string>> got =
        Decode(ReadDeltas(cluster_.bootstrap()), &duplicates);
    EXPECT_EQ(duplicates, 0);
    EXPECT_EQ(Totals(got), std::make_pair(corpus.requests, corpus.errors));
    EXPECT_EQ(Totals(offline.epochs), std::make_pair(corpus.requests, corpus.errors));
    ASSERT_EQ(got.size(), offline.epochs.size());
    for (const auto& [key, want] : offline.epochs) {
      auto it = got.find(key);
      ASSERT_NE(it, got.end()) << Name(key) << " missing";
      ExpectSameContent(it->second, want, Name(key));
    }
  }

  // The committed (offset, metadata) of each otlp_spans partition in the stage-1 group.
  std::map<int32_t, std::pair<int64_t, std::string>> Committed() const {
    HandlePtr probe = NewClient(RD_KAFKA_CONSUMER, {{"bootstrap.servers", cluster_.bootstrap()},
                                                    {"group.id", "traceslo-stage1"}});
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(kSpansPartitions);
    for (int32_t p = 0; p < kSpansPartitions; ++p) {
      rd_kafka_topic_partition_list_add(list, "otlp_spans", p);
    }
    EXPECT_EQ(rd_kafka_committed(probe.get(), list, 10'000), RD_KAFKA_RESP_ERR_NO_ERROR);
    std::map<int32_t, std::pair<int64_t, std::string>> out;
    for (int i = 0; i < list->cnt; ++i) {
      const rd_kafka_topic_partition_t& e = list->elems[i];
      out[e.partition] = {e.offset, std::string(static_cast<const char*>(e.metadata),
                                                e.metadata ? e.metadata_size : 0)};
    }
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_consumer_close(probe.get());
    return out;
  }

  // Whether the reader (polled once) has every destination record of every epoch of `whole`.
  static bool HasEveryEpoch(DeltaReader& reader, const Offline& whole) {
    reader.Poll(50);
    int duplicates = 0;
    const auto got = Decode(reader.records(), &duplicates);
    for (const auto& [key, want] : whole.epochs) {
      auto it = got.find(key);
      if (it == got.end() || std::count(it->second.begin(), it->second.end(), "") > 0) {
        return false;
      }
    }
    return true;
  }

  // Checks that every record on the deltas topic, whoever published it and however often, has
  // the content of `whole` (one uninterrupted run); returns how many there are.
  static size_t ExpectEveryRecordAsIn(DeltaReader& reader, const Offline& whole) {
    pipeline::SeriesRegistry names(1000, 1000);
    size_t records = 0;
    for (const DeltaRecord& record : reader.ReadToEnd()) {
      absl::StatusOr<DecodedDeltaBatch> batch = DecodeDeltaBatch(record.value, {}, names);
      EXPECT_TRUE(batch.ok()) << batch.status();
      if (!batch.ok()) continue;
      const SrcEpoch key{batch->header.src_partition, batch->header.epoch};
      EXPECT_TRUE(whole.epochs.contains(key)) << Name(key) << " not in the uninterrupted run";
      if (!whole.epochs.contains(key)) continue;
      std::vector<std::string> one(kDeltasPartitions);
      one[static_cast<size_t>(record.partition)] = record.value;
      std::vector<std::string> want(kDeltasPartitions);
      want[static_cast<size_t>(record.partition)] =
          whole.epochs.at(key)[static_cast<size_t>(record.partition)];
      ExpectSameContent(one, want, Name(key) + " dst " + std::to_string(record.partition));
      ++records;
    }
    return records;
  }

  // One member consumes the first half of `corpus` and stops gracefully; a second one resumes
  // from its commits. Checks the commits against the offline run's, the second member's
  // suppressed epochs, replayed spans and seed records against independently computed ones, and
  // every epoch against the uninterrupted run. Returns the second member's stats.
  Stage1ConsumerStats ExpectExactGracefulRestart(const Corpus& corpus);

  Cluster cluster_;
  SystemClock clock_;
  Logger logger_{clock_, LogFormat::kLogfmt, LogLevel::kWarn};
  pipeline::SeriesRegistry registry_{1000, 1000};
};

TEST_F(Stage1ConsumerTest, PublishesExactlyTheOfflineDeltasOfEveryPartition) {
  const Corpus corpus = MakeCorpus(1, 300, 0, /*ticks=*/true);
  ASSERT_GT(corpus.errors, 10u);
  ASSERT_LT(corpus.records.size() * 2'000, size_t{5} << 20) << "well under 5 MiB per partition";
  Produce(cluster_.bootstrap(), corpus, 0, corpus.records.size());
  ExpectExactRun(corpus);
}

// Retried produce, fetch and commit errors and 300 ms round trips change nothing; records that
// are not export requests are counted and skipped.
TEST_F(Stage1ConsumerTest, StaysExactUnderBrokerErrorsLatencyAndBadRecords) {
  const Corpus corpus = MakeCorpus(3, 200, 9, /*ticks=*/true);
  ASSERT_EQ(corpus.bad, 9u);
  Produce(cluster_.bootstrap(), corpus, 0, corpus.records.size());
  rd_kafka_mock_cluster_t* mock = cluster_.mock();
  rd_kafka_mock_push_request_errors(
      mock, kProduceApi, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
      RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE);
  rd_kafka_mock_push_request_errors(mock, kFetchApi, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
                                    RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE);
  rd_kafka_mock_push_request_errors(mock, kOffsetCommitApi, 2,
                                    RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                                    RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE);
  for (int32_t broker = 1; broker <= 3; ++broker) {
    ASSERT_EQ(rd_kafka_mock_broker_set_rtt(mock, broker, 300), RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ExpectExactRun(corpus);  // bad_records == 9, the rest exact
}

Stage1ConsumerStats Stage1ConsumerTest::ExpectExactGracefulRestart(const Corpus& corpus) {
  const size_t half = (corpus.records.size() - kSpansPartitions) / 2;
  const Offline whole = RunOffline(corpus, corpus.records.size());
  const Offline first = RunOffline(corpus, half);

  // The first member consumes the first half and stops gracefully.
  Produce(cluster_.bootstrap(), corpus, 0, half);
  std::unique_ptr<Stage1Consumer> before = Started(Options());
  if (before == nullptr) {
    ADD_FAILURE() << "no first member";
    return {};
  }
  const Stage1ConsumerStats stats_before = RunUntil(*before, half, first.epochs.size());
  before.reset();

  // Its commit per partition: (L, E) as the offline run's, H its last record.
  std::map<int32_t, int64_t> last_offset;  // per partition in the first half
  std::map<int32_t, int64_t> total;        // records per partition
  for (size_t i = 0; i < corpus.records.size(); ++i) {
    const int32_t p = corpus.records[i].partition;
    if (i < half) last_offset[p] = total[p];
    ++total[p];
  }
  const std::regex format("E=(-1|[0-9]+);H=(-1|[0-9]+);cfg=c0ffee;S=[0-9]+");
  std::map<int32_t, CommitPoint> resume;
  for (const auto& [p, committed] : Committed()) {
    const auto& [offset, metadata] = committed;
    EXPECT_TRUE(std::regex_match(metadata, format)) << p << ": " << metadata;
    absl::StatusOr<Stage1Consumer::CommitMetadata> parsed =
        Stage1Consumer::ParseCommitMetadata(metadata);
    if (!parsed.ok()) {
      ADD_FAILURE() << parsed.status();
      continue;
    }
    EXPECT_EQ(offset, first.commits.at(p).offset) << p;
    EXPECT_EQ(parsed->last_epoch, first.commits.at(p).last_epoch) << p;
    EXPECT_GE(parsed->last_epoch, 0) << p;
    EXPECT_EQ(parsed->last_offset, last_offset.at(p)) << p;
    EXPECT_EQ(parsed->config_hash, kConfigHash);
    EXPECT_EQ(parsed->seed_offset, first.commits.at(p).seed_offset) << p;
    EXPECT_LE(parsed->seed_offset, offset) << p;
    resume[p] = CommitPoint{
        .offset = offset, .last_epoch = parsed->last_epoch, .seed_offset = parsed->seed_offset};
  }
  EXPECT_EQ(resume.size(), static_cast<size_t>(kSpansPartitions));
  if (resume.size() != static_cast<size_t>(kSpansPartitions)) return {};

  // What the second member must do: re-read from L, recompute up to E without publishing.
  uint64_t rereads = 0, replayed_spans = 0, newer_epochs = 0, suppressed = 0, seeds = 0;
  {
    std::map<int32_t, int64_t> offset;
    for (const CorpusRecord& r : corpus.records) {
      const int64_t at = offset[r.partition]++;
      if (at >= resume[r.partition].offset) ++rereads;
      if (at >= resume[r.partition].seed_offset && at < resume[r.partition].offset) ++seeds;
      if (at >= resume[r.partition].offset && at <= last_offset[r.partition]) {
        replayed_spans += r.spans;
      }
    }
    for (const auto& [key, records] : whole.epochs) {
      if (key.second > resume[key.first].last_epoch) ++newer_epochs;
    }
    const Offline resumed = RunOffline(corpus, corpus.records.size(), resume);
    for (const auto& [p, n] : resumed.suppressed) suppressed += n;
  }
  EXPECT_GT(replayed_spans, 0u) << "some trace was open at the commit";
  EXPECT_GT(suppressed, 0u);
  EXPECT_GT(seeds, 0u) << "the seed range reaches back before L";

  Produce(cluster_.bootstrap(), corpus, half, corpus.records.size());
  std::unique_ptr<Stage1Consumer> after = Started(Options());
  if (after == nullptr) {
    ADD_FAILURE() << "no second member";
    return {};
  }
  const Stage1ConsumerStats stats_after = RunUntil(*after, rereads, newer_epochs);
  EXPECT_EQ(stats_after.suppressed_epochs, suppressed);
  EXPECT_EQ(stats_after.replayed_spans, replayed_spans);
  EXPECT_EQ(stats_after.seed_records, seeds);
  EXPECT_EQ(stats_after.seed_overflow, 0u);
  EXPECT_EQ(stats_before.seed_records, 0u);
  EXPECT_EQ(stats_after.bad_commit_metadata, 0u);
  EXPECT_EQ(stats_after.config_hash_changes, 0u);
  EXPECT_EQ(stats_before.suppressed_epochs, 0u);

  // Every (src, epoch) once, with the content of the uninterrupted run.
  int duplicates = 0;
  const std::map<SrcEpoch, std::vector<std::string>> got =
      Decode(ReadDeltas(cluster_.bootstrap()), &duplicates);
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(got.size(), whole.epochs.size());
  for (const auto& [key, want] : whole.epochs) {
    auto it = got.find(key);
    EXPECT_NE(it, got.end()) << Name(key) << " missing";
    if (it != got.end()) ExpectSameContent(it->second, want, Name(key));
  }
  EXPECT_EQ(Totals(got), std::make_pair(corpus.requests, corpus.errors));
  return stats_after;
}

TEST_F(Stage1ConsumerTest, ResumesFromTheCommittedPointAfterAGracefulRestart) {
  const Stage1ConsumerStats after = ExpectExactGracefulRestart(MakeCorpus(2, 300, 0, true));
  EXPECT_EQ(after.late_spans_after_replay, 0u) << "no late spans in this corpus";
}

// Late spans of traces that completed before the commit point: the second member reads the seed
// range, counts them late as the uninterrupted run does (every epoch exact), and counts them in
// late_spans_after_replay.
TEST_F(Stage1ConsumerTest, ResumesExactlyWithLateSpansOfTracesClosedBeforeTheCommitPoint) {
  const Corpus corpus = MakeCorpus(2, 300, 0, /*ticks=*/true, /*late_every=*/3);
  const Stage1ConsumerStats after = ExpectExactGracefulRestart(corpus);
  EXPECT_GT(after.late_spans_after_replay, 0u);
  EXPECT_EQ(after.seed_overflow, 0u);
}

// A second member joins while the first one runs: the cooperative rebalance moves some
// partitions (the first member commits them on revoke, the second resumes from there) and leaves
// the others in place. Every epoch is published with the content of one uninterrupted run; an
// epoch published twice has the same content both times.
TEST_F(Stage1ConsumerTest, ASecondMemberTakesOverPartitionsWithoutChangingAnEpoch) {
  const Corpus corpus = MakeCorpus(6, 300, 0, /*ticks=*/true);
  const size_t half = (corpus.records.size() - kSpansPartitions) / 2;
  const Offline whole = RunOffline(corpus, corpus.records.size());
  Produce(cluster_.bootstrap(), corpus, 0, half);

  std::unique_ptr<Stage1Consumer> first = Started(Options());
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(cluster_.Eventually([&] { return first->Stats().records == half; }));
  std::unique_ptr<Stage1Consumer> second = Started(Options());
  ASSERT_NE(second, nullptr);
  // Both own partitions (the mock may leave a new member out of a generation for a while).
  ASSERT_TRUE(cluster_.Eventually([&] {
    const Stage1ConsumerStats a = first->Stats(), b = second->Stats();
    return a.owned_partitions > 0 && b.owned_partitions > 0 &&
           a.owned_partitions + b.owned_partitions == kSpansPartitions;
  }));
  Produce(cluster_.bootstrap(), corpus, half, corpus.records.size());

  DeltaReader reader(cluster_.bootstrap());
  EXPECT_TRUE(cluster_.Eventually([&] { return HasEveryEpoch(reader, whole); }));
  first->Shutdown(clock_.SteadyNow() + std::chrono::seconds(20));
  second->Shutdown(clock_.SteadyNow() + std::chrono::seconds(20));
  const Stage1ConsumerStats a = first->Stats(), b = second->Stats();
  // The first member gave partitions up: revoked (committed) or, when the mock fails a member's
  // SyncGroup with an illegal generation as it sometimes does, lost (dropped uncommitted).
  EXPECT_GT(a.partitions_revoked + a.partitions_lost, 0u);
  EXPECT_GT(b.partitions_assigned, 0u);
  EXPECT_EQ(a.delivery_errors + b.delivery_errors, 0u);
  EXPECT_EQ(b.bad_commit_metadata, 0u);

  // Every record published, whoever published it, has the uninterrupted run's content.
  ExpectEveryRecordAsIn(reader, whole);
}

// A fatal idempotence error (the broker reports the producer's sequence out of order): the
// producer is replaced and every owned partition starts over from its committed point. Every
// epoch reaches the deltas topic with the content of one uninterrupted run; those published
// twice have the same content both times (stage 2 drops the second copy).
TEST_F(Stage1ConsumerTest, ReplacesAProducerThatFailedForGoodAndStaysExact) {
  const Corpus corpus = MakeCorpus(7, 300, 0, /*ticks=*/true);
  const size_t half = (corpus.records.size() - kSpansPartitions) / 2;
  const Offline whole = RunOffline(corpus, corpus.records.size());
  // The deltas topic's partitions led by broker 2, the spans topic's by broker 1: the error
  // pushed to broker 2 reaches stage 1's producer, not the test's.
  rd_kafka_mock_cluster_t* mock = cluster_.mock();
  for (int32_t p = 0; p < kSpansPartitions; ++p) {
    ASSERT_EQ(rd_kafka_mock_partition_set_leader(mock, "otlp_spans", p, 1),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  for (int32_t p = 0; p < kDeltasPartitions; ++p) {
    ASSERT_EQ(rd_kafka_mock_partition_set_leader(mock, "traceslo_deltas", p, 2),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  Produce(cluster_.bootstrap(), corpus, 0, half);
  std::unique_ptr<Stage1Consumer> consumer = Started(Options());
  ASSERT_NE(consumer, nullptr);
  ASSERT_TRUE(cluster_.Eventually([&] {
    const Stage1ConsumerStats s = consumer->Stats();
    return s.records == half && s.published_records == s.published_epochs * kDeltasPartitions &&
           s.commits > 0;
  }));
  ASSERT_EQ(rd_kafka_mock_broker_push_request_error_rtts(
                mock, 2, kProduceApi, 1, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, 0),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  Produce(cluster_.bootstrap(), corpus, half, corpus.records.size());

  DeltaReader reader(cluster_.bootstrap());
  EXPECT_TRUE(cluster_.Eventually(
      [&] { return HasEveryEpoch(reader, whole) && consumer->Stats().producer_rebuilds > 0; }));
  consumer->Shutdown(clock_.SteadyNow() + std::chrono::seconds(20));
  const Stage1ConsumerStats stats = consumer->Stats();
  EXPECT_EQ(stats.producer_rebuilds, 1u);
  EXPECT_EQ(stats.partition_resyncs, static_cast<uint64_t>(kSpansPartitions));
  EXPECT_EQ(stats.partitions_assigned, static_cast<uint64_t>(kSpansPartitions));

  const size_t records = ExpectEveryRecordAsIn(reader, whole);
  EXPECT_GE(records, whole.epochs.size() * kDeltasPartitions);
}

// An idle partition at its end moves on with the clock: the open epoch and those after it are
// sealed without records, on partitions that never had one too.
TEST_F(Stage1ConsumerTest, IdlePartitionsAdvanceWithTheClock) {
  Corpus all = MakeCorpus(5, 60, 0, /*ticks=*/false);
  Corpus corpus;  // partition 0's records only; the other three stay empty
  for (const CorpusRecord& r : all.records) {
    if (r.partition == 0) corpus.records.push_back(r);
  }
  ASSERT_GT(corpus.records.size(), 10u);
  const Offline offline = RunOffline(corpus, corpus.records.size());
  Produce(cluster_.bootstrap(), corpus, 0, corpus.records.size());

  Stage1ConsumerOptions options = Options();
  options.idle_partition_timeout = std::chrono::milliseconds(300);
  std::unique_ptr<Stage1Consumer> consumer = Started(options);
  ASSERT_NE(consumer, nullptr);
  // Partition 0's traces all complete (the requests of a trace without its root count only
  // then), and every partition publishes.
  uint64_t requests = 0, errors = 0;
  for (const CorpusRecord& r : corpus.records) {
    requests += r.requests;
    errors += r.errors;
  }
  DeltaReader reader(cluster_.bootstrap());
  EXPECT_TRUE(cluster_.Eventually([&] {
    reader.Poll(50);
    int duplicates = 0;
    const auto got = Decode(reader.records(), &duplicates);
    std::set<int32_t> sources;
    for (const auto& [key, records] : got) sources.insert(key.first);
    return Totals(got) == std::make_pair(requests, errors) &&
           sources.size() == static_cast<size_t>(kSpansPartitions);
  }));
  consumer->Shutdown(clock_.SteadyNow() + std::chrono::seconds(20));
  const Stage1ConsumerStats stats = consumer->Stats();
  EXPECT_GT(stats.idle_advances, 0u);
  EXPECT_EQ(stats.records, corpus.records.size());
  EXPECT_EQ(stats.published_records, stats.published_epochs * kDeltasPartitions);

  int duplicates = 0;
  const std::map<SrcEpoch, std::vector<std::string>> got = Decode(reader.ReadToEnd(), &duplicates);
  EXPECT_EQ(duplicates, 0);
  std::map<int32_t, std::vector<int64_t>> epochs;
  for (const auto& [key, records] : got) epochs[key.first].push_back(key.second);
  ASSERT_EQ(epochs.size(), static_cast<size_t>(kSpansPartitions));
  for (const auto& [p, list] : epochs) {
    EXPECT_EQ(list.back() - list.front() + 1, static_cast<int64_t>(list.size()))
        << "partition " << p << ": contiguous epochs";
  }
  // The epochs sealed by records are those of the offline run.
  for (const auto& [key, want] : offline.epochs) {
    auto it = got.find(key);
    ASSERT_NE(it, got.end()) << Name(key) << " missing";
    ExpectSameContent(it->second, want, Name(key));
  }
  EXPECT_EQ(Totals(got), std::make_pair(requests, errors));
}

TEST_F(Stage1ConsumerTest, RefusesBadSettingsNamingThem) {
  for (const auto& [key, value] :
       std::vector<std::pair<std::string, std::string>>{{"no.such.setting", "1"},
                                                        {"session.timeout.ms", "soon"},
                                                        {"enable.auto.commit", "true"},
                                                        {"message.timeout.ms", "1000"}}) {
    Stage1ConsumerOptions options = Options();
    options.librdkafka[key] = value;
    absl::StatusOr<std::unique_ptr<Stage1Consumer>> consumer =
        Stage1Consumer::Create(options, clock_, registry_, logger_);
    ASSERT_FALSE(consumer.ok()) << key;
    EXPECT_EQ(consumer.status().code(), absl::StatusCode::kInvalidArgument) << key;
    EXPECT_NE(consumer.status().message().find("'" + key + "'"), std::string::npos)
        << consumer.status();
  }
  Stage1ConsumerOptions options = Options();
  options.deltas_topic = "no_such_topic";
  absl::StatusOr<std::unique_ptr<Stage1Consumer>> consumer =
      Stage1Consumer::Create(options, clock_, registry_, logger_);
  ASSERT_FALSE(consumer.ok());
  EXPECT_EQ(consumer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(consumer.status().message().find("no_such_topic"), std::string::npos);

  // Created but never started: closes cleanly, and cannot start after its shutdown.
  consumer = Stage1Consumer::Create(Options(), clock_, registry_, logger_);
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  EXPECT_FALSE((*consumer)->Stats().assignment_done);
  (*consumer)->Shutdown(clock_.SteadyNow() + std::chrono::seconds(5));
  EXPECT_EQ((*consumer)->Start().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Stage1ConsumerMetadataTest, FormatsAndParsesTheCommitMetadata) {
  using Metadata = Stage1Consumer::CommitMetadata;
  const Metadata metadata{
      .last_epoch = 1'800'000'123, .last_offset = 4'567, .config_hash = 0xc0ffee};
  EXPECT_EQ(Stage1Consumer::FormatCommitMetadata(metadata), "E=1800000123;H=4567;cfg=c0ffee");
  EXPECT_EQ(*Stage1Consumer::ParseCommitMetadata("E=1800000123;H=4567;cfg=c0ffee"), metadata);
  EXPECT_EQ(*Stage1Consumer::ParseCommitMetadata("E=-1;H=-1;cfg=0"), Metadata{});
  // With the seed offset; without it (as older versions committed), S is -1.
  const Metadata seeded{.last_epoch = 7, .last_offset = 90, .config_hash = 0xab, .seed_offset = 12};
  EXPECT_EQ(Stage1Consumer::FormatCommitMetadata(seeded), "E=7;H=90;cfg=ab;S=12");
  EXPECT_EQ(*Stage1Consumer::ParseCommitMetadata("E=7;H=90;cfg=ab;S=12"), seeded);
  EXPECT_EQ(Stage1Consumer::ParseCommitMetadata("E=7;H=90;cfg=ab")->seed_offset, -1);
  for (const char* bad :
       {"", "E=1;H=2", "E=1;H=2;cfg=", "E=x;H=2;cfg=1", "H=2;E=1;cfg=1", "E=1;H=2;cfg=1;",
        "E=-2;H=2;cfg=1", "E=1;H=2;cfg=10000000000000000", "E=1;H=2;cfg=1;S=", "E=1;H=2;cfg=1;S=-1",
        "E=1;H=2;cfg=1;S=3;", "E=1;H=2;cfg=1;S=3;X=4", "E=1;H=2;cfg=1;T=3", "E=1;H=2;S=3;cfg=1"}) {
    EXPECT_FALSE(Stage1Consumer::ParseCommitMetadata(bad).ok()) << bad;
  }
  EXPECT_EQ(ParseSpansEncoding("otlp_json").value(), ingest::OtlpFileFormat::kJsonLines);
  EXPECT_EQ(ParseSpansEncoding("otlp_proto").value(),
            ingest::OtlpFileFormat::kLengthPrefixedProtobuf);
  EXPECT_FALSE(ParseSpansEncoding("zipkin").ok());
}

}  // namespace
}  // namespace traceslo::kafka
