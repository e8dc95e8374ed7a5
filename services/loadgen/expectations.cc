#include "services/loadgen/expectations.h"

#include <unordered_map>
#include <vector>

namespace traceslo::loadgen {
namespace {

constexpr int32_t kHttpErrorMin = 500;
constexpr uint32_t kGrpcErrorCodes = 1u << 2 | 1u << 4 | 1u << 12 | 1u << 13 | 1u << 14 | 1u << 15;

}  // namespace

bool IsErrorSpan(const GeneratedSpan& span) {
  if (span.status == SpanStatus::kError) return true;
  if (span.status == SpanStatus::kOk) return false;
  if (span.kind == SpanKind::kClient || span.kind == SpanKind::kProducer) return false;
  if (span.http_status >= kHttpErrorMin) return true;
  return span.rpc_status >= 0 && span.rpc_status < 32 && (kGrpcErrorCodes >> span.rpc_status & 1);
}

void Expectations::AddTrace(std::span<const GeneratedSpan* const> received) {
  const size_t n = received.size();
  if (n == 0) return;
  std::unordered_map<uint64_t, size_t> index;
  for (size_t i = 0; i < n; ++i) index.try_emplace(received[i]->span_id, i);
  std::vector<int64_t> parent(n, -1);
  for (size_t i = 0; i < n; ++i) {
    if (received[i]->parent_span_id == 0) continue;
    if (auto it = index.find(received[i]->parent_span_id); it != index.end()) {
      parent[i] = static_cast<int64_t>(it->second);
    }
  }

  // Entry spans: SERVER or CONSUMER, no parent, a parent that never arrived, or a parent in
  // another service.
  for (size_t i = 0; i < n; ++i) {
    const GeneratedSpan& span = *received[i];
    const bool entry = span.kind == SpanKind::kServer || span.kind == SpanKind::kConsumer ||
                       span.parent_span_id == 0 || parent[i] < 0 ||
                       received[static_cast<size_t>(parent[i])]->service != span.service;
    if (!entry) continue;
    OperationCounts& counts = operations_[{span.service, span.name}];
    ++counts.requests;
    if (IsErrorSpan(span)) ++counts.errors;
  }

  // The root: the earliest span without a parent; without one, the earliest orphan.
  int64_t root = -1;
  int64_t first_orphan = -1;
  std::array<bool, kServiceCount> touched{};
  std::array<bool, kServiceCount> broke{};
  for (size_t i = 0; i < n; ++i) {
    const GeneratedSpan& span = *received[i];
    touched[span.service] = true;
    if (span.parent_span_id == 0) {
      if (root < 0 || span.start_us < received[static_cast<size_t>(root)]->start_us) {
        root = static_cast<int64_t>(i);
      }
    } else if (parent[i] < 0) {
      broke[span.service] = true;
      if (first_orphan < 0 ||
          span.start_us < received[static_cast<size_t>(first_orphan)]->start_us) {
        first_orphan = static_cast<int64_t>(i);
      }
    }
  }
  const bool partial = root < 0 || first_orphan >= 0;
  if (root < 0) root = first_orphan >= 0 ? first_orphan : 0;

  // The origin of an error trace: the deepest error span (the first received among equals).
  int64_t origin = -1;
  int64_t origin_depth = -1;
  for (size_t i = 0; i < n; ++i) {
    if (!IsErrorSpan(*received[i])) continue;
    int64_t depth = 0;
    for (int64_t p = parent[i]; p >= 0 && depth <= static_cast<int64_t>(n);
         p = parent[static_cast<size_t>(p)]) {
      ++depth;
    }
    if (depth > origin_depth) {
      origin = static_cast<int64_t>(i);
      origin_depth = depth;
    }
  }

  for (size_t s = 0; s < kServiceCount; ++s) {
    if (!touched[s]) continue;
    ++services_[s].traces;
    if (partial) ++services_[s].partial_traces;
    if (broke[s]) ++services_[s].propagation_breaks;
  }
  if (partial && first_orphan < 0) {
    // Partial without an orphan: no root and a parent cycle. The root's service broke it.
    ++services_[received[static_cast<size_t>(root)]->service].propagation_breaks;
  }
  if (origin >= 0) {
    ++services_[received[static_cast<size_t>(root)]->service].error_traces_root;
    ++services_[received[static_cast<size_t>(origin)]->service].error_traces_origin;
  }
}

}  // namespace traceslo::loadgen
