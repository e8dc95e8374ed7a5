#include "traceslo/kafka/stage1.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "traceslo/common/int_math.h"

namespace traceslo::kafka {
namespace {

constexpr int64_t kNanosPerMs = 1'000'000;

std::chrono::system_clock::time_point AtMs(int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
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
  return *this;
}

Stage1Partition::Stage1Partition(Stage1Options options, pipeline::SeriesRegistry& registry,
                                 EpochPublisher& publisher, CommitPoint resume)
    : options_(std::move(options)),
      registry_(registry),
      publisher_(publisher),
      resume_(resume),
      clock_(AtMs(0)),
      next_offset_(resume.offset),
      last_acked_(resume.last_epoch),
      last_sealed_(resume.last_epoch) {}

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
  // The open epoch needs this record.
  needs_.try_emplace(epoch_, offset);
  next_offset_ = offset + 1;
  ++counters_.records;

  batch_.Clear();
  ingest::RecordSpans spans;
  if (!ingest::DecodeOtlpRecord(options_.format, value, options_.max_spans_per_request, batch_,
                                spans)
           .ok()) {
    ++counters_.bad_records;
    return;
  }
  counters_.spans += spans.accepted;
  counters_.rejected_spans += spans.rejected;
  if (batch_.spans.empty()) return;
  pipeline::ShardBatch shard_batch;
  shard_batch.strings = std::make_shared<const std::string>(std::move(batch_.strings));
  shard_batch.spans = std::move(batch_.spans);
  processor_->Process(shard_batch);
  batch_ = SpanBatch{};
}

void Stage1Partition::Acknowledge(int64_t epoch) {
  sealed_unacked_.erase(epoch);
  // E: the last epoch with every sealed epoch up to it acknowledged.
  last_acked_ = sealed_unacked_.empty() ? last_sealed_ : *sealed_unacked_.begin() - 1;
  needs_.erase(needs_.begin(), needs_.upper_bound(last_acked_));
  // Stream times below every remaining need are not asked for again.
  const int64_t floor = Commit().offset;
  while (stream_offsets_.size() > 1 && stream_offsets_[1].second <= floor) {
    stream_offsets_.pop_front();
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
  return CommitPoint{.offset = std::max(offset, resume_.offset),
                     .last_epoch = std::max(last_acked_, resume_.last_epoch)};
}

}  // namespace traceslo::kafka
