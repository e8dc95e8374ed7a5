#include "traceslo/storage/exemplar_store.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "services/storage/kept_trace_codec.h"
#include "traceslo/common/metric_values.h"

namespace traceslo::storage {
namespace {

using metrics::Counter;
using metrics::Family;
using metrics::Gauge;

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr std::string_view kUnknown = "unknown";

// The columns Find() reads, in TraceAt()'s order.
constexpr char kTraceColumns[] =
    "trace_id, reasons, service, start_unix_nano, duration_nanos, dropped_spans, "
    "kept_at_unix_nano, last_linked_at_unix_nano, spans";

int64_t AsInt(uint64_t v) {  // SQLite integers are signed; larger values saturate
  return v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
             ? std::numeric_limits<int64_t>::max()
             : static_cast<int64_t>(v);
}

// `now` minus `age`, saturating.
int64_t Before(int64_t now_unix_nano, std::chrono::milliseconds age) {
  const int64_t nanos = age.count() > std::numeric_limits<int64_t>::max() / 1'000'000
                            ? std::numeric_limits<int64_t>::max()
                            : static_cast<int64_t>(age.count()) * 1'000'000;
  if (now_unix_nano < std::numeric_limits<int64_t>::min() + nanos) {
    return std::numeric_limits<int64_t>::min();
  }
  return now_unix_nano - nanos;
}

std::string_view BlobOf(const SQLite::Column& column) {
  return std::string_view(static_cast<const char*>(column.getBlob()),
                          static_cast<size_t>(column.getBytes()));
}

// The trace of a row of kTraceColumns; DataLoss when a column does not hold what Put() writes.
absl::StatusOr<KeptTrace> TraceAt(const SQLite::Statement& q) {
  KeptTrace t;
  const std::string_view id = BlobOf(q.getColumn(0));
  if (id.size() != t.trace_id.size()) return absl::DataLossError("the trace id is not 16 bytes");
  std::copy(id.begin(), id.end(), t.trace_id.begin());
  const int64_t reasons = q.getColumn(1).getInt64();
  if (reasons <= 0 || (reasons & ~int64_t{kAllKeptReasons}) != 0) {
    return absl::DataLossError("unknown reasons " + std::to_string(reasons));
  }
  t.reasons = static_cast<uint32_t>(reasons);
  t.service = q.getColumn(2).getString();
  t.start_unix_nano = q.getColumn(3).getInt64();
  const int64_t duration = q.getColumn(4).getInt64();
  const int64_t dropped = q.getColumn(5).getInt64();
  if (duration < 0 || dropped < 0) return absl::DataLossError("a negative duration or count");
  t.duration_nanos = static_cast<uint64_t>(duration);
  t.dropped_spans = static_cast<uint64_t>(dropped);
  t.kept_at_unix_nano = q.getColumn(6).getInt64();
  t.last_linked_at_unix_nano = q.getColumn(7).getInt64();
  absl::StatusOr<std::vector<KeptSpan>> spans = DecodeKeptSpans(BlobOf(q.getColumn(8)));
  if (!spans.ok()) return absl::DataLossError(spans.status().message());
  t.spans = *std::move(spans);
  return t;
}

// Row count and bytes of the table, for the gauges.
std::pair<uint64_t, uint64_t> Totals(SQLite::Database& db) {
  SQLite::Statement q(db, "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM exemplar_traces");
  q.executeStep();
  return {static_cast<uint64_t>(q.getColumn(0).getInt64()),
          static_cast<uint64_t>(q.getColumn(1).getInt64())};
}

}  // namespace

SignatureText SignatureTextOf(const pipeline::SignatureInfo& info) {
  return SignatureText{
      .exception_type = info.exception_type,
      .message = info.sample_message.empty() ? info.normalized_message : info.sample_message,
      .top_frame = info.top_frame};
}

KeptTrace KeptTraceOf(const pipeline::ExemplarTrace& trace,
                      const pipeline::SeriesRegistry& registry, SignatureLookup signatures) {
  KeptTrace kept;
  kept.trace_id = trace.trace_id;
  kept.start_unix_nano = trace.start_unix_nano;
  kept.duration_nanos = trace.duration_nanos;
  kept.spans.reserve(trace.spans.size());
  const uint32_t series_count = registry.series_count();
  absl::flat_hash_map<uint64_t, std::optional<SignatureText>> texts;
  for (const pipeline::ExemplarSpan& span : trace.spans) {
    KeptSpan& k = kept.spans.emplace_back();
    k.span_id = span.span_id;
    k.parent_span_id = span.parent_span_id;
    if (span.series < series_count) {
      k.service = registry.ServiceName(registry.ServiceOf(span.series));
      k.operation = registry.OperationName(span.series);
    } else {
      k.service = k.operation = kUnknown;
    }
    k.kind = span.kind;
    k.start_offset_nanos = span.start_offset_nanos;
    k.duration_nanos = span.duration_nanos;
    k.error = span.error;
    k.orphan = span.orphan;
    k.signature = span.signature;
    if (span.signature == 0) continue;
    auto [it, inserted] = texts.try_emplace(span.signature);
    if (inserted) it->second = signatures(span.signature);
    if (it->second.has_value()) {
      k.exception_type = it->second->exception_type;
      k.message = it->second->message;
      k.top_frame = it->second->top_frame;
    }
  }
  return kept;
}

KeptTrace KeptTraceOf(const pipeline::ExemplarTrace& trace,
                      const pipeline::SeriesRegistry& registry,
                      const std::vector<pipeline::SignatureInfo>& signatures) {
  absl::flat_hash_map<uint64_t, const pipeline::SignatureInfo*> by_id;
  for (const pipeline::ExemplarSpan& span : trace.spans) {
    if (span.signature != 0) by_id.try_emplace(span.signature, nullptr);
  }
  for (const pipeline::SignatureInfo& info : signatures) {
    if (auto it = by_id.find(info.id); it != by_id.end()) it->second = &info;
  }
  return KeptTraceOf(trace, registry, [&](uint64_t id) -> std::optional<SignatureText> {
    auto it = by_id.find(id);
    if (it == by_id.end() || it->second == nullptr) return std::nullopt;
    return SignatureTextOf(*it->second);
  });
}

SqliteExemplarStore::SqliteExemplarStore(const ExemplarStoreOptions& options, SqliteStore& db)
    : options_(options), db_(db) {}

absl::StatusOr<std::unique_ptr<SqliteExemplarStore>> SqliteExemplarStore::Create(
    const ExemplarStoreOptions& options, SqliteStore& db) {
  std::unique_ptr<SqliteExemplarStore> store(new SqliteExemplarStore(options, db));
  std::pair<uint64_t, uint64_t> totals;
  absl::Status status = db.Transact("cannot count the kept exemplar traces",
                                    [&](SQLite::Database& d) { totals = Totals(d); });
  if (!status.ok()) return status;
  MutexLock lock(store->mu_);
  store->traces_ = totals.first;
  store->bytes_ = totals.second;
  return store;
}

absl::Status SqliteExemplarStore::Failed(absl::Status status) {
  MutexLock lock(mu_);
  ++errors_;
  return status;
}

absl::Status SqliteExemplarStore::Put(const std::vector<KeptTrace>& traces, int64_t now_unix_nano) {
  if (traces.empty()) return absl::OkStatus();
  std::pair<uint64_t, uint64_t> totals;
  absl::Status status = db_.Transact("cannot keep exemplar traces", [&](SQLite::Database& db) {
    SQLite::Statement q(
        db,
        "INSERT INTO exemplar_traces (trace_id, reasons, service, start_unix_nano, "
        "duration_nanos, dropped_spans, kept_at_unix_nano, last_linked_at_unix_nano, bytes, "
        "spans) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (trace_id) DO UPDATE SET "
        "reasons = reasons | excluded.reasons, "
        "service = CASE WHEN (reasons & 1) = 0 AND (excluded.reasons & 1) != 0 "
        "THEN excluded.service ELSE service END, "
        "start_unix_nano = excluded.start_unix_nano, duration_nanos = excluded.duration_nanos, "
        "dropped_spans = excluded.dropped_spans, "
        "last_linked_at_unix_nano = excluded.last_linked_at_unix_nano, "
        "bytes = excluded.bytes, "
        "spans = excluded.spans");
    for (const KeptTrace& t : traces) {
      const std::string spans = EncodeKeptSpans(t.spans);
      const std::string_view service = TruncateText(t.service, kMaxKeptStringBytes);
      const uint64_t dropped =
          t.dropped_spans + (t.spans.size() > kMaxKeptSpans ? t.spans.size() - kMaxKeptSpans : 0);
      q.bind(1, t.trace_id.data(), static_cast<int>(t.trace_id.size()));
      q.bind(2, static_cast<int64_t>(t.reasons & kAllKeptReasons));
      q.bind(3, std::string(service));
      q.bind(4, t.start_unix_nano);
      q.bind(5, AsInt(t.duration_nanos));
      q.bind(6, AsInt(dropped));
      q.bind(7, now_unix_nano);
      q.bind(8, now_unix_nano);
      q.bind(9, AsInt(spans.size() + kKeptRowOverheadBytes));
      q.bind(10, spans.data(), static_cast<int>(spans.size()));
      q.exec();
      q.reset();
    }
    totals = Totals(db);
  });
  if (!status.ok()) return Failed(std::move(status));
  MutexLock lock(mu_);
  writes_ += traces.size();
  traces_ = totals.first;
  bytes_ = totals.second;
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> SqliteExemplarStore::Relink(const std::vector<TraceId>& trace_ids,
                                                     int64_t now_unix_nano) {
  uint64_t rows = 0;
  if (trace_ids.empty()) return rows;
  absl::Status status =
      db_.Transact("cannot relink kept exemplar traces", [&](SQLite::Database& db) {
        SQLite::Statement q(db,
                            "UPDATE exemplar_traces SET reasons = reasons | 1, "
                            "last_linked_at_unix_nano = MAX(last_linked_at_unix_nano, ?) "
                            "WHERE trace_id = ?");
        for (const TraceId& id : trace_ids) {
          q.bind(1, now_unix_nano);
          q.bind(2, id.data(), static_cast<int>(id.size()));
          rows += static_cast<uint64_t>(q.exec());
          q.reset();
        }
      });
  if (!status.ok()) return Failed(std::move(status));
  return rows;
}

absl::StatusOr<std::optional<KeptTrace>> SqliteExemplarStore::Find(const TraceId& trace_id) {
  std::optional<absl::StatusOr<KeptTrace>> found;
  absl::Status status =
      db_.Transact("cannot read a kept exemplar trace", [&](SQLite::Database& db) {
        SQLite::Statement q(db, std::string("SELECT ") + kTraceColumns +
                                    " FROM exemplar_traces WHERE trace_id = ?");
        q.bind(1, trace_id.data(), static_cast<int>(trace_id.size()));
        if (q.executeStep()) found = TraceAt(q);
      });
  if (!status.ok()) return Failed(std::move(status));
  if (!found.has_value()) return std::optional<KeptTrace>();
  if (!found->ok()) {
    return Failed(
        absl::DataLossError(db_.path() + ": kept exemplar trace " + TraceIdHex(trace_id) +
                            " does not decode: " + std::string(found->status().message())));
  }
  return std::optional<KeptTrace>(*std::move(*found));
}

absl::StatusOr<PruneCounts> SqliteExemplarStore::Prune(int64_t now_unix_nano) {
  PruneCounts counts;
  std::pair<uint64_t, uint64_t> totals;
  absl::Status status =
      db_.Transact("cannot prune kept exemplar traces", [&](SQLite::Database& db) {
        SQLite::Statement linked(db,
                                 "DELETE FROM exemplar_traces WHERE (reasons & 1) != 0 AND "
                                 "last_linked_at_unix_nano < ?");
        linked.bind(1, Before(now_unix_nano, options_.alert_max_age));
        counts.age += static_cast<uint64_t>(linked.exec());
        SQLite::Statement others(db,
                                 "DELETE FROM exemplar_traces WHERE (reasons & 1) = 0 AND "
                                 "last_linked_at_unix_nano < ?");
        others.bind(1, Before(now_unix_nano, options_.max_age));
        counts.age += static_cast<uint64_t>(others.exec());

        uint64_t bytes = Totals(db).second;
        if (bytes > options_.max_bytes) {
          // Oldest first, those no alert links before the alert-linked ones.
          std::vector<int64_t> doomed;
          SQLite::Statement oldest(
              db,
              "SELECT rowid, bytes FROM exemplar_traces ORDER BY (reasons & 1) != 0, "
              "last_linked_at_unix_nano, kept_at_unix_nano, trace_id");
          while (bytes > options_.max_bytes && oldest.executeStep()) {
            doomed.push_back(oldest.getColumn(0).getInt64());
            bytes -= std::min(bytes, static_cast<uint64_t>(oldest.getColumn(1).getInt64()));
          }
          oldest.reset();
          SQLite::Statement remove(db, "DELETE FROM exemplar_traces WHERE rowid = ?");
          for (int64_t rowid : doomed) {
            remove.bind(1, rowid);
            counts.size += static_cast<uint64_t>(remove.exec());
            remove.reset();
          }
        }
        totals = Totals(db);
      });
  if (!status.ok()) return Failed(std::move(status));
  MutexLock lock(mu_);
  pruned_age_ += counts.age;
  pruned_size_ += counts.size;
  traces_ = totals.first;
  bytes_ = totals.second;
  return counts;
}

std::vector<MetricFamily> SqliteExemplarStore::Collect() const {
  MutexLock lock(mu_);
  std::vector<MetricFamily> out;
  auto traces = Family("traceslo_exemplar_store_traces",
                       "Exemplar traces kept in SQLite (alert-linked and each service's latest "
                       "slow and error trace).",
                       MetricType::Gauge);
  traces.metric.push_back(Gauge({}, static_cast<double>(traces_)));
  out.push_back(std::move(traces));
  auto bytes = Family("traceslo_exemplar_store_bytes",
                      "Approximate bytes of the kept exemplar traces (what the size cap counts).",
                      MetricType::Gauge);
  bytes.metric.push_back(Gauge({}, static_cast<double>(bytes_)));
  out.push_back(std::move(bytes));
  auto writes = Family("traceslo_exemplar_store_writes_total",
                       "Exemplar traces written to SQLite (a trace kept again counts again).",
                       MetricType::Counter);
  writes.metric.push_back(Counter({}, static_cast<double>(writes_)));
  out.push_back(std::move(writes));
  auto pruned = Family("traceslo_exemplar_store_pruned_total",
                       "Kept exemplar traces deleted, by reason: age (past their max age) or "
                       "size (over the size cap).",
                       MetricType::Counter);
  pruned.metric.push_back(Counter({{"reason", "age"}}, static_cast<double>(pruned_age_)));
  pruned.metric.push_back(Counter({{"reason", "size"}}, static_cast<double>(pruned_size_)));
  out.push_back(std::move(pruned));
  auto errors = Family("traceslo_exemplar_store_errors_total",
                       "Failed calls of the exemplar trace store, including stored traces that "
                       "do not decode.",
                       MetricType::Counter);
  errors.metric.push_back(Counter({}, static_cast<double>(errors_)));
  out.push_back(std::move(errors));
  return out;
}

}  // namespace traceslo::storage
