#include "services/web/slo_page.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <tuple>
#include <utility>

#include "services/web/html.h"
#include "services/web/json_text.h"
#include "traceslo/common/time_format.h"
#include "traceslo/slo/rule.h"

namespace traceslo::web {
namespace {

namespace json = boost::json;

std::string PercentText(double ratio) {
  if (!std::isfinite(ratio)) return "\xe2\x80\x94";
  return Format("%.3f%%", ratio * 100);
}

// The windows an alert's state names, "1h/5m".
std::string TierText(const SloAlertView& a) {
  if (a.long_window.count() == 0) return "";
  return WindowText(a.long_window) + "/" + WindowText(a.short_window);
}

void AppendState(std::string& out, std::string_view state) {
  out += "<span class=\"state ";
  AppendEscaped(out, state);
  out += "\">";
  AppendEscaped(out, state);
  out += "</span>";
}

void AppendRow(std::string& out, const SloView& s) {
  out += "<tr class=\"slo\" data-service=\"";
  AppendEscaped(out, s.service);
  out += "\" data-slo=\"";
  AppendEscaped(out, s.slo);
  out += "\" data-state=\"";
  AppendEscaped(out, s.state);
  out += "\">\n<td data-label=\"SLO\"><b class=\"slo-service\">";
  AppendEscaped(out, s.service);
  out += "</b> \xc2\xb7 <span class=\"slo-name\">";
  AppendEscaped(out, s.slo);
  out += "</span><br><span class=\"meta\">";
  AppendEscaped(out, s.sli);
  if (!s.description.empty()) {
    out += " \xc2\xb7 ";
    AppendEscaped(out, s.description);
  }
  out += "</span></td>\n";

  const bool quantile = s.sli == "latency_quantile";
  out += "<td data-label=\"Objective\" class=\"num objective\">";
  if (quantile) {
    out += "p" + Format("%g", s.quantile * 100) + " \xe2\x89\xa4 " +
           HumanDuration(static_cast<uint64_t>(s.latency_threshold.count()) * 1'000'000);
  } else {
    out += PercentText(s.objective_ratio) + " / " + WindowText(s.compliance_window);
  }
  out += "</td>\n<td data-label=\"SLI and burn rate\"><ul class=\"plain windows\">";
  if (!s.evaluated) {
    out += "<li class=\"meta\">not evaluated yet</li>";
  } else if (quantile) {
    out += "<li class=\"quantile\">" +
           HumanDuration(static_cast<uint64_t>(std::max(0.0, s.latency_quantile_seconds) * 1e9)) +
           "</li>";
  }
  for (const SloWindowView& w : s.windows) {
    out += "<li class=\"window\" data-window=\"" + WindowText(w.window) + "\" data-burn-rate=\"" +
           Format("%.6g", w.burn_rate) + "\"><span class=\"meta\">" + WindowText(w.window) +
           "</span> " + PercentText(w.sli_ratio) + " \xc2\xb7 <b>" + BurnText(w.burn_rate) +
           "</b> <span class=\"meta\">(" + std::to_string(w.bad) + "/" + std::to_string(w.total) +
           " bad)</span></li>";
  }
  out += "</ul></td>\n<td data-label=\"Budget left\" class=\"num budget\">";
  if (quantile) {
    out += "\xe2\x80\x94";
  } else if (!s.evaluated) {
    out += "<span class=\"meta\">\xe2\x80\x94</span>";
  } else {
    const double remaining = s.error_budget_remaining_ratio;
    out += "<meter min=\"0\" max=\"1\" low=\"0.25\" high=\"0.5\" optimum=\"1\" value=\"" +
           Format("%.4f", std::clamp(std::isfinite(remaining) ? remaining : 0.0, 0.0, 1.0)) +
           "\"></meter> " + PercentText(remaining);
  }
  out += "</td>\n<td data-label=\"Exhausted in\" class=\"num exhaustion\">";
  out += quantile || !s.evaluated ? "\xe2\x80\x94" : ExhaustionText(s.seconds_to_exhaustion);
  out += "</td>\n<td data-label=\"State\">";
  AppendState(out, s.state);
  out += "<ul class=\"plain alerts\">";
  for (const SloAlertView& a : s.alerts) {
    out += "<li class=\"slo-alert\" data-severity=\"";
    AppendEscaped(out, a.severity);
    out += "\" data-no-data=\"";
    out += a.no_data ? "true" : "false";
    out += "\" data-state=\"";
    AppendEscaped(out, a.state);
    out += "\"><span class=\"meta\">";
    AppendEscaped(out, a.severity);
    if (a.no_data) out += " (no data)";
    out += ":</span> ";
    AppendEscaped(out, a.state);
    if ((a.state == "firing" || a.state == "pending") && a.active_since_unix_nano != 0) {
      const std::string since = IsoTimeMillis(a.active_since_unix_nano);
      out += " since <time datetime=\"" + since + "\">" + since + "</time>";
    }
    if (a.state == "firing" && !a.no_data && !TierText(a).empty()) {
      out += " <span class=\"meta\">(" + TierText(a) + ": " + BurnText(a.burn_rate_long) + "/" +
             BurnText(a.burn_rate_short) + " \xe2\x89\xa5 " + BurnText(a.threshold_burn_rate) +
             ")</span>";
    }
    out += "</li>";
  }
  out += "</ul></td>\n</tr>\n";
}

}  // namespace

std::string WindowText(std::chrono::milliseconds window) {
  const int64_t ms = window.count();
  if (ms != 0 && ms % 86'400'000 == 0) return std::to_string(ms / 86'400'000) + "d";
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1'000 == 0) return std::to_string(ms / 1'000) + "s";
  return std::to_string(ms) + "ms";
}

std::string ExhaustionText(double seconds) {
  if (std::isnan(seconds) || seconds == std::numeric_limits<double>::infinity()) {
    return "\xe2\x88\x9e";
  }
  if (seconds <= 0) return "exhausted";
  constexpr double kDay = 86'400;
  if (seconds >= 1000 * 365 * kDay) return "> 1000 years";
  const auto whole = static_cast<int64_t>(seconds);
  const int64_t days = whole / 86'400;
  const int64_t hours = whole % 86'400 / 3'600;
  const int64_t minutes = whole % 3'600 / 60;
  if (days > 0) return std::to_string(days) + " d " + std::to_string(hours) + " h";
  if (hours > 0) return std::to_string(hours) + " h " + std::to_string(minutes) + " min";
  if (minutes > 0) return std::to_string(minutes) + " min";
  return std::to_string(std::max<int64_t>(whole, 1)) + " s";
}

std::string OverallState(bool evaluated, const std::vector<SloAlertView>& alerts) {
  if (!evaluated) return "unknown";
  bool pending = false;
  for (const SloAlertView& a : alerts) {
    if (a.state == "firing") return "firing";
    if (a.state == "pending") pending = true;
  }
  return pending ? "pending" : "ok";
}

SloOverview SloOverviewOf(const slo::Evaluator& evaluator) {
  SloOverview overview;
  overview.available = true;
  const std::vector<slo::AlertStatus> alerts = evaluator.Alerts();
  for (const slo::SloStatus& status : evaluator.Slos()) {
    SloView& v = overview.slos.emplace_back();
    v.service = ValidUtf8(status.service);
    v.slo = ValidUtf8(status.slo);
    // The status is zero before the first evaluation: the definition says what the SLO is.
    const std::optional<slo::Slo> definition = evaluator.FindSlo(status.service, status.slo);
    const slo::SliKind kind = definition ? definition->sli.kind : status.kind;
    v.sli = std::string(slo::SliKindName(kind));
    if (definition) {
      v.description = ValidUtf8(definition->description);
      v.objective_ratio = definition->objective_ratio();
      v.compliance_window = definition->window;
      v.quantile = definition->sli.latency_quantile.quantile;
      v.latency_threshold = kind == slo::SliKind::kLatencyQuantile
                                ? definition->sli.latency_quantile.threshold
                                : definition->sli.latency.threshold;
    } else {
      v.objective_ratio = status.objective_ratio;
    }
    // Before the first evaluation the status is zero (kind kErrors, no windows); a
    // latency_quantile SLO has no windows even then, but its status names its kind.
    v.evaluated = !status.windows.empty() || status.kind == slo::SliKind::kLatencyQuantile;
    for (const slo::WindowFigures& w : status.windows) {
      v.windows.push_back(SloWindowView{.window = w.window,
                                        .total = w.events.total,
                                        .bad = w.events.bad,
                                        .sli_ratio = w.sli_ratio,
                                        .burn_rate = w.burn_rate});
    }
    v.error_budget_remaining_ratio = status.error_budget_remaining_ratio;
    v.seconds_to_exhaustion = status.seconds_to_exhaustion;
    v.latency_quantile_seconds = status.latency_quantile_seconds;
    for (const slo::AlertStatus& a : alerts) {
      if (a.service != status.service || a.slo != status.slo) continue;
      v.alerts.push_back(SloAlertView{.severity = std::string(slo::SeverityName(a.severity)),
                                      .no_data = a.no_data,
                                      .state = std::string(slo::AlertStateName(a.state)),
                                      .active_since_unix_nano = a.active_since_unix_nano,
                                      .long_window = a.long_window,
                                      .short_window = a.short_window,
                                      .burn_rate_long = a.burn_rate_long,
                                      .burn_rate_short = a.burn_rate_short,
                                      .threshold_burn_rate = a.threshold_burn_rate});
    }
    v.state = OverallState(v.evaluated, v.alerts);
  }
  std::sort(overview.slos.begin(), overview.slos.end(), [](const SloView& a, const SloView& b) {
    return std::tie(a.service, a.slo) < std::tie(b.service, b.slo);
  });
  return overview;
}

std::string RenderSloPage(const SloOverview& overview, const PageContext& context) {
  size_t firing = 0;
  for (const SloView& s : overview.slos) firing += s.state == "firing" ? 1 : 0;
  std::string title = "SLOs \xe2\x80\x94 traceslo";
  if (firing > 0)
    title = "\xe2\x9c\x96 " + std::to_string(firing) + " firing \xe2\x80\x94 " + title;
  std::string out;
  out.reserve(4096 + overview.slos.size() * 1500);
  BeginPage(out, title);
  AppendNav(out, context.external_url, NavPage::kOverview);
  out += "<main>\n<h1>Service-level objectives</h1>\n";
  const std::string base = PageBaseUrl(context.external_url);
  if (!overview.available) {
    out +=
        "<p class=\"empty\" id=\"no-evaluator\">No SLO evaluator is wired into this server, so "
        "there are no SLOs to show.</p>\n";
  } else if (overview.slos.empty()) {
    out +=
        "<p class=\"empty\" id=\"no-slos\">No SLOs loaded. Write rule files "
        "(<code>rules.files</code>, e.g. <code>rules/*.yaml</code>) and reload with "
        "<code>POST /-/reload</code>.</p>\n";
  } else {
    out += "<p class=\"summary\" id=\"summary\" data-slos=\"" +
           std::to_string(overview.slos.size()) + "\" data-firing=\"" + std::to_string(firing) +
           "\">" + std::to_string(overview.slos.size()) +
           (overview.slos.size() == 1 ? " SLO" : " SLOs") + " \xc2\xb7 " + std::to_string(firing) +
           " firing</p>\n";
    out +=
        "<div class=\"scroll\"><table class=\"stack\" id=\"slos\">\n<thead><tr><th>SLO</th>"
        "<th>Objective</th><th>SLI \xc2\xb7 burn rate per window</th><th>Budget left</th>"
        "<th>Exhausted in</th><th>State</th></tr></thead>\n<tbody>\n";
    for (const SloView& s : overview.slos) AppendRow(out, s);
    out += "</tbody>\n</table></div>\n";
    out +=
        "<p class=\"help\">Burn rate 1\xc3\x97 spends exactly the error budget over the "
        "compliance window; \xe2\x80\x9c"
        "exhausted in\xe2\x80\x9d is at the burn rate of the "
        "shortest page window.</p>\n";
  }
  out += "<p class=\"links\"><a id=\"slos-json\" href=\"";
  AppendEscaped(out, base + "/api/v1/slos");
  out += "\">JSON</a></p>\n</main>\n";
  EndPage(out);
  return out;
}

std::string SlosJson(const SloOverview& overview) {
  json::array slos;
  for (const SloView& s : overview.slos) {
    json::array windows;
    for (const SloWindowView& w : s.windows) {
      windows.push_back(json::object{{"window", WindowText(w.window)},
                                     {"windowSeconds", w.window.count() / 1000},
                                     {"total", w.total},
                                     {"bad", w.bad},
                                     {"sli", JsonNumber(w.sli_ratio)},
                                     {"burnRate", JsonNumber(w.burn_rate)}});
    }
    json::array alerts;
    for (const SloAlertView& a : s.alerts) {
      const bool active = a.state == "firing" || a.state == "pending";
      json::object alert{{"severity", JsonText(a.severity)},
                         {"noData", a.no_data},
                         {"state", JsonText(a.state)},
                         {"activeSince", active && a.active_since_unix_nano != 0
                                             ? json::value(FormatRfc3339(a.active_since_unix_nano))
                                             : json::value(nullptr)}};
      if (!a.no_data && a.long_window.count() != 0) {
        alert["longWindow"] = WindowText(a.long_window);
        alert["shortWindow"] = WindowText(a.short_window);
        alert["burnRateLong"] = JsonNumber(a.burn_rate_long);
        alert["burnRateShort"] = JsonNumber(a.burn_rate_short);
        alert["thresholdBurnRate"] = JsonNumber(a.threshold_burn_rate);
      }
      alerts.push_back(std::move(alert));
    }
    json::object o{{"service", JsonText(s.service)},
                   {"slo", JsonText(s.slo)},
                   {"description", JsonText(s.description)},
                   {"sli", JsonText(s.sli)},
                   {"state", JsonText(s.state)},
                   {"evaluated", s.evaluated},
                   {"windows", std::move(windows)},
                   {"alerts", std::move(alerts)}};
    if (s.sli == "latency_quantile") {
      o["quantile"] = JsonNumber(s.quantile);
      o["thresholdSeconds"] = static_cast<double>(s.latency_threshold.count()) / 1e3;
      o["latencyQuantileSeconds"] =
          s.evaluated ? JsonNumber(s.latency_quantile_seconds) : json::value(nullptr);
    } else {
      o["objective"] = JsonNumber(s.objective_ratio);
      o["complianceWindow"] = WindowText(s.compliance_window);
      o["errorBudgetRemaining"] =
          s.evaluated ? JsonNumber(s.error_budget_remaining_ratio) : json::value(nullptr);
      // null: nothing burns (no exhaustion in sight) or not evaluated yet.
      o["secondsToExhaustion"] =
          s.evaluated ? JsonNumber(s.seconds_to_exhaustion) : json::value(nullptr);
      o["timeToExhaustion"] = s.evaluated ? ExhaustionText(s.seconds_to_exhaustion) : "";
      if (s.sli == "latency") {
        o["thresholdSeconds"] = static_cast<double>(s.latency_threshold.count()) / 1e3;
      }
    }
    slos.push_back(std::move(o));
  }
  return json::serialize(json::object{{"slos", std::move(slos)}});
}

}  // namespace traceslo::web
