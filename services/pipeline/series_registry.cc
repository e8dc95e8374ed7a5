#include "traceslo/pipeline/series_registry.h"

#include <algorithm>
#include <cassert>

namespace traceslo::pipeline {
namespace {

// Debian's absl has its own string_view; heterogeneous look-ups need that one.
absl::string_view Key(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

SeriesRegistry::SeriesRegistry(uint32_t max_services, uint32_t max_operations_per_service)
    : max_services_(max_services), max_operations_(max_operations_per_service) {
  assert(max_services_ >= 1 && max_operations_ >= 1);
}

uint32_t SeriesRegistry::AddSeries(uint32_t service, std::string_view operation) {
  const auto id = static_cast<uint32_t>(series_.size());
  series_.push_back(Series{service, std::string(operation)});
  return id;
}

uint32_t SeriesRegistry::OtherSeries(uint32_t service_id) {
  Service& service = services_[service_id];
  if (service.other_series == UINT32_MAX) service.other_series = AddSeries(service_id, kOther);
  return service.other_series;
}

uint32_t SeriesRegistry::ServiceIdLocked(std::string_view service_name, bool& folded) {
  folded = false;
  if (auto it = service_ids_.find(Key(service_name)); it != service_ids_.end()) return it->second;
  if (service_ids_.size() < max_services_) {
    const auto service_id = static_cast<uint32_t>(services_.size());
    services_.push_back(Service{std::string(service_name), {}, 0, UINT32_MAX});
    service_ids_.emplace(std::string(service_name), service_id);
    return service_id;
  }
  // Every operation of a folded service goes to one series: ("other", "other"). A real service
  // named "other" is the same service, so label sets never repeat.
  folded = true;
  ++overflow_.services;
  if (other_service_ == UINT32_MAX) {
    if (auto it = service_ids_.find(Key(kOther)); it != service_ids_.end()) {
      other_service_ = it->second;
    } else {
      other_service_ = static_cast<uint32_t>(services_.size());
      services_.push_back(Service{std::string(kOther), {}, 0, UINT32_MAX});
      service_ids_.emplace(std::string(kOther), other_service_);
    }
  }
  return other_service_;
}

uint32_t SeriesRegistry::ResolveService(std::string_view service) {
  MutexLock lock(mu_);
  bool folded = false;
  return ServiceIdLocked(service, folded);
}

SeriesRegistry::Ids SeriesRegistry::Resolve(std::string_view service_name,
                                            std::string_view operation) {
  MutexLock lock(mu_);
  bool folded = false;
  const uint32_t service_id = ServiceIdLocked(service_name, folded);
  if (folded) return Ids{OtherSeries(service_id), service_id};
  Service& service = services_[service_id];
  if (service_id == other_service_ || operation == kOther) {
    return Ids{OtherSeries(service_id), service_id};
  }
  if (auto it = service.operations.find(Key(operation)); it != service.operations.end()) {
    return Ids{it->second, service_id};
  }
  if (service.own_operations < max_operations_) {
    ++service.own_operations;
    const uint32_t series = AddSeries(service_id, operation);
    service.operations.emplace(std::string(operation), series);
    return Ids{series, service_id};
  }
  ++overflow_.operations;
  return Ids{OtherSeries(service_id), service_id};
}

std::string_view SeriesRegistry::ServiceName(uint32_t service) const {
  MutexLock lock(mu_);
  return service < services_.size() ? std::string_view(services_[service].name)
                                    : std::string_view();
}

std::string_view SeriesRegistry::OperationName(uint32_t series) const {
  MutexLock lock(mu_);
  return series < series_.size() ? std::string_view(series_[series].operation) : std::string_view();
}

uint32_t SeriesRegistry::ServiceOf(uint32_t series) const {
  MutexLock lock(mu_);
  return series < series_.size() ? series_[series].service : 0;
}

uint32_t SeriesRegistry::series_count() const {
  MutexLock lock(mu_);
  return static_cast<uint32_t>(series_.size());
}

uint32_t SeriesRegistry::service_count() const {
  MutexLock lock(mu_);
  return static_cast<uint32_t>(services_.size());
}

SeriesRegistry::Overflow SeriesRegistry::overflow() const {
  MutexLock lock(mu_);
  return overflow_;
}

int64_t SeriesRegistry::FindService(std::string_view service) const {
  MutexLock lock(mu_);
  if (auto it = service_ids_.find(Key(service)); it != service_ids_.end()) return it->second;
  return -1;
}

int64_t SeriesRegistry::FindSeries(std::string_view service, std::string_view operation) const {
  MutexLock lock(mu_);
  auto it = service_ids_.find(Key(service));
  if (it == service_ids_.end()) return -1;
  const Service& s = services_[it->second];
  if (operation == kOther) return s.other_series == UINT32_MAX ? -1 : int64_t{s.other_series};
  auto op = s.operations.find(Key(operation));
  return op == s.operations.end() ? -1 : int64_t{op->second};
}

std::vector<SeriesRegistry::NamedSeries> SeriesRegistry::SeriesOfService(uint32_t service) const {
  std::vector<NamedSeries> out;
  MutexLock lock(mu_);
  if (service >= services_.size()) return out;
  const Service& s = services_[service];
  for (const auto& [name, id] : s.operations) out.push_back({id, series_[id].operation});
  std::sort(out.begin(), out.end(),
            [](const NamedSeries& a, const NamedSeries& b) { return a.series < b.series; });
  if (s.other_series != UINT32_MAX)
    out.push_back({s.other_series, series_[s.other_series].operation});
  return out;
}

}  // namespace traceslo::pipeline
