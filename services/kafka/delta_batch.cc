#include "traceslo/kafka/delta_batch.h"

#include <algorithm>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

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
  return out;
}

}  // namespace traceslo::kafka
