#include "services/web/alerts_page.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <set>
#include <utility>

#include "services/web/html.h"
#include "services/web/json_text.h"
#include "traceslo/common/time_format.h"

namespace traceslo::web {
namespace {

namespace json = boost::json;

json::object LabelsJson(const alerting::Labels& labels) {
  json::object out;
  for (const auto& [name, value] : labels) out[ValidUtf8(name)] = JsonText(value);
  return out;
}

json::array CausesJson(const std::vector<alerting::Cause>& causes, std::string_view base) {
  json::array out;
  for (const alerting::Cause& c : causes) {
    json::array traces;
    for (const std::string& id : c.trace_ids) {
      traces.push_back(
          json::object{{"traceId", JsonText(id)}, {"url", JsonText(TraceUrl(base, id))}});
    }
    out.push_back(json::object{{"kind", alerting::CauseKindName(c.kind)},
                               {"id", JsonText(c.id)},
                               {"title", JsonText(c.title)},
                               {"sampleMessage", JsonText(c.sample_message)},
                               {"count", c.count},
                               {"share", JsonNumber(c.share)},
                               {"traces", std::move(traces)}});
  }
  return out;
}

json::object AlertJson(const alerting::RouterAlertView& view, std::string_view base) {
  const alerting::Alert& a = view.alert;
  json::array silenced_by;
  for (const std::string& id : view.silenced_by) silenced_by.push_back(JsonText(id));
  return json::object{
      {"fingerprint", view.fingerprint},
      {"labels", LabelsJson(a.labels)},
      {"annotations", LabelsJson(a.annotations)},
      {"status", a.firing ? "firing" : "resolved"},
      {"startsAt", FormatRfc3339(a.starts_at_unix_nano)},
      {"endsAt", a.firing ? json::value(nullptr) : json::value(FormatRfc3339(a.ends_at_unix_nano))},
      {"inhibited", view.inhibited},
      {"silencedBy", std::move(silenced_by)},
      {"notified", view.notified},
      {"causes", CausesJson(a.causes, base)}};
}

std::string LabelOf(const alerting::Labels& labels, const std::string& name) {
  auto it = labels.find(name);
  return it == labels.end() ? "" : it->second;
}

void AppendTime(std::string& out, int64_t unix_nano) {
  const std::string t = IsoTimeMillis(unix_nano);
  out += "<time datetime=\"" + t + "\">" + t + "</time>";
}

// What a group shows in its heading: its severities, since when it fires, its silences.
struct GroupFacts {
  std::vector<std::string> severities;  // of its firing alerts (all alerts when none fires)
  int64_t since_unix_nano = 0;          // earliest start of a firing alert
  bool silenced = false;                // every firing alert is silenced
  std::set<std::string> silence_ids;
  size_t firing = 0;
};

GroupFacts FactsOf(const alerting::RouterGroupView& g) {
  GroupFacts f;
  std::set<std::string> seen;
  for (const alerting::RouterAlertView& a : g.alerts) {
    if (!a.alert.firing) continue;
    ++f.firing;
    if (f.since_unix_nano == 0 || a.alert.starts_at_unix_nano < f.since_unix_nano) {
      f.since_unix_nano = a.alert.starts_at_unix_nano;
    }
    for (const std::string& id : a.silenced_by) f.silence_ids.insert(id);
  }
  f.silenced = f.firing > 0;
  for (const alerting::RouterAlertView& a : g.alerts) {
    if (a.alert.firing && a.silenced_by.empty()) f.silenced = false;
    if (f.firing > 0 && !a.alert.firing) continue;
    const std::string severity = LabelOf(a.alert.labels, "severity");
    if (!severity.empty() && seen.insert(severity).second) f.severities.push_back(severity);
  }
  return f;
}

// Appends a curl command line for the API call (escaped: it ends up in the page's text).
void AppendCurl(std::string& out, std::string_view method, std::string_view base,
                std::string_view path, bool token, std::string_view body = "") {
  std::string line = "curl -X " + std::string(method);
  if (token) line += " -H 'Authorization: Bearer $TRACESLO_TOKEN'";
  if (!body.empty()) line += " -H 'Content-Type: application/json' -d '" + std::string(body) + "'";
  line += " " + (base.empty() ? std::string("http://<web.external_url>") : std::string(base)) +
          std::string(path);
  out += "<code>";
  AppendEscaped(out, line);
  out += "</code>";
}

void AppendCauses(std::string& out, const std::vector<alerting::Cause>& causes,
                  std::string_view base) {
  if (causes.empty()) return;
  out += "<ul class=\"plain causes\">";
  for (const alerting::Cause& c : causes) {
    out += "<li class=\"cause\" data-kind=\"";
    out += alerting::CauseKindName(c.kind);
    out += "\" data-cause-id=\"";
    AppendEscaped(out, c.id);
    out += "\"><span class=\"meta\">";
    out += alerting::CauseKindName(c.kind);
    out += ":</span> <b class=\"cause-title\">";
    AppendEscaped(out, c.title);
    out += "</b>";
    if (c.kind == alerting::Cause::Kind::kSignature) {
      out += " <code class=\"cause-signature\">";
      AppendEscaped(out, c.id);
      out += "</code>";
    }
    out += " <span class=\"meta\">" + std::to_string(c.count) + " bad \xc2\xb7 " +
           Format("%.0f%%", std::isfinite(c.share) ? c.share * 100 : 0.0) + "</span>";
    if (!c.sample_message.empty()) {
      out += "<br><span class=\"msg sample\">";
      AppendEscaped(out, c.sample_message);
      out += "</span>";
    }
    if (!c.trace_ids.empty()) {
      out += "<br><span class=\"meta\">traces:</span>";
      for (size_t i = 0; i < c.trace_ids.size() && i < kMaxCauseTraces; ++i) {
        out += " <a class=\"trace\" href=\"";
        AppendEscaped(out, TraceUrl(base, c.trace_ids[i]));
        out += "\"><code>";
        AppendEscaped(out, c.trace_ids[i].substr(0, 8));
        out += "</code></a>";
      }
    }
    out += "</li>";
  }
  out += "</ul>";
}

void AppendGroup(std::string& out, const alerting::RouterGroupView& g, std::string_view base,
                 bool token) {
  const GroupFacts f = FactsOf(g);
  const std::string signature = LabelOf(g.group_labels, "signature");
  const std::string service = LabelOf(g.group_labels, "service");
  out += "<section class=\"group";
  if (g.acked) out += " acked";
  out += "\" data-group-key=\"";
  AppendEscaped(out, g.group_key);
  out += "\" data-receiver=\"";
  AppendEscaped(out, g.receiver);
  out += "\" data-signature=\"";
  AppendEscaped(out, signature);
  out += "\" data-acked=\"";
  out += g.acked ? "true" : "false";
  out += "\" data-silenced=\"";
  out += f.silenced ? "true" : "false";
  out += "\">\n<h3>";
  AppendEscaped(out, service.empty() ? std::string_view("(no service)") : service);
  if (!signature.empty()) {
    out += " \xc2\xb7 <code>";
    AppendEscaped(out, signature);
    out += "</code>";
  }
  out += "</h3>\n<p class=\"meta\">";
  for (size_t i = 0; i < f.severities.size(); ++i) {
    out += i == 0 ? "<b class=\"severity\">" : ", ";
    AppendEscaped(out, f.severities[i]);
    if (i + 1 == f.severities.size()) out += "</b> \xc2\xb7 ";
  }
  out += std::to_string(f.firing) + " firing";
  if (f.since_unix_nano != 0) {
    out += " since ";
    AppendTime(out, f.since_unix_nano);
  }
  out += " \xc2\xb7 receiver <code>";
  AppendEscaped(out, g.receiver);
  out += "</code> \xc2\xb7 ";
  if (g.sent) {
    out += "notified (#" + std::to_string(g.sequence) + ") at ";
    AppendTime(out, g.last_sent_unix_nano);
  } else {
    out += "not notified yet";
  }
  out += "<br>group <code class=\"group-key\">";
  AppendEscaped(out, g.group_key);
  out += "</code></p>\n<p class=\"status\">";
  if (g.acked) {
    out += "<span class=\"state acked\">acknowledged</span> at ";
    AppendTime(out, g.acked_at_unix_nano);
    out += " (no repeats until it resolves)";
  } else {
    out += "<span class=\"state\">not acknowledged</span>";
  }
  if (f.silenced) {
    out += " \xc2\xb7 <span class=\"state silenced\">silenced</span> by";
    for (const std::string& id : f.silence_ids) {
      out += " <code class=\"silence-id\">";
      AppendEscaped(out, id);
      out += "</code>";
    }
  }
  out += "</p>\n<ul class=\"plain\">\n";
  std::string ack_fingerprint;
  for (const alerting::RouterAlertView& a : g.alerts) {
    const bool silenced = !a.silenced_by.empty();
    if (a.alert.firing && ack_fingerprint.empty()) ack_fingerprint = a.fingerprint;
    out += "<li class=\"alert\" data-fingerprint=\"";
    AppendEscaped(out, a.fingerprint);
    out += "\" data-state=\"";
    out += a.alert.firing ? "firing" : "resolved";
    out += "\" data-silenced=\"";
    out += silenced ? "true" : "false";
    out += "\" data-inhibited=\"";
    out += a.inhibited ? "true" : "false";
    out += "\"><span class=\"state ";
    out += a.alert.firing ? "firing\">firing" : "ok\">resolved";
    out += "</span> <b>";
    AppendEscaped(out, LabelOf(a.alert.labels, "alertname"));
    out += "</b>";
    for (const char* name : {"slo", "severity"}) {
      if (const std::string value = LabelOf(a.alert.labels, name); !value.empty()) {
        out += " \xc2\xb7 ";
        AppendEscaped(out, value);
      }
    }
    out += " <span class=\"meta\">since ";
    AppendTime(out, a.alert.starts_at_unix_nano);
    if (!a.alert.firing && a.alert.ends_at_unix_nano != 0) {
      out += ", resolved ";
      AppendTime(out, a.alert.ends_at_unix_nano);
    }
    out += " \xc2\xb7 <code>";
    AppendEscaped(out, a.fingerprint);
    out += "</code>";
    if (a.inhibited) out += " \xc2\xb7 inhibited";
    if (silenced) {
      out += " \xc2\xb7 silenced by";
      for (const std::string& id : a.silenced_by) {
        out += " <code class=\"silence-id\">";
        AppendEscaped(out, id);
        out += "</code>";
      }
    }
    out += a.notified ? " \xc2\xb7 notified" : "";
    out += "</span>";
    if (const std::string summary = LabelOf(a.alert.annotations, "summary"); !summary.empty()) {
      out += "<br><span class=\"msg summary-text\">";
      AppendEscaped(out, summary);
      out += "</span>";
    }
    AppendCauses(out, a.alert.causes, base);
    out += "</li>\n";
  }
  out += "</ul>\n";
  if (!g.acked && !ack_fingerprint.empty()) {
    out += "<p class=\"help\">ack with: ";
    AppendCurl(out, "POST", base, "/api/v1/alerts/" + ack_fingerprint + "/ack", token);
    out += "</p>\n";
  }
  if (!signature.empty() && !f.silenced) {
    out += "<p class=\"help\">silence with: ";
    json::object body{{"matchers", json::array{json::object{{"name", "signature"},
                                                            {"value", JsonText(signature)},
                                                            {"isEqual", true}}}},
                      {"duration", "2h"},
                      {"createdBy", "you"},
                      {"comment", "why"}};
    AppendCurl(out, "POST", base, "/api/v1/silences", token, json::serialize(body));
    out += "</p>\n";
  }
  out += "</section>\n";
}

void AppendSilences(std::string& out, const std::vector<alerting::SilenceStatus>& silences,
                    std::string_view base, bool token) {
  out += "<h2 id=\"silences-heading\">Silences</h2>\n";
  if (silences.empty()) {
    out += "<p class=\"empty\" id=\"no-silences\">No silences.</p>\n";
  } else {
    out +=
        "<div class=\"scroll\"><table class=\"stack\" id=\"silences\">\n<thead><tr><th>State</th>"
        "<th>Matchers</th><th>Starts</th><th>Ends</th><th>By</th><th>Id</th></tr></thead>\n"
        "<tbody>\n";
    for (const alerting::SilenceStatus& s : silences) {
      const std::string_view state = alerting::SilenceStateName(s.state);
      out += "<tr class=\"silence\" data-silence-id=\"";
      AppendEscaped(out, s.silence.id);
      out += "\" data-state=\"";
      AppendEscaped(out, state);
      out += "\"><td data-label=\"State\">";
      AppendEscaped(out, state);
      out += "</td><td data-label=\"Matchers\" class=\"msg\">";
      for (size_t i = 0; i < s.silence.matchers.size(); ++i) {
        const alerting::SilenceMatcher& m = s.silence.matchers[i];
        out += i == 0 ? "<code>" : ", <code>";
        AppendEscaped(out, m.name);
        out += m.equal ? "=" : "!=";
        AppendEscaped(out, "\"" + m.value + "\"");
        out += "</code>";
      }
      out += "</td><td data-label=\"Starts\">";
      AppendTime(out, s.silence.starts_at_unix_nano);
      out += "</td><td data-label=\"Ends\">";
      AppendTime(out, s.silence.ends_at_unix_nano);
      out += "</td><td data-label=\"By\" class=\"msg\">";
      AppendEscaped(out, s.silence.created_by);
      if (!s.silence.comment.empty()) {
        out += "<br><span class=\"meta\">";
        AppendEscaped(out, s.silence.comment);
        out += "</span>";
      }
      out += "</td><td data-label=\"Id\"><code>";
      AppendEscaped(out, s.silence.id);
      out += "</code></td></tr>\n";
    }
    out += "</tbody>\n</table></div>\n";
  }
  out += "<p class=\"help\">expire one with: ";
  AppendCurl(out, "DELETE", base, "/api/v1/silences/{id}", token);
  out += "</p>\n";
}

void AppendHistory(std::string& out, const AlertsView& view, std::string_view base) {
  out += "<h2 id=\"recent-heading\">Recent alerts</h2>\n";
  if (!view.history_available) {
    out += "<p class=\"empty\" id=\"no-history\">No alert history is wired into this server.</p>\n";
    return;
  }
  if (!view.history_error.empty()) {
    out += "<p class=\"empty\" id=\"history-error\">The alert history could not be read: ";
    AppendEscaped(out, view.history_error);
    out += "</p>\n";
    return;
  }
  if (view.history.empty()) {
    out += "<p class=\"empty\" id=\"no-recent\">No alert has changed state yet.</p>\n";
    return;
  }
  out +=
      "<div class=\"scroll\"><table class=\"stack\" id=\"recent\">\n<thead><tr><th>At</th>"
      "<th>SLO</th><th>Change</th><th>Burn rate</th><th>Causes</th></tr></thead>\n<tbody>\n";
  const size_t shown = std::min(view.history.size(), kMaxRecentAlerts);
  for (size_t i = 0; i < shown; ++i) {
    const AlertHistoryView& h = view.history[i];
    out += "<tr class=\"history\" data-service=\"";
    AppendEscaped(out, h.service);
    out += "\" data-slo=\"";
    AppendEscaped(out, h.slo);
    out += "\" data-to=\"";
    AppendEscaped(out, h.to);
    out += "\"><td data-label=\"At\">";
    AppendTime(out, h.at_unix_nano);
    out += "</td><td data-label=\"SLO\"><b>";
    AppendEscaped(out, h.service);
    out += "</b> \xc2\xb7 ";
    AppendEscaped(out, h.slo);
    out += " <span class=\"meta\">";
    AppendEscaped(out, h.severity);
    if (h.no_data) out += " (no data)";
    out += "</span></td><td data-label=\"Change\">";
    AppendEscaped(out, h.from);
    out += " \xe2\x86\x92 <span class=\"state ";
    AppendEscaped(out, h.to);
    out += "\">";
    AppendEscaped(out, h.to);
    out += "</span></td><td data-label=\"Burn rate\" class=\"num\">";
    if (!h.no_data) {
      out += BurnText(h.burn_rate_long) + " / " + BurnText(h.burn_rate_short) + " \xe2\x89\xa5 " +
             BurnText(h.threshold_burn_rate);
    }
    out += "</td><td data-label=\"Causes\">";
    AppendCauses(out, h.causes, base);
    out += "</td></tr>\n";
  }
  out += "</tbody>\n</table></div>\n";
  if (view.history.size() > shown) {
    out += "<p class=\"more\">The newest " + std::to_string(shown) + " are shown.</p>\n";
  }
}

alerting::Cause CauseOf(const json::object& o) {
  alerting::Cause c;
  auto text = [&](std::string_view key) -> std::string {
    const json::value* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
  };
  const std::string kind = text("kind");
  c.kind = kind == "slow_operation"      ? alerting::Cause::Kind::kSlowOperation
           : kind == "propagation_break" ? alerting::Cause::Kind::kPropagationBreak
                                         : alerting::Cause::Kind::kSignature;
  c.id = text("id");
  c.title = text("title");
  c.sample_message = text("sampleMessage");
  if (const json::value* v = o.if_contains("count"); v != nullptr && v->is_number()) {
    boost::system::error_code ec;
    const auto n = v->to_number<uint64_t>(ec);
    if (!ec) c.count = n;
  }
  if (const json::value* v = o.if_contains("share"); v != nullptr && v->is_number()) {
    boost::system::error_code ec;
    const auto share = v->to_number<double>(ec);
    if (!ec) c.share = share;
  }
  if (const json::value* v = o.if_contains("traceIds"); v != nullptr && v->is_array()) {
    for (const json::value& id : v->get_array()) {
      if (id.is_string() && c.trace_ids.size() < kMaxCauseTraces) {
        c.trace_ids.emplace_back(id.get_string());
      }
    }
  }
  return c;
}

}  // namespace

AlertHistoryView AlertHistoryViewOf(const alerting::AlertHistoryEntry& entry) {
  AlertHistoryView v{.id = entry.id,
                     .service = ValidUtf8(entry.service),
                     .slo = ValidUtf8(entry.slo),
                     .severity = ValidUtf8(entry.severity),
                     .no_data = entry.no_data,
                     .from = ValidUtf8(entry.from),
                     .to = ValidUtf8(entry.to),
                     .at_unix_nano = entry.at_unix_nano,
                     .burn_rate_long = entry.burn_rate_long,
                     .burn_rate_short = entry.burn_rate_short,
                     .threshold_burn_rate = entry.threshold_burn_rate};
  boost::system::error_code ec;
  json::parse_options limits;
  limits.max_depth = 8;
  const json::value causes = json::parse(entry.causes_json, ec, {}, limits);
  if (ec || !causes.is_array()) return v;
  for (const json::value& c : causes.get_array()) {
    if (c.is_object()) v.causes.push_back(CauseOf(c.get_object()));
  }
  return v;
}

std::string RenderAlertsPage(const AlertsView& view, const AlertsPageContext& context) {
  const std::string base = PageBaseUrl(context.page.external_url);
  const bool token = context.write_token_required;
  size_t firing_groups = 0;
  for (const alerting::RouterGroupView& g : view.groups) {
    if (FactsOf(g).firing > 0) ++firing_groups;
  }
  std::string title = "Alerts \xe2\x80\x94 traceslo";
  if (firing_groups > 0) {
    title = "\xe2\x9c\x96 " + std::to_string(firing_groups) + " firing \xe2\x80\x94 " + title;
  }
  std::string out;
  out.reserve(8192 + view.groups.size() * 3000 + view.history.size() * 600);
  BeginPage(out, title);
  AppendNav(out, context.page.external_url, NavPage::kAlerts);
  out += "<main>\n<h1>Alerts</h1>\n<h2 id=\"groups-heading\">Open groups</h2>\n";
  if (view.groups.empty()) {
    out += "<p class=\"empty\" id=\"no-alerts\">No alerts firing.</p>\n";
  } else {
    out += "<p class=\"summary\" id=\"summary\" data-groups=\"" +
           std::to_string(view.groups.size()) + "\" data-firing-groups=\"" +
           std::to_string(firing_groups) + "\">" + std::to_string(view.groups.size()) +
           (view.groups.size() == 1 ? " open group" : " open groups") + " \xc2\xb7 " +
           std::to_string(firing_groups) + " firing</p>\n";
    for (const alerting::RouterGroupView& g : view.groups) AppendGroup(out, g, base, token);
  }
  AppendSilences(out, view.silences, base, token);
  AppendHistory(out, view, base);
  out += "<p class=\"links\"><a id=\"alerts-json\" href=\"";
  AppendEscaped(out, base + "/api/v1/alerts");
  out += "\">JSON</a> \xc2\xb7 <a id=\"silences-json\" href=\"";
  AppendEscaped(out, base + "/api/v1/silences");
  out += "\">silences JSON</a></p>\n</main>\n";
  EndPage(out);
  return out;
}

std::string AlertsJson(const AlertsView& view, std::string_view external_url) {
  const std::string base = PageBaseUrl(external_url);
  json::array groups;
  for (const alerting::RouterGroupView& g : view.groups) {
    json::array alerts;
    for (const alerting::RouterAlertView& a : g.alerts) alerts.push_back(AlertJson(a, base));
    groups.push_back(json::object{
        {"receiver", JsonText(g.receiver)},
        {"groupKey", JsonText(g.group_key)},
        {"labels", LabelsJson(g.group_labels)},
        {"alerts", std::move(alerts)},
        {"notified", g.sent},
        {"sequence", g.sequence},
        {"lastNotifiedAt",
         g.sent ? json::value(FormatRfc3339(g.last_sent_unix_nano)) : json::value(nullptr)},
        {"acknowledged", g.acked},
        {"acknowledgedAt",
         g.acked ? json::value(FormatRfc3339(g.acked_at_unix_nano)) : json::value(nullptr)}});
  }
  json::array recent;
  const size_t shown = std::min(view.history.size(), kMaxRecentAlerts);
  for (size_t i = 0; i < shown; ++i) {
    const AlertHistoryView& h = view.history[i];
    recent.push_back(json::object{{"id", h.id},
                                  {"service", JsonText(h.service)},
                                  {"slo", JsonText(h.slo)},
                                  {"severity", JsonText(h.severity)},
                                  {"noData", h.no_data},
                                  {"from", JsonText(h.from)},
                                  {"to", JsonText(h.to)},
                                  {"at", FormatRfc3339(h.at_unix_nano)},
                                  {"burnRateLong", JsonNumber(h.burn_rate_long)},
                                  {"burnRateShort", JsonNumber(h.burn_rate_short)},
                                  {"thresholdBurnRate", JsonNumber(h.threshold_burn_rate)},
                                  {"causes", CausesJson(h.causes, base)}});
  }
  json::object root{{"groups", std::move(groups)},
                    {"recent", std::move(recent)},
                    {"recentAvailable", view.history_available && view.history_error.empty()}};
  if (!view.history_error.empty()) root["recentError"] = JsonText(view.history_error);
  std::string out = json::serialize(root);
  return out;
}

}  // namespace traceslo::web
