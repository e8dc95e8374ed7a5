#include "traceslo/kafka/stage2.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iterator>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>

#include "services/kafka/delta_entries.h"
#include "traceslo/common/int_math.h"
#include "traceslo/v1/delta_batch.pb.h"
#include "traceslo/v1/state.pb.h"

namespace traceslo::kafka {
namespace {

constexpr int64_t kBucketMs = pipeline::kBucketSeconds * 1000;
// Longer durations than this are not meant (and would overflow the watermark arithmetic).
constexpr std::chrono::milliseconds kLongest = std::chrono::hours(24 * 366 * 100);
// Retention deletes run when the cut-off has moved by this many buckets (a minute).
constexpr int64_t kPruneStepBuckets = 6;

// Versioned migrations: kMigrations[i] takes the schema from version i to i + 1. Only ever
// append; a released migration never changes. Entries are the DeltaBatch's SeriesEntry and
// ServiceEntry messages without their names (the key columns hold them), merged.
constexpr std::array<std::string_view, kStage2SchemaVersion> kMigrations = {
    R"sql(
CREATE TABLE meta (key TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE kafka_offset (
  partition INTEGER NOT NULL PRIMARY KEY,
  next_offset INTEGER NOT NULL
);
CREATE TABLE sources (
  src INTEGER NOT NULL PRIMARY KEY,
  first_epoch INTEGER NOT NULL,
  contiguous_epoch INTEGER NOT NULL,
  newest_epoch INTEGER NOT NULL
);
CREATE TABLE applied_epochs (
  src INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  PRIMARY KEY (src, epoch)
) WITHOUT ROWID;
CREATE TABLE series_buckets (
  service TEXT NOT NULL,
  operation TEXT NOT NULL,
  bucket INTEGER NOT NULL,
  entry BLOB NOT NULL,
  PRIMARY KEY (service, operation, bucket)
) WITHOUT ROWID;
CREATE INDEX series_buckets_by_bucket ON series_buckets (bucket);
CREATE TABLE service_buckets (
  service TEXT NOT NULL,
  bucket INTEGER NOT NULL,
  entry BLOB NOT NULL,
  PRIMARY KEY (service, bucket)
) WITHOUT ROWID;
CREATE INDEX service_buckets_by_bucket ON service_buckets (bucket);
CREATE TABLE counters (name TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
)sql",
    // The changelog's pending changes (kind as StateKey.Kind: 1 series, 2 service), by the
    // sequence of the change; every bucket stored before is pending (it never went out).
    R"sql(
CREATE TABLE changelog_pending (
  kind INTEGER NOT NULL,
  service TEXT NOT NULL,
  operation TEXT NOT NULL,
  bucket INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (kind, service, operation, bucket)
) WITHOUT ROWID;
INSERT INTO changelog_pending SELECT 1, service, operation, bucket, 1 FROM series_buckets;
INSERT INTO changelog_pending SELECT 2, service, '', bucket, 1 FROM service_buckets;
)sql",
    // A digest of each applied record's content (0: not known), to tell a re-sent epoch that
    // differs.
    R"sql(
ALTER TABLE applied_epochs ADD COLUMN digest INTEGER NOT NULL DEFAULT 0;
)sql",
};

// The persisted counters, by name.
constexpr std::array<std::pair<std::string_view, uint64_t Stage2Counters::*>, 9> kCounterNames = {{
    {"applied", &Stage2Counters::applied},
    {"duplicates", &Stage2Counters::duplicates},
    {"refused_invalid", &Stage2Counters::refused_invalid},
    {"refused_config", &Stage2Counters::refused_config},
    {"refused_partition", &Stage2Counters::refused_partition},
    {"refused_too_late", &Stage2Counters::refused_too_late},
    {"late", &Stage2Counters::late},
    {"abandoned_epochs", &Stage2Counters::abandoned_epochs},
    {"divergent", &Stage2Counters::divergent},
}};

static_assert(sizeof(Stage2Counters) == kCounterNames.size() * sizeof(uint64_t),
              "every counter has a name in kCounterNames");

// A stored bucket that does not decode (the file was damaged outside traceslo).
class DamagedBucket : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

absl::Status Failed(const std::string& path, std::string_view what, const std::exception& e) {
  return absl::UnavailableError(path + ": " + std::string(what) + ": " + e.what());
}

int64_t AsInt(uint64_t v) { return static_cast<int64_t>(v); }  // SQLite integers are signed

std::string_view BlobOf(const SQLite::Column& column) {
  return {static_cast<const char*>(column.getBlob()), static_cast<size_t>(column.getBytes())};
}

// The header fields stage 2 decides on, read without parsing the entries, so that a record
// refused for its header (or a duplicate) never reaches the series registry.
struct ScannedHeader {
  uint32_t schema_version = 0;
  uint64_t config_hash = 0;
  int32_t src_partition = 0;
  int64_t epoch = 0;
  int32_t dst_partition = 0;
};

std::optional<ScannedHeader> ScanHeader(std::string_view bytes, size_t max_bytes) {
  using google::protobuf::internal::WireFormatLite;
  if (bytes.size() > max_bytes || bytes.size() > static_cast<size_t>(INT32_MAX)) {
    return std::nullopt;
  }
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  ScannedHeader h;
  for (;;) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) break;
    const uint32_t field = WireFormatLite::GetTagFieldNumber(tag);
    const WireFormatLite::WireType type = WireFormatLite::GetTagWireType(tag);
    uint64_t varint = 0;
    bool ok = true;
    if (type == WireFormatLite::WIRETYPE_VARINT &&
        (field == 1 || field == 4 || field == 5 || field == 7)) {
      ok = in.ReadVarint64(&varint);
      if (field == 1) h.schema_version = static_cast<uint32_t>(varint);
      if (field == 4) h.src_partition = static_cast<int32_t>(static_cast<uint32_t>(varint));
      if (field == 5) h.epoch = static_cast<int64_t>(varint);
      if (field == 7) h.dst_partition = static_cast<int32_t>(static_cast<uint32_t>(varint));
    } else if (type == WireFormatLite::WIRETYPE_FIXED64 && field == 2) {
      ok = in.ReadLittleEndian64(&h.config_hash);
    } else {
      ok = WireFormatLite::SkipField(&in, tag);
    }
    if (!ok) return std::nullopt;
  }
  if (in.CurrentPosition() != static_cast<int>(bytes.size())) return std::nullopt;
  return h;
}

std::string EncodeSeries(const pipeline::SeriesDelta& d) {
  v1::SeriesEntry e;
  WriteSeriesCounts(d, e);
  return e.SerializeAsString();
}

// A stored series entry; false if it is damaged.
bool DecodeSeries(std::string_view bytes, pipeline::SeriesDelta& d) {
  v1::SeriesEntry e;
  if (bytes.size() > static_cast<size_t>(INT32_MAX) ||
      !e.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) ||
      static_cast<size_t>(e.classic_size()) != pipeline::kClassicBuckets ||
      !d.latency.Decode(e.latency())) {
    return false;
  }
  ReadSeriesCounts(e, d);
  return true;
}

std::string EncodeService(const pipeline::ServiceDelta& d) {
  v1::ServiceEntry e;
  WriteServiceCounts(d, e);
  return e.SerializeAsString();
}

bool DecodeService(std::string_view bytes, pipeline::ServiceDelta& d) {
  v1::ServiceEntry e;
  if (bytes.size() > static_cast<size_t>(INT32_MAX) ||
      !e.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return false;
  }
  ReadServiceCounts(e, d);
  return true;
}

// Merging is a sum (classic buckets element-wise, sketches merged, signatures counted under a
// cap): commutative and associative, except which signatures keep their own id once a bucket
// has seen more than `cap` of them.
void MergeSeries(pipeline::SeriesDelta& into, const pipeline::SeriesDelta& from, size_t cap) {
  into.requests += from.requests;
  into.errors += from.errors;
  into.sum_seconds += from.sum_seconds;
  for (size_t i = 0; i < pipeline::kClassicBuckets; ++i) into.classic[i] += from.classic[i];
  into.latency.Merge(from.latency);
  for (const pipeline::SignatureCount& s : from.signatures) {
    pipeline::AddSignatureCount(into.signatures, s.id, s.count, cap);
  }
}

void MergeService(pipeline::ServiceDelta& into, const pipeline::ServiceDelta& from) {
  into.traces += from.traces;
  into.error_traces_root += from.error_traces_root;
  into.error_traces_origin += from.error_traces_origin;
  into.partial_traces += from.partial_traces;
  into.propagation_breaks += from.propagation_breaks;
}

// A digest of what a record adds, independent of the order of its entries and of the registry's
// ids (signature details and exemplars, samples of what the counts say, are left out). Never 0.
uint64_t ContentDigest(const pipeline::ShardDelta& d, const pipeline::SeriesRegistry& names) {
  std::vector<std::string> entries;
  entries.reserve(d.series.size() + d.services.size() + 1);
  auto num = [](std::string& out, uint64_t v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  };
  for (const pipeline::SeriesDelta& s : d.series) {
    std::string e = "s";
    e += names.ServiceName(s.service);
    e.push_back('\0');
    e += names.OperationName(s.series);
    e.push_back('\0');
    num(e, static_cast<uint64_t>(s.bucket));
    num(e, s.requests);
    num(e, s.errors);
    uint64_t sum_bits = 0;
    std::memcpy(&sum_bits, &s.sum_seconds, sizeof sum_bits);
    num(e, sum_bits);
    for (uint64_t c : s.classic) num(e, c);
    s.latency.AppendEncoded(e);
    std::vector<std::pair<uint64_t, uint64_t>> signatures;
    for (const pipeline::SignatureCount& c : s.signatures) signatures.emplace_back(c.id, c.count);
    std::sort(signatures.begin(), signatures.end());
    for (const auto& [id, count] : signatures) {
      num(e, id);
      num(e, count);
    }
    entries.push_back(std::move(e));
  }
  for (const pipeline::ServiceDelta& s : d.services) {
    std::string e = "v";
    e += names.ServiceName(s.service);
    e.push_back('\0');
    for (uint64_t v : {static_cast<uint64_t>(s.bucket), s.traces, s.error_traces_root,
                       s.error_traces_origin, s.partial_traces, s.propagation_breaks}) {
      num(e, v);
    }
    entries.push_back(std::move(e));
  }
  std::string counters = "c";
  for (uint64_t v : {d.late_spans, d.evicted_traces, d.clock_skew_spans, d.truncated_spans}) {
    num(counters, v);
  }
  entries.push_back(std::move(counters));
  std::sort(entries.begin(), entries.end());
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a 64 over the entries, each length-prefixed
  auto add = [&hash](std::string_view bytes) {
    for (const char c : bytes) {
      hash ^= static_cast<uint8_t>(c);
      hash *= 0x100000001b3ull;
    }
  };
  for (const std::string& e : entries) {
    const uint64_t size = e.size();
    add(std::string_view(reinterpret_cast<const char*>(&size), sizeof size));
    add(e);
  }
  return hash == 0 ? 1 : hash;
}

// What one Apply() call newly merged, by (id, bucket) of the registry's ids.
struct Accumulated {
  std::map<std::pair<uint32_t, int64_t>, pipeline::SeriesDelta> series;
  std::map<std::pair<uint32_t, int64_t>, pipeline::ServiceDelta> services;
  // In record order; the sink merges them by id (not kept in the file).
  std::vector<pipeline::SignatureDelta> signatures;
  // In record order; the sink keeps the slowest / latest per slot (not kept in the file).
  std::vector<pipeline::ExemplarDelta> exemplars;
  uint64_t late_spans = 0;
  uint64_t evicted_traces = 0;
  uint64_t clock_skew_spans = 0;
  uint64_t truncated_spans = 0;

  void Add(pipeline::ShardDelta& delta, size_t cap) {
    for (pipeline::SeriesDelta& d : delta.series) {
      auto [it, inserted] = series.try_emplace({d.series, d.bucket});
      if (inserted) {
        it->second = std::move(d);
      } else {
        MergeSeries(it->second, d, cap);
      }
    }
    for (const pipeline::ServiceDelta& d : delta.services) {
      auto [it, inserted] = services.try_emplace({d.service, d.bucket}, d);
      if (!inserted) MergeService(it->second, d);
    }
    std::move(delta.signatures.begin(), delta.signatures.end(), std::back_inserter(signatures));
    std::move(delta.exemplars.begin(), delta.exemplars.end(), std::back_inserter(exemplars));
    late_spans += delta.late_spans;
    evicted_traces += delta.evicted_traces;
    clock_skew_spans += delta.clock_skew_spans;
    truncated_spans += delta.truncated_spans;
  }
  bool empty() const {
    return series.empty() && services.empty() && signatures.empty() && exemplars.empty() &&
           late_spans == 0 && evicted_traces == 0 && clock_skew_spans == 0 && truncated_spans == 0;
  }
  pipeline::ShardDelta Take() {
    pipeline::ShardDelta out;
    out.series.reserve(series.size());
    for (auto& [key, d] : series) out.series.push_back(std::move(d));
    out.services.reserve(services.size());
    for (auto& [key, d] : services) out.services.push_back(d);
    out.signatures = std::move(signatures);
    out.exemplars = std::move(exemplars);
    out.late_spans = late_spans;
    out.evicted_traces = evicted_traces;
    out.clock_skew_spans = clock_skew_spans;
    out.truncated_spans = truncated_spans;
    return out;
  }
};

absl::Status CheckOptions(const Stage2Options& options) {
  if (options.partition < 0 || options.source_partitions < 1 || options.config_hashes.empty() ||
      options.epoch_length.count() <= 0 || options.retention.count() <= 0 ||
      options.allowed_lateness.count() < 0 || options.retention > kLongest ||
      options.allowed_lateness > kLongest || options.applied_epoch_window < 1 ||
      options.applied_epoch_window > 100'000'000 || options.restore_batch == 0 ||
      options.busy_timeout_ms < 0) {
    return absl::InvalidArgumentError(
        "stage 2: options need partition >= 0, source_partitions >= 1, a config hash, a positive "
        "epoch length, retention and allowed_lateness >= 0 (both at most 100 years), "
        "applied_epoch_window in [1, 1e8] and restore_batch >= 1");
  }
  return absl::OkStatus();
}

// Keys of the changelog (proto/traceslo/v1/state.proto).
std::string StateKeyBytes(v1::StateKey::Kind kind, int32_t partition, std::string_view service,
                          std::string_view operation, int64_t bucket) {
  v1::StateKey key;
  key.set_kind(kind);
  key.set_partition(partition);
  key.set_service(std::string(service));
  key.set_operation(std::string(operation));
  key.set_bucket(bucket);
  return key.SerializeAsString();
}

constexpr uint32_t kStateSchemaVersion = 1;

}  // namespace

StateChangelogReader::StateChangelogReader(int32_t partition, StateReaderLimits limits)
    : partition_(partition), limits_(limits) {}

void StateChangelogReader::Add(std::string_view key_bytes, std::string_view value_bytes) {
  ++records_;
  v1::StateKey key;
  if (key_bytes.size() > limits_.max_record_bytes ||
      value_bytes.size() > limits_.max_record_bytes ||
      !key.ParseFromArray(key_bytes.data(), static_cast<int>(key_bytes.size())) ||
      key.partition() != partition_ || static_cast<int>(key.kind()) <= 0 ||
      key.kind() > v1::StateKey::ALERT) {
    ++invalid_;
    return;
  }
  v1::StateValue value;
  if (!value_bytes.empty()) {
    if (!value.ParseFromArray(value_bytes.data(), static_cast<int>(value_bytes.size())) ||
        value.schema_version() != kStateSchemaVersion) {
      ++invalid_;
      return;
    }
  }
  if (key.kind() == v1::StateKey::OUTBOX) {
    std::pair<std::string, std::string> id{key.receiver(), key.notification_id()};
    if (id.first.empty() || id.second.empty() || id.first.size() > kMaxOutboxIdBytes ||
        id.second.size() > kMaxOutboxIdBytes ||
        (!value_bytes.empty() && (!value.has_outbox() || value.outbox().notification().empty()))) {
      ++invalid_;
    } else if (value_bytes.empty()) {
      outbox_.erase(id);
    } else if (outbox_.size() >= limits_.max_outbox && !outbox_.contains(id)) {
      ++invalid_;
    } else {
      outbox_[std::move(id)] = {std::move(*value.mutable_outbox()->mutable_notification()),
                                value.outbox().enqueued_unix_nano()};
    }
    return;
  }
  if (key.kind() == v1::StateKey::ALERT) {
    auto named = [](const std::string& name) {
      return !name.empty() && name.size() <= kMaxOutboxIdBytes;
    };
    if (!named(key.service()) || !named(key.slo()) ||
        (key.severity() != "page" && key.severity() != "ticket") ||
        (!value_bytes.empty() && !value.has_alert())) {
      ++invalid_;
    } else if (value_bytes.empty()) {
      alerts_.erase(std::string(key_bytes));
    } else if (alerts_.size() >= limits_.max_alerts && !alerts_.contains(std::string(key_bytes))) {
      ++invalid_;
    } else {
      alerts_[std::string(key_bytes)] =
          FiringAlert{.service = key.service(),
                      .slo = key.slo(),
                      .severity = key.severity(),
                      .no_data = key.no_data(),
                      .active_since_unix_nano = value.alert().active_since_unix_nano(),
                      .fired_at_unix_nano = value.alert().fired_at_unix_nano()};
    }
    return;
  }
  const bool fits = (key.kind() == v1::StateKey::SERIES && value.has_series()) ||
                    (key.kind() == v1::StateKey::SERVICE && value.has_service()) ||
                    (key.kind() == v1::StateKey::CHECKPOINT && value.has_checkpoint());
  if (key.kind() == v1::StateKey::CHECKPOINT) {
    if (!fits) {
      ++invalid_;
      return;
    }
    for (auto& [k, v] : tail_) {
      if (v.empty()) {
        keys_.erase(k);
      } else {
        keys_[k] = std::move(v);
      }
    }
    tail_.clear();
    checkpoint_ = std::string(value_bytes);
    return;
  }
  if (!value_bytes.empty() && !fits) {
    ++invalid_;
    return;
  }
  if (keys_.size() + tail_.size() >= limits_.max_keys) {
    over_limit_ = true;
    return;
  }
  tail_[std::string(key_bytes)] = std::string(value_bytes);
}

std::vector<OutboxItem> StateChangelogReader::outbox() const {
  std::vector<OutboxItem> out;
  out.reserve(outbox_.size());
  for (const auto& [id, value] : outbox_) {
    out.push_back({.receiver = id.first,
                   .id = id.second,
                   .notification = value.first,
                   .enqueued_unix_nano = value.second});
  }
  return out;
}

StateRecord OutboxStateRecord(int32_t partition, const OutboxItem& item) {
  v1::StateKey key;
  key.set_kind(v1::StateKey::OUTBOX);
  key.set_partition(partition);
  key.set_receiver(item.receiver);
  key.set_notification_id(item.id);
  StateRecord record{.key = key.SerializeAsString()};
  if (!item.notification.empty()) {
    v1::StateValue value;
    value.set_schema_version(kStateSchemaVersion);
    value.mutable_outbox()->set_notification(item.notification);
    value.mutable_outbox()->set_enqueued_unix_nano(item.enqueued_unix_nano);
    record.value = value.SerializeAsString();
  }
  return record;
}

std::vector<FiringAlert> StateChangelogReader::alerts() const {
  std::vector<FiringAlert> out;
  out.reserve(alerts_.size());
  for (const auto& [key, alert] : alerts_) out.push_back(alert);
  return out;
}

StateRecord AlertStateRecord(int32_t partition, const FiringAlert& alert, bool firing) {
  v1::StateKey key;
  key.set_kind(v1::StateKey::ALERT);
  key.set_partition(partition);
  key.set_service(alert.service);
  key.set_slo(alert.slo);
  key.set_severity(alert.severity);
  key.set_no_data(alert.no_data);
  StateRecord record{.key = key.SerializeAsString()};
  if (firing) {
    v1::StateValue value;
    value.set_schema_version(kStateSchemaVersion);
    value.mutable_alert()->set_active_since_unix_nano(alert.active_since_unix_nano);
    value.mutable_alert()->set_fired_at_unix_nano(alert.fired_at_unix_nano);
    record.value = value.SerializeAsString();
  }
  return record;
}

std::optional<int64_t> StateChangelogReader::checkpoint_offset() const {
  v1::StateValue value;
  if (checkpoint_.empty() || !value.ParseFromString(checkpoint_)) return std::nullopt;
  return value.checkpoint().next_offset();
}

Stage2Counters& Stage2Counters::operator+=(const Stage2Counters& other) {
  for (const auto& [name, member] : kCounterNames) this->*member += other.*member;
  return *this;
}

std::string Stage2Partition::FilePath(const std::string& directory, int32_t partition) {
  return (std::filesystem::path(directory) / ("stage2-p" + std::to_string(partition) + ".db"))
      .string();
}

Stage2Partition::Stage2Partition(std::string path, Stage2Options options,
                                 pipeline::SeriesRegistry& registry, pipeline::DeltaSink& sink,
                                 std::unique_ptr<SQLite::Database> db)
    : path_(std::move(path)),
      options_(std::move(options)),
      epoch_ms_(options_.epoch_length.count()),
      registry_(registry),
      sink_(sink),
      db_(std::move(db)) {}

Stage2Partition::~Stage2Partition() = default;

absl::StatusOr<std::unique_ptr<Stage2Partition>> Stage2Partition::Open(
    const std::string& directory, Stage2Options options, pipeline::SeriesRegistry& registry,
    pipeline::DeltaSink& sink) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<Stage2Partition>> stage = OpenFile(
      directory, FilePath(directory, options.partition), std::move(options), registry, sink);
  if (!stage.ok()) return stage.status();
  if (absl::Status s = (*stage)->Load(); !s.ok()) return s;
  if (absl::Status s = (*stage)->Restore(); !s.ok()) return s;
  return stage;
}

absl::StatusOr<std::unique_ptr<Stage2Partition>> Stage2Partition::OpenFile(
    const std::string& directory, const std::string& path, Stage2Options options,
    pipeline::SeriesRegistry& registry, pipeline::DeltaSink& sink) {
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec) {
    return absl::UnavailableError(directory + ": cannot create the directory: " + ec.message());
  }
  std::unique_ptr<Stage2Partition> stage;
  try {
    auto db =
        std::make_unique<SQLite::Database>(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db->setBusyTimeout(options.busy_timeout_ms);
    // WAL: a committed transaction survives kill -9. A file system without it is refused.
    const std::string mode = db->execAndGet("PRAGMA journal_mode = WAL").getString();
    if (mode != "wal") {
      return absl::FailedPreconditionError(
          path + ": SQLite cannot use write-ahead logging here (journal mode stays \"" + mode +
          "\"); put the data directory on a local file system");
    }
    db->exec("PRAGMA synchronous = NORMAL");
    stage.reset(new Stage2Partition(path, std::move(options), registry, sink, std::move(db)));
  } catch (const std::exception& e) {
    return Failed(path, "cannot open the database", e);
  }
  if (absl::Status s = stage->Migrate(); !s.ok()) return s;
  return stage;
}

absl::StatusOr<std::unique_ptr<Stage2Partition>> Stage2Partition::OpenRestored(
    const std::string& directory, Stage2Options options, const StateChangelogReader& reader,
    pipeline::SeriesRegistry& registry, pipeline::DeltaSink& sink) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  if (reader.over_limit()) {
    return absl::ResourceExhaustedError("traceslo_state partition " +
                                        std::to_string(options.partition) + " holds more than " +
                                        std::to_string(reader.limits_.max_keys) + " keys");
  }
  if (!reader.has_checkpoint()) {
    return absl::FailedPreconditionError(
        "traceslo_state partition " + std::to_string(options.partition) + " holds no checkpoint");
  }
  if (reader.partition_ != options.partition) {
    return absl::InvalidArgumentError("the changelog read is another partition's");
  }
  const std::string path = FilePath(directory, options.partition);
  const std::string scratch = path + ".restoring";
  auto remove_files = [](const std::string& file) {
    std::error_code ignored;
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(file + suffix, ignored);
    }
  };
  remove_files(scratch);
  {
    // Written aside and renamed, so a crash while restoring never leaves a half-written file
    // where the next start would take it for the partition's.
    absl::StatusOr<std::unique_ptr<Stage2Partition>> fresh =
        OpenFile(directory, scratch, options, registry, sink);
    if (!fresh.ok()) return fresh.status();
    absl::Status written = (*fresh)->WriteRestored(reader);
    if (written.ok()) written = (*fresh)->CheckBuckets();
    if (written.ok()) {
      try {
        (*fresh)->db_->exec("PRAGMA wal_checkpoint(TRUNCATE)");
      } catch (const std::exception& e) {
        written = Failed(scratch, "cannot checkpoint the restored file", e);
      }
    }
    if (!written.ok()) {
      // The partition's own file, if any, stays as it was.
      fresh->reset();
      remove_files(scratch);
      return written;
    }
  }
  remove_files(path);
  std::error_code ec;
  std::filesystem::rename(scratch, path, ec);
  if (ec)
    return absl::UnavailableError(path +
                                  ": cannot put the restored file in place: " + ec.message());
  remove_files(scratch);
  absl::StatusOr<std::unique_ptr<Stage2Partition>> stage =
      Open(directory, std::move(options), registry, sink);
  if (!stage.ok()) return stage.status();
  return stage;
}

absl::StatusOr<std::optional<int64_t>> Stage2Partition::StoredOffset(const std::string& directory,
                                                                     int32_t partition) {
  const std::string path = FilePath(directory, partition);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<int64_t>();
  try {
    SQLite::Database db(path, SQLite::OPEN_READONLY);
    const int version = db.execAndGet("PRAGMA user_version").getInt();
    if (version == 0) return std::optional<int64_t>();
    SQLite::Statement offset(db, "SELECT next_offset FROM kafka_offset WHERE partition = ?");
    offset.bind(1, partition);
    if (!offset.executeStep()) return std::optional<int64_t>();
    const int64_t next = offset.getColumn(0).getInt64();
    if (next <= 0) return std::optional<int64_t>();
    return std::optional<int64_t>(next);
  } catch (const std::exception& e) {
    return Failed(path, "cannot read the stored offset", e);
  }
}

absl::Status Stage2Partition::Migrate() {
  try {
    const int version = db_->execAndGet("PRAGMA user_version").getInt();
    if (version > kStage2SchemaVersion) {
      return absl::FailedPreconditionError(
          path_ + ": the database has schema version " + std::to_string(version) +
          ", newer than this traceslo knows (" + std::to_string(kStage2SchemaVersion) + ")");
    }
    for (int v = version; v < kStage2SchemaVersion; ++v) {
      SQLite::Transaction txn(*db_);
      db_->exec(std::string(kMigrations[static_cast<size_t>(v)]));
      if (v == 0) {
        SQLite::Statement meta(*db_, "INSERT INTO meta (key, value) VALUES (?, ?)");
        for (const auto& [key, value] :
             {std::pair<const char*, int64_t>{"partition", options_.partition},
              std::pair<const char*, int64_t>{"epoch_length_ms", epoch_ms_}}) {
          meta.bind(1, key);
          meta.bind(2, value);
          meta.exec();
          meta.reset();
        }
        SQLite::Statement offset(*db_,
                                 "INSERT INTO kafka_offset (partition, next_offset) VALUES (?, 0)");
        offset.bind(1, options_.partition);
        offset.exec();
      }
      db_->exec("PRAGMA user_version = " + std::to_string(v + 1));
      txn.commit();
    }
  } catch (const std::exception& e) {
    return Failed(path_, "cannot migrate the schema", e);
  }
  return absl::OkStatus();
}

absl::Status Stage2Partition::Load() {
  try {
    SQLite::Statement meta(*db_, "SELECT key, value FROM meta");
    while (meta.executeStep()) {
      const std::string key = meta.getColumn(0).getString();
      const int64_t value = meta.getColumn(1).getInt64();
      if (key == "partition" && value != options_.partition) {
        return absl::FailedPreconditionError(path_ + ": the file is traceslo_deltas partition " +
                                             std::to_string(value) + "'s, not " +
                                             std::to_string(options_.partition) + "'s");
      }
      if (key == "epoch_length_ms" && value != epoch_ms_) {
        return absl::FailedPreconditionError(path_ + ": the file counts epochs of " +
                                             std::to_string(value) + " ms, not " +
                                             std::to_string(epoch_ms_) + " ms");
      }
    }
    change_seq_ = static_cast<uint64_t>(
        db_->execAndGet("SELECT coalesce(max(seq), 0) FROM changelog_pending").getInt64());
    SQLite::Statement offset(*db_, "SELECT next_offset FROM kafka_offset WHERE partition = ?");
    offset.bind(1, options_.partition);
    if (offset.executeStep()) next_offset_ = offset.getColumn(0).getInt64();

    SQLite::Statement counters(*db_, "SELECT name, value FROM counters");
    while (counters.executeStep()) {
      const std::string name = counters.getColumn(0).getString();
      for (const auto& [n, member] : kCounterNames) {
        if (n == name) counters_.*member = static_cast<uint64_t>(counters.getColumn(1).getInt64());
      }
    }

    SQLite::Statement sources(
        *db_, "SELECT src, first_epoch, contiguous_epoch, newest_epoch FROM sources");
    while (sources.executeStep()) {
      Source& s = sources_[sources.getColumn(0).getInt()];
      s.first = sources.getColumn(1).getInt64();
      s.contiguous = sources.getColumn(2).getInt64();
      s.newest = sources.getColumn(3).getInt64();
    }
    SQLite::Statement applied(*db_, "SELECT src, epoch FROM applied_epochs");
    while (applied.executeStep()) {
      auto it = sources_.find(applied.getColumn(0).getInt());
      if (it == sources_.end()) continue;
      Source& s = it->second;
      const int64_t epoch = applied.getColumn(1).getInt64();
      if (epoch > s.contiguous) s.ahead.insert(epoch);
      if (epoch < s.first) s.before.insert(epoch);
    }
  } catch (const std::exception& e) {
    return Failed(path_, "cannot load the partition's state", e);
  }
  return absl::OkStatus();
}

absl::Status Stage2Partition::CheckBuckets() { return ScanBuckets(false); }

absl::Status Stage2Partition::Restore() {
  // Two passes: the first only checks every row, so a damaged file gives the sink nothing; the
  // second streams the buckets in batches (a file may hold days of them).
  if (absl::Status s = ScanBuckets(false); !s.ok()) return s;
  return ScanBuckets(true);
}

absl::Status Stage2Partition::ScanBuckets(bool deliver) {
  try {
    pipeline::ShardDelta batch;
    auto flush = [&](size_t at_least) {
      if (batch.series.size() + batch.services.size() < std::max<size_t>(at_least, 1)) return;
      sink_.Apply(std::move(batch));
      batch = pipeline::ShardDelta{};
    };
    SQLite::Statement series(*db_, "SELECT service, operation, bucket, entry FROM series_buckets");
    while (series.executeStep()) {
      pipeline::SeriesDelta d;
      if (!DecodeSeries(BlobOf(series.getColumn(3)), d) ||
          d.bucket != series.getColumn(2).getInt64()) {
        return absl::DataLossError(path_ + ": a damaged series bucket of " +
                                   series.getColumn(0).getString() + " / " +
                                   series.getColumn(1).getString());
      }
      if (!deliver) continue;
      const pipeline::SeriesRegistry::Ids ids =
          registry_.Resolve(series.getColumn(0).getString(), series.getColumn(1).getString());
      d.series = ids.series;
      d.service = ids.service;
      batch.series.push_back(std::move(d));
      flush(options_.restore_batch);
    }
    SQLite::Statement services(*db_, "SELECT service, bucket, entry FROM service_buckets");
    while (services.executeStep()) {
      pipeline::ServiceDelta d;
      if (!DecodeService(BlobOf(services.getColumn(2)), d) ||
          d.bucket != services.getColumn(1).getInt64()) {
        return absl::DataLossError(path_ + ": a damaged service bucket of " +
                                   services.getColumn(0).getString());
      }
      if (!deliver) continue;
      d.service = registry_.ResolveService(services.getColumn(0).getString());
      batch.services.push_back(d);
      flush(options_.restore_batch);
    }
    flush(1);
  } catch (const std::exception& e) {
    return Failed(path_, "cannot restore the buckets", e);
  }
  return absl::OkStatus();
}

absl::Status Stage2Partition::WriteRestored(const StateChangelogReader& reader) {
  v1::StateValue checkpoint_value;
  if (!checkpoint_value.ParseFromString(reader.checkpoint_) || !checkpoint_value.has_checkpoint()) {
    return absl::DataLossError(path_ + ": the changelog's checkpoint does not decode");
  }
  const v1::StateCheckpoint& checkpoint = checkpoint_value.checkpoint();
  if (checkpoint.epoch_length_ms() != epoch_ms_) {
    return absl::FailedPreconditionError("the traceslo_state checkpoint counts epochs of " +
                                         std::to_string(checkpoint.epoch_length_ms()) +
                                         " ms, not " + std::to_string(epoch_ms_) + " ms");
  }
  try {
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement put_series(
        *db_,
        "INSERT OR REPLACE INTO series_buckets (service, operation, bucket, entry) "
        "VALUES (?, ?, ?, ?)");
    SQLite::Statement put_service(
        *db_, "INSERT OR REPLACE INTO service_buckets (service, bucket, entry) VALUES (?, ?, ?)");
    for (const auto& [key_bytes, value_bytes] : reader.keys_) {
      v1::StateKey key;
      v1::StateValue value;
      if (!key.ParseFromString(key_bytes) || !value.ParseFromString(value_bytes)) {
        return absl::DataLossError(path_ + ": a changelog record does not decode");
      }
      if (key.service().size() > options_.limits.max_name_bytes ||
          key.operation().size() > options_.limits.max_name_bytes) {
        return absl::DataLossError("traceslo_state: a name longer than " +
                                   std::to_string(options_.limits.max_name_bytes) + " bytes");
      }
      if (key.kind() == v1::StateKey::SERIES) {
        const std::string entry = value.series().SerializeAsString();
        pipeline::SeriesDelta check;
        if (!DecodeSeries(entry, check)) {
          return absl::DataLossError("traceslo_state: a damaged series bucket of " + key.service() +
                                     " / " + key.operation());
        }
        put_series.bind(1, key.service());
        put_series.bind(2, key.operation());
        put_series.bind(3, static_cast<int64_t>(key.bucket()));
        put_series.bind(4, entry.data(), static_cast<int>(entry.size()));
        put_series.exec();
        put_series.reset();
      } else if (key.kind() == v1::StateKey::SERVICE) {
        const std::string entry = value.service().SerializeAsString();
        put_service.bind(1, key.service());
        put_service.bind(2, static_cast<int64_t>(key.bucket()));
        put_service.bind(3, entry.data(), static_cast<int>(entry.size()));
        put_service.exec();
        put_service.reset();
      }
    }
    SQLite::Statement put_source(
        *db_,
        "INSERT OR REPLACE INTO sources (src, first_epoch, contiguous_epoch, newest_epoch) "
        "VALUES (?, ?, ?, ?)");
    SQLite::Statement mark(*db_, "INSERT OR IGNORE INTO applied_epochs (src, epoch) VALUES (?, ?)");
    const int64_t max_epoch = INT64_MAX / epoch_ms_ / 2;  // as Apply() accepts
    std::set<int32_t> seen;
    for (const v1::SourceState& source : checkpoint.sources()) {
      const int64_t window = options_.applied_epoch_window;
      auto in_window = [&](int64_t epoch) {
        return epoch >= source.newest_epoch() - window + 1 && epoch <= source.newest_epoch() &&
               (epoch < source.first_epoch() || epoch > source.contiguous_epoch());
      };
      if (source.src() < 0 || source.src() >= options_.source_partitions ||
          !seen.insert(source.src()).second || source.first_epoch() < 0 ||
          source.first_epoch() > source.contiguous_epoch() ||
          source.contiguous_epoch() > source.newest_epoch() || source.newest_epoch() > max_epoch ||
          source.ahead_size() > window || source.before_size() > window ||
          !std::all_of(source.ahead().begin(), source.ahead().end(), in_window) ||
          !std::all_of(source.before().begin(), source.before().end(), in_window)) {
        return absl::DataLossError("traceslo_state: the checkpoint's source partition " +
                                   std::to_string(source.src()) + " is inconsistent");
      }
      put_source.bind(1, source.src());
      put_source.bind(2, static_cast<int64_t>(source.first_epoch()));
      put_source.bind(3, static_cast<int64_t>(source.contiguous_epoch()));
      put_source.bind(4, static_cast<int64_t>(source.newest_epoch()));
      put_source.exec();
      put_source.reset();
      // The rows Apply() would have kept: every applied epoch within the window.
      const int64_t horizon = source.newest_epoch() - options_.applied_epoch_window + 1;
      auto put = [&](int64_t epoch) {
        if (epoch < horizon) return;
        mark.bind(1, source.src());
        mark.bind(2, epoch);
        mark.exec();
        mark.reset();
      };
      for (int64_t e = std::max(source.first_epoch(), horizon); e <= source.contiguous_epoch();
           ++e) {
        put(e);
      }
      for (const auto* epochs : {&source.ahead(), &source.before()}) {
        for (const int64_t epoch : *epochs) put(epoch);
      }
    }
    SQLite::Statement put_counter(*db_,
                                  "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)");
    for (const v1::CounterValue& counter : checkpoint.counters()) {
      for (const auto& [name, member] : kCounterNames) {
        if (name != counter.name()) continue;
        put_counter.bind(1, std::string(name));
        put_counter.bind(2, AsInt(counter.value()));
        put_counter.exec();
        put_counter.reset();
      }
    }
    SQLite::Statement offset(*db_, "UPDATE kafka_offset SET next_offset = ? WHERE partition = ?");
    offset.bind(1, static_cast<int64_t>(std::max<int64_t>(0, checkpoint.next_offset())));
    offset.bind(2, options_.partition);
    offset.exec();
    // The keys of a snapshot the reader found cut short go again, restored values or tombstones,
    // in this owner's first snapshot.
    SQLite::Statement pending(*db_,
                              "INSERT OR REPLACE INTO changelog_pending (kind, service, operation, "
                              "bucket, seq) VALUES (?, ?, ?, ?, 1)");
    for (const auto& [key_bytes, value] : reader.tail_) {
      v1::StateKey key;
      if (!key.ParseFromString(key_bytes)) continue;  // checked by the reader
      if (key.kind() != v1::StateKey::SERIES && key.kind() != v1::StateKey::SERVICE) continue;
      pending.bind(1, static_cast<int>(key.kind()));
      pending.bind(2, key.service());
      pending.bind(3, key.kind() == v1::StateKey::SERIES ? key.operation() : std::string());
      pending.bind(4, static_cast<int64_t>(key.bucket()));
      pending.exec();
      pending.reset();
    }
    txn.commit();
  } catch (const std::exception& e) {
    return Failed(path_, "cannot write the restored state", e);
  }
  return absl::OkStatus();
}

std::string Stage2Partition::EncodeCheckpoint() const {
  v1::StateValue value;
  value.set_schema_version(kStateSchemaVersion);
  v1::StateCheckpoint& checkpoint = *value.mutable_checkpoint();
  checkpoint.set_epoch_length_ms(epoch_ms_);
  checkpoint.set_next_offset(next_offset_);
  std::map<int32_t, const Source*> sorted;
  for (const auto& [src, source] : sources_) sorted.emplace(src, &source);
  for (const auto& [src, source] : sorted) {
    v1::SourceState& out = *checkpoint.add_sources();
    out.set_src(src);
    out.set_first_epoch(source->first);
    out.set_contiguous_epoch(source->contiguous);
    out.set_newest_epoch(source->newest);
    for (const int64_t epoch : source->ahead) out.add_ahead(epoch);
    for (const int64_t epoch : source->before) out.add_before(epoch);
  }
  for (const auto& [name, member] : kCounterNames) {
    v1::CounterValue& counter = *checkpoint.add_counters();
    counter.set_name(std::string(name));
    counter.set_value(counters_.*member);
  }
  return value.SerializeAsString();
}

absl::StatusOr<std::optional<StateSnapshot>> Stage2Partition::Snapshot() {
  if (!options_.changelog) {
    return absl::FailedPreconditionError("stage 2: snapshots need options.changelog");
  }
  const int32_t partition = options_.partition;
  StateSnapshot snapshot;
  snapshot.offset = next_offset_;
  try {
    SQLite::Statement pending(
        *db_, "SELECT kind, service, operation, bucket, seq FROM changelog_pending");
    SQLite::Statement get_series(
        *db_,
        "SELECT entry FROM series_buckets WHERE service = ? AND operation = ? AND bucket = ?");
    SQLite::Statement get_service(
        *db_, "SELECT entry FROM service_buckets WHERE service = ? AND bucket = ?");
    while (pending.executeStep()) {
      const int kind = pending.getColumn(0).getInt();
      const std::string service = pending.getColumn(1).getString();
      const std::string operation = pending.getColumn(2).getString();
      const int64_t bucket = pending.getColumn(3).getInt64();
      snapshot.through =
          std::max(snapshot.through, static_cast<uint64_t>(pending.getColumn(4).getInt64()));
      v1::StateValue value;
      value.set_schema_version(kStateSchemaVersion);
      StateRecord record;
      if (kind == v1::StateKey::SERIES) {
        record.key = StateKeyBytes(v1::StateKey::SERIES, partition, service, operation, bucket);
        get_series.bind(1, service);
        get_series.bind(2, operation);
        get_series.bind(3, bucket);
        if (get_series.executeStep()) {
          const std::string_view blob = BlobOf(get_series.getColumn(0));
          if (!value.mutable_series()->ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
            throw DamagedBucket("a damaged series bucket of " + service + " / " + operation);
          }
          record.value = value.SerializeAsString();
        }
        get_series.reset();
      } else {
        record.key = StateKeyBytes(v1::StateKey::SERVICE, partition, service, "", bucket);
        get_service.bind(1, service);
        get_service.bind(2, bucket);
        if (get_service.executeStep()) {
          const std::string_view blob = BlobOf(get_service.getColumn(0));
          if (!value.mutable_service()->ParseFromArray(blob.data(),
                                                       static_cast<int>(blob.size()))) {
            throw DamagedBucket("a damaged service bucket of " + service);
          }
          record.value = value.SerializeAsString();
        }
        get_service.reset();
      }
      snapshot.buckets.push_back(std::move(record));
    }
  } catch (const DamagedBucket& e) {
    return absl::DataLossError(path_ + ": " + e.what());
  } catch (const std::exception& e) {
    return Failed(path_, "cannot read the changed buckets", e);
  }
  if (snapshot.buckets.empty() && next_offset_ == delivered_offset_) {
    return std::optional<StateSnapshot>();
  }
  snapshot.checkpoint = {StateKeyBytes(v1::StateKey::CHECKPOINT, partition, "", "", 0),
                         EncodeCheckpoint()};
  return std::optional<StateSnapshot>(std::move(snapshot));
}

absl::Status Stage2Partition::SnapshotDelivered(const StateSnapshot& snapshot) {
  try {
    SQLite::Statement done(*db_, "DELETE FROM changelog_pending WHERE seq <= ?");
    done.bind(1, static_cast<int64_t>(snapshot.through));
    done.exec();
  } catch (const std::exception& e) {
    return Failed(path_, "cannot clear the delivered changes", e);
  }
  delivered_offset_ = std::max(delivered_offset_, snapshot.offset);
  return absl::OkStatus();
}

uint64_t Stage2Partition::StoredDigest(int32_t source, int64_t epoch) const {
  try {
    SQLite::Statement get(*db_, "SELECT digest FROM applied_epochs WHERE src = ? AND epoch = ?");
    get.bind(1, source);
    get.bind(2, epoch);
    if (get.executeStep()) return static_cast<uint64_t>(get.getColumn(0).getInt64());
  } catch (const std::exception&) {
    // Not known: the duplicate is not compared.
  }
  return 0;
}

int64_t Stage2Partition::Horizon(const Source& source) const {
  return source.newest - options_.applied_epoch_window + 1;
}

bool Stage2Partition::IsApplied(const Source& source, int64_t epoch) {
  return (epoch >= source.first && epoch <= source.contiguous) || source.ahead.contains(epoch) ||
         source.before.contains(epoch);
}

void Stage2Partition::MarkApplied(Source& s, int64_t epoch, Stage2Counters& counters) const {
  s.newest = std::max(s.newest, epoch);
  if (epoch == s.first - 1) {
    // Arrived out of order (a replay, a zombie): the applied range grows down.
    s.first = epoch;
    while (!s.before.empty() && *s.before.rbegin() == s.first - 1) {
      s.before.erase(std::prev(s.before.end()));
      --s.first;
    }
  } else if (epoch < s.first) {
    s.before.insert(epoch);
  } else if (epoch > s.contiguous) {
    s.ahead.insert(epoch);
  }
  // Gaps below the horizon can never be filled (their records are refused as too late).
  const int64_t horizon = Horizon(s);
  if (s.contiguous < horizon - 1) {
    const int64_t skipped_through = horizon - 1;
    uint64_t missing = static_cast<uint64_t>(skipped_through - s.contiguous);
    while (!s.ahead.empty() && *s.ahead.begin() <= skipped_through) {
      s.ahead.erase(s.ahead.begin());
      --missing;
    }
    counters.abandoned_epochs += missing;
    s.contiguous = skipped_through;
  }
  while (!s.ahead.empty() && *s.ahead.begin() == s.contiguous + 1) {
    s.ahead.erase(s.ahead.begin());
    ++s.contiguous;
  }
  s.before.erase(s.before.begin(), s.before.lower_bound(horizon));
}

std::optional<int64_t> Stage2Partition::WatermarkOf(const Sources& sources, int32_t count) const {
  if (count <= 0) return std::nullopt;
  int64_t watermark = INT64_MAX;
  for (int32_t src = 0; src < count; ++src) {
    auto it = sources.find(src);
    if (it == sources.end()) return std::nullopt;
    watermark = std::min(watermark, (it->second.contiguous + 1) * epoch_ms_);
  }
  return watermark;
}

std::optional<int64_t> Stage2Partition::WatermarkMs(int32_t sources) const {
  return WatermarkOf(sources_, sources);
}

std::optional<int64_t> Stage2Partition::FinalThroughMs(
    int32_t sources, std::chrono::milliseconds allowed_lateness) const {
  std::optional<int64_t> watermark = WatermarkMs(sources);
  if (!watermark) return std::nullopt;
  return *watermark - allowed_lateness.count();
}

std::optional<int64_t> Stage2Partition::FirstEpoch(int32_t source) const {
  auto it = sources_.find(source);
  if (it == sources_.end()) return std::nullopt;
  return it->second.first;
}

std::optional<int64_t> Stage2Partition::ContiguousEpoch(int32_t source) const {
  auto it = sources_.find(source);
  if (it == sources_.end()) return std::nullopt;
  return it->second.contiguous;
}

std::optional<int64_t> Stage2Partition::OldestCheckedEpoch(int32_t source) const {
  auto it = sources_.find(source);
  if (it == sources_.end()) return std::nullopt;
  return Horizon(it->second);
}

absl::StatusOr<Stage2Counters> Stage2Partition::Apply(std::span<const Stage2Record> records) {
  if (records.empty()) return Stage2Counters{};
  // Epochs whose end in ms fits in int64 with room: anything later is not a real epoch.
  const int64_t max_epoch = INT64_MAX / epoch_ms_ / 2;
  const size_t signature_cap = options_.max_signatures_per_bucket;

  // Everything is decided on copies; they replace the members only after the commit.
  Sources sources = sources_;
  Stage2Counters call;
  Accumulated accumulated;
  std::vector<std::tuple<int32_t, int64_t, uint64_t>> applied;  // source, epoch, digest
  std::map<std::pair<int32_t, int64_t>, uint64_t> digests;      // this call's applied records
  // The content digest of a record, decoded on its own into a registry of its own: by names, as
  // they are in the record (this process's registry at its cap would give equal records other
  // names). A second decode of each applied record; stage 2's rate allows it (docs/benchmarks.md).
  // 0 when it does not decode.
  auto digest_of = [&](std::string_view value) -> uint64_t {
    pipeline::SeriesRegistry names(static_cast<uint32_t>(options_.limits.max_services),
                                   static_cast<uint32_t>(options_.limits.max_series));
    DeltaBatchLimits limits = options_.limits;
    limits.skip_exemplars = true;  // not part of the digest
    absl::StatusOr<DecodedDeltaBatch> decoded = DecodeDeltaBatch(value, limits, names);
    return decoded.ok() ? ContentDigest(decoded->delta, names) : 0;
  };
  for (const Stage2Record& record : records) {
    const std::optional<ScannedHeader> header = ScanHeader(record.value, options_.limits.max_bytes);
    if (!header || header->schema_version != kDeltaBatchSchemaVersion) {
      ++call.refused_invalid;
      continue;
    }
    if (std::find(options_.config_hashes.begin(), options_.config_hashes.end(),
                  header->config_hash) == options_.config_hashes.end()) {
      ++call.refused_config;
      continue;
    }
    if (header->dst_partition != options_.partition) {
      ++call.refused_partition;
      continue;
    }
    if (header->src_partition < 0 || header->src_partition >= options_.source_partitions ||
        header->epoch < 0 || header->epoch > max_epoch) {
      ++call.refused_invalid;
      continue;
    }
    auto source = sources.find(header->src_partition);
    if (source != sources.end()) {
      if (header->epoch < Horizon(source->second)) {
        ++call.refused_too_late;
        continue;
      }
      if (IsApplied(source->second, header->epoch)) {
        ++call.duplicates;
        // A re-sent epoch: is it what was applied? (Only counted; the applied one stays.)
        uint64_t stored = 0;
        if (auto it = digests.find({header->src_partition, header->epoch}); it != digests.end()) {
          stored = it->second;
        } else {
          stored = StoredDigest(header->src_partition, header->epoch);
        }
        if (stored != 0) {
          const uint64_t digest = digest_of(record.value);
          if (digest != 0 && digest != stored) ++call.divergent;
        }
        continue;
      }
    }
    absl::StatusOr<DecodedDeltaBatch> batch =
        DecodeDeltaBatch(record.value, options_.limits, registry_);
    if (!batch.ok() || batch->header.config_hash != header->config_hash ||
        batch->header.src_partition != header->src_partition ||
        batch->header.epoch != header->epoch ||
        batch->header.dst_partition != header->dst_partition) {
      ++call.refused_invalid;
      continue;
    }
    if (const std::optional<int64_t> watermark = WatermarkOf(sources, options_.source_partitions)) {
      // In 128 bits: bucket numbers are outside input.
      const __int128 final_through =
          static_cast<__int128>(*watermark) - options_.allowed_lateness.count();
      auto is_final = [&](int64_t bucket) {
        return (static_cast<__int128>(bucket) + 1) * kBucketMs <= final_through;
      };
      const pipeline::ShardDelta& d = batch->delta;
      if (std::any_of(d.series.begin(), d.series.end(),
                      [&](const pipeline::SeriesDelta& s) { return is_final(s.bucket); }) ||
          std::any_of(d.services.begin(), d.services.end(),
                      [&](const pipeline::ServiceDelta& s) { return is_final(s.bucket); })) {
        ++call.late;
      }
    }
    accumulated.Add(batch->delta, signature_cap);
    if (source == sources.end()) {
      sources.emplace(
          header->src_partition,
          Source{.first = header->epoch, .contiguous = header->epoch, .newest = header->epoch});
    } else {
      MarkApplied(source->second, header->epoch, call);
    }
    const uint64_t digest = digest_of(record.value);
    applied.emplace_back(header->src_partition, header->epoch, digest);
    digests[{header->src_partition, header->epoch}] = digest;
    ++call.applied;
  }

  int64_t next_offset = next_offset_;
  for (const Stage2Record& record : records) {
    next_offset = std::max(next_offset, record.offset + 1);
  }
  int64_t pruned_before = pruned_before_bucket_;
  Stage2Counters total = counters_;
  total += call;
  const uint64_t change_seq = change_seq_ + 1;  // of this call's changes, with options.changelog
  try {
    SQLite::Transaction txn(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement get_series(
        *db_,
        "SELECT entry FROM series_buckets WHERE service = ? AND operation = ? AND bucket = ?");
    SQLite::Statement put_series(
        *db_,
        "INSERT OR REPLACE INTO series_buckets (service, operation, bucket, entry) "
        "VALUES (?, ?, ?, ?)");
    // With options.changelog: every changed bucket is pending until a snapshot with it is
    // delivered (kept in this transaction, so a crash cannot lose it).
    SQLite::Statement pending(*db_,
                              "INSERT OR REPLACE INTO changelog_pending (kind, service, operation, "
                              "bucket, seq) VALUES (?, ?, ?, ?, " +
                                  std::to_string(change_seq) + ")");
    for (const auto& [key, d] : accumulated.series) {
      const std::string service(registry_.ServiceName(d.service));
      const std::string operation(registry_.OperationName(d.series));
      pipeline::SeriesDelta merged;
      get_series.bind(1, service);
      get_series.bind(2, operation);
      get_series.bind(3, d.bucket);
      if (get_series.executeStep()) {
        if (!DecodeSeries(BlobOf(get_series.getColumn(0)), merged)) {
          throw DamagedBucket("a damaged series bucket of " + service + " / " + operation);
        }
        MergeSeries(merged, d, signature_cap);
      } else {
        MergeSeries(merged, d, signature_cap);
        merged.bucket = d.bucket;
      }
      get_series.reset();
      const std::string entry = EncodeSeries(merged);
      put_series.bind(1, service);
      put_series.bind(2, operation);
      put_series.bind(3, d.bucket);
      put_series.bind(4, entry.data(), static_cast<int>(entry.size()));
      put_series.exec();
      put_series.reset();
      if (options_.changelog) {
        pending.bind(1, static_cast<int>(v1::StateKey::SERIES));
        pending.bind(2, service);
        pending.bind(3, operation);
        pending.bind(4, d.bucket);
        pending.exec();
        pending.reset();
      }
    }
    SQLite::Statement get_service(
        *db_, "SELECT entry FROM service_buckets WHERE service = ? AND bucket = ?");
    SQLite::Statement put_service(
        *db_, "INSERT OR REPLACE INTO service_buckets (service, bucket, entry) VALUES (?, ?, ?)");
    for (const auto& [key, d] : accumulated.services) {
      const std::string service(registry_.ServiceName(d.service));
      pipeline::ServiceDelta merged{.bucket = d.bucket};
      get_service.bind(1, service);
      get_service.bind(2, d.bucket);
      if (get_service.executeStep() && !DecodeService(BlobOf(get_service.getColumn(0)), merged)) {
        throw DamagedBucket("a damaged service bucket of " + service);
      }
      get_service.reset();
      MergeService(merged, d);
      const std::string entry = EncodeService(merged);
      put_service.bind(1, service);
      put_service.bind(2, d.bucket);
      put_service.bind(3, entry.data(), static_cast<int>(entry.size()));
      put_service.exec();
      put_service.reset();
      if (options_.changelog) {
        pending.bind(1, static_cast<int>(v1::StateKey::SERVICE));
        pending.bind(2, service);
        pending.bind(3, std::string());
        pending.bind(4, d.bucket);
        pending.exec();
        pending.reset();
      }
    }

    SQLite::Statement mark(
        *db_, "INSERT OR IGNORE INTO applied_epochs (src, epoch, digest) VALUES (?, ?, ?)");
    std::set<int32_t> changed;
    for (const auto& [src, epoch, digest] : applied) {
      mark.bind(1, src);
      mark.bind(2, epoch);
      mark.bind(3, AsInt(digest));
      mark.exec();
      mark.reset();
      changed.insert(src);
    }
    SQLite::Statement put_source(
        *db_,
        "INSERT OR REPLACE INTO sources (src, first_epoch, contiguous_epoch, newest_epoch) "
        "VALUES (?, ?, ?, ?)");
    SQLite::Statement forget(*db_, "DELETE FROM applied_epochs WHERE src = ? AND epoch < ?");
    for (int32_t src : changed) {
      const Source& s = sources.at(src);
      put_source.bind(1, src);
      put_source.bind(2, s.first);
      put_source.bind(3, s.contiguous);
      put_source.bind(4, s.newest);
      put_source.exec();
      put_source.reset();
      forget.bind(1, src);
      forget.bind(2, Horizon(s));
      forget.exec();
      forget.reset();
    }

    SQLite::Statement put_counter(*db_,
                                  "INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)");
    for (const auto& [name, member] : kCounterNames) {
      put_counter.bind(1, std::string(name));
      put_counter.bind(2, AsInt(total.*member));
      put_counter.exec();
      put_counter.reset();
    }
    SQLite::Statement offset(*db_, "UPDATE kafka_offset SET next_offset = ? WHERE partition = ?");
    offset.bind(1, next_offset);
    offset.bind(2, options_.partition);
    offset.exec();

    // Retention, in batches of a minute of watermark.
    if (const std::optional<int64_t> watermark = WatermarkOf(sources, options_.source_partitions)) {
      const int64_t cutoff = FloorDiv(*watermark - options_.retention.count(), kBucketMs);
      if (pruned_before == INT64_MIN || cutoff >= pruned_before + kPruneStepBuckets) {
        if (options_.changelog) {
          // Deleted buckets go out as tombstones.
          for (const char* sql :
               {"INSERT OR REPLACE INTO changelog_pending SELECT 1, service, operation, bucket, ? "
                "FROM series_buckets WHERE bucket < ?",
                "INSERT OR REPLACE INTO changelog_pending SELECT 2, service, '', bucket, ? "
                "FROM service_buckets WHERE bucket < ?"}) {
            SQLite::Statement gone(*db_, sql);
            gone.bind(1, static_cast<int64_t>(change_seq));
            gone.bind(2, cutoff);
            gone.exec();
          }
        }
        for (const char* sql : {"DELETE FROM series_buckets WHERE bucket < ?",
                                "DELETE FROM service_buckets WHERE bucket < ?"}) {
          SQLite::Statement prune(*db_, sql);
          prune.bind(1, cutoff);
          prune.exec();
        }
        pruned_before = cutoff;
      }
    }
    txn.commit();
  } catch (const DamagedBucket& e) {
    return absl::DataLossError(path_ + ": " + e.what());
  } catch (const std::exception& e) {
    return Failed(path_, "cannot apply " + std::to_string(records.size()) + " records", e);
  }

  sources_ = std::move(sources);
  counters_ = total;
  next_offset_ = next_offset;
  pruned_before_bucket_ = pruned_before;
  if (options_.changelog) change_seq_ = change_seq;
  if (!accumulated.empty()) {
    pipeline::ShardDelta delta = accumulated.Take();
    sink_.Apply(std::move(delta));
  }
  return call;
}

}  // namespace traceslo::kafka
