#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "traceslo/alerting/notification.h"
#include "traceslo/alerting/router.h"
#include "traceslo/common/mutex.h"
#include "traceslo/common/span.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/slo/causes.h"
#include "traceslo/slo/evaluator.h"

namespace traceslo::alerting {

struct AlertFeedOptions {
  std::string external_url;  // web.external_url: the generator URL of every alert
  // Traces linked by notifications are kept here (newest last) so their links open after the
  // SLI store has let them go; the oldest go first past this count.
  size_t max_pinned_traces = 1'000;
  // Causes kept per SLO alert while it fires: beyond this, those named longest ago that no longer
  // show in the window are dropped (their alerts resolve), so a flood of new signatures in a long
  // incident cannot open groups without bound.
  size_t max_sticky_causes = 8;
  // A firing alert named by an error signature that no completed trace shows yet is held back
  // (handed to the router as warming, so it is never sent) for up to this long after the cause
  // was first named: its traces may still show that the error began in another service, which
  // renames the cause, and the page goes out once, under the origin's name. Set it to the time
  // traces take to complete (trace_max_age) plus an evaluation interval; zero holds nothing.
  std::chrono::nanoseconds origin_hold{0};
};

// The router's alerts from the evaluator's alert states, after every evaluation:
//
// - One alert per firing SLO alert and error signature that explains its short window
//   (slo::CauseFinder), labelled `signature`, so by default one group (one page) per cause, and
//   the same cause burning several SLOs or tiers lands in one group. Latency and partial-trace
//   alerts carry their slow operations / propagation breaks as causes, without a signature
//   label. An alert without causes (no signature in the window, a no_data alert) is one alert.
// - Causes are sticky while an SLO alert fires: a signature once named stays named (with fresh
//   figures while it still shows) until the SLO alert resolves (at most max_sticky_causes), so a
//   cause dropping out of the 80 % set mid-incident does not resolve and re-open groups.
// - Labels: alertname (SloBurnRate, SloLatencyQuantile, SloNoData), service, slo, severity,
//   the rule's labels, and signature; a cause that began in another service (the deepest error
//   span below this service's, slo::AlertCause::origin_*) is named by that service's signature
//   and labelled cause_service=<that service>, so the router can hold it back while that
//   service's own alert for the cause fires; annotations: the rule's, plus a generated `summary`
//   and `description` unless the rule sets them.
// - A signature no completed trace shows yet is held back for origin_hold (see there).
// - The exemplar traces the causes link are pinned, so /traces/{id} opens them later.
//
// Update() runs on the evaluator thread only; the queries are thread-safe. `evaluator`, `causes`
// and `router` are borrowed and must outlive the feed.
class AlertFeed {
 public:
  AlertFeed(AlertFeedOptions options, const slo::Evaluator& evaluator,
            const slo::CauseFinder& causes, AlertRouter& router);

  // The firing alerts the router holds from before a restart: their signatures stay attached to
  // their SLO alerts (the restored SLI minutes carry no signatures to find them again). Call
  // before the first Update().
  void Seed(const std::vector<Alert>& firing);

  // Builds the alerts of every firing SLO alert at `now_unix_nano` and syncs the router with them
  // (alerts no longer firing resolve).
  void Update(int64_t now_unix_nano);
  // Kafka mode: only the SLO alerts of the services `owns` answers true for; the router forgets
  // the others' alerts without notifying (another instance evaluates them now).
  void Update(int64_t now_unix_nano, const std::function<bool(std::string_view)>& owns);

  // A trace linked by a notification, or null.
  pipeline::ExemplarRef PinnedTrace(const TraceId& trace_id) const;
  // What the last Update() gave the router.
  std::vector<Alert> Firing() const;
  // The causes the last Update() attached to this firing SLO alert (empty when not firing).
  std::vector<Cause> CausesOf(const slo::AlertStatus& status) const;

 private:
  // The alerts of one SLO alert with its causes. `pin`: keep the causes' exemplar traces for
  // /traces/{id} (firing alerts; a warming one is never sent, so its traces are not linked).
  std::vector<Alert> AlertsOf(const slo::Slo& slo, const slo::AlertStatus& status,
                              int64_t now_unix_nano, bool pin);
  void Pin(const std::vector<pipeline::ExemplarRef>& traces);

  const AlertFeedOptions options_;
  const slo::Evaluator& evaluator_;
  const slo::CauseFinder& finder_;
  AlertRouter& router_;
  // Sticky causes per SLO alert (keyed by the fingerprint of its labels without `signature`),
  // in the order first named. Evaluator thread only.
  std::map<std::string, std::vector<Cause>> sticky_;
  // Per SLO alert as sticky_: the cause ids that began in another service, and that service.
  std::map<std::string, std::map<std::string, std::string>> origins_;
  // Per SLO alert as sticky_: when each cause was first named (unix ns), for origin_hold.
  std::map<std::string, std::map<std::string, int64_t>> named_at_;

  mutable Mutex mu_;
  std::vector<Alert> firing_ ABSL_GUARDED_BY(mu_);
  // By (service, slo, severity, no_data) of the SLO alert.
  std::map<std::tuple<std::string, std::string, slo::Severity, bool>, std::vector<Cause>>
      causes_by_alert_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<TraceId, pipeline::ExemplarRef> pinned_ ABSL_GUARDED_BY(mu_);
  std::deque<TraceId> pin_order_ ABSL_GUARDED_BY(mu_);  // oldest first
};

}  // namespace traceslo::alerting
