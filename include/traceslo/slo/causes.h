#pragma once

// Cause attribution for firing alerts: what accounts for an SLO's bad events over a window
// (normally the short window of the tier that fired), ranked, with example traces.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/slo/rule.h"

namespace traceslo::slo {

// One cause of an SLO's bad events in a window.
struct AlertCause {
  enum class Kind {
    kSignature,         // kErrors, kErrorTraces: an error signature of the entry spans
    kSlowOperation,     // kLatency, kLatencyQuantile: an operation (series) of the SLO
    kPropagationBreak,  // kPartialTraces: a service whose spans lost their parent
  };
  Kind kind = Kind::kSignature;
  // kSignature: the signature id as 16 lower-case hex digits; kSlowOperation: the operation
  // name; kPropagationBreak: the service name.
  std::string id;
  // kSignature: "<exception type>: <normalized message>", or without an exception the status
  // ("HTTP 503", "gRPC 14", "status ERROR") and the normalized status message; the others: the
  // operation or service name.
  std::string title;
  std::string sample_message;  // kSignature only: a message as sent (truncated)
  // The bad events it accounts for in the window: error entry spans of the signature, entry spans
  // of the operation slower than the threshold, propagation breaks recorded for the service.
  uint64_t count = 0;
  // count / the same counts of every cause candidate of the window (including errors whose
  // signature a cap left unnamed), in (0, 1].
  double share = 0;
  // Exemplar traces of the window, at most CauseOptions::max_traces, never null. kSignature:
  // error traces with a span of the signature, the newest (span end) first; kSlowOperation: the
  // slowest traces whose entry span of the operation took longer than the threshold, slowest
  // first; kPropagationBreak: traces with an orphan span of the service, the newest first. Only
  // traces the store still keeps (exemplar_retention) are found, so this may be empty.
  std::vector<pipeline::ExemplarRef> traces;
  // kSignature: where the error began when that is another service — in most of the exemplar
  // traces of this signature in the window, the deepest error span below a span of this
  // signature belongs to another service. That service's name, the deepest span's signature id
  // (16 hex digits) and its title; all empty when the error began here or no exemplar shows.
  std::string origin_service;
  std::string origin_signature;
  std::string origin_title;
};

struct CauseOptions {
  double coverage = 0.8;  // (0, 1]: causes are added, largest first, until they cover this share
  size_t max_causes = 5;  // never more than this even if coverage is not reached
  size_t max_traces = 3;  // per cause
  // Off: AlertCause::origin_* stay empty, so a cause is named by its own service's signature,
  // a function of the signature counts alone. Kafka mode turns it off: the exemplar traces that
  // show an origin are not part of a stage-2 partition's file or changelog, so an instance that
  // took a partition over could name a cause differently from its previous owner (another group,
  // another notification id), and the origin service's own alerts may be another instance's.
  bool origins = true;
};

// Finds the causes of an SLO's bad events from the SLI store:
//  - kErrors: the error signatures counted per bucket for the SLO's series (SloSeries).
//  - kErrorTraces: the error signatures of the entry spans of every series of the SLO's service.
//    An error trace counted for the service whose error began in a downstream service shows
//    the signature that reached this service's entry spans (the downstream one's own signature
//    shows in that service's SLOs), and error traces whose error spans were no entry spans of
//    this service have no signature here.
//  - kLatency, kLatencyQuantile: the SLO's series, each with its bad latency events
//    (LatencyEvents over the series' sketch of the window).
//  - kPartialTraces: every service with propagation breaks in the window.
// The candidates are ranked by count (highest first, then by id) and the smallest prefix whose
// counts reach `coverage` of all candidates' counts is returned, cut at max_causes. Errors whose
// signature a cap left unnamed (SliStore::SignatureCounts id 0) count in the total but are no
// cause, so coverage may not be reached. Buckets restored from disk after a restart carry no
// signatures: their errors have no causes.
// Thread-safe: each store query takes the store's lock (so one Find() may see publications that
// land between its queries). `registry` and `store` are borrowed and must outlive the finder.
class CauseFinder {
 public:
  CauseFinder(const CauseOptions& options, const pipeline::SeriesRegistry& registry,
              const pipeline::SliStore& store);

  // The causes of `slo`'s bad events over buckets [first_bucket, last_bucket]; empty when the
  // window has no bad events (or the kind has none, e.g. kLatencyQuantile with no slow events).
  std::vector<AlertCause> Find(const Slo& slo, int64_t first_bucket, int64_t last_bucket) const;

  const CauseOptions& options() const { return options_; }

 private:
  std::vector<AlertCause> Signatures(const std::vector<uint32_t>& series, int64_t first_bucket,
                                     int64_t last_bucket) const;
  std::vector<AlertCause> SlowOperations(const Slo& slo, int64_t first_bucket,
                                         int64_t last_bucket) const;
  std::vector<AlertCause> PropagationBreaks(int64_t first_bucket, int64_t last_bucket) const;

  const CauseOptions options_;
  const pipeline::SeriesRegistry& registry_;
  const pipeline::SliStore& store_;
};

}  // namespace traceslo::slo
