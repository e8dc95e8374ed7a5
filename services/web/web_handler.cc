#include "traceslo/web/web_handler.h"

#include "prometheus/text_serializer.h"
#include "traceslo/web/openmetrics.h"

namespace traceslo::web {
namespace {

http::Response Text(int status, std::string body) {
  http::Response response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

}  // namespace

http::Response WebHandler::Handle(const http::Request& request) {
  const std::string_view path = request.Path();
  const bool read = request.method == "GET" || request.method == "HEAD";
  if (path == "/metrics") {
    if (!read) return Text(405, "method not allowed\n");
    http::Response response;
    response.headers.emplace_back("Vary", "Accept");  // the format depends on it
    // Every source's families, with exemplars where a source has them (the text format drops
    // them).
    std::vector<metrics::ExemplarFamily> families;
    for (const prometheus::Collectable* source : metric_sources_) {
      if (const auto* exemplars = dynamic_cast<const metrics::ExemplarCollectable*>(source)) {
        auto collected = exemplars->CollectWithExemplars();
        families.insert(families.end(), std::make_move_iterator(collected.begin()),
                        std::make_move_iterator(collected.end()));
      } else {
        for (prometheus::MetricFamily& family : source->Collect()) {
          families.push_back({.family = std::move(family), .exemplars = {}});
        }
      }
    }
    if (PrefersOpenMetrics(request.Header("accept"))) {
      response.content_type = std::string(kOpenMetricsContentType);
      response.body = SerializeOpenMetrics(families);
      return response;
    }
    std::vector<prometheus::MetricFamily> plain;
    plain.reserve(families.size());
    for (metrics::ExemplarFamily& f : families) plain.push_back(std::move(f.family));
    response.content_type = std::string(kPrometheusTextContentType);
    response.body = prometheus::TextSerializer().Serialize(plain);
    return response;
  }
  if (path == "/-/healthy") {
    return read ? Text(200, "traceslo is healthy.\n") : Text(405, "method not allowed\n");
  }
  if (path == "/-/ready") {
    if (!read) return Text(405, "method not allowed\n");
    return ready_.load(std::memory_order_acquire) ? Text(200, "traceslo is ready.\n")
                                                  : Text(503, "traceslo is not ready.\n");
  }
  if (path == "/-/reload" && options_.reload) {
    if (request.method != "POST" && request.method != "PUT") {
      return Text(405, "method not allowed\n");
    }
    const absl::Status status = options_.reload();
    if (status.ok()) return Text(200, "rules reloaded\n");
    // The running rules stay; say why the new ones were refused.
    return Text(400, "rules not reloaded, the running rules stay:\n" +
                         std::string(status.message()) + "\n");
  }
  if (options_.debug_endpoints && path.starts_with("/-/debug/")) {
    if (request.method != "POST") return Text(405, "method not allowed\n");
    if (path == "/-/debug/pipeline/pause") {
      pipeline_.Pause();
      return Text(200, "pipeline paused\n");
    }
    if (path == "/-/debug/pipeline/resume") {
      pipeline_.Resume();
      return Text(200, "pipeline resumed\n");
    }
  }
  if (options_.api != nullptr) {
    if (std::optional<http::Response> response = options_.api->Handle(request)) return *response;
  }
  return Text(404, "not found\n");
}

}  // namespace traceslo::web
