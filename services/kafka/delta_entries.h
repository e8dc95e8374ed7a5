#pragma once

// The counts of one series or service entry of a DeltaBatch, to and from the pipeline's deltas:
// what the record codec and stage 2's stored buckets share (names are set by the caller). The
// latency sketch is the caller's too (decoding it can fail). Private to services/kafka.

#include "traceslo/pipeline/sli_store.h"
#include "traceslo/v1/delta_batch.pb.h"

namespace traceslo::kafka {

// Writes bucket, requests, errors, duration sum, classic counts, the encoded latency sketch and
// the signature counts of `d` into `e`.
void WriteSeriesCounts(const pipeline::SeriesDelta& d, v1::SeriesEntry& e);
// Reads them back, all but the latency sketch; `e` must hold kClassicBuckets classic counts.
void ReadSeriesCounts(const v1::SeriesEntry& e, pipeline::SeriesDelta& d);

void WriteServiceCounts(const pipeline::ServiceDelta& d, v1::ServiceEntry& e);
void ReadServiceCounts(const v1::ServiceEntry& e, pipeline::ServiceDelta& d);

}  // namespace traceslo::kafka
