#pragma once

#include <atomic>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "prometheus/collectable.h"
#include "traceslo/http/server.h"
#include "traceslo/pipeline/sharded_pipeline.h"
#include "traceslo/web/api.h"

namespace traceslo::web {

struct WebOptions {
  // POST /-/debug/pipeline/pause|resume, for tests that need a full queue. Off by default.
  bool debug_endpoints = false;
  // POST /-/reload: reloads the rule files (all or nothing). Unset: 404.
  std::function<absl::Status()> reload;
  // The pages (/, /alerts, /signatures, /traces/) and /api/v1/; null: 404. Borrowed.
  ApiHandler* api = nullptr;
};

// The :8080 surface: /metrics, /-/healthy, /-/ready, POST /-/reload and (optionally) debug
// endpoints.
// Thread-safe. `metric_sources` and `pipeline` are borrowed and must outlive it.
class WebHandler final : public http::Handler {
 public:
  WebHandler(const WebOptions& options, std::vector<const prometheus::Collectable*> metric_sources,
             pipeline::ShardedPipeline& pipeline)
      : options_(options), metric_sources_(std::move(metric_sources)), pipeline_(pipeline) {}

  void SetReady(bool ready) { ready_.store(ready, std::memory_order_release); }

  // traceslo::http::Handler
  http::Response Handle(const http::Request& request) override;

 private:
  const WebOptions options_;
  const std::vector<const prometheus::Collectable*> metric_sources_;
  pipeline::ShardedPipeline& pipeline_;
  std::atomic<bool> ready_{false};
};

}  // namespace traceslo::web
