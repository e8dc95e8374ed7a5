#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "traceslo/common/span.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"
#include "traceslo/storage/exemplar_store.h"

namespace traceslo::web {

// The exemplar trace page (/traces/{trace_id}) and its JSON (/api/v1/traces/{trace_id}): pure
// rendering from a TraceView, which TraceViewOf builds from the store's compact ExemplarTrace.
// Every string in a view is untrusted (it came from an OTLP producer) and is escaped on output.

// One span with its names resolved.
struct TraceSpanView {
  std::string span_id;         // 16 lowercase hex digits
  std::string parent_span_id;  // 16 lowercase hex digits; empty for a root span
  std::string service;
  std::string operation;
  std::string kind;                // "server", "client", "producer", "consumer", "internal",
                                   // "unspecified"
  int64_t start_offset_nanos = 0;  // from TraceView::start_unix_nano
  uint64_t duration_nanos = 0;
  bool error = false;
  bool orphan = false;         // its parent never arrived: propagation broke above this span
  std::string signature;       // error spans: the error signature id, 16 hex digits; else empty
  std::string exception_type;  // of the signature, when the registry still knows it
  std::string message;         // a sample message as sent (else the normalized one)
  std::string top_frame;
};

struct TraceView {
  std::string trace_id;  // 32 lowercase hex digits
  int64_t start_unix_nano = 0;
  uint64_t duration_nanos = 0;
  std::vector<TraceSpanView> spans;  // in any order; pages show them as a tree
};

using SignatureText = storage::SignatureText;
using SignatureLookup = storage::SignatureLookup;

// The view of a kept trace: ids as hex, kinds by name, strings made valid UTF-8 (invalid bytes
// become U+FFFD). Names were resolved by storage::KeptTraceOf.
TraceView TraceViewOf(const storage::KeptTrace& kept);
// The same for a trace of the SLI store: series ids resolve to (service, operation) ("unknown"
// when the registry does not know them) and error signatures to their texts, through
// storage::KeptTraceOf. `registry` is read under its own lock.
TraceView TraceViewOf(const pipeline::ExemplarTrace& trace,
                      const pipeline::SeriesRegistry& registry, SignatureLookup signatures);
// The same with the store's signature list (SliStore::Signatures()).
TraceView TraceViewOf(const pipeline::ExemplarTrace& trace,
                      const pipeline::SeriesRegistry& registry,
                      const std::vector<pipeline::SignatureInfo>& signatures);

// Links and facts the pages mention.
struct PageContext {
  // web.external_url: links on pages are absolute under it (so a path prefix behind a proxy
  // works); empty: root-relative links.
  std::string external_url;
  // links.trace_url: the external trace viewer, "{trace_id}" replaced by the id; empty: none.
  std::string trace_url;
  // pipeline.exemplar_retention, said on the "not retained" page; 0: not said.
  std::chrono::milliseconds exemplar_retention{0};
};

// Rows beyond this many (in tree order) are left out of the page, with a line saying how many.
inline constexpr size_t kMaxRenderedSpans = 1000;

// The trace page, a complete HTML5 document (serve with kPageContentType and
// kPageContentSecurityPolicy from services/web/html.h, status 200): summary, service legend and
// a waterfall of the span tree (roots first, then spans whose parent is missing as roots of
// their own, children under their parent by start time). Rows carry class="span" (plus "error"
// / "orphan"), data-span-id, data-parent-id and data-depth; the bar's rect has x and width in
// percent of the trace's time range.
std::string RenderTracePage(const TraceView& trace, const PageContext& context);

// Status 404: the trace with this id (32 hex digits, see traceslo::ParseTraceIdHex in
// traceslo/common/span.h) is not kept, why that
// happens, and a link to the external trace viewer when there is one. An id that does not parse
// gets the RenderBadTraceId page instead.
std::string RenderTraceNotRetained(std::string_view trace_id_hex, const PageContext& context);
// Status 500: the trace is kept on disk but its row could not be read (`message` says why).
std::string RenderTraceUnreadable(std::string_view trace_id_hex, std::string_view message,
                                  const PageContext& context);
// Status 400: `raw_id` (as it came in the URL, shown escaped and shortened) is not a trace id.
std::string RenderBadTraceId(std::string_view raw_id, const PageContext& context);

// The JSON of GET /api/v1/traces/{trace_id} (application/json): the trace's fields, a summary,
// and its spans in the page's tree order with their depth. start_unix_nano is a decimal string
// (it does not fit a JavaScript number); durations and offsets are numbers of nanoseconds.
std::string TraceJson(const TraceView& trace);

// "850 ns", "12.5 µs", "1.20 ms", "3.07 s": three significant digits (more for >= 1000 s).
std::string HumanDuration(uint64_t nanos);
// RFC 3339 / ISO 8601 in UTC with milliseconds: "2023-11-14T22:13:20.123Z".
std::string IsoTimeMillis(int64_t unix_nano);

}  // namespace traceslo::web
