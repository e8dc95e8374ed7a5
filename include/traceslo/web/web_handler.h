#pragma once

#include <atomic>

#include "prometheus/registry.h"
#include "traceslo/http/server.h"
#include "traceslo/pipeline/sharded_pipeline.h"

namespace traceslo::web {

struct WebOptions {
  // POST /-/debug/pipeline/pause|resume, for tests that need a full queue. Off by default.
  bool debug_endpoints = false;
};

// The :8080 surface: /metrics, /-/healthy, /-/ready and (optionally) debug endpoints.
// Thread-safe. `registry` and `pipeline` are borrowed and must outlive it.
class WebHandler final : public http::Handler {
 public:
  WebHandler(const WebOptions& options, prometheus::Registry& registry,
             pipeline::ShardedPipeline& pipeline)
      : options_(options), registry_(registry), pipeline_(pipeline) {}

  void SetReady(bool ready) { ready_.store(ready, std::memory_order_release); }

  // traceslo::http::Handler
  http::Response Handle(const http::Request& request) override;

 private:
  const WebOptions options_;
  prometheus::Registry& registry_;
  pipeline::ShardedPipeline& pipeline_;
  std::atomic<bool> ready_{false};
};

}  // namespace traceslo::web
