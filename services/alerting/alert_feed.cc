#include "traceslo/alerting/alert_feed.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <utility>

#include "traceslo/config/config.h"

namespace traceslo::alerting {
namespace {

constexpr std::string_view kSignatureLabel = "signature";
constexpr std::string_view kCauseServiceLabel = "cause_service";

std::string_view AlertName(const slo::Slo& slo, const slo::AlertStatus& status) {
  if (status.no_data) return "SloNoData";
  if (slo.sli.kind == slo::SliKind::kLatencyQuantile) return "SloLatencyQuantile";
  return "SloBurnRate";
}

Cause::Kind KindOf(slo::AlertCause::Kind kind) {
  switch (kind) {
    case slo::AlertCause::Kind::kSignature:
      return Cause::Kind::kSignature;
    case slo::AlertCause::Kind::kSlowOperation:
      return Cause::Kind::kSlowOperation;
    case slo::AlertCause::Kind::kPropagationBreak:
      return Cause::Kind::kPropagationBreak;
  }
  return Cause::Kind::kSignature;
}

std::string Fixed(double value, int digits) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
  return buffer;
}

// The generated summary: what fires, in one line a phone shows whole.
std::string Summary(const slo::Slo& slo, const slo::AlertStatus& status) {
  const std::string name = slo.service + " " + slo.name;
  if (status.no_data) return name + ": no events";
  if (slo.sli.kind == slo::SliKind::kLatencyQuantile) {
    return name + ": p" + Fixed(slo.sli.latency_quantile.quantile * 100, 0) + " above " +
           config::FormatDuration(slo.sli.latency_quantile.threshold) + " over " +
           config::FormatDuration(slo.sli.latency_quantile.window);
  }
  return name + ": error budget burning " + Fixed(status.burn_rate_long, 1) + "x over " +
         config::FormatDuration(status.long_window) + " and " + Fixed(status.burn_rate_short, 1) +
         "x over " + config::FormatDuration(status.short_window) + " (fires at " +
         Fixed(status.threshold_burn_rate, 1) + "x)";
}

}  // namespace

AlertFeed::AlertFeed(AlertFeedOptions options, const slo::Evaluator& evaluator,
                     const slo::CauseFinder& causes, AlertRouter& router)
    : options_(std::move(options)), evaluator_(evaluator), finder_(causes), router_(router) {}

void AlertFeed::Seed(const std::vector<Alert>& firing) {
  for (const Alert& alert : firing) {
    if (!alert.firing) continue;
    Labels base = alert.labels;
    base.erase(std::string(kSignatureLabel));
    base.erase(std::string(kCauseServiceLabel));
    const std::string key = Fingerprint(base);
    if (auto service = alert.labels.find(std::string(kCauseServiceLabel));
        service != alert.labels.end() && !alert.causes.empty()) {
      origins_[key][alert.causes.front().id] = service->second;
    }
    std::vector<Cause>& sticky = sticky_[key];
    for (const Cause& cause : alert.causes) {
      const bool known = std::any_of(sticky.begin(), sticky.end(),
                                     [&](const Cause& c) { return c.id == cause.id; });
      if (!known) sticky.push_back(cause);
    }
  }
}

std::vector<Alert> AlertFeed::AlertsOf(const slo::Slo& slo, const slo::AlertStatus& status,
                                       int64_t now_unix_nano, bool pin) {
  Labels labels = slo::AlertLabels(slo, status.severity);
  labels["alertname"] = std::string(AlertName(slo, status));
  const std::string key = Fingerprint(labels);

  std::vector<Cause>& sticky = sticky_[key];
  if (!status.no_data) {
    std::chrono::milliseconds window = status.short_window;
    if (window.count() == 0) {
      // Warming, never fired: the shortest short window of its severity's tiers burns.
      for (const slo::BurnRateTier& tier : slo.alerting.tiers) {
        if (tier.severity != status.severity) continue;
        if (window.count() == 0 || tier.short_window < window) window = tier.short_window;
      }
    }
    if (slo.sli.kind == slo::SliKind::kLatencyQuantile) window = slo.sli.latency_quantile.window;
    const int64_t last = pipeline::BucketOfUnixNanos(now_unix_nano);
    const int64_t buckets =
        std::max<int64_t>(1, window.count() / (pipeline::kBucketSeconds * 1000));
    // A cause that began downstream is named by its origin (service and signature), so every
    // service it reaches names the same cause; causes with one origin become one.
    std::vector<Cause> fresh;
    std::map<std::string, std::string> origin_service;  // by cause id
    for (const slo::AlertCause& found : finder_.Find(slo, last - buckets + 1, last)) {
      Cause cause{.kind = KindOf(found.kind),
                  .id = found.id,
                  .title = found.title,
                  .sample_message = found.sample_message,
                  .count = found.count,
                  .share = found.share};
      if (!found.origin_service.empty()) {
        cause.id = found.origin_signature;
        cause.title = found.origin_service + ": " + found.origin_title;
        origin_service[cause.id] = found.origin_service;
        // Named by its own signature before its traces completed and showed the origin: the
        // origin replaces it (that alert was held back, origin_hold, so it never paged).
        std::erase_if(sticky, [&](const Cause& c) { return c.id == found.id; });
        if (auto named = named_at_.find(key); named != named_at_.end()) {
          named->second.erase(found.id);
        }
      }
      for (const pipeline::ExemplarRef& trace : found.traces) {
        cause.trace_ids.push_back(TraceIdHex(trace->trace_id));
      }
      if (pin) Pin(found.traces);
      auto same = std::find_if(fresh.begin(), fresh.end(),
                               [&](const Cause& c) { return c.id == cause.id; });
      if (same == fresh.end()) {
        fresh.push_back(std::move(cause));
        continue;
      }
      same->count += cause.count;
      same->share += cause.share;
      for (std::string& id : cause.trace_ids) {
        if (same->trace_ids.size() < finder_.options().max_traces)
          same->trace_ids.push_back(std::move(id));
      }
    }
    for (auto& [id, service] : origin_service) origins_[key][id] = service;
    std::set<std::string> shown;
    for (const Cause& cause : fresh) shown.insert(cause.id);
    for (Cause& cause : fresh) {
      auto it = std::find_if(sticky.begin(), sticky.end(),
                             [&](const Cause& c) { return c.id == cause.id; });
      if (it == sticky.end()) {
        named_at_[key].try_emplace(cause.id, now_unix_nano);
        sticky.push_back(std::move(cause));
      } else {
        // Fresh figures; traces only when some were found (keep the links that opened before).
        if (cause.trace_ids.empty()) cause.trace_ids = std::move(it->trace_ids);
        *it = std::move(cause);
      }
    }
    // Bounded: past max_sticky_causes, the causes named longest ago that no longer show go.
    while (sticky.size() > options_.max_sticky_causes) {
      auto gone = std::find_if(sticky.begin(), sticky.end(),
                               [&](const Cause& c) { return !shown.contains(c.id); });
      if (gone == sticky.end()) break;
      if (auto origins = origins_.find(key); origins != origins_.end()) {
        origins->second.erase(gone->id);
      }
      if (auto named = named_at_.find(key); named != named_at_.end()) {
        named->second.erase(gone->id);
      }
      sticky.erase(gone);
    }
  }

  Alert base{.labels = labels,
             .annotations = slo.alerting.annotations,
             .firing = true,
             .starts_at_unix_nano = status.fired_at_unix_nano,
             .generator_url = options_.external_url + "/alerts"};
  base.annotations.emplace("summary", Summary(slo, status));
  if (!slo.description.empty()) base.annotations.emplace("description", slo.description);

  std::vector<Alert> out;
  for (const Cause& cause : sticky) {
    if (cause.kind != Cause::Kind::kSignature) continue;
    Alert& alert = out.emplace_back(base);
    alert.labels[std::string(kSignatureLabel)] = cause.id;
    if (auto origins = origins_.find(key); origins != origins_.end()) {
      if (auto service = origins->second.find(cause.id); service != origins->second.end()) {
        alert.labels[std::string(kCauseServiceLabel)] = service->second;
      }
    }
    alert.causes = {cause};
    if (cause.trace_ids.empty() && options_.origin_hold.count() > 0) {
      if (auto named = named_at_.find(key); named != named_at_.end()) {
        auto at = named->second.find(cause.id);
        if (at != named->second.end() &&
            now_unix_nano - at->second < options_.origin_hold.count()) {
          alert.firing = false;  // held: no trace shows where it began yet
        }
      }
    }
  }
  if (out.empty()) {
    Alert& alert = out.emplace_back(std::move(base));
    alert.causes = sticky;  // slow operations or propagation breaks, if any
  }
  return out;
}

void AlertFeed::Update(int64_t now_unix_nano) { Update(now_unix_nano, nullptr); }

void AlertFeed::Update(int64_t now_unix_nano, const std::function<bool(std::string_view)>& owns) {
  if (owns) {
    // A group whose erasure failed is loaded again after a restart and forgotten here again.
    (void)router_.Forget([&](const Alert& alert) {
      auto service = alert.labels.find("service");
      return service != alert.labels.end() && !owns(service->second);
    });
  }
  std::vector<Alert> firing;
  std::vector<Alert> warming;
  std::map<std::string, std::vector<Cause>> keep;
  decltype(causes_by_alert_) causes;
  for (const slo::AlertStatus& status : evaluator_.Alerts()) {
    if (owns && !owns(status.service)) continue;
    const bool fires = status.state == slo::AlertState::kFiring;
    if (!fires && !status.warming && status.state != slo::AlertState::kPending) continue;
    const std::optional<slo::Slo> slo = evaluator_.FindSlo(status.service, status.slo);
    if (!slo) continue;
    if (!fires) {
      // Labelled and attributed as it will fire, so it names the groups it will open.
      for (Alert& alert : AlertsOf(*slo, status, now_unix_nano, /*pin=*/false)) {
        alert.firing = false;
        warming.push_back(std::move(alert));
      }
      continue;
    }
    std::vector<Cause>& of = causes[{status.service, status.slo, status.severity, status.no_data}];
    for (Alert& alert : AlertsOf(*slo, status, now_unix_nano, /*pin=*/true)) {
      of.insert(of.end(), alert.causes.begin(), alert.causes.end());
      (alert.firing ? firing : warming).push_back(std::move(alert));
    }
  }
  // Causes stay attached only while their SLO alert fires or warms.
  std::map<std::string, std::map<std::string, std::string>> keep_origins;
  std::map<std::string, std::map<std::string, int64_t>> keep_named;
  for (const std::vector<Alert>* alerts : {&firing, &warming}) {
    for (const Alert& alert : *alerts) {
      Labels base = alert.labels;
      base.erase(std::string(kSignatureLabel));
      base.erase(std::string(kCauseServiceLabel));
      const std::string key = Fingerprint(base);
      if (keep.contains(key)) continue;  // an SLO alert with several causes: its first alert
      if (auto it = sticky_.find(key); it != sticky_.end()) keep[key] = std::move(it->second);
      if (auto it = origins_.find(key); it != origins_.end()) keep_origins[key] = it->second;
      if (auto it = named_at_.find(key); it != named_at_.end()) keep_named[key] = it->second;
    }
  }
  sticky_ = std::move(keep);
  origins_ = std::move(keep_origins);
  named_at_ = std::move(keep_named);
  router_.Sync(firing, warming, now_unix_nano);
  MutexLock lock(mu_);
  firing_ = std::move(firing);
  causes_by_alert_ = std::move(causes);
}

std::vector<Cause> AlertFeed::CausesOf(const slo::AlertStatus& status) const {
  MutexLock lock(mu_);
  auto it = causes_by_alert_.find({status.service, status.slo, status.severity, status.no_data});
  return it == causes_by_alert_.end() ? std::vector<Cause>{} : it->second;
}

void AlertFeed::Pin(const std::vector<pipeline::ExemplarRef>& traces) {
  MutexLock lock(mu_);
  for (const pipeline::ExemplarRef& trace : traces) {
    if (!trace) continue;
    auto [it, inserted] = pinned_.try_emplace(trace->trace_id, trace);
    if (!inserted) continue;
    pin_order_.push_back(trace->trace_id);
    while (pin_order_.size() > options_.max_pinned_traces) {
      pinned_.erase(pin_order_.front());
      pin_order_.pop_front();
    }
  }
}

pipeline::ExemplarRef AlertFeed::PinnedTrace(const TraceId& trace_id) const {
  MutexLock lock(mu_);
  auto it = pinned_.find(trace_id);
  return it == pinned_.end() ? nullptr : it->second;
}

std::vector<Alert> AlertFeed::Firing() const {
  MutexLock lock(mu_);
  return firing_;
}

}  // namespace traceslo::alerting
