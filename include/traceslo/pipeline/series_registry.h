#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "traceslo/common/mutex.h"

namespace traceslo::pipeline {

// Dense ids for services and (service, operation) series, with the caps that keep label values
// a closed set: the first `max_services` services and, per service, the first
// `max_operations_per_service` operations keep their own ids; later ones fold into the name
// kOther ("other"). First come, first kept, because a Prometheus counter cannot move from one
// label set to another once exported. Ids never change or go away, so shards cache them.
// Thread-safe; Resolve() takes a lock, so shards call it only on a cache miss.
class SeriesRegistry {
 public:
  static constexpr std::string_view kOther = "other";
  static constexpr uint32_t kMaxIds = 1u << 24;  // ids fit in 24 bits

  struct Ids {
    uint32_t series = 0;
    uint32_t service = 0;
    friend bool operator==(const Ids&, const Ids&) = default;
  };
  struct Overflow {
    uint64_t services = 0;    // resolutions folded into service "other"
    uint64_t operations = 0;  // resolutions folded into operation "other"
  };

  SeriesRegistry(uint32_t max_services, uint32_t max_operations_per_service);

  Ids Resolve(std::string_view service, std::string_view operation);
  // The id of a service, created under the same cap, without a series (for restoring the
  // trace-level SLIs of a service that had no entry spans).
  uint32_t ResolveService(std::string_view service);

  // Names of an id returned by Resolve (the strings never move).
  std::string_view ServiceName(uint32_t service) const;
  std::string_view OperationName(uint32_t series) const;
  uint32_t ServiceOf(uint32_t series) const;

  uint32_t series_count() const;
  uint32_t service_count() const;
  Overflow overflow() const;
  // Service id by name, or -1 when the service was never seen (for APIs and rule evaluation).
  int64_t FindService(std::string_view service) const;
  // Every series of the service (its own operations, then "other" if created), with names.
  struct NamedSeries {
    uint32_t series;
    std::string_view operation;
  };
  std::vector<NamedSeries> SeriesOfService(uint32_t service) const;
  // Series id by names, or -1 (operations that were folded are not found).
  int64_t FindSeries(std::string_view service, std::string_view operation) const;

 private:
  // The service's id, created if new and under the cap; the "other" service (folded = true)
  // once the cap is reached.
  uint32_t ServiceIdLocked(std::string_view service, bool& folded)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  struct Service {
    std::string name;
    absl::flat_hash_map<std::string, uint32_t> operations;  // capped, plus "other"
    uint32_t own_operations = 0;
    uint32_t other_series = UINT32_MAX;
  };
  struct Series {
    uint32_t service;
    std::string operation;
  };
  uint32_t AddSeries(uint32_t service, std::string_view operation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The service's "other" operation series, created on first use.
  uint32_t OtherSeries(uint32_t service) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint32_t max_services_;
  const uint32_t max_operations_;
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, uint32_t> service_ids_ ABSL_GUARDED_BY(mu_);
  std::deque<Service> services_ ABSL_GUARDED_BY(mu_);  // deque: names keep their address
  std::deque<Series> series_ ABSL_GUARDED_BY(mu_);
  uint32_t other_service_ ABSL_GUARDED_BY(mu_) = UINT32_MAX;
  Overflow overflow_ ABSL_GUARDED_BY(mu_);
};

}  // namespace traceslo::pipeline
