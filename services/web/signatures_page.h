#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "services/web/trace_page.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"

namespace traceslo::web {

// The error signatures page (/signatures) and its JSON (/api/v1/signatures): pure rendering from
// a SignaturesView, which SignaturesViewOf builds from the SLI store's signature registry. Every
// string but the ids came from an OTLP producer: escaped on output, valid UTF-8 in JSON.

struct SignatureView {
  std::string id;  // 16 lowercase hex digits
  std::string service;
  std::string operation;
  std::string exception_type;
  std::string message;             // a sample message as sent (else the normalized one)
  std::string normalized_message;  // numbers, ids and quoted values masked
  std::string top_frame;
  int32_t http_status = 0;  // 0: none
  int32_t rpc_status = -1;  // -1: none
  uint64_t count = 0;
  int64_t first_seen_unix_nano = 0;
  int64_t last_seen_unix_nano = 0;
  std::vector<std::string> trace_ids;  // 32 hex digits, newest first, at most kMaxSignatureTraces
};

// Signatures listed at most, on the page and in the JSON (the highest counts).
inline constexpr size_t kMaxListedSignatures = 1000;

struct SignaturesView {
  std::vector<SignatureView> signatures;  // highest count first, at most kMaxListedSignatures
  size_t total = 0;                       // signatures in the registry
};

// From SliStore::Signatures() (highest count first) with series names from `registry`; series
// the registry does not know show as service and operation "unknown".
SignaturesView SignaturesViewOf(const std::vector<pipeline::SignatureInfo>& signatures,
                                const pipeline::SeriesRegistry& registry);

// The page, a complete HTML5 document (serve with kPageContentType and
// kPageContentSecurityPolicy, status 200): one row per signature, tr class="signature" with
// data-signature (16 hex digits), data-service and data-count, holding service, operation,
// exception type, sample message, count, first and last seen, and links to its exemplar traces.
std::string RenderSignaturesPage(const SignaturesView& view, const PageContext& context);

// The JSON of GET /api/v1/signatures: {"signatures": [...], "total": n}.
std::string SignaturesJson(const SignaturesView& view, std::string_view external_url);

}  // namespace traceslo::web
