#pragma once

// Shared by the loadgen tests: a scripted Exporter, decoding of what was sent with traceslo's own
// decoders, and a recount of traceslo's SLIs over the decoded spans that is independent of
// services/loadgen/expectations.cc (it uses traceslo's own error rule).

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "services/ingest/otlp_decode.h"
#include "services/loadgen/exporter.h"
#include "services/loadgen/otlp_encoder.h"
#include "services/loadgen/report.h"
#include "traceslo/common/span.h"
#include "traceslo/pipeline/sli_processor.h"

namespace traceslo::loadgen::testing_util {

// Answers Export() from `script` (front first), then OK. Records every body.
class FakeExporter final : public Exporter {
 public:
  std::deque<ExportResult> script;
  std::vector<std::string> bodies;  // every attempt, in order
  std::vector<bool> acknowledged;   // per attempt
  ExportResult Export(std::string_view body) override {
    bodies.emplace_back(body);
    ExportResult result;
    if (!script.empty()) {
      result = script.front();
      script.pop_front();
    }
    acknowledged.push_back(result.kind == ExportResult::Kind::kOk);
    return result;
  }
  // The bodies that were acknowledged.
  std::vector<std::string> AcknowledgedBodies() const {
    std::vector<std::string> out;
    for (size_t i = 0; i < bodies.size(); ++i) {
      if (acknowledged[i]) out.push_back(bodies[i]);
    }
    return out;
  }
};

inline ExportResult Retryable(std::string reason, std::optional<std::chrono::milliseconds> after) {
  ExportResult r;
  r.kind = ExportResult::Kind::kRetryable;
  r.reason = std::move(reason);
  r.retry_after = after;
  return r;
}
inline ExportResult Permanent(std::string reason) {
  ExportResult r;
  r.kind = ExportResult::Kind::kPermanent;
  r.reason = std::move(reason);
  return r;
}

// Decodes request bodies with traceslo's decoders; every span must be accepted.
inline SpanBatch DecodeAll(const std::vector<std::string>& bodies, Encoding encoding) {
  SpanBatch batch;
  for (const std::string& body : bodies) {
    ingest::DecodeResult result;
    const absl::Status status =
        encoding == Encoding::kJson
            ? ingest::DecodeOtlpJson(body, ingest::DecodeLimits{}, batch, result)
            : ingest::DecodeOtlpProto(body, ingest::DecodeLimits{}, batch, result);
    EXPECT_TRUE(status.ok()) << status;
    EXPECT_EQ(result.TotalRejected(), 0u) << result.first_error;
  }
  return batch;
}

struct RecountedService {
  uint64_t traces = 0, error_root = 0, error_origin = 0, partial = 0, breaks = 0;
  bool operator==(const RecountedService&) const = default;
};
struct Recount {
  std::map<std::pair<std::string, std::string>, std::pair<uint64_t, uint64_t>> operations;
  std::map<std::string, RecountedService> services;
};

// traceslo's SLIs of `batch` (spans in arrival order), written from the definitions.
inline Recount RecountSpans(const SpanBatch& batch) {
  Recount out;
  std::map<TraceId, std::vector<const Span*>> traces;
  std::vector<TraceId> order;
  for (const Span& span : batch.spans) {
    auto [it, inserted] = traces.try_emplace(span.trace_id);
    if (inserted) order.push_back(span.trace_id);
    it->second.push_back(&span);
  }
  const pipeline::ErrorPolicy policy;
  for (const TraceId& id : order) {
    const std::vector<const Span*>& spans = traces[id];
    auto find = [&](uint64_t span_id) -> const Span* {
      for (const Span* s : spans) {
        if (s->span_id == span_id) return s;
      }
      return nullptr;
    };
    auto service = [&](const Span* s) { return std::string(batch.Str(s->service)); };
    const Span* root = nullptr;
    const Span* top = nullptr;
    std::set<std::string> touched, broke;
    for (const Span* s : spans) {
      const Span* parent = s->parent_span_id == 0 ? nullptr : find(s->parent_span_id);
      const bool entry = s->kind == traceslo::SpanKind::kServer ||
                         s->kind == traceslo::SpanKind::kConsumer || parent == nullptr ||
                         service(parent) != service(s);
      if (entry) {
        auto& [requests, errors] = out.operations[{service(s), std::string(batch.Str(s->name))}];
        ++requests;
        errors += pipeline::IsErrorSpan(*s, policy) ? 1 : 0;
      }
      touched.insert(service(s));
      if (s->parent_span_id == 0) {
        if (root == nullptr || s->start_unix_nano < root->start_unix_nano) root = s;
      } else if (parent == nullptr) {
        broke.insert(service(s));
        if (top == nullptr || s->start_unix_nano < top->start_unix_nano) top = s;
      }
    }
    const bool partial = root == nullptr || top != nullptr;
    if (root == nullptr) root = top;
    const Span* origin = nullptr;
    int origin_depth = -1;
    for (const Span* s : spans) {
      if (!pipeline::IsErrorSpan(*s, policy)) continue;
      int depth = 0;
      const Span* p = s->parent_span_id == 0 ? nullptr : find(s->parent_span_id);
      while (p != nullptr && depth <= static_cast<int>(spans.size())) {
        ++depth;
        p = p->parent_span_id == 0 ? nullptr : find(p->parent_span_id);
      }
      if (depth > origin_depth) {
        origin = s;
        origin_depth = depth;
      }
    }
    for (const std::string& name : touched) {
      ++out.services[name].traces;
      if (partial) ++out.services[name].partial;
    }
    for (const std::string& name : broke) ++out.services[name].breaks;
    if (origin != nullptr) {
      ++out.services[service(root)].error_root;
      ++out.services[service(origin)].error_origin;
    }
  }
  return out;
}

// The report's expectations in the recount's shape (services that no trace touched left out).
inline Recount FromReport(const Report& report) {
  Recount out;
  for (const auto& [key, counts] : report.expected.operations()) {
    out.operations[{std::string(kServiceNames[key.first]), std::string(key.second)}] = {
        counts.requests, counts.errors};
  }
  for (size_t s = 0; s < kServiceCount; ++s) {
    const ServiceCounts& c = report.expected.services()[s];
    if (c.traces == 0) continue;
    out.services[std::string(kServiceNames[s])] =
        RecountedService{c.traces, c.error_traces_root, c.error_traces_origin, c.partial_traces,
                         c.propagation_breaks};
  }
  return out;
}

}  // namespace traceslo::loadgen::testing_util
