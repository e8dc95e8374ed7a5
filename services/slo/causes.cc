#include "traceslo/slo/causes.h"

#include <algorithm>
#include <cassert>
#include <map>
#include <optional>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "traceslo/pipeline/error_signature.h"
#include "traceslo/slo/evaluator.h"

namespace traceslo::slo {
namespace {

using pipeline::ExemplarRef;
using pipeline::ExemplarSpan;
using pipeline::ExemplarTrace;

std::string SignatureTitle(const pipeline::SignatureInfo& info) {
  std::string title = info.exception_type;
  if (title.empty()) {
    if (info.http_status > 0) title = "HTTP " + std::to_string(info.http_status);
    if (info.rpc_status >= 0) {
      if (!title.empty()) title += ", ";
      title += "gRPC " + std::to_string(info.rpc_status);
    }
    if (title.empty()) title = "status ERROR";
  }
  if (!info.normalized_message.empty()) title += ": " + info.normalized_message;
  return title;
}

int64_t SpanEndUnixNano(const ExemplarTrace& trace, const ExemplarSpan& span) {
  return trace.start_unix_nano + span.start_offset_nanos +
         static_cast<int64_t>(span.duration_nanos);
}

int64_t TraceEndUnixNano(const ExemplarTrace& trace) {
  return trace.start_unix_nano + static_cast<int64_t>(trace.duration_nanos);
}

// The exemplar traces of several series over the window, each once.
std::vector<ExemplarRef> ExemplarsOf(const pipeline::SliStore& store,
                                     const std::vector<uint32_t>& series, int64_t first_bucket,
                                     int64_t last_bucket) {
  std::vector<ExemplarRef> out;
  absl::flat_hash_set<const ExemplarTrace*> seen;
  for (uint32_t id : series) {
    for (ExemplarRef& trace : store.Exemplars(id, first_bucket, last_bucket)) {
      if (trace != nullptr && seen.insert(trace.get()).second) out.push_back(std::move(trace));
    }
  }
  return out;
}

// Where the error of the spans with signature `signature` began in `trace`: the deepest error
// span (with a signature) below one of them, if that span is in another service than the span
// it was found below. {service id, signature}; nullopt when the error began in the span itself.
std::optional<std::pair<uint32_t, uint64_t>> DownstreamOrigin(
    const ExemplarTrace& trace, uint64_t signature, const pipeline::SeriesRegistry& registry) {
  const std::vector<ExemplarSpan>& spans = trace.spans;
  absl::flat_hash_map<uint64_t, std::vector<size_t>> children;
  for (size_t i = 0; i < spans.size(); ++i) {
    if (spans[i].parent_span_id != 0) children[spans[i].parent_span_id].push_back(i);
  }
  std::optional<std::pair<uint32_t, uint64_t>> origin;
  size_t origin_depth = 0;
  for (size_t start = 0; start < spans.size(); ++start) {
    if (spans[start].signature != signature) continue;
    const uint32_t own_service = registry.ServiceOf(spans[start].series);
    // Depth-first below the span; the visit cap bounds a malformed tree (duplicate span ids).
    std::vector<std::pair<size_t, size_t>> stack = {{start, 0}};
    size_t visits = 0;
    while (!stack.empty() && ++visits <= spans.size()) {
      auto [index, depth] = stack.back();
      stack.pop_back();
      const ExemplarSpan& span = spans[index];
      if (depth > 0 && span.error && span.signature != 0 && depth > origin_depth) {
        const uint32_t service = registry.ServiceOf(span.series);
        origin_depth = depth;
        origin = service != own_service
                     ? std::optional<std::pair<uint32_t, uint64_t>>({service, span.signature})
                     : std::nullopt;
      }
      if (auto it = children.find(span.span_id); it != children.end()) {
        for (size_t child : it->second) stack.emplace_back(child, depth + 1);
      }
    }
  }
  return origin;
}

// Where the error of `cause` began: the origin (DownstreamOrigin of `signature`) most of its
// exemplar traces `keyed` show, if it is another service and more than half of them agree.
// Leaves the origin fields empty otherwise.
void SetOrigin(AlertCause& cause, uint64_t signature,
               const std::vector<std::pair<int64_t, ExemplarRef>>& keyed,
               const pipeline::SeriesRegistry& registry, const pipeline::SliStore& store) {
  std::map<std::pair<uint32_t, uint64_t>, size_t> origins;
  for (const auto& [end, trace] : keyed) {
    if (auto origin = DownstreamOrigin(*trace, signature, registry)) ++origins[*origin];
  }
  auto best = std::max_element(origins.begin(), origins.end(),
                               [](const auto& a, const auto& b) { return a.second < b.second; });
  if (best == origins.end() || 2 * best->second <= keyed.size()) return;
  cause.origin_service = std::string(registry.ServiceName(best->first.first));
  cause.origin_signature = pipeline::SignatureIdHex(best->first.second);
  std::optional<pipeline::SignatureInfo> info = store.Signature(best->first.second);
  cause.origin_title = info ? SignatureTitle(*info) : "error signature " + cause.origin_signature;
}

// The traces with a key, highest key first (then by trace id, for a stable order), at most `n`.
std::vector<ExemplarRef> Best(std::vector<std::pair<int64_t, ExemplarRef>> keyed, size_t n) {
  std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second->trace_id < b.second->trace_id;
  });
  std::vector<ExemplarRef> out;
  for (size_t i = 0; i < keyed.size() && i < n; ++i) out.push_back(std::move(keyed[i].second));
  return out;
}

// A cause before ranking, with the id it was counted under (signature, series or service id).
struct Candidate {
  AlertCause cause;
  uint64_t key = 0;
};

// The leading candidates (highest count first, then by id) whose counts reach `coverage` of
// `total`, at most `max_causes`, with their shares of `total`.
std::vector<Candidate> Cover(std::vector<Candidate> candidates, uint64_t total,
                             const CauseOptions& options) {
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return a.cause.count != b.cause.count ? a.cause.count > b.cause.count : a.cause.id < b.cause.id;
  });
  // Relative slack so that a coverage like 0.1 x 30 (3.0000000000000004 in doubles) is met by 3.
  const double needed = options.coverage * static_cast<double>(total) * (1 - 1e-12);
  std::vector<Candidate> out;
  uint64_t covered = 0;
  for (Candidate& c : candidates) {
    if (out.size() >= options.max_causes || static_cast<double>(covered) >= needed) break;
    if (c.cause.count == 0) break;
    covered += c.cause.count;
    c.cause.share = static_cast<double>(c.cause.count) / static_cast<double>(total);
    out.push_back(std::move(c));
  }
  return out;
}

uint64_t ThresholdNanos(const Slo& slo) {
  const auto millis = slo.sli.kind == SliKind::kLatency ? slo.sli.latency.threshold
                                                        : slo.sli.latency_quantile.threshold;
  return static_cast<uint64_t>(millis.count()) * 1'000'000;
}

}  // namespace

CauseFinder::CauseFinder(const CauseOptions& options, const pipeline::SeriesRegistry& registry,
                         const pipeline::SliStore& store)
    : options_(options), registry_(registry), store_(store) {
  assert(options_.coverage > 0 && options_.coverage <= 1);
}

std::vector<AlertCause> CauseFinder::Find(const Slo& slo, int64_t first_bucket,
                                          int64_t last_bucket) const {
  if (first_bucket > last_bucket) return {};
  switch (slo.sli.kind) {
    case SliKind::kErrors:
      return Signatures(SloSeries(slo, registry_), first_bucket, last_bucket);
    case SliKind::kLatency:
    case SliKind::kLatencyQuantile:
      return SlowOperations(slo, first_bucket, last_bucket);
    case SliKind::kErrorTraces:
    case SliKind::kPartialTraces: {
      const int64_t service = registry_.FindService(slo.service);
      if (service < 0) return {};
      const pipeline::WindowStats w =
          store_.ServiceWindow(static_cast<uint32_t>(service), first_bucket, last_bucket);
      if (slo.sli.kind == SliKind::kPartialTraces) {
        if (w.partial_traces == 0) return {};
        return PropagationBreaks(first_bucket, last_bucket);
      }
      const uint64_t bad = slo.sli.error_traces.role == ErrorTraceRole::kRoot
                               ? w.error_traces_root
                               : w.error_traces_origin;
      if (bad == 0) return {};
      std::vector<uint32_t> series;
      for (const auto& named : registry_.SeriesOfService(static_cast<uint32_t>(service))) {
        series.push_back(named.series);
      }
      return Signatures(series, first_bucket, last_bucket);
    }
  }
  return {};
}

std::vector<AlertCause> CauseFinder::Signatures(const std::vector<uint32_t>& series,
                                                int64_t first_bucket, int64_t last_bucket) const {
  uint64_t total = 0;
  std::vector<Candidate> candidates;
  for (const pipeline::SignatureCount& c :
       store_.SignatureCounts(series, first_bucket, last_bucket)) {
    total += c.count;
    if (c.id == 0) continue;  // unnamed: in the total, never a cause
    Candidate& candidate = candidates.emplace_back();
    candidate.key = c.id;
    candidate.cause.kind = AlertCause::Kind::kSignature;
    candidate.cause.id = pipeline::SignatureIdHex(c.id);
    candidate.cause.count = c.count;
  }
  std::vector<Candidate> chosen = Cover(std::move(candidates), total, options_);
  const std::vector<ExemplarRef> exemplars =
      !chosen.empty() && options_.max_traces > 0
          ? ExemplarsOf(store_, series, first_bucket, last_bucket)
          : std::vector<ExemplarRef>{};
  std::vector<AlertCause> out;
  for (Candidate& c : chosen) {
    AlertCause& cause = out.emplace_back(std::move(c.cause));
    if (std::optional<pipeline::SignatureInfo> info = store_.Signature(c.key)) {
      cause.title = SignatureTitle(*info);
      cause.sample_message = std::move(info->sample_message);
    } else {
      // Past the registry's max_signatures: counted, but its description was not kept.
      cause.title = "error signature " + cause.id;
    }
    std::vector<std::pair<int64_t, ExemplarRef>> keyed;
    for (const ExemplarRef& trace : exemplars) {
      std::optional<int64_t> newest;
      for (const ExemplarSpan& span : trace->spans) {
        if (span.signature != c.key) continue;
        newest = std::max(newest.value_or(INT64_MIN), SpanEndUnixNano(*trace, span));
      }
      if (newest) keyed.emplace_back(*newest, trace);
    }
    if (options_.origins) SetOrigin(cause, c.key, keyed, registry_, store_);
    cause.traces = Best(std::move(keyed), options_.max_traces);
  }
  return out;
}

std::vector<AlertCause> CauseFinder::SlowOperations(const Slo& slo, int64_t first_bucket,
                                                    int64_t last_bucket) const {
  const uint64_t threshold = ThresholdNanos(slo);
  uint64_t total = 0;
  std::vector<Candidate> candidates;
  for (uint32_t series : SloSeries(slo, registry_)) {
    const Events events =
        LatencyEvents(slo, store_.SeriesLatency({series}, first_bucket, last_bucket));
    if (events.bad == 0) continue;
    total += events.bad;
    Candidate& candidate = candidates.emplace_back();
    candidate.key = series;
    candidate.cause.kind = AlertCause::Kind::kSlowOperation;
    candidate.cause.id = std::string(registry_.OperationName(series));
    candidate.cause.title = candidate.cause.id;
    candidate.cause.count = events.bad;
  }
  std::vector<AlertCause> out;
  for (Candidate& c : Cover(std::move(candidates), total, options_)) {
    AlertCause& cause = out.emplace_back(std::move(c.cause));
    if (options_.max_traces == 0) continue;
    const auto series = static_cast<uint32_t>(c.key);
    std::vector<std::pair<int64_t, ExemplarRef>> keyed;
    for (ExemplarRef& trace : store_.Exemplars(series, first_bucket, last_bucket)) {
      // The trace's entry span of this series (its slowest, if the trace entered it twice).
      uint64_t slowest = 0;
      for (const ExemplarSpan& span : trace->spans) {
        if (span.series == series) slowest = std::max(slowest, span.duration_nanos);
      }
      if (slowest > threshold) keyed.emplace_back(static_cast<int64_t>(slowest), std::move(trace));
    }
    cause.traces = Best(std::move(keyed), options_.max_traces);
  }
  return out;
}

std::vector<AlertCause> CauseFinder::PropagationBreaks(int64_t first_bucket,
                                                       int64_t last_bucket) const {
  const std::vector<uint64_t> breaks = store_.PropagationBreaks(first_bucket, last_bucket);
  uint64_t total = 0;
  std::vector<Candidate> candidates;
  for (size_t service = 0; service < breaks.size(); ++service) {
    if (breaks[service] == 0) continue;
    total += breaks[service];
    Candidate& candidate = candidates.emplace_back();
    candidate.key = service;
    candidate.cause.kind = AlertCause::Kind::kPropagationBreak;
    candidate.cause.id = std::string(registry_.ServiceName(static_cast<uint32_t>(service)));
    candidate.cause.title = candidate.cause.id;
    candidate.cause.count = breaks[service];
  }
  std::vector<AlertCause> out;
  for (Candidate& c : Cover(std::move(candidates), total, options_)) {
    AlertCause& cause = out.emplace_back(std::move(c.cause));
    if (options_.max_traces == 0) continue;
    std::vector<uint32_t> series;
    for (const auto& named : registry_.SeriesOfService(static_cast<uint32_t>(c.key))) {
      series.push_back(named.series);
    }
    const absl::flat_hash_set<uint32_t> own(series.begin(), series.end());
    std::vector<std::pair<int64_t, ExemplarRef>> keyed;
    for (ExemplarRef& trace : ExemplarsOf(store_, series, first_bucket, last_bucket)) {
      const bool broken = std::any_of(
          trace->spans.begin(), trace->spans.end(),
          [&](const ExemplarSpan& span) { return span.orphan && own.contains(span.series); });
      if (broken) keyed.emplace_back(TraceEndUnixNano(*trace), std::move(trace));
    }
    cause.traces = Best(std::move(keyed), options_.max_traces);
  }
  return out;
}

}  // namespace traceslo::slo
