#include "traceslo/pipeline/sli_processor.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>

namespace traceslo::pipeline {
namespace {

constexpr size_t kMaxCachedNames = 1u << 16;
constexpr size_t kMaxSampleMessageBytes = 256;

// SpanRecord::series_flags.
constexpr uint32_t kSeriesMask = (1u << 24) - 1;
constexpr uint32_t kFlagError = 1u << 24;
constexpr uint32_t kFlagEntry = 1u << 25;    // counted as an entry span
constexpr uint32_t kFlagPending = 1u << 26;  // entry decision waits for the parent
constexpr uint32_t kKindShift = 27;          // 3 bits of SpanKind

int64_t UnixNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

uint64_t BucketKey(uint32_t id, int64_t bucket) {
  return uint64_t{id} << 32 | static_cast<uint32_t>(bucket);
}

SpanKind KindOf(const SliShardProcessor::SpanRecord& r) {
  return static_cast<SpanKind>((r.series_flags >> kKindShift) & 7);
}
uint32_t SeriesOf(const SliShardProcessor::SpanRecord& r) { return r.series_flags & kSeriesMask; }

static_assert(sizeof(SliShardProcessor::SpanRecord) == 32);

// SpanRecord::duration: the top 2 bits name the unit, the low 30 bits hold the value.
// Nanoseconds below 2^30 ns (1.07 s) are exact; longer durations are rounded up to microseconds
// (below 17.9 min) or milliseconds (below 12.4 days). Rounding up keeps every comparison with a
// whole number of microseconds (resp. milliseconds) exact: d <= B iff ceil(d/u)*u <= B, so the
// classic histogram buckets (all >= 2.5 s above 1.07 s) classify a decoded duration exactly.
constexpr uint32_t kDurationValueMask = (1u << 30) - 1;
uint32_t EncodeDuration(uint64_t nanos) {
  if (nanos <= kDurationValueMask) return static_cast<uint32_t>(nanos);
  const uint64_t micros = (nanos + 999) / 1000;
  if (micros <= kDurationValueMask) return 1u << 30 | static_cast<uint32_t>(micros);
  const uint64_t millis = std::min<uint64_t>((nanos + 999'999) / 1'000'000, kDurationValueMask);
  return 2u << 30 | static_cast<uint32_t>(millis);
}
uint64_t DecodeDuration(uint32_t encoded) {
  const uint64_t value = encoded & kDurationValueMask;
  switch (encoded >> 30) {
    case 0:
      return value;
    case 1:
      return value * 1000;
    default:
      return value * 1'000'000;
  }
}

}  // namespace

bool IsErrorSpan(const Span& span, const ErrorPolicy& policy) {
  if (span.status == StatusCode::kError) return true;
  if (span.status == StatusCode::kOk) return false;
  if (span.http_status >= policy.http_status_min) {
    // HTTP 4xx/5xx on a client span is the callee's answer; the callee's own server span
    // carries the error. Only spans that serve the request are judged by their HTTP status.
    if (span.kind != SpanKind::kClient && span.kind != SpanKind::kProducer) return true;
  }
  if (span.rpc_status >= 0 && span.rpc_status < 32 &&
      (policy.grpc_code_mask >> span.rpc_status & 1) != 0) {
    return span.kind != SpanKind::kClient && span.kind != SpanKind::kProducer;
  }
  return false;
}

size_t SliShardProcessor::TraceIdHash::operator()(const TraceId& id) const {
  uint64_t a, b;
  std::memcpy(&a, id.data(), 8);
  std::memcpy(&b, id.data() + 8, 8);
  return absl::Hash<std::pair<uint64_t, uint64_t>>()({a, b});
}

SliShardProcessor::SliShardProcessor(const SliOptions& options, const Clock& clock,
                                     SeriesRegistry& registry, SliStore& store)
    : options_(options), clock_(clock), registry_(registry), store_(store) {
  delta_.shard = options_.shard;
}

SeriesRegistry::Ids SliShardProcessor::Resolve(std::string_view service,
                                               std::string_view operation) {
  key_scratch_.assign(service);
  key_scratch_.push_back('\0');
  key_scratch_.append(operation);
  if (auto it = names_.find(key_scratch_); it != names_.end()) return it->second;
  const SeriesRegistry::Ids ids = registry_.Resolve(service, operation);
  assert(ids.series < SeriesRegistry::kMaxIds);
  if (names_.size() >= kMaxCachedNames) names_.clear();  // bounded: misses refill it
  names_.emplace(key_scratch_, ids);
  if (series_service_.size() <= ids.series) series_service_.resize(ids.series + 1, 0);
  series_service_[ids.series] = ids.service;
  return ids;
}

void SliShardProcessor::CountRequest(uint32_t series, int64_t bucket, uint64_t duration_nanos,
                                     bool error, uint64_t signature) {
  auto [it, inserted] = series_index_.try_emplace(BucketKey(series, bucket),
                                                  static_cast<uint32_t>(delta_.series.size()));
  if (inserted) {
    SeriesDelta& d = delta_.series.emplace_back();
    d.series = series;
    d.service = ServiceOfSeries(series);
    d.bucket = bucket;
  }
  SeriesDelta& d = delta_.series[it->second];
  ++d.requests;
  if (error) {
    ++d.errors;
    AddSignatureCount(d.signatures, signature, 1, options_.max_signatures_per_series_bucket);
  }
  d.sum_seconds += static_cast<double>(duration_nanos) * 1e-9;
  ++d.classic[ClassicBucketOf(duration_nanos)];
  d.latency.Add(duration_nanos);
}

SliShardProcessor::LiveTrace* SliShardProcessor::FindOrCreate(const TraceId& trace_id,
                                                              int64_t now) {
  if (auto it = live_.find(trace_id); it != live_.end()) return &it->second;
  // At the cap, the oldest live trace completes early (counted) to make room.
  while (live_.size() >= options_.max_live_traces && !creation_order_.empty()) {
    auto [oldest, first_arrival] = creation_order_.front();
    creation_order_.pop_front();
    auto it = live_.find(oldest);
    if (it == live_.end() || it->second.first_arrival_nanos != first_arrival) continue;
    ++delta_.evicted_traces;
    Complete(oldest, it->second);
    live_.erase(it);
    RememberCompleted(oldest, now);
  }
  LiveTrace& trace = live_[trace_id];
  trace.first_arrival_nanos = now;
  creation_order_.emplace_back(trace_id, now);
  return &trace;
}

uint64_t SliShardProcessor::SignatureOfRecord(const LiveTrace& trace, size_t index) {
  if ((trace.spans[index].series_flags & kFlagError) == 0 || !trace.signatures) return 0;
  for (auto [i, signature] : *trace.signatures) {
    if (i == index) return signature;
  }
  return 0;
}

void SliShardProcessor::ResolvePendingChildren(LiveTrace& trace, uint64_t parent_span_id,
                                               uint32_t parent_service) {
  for (size_t i = 0; i < trace.spans.size(); ++i) {
    SpanRecord& child = trace.spans[i];
    if ((child.series_flags & kFlagPending) == 0 || child.parent_span_id != parent_span_id) {
      continue;
    }
    child.series_flags &= ~kFlagPending;
    --trace.pending;
    const uint32_t series = SeriesOf(child);
    if (ServiceOfSeries(series) != parent_service) {
      child.series_flags |= kFlagEntry;
      CountRequest(series, child.bucket, DecodeDuration(child.duration),
                   (child.series_flags & kFlagError) != 0, SignatureOfRecord(trace, i));
    }
    if (trace.pending == 0) break;
  }
}

void SliShardProcessor::Process(const ShardBatch& batch) {
  const int64_t now = UnixNanos(clock_.Now());
  const int64_t earliest = now - options_.max_lateness.count();
  const std::string_view strings(*batch.strings);
  for (const Span& span : batch.spans) {
    const SeriesRegistry::Ids ids = Resolve(batch.Str(span.service), batch.Str(span.name));
    const bool error = IsErrorSpan(span, options_.errors);
    // Bucket time: the end time clamped into [now - max_lateness, now].
    int64_t end = static_cast<int64_t>(std::min<uint64_t>(
        span.end_unix_nano, static_cast<uint64_t>(std::numeric_limits<int64_t>::max())));
    if (end < earliest || end > now) {
      end = std::clamp(end, earliest, now);
      ++delta_.clock_skew_spans;
    }
    const int64_t bucket = BucketOfUnixNanos(end);
    const uint64_t duration = span.end_unix_nano - span.start_unix_nano;
    bool entry = span.kind == SpanKind::kServer || span.kind == SpanKind::kConsumer ||
                 span.parent_span_id == 0;

    uint64_t signature = 0;
    if (error) {
      signature = SignatureOfSpan(span, strings, signature_scratch_).id;
      AddSignature(span, batch, ids.series, signature, now);
    }

    if (!options_.assemble_traces) {
      if (entry) CountRequest(ids.series, bucket, duration, error, signature);
      continue;
    }
    if (completed_.contains(span.trace_id)) {
      // Its trace was already classified: counted as late, never as a second trace.
      ++delta_.late_spans;
      if (entry) CountRequest(ids.series, bucket, duration, error, signature);
      continue;
    }
    LiveTrace& trace = *FindOrCreate(span.trace_id, now);
    trace.last_arrival_nanos = now;
    bool pending = false;
    if (!entry) {
      // A span whose parent belongs to another service is an entry span too.
      auto parent = std::find_if(trace.spans.begin(), trace.spans.end(), [&](const SpanRecord& r) {
        return r.span_id == span.parent_span_id;
      });
      if (parent != trace.spans.end()) {
        entry = ServiceOfSeries(SeriesOf(*parent)) != ids.service;
      } else {
        pending = true;
      }
    }
    if (trace.spans.size() >= options_.max_spans_per_trace) {
      // Not kept for assembly; its own SLIs still count (an unknown parent: an entry).
      ++delta_.truncated_spans;
      if (entry || pending) CountRequest(ids.series, bucket, duration, error, signature);
      continue;
    }
    if (trace.spans.empty()) trace.base_start_nanos = static_cast<int64_t>(span.start_unix_nano);
    const int64_t offset_us =
        (static_cast<int64_t>(span.start_unix_nano) - trace.base_start_nanos) / 1000;
    SpanRecord record{
        .span_id = span.span_id,
        .parent_span_id = span.parent_span_id,
        .series_flags = ids.series | (error ? kFlagError : 0) | (entry ? kFlagEntry : 0) |
                        (pending ? kFlagPending : 0) |
                        static_cast<uint32_t>(span.kind) << kKindShift,
        .duration = EncodeDuration(duration),
        .start_offset_us = static_cast<int32_t>(std::clamp<int64_t>(
            offset_us, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max())),
        .bucket = static_cast<uint32_t>(bucket),
    };
    if (trace.pending != 0) ResolvePendingChildren(trace, span.span_id, ids.service);
    trace.spans.push_back(record);
    if (pending) ++trace.pending;
    if (error) {
      if (!trace.signatures) {
        trace.signatures = std::make_unique<std::vector<std::pair<uint32_t, uint64_t>>>();
      }
      trace.signatures->emplace_back(static_cast<uint32_t>(trace.spans.size() - 1), signature);
    }
    if (entry) CountRequest(ids.series, bucket, duration, error, signature);
  }
}

void SliShardProcessor::AddSignature(const Span& span, const ShardBatch& batch, uint32_t series,
                                     uint64_t id, int64_t now) {
  auto it = signature_index_.find(id);
  if (it == signature_index_.end()) {
    if (signature_index_.size() >= options_.max_signatures) {
      ++delta_.signature_overflow;
      return;
    }
    it = signature_index_.emplace(id, static_cast<uint32_t>(delta_.signatures.size())).first;
    SignatureDelta& d = delta_.signatures.emplace_back();
    d.id = id;
    d.series = series;
    d.first_seen_unix_nano = now;
    d.http_status = span.http_status;
    d.rpc_status = span.rpc_status;
    d.exception_type = batch.Str(span.exception_type);
    d.normalized_message = signature_scratch_.message;
    d.top_frame = signature_scratch_.frame;
    std::string_view sample = batch.Str(span.exception_message);
    if (sample.empty()) sample = batch.Str(span.status_message);
    d.sample_message = sample.substr(0, kMaxSampleMessageBytes);
  }
  SignatureDelta& d = delta_.signatures[it->second];
  ++d.count;
  d.last_seen_unix_nano = now;
  if (d.trace_ids.empty() || d.trace_ids.back() != span.trace_id) {
    if (d.trace_ids.size() == kMaxSignatureTraces) d.trace_ids.erase(d.trace_ids.begin());
    d.trace_ids.push_back(span.trace_id);
  }
}

void SliShardProcessor::Complete(const TraceId& trace_id, LiveTrace& trace) {
  const size_t n = trace.spans.size();
  if (n == 0) return;
  std::vector<SpanRecord>& spans = trace.spans;

  // Parent links inside the trace.
  parent_index_.assign(n, -1);
  if (n <= 16) {
    for (size_t i = 0; i < n; ++i) {
      if (spans[i].parent_span_id == 0) continue;
      for (size_t j = 0; j < n; ++j) {
        if (spans[j].span_id == spans[i].parent_span_id) {
          parent_index_[i] = static_cast<int32_t>(j);
          break;
        }
      }
    }
  } else {
    span_index_.clear();
    for (size_t i = 0; i < n; ++i) span_index_.try_emplace(spans[i].span_id, i);
    for (size_t i = 0; i < n; ++i) {
      if (spans[i].parent_span_id == 0) continue;
      if (auto it = span_index_.find(spans[i].parent_span_id); it != span_index_.end()) {
        parent_index_[i] = static_cast<int32_t>(it->second);
      }
    }
  }

  int32_t root = -1;  // the root span, or else the earliest span whose parent is missing
  int32_t top = -1;
  bool orphan_seen = false;
  uint32_t trace_bucket = 0;
  int64_t min_offset = std::numeric_limits<int64_t>::max();
  int64_t max_end_offset = std::numeric_limits<int64_t>::min();
  for (size_t i = 0; i < n; ++i) {
    SpanRecord& r = spans[i];
    trace_bucket = std::max(trace_bucket, r.bucket);
    min_offset = std::min<int64_t>(min_offset, int64_t{r.start_offset_us} * 1000);
    max_end_offset =
        std::max<int64_t>(max_end_offset, int64_t{r.start_offset_us} * 1000 +
                                              static_cast<int64_t>(DecodeDuration(r.duration)));
    if (r.parent_span_id == 0) {
      if (root < 0 || r.start_offset_us < spans[root].start_offset_us)
        root = static_cast<int32_t>(i);
    } else if (parent_index_[i] < 0) {
      orphan_seen = true;
      if (top < 0 || r.start_offset_us < spans[top].start_offset_us) top = static_cast<int32_t>(i);
    }
    if ((r.series_flags & kFlagPending) != 0) {
      // Its parent never arrived (or was not kept): the span enters its service.
      r.series_flags &= ~kFlagPending;
      if (parent_index_[i] < 0 ||
          ServiceOfSeries(SeriesOf(spans[parent_index_[i]])) != ServiceOfSeries(SeriesOf(r))) {
        r.series_flags |= kFlagEntry;
        CountRequest(SeriesOf(r), r.bucket, DecodeDuration(r.duration),
                     (r.series_flags & kFlagError) != 0, SignatureOfRecord(trace, i));
      }
    }
  }
  const bool partial = root < 0 || orphan_seen;
  if (root < 0) root = top >= 0 ? top : 0;  // no root and no orphan: a parent cycle

  // Depth from the top of the span's subtree; the deepest error span is the origin.
  depth_.assign(n, -1);
  int32_t origin = -1;
  for (size_t i = 0; i < n; ++i) {
    if ((spans[i].series_flags & kFlagError) == 0) continue;
    int32_t depth = 0;
    for (int32_t p = parent_index_[i]; p >= 0 && depth <= static_cast<int32_t>(n);
         p = parent_index_[p]) {
      ++depth;
    }
    depth_[i] = depth;
    if (origin < 0 || depth > depth_[origin]) origin = static_cast<int32_t>(i);
  }

  // Trace-level SLIs for every service the trace touches.
  touched_.clear();
  for (const SpanRecord& r : spans) touched_.push_back(ServiceOfSeries(SeriesOf(r)));
  std::sort(touched_.begin(), touched_.end());
  touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
  auto service_delta = [&](uint32_t service) -> ServiceDelta& {
    auto [it, inserted] = service_index_.try_emplace(BucketKey(service, trace_bucket),
                                                     static_cast<uint32_t>(delta_.services.size()));
    if (inserted) {
      ServiceDelta& d = delta_.services.emplace_back();
      d.service = service;
      d.bucket = trace_bucket;
    }
    return delta_.services[it->second];
  };
  for (uint32_t service : touched_) {
    ServiceDelta& d = service_delta(service);
    ++d.traces;
    if (partial) ++d.partial_traces;
  }
  if (partial) {
    // Every service whose span lost its parent broke propagation (once per trace).
    touched_.clear();
    for (size_t i = 0; i < n; ++i) {
      if (spans[i].parent_span_id != 0 && parent_index_[i] < 0) {
        touched_.push_back(ServiceOfSeries(SeriesOf(spans[i])));
      }
    }
    if (touched_.empty()) touched_.push_back(ServiceOfSeries(SeriesOf(spans[root])));
    std::sort(touched_.begin(), touched_.end());
    touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
    for (uint32_t service : touched_) ++service_delta(service).propagation_breaks;
  }
  if (origin >= 0) {
    ++service_delta(ServiceOfSeries(SeriesOf(spans[root]))).error_traces_root;
    ++service_delta(ServiceOfSeries(SeriesOf(spans[origin]))).error_traces_origin;
  }

  // Exemplar candidates: the slowest entry span per (series, bucket), the latest error trace per
  // (series, bucket, signature). The compact trace is built once, only if it wins somewhere.
  ExemplarRef exemplar;
  auto build = [&]() -> const ExemplarRef& {
    if (exemplar) return exemplar;
    auto t = std::make_shared<ExemplarTrace>();
    t->trace_id = trace_id;
    t->start_unix_nano = trace.base_start_nanos + min_offset;
    t->duration_nanos = static_cast<uint64_t>(std::max<int64_t>(0, max_end_offset - min_offset));
    t->spans.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const SpanRecord& r = spans[i];
      t->spans.push_back(ExemplarSpan{
          .span_id = r.span_id,
          .parent_span_id = r.parent_span_id,
          .start_offset_nanos = int64_t{r.start_offset_us} * 1000 - min_offset,
          .duration_nanos = DecodeDuration(r.duration),
          .signature = 0,
          .series = SeriesOf(r),
          .kind = KindOf(r),
          .error = (r.series_flags & kFlagError) != 0,
          .orphan = r.parent_span_id != 0 && parent_index_[i] < 0,
      });
    }
    if (trace.signatures) {
      for (auto [index, signature] : *trace.signatures) t->spans[index].signature = signature;
    }
    exemplar = std::move(t);
    return exemplar;
  };
  for (const SpanRecord& r : spans) {
    if ((r.series_flags & kFlagEntry) == 0) continue;
    const auto duration = DecodeDuration(r.duration);
    const int64_t end =
        trace.base_start_nanos + int64_t{r.start_offset_us} * 1000 + static_cast<int64_t>(duration);
    auto [it, inserted] = slowest_index_.try_emplace(
        BucketKey(SeriesOf(r), r.bucket), static_cast<uint32_t>(delta_.exemplars.size()));
    if (inserted) {
      delta_.exemplars.push_back(ExemplarDelta{.series = SeriesOf(r),
                                               .bucket = r.bucket,
                                               .signature = 0,
                                               .duration_nanos = duration,
                                               .end_unix_nano = end,
                                               .trace = build()});
    } else if (ExemplarDelta& d = delta_.exemplars[it->second]; duration > d.duration_nanos) {
      d.duration_nanos = duration;
      d.end_unix_nano = end;
      d.trace = build();
    }
  }
  if (trace.signatures) {
    for (auto [index, signature] : *trace.signatures) {
      const SpanRecord& r = spans[index];
      const int64_t end = trace.base_start_nanos + int64_t{r.start_offset_us} * 1000 +
                          static_cast<int64_t>(DecodeDuration(r.duration));
      if (error_index_.size() >= options_.max_signatures &&
          !error_index_.contains({BucketKey(SeriesOf(r), r.bucket), signature})) {
        continue;  // bounded per tick, like the signatures themselves
      }
      auto [it, inserted] = error_index_.try_emplace(
          std::pair<uint64_t, uint64_t>{BucketKey(SeriesOf(r), r.bucket), signature},
          static_cast<uint32_t>(delta_.exemplars.size()));
      if (inserted) {
        delta_.exemplars.push_back(ExemplarDelta{.series = SeriesOf(r),
                                                 .bucket = r.bucket,
                                                 .signature = signature,
                                                 .duration_nanos = DecodeDuration(r.duration),
                                                 .end_unix_nano = end,
                                                 .trace = build()});
      } else if (ExemplarDelta& d = delta_.exemplars[it->second]; end >= d.end_unix_nano) {
        d.end_unix_nano = end;
        d.duration_nanos = DecodeDuration(r.duration);
        d.trace = build();
      }
    }
  }
}

void SliShardProcessor::RememberCompleted(const TraceId& trace_id, int64_t now) {
  // Bounded like the live set: the oldest ids are forgotten first.
  while (completed_.size() >= options_.max_live_traces && !completed_order_.empty()) {
    completed_.erase(completed_order_.front().first);
    completed_order_.pop_front();
  }
  if (completed_.insert(trace_id).second) completed_order_.emplace_back(trace_id, now);
}

void SliShardProcessor::CompleteExpired(int64_t now, bool all) {
  const int64_t idle_before = now - options_.trace_idle_timeout.count();
  const int64_t born_before = now - options_.trace_max_age.count();
  // One pass: what completes, and the memory of what stays (for traceslo_live_trace_bytes).
  std::vector<std::pair<int64_t, TraceId>> done;
  size_t kept_bytes = 0;
  for (auto& [id, trace] : live_) {
    if (all || trace.last_arrival_nanos <= idle_before ||
        trace.first_arrival_nanos <= born_before) {
      done.emplace_back(trace.first_arrival_nanos, id);
    } else {
      kept_bytes += TraceHeapBytes(trace);
    }
  }
  // Oldest first, so the completed-id memory forgets in a stable order.
  std::sort(done.begin(), done.end());
  for (const auto& [first_arrival, id] : done) {
    auto it = live_.find(id);
    Complete(id, it->second);
    live_.erase(it);
    RememberCompleted(id, now);
  }
  live_heap_bytes_ = kept_bytes;
  while (!creation_order_.empty()) {
    auto it = live_.find(creation_order_.front().first);
    if (it != live_.end() && it->second.first_arrival_nanos == creation_order_.front().second) {
      break;
    }
    creation_order_.pop_front();
  }
  // A late span can only be recognised while its trace id is remembered: trace_max_age after
  // completion, which covers exporters' retries and batching delays.
  while (!completed_order_.empty() && completed_order_.front().second <= born_before) {
    completed_.erase(completed_order_.front().first);
    completed_order_.pop_front();
  }
}

size_t SliShardProcessor::TraceHeapBytes(const LiveTrace& trace) {
  size_t bytes = trace.spans.capacity() * sizeof(SpanRecord);
  if (trace.signatures) {
    bytes += sizeof(*trace.signatures) +
             trace.signatures->capacity() * sizeof(std::pair<uint32_t, uint64_t>);
  }
  return bytes;
}

size_t SliShardProcessor::TableBytes() const {
  return live_.capacity() * (sizeof(std::pair<const TraceId, LiveTrace>) + 1) +
         creation_order_.size() * sizeof(creation_order_.front());
}

size_t SliShardProcessor::LiveTraceBytes() const {
  size_t bytes = TableBytes();
  for (const auto& [id, trace] : live_) bytes += TraceHeapBytes(trace);
  return bytes;
}

void SliShardProcessor::Publish(int64_t now) {
  (void)now;
  delta_.live_traces = live_.size();
  delta_.live_trace_bytes = TableBytes() + live_heap_bytes_;  // heap bytes as of the last scan
  store_.Apply(std::move(delta_));
  delta_ = ShardDelta{};
  delta_.shard = options_.shard;
  series_index_.clear();
  service_index_.clear();
  slowest_index_.clear();
  error_index_.clear();
  signature_index_.clear();
}

void SliShardProcessor::OnTick() {
  const int64_t now = UnixNanos(clock_.Now());
  CompleteExpired(now, false);
  Publish(now);
}

void SliShardProcessor::OnShutdown() {
  const int64_t now = UnixNanos(clock_.Now());
  CompleteExpired(now, true);
  Publish(now);
}

}  // namespace traceslo::pipeline
