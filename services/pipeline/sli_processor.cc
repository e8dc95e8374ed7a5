#include "traceslo/pipeline/sli_processor.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstring>
#include <limits>

#include "traceslo/common/int_math.h"

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
constexpr uint32_t kRefHighShift = 30;       // 2 bits: the parent reference's bits 16-17

// Parent references (18 bits): the parent's span index in its trace, kRefMissing | k for the
// trace's missing parent id number k (a side entry), or kRefNone (parent_span_id 0).
constexpr uint32_t kRefMissing = 1u << 17;
constexpr uint32_t kRefNone = (1u << 18) - 1;

// LiveTrace::state.
constexpr uint32_t kStateCountMask = (1u << 17) - 1;
constexpr uint32_t kStateHasMissing = 1u << 30;  // a side entry holds a missing parent id
constexpr uint32_t kStateLive = 1u << 31;

// SideEntry::tag.
constexpr uint32_t kSideSignature = 1u << 31;

// Arena chunks: classes below kSmallClasses carve 2^BlocksPerChunkShift(c) blocks of 2^c spans
// from a chunk (at most 64 blocks, at most 1024 spans); larger classes have one block per chunk.
constexpr size_t kSpanBytes = sizeof(uint64_t) + 16;
constexpr int kSmallClasses = 10;
int BlocksPerChunkShift(int size_class) { return std::min(6, kSmallClasses - size_class); }

// Storage is compacted when more than half of it, and at least this much, is free.
constexpr size_t kCompactBytes = size_t{1} << 20;

// Arrival times (ms after the epoch) are rebased past 2^30 ms (12.4 days).
constexpr int64_t kRebaseMs = int64_t{1} << 30;
constexpr int64_t kNanosPerMs = 1'000'000;

// Eviction at max_live_traces: one scan of the live traces finds the oldest live /
// kEvictionBatch of them, evicted one by one as new traces need room.
constexpr size_t kEvictionBatch = 64;

int64_t UnixNanos(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

uint64_t BucketKey(uint32_t id, int64_t bucket) {
  return uint64_t{id} << 32 | static_cast<uint32_t>(bucket);
}

// Span records are a private type of SliShardProcessor: these take it by deduction.
SpanKind KindOf(const auto& r) { return static_cast<SpanKind>((r.series_flags >> kKindShift) & 7); }
uint32_t SeriesOf(const auto& r) { return r.series_flags & kSeriesMask; }
uint32_t RefOf(const auto& r) { return r.parent_low | (r.series_flags >> kRefHighShift) << 16; }
void SetRef(auto& r, uint32_t ref) {
  r.parent_low = static_cast<uint16_t>(ref);
  r.series_flags = (r.series_flags & ((1u << kRefHighShift) - 1)) | (ref >> 16) << kRefHighShift;
}
uint32_t CountOf(const auto& trace) { return trace.state & kStateCountMask; }
// The size class of a block for `count` spans: capacity 2^class >= count.
int SizeClassOf(uint32_t count) { return std::bit_width(std::max<uint32_t>(count, 1) - 1); }

// A trace id as two words: compared and hashed without a call to memcmp.
std::pair<uint64_t, uint64_t> WordsOf(const TraceId& id) {
  uint64_t a, b;
  std::memcpy(&a, id.data(), 8);
  std::memcpy(&b, id.data() + 8, 8);
  return {a, b};
}

// Live traces in order of first arrival, then of trace id (EvictionCandidate).
bool Older(const auto& a, const auto& b) {
  return a.first_arrival_ms != b.first_arrival_ms ? a.first_arrival_ms < b.first_arrival_ms
                                                  : a.trace_id < b.trace_id;
}

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
  return absl::Hash<std::pair<uint64_t, uint64_t>>()(WordsOf(id));
}

bool SliShardProcessor::TraceIdEq::operator()(const TraceId& a, const TraceId& b) const {
  return WordsOf(a) == WordsOf(b);
}

size_t SliShardProcessor::SlotHash::operator()(uint32_t slot) const {
  return TraceIdHash()(owner->Slot(slot).trace_id);
}

size_t SliShardProcessor::SlotHash::operator()(const TraceId& id) const {
  return TraceIdHash()(id);
}

bool SliShardProcessor::SlotEq::operator()(uint32_t slot, const TraceId& id) const {
  return TraceIdEq()(owner->Slot(slot).trace_id, id);
}

uint32_t SliShardProcessor::SpanArena::Allocate(int size_class) {
  SizeClass& c = classes_[size_class];
  ++c.used;
  const size_t block_bytes = kSpanBytes << size_class;
  if (size_class >= kSmallClasses) {
    auto it = std::find(c.chunks.begin(), c.chunks.end(), nullptr);
    if (it == c.chunks.end()) it = c.chunks.insert(it, nullptr);
    *it = std::make_unique_for_overwrite<std::byte[]>(block_bytes);
    chunk_bytes_ += block_bytes;
    return static_cast<uint32_t>(it - c.chunks.begin());
  }
  if (c.free_head != kNone) {
    const uint32_t block = c.free_head;
    std::memcpy(&c.free_head, Block(size_class, block), sizeof(uint32_t));
    return block;
  }
  const int shift = BlocksPerChunkShift(size_class);
  if ((c.blocks >> shift) == c.chunks.size()) {
    c.chunks.push_back(std::make_unique_for_overwrite<std::byte[]>(block_bytes << shift));
    chunk_bytes_ += block_bytes << shift;
  }
  return c.blocks++;
}

void SliShardProcessor::SpanArena::Free(int size_class, uint32_t block) {
  SizeClass& c = classes_[size_class];
  --c.used;
  if (size_class >= kSmallClasses) {
    c.chunks[block].reset();
    chunk_bytes_ -= kSpanBytes << size_class;
    return;
  }
  std::memcpy(Block(size_class, block), &c.free_head, sizeof(uint32_t));
  c.free_head = block;
}

std::byte* SliShardProcessor::SpanArena::BlockIn(const SizeClass& c, int size_class,
                                                 uint32_t block) {
  if (size_class >= kSmallClasses) return c.chunks[block].get();
  const int shift = BlocksPerChunkShift(size_class);
  return c.chunks[block >> shift].get() +
         (block & ((1u << shift) - 1)) * (kSpanBytes << size_class);
}

bool SliShardProcessor::SpanArena::Sparse(int size_class) const {
  const SizeClass& c = classes_[size_class];
  const uint32_t free = c.blocks - c.used;
  return size_class < kSmallClasses && free > c.used &&
         free * (kSpanBytes << size_class) >= kCompactBytes;
}

SliShardProcessor::SpanArena::SizeClass SliShardProcessor::SpanArena::Take(int size_class) {
  SizeClass taken = std::move(classes_[size_class]);
  classes_[size_class] = SizeClass{};
  chunk_bytes_ -=
      taken.chunks.size() * ((kSpanBytes << size_class) << BlocksPerChunkShift(size_class));
  return taken;
}

size_t SliShardProcessor::SpanArena::Bytes() const {
  size_t bytes = chunk_bytes_;
  for (const SizeClass& c : classes_) bytes += c.chunks.capacity() * sizeof(c.chunks[0]);
  return bytes;
}

void SliShardProcessor::SpanArena::Clear() {
  classes_ = {};
  chunk_bytes_ = 0;
}

SliShardProcessor::SliShardProcessor(const SliOptions& options, const Clock& clock,
                                     SeriesRegistry& registry, DeltaSink& store)
    : options_([&] {
        SliOptions o = options;
        o.max_lateness = std::min<std::chrono::nanoseconds>(o.max_lateness, kMaxLateness);
        o.max_spans_per_trace = std::min(o.max_spans_per_trace, kMaxSpansPerTrace);
        return o;
      }()),
      clock_(clock),
      registry_(registry),
      store_(store),
      epoch_nanos_(UnixNanos(clock.Now())),
      index_(0, SlotHash{this}, SlotEq{this}) {
  static_assert(sizeof(SpanRecord) == 16 && sizeof(LiveTrace) == 44 && sizeof(SideEntry) == 16);
  static_assert(kSpanBytes == sizeof(uint64_t) + sizeof(SpanRecord));
  static_assert(SpanArena::kClasses > std::bit_width(kMaxSpansPerTrace - 1));
  static_assert(kMaxSpansPerTrace < kRefMissing && kMaxSpansPerTrace <= kStateCountMask);
  // Bucket differences in a trace: its spans' buckets are in [arrival - max_lateness, arrival],
  // and a span more than 32767 buckets after the trace's first arrival retires the trace.
  static_assert(kMaxLateness / std::chrono::seconds(kBucketSeconds) + 2 <
                -int64_t{std::numeric_limits<int16_t>::min()});
  delta_.shard = options_.shard;
}

int64_t SliShardProcessor::BaseStartNanos(const LiveTrace& trace) {
  return static_cast<int64_t>(uint64_t{trace.base_start_high} << 32 | trace.base_start_low);
}

int64_t SliShardProcessor::ArrivalNanos(int32_t arrival_ms) const {
  return epoch_nanos_ + int64_t{arrival_ms} * kNanosPerMs;
}

// The trace's spans store their bucket relative to the bucket of its first arrival.
int64_t SliShardProcessor::BaseBucket(const LiveTrace& trace) const {
  return BucketOfUnixNanos(ArrivalNanos(trace.first_arrival_ms));
}

int32_t SliShardProcessor::ArrivalMs(int64_t now) {
  // Rounded up: a trace is never taken as idle (or old) before it is.
  int64_t ms = -FloorDiv(epoch_nanos_ - now, kNanosPerMs);
  if (ms > kRebaseMs) {
    Rebase(now);
    ms = -FloorDiv(epoch_nanos_ - now, kNanosPerMs);
  }
  return static_cast<int32_t>(std::max<int64_t>(ms, std::numeric_limits<int32_t>::min()));
}

void SliShardProcessor::Rebase(int64_t now) {
  const int64_t shift_ms = FloorDiv(now - epoch_nanos_, kNanosPerMs);
  constexpr int64_t kMin = std::numeric_limits<int32_t>::min();
  // A trace whose first arrival would fall below the new range (24 days old) completes now.
  std::vector<uint32_t> too_old;
  for (uint32_t slot = 0; slot < slab_used_; ++slot) {
    const LiveTrace& trace = Slot(slot);
    if ((trace.state & kStateLive) != 0 && trace.first_arrival_ms - shift_ms < kMin) {
      too_old.push_back(slot);
    }
  }
  for (uint32_t slot : too_old) Retire(slot, now);
  for (uint32_t slot = 0; slot < slab_used_; ++slot) {
    LiveTrace& trace = Slot(slot);
    if ((trace.state & kStateLive) == 0) continue;
    trace.first_arrival_ms = static_cast<int32_t>(trace.first_arrival_ms - shift_ms);
    trace.last_arrival_ms = static_cast<int32_t>(std::max(trace.last_arrival_ms - shift_ms, kMin));
  }
  epoch_nanos_ += shift_ms * kNanosPerMs;
  eviction_queue_.clear();
  eviction_next_ = 0;
}

uint64_t* SliShardProcessor::SpanIds(const LiveTrace& trace) const {
  return reinterpret_cast<uint64_t*>(arena_.Block(SizeClassOf(CountOf(trace)), trace.block));
}

SliShardProcessor::SpanRecord* SliShardProcessor::Records(const LiveTrace& trace) const {
  const int size_class = SizeClassOf(CountOf(trace));
  return reinterpret_cast<SpanRecord*>(arena_.Block(size_class, trace.block) +
                                       (sizeof(uint64_t) << size_class));
}

uint32_t SliShardProcessor::AllocateSide(uint64_t value, uint32_t tag) {
  uint32_t entry = side_free_;
  if (entry != kNone) {
    side_free_ = Side(entry).next;
  } else {
    entry = side_used_++;
    if ((entry >> kSideChunkShift) == side_.size()) {
      side_.push_back(std::make_unique_for_overwrite<SideEntry[]>(kSideChunk));
    }
  }
  Side(entry).value = value;
  Side(entry).tag = tag;
  return entry;
}

uint64_t SliShardProcessor::SignatureOfRecord(const LiveTrace& trace, uint32_t index) const {
  if ((Records(trace)[index].series_flags & kFlagError) == 0) return 0;
  for (uint32_t e = trace.side_head; e != kNone; e = Side(e).next) {
    if (Side(e).tag == (kSideSignature | index)) return Side(e).value;
  }
  return 0;
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

uint32_t SliShardProcessor::FindOrCreate(const TraceId& trace_id, int32_t now_ms, int64_t now) {
  if (auto it = index_.find(trace_id); it != index_.end()) return *it;
  // At the cap, the oldest live trace completes early (counted) to make room.
  while (index_.size() >= options_.max_live_traces && !index_.empty()) EvictOldest(now);
  uint32_t slot = slab_free_;
  if (slot != kNone) {
    slab_free_ = Slot(slot).block;
  } else {
    slot = slab_used_++;
    if ((slot >> kSlabChunkShift) == slab_.size()) {
      slab_.push_back(std::make_unique_for_overwrite<LiveTrace[]>(kSlabChunk));
    }
  }
  LiveTrace& trace = Slot(slot);
  trace = LiveTrace{.trace_id = trace_id,
                    .base_start_low = 0,
                    .base_start_high = 0,
                    .block = kNone,
                    .first_arrival_ms = now_ms,
                    .last_arrival_ms = now_ms,
                    .side_head = kNone,
                    .state = kStateLive};
  index_.insert(slot);
  return slot;
}

void SliShardProcessor::EvictOldest(int64_t now) {
  auto older = [](const EvictionCandidate& a, const EvictionCandidate& b) { return Older(a, b); };
  for (;;) {
    if (eviction_next_ == eviction_queue_.size()) {
      // The oldest live / kEvictionBatch traces, oldest first; later traces are younger.
      eviction_queue_.clear();
      eviction_next_ = 0;
      const size_t keep = std::max<size_t>(1, index_.size() / kEvictionBatch);
      for (uint32_t slot = 0; slot < slab_used_; ++slot) {
        const LiveTrace& trace = Slot(slot);
        if ((trace.state & kStateLive) == 0) continue;
        const EvictionCandidate candidate{trace.first_arrival_ms, slot, trace.trace_id};
        if (eviction_queue_.size() < keep) {
          eviction_queue_.push_back(candidate);
          std::push_heap(eviction_queue_.begin(), eviction_queue_.end(), older);
        } else if (older(candidate, eviction_queue_.front())) {
          std::pop_heap(eviction_queue_.begin(), eviction_queue_.end(), older);
          eviction_queue_.back() = candidate;
          std::push_heap(eviction_queue_.begin(), eviction_queue_.end(), older);
        }
      }
      std::sort_heap(eviction_queue_.begin(), eviction_queue_.end(), older);
      if (eviction_queue_.empty()) return;
    }
    const EvictionCandidate& candidate = eviction_queue_[eviction_next_++];
    const LiveTrace& trace = Slot(candidate.slot);
    if ((trace.state & kStateLive) == 0 || trace.first_arrival_ms != candidate.first_arrival_ms ||
        !TraceIdEq()(trace.trace_id, candidate.trace_id)) {
      continue;  // completed since the scan
    }
    ++delta_.evicted_traces;
    Retire(candidate.slot, now);
    return;
  }
}

void SliShardProcessor::ResolveMissingParent(LiveTrace& trace, uint64_t span_id,
                                             uint32_t parent_index, uint32_t parent_service) {
  uint32_t k = kNone;
  bool more_missing = false;
  for (uint32_t* link = &trace.side_head; *link != kNone;) {
    const uint32_t e = *link;
    SideEntry& entry = Side(e);
    if ((entry.tag & kSideSignature) == 0) {
      if (k == kNone && entry.value == span_id) {
        k = entry.tag;
        *link = entry.next;
        entry.next = side_free_;
        side_free_ = e;
        continue;
      }
      more_missing = true;
    }
    link = &entry.next;
  }
  if (!more_missing) trace.state &= ~kStateHasMissing;
  if (k == kNone) return;
  SpanRecord* records = Records(trace);
  for (uint32_t i = 0; i < parent_index; ++i) {
    SpanRecord& child = records[i];
    if (RefOf(child) != (kRefMissing | k)) continue;
    SetRef(child, parent_index);
    if ((child.series_flags & kFlagPending) == 0) continue;
    child.series_flags &= ~kFlagPending;
    const uint32_t series = SeriesOf(child);
    if (ServiceOfSeries(series) != parent_service) {
      child.series_flags |= kFlagEntry;
      CountRequest(series, BaseBucket(trace) + child.bucket_delta, DecodeDuration(child.duration),
                   (child.series_flags & kFlagError) != 0, SignatureOfRecord(trace, i));
    }
  }
}

void SliShardProcessor::Process(const ShardBatch& batch) {
  const int64_t now = UnixNanos(clock_.Now());
  const int64_t earliest = now - options_.max_lateness.count();
  const int32_t now_ms = options_.assemble_traces ? ArrivalMs(now) : 0;
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
    if (!seeded_.empty()) {
      if (auto it = seeded_.find(span.trace_id); it != seeded_.end()) {
        Seeded& seeded = it->second;
        if (seeded.completed_nanos < 0) {
          // Its trace began in spans not processed here and is not complete yet.
          seeded.last_arrival_nanos = ArrivalNanos(now_ms);
        } else {
          ++delta_.late_spans;
          ++seeded_late_spans_;
        }
        if (entry) CountRequest(ids.series, bucket, duration, error, signature);
        continue;
      }
    }
    const uint32_t slot = FindOrCreate(span.trace_id, now_ms, now);
    LiveTrace& trace = Slot(slot);
    const int64_t bucket_delta = bucket - BaseBucket(trace);
    if (bucket_delta > std::numeric_limits<int16_t>::max() ||
        bucket_delta < std::numeric_limits<int16_t>::min()) {
      // Only after 3.8 days without a tick (or a clock jump): the trace has outlived
      // trace_max_age long ago. It completes now, and this span is late.
      Retire(slot, now);
      ++delta_.late_spans;
      if (entry) CountRequest(ids.series, bucket, duration, error, signature);
      continue;
    }
    trace.last_arrival_ms = now_ms;
    const uint32_t n = CountOf(trace);
    bool pending = false;
    uint32_t parent_ref = kRefNone;
    if (span.parent_span_id != 0) {
      const uint64_t* span_ids = n != 0 ? SpanIds(trace) : nullptr;
      const uint64_t* parent = std::find(span_ids, span_ids + n, span.parent_span_id);
      if (parent != span_ids + n) {
        parent_ref = static_cast<uint32_t>(parent - span_ids);
        // A span whose parent belongs to another service is an entry span too.
        if (!entry) entry = ServiceOfSeries(SeriesOf(Records(trace)[parent_ref])) != ids.service;
      } else {
        pending = !entry;
      }
    }
    if (n >= options_.max_spans_per_trace) {
      // Not kept for assembly; its own SLIs still count (an unknown parent: an entry).
      ++delta_.truncated_spans;
      if (entry || pending) CountRequest(ids.series, bucket, duration, error, signature);
      continue;
    }
    // Room for span n: the block of the next size class when n fills this one.
    const int size_class = SizeClassOf(n + 1);
    if (n == 0) {
      trace.block = arena_.Allocate(size_class);
      const auto base = static_cast<uint64_t>(span.start_unix_nano);
      trace.base_start_low = static_cast<uint32_t>(base);
      trace.base_start_high = static_cast<uint32_t>(base >> 32);
    } else if (size_class != SizeClassOf(n)) {
      const uint32_t block = arena_.Allocate(size_class);
      std::byte* to = arena_.Block(size_class, block);
      std::memcpy(to, SpanIds(trace), n * sizeof(uint64_t));
      std::memcpy(to + (sizeof(uint64_t) << size_class), Records(trace), n * sizeof(SpanRecord));
      arena_.Free(SizeClassOf(n), trace.block);
      trace.block = block;
    }
    // The count names the block's size class: n + 1 from here, span n written below.
    trace.state = (trace.state & ~kStateCountMask) | (n + 1);
    if ((trace.state & kStateHasMissing) != 0) {
      ResolveMissingParent(trace, span.span_id, n, ids.service);
    }
    if (parent_ref == kRefNone && span.parent_span_id != 0) {
      if (span.parent_span_id == span.span_id) {
        // Its own parent: decided here, as at completion (the same service: not an entry).
        parent_ref = n;
        pending = false;
      } else {
        // Spans waiting for the same parent share its side entry (number k).
        uint32_t k = kNone;
        uint32_t next_k = 0;
        for (uint32_t e = trace.side_head; e != kNone; e = Side(e).next) {
          const SideEntry& s = Side(e);
          if ((s.tag & kSideSignature) != 0) continue;
          if (s.value == span.parent_span_id) k = s.tag;
          next_k = std::max(next_k, s.tag + 1);
        }
        if (k == kNone) {
          k = next_k;
          const uint32_t e = AllocateSide(span.parent_span_id, k);
          Side(e).next = trace.side_head;
          trace.side_head = e;
          trace.state |= kStateHasMissing;
        }
        parent_ref = kRefMissing | k;
      }
    }
    const int64_t offset_us =
        (static_cast<int64_t>(span.start_unix_nano) - BaseStartNanos(trace)) / 1000;
    SpanRecord record{
        .parent_low = 0,
        .bucket_delta = static_cast<int16_t>(bucket_delta),
        .series_flags = ids.series | (error ? kFlagError : 0) | (entry ? kFlagEntry : 0) |
                        (pending ? kFlagPending : 0) |
                        static_cast<uint32_t>(span.kind) << kKindShift,
        .duration = EncodeDuration(duration),
        .start_offset_us = static_cast<int32_t>(std::clamp<int64_t>(
            offset_us, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max())),
    };
    SetRef(record, parent_ref);
    SpanIds(trace)[n] = span.span_id;
    Records(trace)[n] = record;
    if (error) {
      const uint32_t e = AllocateSide(signature, kSideSignature | n);
      Side(e).next = trace.side_head;
      trace.side_head = e;
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

void SliShardProcessor::Retire(uint32_t slot, int64_t now) {
  const LiveTrace& trace = Slot(slot);
  const TraceId trace_id = trace.trace_id;
  Complete(trace);
  ReleaseStorage(slot);
  RememberCompleted(trace_id, now);
}

void SliShardProcessor::ReleaseStorage(uint32_t slot) {
  LiveTrace& trace = Slot(slot);
  for (uint32_t e = trace.side_head; e != kNone;) {
    const uint32_t next = Side(e).next;
    Side(e).next = side_free_;
    side_free_ = e;
    e = next;
  }
  if (trace.block != kNone) arena_.Free(SizeClassOf(CountOf(trace)), trace.block);
  index_.erase(slot);  // hashes the slot's trace id: before the slot is reused
  trace.state = 0;
  trace.block = slab_free_;
  slab_free_ = slot;
}

void SliShardProcessor::Complete(const LiveTrace& trace) {
  const size_t n = CountOf(trace);
  if (n == 0) return;
  SpanRecord* spans = Records(trace);
  const uint64_t* span_ids = SpanIds(trace);
  const int64_t base_bucket = BaseBucket(trace);
  const int64_t base_start_nanos = BaseStartNanos(trace);

  // The side entries: missing parent ids by number, signatures by span (in arrival order).
  missing_ids_.clear();
  signatures_.clear();
  for (uint32_t e = trace.side_head; e != kNone; e = Side(e).next) {
    const SideEntry& s = Side(e);
    if ((s.tag & kSideSignature) != 0) {
      signatures_.emplace_back(s.tag & ~kSideSignature, s.value);
    } else {
      if (missing_ids_.size() <= s.tag) missing_ids_.resize(s.tag + 1, 0);
      missing_ids_[s.tag] = s.value;
    }
  }
  std::reverse(signatures_.begin(), signatures_.end());
  auto signature_of = [&](size_t index) -> uint64_t {
    if ((spans[index].series_flags & kFlagError) == 0) return 0;
    for (auto [i, signature] : signatures_) {
      if (i == index) return signature;
    }
    return 0;
  };
  auto parent_span_id = [&](size_t index) -> uint64_t {
    const uint32_t ref = RefOf(spans[index]);
    if (ref == kRefNone) return 0;
    if ((ref & kRefMissing) != 0) return missing_ids_[ref & ~kRefMissing];
    return span_ids[ref];
  };

  // Parent links inside the trace.
  parent_index_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t ref = RefOf(spans[i]);
    parent_index_[i] = ref < kRefMissing ? static_cast<int32_t>(ref) : -1;
  }

  int32_t root = -1;  // the root span, or else the earliest span whose parent is missing
  int32_t top = -1;
  bool orphan_seen = false;
  int32_t trace_bucket_delta = std::numeric_limits<int16_t>::min();
  int64_t min_offset = std::numeric_limits<int64_t>::max();
  int64_t max_end_offset = std::numeric_limits<int64_t>::min();
  for (size_t i = 0; i < n; ++i) {
    SpanRecord& r = spans[i];
    trace_bucket_delta = std::max<int32_t>(trace_bucket_delta, r.bucket_delta);
    min_offset = std::min<int64_t>(min_offset, int64_t{r.start_offset_us} * 1000);
    max_end_offset =
        std::max<int64_t>(max_end_offset, int64_t{r.start_offset_us} * 1000 +
                                              static_cast<int64_t>(DecodeDuration(r.duration)));
    const uint32_t ref = RefOf(r);
    if (ref == kRefNone) {
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
        CountRequest(SeriesOf(r), base_bucket + r.bucket_delta, DecodeDuration(r.duration),
                     (r.series_flags & kFlagError) != 0, signature_of(i));
      }
    }
  }
  const int64_t trace_bucket = base_bucket + trace_bucket_delta;
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
  for (size_t i = 0; i < n; ++i) touched_.push_back(ServiceOfSeries(SeriesOf(spans[i])));
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
      if (RefOf(spans[i]) != kRefNone && parent_index_[i] < 0) {
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
    t->trace_id = trace.trace_id;
    t->start_unix_nano = base_start_nanos + min_offset;
    t->duration_nanos = static_cast<uint64_t>(std::max<int64_t>(0, max_end_offset - min_offset));
    t->spans.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const SpanRecord& r = spans[i];
      const uint64_t parent = parent_span_id(i);
      t->spans.push_back(ExemplarSpan{
          .span_id = span_ids[i],
          .parent_span_id = parent,
          .start_offset_nanos = int64_t{r.start_offset_us} * 1000 - min_offset,
          .duration_nanos = DecodeDuration(r.duration),
          .signature = 0,
          .series = SeriesOf(r),
          .kind = KindOf(r),
          .error = (r.series_flags & kFlagError) != 0,
          .orphan = parent != 0 && parent_index_[i] < 0,
      });
    }
    for (auto [index, signature] : signatures_) t->spans[index].signature = signature;
    exemplar = std::move(t);
    return exemplar;
  };
  for (size_t i = 0; i < n; ++i) {
    const SpanRecord& r = spans[i];
    if ((r.series_flags & kFlagEntry) == 0) continue;
    const auto duration = DecodeDuration(r.duration);
    const int64_t bucket = base_bucket + r.bucket_delta;
    const int64_t end =
        base_start_nanos + int64_t{r.start_offset_us} * 1000 + static_cast<int64_t>(duration);
    auto [it, inserted] = slowest_index_.try_emplace(
        BucketKey(SeriesOf(r), bucket), static_cast<uint32_t>(delta_.exemplars.size()));
    if (inserted) {
      delta_.exemplars.push_back(ExemplarDelta{.series = SeriesOf(r),
                                               .bucket = bucket,
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
  for (auto [index, signature] : signatures_) {
    const SpanRecord& r = spans[index];
    const int64_t bucket = base_bucket + r.bucket_delta;
    const int64_t end = base_start_nanos + int64_t{r.start_offset_us} * 1000 +
                        static_cast<int64_t>(DecodeDuration(r.duration));
    if (error_index_.size() >= options_.max_signatures &&
        !error_index_.contains({BucketKey(SeriesOf(r), bucket), signature})) {
      continue;  // bounded per tick, like the signatures themselves
    }
    auto [it, inserted] = error_index_.try_emplace(
        std::pair<uint64_t, uint64_t>{BucketKey(SeriesOf(r), bucket), signature},
        static_cast<uint32_t>(delta_.exemplars.size()));
    if (inserted) {
      delta_.exemplars.push_back(ExemplarDelta{.series = SeriesOf(r),
                                               .bucket = bucket,
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
  // Oldest first (then by id), so the completed-id memory forgets in a stable order.
  std::vector<EvictionCandidate> done;
  for (uint32_t slot = 0; slot < slab_used_; ++slot) {
    const LiveTrace& trace = Slot(slot);
    if ((trace.state & kStateLive) == 0) continue;
    if (all || ArrivalNanos(trace.last_arrival_ms) <= idle_before ||
        ArrivalNanos(trace.first_arrival_ms) <= born_before) {
      done.push_back({trace.first_arrival_ms, slot, trace.trace_id});
    }
  }
  std::sort(done.begin(), done.end(),
            [](const EvictionCandidate& a, const EvictionCandidate& b) { return Older(a, b); });
  for (const EvictionCandidate& d : done) Retire(d.slot, now);
  if (index_.empty()) {
    // Nothing live: the storage goes back to what a new processor holds.
    slab_.clear();
    slab_.shrink_to_fit();
    slab_used_ = 0;
    slab_free_ = kNone;
    index_ = decltype(index_)(0, SlotHash{this}, SlotEq{this});
    arena_.Clear();
    side_.clear();
    side_.shrink_to_fit();
    side_used_ = 0;
    side_free_ = kNone;
    eviction_queue_ = {};
    eviction_next_ = 0;
  } else {
    CompactSparseStorage();
  }
  // A late span can only be recognised while its trace id is remembered: trace_max_age after
  // completion, which covers exporters' retries and batching delays.
  while (!completed_order_.empty() && completed_order_.front().second <= born_before) {
    completed_.erase(completed_order_.front().first);
    completed_order_.pop_front();
  }
  if (!seeded_.empty()) {
    // The same rules for the seeded traces: they complete, then are forgotten.
    for (auto it = seeded_.begin(); it != seeded_.end();) {
      Seeded& seeded = it->second;
      if (seeded.completed_nanos < 0) {
        if (all || seeded.last_arrival_nanos <= idle_before ||
            seeded.first_arrival_nanos <= born_before) {
          seeded.completed_nanos = now;
        }
        ++it;
      } else if (seeded.completed_nanos <= born_before) {
        seeded_.erase(it++);
      } else {
        ++it;
      }
    }
    if (seeded_.empty()) seeded_ = decltype(seeded_)();  // its storage too
  }
}

size_t SliShardProcessor::Seed(std::vector<SeededTrace> traces) {
  const size_t cap = size_t{kMaxSeededPerLive} * options_.max_live_traces;
  size_t dropped = 0;
  for (const SeededTrace& t : traces) {
    if (seeded_.size() >= cap && !seeded_.contains(t.trace_id)) {
      ++dropped;
      continue;
    }
    seeded_[t.trace_id] = Seeded{.first_arrival_nanos = t.first_arrival_nanos,
                                 .last_arrival_nanos = t.last_arrival_nanos,
                                 .completed_nanos = t.completed_nanos.value_or(-1)};
  }
  return dropped;
}

void SliShardProcessor::CompactSparseStorage() {
  const size_t live = index_.size();
  if (slab_used_ - live > live && (slab_used_ - live) * sizeof(LiveTrace) >= kCompactBytes) {
    // The live entries move to the front of a new slab; the index is rebuilt for them.
    std::vector<std::unique_ptr<LiveTrace[]>> old = std::move(slab_);
    const uint32_t old_used = slab_used_;
    slab_.clear();
    slab_used_ = 0;
    slab_free_ = kNone;
    index_ = decltype(index_)(0, SlotHash{this}, SlotEq{this});
    index_.reserve(live);
    for (uint32_t from = 0; from < old_used; ++from) {
      const LiveTrace& trace = old[from >> kSlabChunkShift][from & (kSlabChunk - 1)];
      if ((trace.state & kStateLive) == 0) continue;
      const uint32_t slot = slab_used_++;
      if ((slot >> kSlabChunkShift) == slab_.size()) {
        slab_.push_back(std::make_unique_for_overwrite<LiveTrace[]>(kSlabChunk));
      }
      Slot(slot) = trace;
      index_.insert(slot);
    }
    eviction_queue_ = {};
    eviction_next_ = 0;
  }
  for (int size_class = 0; size_class < kSmallClasses; ++size_class) {
    if (!arena_.Sparse(size_class)) continue;
    // The class's live blocks move to new chunks, packed; the old chunks are released.
    const SpanArena::SizeClass old = arena_.Take(size_class);
    const size_t block_bytes = kSpanBytes << size_class;
    for (uint32_t slot = 0; slot < slab_used_; ++slot) {
      LiveTrace& trace = Slot(slot);
      if ((trace.state & kStateLive) == 0 || trace.block == kNone ||
          SizeClassOf(CountOf(trace)) != size_class) {
        continue;
      }
      const uint32_t block = arena_.Allocate(size_class);
      std::memcpy(arena_.Block(size_class, block), SpanArena::BlockIn(old, size_class, trace.block),
                  block_bytes);
      trace.block = block;
    }
  }
}

size_t SliShardProcessor::LiveTraceBytes() const {
  // The index: a control byte and a 4-byte slot per capacity, and a group's cloned bytes.
  const size_t index_bytes =
      index_.capacity() == 0 ? 0 : index_.capacity() * (sizeof(uint32_t) + 1) + 16;
  return arena_.Bytes() + slab_.size() * kSlabChunk * sizeof(LiveTrace) +
         slab_.capacity() * sizeof(slab_[0]) + index_bytes +
         side_.size() * kSideChunk * sizeof(SideEntry) + side_.capacity() * sizeof(side_[0]) +
         eviction_queue_.capacity() * sizeof(EvictionCandidate);
}

void SliShardProcessor::Publish(int64_t now) {
  (void)now;
  delta_.live_traces = index_.size();
  delta_.live_trace_bytes = LiveTraceBytes();
  store_.Apply(std::move(delta_));
  delta_ = ShardDelta{};
  delta_.shard = options_.shard;
  series_index_.clear();
  service_index_.clear();
  slowest_index_.clear();
  error_index_.clear();
  signature_index_.clear();
}

std::optional<int64_t> SliShardProcessor::OldestLiveArrivalNanos() const {
  std::optional<int32_t> oldest;
  for (uint32_t slot = 0; slot < slab_used_; ++slot) {
    const LiveTrace& trace = Slot(slot);
    if ((trace.state & kStateLive) == 0) continue;
    if (!oldest || trace.first_arrival_ms < *oldest) oldest = trace.first_arrival_ms;
  }
  if (!oldest) return std::nullopt;
  return ArrivalNanos(*oldest);
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
