#include "traceslo/storage/sqlite_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <tuple>

#include "tests/unit/storage/storage_test_util.h"

namespace traceslo::storage {
namespace {

using pipeline::LatencySketch;
using pipeline::MinuteRollups;
using pipeline::SeriesRegistry;
using std::chrono::milliseconds;
using ::testing::HasSubstr;

constexpr int64_t kMinute0 = 28'333'334;  // unix minutes (2023-11-14 22:14 UTC)

// One (series, minute) as the test generates it: every figure the store returns is computed
// from these, never read back from the code under test.
struct SeriesRow {
  std::string service;
  std::string operation;
  int64_t minute = 0;
  int32_t last_offset = 0;
  uint64_t errors = 0;
  std::vector<uint64_t> durations;  // one per request
};
struct TraceRow {
  std::string service;
  int64_t minute = 0;
  int32_t last_offset = 0;
  uint64_t traces = 0;
  uint64_t root = 0;
  uint64_t origin = 0;
  uint64_t partial = 0;
  uint64_t breaks = 0;
};

LatencySketch SketchOf(const std::vector<uint64_t>& durations) {
  LatencySketch sketch;
  for (uint64_t d : durations) sketch.Add(d);
  return sketch;
}

// n durations from 1 ms to 2 s, one of them in the low (<= 1 µs) bucket when `seed` is even.
std::vector<uint64_t> Durations(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> out;
  for (size_t i = 0; i < n; ++i) out.push_back(1'000'000 + rng() % 2'000'000'000);
  if (seed % 2 == 0 && !out.empty()) out[0] = 500;
  return out;
}

// checkout {POST /pay, GET /cart} and search {GET /q} over minutes [first, last], with
// trace-level rows for checkout, search and batch (a service without entry-span series).
std::vector<SeriesRow> MakeSeriesRows(int64_t first, int64_t last, uint64_t salt = 0) {
  std::vector<SeriesRow> rows;
  uint64_t seed = 17 + salt;
  for (int64_t m = first; m <= last; ++m) {
    for (const auto& [service, operation] :
         {std::pair{"checkout", "POST /pay"}, {"checkout", "GET /cart"}, {"search", "GET /q"}}) {
      const size_t n = 3 + (seed * 7) % 11;
      rows.push_back(SeriesRow{.service = service,
                               .operation = operation,
                               .minute = m,
                               .last_offset = static_cast<int32_t>(seed % 6),
                               .errors = seed % 3,
                               .durations = Durations(seed, n)});
      ++seed;
    }
  }
  return rows;
}

std::vector<TraceRow> MakeTraceRows(int64_t first, int64_t last, uint64_t salt = 0) {
  std::vector<TraceRow> rows;
  uint64_t k = 5 + salt;
  for (int64_t m = first; m <= last; ++m) {
    for (const char* service : {"checkout", "search", "batch"}) {
      rows.push_back(TraceRow{.service = service,
                              .minute = m,
                              .last_offset = static_cast<int32_t>(k % 6),
                              .traces = 40 + k,
                              .root = k % 5,
                              .origin = k % 4,
                              .partial = k % 3,
                              .breaks = k % 2});
      ++k;
    }
  }
  return rows;
}

// The rows as the SLI store would hand them over, with ids of `registry`.
MinuteRollups ToRollups(const std::vector<SeriesRow>& series, const std::vector<TraceRow>& traces,
                        SeriesRegistry& registry) {
  MinuteRollups out;
  for (const SeriesRow& r : series) {
    const SeriesRegistry::Ids ids = registry.Resolve(r.service, r.operation);
    pipeline::SeriesMinute m{.series = ids.series,
                             .service = ids.service,
                             .minute = r.minute,
                             .last_offset = r.last_offset,
                             .requests = r.durations.size(),
                             .errors = r.errors};
    m.latency = SketchOf(r.durations);
    out.series.push_back(std::move(m));
  }
  for (const TraceRow& r : traces) {
    out.services.push_back(pipeline::ServiceMinute{.service = registry.ResolveService(r.service),
                                                   .minute = r.minute,
                                                   .last_offset = r.last_offset,
                                                   .traces = r.traces,
                                                   .error_traces_root = r.root,
                                                   .error_traces_origin = r.origin,
                                                   .partial_traces = r.partial,
                                                   .propagation_breaks = r.breaks});
  }
  return out;
}

std::unique_ptr<SqliteStore> OpenStore(const std::string& path) {
  auto store = SqliteStore::Open(path);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

using SeriesKey = std::tuple<std::string, std::string, int64_t>;  // service, operation, minute
using ServiceKey = std::pair<std::string, int64_t>;

// Loaded series minutes by name, checked against `registry` for consistent ids.
std::map<SeriesKey, pipeline::SeriesMinute> ByName(const MinuteRollups& loaded,
                                                   const SeriesRegistry& registry) {
  std::map<SeriesKey, pipeline::SeriesMinute> out;
  for (const pipeline::SeriesMinute& m : loaded.series) {
    EXPECT_EQ(registry.ServiceOf(m.series), m.service);
    SeriesKey key{std::string(registry.ServiceName(m.service)),
                  std::string(registry.OperationName(m.series)), m.minute};
    EXPECT_TRUE(out.emplace(key, m).second) << "duplicate minute " << m.minute;
  }
  return out;
}

std::map<ServiceKey, pipeline::ServiceMinute> ServicesByName(const MinuteRollups& loaded,
                                                             const SeriesRegistry& registry) {
  std::map<ServiceKey, pipeline::ServiceMinute> out;
  for (const pipeline::ServiceMinute& m : loaded.services) {
    ServiceKey key{std::string(registry.ServiceName(m.service)), m.minute};
    EXPECT_TRUE(out.emplace(key, m).second) << "duplicate minute " << m.minute;
  }
  return out;
}

// Every row of `series` / `traces` (the latest row per key wins) comes back from `loaded`, and
// nothing else does.
void ExpectLoadedEqual(const MinuteRollups& loaded, const SeriesRegistry& registry,
                       const std::vector<SeriesRow>& series, const std::vector<TraceRow>& traces) {
  std::map<SeriesKey, const SeriesRow*> want;
  for (const SeriesRow& r : series) want[{r.service, r.operation, r.minute}] = &r;
  const auto got = ByName(loaded, registry);
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [key, row] : want) {
    auto it = got.find(key);
    ASSERT_NE(it, got.end()) << std::get<0>(key) << " " << std::get<1>(key) << " "
                             << std::get<2>(key);
    EXPECT_EQ(it->second.requests, row->durations.size());
    EXPECT_EQ(it->second.errors, row->errors);
    EXPECT_EQ(it->second.last_offset, row->last_offset);
    EXPECT_TRUE(it->second.latency == SketchOf(row->durations)) << std::get<2>(key);
  }
  std::map<ServiceKey, const TraceRow*> want_services;
  for (const TraceRow& r : traces) want_services[{r.service, r.minute}] = &r;
  const auto got_services = ServicesByName(loaded, registry);
  ASSERT_EQ(got_services.size(), want_services.size());
  for (const auto& [key, row] : want_services) {
    auto it = got_services.find(key);
    ASSERT_NE(it, got_services.end()) << key.first << " " << key.second;
    EXPECT_EQ(it->second.traces, row->traces);
    EXPECT_EQ(it->second.error_traces_root, row->root);
    EXPECT_EQ(it->second.error_traces_origin, row->origin);
    EXPECT_EQ(it->second.partial_traces, row->partial);
    EXPECT_EQ(it->second.propagation_breaks, row->breaks);
    EXPECT_EQ(it->second.last_offset, row->last_offset);
  }
}

// --- Open ---------------------------------------------------------------------------------------

TEST(SqliteStoreTest, OpenCreatesTheFileAtTheCurrentSchemaInWalMode) {
  ScratchDir dir;
  const std::string path = dir.File("traceslo.db");
  ASSERT_FALSE(std::filesystem::exists(path));
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_EQ(store->path(), path);
  EXPECT_EQ(store->schema_version(), kSchemaVersion);
  RawDb raw(path);
  EXPECT_EQ(raw.Text("PRAGMA journal_mode"), "wal");  // persistent: a new connection sees it
  EXPECT_EQ(raw.Int("PRAGMA user_version"), kSchemaVersion);
  for (const char* table :
       {"series", "series_minutes", "service_minutes", "alert_states", "exemplar_traces"}) {
    EXPECT_EQ(raw.Int(std::string("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
                                  "name = '") +
                      table + "'"),
              1)
        << table;
  }
}

TEST(SqliteStoreTest, ReopeningKeepsTheDataAndTheSchema) {
  ScratchDir dir;
  const std::string path = dir.File("traceslo.db");
  const auto series = MakeSeriesRows(kMinute0, kMinute0 + 1);
  const auto traces = MakeTraceRows(kMinute0, kMinute0 + 1);
  {
    auto store = OpenStore(path);
    ASSERT_NE(store, nullptr);
    SeriesRegistry registry(100, 100);
    ASSERT_TRUE(store->WriteRollups(ToRollups(series, traces, registry), registry).ok());
  }
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), kSchemaVersion);
  SeriesRegistry registry(100, 100);
  auto loaded = store->LoadRollups(kMinute0, registry);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectLoadedEqual(*loaded, registry, series, traces);
  // Series already named in the file keep their row: writing again adds no series row.
  const int64_t series_rows = RawDb(path).Int("SELECT COUNT(*) FROM series");
  EXPECT_EQ(series_rows, 3);
  ASSERT_TRUE(store->WriteRollups(ToRollups(series, traces, registry), registry).ok());
  EXPECT_EQ(RawDb(path).Int("SELECT COUNT(*) FROM series"), series_rows);
}

TEST(SqliteStoreTest, ProgressMarksAreKeptAcrossAReopen) {
  ScratchDir dir;
  {
    auto store = OpenStore(dir.File("traceslo.db"));
    ASSERT_NE(store, nullptr);
    absl::StatusOr<std::optional<int64_t>> none = store->LoadProgress("kafka.next_evaluation_ms");
    ASSERT_TRUE(none.ok()) << none.status();
    EXPECT_FALSE(none->has_value());
    ASSERT_TRUE(store->SaveProgress("kafka.next_evaluation_ms", 1'748'779'210'000).ok());
    ASSERT_TRUE(store->SaveProgress("kafka.next_evaluation_ms", 1'748'779'220'000).ok());
    ASSERT_TRUE(store->SaveProgress("other", -5).ok());
  }
  auto store = OpenStore(dir.File("traceslo.db"));
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->LoadProgress("kafka.next_evaluation_ms").value(),
            std::optional<int64_t>(1'748'779'220'000))
      << "the last one saved";
  EXPECT_EQ(store->LoadProgress("other").value(), std::optional<int64_t>(-5));
}

TEST(SqliteStoreTest, TheInstanceIdIsMadeOnceAndKept) {
  ScratchDir dir;
  int made = 0;
  auto make = [&] { return "id-" + std::to_string(++made); };
  {
    auto store = OpenStore(dir.File("traceslo.db"));
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->InstanceId(make).value_or(""), "id-1");
    EXPECT_EQ(store->InstanceId(make).value_or(""), "id-1");
  }
  auto store = OpenStore(dir.File("traceslo.db"));
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->InstanceId(make).value_or(""), "id-1") << "kept across a reopen";
  EXPECT_EQ(made, 1);
  auto other = OpenStore(dir.File("other.db"));
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->InstanceId(make).value_or(""), "id-2") << "another file, another id";
}

TEST(SqliteStoreTest, RefusesAFileWrittenByANewerSchema) {
  ScratchDir dir;
  const std::string path = dir.File("traceslo.db");
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE future (x INTEGER)");
    db.exec("PRAGMA user_version = " + std::to_string(kSchemaVersion + 1));
  }
  auto store = SqliteStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  EXPECT_THAT(store.status().message(),
              HasSubstr("schema version " + std::to_string(kSchemaVersion + 1)));
  EXPECT_THAT(store.status().message(), HasSubstr("(" + std::to_string(kSchemaVersion) + ")"));
  // Nothing was migrated or dropped.
  RawDb raw(path);
  EXPECT_EQ(raw.Int("PRAGMA user_version"), kSchemaVersion + 1);
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM sqlite_master WHERE name = 'series_minutes'"), 0);
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM sqlite_master WHERE name = 'future'"), 1);
}

TEST(SqliteStoreTest, OpenInAMissingDirectoryIsAClearError) {
  ScratchDir dir;
  const std::string path = dir.File("no/such/dir/traceslo.db");
  auto store = SqliteStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  EXPECT_THAT(store.status().message(), HasSubstr("cannot open"));
  EXPECT_FALSE(std::filesystem::exists(dir.File("no")));
}

TEST(SqliteStoreTest, OpenOnAFileThatIsNotADatabaseIsAClearErrorAndLeavesItAlone) {
  ScratchDir dir;
  const std::string path = dir.File("traceslo.db");
  std::string garbage;
  std::mt19937 rng(7);
  for (int i = 0; i < 8192; ++i) garbage.push_back(static_cast<char>(rng()));
  garbage.replace(0, 16, "not sqlite, no!\n");
  std::ofstream(path, std::ios::binary) << garbage;
  auto store = SqliteStore::Open(path);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  std::ifstream in(path, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), garbage);
}

// --- Rollups ------------------------------------------------------------------------------------

TEST(SqliteStoreTest, RollupsComeBackByNameInAFreshRegistryWithOtherIds) {
  ScratchDir dir;
  auto store = OpenStore(dir.File("traceslo.db"));
  ASSERT_NE(store, nullptr);
  const auto series = MakeSeriesRows(kMinute0, kMinute0 + 3);
  const auto traces = MakeTraceRows(kMinute0, kMinute0 + 3);
  SeriesRegistry writer(100, 100);
  ASSERT_TRUE(store->WriteRollups(ToRollups(series, traces, writer), writer).ok());

  // A new process meets other services first: ids differ from the writer's.
  SeriesRegistry reader(100, 100);
  reader.Resolve("inventory", "GET /stock");
  reader.Resolve("inventory", "PUT /stock");
  reader.ResolveService("billing");
  auto loaded = store->LoadRollups(kMinute0, reader);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectLoadedEqual(*loaded, reader, series, traces);
  EXPECT_NE(reader.FindSeries("checkout", "POST /pay"), writer.FindSeries("checkout", "POST /pay"));
  EXPECT_NE(reader.FindService("checkout"), writer.FindService("checkout"));
  EXPECT_NE(reader.FindService("batch"), writer.FindService("batch"));
  EXPECT_EQ(reader.FindSeries("batch", "anything"), -1);  // trace-level rows name no series
}

TEST(SqliteStoreTest, WritingAMinuteAgainReplacesItInsteadOfAdding) {
  ScratchDir dir;
  const std::string path = dir.File("traceslo.db");
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  SeriesRegistry registry(100, 100);
  const auto first_series = MakeSeriesRows(kMinute0, kMinute0 + 2, /*salt=*/0);
  const auto first_traces = MakeTraceRows(kMinute0, kMinute0 + 2, /*salt=*/0);
  ASSERT_TRUE(store->WriteRollups(ToRollups(first_series, first_traces, registry), registry).ok());
  // Minute +1 again with other figures (a late span changed it), plus a new minute +3.
  const auto again_series = MakeSeriesRows(kMinute0 + 1, kMinute0 + 3, /*salt=*/100);
  const auto again_traces = MakeTraceRows(kMinute0 + 1, kMinute0 + 3, /*salt=*/100);
  ASSERT_TRUE(store->WriteRollups(ToRollups(again_series, again_traces, registry), registry).ok());

  std::vector<SeriesRow> want_series = first_series;  // later rows win in ExpectLoadedEqual
  want_series.insert(want_series.end(), again_series.begin(), again_series.end());
  std::vector<TraceRow> want_traces = first_traces;
  want_traces.insert(want_traces.end(), again_traces.begin(), again_traces.end());
  SeriesRegistry fresh(100, 100);
  auto loaded = store->LoadRollups(kMinute0, fresh);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectLoadedEqual(*loaded, fresh, want_series, want_traces);
  RawDb raw(path);
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM series_minutes"), 3 * 4);  // 3 series x 4 minutes
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM service_minutes"), 3 * 4);
}

TEST(SqliteStoreTest, LoadRollupsSkipsMinutesBeforeFirstMinute) {
  ScratchDir dir;
  auto store = OpenStore(dir.File("traceslo.db"));
  ASSERT_NE(store, nullptr);
  SeriesRegistry registry(100, 100);
  const auto series = MakeSeriesRows(kMinute0, kMinute0 + 9);
  const auto traces = MakeTraceRows(kMinute0, kMinute0 + 9);
  ASSERT_TRUE(store->WriteRollups(ToRollups(series, traces, registry), registry).ok());
  std::vector<SeriesRow> want_series;
  for (const SeriesRow& r : series) {
    if (r.minute >= kMinute0 + 6) want_series.push_back(r);
  }
  std::vector<TraceRow> want_traces;
  for (const TraceRow& r : traces) {
    if (r.minute >= kMinute0 + 6) want_traces.push_back(r);
  }
  ASSERT_EQ(want_series.size(), 3u * 4);
  SeriesRegistry fresh(100, 100);
  auto loaded = store->LoadRollups(kMinute0 + 6, fresh);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectLoadedEqual(*loaded, fresh, want_series, want_traces);
  SeriesRegistry none(100, 100);
  auto later = store->LoadRollups(kMinute0 + 10, none);
  ASSERT_TRUE(later.ok());
  EXPECT_TRUE(later->empty());
}

TEST(SqliteStoreTest, ACorruptLatencyRollupIsDataLossNotACrash) {
  ScratchDir dir;
  const std::string path = dir.File("traceslo.db");
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  SeriesRegistry registry(100, 100);
  ASSERT_TRUE(store
                  ->WriteRollups(ToRollups(MakeSeriesRows(kMinute0, kMinute0 + 2),
                                           MakeTraceRows(kMinute0, kMinute0 + 2), registry),
                                 registry)
                  .ok());
  // Version byte 1, then a varint that never ends.
  RawDb(path).Exec("UPDATE series_minutes SET latency = X'01FFFFFF' WHERE minute = " +
                   std::to_string(kMinute0 + 1));
  SeriesRegistry fresh(100, 100);
  auto loaded = store->LoadRollups(kMinute0, fresh);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << loaded.status();
  EXPECT_THAT(loaded.status().message(), HasSubstr(std::to_string(kMinute0 + 1)));
  EXPECT_THAT(loaded.status().message(), HasSubstr(path));
  auto all = [](std::string_view) { return true; };
  auto with_latency = store->SeriesMinutes("checkout", all, kMinute0, kMinute0 + 2, true);
  EXPECT_EQ(with_latency.status().code(), absl::StatusCode::kDataLoss) << with_latency.status();
  // Counts alone do not read the blob; minutes before the bad one still load.
  EXPECT_TRUE(store->SeriesMinutes("checkout", all, kMinute0, kMinute0 + 2, false).ok());
  EXPECT_TRUE(store->LoadRollups(kMinute0 + 2, fresh).ok());
}

// --- Queries ------------------------------------------------------------------------------------

TEST(SqliteStoreTest, SeriesMinutesSumsTheMatchingSeriesOfTheServicePerMinute) {
  ScratchDir dir;
  auto store = OpenStore(dir.File("traceslo.db"));
  ASSERT_NE(store, nullptr);
  SeriesRegistry registry(100, 100);
  std::vector<SeriesRow> series = MakeSeriesRows(kMinute0, kMinute0 + 5);
  // Minute +3 of checkout also has a health check; minute +6 only that.
  series.push_back(SeriesRow{.service = "checkout",
                             .operation = "GET /health",
                             .minute = kMinute0 + 3,
                             .errors = 1,
                             .durations = Durations(99, 5)});
  series.push_back(SeriesRow{.service = "checkout",
                             .operation = "GET /health",
                             .minute = kMinute0 + 6,
                             .errors = 0,
                             .durations = Durations(98, 4)});
  ASSERT_TRUE(store->WriteRollups(ToRollups(series, {}, registry), registry).ok());

  auto not_health = [](std::string_view op) { return op != "GET /health"; };
  auto only_health = [](std::string_view op) { return op == "GET /health"; };
  auto all = [](std::string_view) { return true; };
  struct Case {
    std::string name;
    std::function<bool(std::string_view)> matches;
    int64_t first, last;
  };
  for (const Case& c : {Case{"not health, +1..+4", not_health, kMinute0 + 1, kMinute0 + 4},
                        Case{"all, everything", all, kMinute0 - 5, kMinute0 + 10},
                        Case{"only health", only_health, kMinute0, kMinute0 + 6},
                        Case{"one minute", all, kMinute0 + 3, kMinute0 + 3},
                        Case{"empty range", all, kMinute0 + 4, kMinute0 + 3}}) {
    SCOPED_TRACE(c.name);
    std::map<int64_t, MinuteSums> want;
    for (const SeriesRow& r : series) {
      if (r.service != "checkout" || !c.matches(r.operation) || r.minute < c.first ||
          r.minute > c.last) {
        continue;
      }
      MinuteSums& w = want[r.minute];
      w.minute = r.minute;
      w.requests += r.durations.size();
      w.errors += r.errors;
      for (uint64_t d : r.durations) w.latency.Add(d);
    }
    for (bool with_latency : {false, true}) {
      auto got = store->SeriesMinutes("checkout", c.matches, c.first, c.last, with_latency);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(got->size(), want.size());
      size_t i = 0;
      for (const auto& [minute, w] : want) {  // ascending minutes
        const MinuteSums& g = (*got)[i++];
        EXPECT_EQ(g.minute, minute);
        EXPECT_EQ(g.requests, w.requests) << minute;
        EXPECT_EQ(g.errors, w.errors) << minute;
        if (with_latency) {
          EXPECT_TRUE(g.latency == w.latency) << minute;
        } else {
          EXPECT_EQ(g.latency.Count(), 0u) << minute;
        }
      }
    }
  }
  auto unknown = store->SeriesMinutes("nobody", all, kMinute0, kMinute0 + 6, true);
  ASSERT_TRUE(unknown.ok());
  EXPECT_TRUE(unknown->empty());
}

TEST(SqliteStoreTest, ServiceMinutesReadsOneServiceInTheRange) {
  ScratchDir dir;
  auto store = OpenStore(dir.File("traceslo.db"));
  ASSERT_NE(store, nullptr);
  SeriesRegistry registry(100, 100);
  const auto traces = MakeTraceRows(kMinute0, kMinute0 + 5);
  ASSERT_TRUE(store->WriteRollups(ToRollups({}, traces, registry), registry).ok());
  for (const char* service : {"checkout", "batch"}) {
    SCOPED_TRACE(service);
    std::vector<const TraceRow*> want;
    for (const TraceRow& r : traces) {
      if (r.service == service && r.minute >= kMinute0 + 1 && r.minute <= kMinute0 + 4) {
        want.push_back(&r);
      }
    }
    auto got = store->ServiceMinutes(service, kMinute0 + 1, kMinute0 + 4);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), want.size());
    ASSERT_EQ(want.size(), 4u);
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ((*got)[i].minute, want[i]->minute);
      EXPECT_EQ((*got)[i].traces, want[i]->traces);
      EXPECT_EQ((*got)[i].error_traces_root, want[i]->root);
      EXPECT_EQ((*got)[i].error_traces_origin, want[i]->origin);
      EXPECT_EQ((*got)[i].partial_traces, want[i]->partial);
      EXPECT_EQ((*got)[i].propagation_breaks, want[i]->breaks);
    }
  }
  auto none = store->ServiceMinutes("checkout", kMinute0 + 6, kMinute0 + 9);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(SqliteStoreTest, DeleteBeforeDeletesOnlyOlderMinutesAndCountsThem) {
  ScratchDir dir;
  const std::string path = dir.File("traceslo.db");
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  SeriesRegistry registry(100, 100);
  const auto series = MakeSeriesRows(kMinute0, kMinute0 + 7);
  const auto traces = MakeTraceRows(kMinute0, kMinute0 + 7);
  ASSERT_TRUE(store->WriteRollups(ToRollups(series, traces, registry), registry).ok());
  const int64_t cutoff = kMinute0 + 3;
  uint64_t older = 0;
  std::vector<SeriesRow> kept_series;
  std::vector<TraceRow> kept_traces;
  for (const SeriesRow& r : series) {
    if (r.minute < cutoff) {
      ++older;
    } else {
      kept_series.push_back(r);
    }
  }
  for (const TraceRow& r : traces) {
    if (r.minute < cutoff) {
      ++older;
    } else {
      kept_traces.push_back(r);
    }
  }
  ASSERT_EQ(older, 3u * 3 + 3u * 3);

  auto deleted = store->DeleteBefore(cutoff);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(*deleted, older);
  RawDb raw(path);
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM series_minutes"),
            static_cast<int64_t>(kept_series.size()));
  EXPECT_EQ(raw.Int("SELECT COUNT(*) FROM service_minutes"),
            static_cast<int64_t>(kept_traces.size()));
  EXPECT_EQ(raw.Int("SELECT MIN(minute) FROM series_minutes"), cutoff);
  EXPECT_EQ(raw.Int("SELECT MIN(minute) FROM service_minutes"), cutoff);
  SeriesRegistry fresh(100, 100);
  auto loaded = store->LoadRollups(INT64_MIN, fresh);
  ASSERT_TRUE(loaded.ok());
  ExpectLoadedEqual(*loaded, fresh, kept_series, kept_traces);
  auto again = store->DeleteBefore(cutoff);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0u);
}

// --- Alerts -------------------------------------------------------------------------------------

slo::AlertStatus MakeAlert(std::string service, std::string name, slo::Severity severity,
                           bool no_data, slo::AlertState state, int64_t k) {
  slo::AlertStatus a;
  a.service = std::move(service);
  a.slo = std::move(name);
  a.severity = severity;
  a.no_data = no_data;
  a.state = state;
  a.active_since_unix_nano = 1'700'000'000'000'000'000 + k;
  a.fired_at_unix_nano = 1'700'000'000'100'000'000 + 3 * k;
  a.resolved_at_unix_nano = k % 2 == 0 ? 0 : 1'700'000'100'000'000'000 + k;
  a.long_window = milliseconds(3'600'000 * (k + 1));
  a.short_window = milliseconds(300'000 + 10'000 * k);
  a.burn_rate_long = 14.4 + 0.123456789 * static_cast<double>(k);
  a.burn_rate_short = 1.0 / 3.0 + static_cast<double>(k);
  a.threshold_burn_rate = 6 + static_cast<double>(k) / 7;
  return a;
}

void ExpectSameAlerts(std::vector<slo::AlertStatus> got, std::vector<slo::AlertStatus> want) {
  auto key = [](const slo::AlertStatus& a) {
    return std::tuple(a.service, a.slo, a.severity, a.no_data);
  };
  auto by_key = [&](const slo::AlertStatus& a, const slo::AlertStatus& b) {
    return key(a) < key(b);
  };
  std::sort(got.begin(), got.end(), by_key);
  std::sort(want.begin(), want.end(), by_key);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(want[i].service + "/" + want[i].slo);
    EXPECT_EQ(got[i].service, want[i].service);
    EXPECT_EQ(got[i].slo, want[i].slo);
    EXPECT_EQ(got[i].severity, want[i].severity);
    EXPECT_EQ(got[i].no_data, want[i].no_data);
    EXPECT_EQ(got[i].state, want[i].state);
    EXPECT_EQ(got[i].active_since_unix_nano, want[i].active_since_unix_nano);
    EXPECT_EQ(got[i].fired_at_unix_nano, want[i].fired_at_unix_nano);
    EXPECT_EQ(got[i].resolved_at_unix_nano, want[i].resolved_at_unix_nano);
    EXPECT_EQ(got[i].long_window, want[i].long_window);
    EXPECT_EQ(got[i].short_window, want[i].short_window);
    EXPECT_EQ(got[i].burn_rate_long, want[i].burn_rate_long);  // REAL keeps a double exactly
    EXPECT_EQ(got[i].burn_rate_short, want[i].burn_rate_short);
    EXPECT_EQ(got[i].threshold_burn_rate, want[i].threshold_burn_rate);
  }
}

TEST(SqliteStoreTest, AlertsRoundTripEveryFieldAcrossAReopen) {
  ScratchDir dir;
  const std::string path = dir.File("traceslo.db");
  using slo::AlertState;
  using slo::Severity;
  const std::vector<slo::AlertStatus> alerts = {
      MakeAlert("checkout", "availability", Severity::kPage, false, AlertState::kFiring, 0),
      MakeAlert("checkout", "availability", Severity::kTicket, false, AlertState::kPending, 1),
      MakeAlert("checkout", "availability", Severity::kTicket, true, AlertState::kResolved, 2),
      MakeAlert("checkout", "latency", Severity::kPage, false, AlertState::kResolved, 3),
      MakeAlert("search", "availability", Severity::kPage, true, AlertState::kFiring, 4),
      MakeAlert("search", "p99", Severity::kTicket, false, AlertState::kInactive, 5),
  };
  {
    auto store = OpenStore(path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->SaveAlerts(alerts).ok());
    auto loaded = store->LoadAlerts();
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ExpectSameAlerts(*loaded, alerts);
  }
  auto store = OpenStore(path);
  ASSERT_NE(store, nullptr);
  auto loaded = store->LoadAlerts();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameAlerts(*loaded, alerts);
}

TEST(SqliteStoreTest, SaveAlertsReplacesThePreviousSet) {
  ScratchDir dir;
  auto store = OpenStore(dir.File("traceslo.db"));
  ASSERT_NE(store, nullptr);
  using slo::AlertState;
  using slo::Severity;
  ASSERT_TRUE(
      store
          ->SaveAlerts({MakeAlert("checkout", "a", Severity::kPage, false, AlertState::kFiring, 1),
                        MakeAlert("checkout", "b", Severity::kPage, false, AlertState::kFiring, 2)})
          .ok());
  const std::vector<slo::AlertStatus> next = {
      MakeAlert("checkout", "b", Severity::kPage, false, AlertState::kResolved, 3)};
  ASSERT_TRUE(store->SaveAlerts(next).ok());
  auto loaded = store->LoadAlerts();
  ASSERT_TRUE(loaded.ok());
  ExpectSameAlerts(*loaded, next);
  ASSERT_TRUE(store->SaveAlerts({}).ok());
  loaded = store->LoadAlerts();
  ASSERT_TRUE(loaded.ok());
  EXPECT_TRUE(loaded->empty());
}

}  // namespace
}  // namespace traceslo::storage
