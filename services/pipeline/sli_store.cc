#include "traceslo/pipeline/sli_store.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "traceslo/pipeline/series_registry.h"

namespace traceslo::pipeline {

namespace {

// kClassicBoundsSeconds in integer nanoseconds, so that a duration on a bound lands in the
// bucket whose `le` it equals (0.1 s as a double is not 1e8 ns exactly).
constexpr std::array<uint64_t, kClassicBoundsSeconds.size()> kClassicBoundsNanos = {
    2'000'000,     5'000'000,      10'000'000,    25'000'000,    50'000'000,
    100'000'000,   250'000'000,    500'000'000,   1'000'000'000, 2'500'000'000,
    5'000'000'000, 10'000'000'000, 15'000'000'000};

constexpr bool ClassicBoundsMatch() {
  for (size_t i = 0; i < kClassicBoundsSeconds.size(); ++i) {
    // Every bound is a whole number of microseconds, exact after rounding.
    const auto micros = static_cast<uint64_t>(kClassicBoundsSeconds[i] * 1e6 + 0.5);
    if (micros * 1000 != kClassicBoundsNanos[i]) return false;
  }
  return true;
}
static_assert(ClassicBoundsMatch(), "kClassicBoundsNanos must mirror kClassicBoundsSeconds");

int64_t SlotsFor(std::chrono::milliseconds retention) {
  const int64_t ms = retention.count();
  const int64_t per_slot = kBucketSeconds * 1000;
  return std::max<int64_t>(1, (ms + per_slot - 1) / per_slot);
}

size_t SlotIndex(int64_t bucket, int64_t slots) {
  const int64_t r = bucket % slots;
  return static_cast<size_t>(r < 0 ? r + slots : r);
}

// The oldest bucket a ring of `slots` slots holds once `newest` has been seen.
int64_t OldestLive(int64_t newest, int64_t slots) {
  return newest < INT64_MIN + slots ? INT64_MIN : newest - slots + 1;
}

// The ring slot for `bucket`, reset when it holds an older bucket; nullptr when the bucket is too
// old for the ring (or its slot already holds a newer bucket). Allocates the ring on first use.
// `reset` empties a slot and names it `bucket`.
template <typename Slot, typename Reset>
Slot* SlotFor(std::vector<Slot>& ring, int64_t slots, int64_t newest, int64_t bucket, Reset reset) {
  if (bucket < OldestLive(newest, slots)) return nullptr;
  if (ring.empty()) ring.resize(static_cast<size_t>(slots));
  Slot& slot = ring[SlotIndex(bucket, slots)];
  if (slot.bucket > bucket) return nullptr;
  if (slot.bucket < bucket) reset(slot, bucket);
  return &slot;
}

// Calls f(slot) for the slots of buckets [first, last] still held by the ring, newest first.
template <typename Slot, typename F>
void ForEachLive(const std::vector<Slot>& ring, int64_t slots, int64_t newest, int64_t first,
                 int64_t last, F&& f) {
  if (ring.empty() || newest == INT64_MIN) return;
  const int64_t lo = std::max(first, OldestLive(newest, slots));
  const int64_t hi = std::min(last, newest);
  for (int64_t b = hi; b >= lo; --b) {  // at most `slots` iterations
    const Slot& slot = ring[SlotIndex(b, slots)];
    if (slot.bucket == b) f(slot);
    if (b == INT64_MIN) break;
  }
}

template <typename T>
void AppendCapped(std::vector<T>& to, const std::vector<T>& from, size_t cap) {
  to.insert(to.end(), from.begin(), from.end());
  if (to.size() > cap) to.erase(to.begin(), to.end() - static_cast<ptrdiff_t>(cap));
}

size_t StringHeapBytes(const std::string& s) {
  return s.capacity() > std::string().capacity() ? s.capacity() + 1 : 0;
}

}  // namespace

void SliStore::ResetTraceBucket(TraceBucket& slot, int64_t at) {
  slot.bucket = at;
  slot.requests = 0;
  slot.errors = 0;
  slot.latency.Clear();
  slot.traces = 0;
  slot.error_traces_root = 0;
  slot.error_traces_origin = 0;
  slot.partial_traces = 0;
  slot.propagation_breaks = 0;
}

size_t ClassicBucketOf(uint64_t nanos) {
  return static_cast<size_t>(
      std::lower_bound(kClassicBoundsNanos.begin(), kClassicBoundsNanos.end(), nanos) -
      kClassicBoundsNanos.begin());
}

SliStore::SliStore(const SliStoreOptions& options)
    : options_(options),
      ring_slots_(SlotsFor(options.retention)),
      exemplar_slots_(SlotsFor(options.exemplar_retention)),
      live_traces_(options.shards),
      live_bytes_(options.shards) {}

SliStore::SeriesState& SliStore::SeriesAt(uint32_t series) {
  assert(series < SeriesRegistry::kMaxIds);
  if (series >= series_.size()) series_.resize(static_cast<size_t>(series) + 1);
  return series_[series];
}

SliStore::ServiceState& SliStore::ServiceAt(uint32_t service) {
  assert(service < SeriesRegistry::kMaxIds);
  if (service >= services_.size()) services_.resize(static_cast<size_t>(service) + 1);
  return services_[service];
}

void SliStore::NameSeries(SeriesState& s, uint32_t series, uint32_t service) {
  if (s.known) return;
  s.known = true;
  s.service = service;
  ServiceAt(service).series.push_back(series);
}

void SliStore::Show(SeriesState& s, ExemplarSlot& slot, size_t index, int64_t unix_nano,
                    double value, const ExemplarRef& trace) {
  if (s.shown == nullptr) {
    s.shown = std::make_unique<std::array<ShownExemplar, kClassicBuckets + 1>>();
  }
  ShownExemplar& e = (*s.shown)[index];
  if (e.bucket != INT64_MIN &&
      std::pair(slot.bucket, unix_nano) < std::pair(e.bucket, e.unix_nano)) {
    return;  // the one shown is newer
  }
  if (std::find(slot.shown.begin(), slot.shown.end(), trace) == slot.shown.end()) {
    if (slot.shown.size() >= kMaxShownPerSlot) return;  // keep showing what the slot holds
    slot.shown.push_back(trace);
  }
  e = {.bucket = slot.bucket, .unix_nano = unix_nano, .value = value, .trace_id = trace->trace_id};
}

bool SliStore::ShownLive(const ShownExemplar& e) const {
  return e.bucket != INT64_MIN && e.bucket >= OldestLive(newest_bucket_, exemplar_slots_);
}

void SliStore::AddSeriesBucket(SeriesState& s, const SeriesDelta& d) {
  Bucket* b = SlotFor(s.ring, ring_slots_, newest_bucket_, d.bucket, [](Bucket& slot, int64_t at) {
    slot.bucket = at;
    slot.requests = 0;
    slot.errors = 0;
    slot.latency.Clear();
  });
  if (b == nullptr) return;
  b->requests += d.requests;
  b->errors += d.errors;
  b->latency.Merge(d.latency);
  TraceBucket* sb = SlotFor(ServiceAt(s.service).ring, ring_slots_, newest_bucket_, d.bucket,
                            [](TraceBucket& slot, int64_t at) { ResetTraceBucket(slot, at); });
  if (sb == nullptr) return;
  sb->requests += d.requests;
  sb->errors += d.errors;
  sb->latency.Merge(d.latency);
}

void SliStore::AddServiceBucket(ServiceState& s, const ServiceDelta& d) {
  TraceBucket* b = SlotFor(s.ring, ring_slots_, newest_bucket_, d.bucket,
                           [](TraceBucket& slot, int64_t at) { ResetTraceBucket(slot, at); });
  if (b == nullptr) return;
  b->traces += d.traces;
  b->error_traces_root += d.error_traces_root;
  b->error_traces_origin += d.error_traces_origin;
  b->partial_traces += d.partial_traces;
  b->propagation_breaks += d.propagation_breaks;
}

void SliStore::Apply(ShardDelta delta) {
  int64_t newest = INT64_MIN;
  for (const SeriesDelta& d : delta.series) newest = std::max(newest, d.bucket);
  for (const ServiceDelta& d : delta.services) newest = std::max(newest, d.bucket);
  for (const ExemplarDelta& d : delta.exemplars) newest = std::max(newest, d.bucket);

  MutexLock lock(mu_);
  newest_bucket_ = std::max(newest_bucket_, newest);

  for (const SeriesDelta& d : delta.series) {
    SeriesState& s = SeriesAt(d.series);
    NameSeries(s, d.series, d.service);
    s.totals.requests += d.requests;
    s.totals.errors += d.errors;
    s.totals.sum_seconds += d.sum_seconds;
    for (size_t i = 0; i < kClassicBuckets; ++i) s.totals.classic[i] += d.classic[i];
    AddSeriesBucket(s, d);
    if (!d.signatures.empty()) {
      SignatureBucket* b = SlotFor(s.signature_ring, ring_slots_, newest_bucket_, d.bucket,
                                   [](SignatureBucket& slot, int64_t at) {
                                     slot.bucket = at;
                                     slot.counts.clear();
                                   });
      if (b != nullptr) {
        for (const SignatureCount& c : d.signatures) {
          AddSignatureCount(b->counts, c.id, c.count, options_.max_signature_counts_per_bucket);
        }
      }
    }
    const int64_t minute = MinuteOfBucket(d.bucket);
    s.changed_first = std::min(s.changed_first, minute);
    s.changed_last = std::max(s.changed_last, minute);
  }

  for (const ServiceDelta& d : delta.services) {
    ServiceState& s = ServiceAt(d.service);
    s.totals.traces += d.traces;
    s.totals.error_traces_root += d.error_traces_root;
    s.totals.error_traces_origin += d.error_traces_origin;
    s.totals.partial_traces += d.partial_traces;
    s.totals.propagation_breaks += d.propagation_breaks;
    AddServiceBucket(s, d);
    const int64_t minute = MinuteOfBucket(d.bucket);
    s.changed_first = std::min(s.changed_first, minute);
    s.changed_last = std::max(s.changed_last, minute);
  }

  for (ExemplarDelta& d : delta.exemplars) {
    if (d.trace == nullptr) continue;
    SeriesState& s = SeriesAt(d.series);
    ExemplarSlot* slot = SlotFor(s.exemplars, exemplar_slots_, newest_bucket_, d.bucket,
                                 [](ExemplarSlot& e, int64_t at) {
                                   e.bucket = at;
                                   e.slowest_nanos = 0;
                                   e.slowest.reset();
                                   e.errors.clear();
                                   e.shown.clear();
                                 });
    if (slot == nullptr) continue;
    if (d.signature == 0) {
      Show(s, *slot, ClassicBucketOf(d.duration_nanos), d.end_unix_nano,
           static_cast<double>(d.duration_nanos) / 1e9, d.trace);
    } else {
      Show(s, *slot, kClassicBuckets, d.end_unix_nano, 1.0, d.trace);
    }
    if (d.signature == 0) {
      if (slot->slowest == nullptr || d.duration_nanos > slot->slowest_nanos) {
        slot->slowest_nanos = d.duration_nanos;
        slot->slowest = std::move(d.trace);
      }
      continue;
    }
    auto same =
        std::find_if(slot->errors.begin(), slot->errors.end(),
                     [&](const ExemplarSlot::Error& e) { return e.signature == d.signature; });
    if (same != slot->errors.end()) {
      if (d.end_unix_nano > same->end_unix_nano) {
        same->end_unix_nano = d.end_unix_nano;
        same->trace = std::move(d.trace);
      }
    } else if (slot->errors.size() < options_.max_signatures_per_bucket) {
      slot->errors.push_back({d.signature, d.end_unix_nano, std::move(d.trace)});
    } else if (!slot->errors.empty()) {
      // Full: the newest exemplars win, so the oldest makes room for a newer one.
      auto oldest = std::min_element(
          slot->errors.begin(), slot->errors.end(),
          [](const auto& a, const auto& b) { return a.end_unix_nano < b.end_unix_nano; });
      if (d.end_unix_nano > oldest->end_unix_nano) {
        *oldest = {d.signature, d.end_unix_nano, std::move(d.trace)};
      }
    }
  }

  for (SignatureDelta& d : delta.signatures) {
    auto it = signatures_.find(d.id);
    if (it == signatures_.end()) {
      if (signatures_.size() >= options_.max_signatures) {
        // Counted in error spans, like a shard's own overflow.
        totals_.signature_overflow += d.count;
        continue;
      }
      SignatureInfo info;
      info.id = d.id;
      info.series = d.series;
      info.count = d.count;
      info.first_seen_unix_nano = d.first_seen_unix_nano;
      info.last_seen_unix_nano = d.last_seen_unix_nano;
      info.http_status = d.http_status;
      info.rpc_status = d.rpc_status;
      info.exception_type = std::move(d.exception_type);
      info.normalized_message = std::move(d.normalized_message);
      info.sample_message = std::move(d.sample_message);
      info.top_frame = std::move(d.top_frame);
      AppendCapped(info.trace_ids, d.trace_ids, kMaxSignatureTraces);
      signatures_.emplace(d.id, std::move(info));
      continue;
    }
    SignatureInfo& info = it->second;
    info.count += d.count;
    info.first_seen_unix_nano = std::min(info.first_seen_unix_nano, d.first_seen_unix_nano);
    info.last_seen_unix_nano = std::max(info.last_seen_unix_nano, d.last_seen_unix_nano);
    if (info.http_status == 0) info.http_status = d.http_status;
    if (info.rpc_status == -1) info.rpc_status = d.rpc_status;
    for (auto [to, from] : {std::pair{&info.exception_type, &d.exception_type},
                            std::pair{&info.normalized_message, &d.normalized_message},
                            std::pair{&info.sample_message, &d.sample_message},
                            std::pair{&info.top_frame, &d.top_frame}}) {
      if (to->empty()) *to = std::move(*from);
    }
    AppendCapped(info.trace_ids, d.trace_ids, kMaxSignatureTraces);
  }

  totals_.late_spans += delta.late_spans;
  totals_.evicted_traces += delta.evicted_traces;
  totals_.clock_skew_spans += delta.clock_skew_spans;
  totals_.truncated_spans += delta.truncated_spans;
  totals_.signature_overflow += delta.signature_overflow;
  if (delta.shard >= live_traces_.size()) {
    live_traces_.resize(static_cast<size_t>(delta.shard) + 1);
    live_bytes_.resize(static_cast<size_t>(delta.shard) + 1);
  }
  live_traces_[delta.shard] = delta.live_traces;
  live_bytes_[delta.shard] = delta.live_trace_bytes;
}

std::vector<SliStore::SeriesTotals> SliStore::AllSeriesTotals() const {
  MutexLock lock(mu_);
  std::vector<SeriesTotals> out;
  out.reserve(series_.size());
  for (const SeriesState& s : series_) out.push_back(s.totals);
  return out;
}

std::vector<SliStore::SeriesExemplars> SliStore::AllSeriesExemplars() const {
  MutexLock lock(mu_);
  std::vector<SeriesExemplars> out(series_.size());
  for (size_t id = 0; id < series_.size(); ++id) {
    if (series_[id].shown == nullptr) continue;
    const auto& shown = *series_[id].shown;
    for (size_t i = 0; i < shown.size(); ++i) {
      if (!ShownLive(shown[i])) continue;
      const MetricExemplar e{
          .trace_id = shown[i].trace_id, .value = shown[i].value, .unix_nano = shown[i].unix_nano};
      if (i < kClassicBuckets) {
        out[id].duration[i] = e;
      } else {
        out[id].error = e;
      }
    }
  }
  return out;
}

std::vector<SliStore::ServiceTotals> SliStore::AllServiceTotals() const {
  MutexLock lock(mu_);
  std::vector<ServiceTotals> out;
  out.reserve(services_.size());
  for (const ServiceState& s : services_) out.push_back(s.totals);
  return out;
}

SliStore::GlobalTotals SliStore::Totals() const {
  MutexLock lock(mu_);
  GlobalTotals out = totals_;
  out.live_traces = 0;
  out.live_trace_bytes = 0;
  for (uint64_t v : live_traces_) out.live_traces += v;
  for (uint64_t v : live_bytes_) out.live_trace_bytes += v;
  out.signatures = signatures_.size();
  return out;
}

WindowStats SliStore::SeriesWindow(uint32_t series, int64_t first_bucket,
                                   int64_t last_bucket) const {
  WindowStats out;
  MutexLock lock(mu_);
  if (series >= series_.size()) return out;
  ForEachLive(series_[series].ring, ring_slots_, newest_bucket_, first_bucket, last_bucket,
              [&](const Bucket& b) {
                out.requests += b.requests;
                out.errors += b.errors;
                out.latency.Merge(b.latency);
              });
  return out;
}

SliStore::Counts SliStore::SeriesCounts(const std::vector<uint32_t>& series, int64_t first_bucket,
                                        int64_t last_bucket) const {
  Counts out;
  MutexLock lock(mu_);
  for (uint32_t id : series) {
    if (id >= series_.size()) continue;
    ForEachLive(series_[id].ring, ring_slots_, newest_bucket_, first_bucket, last_bucket,
                [&](const Bucket& b) {
                  out.requests += b.requests;
                  out.errors += b.errors;
                });
  }
  return out;
}

LatencySketch SliStore::SeriesLatency(const std::vector<uint32_t>& series, int64_t first_bucket,
                                      int64_t last_bucket) const {
  LatencySketch out;
  MutexLock lock(mu_);
  for (uint32_t id : series) {
    if (id >= series_.size()) continue;
    ForEachLive(series_[id].ring, ring_slots_, newest_bucket_, first_bucket, last_bucket,
                [&](const Bucket& b) { out.Merge(b.latency); });
  }
  return out;
}

WindowStats SliStore::ServiceWindow(uint32_t service, int64_t first_bucket,
                                    int64_t last_bucket) const {
  WindowStats out;
  MutexLock lock(mu_);
  if (service >= services_.size()) return out;
  const ServiceState& state = services_[service];
  ForEachLive(state.ring, ring_slots_, newest_bucket_, first_bucket, last_bucket,
              [&](const TraceBucket& b) {
                out.requests += b.requests;
                out.errors += b.errors;
                out.latency.Merge(b.latency);
                out.traces += b.traces;
                out.error_traces_root += b.error_traces_root;
                out.error_traces_origin += b.error_traces_origin;
                out.partial_traces += b.partial_traces;
                out.propagation_breaks += b.propagation_breaks;
              });
  return out;
}

std::vector<LatencySketch> SliStore::ServiceLatencies(int64_t first_bucket,
                                                      int64_t last_bucket) const {
  MutexLock lock(mu_);
  std::vector<LatencySketch> out(services_.size());
  for (size_t id = 0; id < services_.size(); ++id) {
    ForEachLive(services_[id].ring, ring_slots_, newest_bucket_, first_bucket, last_bucket,
                [&](const TraceBucket& b) { out[id].Merge(b.latency); });
  }
  return out;
}

std::vector<std::vector<LatencySketch>> SliStore::ServiceLatencyWindows(
    const std::vector<int64_t>& window_buckets, int64_t last_bucket) const {
  assert(std::is_sorted(window_buckets.begin(), window_buckets.end()));
  MutexLock lock(mu_);
  std::vector<std::vector<LatencySketch>> out(services_.size());
  if (window_buckets.empty()) return out;
  const int64_t first = last_bucket - window_buckets.back() + 1;
  for (size_t id = 0; id < services_.size(); ++id) {
    out[id].resize(window_buckets.size());
    LatencySketch running;
    size_t w = 0;
    // Newest first: when the walk passes a window's first bucket, that window is complete.
    ForEachLive(services_[id].ring, ring_slots_, newest_bucket_, first, last_bucket,
                [&](const TraceBucket& b) {
                  while (w < window_buckets.size() && b.bucket <= last_bucket - window_buckets[w]) {
                    out[id][w++] = running;
                  }
                  running.Merge(b.latency);
                });
    for (; w < window_buckets.size(); ++w) out[id][w] = running;
  }
  return out;
}

std::vector<ExemplarRef> SliStore::Exemplars(uint32_t series, int64_t first_bucket,
                                             int64_t last_bucket) const {
  std::vector<ExemplarRef> out;
  std::vector<const ExemplarSlot::Error*> errors;
  MutexLock lock(mu_);
  if (series >= series_.size()) return out;
  absl::flat_hash_set<const ExemplarTrace*> seen;
  ForEachLive(series_[series].exemplars, exemplar_slots_, newest_bucket_, first_bucket, last_bucket,
              [&](const ExemplarSlot& slot) {
                if (slot.slowest != nullptr && seen.insert(slot.slowest.get()).second) {
                  out.push_back(slot.slowest);
                }
                for (const ExemplarSlot::Error& e : slot.errors) errors.push_back(&e);
              });
  // Buckets came newest first; stable sort keeps that order among equal end times.
  std::stable_sort(errors.begin(), errors.end(), [](const auto* a, const auto* b) {
    return a->end_unix_nano > b->end_unix_nano;
  });
  for (const ExemplarSlot::Error* e : errors) {
    if (seen.insert(e->trace.get()).second) out.push_back(e->trace);
  }
  return out;
}

ExemplarRef SliStore::FindTrace(const TraceId& trace_id) const {
  MutexLock lock(mu_);
  ExemplarRef found;
  for (const SeriesState& s : series_) {
    ForEachLive(s.exemplars, exemplar_slots_, newest_bucket_, INT64_MIN, INT64_MAX,
                [&](const ExemplarSlot& slot) {
                  if (found != nullptr) return;
                  if (slot.slowest != nullptr && slot.slowest->trace_id == trace_id) {
                    found = slot.slowest;
                    return;
                  }
                  for (const ExemplarSlot::Error& e : slot.errors) {
                    if (e.trace->trace_id == trace_id) {
                      found = e.trace;
                      return;
                    }
                  }
                  for (const ExemplarRef& shown : slot.shown) {
                    if (shown->trace_id == trace_id) {
                      found = shown;
                      return;
                    }
                  }
                });
    if (found != nullptr) break;
  }
  return found;
}

std::vector<SignatureCount> SliStore::SignatureCounts(const std::vector<uint32_t>& series,
                                                      int64_t first_bucket,
                                                      int64_t last_bucket) const {
  absl::flat_hash_map<uint64_t, uint64_t> sums;
  {
    MutexLock lock(mu_);
    for (uint32_t id : series) {
      if (id >= series_.size()) continue;
      ForEachLive(series_[id].signature_ring, ring_slots_, newest_bucket_, first_bucket,
                  last_bucket, [&](const SignatureBucket& b) {
                    for (const SignatureCount& c : b.counts) sums[c.id] += c.count;
                  });
    }
  }
  std::vector<SignatureCount> out;
  out.reserve(sums.size());
  for (const auto& [id, count] : sums) out.push_back({id, count});
  std::sort(out.begin(), out.end(), [](const SignatureCount& a, const SignatureCount& b) {
    return a.count != b.count ? a.count > b.count : a.id < b.id;
  });
  return out;
}

std::vector<uint64_t> SliStore::PropagationBreaks(int64_t first_bucket, int64_t last_bucket) const {
  MutexLock lock(mu_);
  std::vector<uint64_t> out(services_.size());
  for (size_t id = 0; id < services_.size(); ++id) {
    ForEachLive(services_[id].ring, ring_slots_, newest_bucket_, first_bucket, last_bucket,
                [&](const TraceBucket& b) { out[id] += b.propagation_breaks; });
  }
  return out;
}

std::optional<SignatureInfo> SliStore::Signature(uint64_t id) const {
  MutexLock lock(mu_);
  if (auto it = signatures_.find(id); it != signatures_.end()) return it->second;
  return std::nullopt;
}

std::vector<SignatureInfo> SliStore::Signatures() const {
  std::vector<SignatureInfo> out;
  {
    MutexLock lock(mu_);
    out.reserve(signatures_.size());
    for (const auto& [id, info] : signatures_) out.push_back(info);
  }
  std::sort(out.begin(), out.end(), [](const SignatureInfo& a, const SignatureInfo& b) {
    return a.count != b.count ? a.count > b.count : a.id < b.id;
  });
  return out;
}

void SliStore::ForgetServices(const std::vector<uint32_t>& services) {
  MutexLock lock(mu_);
  for (uint32_t service : services) {
    if (service >= services_.size()) continue;
    ServiceState& state = services_[service];
    for (uint32_t id : state.series) {
      if (id >= series_.size()) continue;
      SeriesState& s = series_[id];
      s.totals = SeriesTotals{};
      s.ring.clear();
      s.signature_ring.clear();
      s.exemplars.clear();
      s.shown.reset();
      s.changed_first = INT64_MAX;
      s.changed_last = INT64_MIN;
    }
    state.totals = ServiceTotals{};
    state.ring.clear();
    state.changed_first = INT64_MAX;
    state.changed_last = INT64_MIN;
  }
}

MinuteRollups SliStore::TakeChangedMinutes() {
  MinuteRollups out;
  MutexLock lock(mu_);
  for (uint32_t id = 0; id < series_.size(); ++id) {
    SeriesState& s = series_[id];
    for (int64_t m = s.changed_first; m <= s.changed_last; ++m) {
      SeriesMinute minute{.series = id, .service = s.service, .minute = m, .last_offset = -1};
      bool held = false;
      ForEachLive(s.ring, ring_slots_, newest_bucket_, m * kBucketsPerMinute,
                  m * kBucketsPerMinute + kBucketsPerMinute - 1, [&](const Bucket& b) {
                    held = true;
                    minute.last_offset = std::max(
                        minute.last_offset, static_cast<int32_t>(b.bucket - m * kBucketsPerMinute));
                    minute.requests += b.requests;
                    minute.errors += b.errors;
                    minute.latency.Merge(b.latency);
                  });
      if (held) out.series.push_back(std::move(minute));
    }
    s.changed_first = INT64_MAX;
    s.changed_last = INT64_MIN;
  }
  for (uint32_t id = 0; id < services_.size(); ++id) {
    ServiceState& s = services_[id];
    for (int64_t m = s.changed_first; m <= s.changed_last; ++m) {
      ServiceMinute minute{.service = id, .minute = m, .last_offset = -1};
      bool held = false;
      ForEachLive(s.ring, ring_slots_, newest_bucket_, m * kBucketsPerMinute,
                  m * kBucketsPerMinute + kBucketsPerMinute - 1, [&](const TraceBucket& b) {
                    held = true;
                    minute.last_offset = std::max(
                        minute.last_offset, static_cast<int32_t>(b.bucket - m * kBucketsPerMinute));
                    minute.traces += b.traces;
                    minute.error_traces_root += b.error_traces_root;
                    minute.error_traces_origin += b.error_traces_origin;
                    minute.partial_traces += b.partial_traces;
                    minute.propagation_breaks += b.propagation_breaks;
                  });
      if (held) out.services.push_back(minute);
    }
    s.changed_first = INT64_MAX;
    s.changed_last = INT64_MIN;
  }
  return out;
}

void SliStore::Restore(const MinuteRollups& rollups) {
  MutexLock lock(mu_);
  auto bucket_of = [](int64_t minute, int32_t offset) {
    return minute * kBucketsPerMinute + std::clamp<int32_t>(offset, 0, kBucketsPerMinute - 1);
  };
  for (const SeriesMinute& m : rollups.series) {
    newest_bucket_ = std::max(newest_bucket_, bucket_of(m.minute, m.last_offset));
  }
  for (const ServiceMinute& m : rollups.services) {
    newest_bucket_ = std::max(newest_bucket_, bucket_of(m.minute, m.last_offset));
  }
  for (const SeriesMinute& m : rollups.series) {
    SeriesState& s = SeriesAt(m.series);
    NameSeries(s, m.series, m.service);
    SeriesDelta d{.series = m.series,
                  .service = m.service,
                  .bucket = bucket_of(m.minute, m.last_offset),
                  .requests = m.requests,
                  .errors = m.errors};
    d.latency = m.latency;
    AddSeriesBucket(s, d);
  }
  for (const ServiceMinute& m : rollups.services) {
    AddServiceBucket(ServiceAt(m.service),
                     ServiceDelta{.service = m.service,
                                  .bucket = bucket_of(m.minute, m.last_offset),
                                  .traces = m.traces,
                                  .error_traces_root = m.error_traces_root,
                                  .error_traces_origin = m.error_traces_origin,
                                  .partial_traces = m.partial_traces,
                                  .propagation_breaks = m.propagation_breaks});
  }
}

int64_t SliStore::OldestHeldBucket() const {
  MutexLock lock(mu_);
  return newest_bucket_ == INT64_MIN ? INT64_MAX : OldestLive(newest_bucket_, ring_slots_);
}

size_t SliStore::MemoryBytes() const {
  MutexLock lock(mu_);
  size_t bytes = sizeof(*this);
  absl::flat_hash_set<const ExemplarTrace*> traces;
  bytes += series_.capacity() * sizeof(SeriesState);
  for (const SeriesState& s : series_) {
    bytes += s.ring.capacity() * sizeof(Bucket);
    for (const Bucket& b : s.ring) bytes += b.latency.MemoryBytes() - sizeof(LatencySketch);
    bytes += s.signature_ring.capacity() * sizeof(SignatureBucket);
    for (const SignatureBucket& b : s.signature_ring) {
      bytes += b.counts.capacity() * sizeof(SignatureCount);
    }
    bytes += s.exemplars.capacity() * sizeof(ExemplarSlot);
    for (const ExemplarSlot& slot : s.exemplars) {
      bytes += slot.errors.capacity() * sizeof(ExemplarSlot::Error);
      if (slot.slowest != nullptr) traces.insert(slot.slowest.get());
      for (const ExemplarSlot::Error& e : slot.errors) traces.insert(e.trace.get());
      bytes += slot.shown.capacity() * sizeof(ExemplarRef);
      for (const ExemplarRef& t : slot.shown) traces.insert(t.get());
    }
    if (s.shown != nullptr) bytes += sizeof(*s.shown);
  }
  for (const ExemplarTrace* t : traces) bytes += t->MemoryBytes();
  bytes += services_.capacity() * sizeof(ServiceState);
  for (const ServiceState& s : services_) {
    bytes += s.ring.capacity() * sizeof(TraceBucket) + s.series.capacity() * sizeof(uint32_t);
  }
  bytes += (live_traces_.capacity() + live_bytes_.capacity()) * sizeof(uint64_t);
  bytes += signatures_.capacity() * (sizeof(std::pair<const uint64_t, SignatureInfo>) + 1);
  for (const auto& [id, info] : signatures_) {
    bytes += StringHeapBytes(info.exception_type) + StringHeapBytes(info.normalized_message) +
             StringHeapBytes(info.sample_message) + StringHeapBytes(info.top_frame) +
             info.trace_ids.capacity() * sizeof(TraceId);
  }
  return bytes;
}

}  // namespace traceslo::pipeline
