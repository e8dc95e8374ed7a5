#include "traceslo/kafka/delta_batch.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "services/kafka/delta_entries.h"
#include "traceslo/kafka/partitioning.h"
#include "traceslo/v1/delta_batch.pb.h"

namespace traceslo::kafka {
namespace {

absl::Status Invalid(const std::string& message) {
  return absl::InvalidArgumentError("delta batch: " + message);
}

absl::Status CheckName(std::string_view name, const std::string& what,
                       const DeltaBatchLimits& limits) {
  if (name.empty()) return Invalid(what + " is empty");
  if (name.size() > limits.max_name_bytes) {
    return Invalid(what + " is " + std::to_string(name.size()) + " bytes, more than " +
                   std::to_string(limits.max_name_bytes));
  }
  return absl::OkStatus();
}

absl::Status CheckText(std::string_view text, const std::string& what,
                       const DeltaBatchLimits& limits) {
  if (text.size() > limits.max_message_bytes) {
    return Invalid(what + " is " + std::to_string(text.size()) + " bytes, more than " +
                   std::to_string(limits.max_message_bytes));
  }
  return absl::OkStatus();
}

absl::Status CheckSignatureEntry(const v1::SignatureEntry& e, const std::string& where,
                                 const DeltaBatchLimits& limits) {
  if (absl::Status s = CheckName(e.service(), where + ".service", limits); !s.ok()) return s;
  if (absl::Status s = CheckName(e.operation(), where + ".operation", limits); !s.ok()) return s;
  for (const auto& [text, field] : {std::pair{&e.exception_type(), ".exception_type"},
                                    std::pair{&e.normalized_message(), ".normalized_message"},
                                    std::pair{&e.sample_message(), ".sample_message"},
                                    std::pair{&e.top_frame(), ".top_frame"}}) {
    if (absl::Status s = CheckText(*text, where + field, limits); !s.ok()) return s;
  }
  if (static_cast<size_t>(e.trace_ids_size()) > pipeline::kMaxSignatureTraces) {
    return Invalid(where + ": " + std::to_string(e.trace_ids_size()) + " trace ids, more than " +
                   std::to_string(pipeline::kMaxSignatureTraces));
  }
  for (const std::string& id : e.trace_ids()) {
    if (id.size() != std::tuple_size_v<TraceId>) {
      return Invalid(where + ": trace id of " + std::to_string(id.size()) + " bytes");
    }
  }
  return absl::OkStatus();
}

// Times and durations of exemplars, in ns, at most this: sums of three never overflow int64.
constexpr int64_t kMaxTime = INT64_MAX / 4;
constexpr int64_t kBucketMs = int64_t{pipeline::kBucketSeconds} * 1000;
constexpr int64_t kMaxExemplarAgeMs = 7LL * 24 * 3600 * 1000;

absl::Status CheckExemplars(const v1::DeltaBatch& batch, const DeltaBatchLimits& limits) {
  for (int i = 0; i < batch.exemplar_names_size(); ++i) {
    const std::string where = "exemplar_names[" + std::to_string(i) + "]";
    const v1::SeriesName& n = batch.exemplar_names(i);
    if (absl::Status s = CheckName(n.service(), where + ".service", limits); !s.ok()) return s;
    if (absl::Status s = CheckName(n.operation(), where + ".operation", limits); !s.ok()) return s;
  }
  const auto names = static_cast<uint32_t>(batch.exemplar_names_size());
  for (int i = 0; i < batch.exemplar_traces_size(); ++i) {
    const std::string where = "exemplar_traces[" + std::to_string(i) + "]";
    const v1::ExemplarTrace& t = batch.exemplar_traces(i);
    if (t.trace_id().size() != std::tuple_size_v<TraceId>) {
      return Invalid(where + ": trace id of " + std::to_string(t.trace_id().size()) + " bytes");
    }
    if (t.spans_size() == 0) return Invalid(where + ": no spans");
    if (static_cast<size_t>(t.spans_size()) > limits.max_exemplar_spans) {
      return Invalid(where + ": " + std::to_string(t.spans_size()) + " spans, more than " +
                     std::to_string(limits.max_exemplar_spans));
    }
    if (t.start_unix_nano() < 0 || t.start_unix_nano() > kMaxTime ||
        t.duration_nanos() > static_cast<uint64_t>(kMaxTime)) {
      return Invalid(where + ": start " + std::to_string(t.start_unix_nano()) + " or duration " +
                     std::to_string(t.duration_nanos()) + " out of range");
    }
    for (int j = 0; j < t.spans_size(); ++j) {
      const v1::ExemplarSpan& span = t.spans(j);
      // The location is written only for a bad span (a record may hold very many).
      auto at = [&] { return where + ".spans[" + std::to_string(j) + "]"; };
      if (span.name() >= names) {
        return Invalid(at() + ": name " + std::to_string(span.name()) + " of " +
                       std::to_string(names));
      }
      if (span.kind() > static_cast<uint32_t>(SpanKind::kConsumer)) {
        return Invalid(at() + ": kind " + std::to_string(span.kind()));
      }
      if (span.start_offset_nanos() < 0 || span.start_offset_nanos() > kMaxTime) {
        return Invalid(at() + ": start offset " + std::to_string(span.start_offset_nanos()));
      }
      if (span.duration_nanos() > static_cast<uint64_t>(kMaxTime)) {
        return Invalid(at() + ": duration " + std::to_string(span.duration_nanos()));
      }
    }
  }
  const auto traces = static_cast<uint32_t>(batch.exemplar_traces_size());
  for (int i = 0; i < batch.exemplars_size(); ++i) {
    const std::string where = "exemplars[" + std::to_string(i) + "]";
    const v1::ExemplarEntry& e = batch.exemplars(i);
    if (absl::Status s = CheckName(e.service(), where + ".service", limits); !s.ok()) return s;
    if (absl::Status s = CheckName(e.operation(), where + ".operation", limits); !s.ok()) return s;
    if (e.trace() >= traces) {
      return Invalid(where + ": trace " + std::to_string(e.trace()) + " of " +
                     std::to_string(traces));
    }
    // In 128 bits: outside input. Within a week of the record's stream time (a span's bucket
    // is its end clamped to max_lateness before the stream time; its trace completes within
    // trace_max_age), so a hostile bucket cannot move the SLI store's rings to another time.
    const __int128 bucket_ms = static_cast<__int128>(e.bucket()) * kBucketMs;
    if (bucket_ms < static_cast<__int128>(batch.stream_time_ms()) - kMaxExemplarAgeMs ||
        bucket_ms > static_cast<__int128>(batch.stream_time_ms()) + kMaxExemplarAgeMs) {
      return Invalid(where + ": bucket " + std::to_string(e.bucket()) +
                     " is not within a week of the stream time " +
                     std::to_string(batch.stream_time_ms()) + " ms");
    }
    if (e.duration_nanos() > static_cast<uint64_t>(kMaxTime) || e.end_unix_nano() < 0 ||
        e.end_unix_nano() > kMaxTime) {
      return Invalid(where + ": duration or end out of range");
    }
  }
  return absl::OkStatus();
}

// The record's exemplars, checked by CheckExemplars, with `registry`'s ids; each trace shared by
// the candidates that name it.
void ReadExemplars(const v1::DeltaBatch& batch, pipeline::SeriesRegistry& registry,
                   pipeline::ShardDelta& delta) {
  std::vector<uint32_t> names;
  names.reserve(static_cast<size_t>(batch.exemplar_names_size()));
  for (const v1::SeriesName& n : batch.exemplar_names()) {
    names.push_back(registry.Resolve(n.service(), n.operation()).series);
  }
  std::vector<pipeline::ExemplarRef> traces;
  traces.reserve(static_cast<size_t>(batch.exemplar_traces_size()));
  for (const v1::ExemplarTrace& t : batch.exemplar_traces()) {
    auto trace = std::make_shared<pipeline::ExemplarTrace>();
    std::copy(t.trace_id().begin(), t.trace_id().end(), trace->trace_id.begin());
    trace->start_unix_nano = t.start_unix_nano();
    trace->duration_nanos = t.duration_nanos();
    trace->spans.reserve(static_cast<size_t>(t.spans_size()));
    for (const v1::ExemplarSpan& span : t.spans()) {
      trace->spans.push_back(pipeline::ExemplarSpan{
          .span_id = span.span_id(),
          .parent_span_id = span.parent_span_id(),
          .start_offset_nanos = span.start_offset_nanos(),
          .duration_nanos = span.duration_nanos(),
          .signature = span.signature(),
          .series = names[span.name()],
          .kind = static_cast<SpanKind>(span.kind()),
          .error = span.error(),
          .orphan = span.orphan(),
      });
    }
    traces.push_back(std::move(trace));
  }
  delta.exemplars.reserve(static_cast<size_t>(batch.exemplars_size()));
  for (const v1::ExemplarEntry& e : batch.exemplars()) {
    delta.exemplars.push_back(pipeline::ExemplarDelta{
        .series = registry.Resolve(e.service(), e.operation()).series,
        .bucket = e.bucket(),
        .signature = e.signature(),
        .duration_nanos = e.duration_nanos(),
        .end_unix_nano = e.end_unix_nano(),
        .trace = traces[e.trace()],
    });
  }
}

}  // namespace

uint64_t DeltaConfigHash(const pipeline::SliOptions& sli, std::chrono::milliseconds epoch_length) {
  const std::string text = absl::StrCat(
      "traceslo-deltas/v", kDeltaBatchSchemaVersion, ";idle_ns=", sli.trace_idle_timeout.count(),
      ";max_age_ns=", sli.trace_max_age.count(), ";lateness_ns=", sli.max_lateness.count(),
      ";spans_per_trace=", sli.max_spans_per_trace, ";signatures=", sli.max_signatures,
      ";signatures_per_bucket=", sli.max_signatures_per_series_bucket,
      ";http_min=", sli.errors.http_status_min, ";grpc_mask=", sli.errors.grpc_code_mask,
      ";assemble=", sli.assemble_traces ? 1 : 0, ";epoch_ms=", epoch_length.count());
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  return hash;
}

int32_t DeltaPartitionOf(std::string_view service, int32_t partitions) {
  return Fnv1aPartition(service, partitions);
}

std::vector<std::string> EncodeDeltaBatches(const DeltaBatchHeader& header,
                                            const pipeline::ShardDelta& delta,
                                            const pipeline::SeriesRegistry& registry,
                                            int32_t dst_partitions) {
  std::vector<v1::DeltaBatch> batches(static_cast<size_t>(dst_partitions));
  for (int32_t p = 0; p < dst_partitions; ++p) {
    v1::DeltaBatch& b = batches[static_cast<size_t>(p)];
    b.set_schema_version(kDeltaBatchSchemaVersion);
    b.set_config_hash(header.config_hash);
    b.set_src_topic(header.src_topic);
    b.set_src_partition(header.src_partition);
    b.set_epoch(header.epoch);
    b.set_stream_time_ms(header.stream_time_ms);
    b.set_dst_partition(p);
  }
  v1::DeltaBatch& first = batches.front();
  first.set_late_spans(delta.late_spans);
  first.set_evicted_traces(delta.evicted_traces);
  first.set_clock_skew_spans(delta.clock_skew_spans);
  first.set_truncated_spans(delta.truncated_spans);

  for (const pipeline::SeriesDelta& d : delta.series) {
    const std::string_view service = registry.ServiceName(d.service);
    v1::SeriesEntry& e =
        *batches[static_cast<size_t>(DeltaPartitionOf(service, dst_partitions))].add_series();
    e.set_service(std::string(service));
    e.set_operation(std::string(registry.OperationName(d.series)));
    WriteSeriesCounts(d, e);
  }
  for (const pipeline::ServiceDelta& d : delta.services) {
    const std::string_view service = registry.ServiceName(d.service);
    v1::ServiceEntry& e =
        *batches[static_cast<size_t>(DeltaPartitionOf(service, dst_partitions))].add_services();
    e.set_service(std::string(service));
    WriteServiceCounts(d, e);
  }
  // Details (titles, messages) are context, not counts: past a budget per record an epoch's
  // further details are left out, so an error storm of distinct signatures cannot make a record
  // too large for the producer or stage 2 (the counts still travel; a signature's details come
  // again in the next epoch that sees it).
  std::vector<size_t> detail_bytes(batches.size(), 0);
  for (const pipeline::SignatureDelta& d : delta.signatures) {
    const std::string_view service = registry.ServiceName(registry.ServiceOf(d.series));
    const auto partition = static_cast<size_t>(DeltaPartitionOf(service, dst_partitions));
    if (detail_bytes[partition] >= kMaxSignatureDetailBytesPerRecord) continue;
    v1::SignatureEntry& e = *batches[partition].add_signature_details();
    e.set_id(d.id);
    e.set_service(std::string(service));
    e.set_operation(std::string(registry.OperationName(d.series)));
    e.set_count(d.count);
    e.set_first_seen_unix_nano(d.first_seen_unix_nano);
    e.set_last_seen_unix_nano(d.last_seen_unix_nano);
    e.set_http_status(d.http_status);
    e.set_rpc_status(d.rpc_status);
    e.set_exception_type(d.exception_type);
    e.set_normalized_message(d.normalized_message);
    e.set_sample_message(d.sample_message);
    e.set_top_frame(d.top_frame);
    for (const TraceId& id : d.trace_ids) {
      e.add_trace_ids(std::string(reinterpret_cast<const char*>(id.data()), id.size()));
    }
    detail_bytes[partition] += e.ByteSizeLong();
  }
  // Exemplars are examples, not counts: past a budget per record the epoch's further ones are
  // left out, error exemplars (what causes link) before the slowest requests'.
  struct ExemplarWriter {
    v1::DeltaBatch* batch = nullptr;
    size_t bytes = 0;
    absl::flat_hash_map<const pipeline::ExemplarTrace*, uint32_t> traces;
    absl::flat_hash_map<uint32_t, uint32_t> names;  // registry series id → exemplar_names index
  };
  std::vector<ExemplarWriter> writers(batches.size());
  for (size_t p = 0; p < batches.size(); ++p) writers[p].batch = &batches[p];
  auto name_of = [&](ExemplarWriter& w, uint32_t series, std::vector<uint32_t>& added) {
    auto [it, inserted] =
        w.names.try_emplace(series, static_cast<uint32_t>(w.batch->exemplar_names_size()));
    if (inserted) {
      v1::SeriesName& n = *w.batch->add_exemplar_names();
      n.set_service(std::string(registry.ServiceName(registry.ServiceOf(series))));
      n.set_operation(std::string(registry.OperationName(series)));
      w.bytes += n.ByteSizeLong();
      added.push_back(series);
    }
    return it->second;
  };
  // Upper bound of one ExemplarEntry's encoded size beyond its names.
  constexpr size_t kEntryOverhead = 64;
  auto write_exemplar = [&](const pipeline::ExemplarDelta& d) {
    if (d.trace == nullptr || d.trace->spans.empty()) return;
    const std::string_view service = registry.ServiceName(registry.ServiceOf(d.series));
    const std::string_view operation = registry.OperationName(d.series);
    ExemplarWriter& w = writers[static_cast<size_t>(DeltaPartitionOf(service, dst_partitions))];
    if (w.bytes + kEntryOverhead + service.size() + operation.size() > kMaxExemplarBytesPerRecord) {
      return;
    }
    auto trace = w.traces.find(d.trace.get());
    if (trace == w.traces.end()) {
      if (w.traces.size() >= kMaxExemplarTracesPerRecord) return;
      // Written, then taken back if it does not fit whole (with the names it added).
      const size_t bytes_before = w.bytes;
      const int names_before = w.batch->exemplar_names_size();
      std::vector<uint32_t> added;
      const auto index = static_cast<uint32_t>(w.batch->exemplar_traces_size());
      v1::ExemplarTrace& t = *w.batch->add_exemplar_traces();
      t.set_trace_id(std::string(reinterpret_cast<const char*>(d.trace->trace_id.data()),
                                 d.trace->trace_id.size()));
      t.set_start_unix_nano(d.trace->start_unix_nano);
      t.set_duration_nanos(d.trace->duration_nanos);
      for (const pipeline::ExemplarSpan& span : d.trace->spans) {
        v1::ExemplarSpan& e = *t.add_spans();
        e.set_span_id(span.span_id);
        e.set_parent_span_id(span.parent_span_id);
        e.set_start_offset_nanos(span.start_offset_nanos);
        e.set_duration_nanos(span.duration_nanos);
        e.set_signature(span.signature);
        e.set_name(name_of(w, span.series, added));
        e.set_kind(static_cast<uint32_t>(span.kind));
        e.set_error(span.error);
        e.set_orphan(span.orphan);
      }
      w.bytes += t.ByteSizeLong();
      if (w.bytes + kEntryOverhead + service.size() + operation.size() >
          kMaxExemplarBytesPerRecord) {
        w.batch->mutable_exemplar_traces()->RemoveLast();
        w.batch->mutable_exemplar_names()->DeleteSubrange(
            names_before, w.batch->exemplar_names_size() - names_before);
        for (uint32_t series : added) w.names.erase(series);
        w.bytes = bytes_before;
        return;
      }
      trace = w.traces.emplace(d.trace.get(), index).first;
    }
    v1::ExemplarEntry& e = *w.batch->add_exemplars();
    e.set_service(std::string(service));
    e.set_operation(std::string(operation));
    e.set_bucket(d.bucket);
    e.set_signature(d.signature);
    e.set_duration_nanos(d.duration_nanos);
    e.set_end_unix_nano(d.end_unix_nano);
    e.set_trace(trace->second);
    w.bytes += e.ByteSizeLong();
  };
  for (const pipeline::ExemplarDelta& d : delta.exemplars) {
    if (d.signature != 0) write_exemplar(d);
  }
  // The slowest requests' next, slowest first (ties in the delta's order).
  std::vector<const pipeline::ExemplarDelta*> slowest;
  for (const pipeline::ExemplarDelta& d : delta.exemplars) {
    if (d.signature == 0) slowest.push_back(&d);
  }
  std::stable_sort(slowest.begin(), slowest.end(),
                   [](const pipeline::ExemplarDelta* a, const pipeline::ExemplarDelta* b) {
                     return a->duration_nanos > b->duration_nanos;
                   });
  for (const pipeline::ExemplarDelta* d : slowest) write_exemplar(*d);

  std::vector<std::string> out;
  out.reserve(batches.size());
  for (const v1::DeltaBatch& b : batches) out.push_back(b.SerializeAsString());
  return out;
}

absl::StatusOr<DecodedDeltaBatch> DecodeDeltaBatch(std::string_view bytes,
                                                   const DeltaBatchLimits& limits,
                                                   pipeline::SeriesRegistry& registry) {
  if (bytes.size() > limits.max_bytes) {
    return Invalid(std::to_string(bytes.size()) + " bytes, more than " +
                   std::to_string(limits.max_bytes));
  }
  v1::DeltaBatch batch;
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()) ||
      !batch.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return Invalid("not a traceslo.v1.DeltaBatch protobuf");
  }
  if (batch.schema_version() != kDeltaBatchSchemaVersion) {
    return Invalid("schema_version " + std::to_string(batch.schema_version()) +
                   " (this traceslo reads " + std::to_string(kDeltaBatchSchemaVersion) + ")");
  }
  if (static_cast<size_t>(batch.series_size()) > limits.max_series) {
    return Invalid(std::to_string(batch.series_size()) + " series, more than " +
                   std::to_string(limits.max_series));
  }
  if (static_cast<size_t>(batch.services_size()) > limits.max_services) {
    return Invalid(std::to_string(batch.services_size()) + " services, more than " +
                   std::to_string(limits.max_services));
  }
  if (static_cast<size_t>(batch.signature_details_size()) > limits.max_signature_details) {
    return Invalid(std::to_string(batch.signature_details_size()) +
                   " signature details, more than " + std::to_string(limits.max_signature_details));
  }
  for (const auto& [size, limit, what] :
       {std::tuple{batch.exemplars_size(), limits.max_exemplars, "exemplars"},
        std::tuple{batch.exemplar_traces_size(), limits.max_exemplar_traces, "exemplar traces"},
        std::tuple{batch.exemplar_names_size(), limits.max_exemplar_names, "exemplar names"}}) {
    if (static_cast<size_t>(size) > limit) {
      return Invalid(std::to_string(size) + " " + what + ", more than " + std::to_string(limit));
    }
  }
  if (batch.src_partition() < 0 || batch.dst_partition() < 0) {
    return Invalid("negative partition (src " + std::to_string(batch.src_partition()) + ", dst " +
                   std::to_string(batch.dst_partition()) + ")");
  }
  if (batch.src_topic().size() > limits.max_name_bytes) {
    return Invalid("src_topic is longer than " + std::to_string(limits.max_name_bytes) + " bytes");
  }

  // Every entry is checked before any name reaches the registry.
  std::vector<pipeline::LatencySketch> sketches(static_cast<size_t>(batch.series_size()));
  for (int i = 0; i < batch.series_size(); ++i) {
    const v1::SeriesEntry& e = batch.series(i);
    const std::string where = "series[" + std::to_string(i) + "]";
    if (absl::Status s = CheckName(e.service(), where + ".service", limits); !s.ok()) return s;
    if (absl::Status s = CheckName(e.operation(), where + ".operation", limits); !s.ok()) {
      return s;
    }
    if (static_cast<size_t>(e.classic_size()) != pipeline::kClassicBuckets) {
      return Invalid(where + ": " + std::to_string(e.classic_size()) +
                     " classic buckets, expected " + std::to_string(pipeline::kClassicBuckets));
    }
    if (static_cast<size_t>(e.signatures_size()) > limits.max_signatures_per_series) {
      return Invalid(where + ": " + std::to_string(e.signatures_size()) +
                     " signatures, more than " + std::to_string(limits.max_signatures_per_series));
    }
    if (e.errors() > e.requests()) {
      return Invalid(where + ": " + std::to_string(e.errors()) + " errors of " +
                     std::to_string(e.requests()) + " requests");
    }
    // Sums in 128 bits: counts near 2^64 must not wrap into agreement.
    unsigned __int128 classic = 0;
    for (uint64_t c : e.classic()) classic += c;
    if (classic != e.requests()) {
      return Invalid(where + ": classic buckets count " +
                     std::to_string(static_cast<uint64_t>(classic)) +
                     (classic > std::numeric_limits<uint64_t>::max() ? " (overflow)" : "") +
                     ", requests " + std::to_string(e.requests()));
    }
    pipeline::LatencySketch& sketch = sketches[static_cast<size_t>(i)];
    if (!sketch.Decode(e.latency())) return Invalid(where + ".latency: a malformed sketch");
    if (sketch.Count() != e.requests()) {
      return Invalid(where + ".latency counts " + std::to_string(sketch.Count()) +
                     " durations, requests " + std::to_string(e.requests()));
    }
    unsigned __int128 signatures = 0;
    for (const v1::SignatureCount& c : e.signatures()) signatures += c.count();
    if (signatures != e.errors()) {
      return Invalid(where + ": signature counts sum to " +
                     std::to_string(static_cast<uint64_t>(signatures)) + ", errors " +
                     std::to_string(e.errors()));
    }
  }
  for (int i = 0; i < batch.services_size(); ++i) {
    const std::string where = "services[" + std::to_string(i) + "]";
    if (absl::Status s = CheckName(batch.services(i).service(), where + ".service", limits);
        !s.ok()) {
      return s;
    }
  }
  for (int i = 0; i < batch.signature_details_size(); ++i) {
    if (absl::Status s = CheckSignatureEntry(
            batch.signature_details(i), "signature_details[" + std::to_string(i) + "]", limits);
        !s.ok()) {
      return s;
    }
  }

  if (!limits.skip_exemplars) {
    if (absl::Status s = CheckExemplars(batch, limits); !s.ok()) return s;
  }

  DecodedDeltaBatch out;
  out.header = DeltaBatchHeader{.config_hash = batch.config_hash(),
                                .src_topic = batch.src_topic(),
                                .src_partition = batch.src_partition(),
                                .epoch = batch.epoch(),
                                .stream_time_ms = batch.stream_time_ms(),
                                .dst_partition = batch.dst_partition()};
  pipeline::ShardDelta& delta = out.delta;
  delta.late_spans = batch.late_spans();
  delta.evicted_traces = batch.evicted_traces();
  delta.clock_skew_spans = batch.clock_skew_spans();
  delta.truncated_spans = batch.truncated_spans();
  delta.series.reserve(static_cast<size_t>(batch.series_size()));
  for (int i = 0; i < batch.series_size(); ++i) {
    const v1::SeriesEntry& e = batch.series(i);
    pipeline::SeriesDelta d;
    d.latency = std::move(sketches[static_cast<size_t>(i)]);
    const pipeline::SeriesRegistry::Ids ids = registry.Resolve(e.service(), e.operation());
    d.series = ids.series;
    d.service = ids.service;
    ReadSeriesCounts(e, d);
    delta.series.push_back(std::move(d));
  }
  for (const v1::ServiceEntry& e : batch.services()) {
    pipeline::ServiceDelta& d = delta.services.emplace_back();
    d.service = registry.ResolveService(e.service());
    ReadServiceCounts(e, d);
  }
  delta.signatures.reserve(static_cast<size_t>(batch.signature_details_size()));
  for (v1::SignatureEntry& e : *batch.mutable_signature_details()) {
    pipeline::SignatureDelta& d = delta.signatures.emplace_back();
    d.id = e.id();
    d.series = registry.Resolve(e.service(), e.operation()).series;
    d.count = e.count();
    d.first_seen_unix_nano = e.first_seen_unix_nano();
    d.last_seen_unix_nano = e.last_seen_unix_nano();
    d.http_status = e.http_status();
    d.rpc_status = e.rpc_status();
    d.exception_type = std::move(*e.mutable_exception_type());
    d.normalized_message = std::move(*e.mutable_normalized_message());
    d.sample_message = std::move(*e.mutable_sample_message());
    d.top_frame = std::move(*e.mutable_top_frame());
    d.trace_ids.reserve(static_cast<size_t>(e.trace_ids_size()));
    for (const std::string& bytes : e.trace_ids()) {
      TraceId& id = d.trace_ids.emplace_back();
      std::copy(bytes.begin(), bytes.end(), id.begin());
    }
  }
  if (!limits.skip_exemplars) ReadExemplars(batch, registry, delta);
  return out;
}

}  // namespace traceslo::kafka
