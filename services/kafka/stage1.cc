#include "traceslo/kafka/stage1.h"

#include <algorithm>
#include <cassert>
#include <iterator>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "traceslo/common/int_math.h"

namespace traceslo::kafka {
namespace {

constexpr int64_t kNanosPerMs = 1'000'000;
// The decode buffers kept from record to record, at most (a larger record's are freed after it).
constexpr size_t kKeptArenaBytes = size_t{1} << 20;
constexpr size_t kKeptSpans = 4096;

// A rare large record does not keep its memory.
void FreeLargeBuffers(SpanBatch& batch) {
  if (batch.strings.capacity() > kKeptArenaBytes) batch.strings = std::string();
  if (batch.spans.capacity() > kKeptSpans) batch.spans = std::vector<Span>();
}

std::chrono::system_clock::time_point AtMs(int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

// `value` rounded up to a multiple of `step` (> 0).
int64_t CeilTo(int64_t value, int64_t step) { return -FloorDiv(-value, step) * step; }

// Epochs of stream time before the epoch of the record at L in which the first record of a trace
// the engine could still know at L may lie: a trace is remembered until the first tick
// trace_max_age after its completion, and completes by the first tick trace_max_age after its
// first span.
int64_t SeedHorizonEpochs(const Stage1Options& options) {
  const int64_t length_ms = options.epoch_length.count();
  const int64_t age_ms = CeilTo(options.sli.trace_max_age.count(), kNanosPerMs) / kNanosPerMs;
  return -FloorDiv(-(2 * (age_ms + length_ms)), length_ms);
}

}  // namespace

Stage1Counters& Stage1Counters::operator+=(const Stage1Counters& other) {
  records += other.records;
  bad_records += other.bad_records;
  spans += other.spans;
  rejected_spans += other.rejected_spans;
  published_epochs += other.published_epochs;
  suppressed_epochs += other.suppressed_epochs;
  clamped_timestamps += other.clamped_timestamps;
  seed_records += other.seed_records;
  late_spans_after_replay += other.late_spans_after_replay;
  seed_overflow += other.seed_overflow;
  return *this;
}

Stage1Partition::Stage1Partition(Stage1Options options, pipeline::SeriesRegistry& registry,
                                 EpochPublisher& publisher, CommitPoint resume)
    : options_(std::move(options)),
      registry_(registry),
      publisher_(publisher),
      resume_(resume),
      clock_(AtMs(0)),
      decoder_(options_.format, options_.max_spans_per_request),
      strings_(std::make_shared<std::string>()),
      next_offset_(resume.offset),
      last_acked_(resume.last_epoch),
      last_sealed_(resume.last_epoch),
      seed_horizon_epochs_(SeedHorizonEpochs(options_)),
      resume_seed_(resume.seed_offset >= 0 && resume.seed_offset < resume.offset
                       ? resume.seed_offset
                       : resume.offset) {
  shard_batch_.strings = strings_;
}

int64_t Stage1Partition::EpochOf(int64_t stream_ms) const {
  return FloorDiv(stream_ms, options_.epoch_length.count());
}

void Stage1Partition::AdvanceTo(int64_t stream_time_ms) {
  if (!started_) {
    started_ = true;
    // After a resume, every epoch past E is sealed again, empty ones included (the first record
    // read may lie epochs after them): stream time starts at E + 1's start at the latest.
    stream_ms_ = stream_time_ms;
    if (resume_.last_epoch >= 0) {
      stream_ms_ = std::min(stream_ms_, (resume_.last_epoch + 1) * options_.epoch_length.count());
    }
    clock_.AdvanceTo(AtMs(stream_ms_));
    processor_ =
        std::make_unique<pipeline::SliShardProcessor>(options_.sli, clock_, registry_, capture_);
    epoch_ = EpochOf(stream_ms_);
    if (seeding_) HandOverSeeds(stream_ms_);
  }
  if (stream_time_ms <= stream_ms_) return;
  SealThrough(stream_time_ms);
  stream_ms_ = stream_time_ms;
  clock_.AdvanceTo(AtMs(stream_ms_));
}

void Stage1Partition::SealThrough(int64_t stream_ms) {
  const int64_t length = options_.epoch_length.count();
  while ((epoch_ + 1) * length <= stream_ms) {
    const int64_t epoch = epoch_;
    // Traces live now may complete at this tick: a replay must start at their first record.
    if (const std::optional<int64_t> oldest = processor_->OldestLiveArrivalNanos()) {
      const int64_t at = OffsetAtStreamTime(FloorDiv(*oldest, kNanosPerMs));
      auto [it, inserted] = needs_.try_emplace(epoch, at);
      if (!inserted) it->second = std::min(it->second, at);
    }
    clock_.AdvanceTo(AtMs((epoch + 1) * length));
    processor_->OnTick();
    pipeline::ShardDelta delta = capture_.Take();
    ++epoch_;
    last_sealed_ = epoch;
    if (epoch <= resume_.last_epoch) {
      ++counters_.suppressed_epochs;
      needs_.erase(epoch);
      continue;
    }
    DeltaBatchHeader header{.config_hash = options_.config_hash,
                            .src_topic = options_.topic,
                            .src_partition = options_.partition,
                            .epoch = epoch,
                            .stream_time_ms = (epoch + 1) * length,
                            .dst_partition = 0};
    sealed_unacked_.insert(epoch);
    ++counters_.published_epochs;
    publisher_.Publish(epoch,
                       EncodeDeltaBatches(header, delta, registry_, options_.dst_partitions));
  }
}

void Stage1Partition::Process(int64_t offset, int64_t timestamp_ms, std::string_view value) {
  if (offset < resume_.offset) {
    // Seed mode; never after the first record at or after L (offsets increase).
    if (!started_) ProcessSeed(offset, timestamp_ms, value);
    return;
  }
  // Where stream time is (or starts, see AdvanceTo) before this record.
  const int64_t base = started_ ? stream_ms_
                       : resume_.last_epoch >= 0
                           ? (resume_.last_epoch + 1) * options_.epoch_length.count()
                           : timestamp_ms;
  if (timestamp_ms > base && timestamp_ms - base > options_.max_stream_jump.count()) {
    ++counters_.clamped_timestamps;
    timestamp_ms = base + options_.max_stream_jump.count();
  }
  AdvanceTo(timestamp_ms);
  if (stream_offsets_.empty() || stream_offsets_.back().first < stream_ms_) {
    stream_offsets_.emplace_back(stream_ms_, offset);
  }
  NoteEpochOffset(stream_ms_, offset);
  // The open epoch needs this record.
  needs_.try_emplace(epoch_, offset);
  next_offset_ = offset + 1;
  ++counters_.records;

  batch_.Clear();
  ingest::RecordSpans spans;
  if (!decoder_.Decode(value, batch_, spans).ok()) {
    ++counters_.bad_records;
    return;
  }
  counters_.spans += spans.accepted;
  counters_.rejected_spans += spans.rejected;
  if (batch_.spans.empty()) return;
  // The processor reads the batch during the call only: the arena and the spans go back to
  // batch_ afterwards, so the next record decodes into their capacity (no allocations).
  strings_->swap(batch_.strings);
  shard_batch_.spans.swap(batch_.spans);
  processor_->Process(shard_batch_);
  assert(strings_.use_count() == 2);  // nobody else holds the arena that is written again
  strings_->swap(batch_.strings);
  shard_batch_.spans.swap(batch_.spans);
  FreeLargeBuffers(batch_);
  counters_.late_spans_after_replay = processor_->seeded_late_spans();
}

void Stage1Partition::ProcessSeed(int64_t offset, int64_t timestamp_ms, std::string_view value) {
  ++counters_.seed_records;
  if (!seeding_) {
    seeding_ = true;
    seed_ms_ = timestamp_ms;
  }
  // Clamped as stream time is (not counted: nothing is, in seed mode).
  timestamp_ms = std::min(timestamp_ms, seed_ms_ + options_.max_stream_jump.count());
  if (timestamp_ms > seed_ms_) {
    const bool new_epoch = EpochOf(timestamp_ms) != EpochOf(seed_ms_);
    seed_ms_ = timestamp_ms;
    if (new_epoch) {
      // What is forgotten by now no later span can find: dropped, so the memory holds what the
      // engine would (live and recently completed traces).
      const int64_t at_ns = seed_ms_ * kNanosPerMs;
      for (auto it = seeds_.begin(); it != seeds_.end();) {
        if (SeedForgotten(it->second, at_ns)) {
          seeds_.erase(it++);
        } else {
          ++it;
        }
      }
    }
  }
  NoteEpochOffset(seed_ms_, offset);
  next_offset_ = offset + 1;

  batch_.Clear();
  ingest::RecordSpans spans;
  if (!decoder_.Decode(value, batch_, spans).ok()) {
    return;
  }
  const int64_t at_ns = seed_ms_ * kNanosPerMs;
  const size_t cap =
      size_t{pipeline::SliShardProcessor::kMaxSeededPerLive} * options_.sli.max_live_traces;
  for (const Span& span : batch_.spans) {
    auto it = seeds_.find(span.trace_id);
    if (it == seeds_.end()) {
      if (seeds_.size() >= cap) {
        ++counters_.seed_overflow;
        continue;
      }
      seeds_.emplace(span.trace_id, SeedTrace{at_ns, at_ns, -1});
      continue;
    }
    SeedTrace& trace = it->second;
    if (SeedForgotten(trace, at_ns)) {
      trace = SeedTrace{at_ns, at_ns, -1};  // a new trace under the same id
    } else if (trace.completed_ns < 0) {
      trace.last_ns = at_ns;
    }  // else a late span: the memory stays as it is
  }
  batch_.Clear();
  FreeLargeBuffers(batch_);
}

bool Stage1Partition::SeedForgotten(SeedTrace& trace, int64_t at_ns) const {
  const int64_t tick = options_.epoch_length.count() * kNanosPerMs;
  const int64_t idle = options_.sli.trace_idle_timeout.count();
  const int64_t age = options_.sli.trace_max_age.count();
  if (trace.completed_ns < 0) {
    // The first tick after its last span at which it was idle or old (SliShardProcessor's
    // rules).
    const int64_t due = std::min(trace.last_ns + idle, trace.first_ns + age);
    const int64_t at = std::max(CeilTo(due, tick), FloorDiv(trace.last_ns, tick) * tick + tick);
    if (at <= at_ns) trace.completed_ns = at;
  }
  if (trace.completed_ns < 0) return false;
  // The first tick after its completion that is trace_max_age past it.
  const int64_t forget =
      std::max(CeilTo(trace.completed_ns + age, tick), trace.completed_ns + tick);
  return forget <= at_ns;
}

void Stage1Partition::HandOverSeeds(int64_t at_ms) {
  const int64_t at_ns = at_ms * kNanosPerMs;
  std::vector<pipeline::SeededTrace> traces;
  traces.reserve(seeds_.size());
  for (auto& [trace_id, trace] : seeds_) {
    if (SeedForgotten(trace, at_ns)) continue;
    traces.push_back({.trace_id = trace_id,
                      .first_arrival_nanos = trace.first_ns,
                      .last_arrival_nanos = trace.last_ns,
                      .completed_nanos = trace.completed_ns < 0
                                             ? std::nullopt
                                             : std::optional<int64_t>(trace.completed_ns)});
  }
  // In a stable order (the map's is not).
  std::sort(traces.begin(), traces.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first_arrival_nanos, a.trace_id) <
           std::tie(b.first_arrival_nanos, b.trace_id);
  });
  counters_.seed_overflow += processor_->Seed(std::move(traces));
  seeds_ = {};
  seeding_ = false;
}

void Stage1Partition::NoteEpochOffset(int64_t stream_ms, int64_t offset) {
  const int64_t epoch = EpochOf(stream_ms);
  if (epoch_offsets_.empty() || epoch_offsets_.back().first < epoch) {
    epoch_offsets_.emplace_back(epoch, offset);
  }
}

int64_t Stage1Partition::SeedOffsetFor(int64_t offset) const {
  // The epoch of the record at `offset`: that of the last epoch starting at or before it.
  auto after = std::upper_bound(
      epoch_offsets_.begin(), epoch_offsets_.end(), offset,
      [](int64_t o, const std::pair<int64_t, int64_t>& entry) { return o < entry.second; });
  if (after == epoch_offsets_.begin()) return std::min(offset, resume_seed_);
  const int64_t from_epoch = std::prev(after)->first - seed_horizon_epochs_;
  auto from = std::lower_bound(
      epoch_offsets_.begin(), after, from_epoch,
      [](const std::pair<int64_t, int64_t>& entry, int64_t e) { return entry.first < e; });
  return std::min(offset, from->second);
}

void Stage1Partition::Acknowledge(int64_t epoch) {
  sealed_unacked_.erase(epoch);
  // E: the last epoch with every sealed epoch up to it acknowledged.
  last_acked_ = sealed_unacked_.empty() ? last_sealed_ : *sealed_unacked_.begin() - 1;
  needs_.erase(needs_.begin(), needs_.upper_bound(last_acked_));
  // Stream times below every remaining need are not asked for again.
  const CommitPoint point = Commit();
  while (stream_offsets_.size() > 1 && stream_offsets_[1].second <= point.offset) {
    stream_offsets_.pop_front();
  }
  while (epoch_offsets_.size() > 1 && epoch_offsets_[1].second <= point.seed_offset) {
    epoch_offsets_.pop_front();
  }
}

int64_t Stage1Partition::OffsetAtStreamTime(int64_t arrival_ms) const {
  auto it = std::lower_bound(
      stream_offsets_.begin(), stream_offsets_.end(), arrival_ms,
      [](const std::pair<int64_t, int64_t>& entry, int64_t ms) { return entry.first < ms; });
  if (it == stream_offsets_.end()) return next_offset_;
  return it->second;
}

CommitPoint Stage1Partition::Commit() const {
  int64_t offset = next_offset_;
  for (const auto& [epoch, need] : needs_) {
    if (epoch > last_acked_) offset = std::min(offset, need);
  }
  if (processor_) {
    if (const std::optional<int64_t> oldest = processor_->OldestLiveArrivalNanos()) {
      offset = std::min(offset, OffsetAtStreamTime(FloorDiv(*oldest, kNanosPerMs)));
    }
  }
  offset = std::max(offset, resume_.offset);
  return CommitPoint{.offset = offset,
                     .last_epoch = std::max(last_acked_, resume_.last_epoch),
                     .seed_offset = SeedOffsetFor(offset)};
}

}  // namespace traceslo::kafka
