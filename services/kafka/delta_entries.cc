#include "services/kafka/delta_entries.h"

#include <string>

namespace traceslo::kafka {

void WriteSeriesCounts(const pipeline::SeriesDelta& d, v1::SeriesEntry& e) {
  e.set_bucket(d.bucket);
  e.set_requests(d.requests);
  e.set_errors(d.errors);
  e.set_sum_seconds(d.sum_seconds);
  for (uint64_t count : d.classic) e.add_classic(count);
  std::string sketch;
  d.latency.AppendEncoded(sketch);
  e.set_latency(std::move(sketch));
  for (const pipeline::SignatureCount& s : d.signatures) {
    v1::SignatureCount& c = *e.add_signatures();
    c.set_id(s.id);
    c.set_count(s.count);
  }
}

void ReadSeriesCounts(const v1::SeriesEntry& e, pipeline::SeriesDelta& d) {
  d.bucket = e.bucket();
  d.requests = e.requests();
  d.errors = e.errors();
  d.sum_seconds = e.sum_seconds();
  for (size_t b = 0; b < pipeline::kClassicBuckets; ++b) {
    d.classic[b] = e.classic(static_cast<int>(b));
  }
  d.signatures.clear();
  for (const v1::SignatureCount& c : e.signatures()) {
    d.signatures.push_back(pipeline::SignatureCount{.id = c.id(), .count = c.count()});
  }
}

void WriteServiceCounts(const pipeline::ServiceDelta& d, v1::ServiceEntry& e) {
  e.set_bucket(d.bucket);
  e.set_traces(d.traces);
  e.set_error_traces_root(d.error_traces_root);
  e.set_error_traces_origin(d.error_traces_origin);
  e.set_partial_traces(d.partial_traces);
  e.set_propagation_breaks(d.propagation_breaks);
}

void ReadServiceCounts(const v1::ServiceEntry& e, pipeline::ServiceDelta& d) {
  d.bucket = e.bucket();
  d.traces = e.traces();
  d.error_traces_root = e.error_traces_root();
  d.error_traces_origin = e.error_traces_origin();
  d.partial_traces = e.partial_traces();
  d.propagation_breaks = e.propagation_breaks();
}

}  // namespace traceslo::kafka
