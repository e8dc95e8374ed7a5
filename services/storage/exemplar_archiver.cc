#include "traceslo/storage/exemplar_archiver.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"

namespace traceslo::storage {
namespace {

int64_t EndOf(const pipeline::ExemplarTrace& trace) {
  return trace.start_unix_nano + static_cast<int64_t>(trace.duration_nanos);
}

bool HasError(const pipeline::ExemplarTrace& trace) {
  return std::any_of(trace.spans.begin(), trace.spans.end(),
                     [](const pipeline::ExemplarSpan& s) { return s.error; });
}

// Keeps `candidate` in `latest` if it ends later (the first one seen wins a tie).
void KeepLatest(pipeline::ExemplarRef& latest, const pipeline::ExemplarRef& candidate) {
  if (latest == nullptr || EndOf(*candidate) > EndOf(*latest)) latest = candidate;
}

}  // namespace

class ExemplarArchiver::Resolver {
 public:
  Resolver(const pipeline::SliStore& store, const pipeline::SeriesRegistry& registry)
      : store_(store), registry_(registry) {}

  KeptTrace Resolve(const pipeline::ExemplarTrace& trace, uint32_t reasons,
                    std::string_view service) {
    KeptTrace kept = KeptTraceOf(trace, registry_, [&](uint64_t id) {
      auto [it, inserted] = texts_.try_emplace(id);
      if (inserted) {
        if (std::optional<pipeline::SignatureInfo> info = store_.Signature(id)) {
          it->second = SignatureTextOf(*info);
        }
      }
      return it->second;
    });
    kept.reasons = reasons;
    kept.service = std::string(service);
    return kept;
  }

 private:
  const pipeline::SliStore& store_;
  const pipeline::SeriesRegistry& registry_;
  absl::flat_hash_map<uint64_t, std::optional<SignatureText>> texts_;
};

ExemplarArchiver::ExemplarArchiver(const ExemplarArchiverOptions& options,
                                   const pipeline::SliStore& store,
                                   const pipeline::SeriesRegistry& registry, ExemplarStore& kept)
    : options_(options), store_(store), registry_(registry), kept_(kept) {}

absl::StatusOr<size_t> ExemplarArchiver::ArchiveLatest(int64_t now_unix_nano) {
  MutexLock lock(mu_);
  const uint32_t services = registry_.service_count();
  if (services == 0) return 0;
  const uint32_t n = static_cast<uint32_t>(
      std::min<size_t>(services, std::max<size_t>(options_.max_services_per_call, 1)));
  const int64_t last_bucket = pipeline::BucketOfUnixNanos(now_unix_nano);
  const int64_t buckets =
      std::max<int64_t>(1, options_.lookback.count() / (pipeline::kBucketSeconds * 1000));
  const int64_t first_bucket = last_bucket - buckets + 1;

  Resolver resolver(store_, registry_);
  std::vector<KeptTrace> batch;
  absl::flat_hash_set<TraceId> archived;
  uint32_t service = next_service_ % services;
  for (uint32_t i = 0; i < n; ++i, service = (service + 1) % services) {
    pipeline::ExemplarRef slow, error;
    for (const pipeline::SeriesRegistry::NamedSeries& s : registry_.SeriesOfService(service)) {
      for (const pipeline::ExemplarRef& trace :
           store_.Exemplars(s.series, first_bucket, last_bucket)) {
        KeepLatest(HasError(*trace) ? error : slow, trace);
      }
    }
    const std::string_view name = registry_.ServiceName(service);
    for (const auto& [trace, reason] : {std::pair{slow, kKeptSlow}, std::pair{error, kKeptError}}) {
      if (trace == nullptr) continue;
      archived.insert(trace->trace_id);
      if (last_archived_.contains(trace->trace_id)) continue;
      batch.push_back(resolver.Resolve(*trace, reason, name));
    }
  }
  if (absl::Status status = kept_.Put(batch, now_unix_nano); !status.ok()) return status;
  next_service_ = service;
  last_archived_ = std::move(archived);
  return batch.size();
}

absl::StatusOr<LinkCounts> ExemplarArchiver::KeepLinked(const std::vector<TraceId>& trace_ids,
                                                        std::string_view service,
                                                        int64_t now_unix_nano) {
  LinkCounts counts;
  Resolver resolver(store_, registry_);
  std::vector<KeptTrace> found;
  std::vector<TraceId> gone;
  const size_t n = std::min(trace_ids.size(), options_.max_linked_per_call);
  for (size_t i = 0; i < n; ++i) {
    if (pipeline::ExemplarRef trace = store_.FindTrace(trace_ids[i])) {
      found.push_back(resolver.Resolve(*trace, kKeptForAlert, service));
    } else {
      gone.push_back(trace_ids[i]);
    }
  }
  if (absl::Status status = kept_.Put(found, now_unix_nano); !status.ok()) return status;
  counts.stored = found.size();
  absl::StatusOr<uint64_t> relinked = kept_.Relink(gone, now_unix_nano);
  if (!relinked.ok()) return relinked.status();
  counts.relinked = *relinked;
  counts.missing = gone.size() - std::min<uint64_t>(gone.size(), *relinked);
  return counts;
}

}  // namespace traceslo::storage
