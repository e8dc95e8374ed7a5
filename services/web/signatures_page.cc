#include "services/web/signatures_page.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "services/web/html.h"
#include "services/web/json_text.h"
#include "traceslo/common/span.h"
#include "traceslo/common/time_format.h"
#include "traceslo/pipeline/error_signature.h"

namespace traceslo::web {
namespace {

namespace json = boost::json;

constexpr std::string_view kUnknown = "unknown";

void AppendTime(std::string& out, int64_t unix_nano) {
  const std::string t = IsoTimeMillis(unix_nano);
  out += "<time datetime=\"" + t + "\">" + t + "</time>";
}

void AppendRow(std::string& out, const SignatureView& s, std::string_view base) {
  out += "<tr class=\"signature\" data-signature=\"";
  AppendEscaped(out, s.id);
  out += "\" data-service=\"";
  AppendEscaped(out, s.service);
  out += "\" data-count=\"" + std::to_string(s.count) + "\">\n<td data-label=\"Where\"><b>";
  AppendEscaped(out, s.service);
  out += "</b><br><span class=\"op\">";
  AppendEscaped(out, s.operation);
  out += "</span><br><code class=\"meta\">";
  AppendEscaped(out, s.id);
  out += "</code></td>\n<td data-label=\"Error\" class=\"msg\">";
  if (!s.exception_type.empty()) {
    out += "<b class=\"exc-type\">";
    AppendEscaped(out, s.exception_type);
    out += "</b>";
  }
  if (s.http_status != 0)
    out += " <span class=\"meta\">HTTP " + std::to_string(s.http_status) + "</span>";
  if (s.rpc_status >= 0)
    out += " <span class=\"meta\">gRPC " + std::to_string(s.rpc_status) + "</span>";
  if (!s.message.empty()) {
    out += "<br><span class=\"exc-message\">";
    AppendEscaped(out, s.message);
    out += "</span>";
  }
  if (!s.top_frame.empty()) {
    out += "<br><code class=\"exc-frame\">";
    AppendEscaped(out, s.top_frame);
    out += "</code>";
  }
  out += "</td>\n<td data-label=\"Count\" class=\"num count\">" + std::to_string(s.count) +
         "</td>\n<td data-label=\"Seen\"><span class=\"meta\">first</span> ";
  AppendTime(out, s.first_seen_unix_nano);
  out += "<br><span class=\"meta\">last</span> ";
  AppendTime(out, s.last_seen_unix_nano);
  out += "</td>\n<td data-label=\"Traces\">";
  if (s.trace_ids.empty()) out += "<span class=\"meta\">\xe2\x80\x94</span>";
  for (size_t i = 0; i < s.trace_ids.size() && i < pipeline::kMaxSignatureTraces; ++i) {
    if (i > 0) out += "<br>";
    out += "<a class=\"trace\" href=\"";
    AppendEscaped(out, TraceUrl(base, s.trace_ids[i]));
    out += "\"><code>";
    AppendEscaped(out, s.trace_ids[i].substr(0, 8));
    out += "</code></a>";
  }
  out += "</td>\n</tr>\n";
}

}  // namespace

SignaturesView SignaturesViewOf(const std::vector<pipeline::SignatureInfo>& signatures,
                                const pipeline::SeriesRegistry& registry) {
  SignaturesView view;
  view.total = signatures.size();
  const uint32_t series_count = registry.series_count();
  const size_t shown = std::min(signatures.size(), kMaxListedSignatures);
  view.signatures.reserve(shown);
  for (size_t i = 0; i < shown; ++i) {
    const pipeline::SignatureInfo& info = signatures[i];
    SignatureView& v = view.signatures.emplace_back();
    v.id = pipeline::SignatureIdHex(info.id);
    if (info.series < series_count) {
      v.service = ValidUtf8(registry.ServiceName(registry.ServiceOf(info.series)));
      v.operation = ValidUtf8(registry.OperationName(info.series));
    } else {
      v.service = v.operation = kUnknown;
    }
    v.exception_type = ValidUtf8(info.exception_type);
    v.message =
        ValidUtf8(info.sample_message.empty() ? info.normalized_message : info.sample_message);
    v.normalized_message = ValidUtf8(info.normalized_message);
    v.top_frame = ValidUtf8(info.top_frame);
    v.http_status = info.http_status;
    v.rpc_status = info.rpc_status;
    v.count = info.count;
    v.first_seen_unix_nano = info.first_seen_unix_nano;
    v.last_seen_unix_nano = info.last_seen_unix_nano;
    for (auto it = info.trace_ids.rbegin();
         it != info.trace_ids.rend() && v.trace_ids.size() < pipeline::kMaxSignatureTraces; ++it) {
      v.trace_ids.push_back(TraceIdHex(*it));
    }
  }
  return view;
}

std::string RenderSignaturesPage(const SignaturesView& view, const PageContext& context) {
  const std::string base = PageBaseUrl(context.external_url);
  std::string out;
  out.reserve(4096 + view.signatures.size() * 1200);
  BeginPage(out, "Error signatures \xe2\x80\x94 traceslo");
  AppendNav(out, context.external_url, NavPage::kSignatures);
  out += "<main>\n<h1>Error signatures</h1>\n";
  if (view.signatures.empty()) {
    out +=
        "<p class=\"empty\" id=\"no-signatures\">No error signatures yet: no entry span has "
        "failed since traceslo started.</p>\n";
  } else {
    out += "<p class=\"summary\" id=\"summary\" data-signatures=\"" + std::to_string(view.total) +
           "\">" + std::to_string(view.total) + (view.total == 1 ? " signature" : " signatures");
    if (view.total > view.signatures.size()) {
      out += " \xc2\xb7 the " + std::to_string(view.signatures.size()) + " most frequent shown";
    }
    out +=
        "</p>\n<div class=\"scroll\"><table class=\"stack\" id=\"signatures\">\n<thead><tr>"
        "<th>Where</th><th>Error</th><th>Count</th><th>Seen</th><th>Traces</th></tr></thead>\n"
        "<tbody>\n";
    for (const SignatureView& s : view.signatures) AppendRow(out, s, base);
    out += "</tbody>\n</table></div>\n";
    out +=
        "<p class=\"help\">A signature is service, operation, exception type and the message "
        "with numbers, ids and quoted values masked. Counts are since traceslo started.</p>\n";
  }
  out += "<p class=\"links\"><a id=\"signatures-json\" href=\"";
  AppendEscaped(out, base + "/api/v1/signatures");
  out += "\">JSON</a></p>\n</main>\n";
  EndPage(out);
  return out;
}

std::string SignaturesJson(const SignaturesView& view, std::string_view external_url) {
  const std::string base = PageBaseUrl(external_url);
  json::array signatures;
  for (const SignatureView& s : view.signatures) {
    json::array traces;
    for (const std::string& id : s.trace_ids) {
      traces.push_back(
          json::object{{"traceId", JsonText(id)}, {"url", JsonText(TraceUrl(base, id))}});
    }
    signatures.push_back(json::object{
        {"id", JsonText(s.id)},
        {"service", JsonText(s.service)},
        {"operation", JsonText(s.operation)},
        {"exceptionType", JsonText(s.exception_type)},
        {"sampleMessage", JsonText(s.message)},
        {"normalizedMessage", JsonText(s.normalized_message)},
        {"topFrame", JsonText(s.top_frame)},
        {"httpStatus", s.http_status != 0 ? json::value(s.http_status) : json::value(nullptr)},
        {"rpcStatus", s.rpc_status >= 0 ? json::value(s.rpc_status) : json::value(nullptr)},
        {"count", s.count},
        {"firstSeen", FormatRfc3339(s.first_seen_unix_nano)},
        {"lastSeen", FormatRfc3339(s.last_seen_unix_nano)},
        {"traces", std::move(traces)}});
  }
  return json::serialize(
      json::object{{"signatures", std::move(signatures)}, {"total", view.total}});
}

}  // namespace traceslo::web
