#include "traceslo/storage/storage_writer.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <tuple>

#include "tests/fakes/fake_clock.h"
#include "tests/unit/storage/storage_test_util.h"

namespace traceslo::storage {
namespace {

using pipeline::SeriesRegistry;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr int64_t kMinute0 = 28'333'334;  // unix minutes
constexpr int64_t kBucket0 = kMinute0 * pipeline::kBucketsPerMinute;

struct Counts {
  uint64_t requests = 0;
  uint64_t errors = 0;
  friend bool operator==(const Counts&, const Counts&) = default;
};

// An SLI store fed by the test, a writer over it and the ledger every expectation comes from.
class StorageWriterTest : public ::testing::Test {
 protected:
  StorageWriterTest()
      : clock_(std::chrono::system_clock::time_point(minutes(kMinute0 + 20))),
        registry_(100, 100),
        store_(pipeline::SliStoreOptions{}),
        path_(dir_.File("traceslo.db")) {}

  void SetUp() override {
    auto sqlite = SqliteStore::Open(path_);
    ASSERT_TRUE(sqlite.ok()) << sqlite.status();
    sqlite_ = *std::move(sqlite);
    writer_ = std::make_unique<StorageWriter>(StorageWriterOptions{.retention = retention_}, clock_,
                                              store_, registry_, *sqlite_);
  }

  // One bucket of `operation` of checkout (k varies the figures), and its trace-level counts.
  void Feed(const std::string& operation, int64_t bucket, uint64_t k) {
    const SeriesRegistry::Ids ids = registry_.Resolve("checkout", operation);
    pipeline::ShardDelta delta;
    pipeline::SeriesDelta& d = delta.series.emplace_back();
    d.series = ids.series;
    d.service = ids.service;
    d.bucket = bucket;
    d.requests = 10 + k % 7;
    d.errors = k % 3;
    d.latency.Add(30'000'000 + k, d.requests);
    delta.services.push_back(
        pipeline::ServiceDelta{.service = ids.service, .bucket = bucket, .traces = 4 + k % 5});
    const int64_t minute = pipeline::MinuteOfBucket(bucket);
    Counts& c = series_ledger_[{operation, minute}];
    c.requests += d.requests;
    c.errors += d.errors;
    service_ledger_[minute] += 4 + k % 5;
    store_.Apply(std::move(delta));
  }

  // What the file holds, read through a second connection.
  std::map<std::pair<std::string, int64_t>, Counts> SeriesRows() {
    RawDb raw(path_);
    SQLite::Statement q(raw.db(),
                        "SELECT s.operation, m.minute, m.requests, m.errors FROM series_minutes m "
                        "JOIN series s ON s.id = m.series_id");
    std::map<std::pair<std::string, int64_t>, Counts> out;
    while (q.executeStep()) {
      out[{q.getColumn(0).getString(), q.getColumn(1).getInt64()}] =
          Counts{static_cast<uint64_t>(q.getColumn(2).getInt64()),
                 static_cast<uint64_t>(q.getColumn(3).getInt64())};
    }
    return out;
  }
  std::map<int64_t, uint64_t> ServiceRows() {
    RawDb raw(path_);
    SQLite::Statement q(raw.db(), "SELECT minute, traces FROM service_minutes");
    std::map<int64_t, uint64_t> out;
    while (q.executeStep()) {
      out[q.getColumn(0).getInt64()] = static_cast<uint64_t>(q.getColumn(1).getInt64());
    }
    return out;
  }

  double Metric(std::string_view name, std::string_view result = "") {
    return MetricValue(writer_->Collect(), name, result.empty() ? "" : "result", result);
  }

  milliseconds retention_{35LL * 86'400'000};  // the default storage.retention
  ScratchDir dir_;
  fakes::FakeClock clock_;
  SeriesRegistry registry_;
  pipeline::SliStore store_;
  const std::string path_;
  std::unique_ptr<SqliteStore> sqlite_;
  std::unique_ptr<StorageWriter> writer_;
  std::map<std::pair<std::string, int64_t>, Counts> series_ledger_;
  std::map<int64_t, uint64_t> service_ledger_;
};

TEST_F(StorageWriterTest, FlushWritesTheChangedMinutesAndNothingWhenNothingChanged) {
  // Minutes 0 and 1 whole, minute 2 half: buckets 0..14.
  for (int64_t b = 0; b < 15; ++b) {
    Feed("POST /pay", kBucket0 + b, static_cast<uint64_t>(b));
    Feed("GET /cart", kBucket0 + b, static_cast<uint64_t>(b) * 5);
  }
  ASSERT_TRUE(writer_->Flush().ok());
  EXPECT_EQ(SeriesRows(), series_ledger_);
  EXPECT_EQ(ServiceRows(), service_ledger_);
  EXPECT_EQ(series_ledger_.size(), 6u);  // 2 series x 3 minutes
  EXPECT_EQ(Metric("traceslo_storage_rows_written_total"), 6 + 3);
  EXPECT_EQ(Metric("traceslo_storage_flushes_total", "success"), 1);
  EXPECT_EQ(Metric("traceslo_storage_pending_rows"), 0);
  EXPECT_EQ(Metric("traceslo_storage_last_flush_success_timestamp_seconds"),
            static_cast<double>((kMinute0 + 20) * 60));

  // A marker the writer would overwrite if it wrote minute 0 again.
  RawDb(path_).Exec("UPDATE series_minutes SET requests = 424242 WHERE minute = " +
                    std::to_string(kMinute0));
  ASSERT_TRUE(writer_->Flush().ok());
  EXPECT_EQ(RawDb(path_).Int("SELECT COUNT(*) FROM series_minutes WHERE requests = 424242"), 2);
  EXPECT_EQ(Metric("traceslo_storage_rows_written_total"), 6 + 3);
  EXPECT_EQ(Metric("traceslo_storage_flushes_total", "success"), 2);

  // One more bucket of minute 2: only minute 2 is written again, whole.
  Feed("POST /pay", kBucket0 + 15, 99);
  ASSERT_TRUE(writer_->Flush().ok());
  EXPECT_EQ(Metric("traceslo_storage_rows_written_total"), 6 + 3 + 1 + 1);
  EXPECT_EQ(RawDb(path_).Int("SELECT COUNT(*) FROM series_minutes WHERE requests = 424242"), 2);
  auto rows = SeriesRows();
  for (const char* op : {"POST /pay", "GET /cart"}) {
    for (int64_t m = kMinute0 + 1; m <= kMinute0 + 2; ++m) {
      const std::pair<std::string, int64_t> key{op, m};
      EXPECT_EQ(rows[key], series_ledger_[key]) << op << " " << m;
    }
  }
  EXPECT_EQ(ServiceRows(), service_ledger_);
}

TEST_F(StorageWriterTest, AFailedFlushKeepsItsMinutesAndTheNextFlushWritesThemAll) {
  for (int64_t b = 0; b < 12; ++b) {
    Feed("POST /pay", kBucket0 + b, static_cast<uint64_t>(b));
    Feed("GET /cart", kBucket0 + b, static_cast<uint64_t>(b) + 1);
  }
  ASSERT_TRUE(writer_->Flush().ok());
  const double written_before = Metric("traceslo_storage_rows_written_total");
  EXPECT_EQ(written_before, 2 * 2 + 2);

  // The table goes away behind the store's back: every write fails.
  RawDb(path_).Exec("ALTER TABLE series_minutes RENAME TO series_minutes_aside");
  std::set<std::tuple<std::string, int64_t>> changed_series;
  std::set<int64_t> changed_services;
  auto feed = [&](const std::string& op, int64_t b, uint64_t k) {
    Feed(op, kBucket0 + b, k);
    changed_series.insert({op, pipeline::MinuteOfBucket(kBucket0 + b)});
    changed_services.insert(pipeline::MinuteOfBucket(kBucket0 + b));
  };
  for (int64_t b = 12; b < 20; ++b) {  // minute 2 whole, minute 3 begun
    feed("POST /pay", b, static_cast<uint64_t>(b) * 3);
    feed("GET /cart", b, static_cast<uint64_t>(b) * 7);
  }
  // An operation first seen now: its series row is inserted in the failing transaction.
  feed("GET /new", 19, 4);
  const absl::Status failed = writer_->Flush();
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find(path_), std::string_view::npos) << failed;
  const double pending = static_cast<double>(changed_series.size() + changed_services.size());
  EXPECT_EQ(pending, 3 * 2 + 2 - 1);  // GET /new has minute 3 only
  EXPECT_EQ(Metric("traceslo_storage_flushes_total", "failure"), 1);
  EXPECT_EQ(Metric("traceslo_storage_flushes_total", "success"), 1);
  EXPECT_EQ(Metric("traceslo_storage_pending_rows"), pending);
  EXPECT_EQ(Metric("traceslo_storage_rows_written_total"), written_before);

  // Still failing: newer copies of the same minutes replace the pending ones.
  feed("POST /pay", 20, 1);
  feed("GET /new", 20, 2);
  ASSERT_FALSE(writer_->Flush().ok());
  EXPECT_EQ(Metric("traceslo_storage_flushes_total", "failure"), 2);
  EXPECT_EQ(Metric("traceslo_storage_pending_rows"), pending);

  RawDb(path_).Exec("ALTER TABLE series_minutes_aside RENAME TO series_minutes");
  ASSERT_TRUE(writer_->Flush().ok()) << "after the table is back";
  EXPECT_EQ(Metric("traceslo_storage_pending_rows"), 0);
  EXPECT_EQ(Metric("traceslo_storage_flushes_total", "success"), 2);
  EXPECT_EQ(Metric("traceslo_storage_rows_written_total"), written_before + pending);
  EXPECT_EQ(SeriesRows(), series_ledger_);
  EXPECT_EQ(ServiceRows(), service_ledger_);
  // Written once and for all: a further flush has nothing to do.
  ASSERT_TRUE(writer_->Flush().ok());
  EXPECT_EQ(Metric("traceslo_storage_rows_written_total"), written_before + pending);
}

// The failure comes late in the transaction, after series rows (and the row naming a new
// operation) were written: none of them may stay, and the next flush must not trip over ids the
// failed transaction handed out.
TEST_F(StorageWriterTest, AFailedTransactionLeavesNothingBehind) {
  for (int64_t b = 0; b < 6; ++b) Feed("POST /pay", kBucket0 + b, static_cast<uint64_t>(b));
  ASSERT_TRUE(writer_->Flush().ok());
  const auto flushed = SeriesRows();
  ASSERT_EQ(flushed.size(), 1u);

  RawDb(path_).Exec("ALTER TABLE service_minutes RENAME TO service_minutes_aside");
  for (int64_t b = 6; b < 12; ++b) {
    Feed("POST /pay", kBucket0 + b, static_cast<uint64_t>(b) * 2);
    Feed("GET /new", kBucket0 + b, static_cast<uint64_t>(b) * 3);
  }
  ASSERT_FALSE(writer_->Flush().ok());
  EXPECT_EQ(SeriesRows(), flushed);
  EXPECT_EQ(RawDb(path_).Int("SELECT COUNT(*) FROM series WHERE operation = 'GET /new'"), 0);
  EXPECT_EQ(Metric("traceslo_storage_pending_rows"), 2 + 1);  // minute 1 of two series, service

  RawDb(path_).Exec("ALTER TABLE service_minutes_aside RENAME TO service_minutes");
  const absl::Status recovered = writer_->Flush();
  ASSERT_TRUE(recovered.ok()) << recovered;
  EXPECT_EQ(SeriesRows(), series_ledger_);
  EXPECT_EQ(ServiceRows(), service_ledger_);
  EXPECT_EQ(Metric("traceslo_storage_pending_rows"), 0);
}

class StorageWriterRetentionTest : public StorageWriterTest {
 protected:
  StorageWriterRetentionTest() { retention_ = milliseconds(10 * 60'000); }
};

TEST_F(StorageWriterRetentionTest, FlushDeletesMinutesOlderThanRetention) {
  // The clock reads minute 20; one bucket in each of minutes 0..20.
  for (int64_t m = 0; m <= 20; ++m) {
    Feed("POST /pay", kBucket0 + m * pipeline::kBucketsPerMinute, static_cast<uint64_t>(m));
    Feed("GET /cart", kBucket0 + m * pipeline::kBucketsPerMinute + 3, static_cast<uint64_t>(m));
  }
  ASSERT_TRUE(writer_->Flush().ok());
  // Retention 10 min at minute 20: minutes 0..9 go, 10..20 stay (3 rows each).
  EXPECT_EQ(Metric("traceslo_storage_rows_written_total"), 21 * 3);
  EXPECT_EQ(Metric("traceslo_storage_rows_deleted_total"), 10 * 3);
  RawDb raw(path_);
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM series_minutes"), 11 * 2);
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM service_minutes"), 11);
  EXPECT_EQ(raw.Int("SELECT MIN(minute) FROM series_minutes"), kMinute0 + 10);
  EXPECT_EQ(raw.Int("SELECT MIN(minute) FROM service_minutes"), kMinute0 + 10);

  // Five minutes later, with nothing new to write, five more minutes go.
  clock_.Advance(minutes(5));
  ASSERT_TRUE(writer_->Flush().ok());
  EXPECT_EQ(Metric("traceslo_storage_rows_deleted_total"), 15 * 3);
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM series_minutes"), 6 * 2);
  EXPECT_EQ(raw.Int("SELECT MIN(minute) FROM series_minutes"), kMinute0 + 15);
  EXPECT_EQ(raw.Int("SELECT MIN(minute) FROM service_minutes"), kMinute0 + 15);
  auto rows = SeriesRows();
  for (const auto& [key, counts] : series_ledger_) {
    if (key.second >= kMinute0 + 15) {
      EXPECT_EQ(rows[key], counts) << key.second;
    }
  }
}

TEST_F(StorageWriterTest, SaveAlertsCountsSuccessAndFailure) {
  slo::AlertStatus alert;
  alert.service = "checkout";
  alert.slo = "availability";
  alert.state = slo::AlertState::kFiring;
  ASSERT_TRUE(writer_->SaveAlerts({alert}).ok());
  auto loaded = sqlite_->LoadAlerts();
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ(loaded->front().state, slo::AlertState::kFiring);
  RawDb(path_).Exec("DROP TABLE alert_states");
  EXPECT_FALSE(writer_->SaveAlerts({alert}).ok());
  EXPECT_EQ(Metric("traceslo_storage_alert_saves_total", "success"), 1);
  EXPECT_EQ(Metric("traceslo_storage_alert_saves_total", "failure"), 1);
}

}  // namespace
}  // namespace traceslo::storage
