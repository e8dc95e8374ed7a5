#pragma once

#include <vector>

#include "traceslo/common/mutex.h"
#include "traceslo/pipeline/span_sink.h"

namespace traceslo::fakes {

// Keeps what it is given, or refuses with a chosen status. Thread-safe.
class FakeSpanSink final : public pipeline::SpanSink {
 public:
  void RefuseWith(absl::Status status) {
    MutexLock lock(mu_);
    refusal_ = std::move(status);
  }
  std::vector<SpanBatch> batches() {
    MutexLock lock(mu_);
    return batches_;
  }

  // traceslo::pipeline::SpanSink
  absl::Status TryEnqueue(SpanBatch& batch) override {
    MutexLock lock(mu_);
    if (!refusal_.ok()) return refusal_;
    batches_.push_back(std::move(batch));
    batch.Clear();
    return absl::OkStatus();
  }

 private:
  Mutex mu_;
  absl::Status refusal_ ABSL_GUARDED_BY(mu_);
  std::vector<SpanBatch> batches_ ABSL_GUARDED_BY(mu_);
};

}  // namespace traceslo::fakes
