#pragma once

// Exemplar traces kept past the SLI store's memory (pipeline.exemplar_retention) and across
// restarts: the traces alerts link, and the latest slow and error trace of each service. Stored
// with every name resolved, since series and signature ids belong to one process.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "prometheus/collectable.h"
#include "traceslo/common/mutex.h"
#include "traceslo/common/span.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/storage/sqlite_store.h"

namespace traceslo::storage {

// Why a trace is kept: KeptTrace::reasons holds one bit per reason.
inline constexpr uint32_t kKeptForAlert = 1u << 0;  // an alert's cause links it
inline constexpr uint32_t kKeptSlow = 1u << 1;      // the latest slow trace of its service
inline constexpr uint32_t kKeptError = 1u << 2;     // the latest error trace of its service
inline constexpr uint32_t kAllKeptReasons = kKeptForAlert | kKeptSlow | kKeptError;

// What the store keeps of one trace at most: spans beyond kMaxKeptSpans (in the trace's order)
// are left out and counted in KeptTrace::dropped_spans; strings are cut to kMaxKeptStringBytes
// (at a UTF-8 character boundary when the text is UTF-8).
inline constexpr size_t kMaxKeptSpans = 1000;
inline constexpr size_t kMaxKeptStringBytes = 1024;
// Added to the encoded spans to count a row's bytes: the key, the service name, the integer
// columns and the index entries, roughly.
inline constexpr uint64_t kKeptRowOverheadBytes = 128;

// One span with its names resolved. Strings are untrusted (they came from an OTLP producer) and
// stored as sent: not necessarily UTF-8, never escaped.
struct KeptSpan {
  uint64_t span_id = 0;
  uint64_t parent_span_id = 0;  // 0: a root span
  std::string service;          // "unknown" when the registry did not know the series
  std::string operation;
  SpanKind kind = SpanKind::kUnspecified;
  int64_t start_offset_nanos = 0;  // from KeptTrace::start_unix_nano; may be negative (skew)
  uint64_t duration_nanos = 0;
  bool error = false;
  bool orphan = false;     // its parent never arrived
  uint64_t signature = 0;  // error spans: the error signature id; otherwise 0
  // The signature's texts when the registry still held it, else empty.
  std::string exception_type;
  std::string message;  // a sample message as sent, else the normalized one
  std::string top_frame;
  friend bool operator==(const KeptSpan&, const KeptSpan&) = default;
};

struct KeptTrace {
  TraceId trace_id{};
  int64_t start_unix_nano = 0;
  uint64_t duration_nanos = 0;
  std::vector<KeptSpan> spans;
  // Spans of the trace that are not in `spans` (past kMaxKeptSpans when stored).
  uint64_t dropped_spans = 0;
  uint32_t reasons = 0;  // kKeptForAlert | kKeptSlow | kKeptError
  // The service it was kept for: the alert's service, or the service it is the latest slow or
  // error trace of.
  std::string service;
  // Set by Find(), ignored by Put(): when the trace was first stored, and when it was last kept
  // or linked again (its age counts from then).
  int64_t kept_at_unix_nano = 0;
  int64_t last_linked_at_unix_nano = 0;
  friend bool operator==(const KeptTrace&, const KeptTrace&) = default;
};

// What a span's error signature says.
struct SignatureText {
  std::string exception_type;
  std::string message;
  std::string top_frame;
};
// The texts of signature `id`, or nullopt when the registry does not hold it (any more).
using SignatureLookup = absl::FunctionRef<std::optional<SignatureText>(uint64_t id)>;

// The texts of a signature of the SLI store's registry: the message is the sample as sent, or
// the normalized one when there is no sample.
SignatureText SignatureTextOf(const pipeline::SignatureInfo& info);

// The one place that resolves an exemplar's ids to names: series to (service, operation) in
// `registry` ("unknown" for ids it does not know), signature ids to their texts through
// `signatures` (asked once per distinct id). Strings are copied as they are (not made UTF-8, not
// truncated); `reasons`, `service` and the store's times are left for the caller. `registry` is
// read under its own lock.
KeptTrace KeptTraceOf(const pipeline::ExemplarTrace& trace,
                      const pipeline::SeriesRegistry& registry, SignatureLookup signatures);
// The same with the SLI store's signature list (SliStore::Signatures()).
KeptTrace KeptTraceOf(const pipeline::ExemplarTrace& trace,
                      const pipeline::SeriesRegistry& registry,
                      const std::vector<pipeline::SignatureInfo>& signatures);

// Where kept traces live. Thread-safe. Errors: Unavailable when the storage failed (nothing of
// the call was written), DataLoss when a stored trace does not decode (that trace only).
class ExemplarStore {
 public:
  virtual ~ExemplarStore() = default;

  // Stores `traces` at `now_unix_nano`, in one transaction. A trace already stored keeps its
  // first kept time and gains the new reasons; its spans, last-linked time and (when an alert
  // links it for the first time) its service are replaced.
  virtual absl::Status Put(const std::vector<KeptTrace>& traces, int64_t now_unix_nano) = 0;
  // Marks those of `trace_ids` that are stored as linked by an alert at `now_unix_nano` (for
  // traces the SLI store no longer holds); how many were stored.
  virtual absl::StatusOr<uint64_t> Relink(const std::vector<TraceId>& trace_ids,
                                          int64_t now_unix_nano) = 0;
  // The stored trace, or nullopt when it is not stored.
  virtual absl::StatusOr<std::optional<KeptTrace>> Find(const TraceId& trace_id) = 0;
};

struct ExemplarStoreOptions {
  // Traces an alert linked are deleted this long after they were last linked.
  std::chrono::milliseconds alert_max_age{7LL * 86'400'000};
  // Traces kept only as a service's latest slow or error trace go sooner: a newer one replaces
  // them every few seconds while the service has traffic.
  std::chrono::milliseconds max_age{86'400'000};
  // After the age limits, the oldest traces go until the rows' bytes (see kKeptRowOverheadBytes)
  // are at most this: first those no alert links, then alert-linked ones.
  uint64_t max_bytes = 64ULL << 20;
};

// How many traces Prune() deleted, by cause.
struct PruneCounts {
  uint64_t age = 0;
  uint64_t size = 0;
  friend bool operator==(const PruneCounts&, const PruneCounts&) = default;
};

// The kept traces in table exemplar_traces of traceslo's SQLite file (migration 4), spans as one
// versioned binary BLOB per trace (services/storage/kept_trace_codec.h). Thread-safe (the
// SqliteStore's connection lock, and a mutex for the metrics). `db` is borrowed and must outlive
// the store.
class SqliteExemplarStore final : public ExemplarStore, public prometheus::Collectable {
 public:
  // Reads the current row count and bytes for the gauges; Unavailable when that fails.
  static absl::StatusOr<std::unique_ptr<SqliteExemplarStore>> Create(
      const ExemplarStoreOptions& options, SqliteStore& db);

  // Deletes by age (alert_max_age, max_age), then by size (max_bytes), in one transaction.
  absl::StatusOr<PruneCounts> Prune(int64_t now_unix_nano);

  // traceslo::storage::ExemplarStore
  absl::Status Put(const std::vector<KeptTrace>& traces, int64_t now_unix_nano) override;
  absl::StatusOr<uint64_t> Relink(const std::vector<TraceId>& trace_ids,
                                  int64_t now_unix_nano) override;
  absl::StatusOr<std::optional<KeptTrace>> Find(const TraceId& trace_id) override;

  // traceslo_exemplar_store_traces, traceslo_exemplar_store_bytes (gauges),
  // traceslo_exemplar_store_writes_total, traceslo_exemplar_store_pruned_total{reason="age"|
  // "size"}, traceslo_exemplar_store_errors_total (failed calls and traces that do not decode).
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  SqliteExemplarStore(const ExemplarStoreOptions& options, SqliteStore& db);
  // Counts a failed call and passes its status on.
  absl::Status Failed(absl::Status status);

  const ExemplarStoreOptions options_;
  SqliteStore& db_;
  mutable Mutex mu_;
  uint64_t traces_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t writes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pruned_age_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pruned_size_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace traceslo::storage
