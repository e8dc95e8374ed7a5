#include <limits>
#include <utility>

#include "prometheus/client_metric.h"
#include "prometheus/metric_family.h"
#include "traceslo/alerting/dispatcher.h"  // DispatcherMetrics
#include "traceslo/common/metric_values.h"

namespace traceslo::alerting {
namespace {

using metrics::Family;

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Enqueue to delivered: immediate deliveries, retries, receivers down for hours.
constexpr double kBounds[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400};

constexpr const char* kOutcomeNames[DispatcherMetrics::kOutcomes] = {
    "delivered", "retried", "failed", "expired", "superseded", "dropped"};

}  // namespace

DispatcherMetrics::DispatcherMetrics(const std::vector<std::string>& receivers) {
  MutexLock lock(mu_);
  for (const std::string& receiver : receivers) {
    series_[receiver].buckets.assign(std::size(kBounds), 0);
  }
}

void DispatcherMetrics::Count(const std::string& receiver, Outcome outcome) {
  MutexLock lock(mu_);
  auto it = series_.find(receiver);
  if (it != series_.end()) ++it->second.counts[static_cast<size_t>(outcome)];
}

void DispatcherMetrics::SetQueueLength(const std::string& receiver, size_t length) {
  MutexLock lock(mu_);
  auto it = series_.find(receiver);
  if (it != series_.end()) it->second.queue_length = length;
}

void DispatcherMetrics::ObserveDelivery(const std::string& receiver, double seconds) {
  MutexLock lock(mu_);
  auto it = series_.find(receiver);
  if (it == series_.end()) return;
  Series& s = it->second;
  for (size_t i = 0; i < std::size(kBounds); ++i) {
    if (seconds <= kBounds[i]) {
      ++s.buckets[i];
      break;
    }
  }
  ++s.observations;
  s.sum += seconds;
}

uint64_t DispatcherMetrics::count(const std::string& receiver, Outcome outcome) const {
  MutexLock lock(mu_);
  auto it = series_.find(receiver);
  return it == series_.end() ? 0 : it->second.counts[static_cast<size_t>(outcome)];
}

size_t DispatcherMetrics::queue_length(const std::string& receiver) const {
  MutexLock lock(mu_);
  auto it = series_.find(receiver);
  return it == series_.end() ? 0 : it->second.queue_length;
}

std::vector<MetricFamily> DispatcherMetrics::Collect() const {
  MutexLock lock(mu_);
  auto total = Family("traceslo_notifications_total",
                      "Notifications by receiver and outcome: delivered, retried (an attempt "
                      "failed and will be repeated), failed (permanently), expired (older than "
                      "alerting.delivery.max_age), superseded (a newer state of the group was "
                      "delivered first), dropped (the receiver's queue was full).",
                      MetricType::Counter);
  auto queue = Family("traceslo_notification_queue_length",
                      "Notifications waiting in the outbox, by receiver.", MetricType::Gauge);
  auto latency = Family("traceslo_notification_delivery_seconds",
                        "Time from enqueueing a notification to its delivery, by receiver.",
                        MetricType::Histogram);
  for (const auto& [receiver, s] : series_) {
    for (size_t i = 0; i < kOutcomes; ++i) {
      ClientMetric m;
      m.label = {{"receiver", receiver}, {"outcome", kOutcomeNames[i]}};
      m.counter.value = static_cast<double>(s.counts[i]);
      total.metric.push_back(std::move(m));
    }
    ClientMetric q;
    q.label = {{"receiver", receiver}};
    q.gauge.value = static_cast<double>(s.queue_length);
    queue.metric.push_back(std::move(q));
    ClientMetric h;
    h.label = {{"receiver", receiver}};
    h.histogram.sample_count = s.observations;
    h.histogram.sample_sum = s.sum;
    uint64_t cumulative = 0;
    for (size_t i = 0; i < std::size(kBounds); ++i) {
      cumulative += s.buckets[i];
      h.histogram.bucket.push_back({.cumulative_count = cumulative, .upper_bound = kBounds[i]});
    }
    h.histogram.bucket.push_back({.cumulative_count = s.observations,
                                  .upper_bound = std::numeric_limits<double>::infinity()});
    latency.metric.push_back(std::move(h));
  }
  std::vector<MetricFamily> out;
  out.push_back(std::move(total));
  out.push_back(std::move(queue));
  out.push_back(std::move(latency));
  return out;
}

}  // namespace traceslo::alerting
