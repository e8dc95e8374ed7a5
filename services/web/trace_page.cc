#include "services/web/trace_page.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "services/web/html.h"
#include "services/web/json_text.h"
#include "traceslo/common/time_format.h"

namespace traceslo::web {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";
constexpr size_t kPaletteSize = 10;      // classes c0-c9 of the stylesheet
constexpr uint32_t kMaxDepthClass = 15;  // classes d1-d15 of the stylesheet
constexpr size_t kMaxLegendServices = 100;
constexpr size_t kMaxShownIdBytes = 64;  // of a bad id typed into the URL

std::string SpanIdHex(uint64_t id) {
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<size_t>(i)] = kHexDigits[id & 0xf];
    id >>= 4;
  }
  return out;
}

std::string_view KindName(SpanKind kind) {
  switch (kind) {
    case SpanKind::kInternal:
      return "internal";
    case SpanKind::kServer:
      return "server";
    case SpanKind::kClient:
      return "client";
    case SpanKind::kProducer:
      return "producer";
    case SpanKind::kConsumer:
      return "consumer";
    case SpanKind::kUnspecified:
      break;
  }
  return "unspecified";
}

std::string Plural(size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

std::string BaseUrl(std::string_view external_url) {
  std::string base(external_url);
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

// links.trace_url with the id in place; empty without a template or with one that is not an
// http(s) URL (the configuration refuses those; a page never links a javascript: URL).
std::string ExternalTraceUrl(std::string_view trace_url, std::string_view trace_id) {
  if (!trace_url.starts_with("http://") && !trace_url.starts_with("https://")) return "";
  std::string url(trace_url);
  for (size_t at = url.find("{trace_id}"); at != std::string::npos;
       at = url.find("{trace_id}", at + trace_id.size())) {
    url.replace(at, 10, trace_id);
  }
  return url;
}

// Why a span is shown as a root although it names a parent.
enum class Break : uint8_t {
  kNone,
  kParentMissing,  // the parent never arrived
  kParentLoop,     // following parents comes back round (or the span is its own parent)
};

struct Row {
  uint32_t index;  // into TraceView::spans
  uint32_t depth;
  Break root_break;
};

// The spans in tree order: roots (no parent) by start time, then spans whose parent is missing,
// then whatever a parent loop kept out of reach; under each span its children by start time.
std::vector<Row> TreeOrder(const TraceView& trace) {
  const auto& spans = trace.spans;
  const uint32_t n = static_cast<uint32_t>(spans.size());
  absl::flat_hash_map<std::string_view, uint32_t> by_id;
  by_id.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    if (!spans[i].span_id.empty()) by_id.try_emplace(spans[i].span_id, i);  // first one wins
  }
  std::vector<int64_t> parent(n, -1);
  std::vector<bool> self_parent(n, false);
  for (uint32_t i = 0; i < n; ++i) {
    if (spans[i].parent_span_id.empty()) continue;
    if (auto it = by_id.find(spans[i].parent_span_id); it != by_id.end()) {
      if (it->second == i) {
        self_parent[i] = true;
      } else {
        parent[i] = it->second;
      }
    }
  }
  std::vector<uint32_t> by_start(n);
  std::iota(by_start.begin(), by_start.end(), 0u);
  std::stable_sort(by_start.begin(), by_start.end(), [&](uint32_t a, uint32_t b) {
    return spans[a].start_offset_nanos < spans[b].start_offset_nanos;
  });
  std::vector<std::vector<uint32_t>> children(n);
  for (uint32_t i : by_start) {
    if (parent[i] >= 0) children[static_cast<size_t>(parent[i])].push_back(i);
  }

  std::vector<Row> rows;
  rows.reserve(n);
  std::vector<bool> visited(n, false);
  std::vector<std::pair<uint32_t, uint32_t>> stack;  // (span, depth); no recursion on deep trees
  auto walk = [&](uint32_t root, Break root_break) {
    stack.assign(1, {root, 0});
    while (!stack.empty()) {
      const auto [i, depth] = stack.back();
      stack.pop_back();
      if (visited[i]) continue;
      visited[i] = true;
      rows.push_back(Row{i, depth, depth == 0 ? root_break : Break::kNone});
      for (auto c = children[i].rbegin(); c != children[i].rend(); ++c) {
        if (!visited[*c]) stack.emplace_back(*c, depth + 1);
      }
    }
  };
  for (uint32_t i : by_start) {
    if (parent[i] < 0 && spans[i].parent_span_id.empty()) walk(i, Break::kNone);
  }
  for (uint32_t i : by_start) {
    if (parent[i] < 0 && !self_parent[i] && !visited[i]) walk(i, Break::kParentMissing);
  }
  for (uint32_t i : by_start) {
    if (!visited[i]) walk(i, Break::kParentLoop);
  }
  return rows;
}

bool ShownAsOrphan(const TraceSpanView& span, const Row& row) {
  return span.orphan || row.root_break == Break::kParentMissing;
}

struct Summary {
  size_t spans = 0;
  size_t services = 0;
  size_t errors = 0;
  size_t orphans = 0;
};

// Services in order of first appearance in `rows`, each with its palette index.
struct ServiceColours {
  absl::flat_hash_map<std::string_view, size_t> index;
  std::vector<std::string_view> names;
};

ServiceColours ColoursOf(const TraceView& trace, const std::vector<Row>& rows) {
  ServiceColours colours;
  for (const Row& row : rows) {
    const std::string_view service = trace.spans[row.index].service;
    if (colours.index.try_emplace(service, colours.names.size()).second) {
      colours.names.push_back(service);
    }
  }
  return colours;
}

Summary SummaryOf(const TraceView& trace, const std::vector<Row>& rows, size_t services) {
  Summary s;
  s.spans = rows.size();
  s.services = services;
  for (const Row& row : rows) {
    const TraceSpanView& span = trace.spans[row.index];
    if (span.error) ++s.errors;
    if (ShownAsOrphan(span, row)) ++s.orphans;
  }
  return s;
}

// The time range the waterfall spans: from the earliest start (0 or before) to the latest end
// (the trace's duration or after), so producers' skewed clocks cannot push bars out of it.
struct Timeline {
  double start = 0;  // nanoseconds from TraceView::start_unix_nano
  double length = 0;

  double Percent(double nanos) const {
    if (length <= 0) return 0;
    return std::clamp(nanos * 100.0 / length, 0.0, 100.0);
  }
};

Timeline TimelineOf(const TraceView& trace) {
  double start = 0;
  double end = static_cast<double>(trace.duration_nanos);
  for (const TraceSpanView& span : trace.spans) {
    const double at = static_cast<double>(span.start_offset_nanos);
    start = std::min(start, at);
    end = std::max(end, at + static_cast<double>(span.duration_nanos));
  }
  return Timeline{start, end - start};
}

std::string PercentText(double percent) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f%%", percent);
  return buf;
}

std::string SwatchSvg(size_t colour) {
  return "<svg class=\"sw\" viewBox=\"0 0 10 10\" aria-hidden=\"true\"><rect class=\"c" +
         std::to_string(colour % kPaletteSize) + "\" width=\"10\" height=\"10\"/></svg>";
}

void AppendSummary(std::string& out, const Summary& s) {
  out += "<p class=\"summary\" id=\"summary\" data-spans=\"" + std::to_string(s.spans) +
         "\" data-services=\"" + std::to_string(s.services) + "\" data-errors=\"" +
         std::to_string(s.errors) + "\" data-orphans=\"" + std::to_string(s.orphans) + "\">";
  out += Plural(s.spans, "span", "spans") + " \xc2\xb7 " +
         Plural(s.services, "service", "services") + " \xc2\xb7 " +
         Plural(s.errors, "error", "errors") + " \xc2\xb7 " +
         Plural(s.orphans, "orphan", "orphans");
  out += "</p>\n";
}

void AppendRow(std::string& out, const TraceView& trace, const Row& row, const Timeline& timeline,
               size_t colour) {
  const TraceSpanView& span = trace.spans[row.index];
  const bool orphan = ShownAsOrphan(span, row);
  out += "<li class=\"span";
  if (span.error) out += " error";
  if (orphan) out += " orphan";
  if (row.root_break == Break::kParentLoop) out += " loop";
  out += "\" data-span-id=\"";
  AppendEscaped(out, span.span_id);
  out += "\" data-parent-id=\"";
  AppendEscaped(out, span.parent_span_id);
  out += "\" data-depth=\"" + std::to_string(row.depth) + "\" data-service=\"";
  AppendEscaped(out, span.service);
  out += "\">\n<div class=\"label";
  if (row.depth > 0) out += " d" + std::to_string(std::min(row.depth, kMaxDepthClass));
  out += "\">";
  if (span.error) out += "<span class=\"flag err\">\xe2\x9c\x96 error</span>";
  out += "<span class=\"op\">";
  AppendEscaped(out, span.operation);
  out += "</span><br><span class=\"svc\">" + SwatchSvg(colour);
  AppendEscaped(out, span.service);
  out += " \xc2\xb7 ";
  AppendEscaped(out, span.kind);
  out += "</span><span class=\"dur\">" + HumanDuration(span.duration_nanos) +
         "</span><span class=\"at\">at +";
  const double at = static_cast<double>(span.start_offset_nanos) - timeline.start;
  out += HumanDuration(at > 0 ? static_cast<uint64_t>(at) : 0);
  if (row.depth > kMaxDepthClass) out += " \xc2\xb7 depth " + std::to_string(row.depth);
  out += "</span>";
  if (span.error &&
      (!span.exception_type.empty() || !span.message.empty() || !span.top_frame.empty())) {
    out += "<p class=\"exc\">";
    if (!span.exception_type.empty()) {
      out += "<b class=\"exc-type\">";
      AppendEscaped(out, span.exception_type);
      out += "</b>";
      if (!span.message.empty()) out += ": ";
    }
    if (!span.message.empty()) {
      out += "<span class=\"exc-message\">";
      AppendEscaped(out, span.message);
      out += "</span>";
    }
    if (!span.top_frame.empty()) {
      out += "<br><code class=\"exc-frame\">";
      AppendEscaped(out, span.top_frame);
      out += "</code>";
    }
    out += "</p>";
  }
  if (orphan) {
    out +=
        "<p><span class=\"flag broken\">parent missing \xe2\x80\x94 propagation broke here"
        "</span>the parent <code>";
    AppendEscaped(out, span.parent_span_id);
    out += "</code> of this <b>";
    AppendEscaped(out, span.service);
    out += "</b> span never arrived</p>";
  } else if (row.root_break == Break::kParentLoop) {
    out +=
        "<p><span class=\"flag broken\">parent loop</span>following the parents of this "
        "<b>";
    AppendEscaped(out, span.service);
    out += "</b> span comes back to it</p>";
  }
  out += "</div>\n";

  const double x = timeline.Percent(at);
  const double width =
      std::min(timeline.Percent(static_cast<double>(span.duration_nanos)), 100.0 - x);
  const std::string x_text = PercentText(x);
  const std::string colour_class = "c" + std::to_string(colour % kPaletteSize);
  out += "<svg class=\"bar\" width=\"100%\" height=\"14\" role=\"img\" aria-label=\"starts at +" +
         HumanDuration(at > 0 ? static_cast<uint64_t>(at) : 0) + ", lasts " +
         HumanDuration(span.duration_nanos) + "\"><rect class=\"" + colour_class + "\" x=\"" +
         x_text + "\" y=\"1\" width=\"" + PercentText(width) + "\" height=\"12\"/>";
  if (width < 0.0005) {
    // A zero-width rect is not drawn: a tick marks the instant.
    out += "<line class=\"" + colour_class + "\" x1=\"" + x_text + "\" x2=\"" + x_text +
           "\" y1=\"0\" y2=\"14\"/>";
  }
  out += "</svg>\n</li>\n";
}

// "15 min", "2 h", "90 s": retention settings are whole minutes or seconds as a rule.
std::string RetentionText(std::chrono::milliseconds retention) {
  const int64_t ms = retention.count();
  if (ms % 86'400'000 == 0) return std::to_string(ms / 86'400'000) + " d";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + " h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + " min";
  if (ms % 1'000 == 0) return std::to_string(ms / 1'000) + " s";
  return HumanDuration(static_cast<uint64_t>(ms) * 1'000'000);
}

void AppendNotRetainedNotice(std::string& out, std::string_view trace_id,
                             const PageContext& context) {
  out +=
      "<p class=\"notice\">traceslo keeps a few exemplar traces in memory so that alert links "
      "open even where no trace backend kept them: for each service and operation the slowest "
      "request and the latest trace of each error signature, for ";
  if (context.exemplar_retention.count() > 0) {
    out += RetentionText(context.exemplar_retention);
  } else {
    out += "a limited time";
  }
  out += " (<code>pipeline.exemplar_retention</code>); and on disk the traces alerts link (for " +
         RetentionText(storage::ExemplarStoreOptions{}.alert_max_age) +
         " after the last link) and the latest slow and error trace of each service (for " +
         RetentionText(storage::ExemplarStoreOptions{}.max_age) +
         "). This trace has expired since or was never picked as an exemplar.</p>\n";
  const std::string external = ExternalTraceUrl(context.trace_url, trace_id);
  if (!external.empty()) {
    out += "<p><a id=\"external-trace\" href=\"";
    AppendEscaped(out, external);
    out += "\">Look for it in the trace backend</a></p>\n";
  } else {
    out +=
        "<p class=\"meta\">No external trace backend is linked (<code>links.trace_url</code>)."
        "</p>\n";
  }
}

}  // namespace

TraceView TraceViewOf(const storage::KeptTrace& kept) {
  TraceView view;
  view.trace_id = TraceIdHex(kept.trace_id);
  view.start_unix_nano = kept.start_unix_nano;
  view.duration_nanos = kept.duration_nanos;
  view.spans.reserve(kept.spans.size());
  for (const storage::KeptSpan& span : kept.spans) {
    TraceSpanView& v = view.spans.emplace_back();
    v.span_id = SpanIdHex(span.span_id);
    if (span.parent_span_id != 0) v.parent_span_id = SpanIdHex(span.parent_span_id);
    v.service = ValidUtf8(span.service);
    v.operation = ValidUtf8(span.operation);
    v.kind = KindName(span.kind);
    v.start_offset_nanos = span.start_offset_nanos;
    v.duration_nanos = span.duration_nanos;
    v.error = span.error;
    v.orphan = span.orphan;
    if (span.signature != 0) v.signature = SpanIdHex(span.signature);
    v.exception_type = ValidUtf8(span.exception_type);
    v.message = ValidUtf8(span.message);
    v.top_frame = ValidUtf8(span.top_frame);
  }
  return view;
}

TraceView TraceViewOf(const pipeline::ExemplarTrace& trace,
                      const pipeline::SeriesRegistry& registry, SignatureLookup signatures) {
  return TraceViewOf(storage::KeptTraceOf(trace, registry, signatures));
}

TraceView TraceViewOf(const pipeline::ExemplarTrace& trace,
                      const pipeline::SeriesRegistry& registry,
                      const std::vector<pipeline::SignatureInfo>& signatures) {
  return TraceViewOf(storage::KeptTraceOf(trace, registry, signatures));
}

std::string HumanDuration(uint64_t nanos) {
  if (nanos < 1000) return std::to_string(nanos) + " ns";
  double value;
  const char* unit;
  if (nanos < 999'500) {
    value = static_cast<double>(nanos) / 1e3;
    unit = "\xc2\xb5s";
  } else if (nanos < 999'500'000) {
    value = static_cast<double>(nanos) / 1e6;
    unit = "ms";
  } else {
    value = static_cast<double>(nanos) / 1e9;
    unit = "s";
  }
  const int decimals = value < 9.995 ? 2 : value < 99.95 ? 1 : 0;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f %s", decimals, value, unit);
  return buf;
}

std::string IsoTimeMillis(int64_t unix_nano) {
  using std::chrono::days;
  using std::chrono::milliseconds;
  const std::chrono::sys_time<milliseconds> t = std::chrono::floor<milliseconds>(
      std::chrono::sys_time<std::chrono::nanoseconds>(std::chrono::nanoseconds(unix_nano)));
  const auto day = std::chrono::floor<days>(t);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss<milliseconds> hms{t - day};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(hms.hours().count()),
                static_cast<int>(hms.minutes().count()), static_cast<int>(hms.seconds().count()),
                static_cast<int>(hms.subseconds().count()));
  return buf;
}

std::string RenderTracePage(const TraceView& trace, const PageContext& context) {
  const std::vector<Row> rows = TreeOrder(trace);
  const ServiceColours colours = ColoursOf(trace, rows);
  const Summary summary = SummaryOf(trace, rows, colours.names.size());
  const Timeline timeline = TimelineOf(trace);
  const std::string base = BaseUrl(context.external_url);
  const std::string short_id = trace.trace_id.substr(0, 8);

  std::string title;
  if (summary.errors > 0) title += "\xe2\x9c\x96 ";
  if (!rows.empty()) {
    const TraceSpanView& root = trace.spans[rows.front().index];
    title += root.service + ": " + root.operation + " \xe2\x80\x94 ";
  }
  title += "trace " + short_id + " \xe2\x80\x94 traceslo";

  std::string out;
  out.reserve(4096 + std::min(rows.size(), kMaxRenderedSpans) * 1200);
  BeginPage(out, title);
  AppendNav(out, context.external_url, NavPage::kOther);
  out += "<header>\n<h1>Trace <code id=\"trace-id\">";
  AppendEscaped(out, trace.trace_id);
  out += "</code></h1>\n<p class=\"meta\">Started <time id=\"trace-start\" datetime=\"";
  const std::string start = IsoTimeMillis(trace.start_unix_nano);
  out += start + "\">" + start + "</time> \xc2\xb7 lasted <span id=\"trace-duration\">" +
         HumanDuration(trace.duration_nanos) + "</span></p>\n";
  AppendSummary(out, summary);
  out += "<p class=\"links\">";
  const std::string external = ExternalTraceUrl(context.trace_url, trace.trace_id);
  if (!external.empty()) {
    out += "<a id=\"external-trace\" href=\"";
    AppendEscaped(out, external);
    out += "\">Open in the trace backend</a> \xc2\xb7 ";
  }
  out += "<a id=\"trace-json\" href=\"";
  AppendEscaped(out, base + "/api/v1/traces/" + trace.trace_id);
  out += "\">JSON</a></p>\n<ul class=\"legend\" id=\"services\">";
  for (size_t i = 0; i < colours.names.size() && i < kMaxLegendServices; ++i) {
    out += "<li data-service=\"";
    AppendEscaped(out, colours.names[i]);
    out += "\">" + SwatchSvg(i);
    AppendEscaped(out, colours.names[i]);
    out += "</li>";
  }
  if (colours.names.size() > kMaxLegendServices) {
    out += "<li>and " + std::to_string(colours.names.size() - kMaxLegendServices) + " more</li>";
  }
  out += "</ul>\n</header>\n<main>\n";

  if (rows.empty()) {
    out += "<p class=\"more\">This trace has no spans.</p>\n";
  } else {
    const auto length = static_cast<uint64_t>(timeline.length);
    out += "<div class=\"axis\" aria-hidden=\"true\"><span>0</span><span>" +
           HumanDuration(length / 4) + "</span><span>" + HumanDuration(length / 2) +
           "</span><span>" + HumanDuration(length / 4 * 3) + "</span><span>" +
           HumanDuration(length) + "</span></div>\n<ol class=\"spans\" id=\"spans\">\n";
    const size_t shown = std::min(rows.size(), kMaxRenderedSpans);
    for (size_t r = 0; r < shown; ++r) {
      const Row& row = rows[r];
      AppendRow(out, trace, row, timeline,
                colours.index.find(trace.spans[row.index].service)->second);
    }
    out += "</ol>\n";
    if (rows.size() > shown) {
      out += "<p class=\"more\" id=\"more-spans\">" + std::to_string(rows.size() - shown) +
             " more spans not shown (the first " + std::to_string(shown) +
             " in tree order are); the <a href=\"";
      AppendEscaped(out, base + "/api/v1/traces/" + trace.trace_id);
      out += "\">JSON</a> has them all.</p>\n";
    }
  }
  out += "</main>\n";
  EndPage(out);
  return out;
}

std::string RenderTraceNotRetained(std::string_view trace_id_hex, const PageContext& context) {
  const std::optional<TraceId> id = ParseTraceIdHex(trace_id_hex);
  if (!id) return RenderBadTraceId(trace_id_hex, context);
  const std::string hex = TraceIdHex(*id);
  std::string out;
  BeginPage(out, "Trace " + hex.substr(0, 8) + " not retained \xe2\x80\x94 traceslo");
  AppendNav(out, context.external_url, NavPage::kOther);
  out +=
      "<main class=\"not-retained\">\n<h1>Trace not retained</h1>\n<p>traceslo has no trace "
      "<code id=\"trace-id\">" +
      hex + "</code>.</p>\n";
  AppendNotRetainedNotice(out, hex, context);
  out += "</main>\n";
  EndPage(out);
  return out;
}

std::string RenderTraceUnreadable(std::string_view trace_id_hex, std::string_view message,
                                  const PageContext& context) {
  std::string out;
  BeginPage(out, "Trace not readable \xe2\x80\x94 traceslo");
  AppendNav(out, context.external_url, NavPage::kOther);
  out += "<main class=\"unreadable\">\n<h1>Trace not readable</h1>\n<p><code id=\"trace-id\">";
  AppendEscaped(out, trace_id_hex.substr(0, kMaxShownIdBytes));
  out += "</code> is kept on disk but could not be read.</p>\n<p class=\"notice\">";
  AppendEscaped(out, message);
  out += "</p>\n";
  const std::string external = ExternalTraceUrl(context.trace_url, trace_id_hex);
  if (!external.empty()) {
    out += "<p><a id=\"external-trace\" href=\"";
    AppendEscaped(out, external);
    out += "\">Look for it in the trace backend</a></p>\n";
  }
  out += "</main>\n";
  EndPage(out);
  return out;
}

std::string RenderBadTraceId(std::string_view raw_id, const PageContext& context) {
  std::string out;
  BeginPage(out, "Not a trace id \xe2\x80\x94 traceslo");
  AppendNav(out, context.external_url, NavPage::kOther);
  out += "<main class=\"bad-trace-id\">\n<h1>Not a trace id</h1>\n<p><code id=\"trace-id\">";
  AppendEscaped(out, raw_id.substr(0, kMaxShownIdBytes));
  if (raw_id.size() > kMaxShownIdBytes) out += "\xe2\x80\xa6";
  out +=
      "</code> is not a trace id. A trace id is 32 hexadecimal digits (16 bytes, not all "
      "zero), as in <code>/traces/4bf92f3577b34da6a3ce929d0e0e4736</code>.</p>\n"
      "<p class=\"meta\">Alert notifications link exemplar traces this way; a link cut short "
      "(by a chat client or a copy) gives this page.</p>\n</main>\n";
  EndPage(out);
  return out;
}

std::string TraceJson(const TraceView& trace) {
  const std::vector<Row> rows = TreeOrder(trace);
  const ServiceColours colours = ColoursOf(trace, rows);
  const Summary summary = SummaryOf(trace, rows, colours.names.size());

  boost::json::array spans;
  spans.reserve(rows.size());
  for (const Row& row : rows) {
    const TraceSpanView& span = trace.spans[row.index];
    boost::json::object s;
    s["span_id"] = JsonText(span.span_id);
    s["parent_span_id"] = span.parent_span_id.empty()
                              ? boost::json::value(nullptr)
                              : boost::json::value(JsonText(span.parent_span_id));
    s["service"] = JsonText(span.service);
    s["operation"] = JsonText(span.operation);
    s["kind"] = JsonText(span.kind);
    s["start_offset_nanos"] = span.start_offset_nanos;
    s["duration_nanos"] = span.duration_nanos;
    s["depth"] = row.depth;
    s["error"] = span.error;
    s["orphan"] = ShownAsOrphan(span, row);
    if (!span.signature.empty()) {
      boost::json::object signature;
      signature["id"] = JsonText(span.signature);
      signature["exception_type"] = JsonText(span.exception_type);
      signature["message"] = JsonText(span.message);
      signature["top_frame"] = JsonText(span.top_frame);
      s["error_signature"] = std::move(signature);
    }
    spans.emplace_back(std::move(s));
  }

  boost::json::object root;
  root["trace_id"] = JsonText(trace.trace_id);
  root["start_time"] = FormatRfc3339(trace.start_unix_nano);
  root["start_unix_nano"] = std::to_string(trace.start_unix_nano);
  root["duration_nanos"] = trace.duration_nanos;
  root["summary"] = boost::json::object{{"spans", summary.spans},
                                        {"services", summary.services},
                                        {"errors", summary.errors},
                                        {"orphans", summary.orphans}};
  root["spans"] = std::move(spans);
  return boost::json::serialize(root);
}

}  // namespace traceslo::web
