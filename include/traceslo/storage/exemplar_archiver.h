#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "traceslo/common/mutex.h"
#include "traceslo/common/span.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/storage/exemplar_store.h"

namespace traceslo::storage {

struct ExemplarArchiverOptions {
  // How far back from the bucket of `now` ArchiveLatest() looks at the SLI store's exemplars:
  // the ticker's period plus slack for spans that arrive late.
  std::chrono::milliseconds lookback{60'000};
  // Services looked at per ArchiveLatest() call; the next call goes on where this one stopped,
  // so every service has its turn.
  size_t max_services_per_call = 100;
  // Trace ids per KeepLinked() call; later ones are ignored.
  size_t max_linked_per_call = 100;
};

// What KeepLinked() did with the ids it was given.
struct LinkCounts {
  uint64_t stored = 0;    // found in the SLI store and stored
  uint64_t relinked = 0;  // gone from the SLI store but already stored: linked again
  uint64_t missing = 0;   // in neither
  friend bool operator==(const LinkCounts&, const LinkCounts&) = default;
};

// Copies exemplar traces from the SLI store's memory into an ExemplarStore: each service's
// latest slow and error trace on a ticker (ArchiveLatest, every ~30 s), and the traces an alert
// links when it does (KeepLinked). Thread-safe. `store`, `registry` and `kept` are borrowed and
// must outlive the archiver. Errors are the ExemplarStore's.
class ExemplarArchiver {
 public:
  ExemplarArchiver(const ExemplarArchiverOptions& options, const pipeline::SliStore& store,
                   const pipeline::SeriesRegistry& registry, ExemplarStore& kept);

  // For up to max_services_per_call services: among the exemplars of the service's series in
  // the lookback window, the latest (by end time) trace with an error span, kept as kKeptError,
  // and the latest trace without one (only a bucket's slowest trace is kept without an error),
  // kept as kKeptSlow; both for that service. Traces this call's predecessor stored are not
  // written again. Returns how many traces were stored.
  absl::StatusOr<size_t> ArchiveLatest(int64_t now_unix_nano);

  // Stores the traces of `trace_ids` that the SLI store still holds as linked by an alert of
  // `service` (kKeptForAlert), and links the others again if they are already stored.
  absl::StatusOr<LinkCounts> KeepLinked(const std::vector<TraceId>& trace_ids,
                                        std::string_view service, int64_t now_unix_nano);

 private:
  // KeptTraceOf with the SLI store's signatures, each looked up once per call.
  class Resolver;

  const ExemplarArchiverOptions options_;
  const pipeline::SliStore& store_;
  const pipeline::SeriesRegistry& registry_;
  ExemplarStore& kept_;

  Mutex mu_;  // one ArchiveLatest() at a time
  uint32_t next_service_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_set<TraceId> last_archived_ ABSL_GUARDED_BY(mu_);
};

}  // namespace traceslo::storage
