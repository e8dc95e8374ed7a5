#include "services/alerting/payloads.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <utility>

#include "services/alerting/json_writer.h"
#include "traceslo/common/time_format.h"

namespace traceslo::alerting {
namespace {

constexpr size_t kSlackHeaderMax = 150;    // Slack: header text
constexpr size_t kSlackSectionMax = 3000;  // Slack: section text
constexpr size_t kSlackMaxCauses = 5;
constexpr size_t kPagerDutySummaryMax = 1024;
constexpr size_t kPagerDutyMaxLinks = 20;

std::string Hex(const unsigned char* bytes, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 0xf];
  }
  return out;
}

std::string Base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(std::max(n, 0)));
  return out;
}

// Empty when `text` is not base64 (the configuration checks the key's form).
std::string Unbase64(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return "";
  std::string out(3 * (text.size() / 4), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return "";
  size_t size = static_cast<size_t>(n);
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) --size;  // padding decodes to 0s
  out.resize(size);
  return out;
}

// Cuts at `max` bytes without splitting a UTF-8 sequence; "…" marks the cut.
std::string Truncate(std::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  constexpr std::string_view kEllipsis = "\xe2\x80\xa6";
  size_t cut = max - kEllipsis.size();
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + std::string(kEllipsis);
}

std::string_view Get(const Labels& labels, const std::string& key) {
  auto it = labels.find(key);
  return it == labels.end() ? std::string_view() : std::string_view(it->second);
}

// The key naming the cause's id in the traceslo object.
std::string_view IdKey(Cause::Kind kind) {
  switch (kind) {
    case Cause::Kind::kSignature:
      return "signature";
    case Cause::Kind::kSlowOperation:
      return "operation";
    case Cause::Kind::kPropagationBreak:
      return "service";
  }
  return "signature";
}

std::string_view KindTitle(Cause::Kind kind) {
  switch (kind) {
    case Cause::Kind::kSignature:
      return "Signature";
    case Cause::Kind::kSlowOperation:
      return "Slow operation";
    case Cause::Kind::kPropagationBreak:
      return "Propagation break";
  }
  return "Signature";
}

size_t FiringAlerts(const Notification& n) {
  return static_cast<size_t>(
      std::count_if(n.alerts.begin(), n.alerts.end(), [](const Alert& a) { return a.firing; }));
}

std::string BaseUrl(std::string_view external_url) {
  std::string base(external_url);
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base;
}

// Slack mrkdwn: &, < and > are control characters.
std::string SlackEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '&') {
      out += "&amp;";
    } else if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else {
      out += c;
    }
  }
  return out;
}

// <url|text>; the text may not contain '|' or '>' unescaped.
std::string SlackLink(std::string_view url, std::string_view text) {
  std::string label = SlackEscape(text);
  std::replace(label.begin(), label.end(), '|', '/');
  return "<" + std::string(url) + "|" + label + ">";
}

std::string ShortId(std::string_view id) {
  return id.size() > 12 ? std::string(id.substr(0, 12)) + "\xe2\x80\xa6" : std::string(id);
}

std::string Percent(double share) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.0f%%", share * 100);
  return buf;
}

void WriteExemplars(JsonWriter& w, const Notification& n, const Cause& cause,
                    std::string_view trace_url) {
  w.BeginArray();
  for (const std::string& trace_id : cause.trace_ids) {
    const TraceLink link = LinkTrace(n.external_url, trace_url, trace_id);
    w.BeginObject();
    w.Key("traceId").String(link.trace_id);
    w.Key("url").String(link.url);
    if (!link.external_url.empty()) w.Key("externalUrl").String(link.external_url);
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace

std::string FormatTime(int64_t unix_nano) { return FormatRfc3339(unix_nano); }

TraceLink LinkTrace(std::string_view external_url, std::string_view trace_url,
                    std::string_view trace_id) {
  TraceLink link;
  link.trace_id = std::string(trace_id);
  link.url = BaseUrl(external_url) + "/traces/" + std::string(trace_id);
  if (!trace_url.empty()) {
    std::string url(trace_url);
    for (size_t at = url.find("{trace_id}"); at != std::string::npos;
         at = url.find("{trace_id}", at + trace_id.size())) {
      url.replace(at, 10, trace_id);
    }
    link.external_url = std::move(url);
  }
  return link;
}

std::vector<Cause> MergedCauses(const Notification& n) {
  std::map<std::pair<int, std::string>, Cause> by_id;
  for (const Alert& alert : n.alerts) {
    for (const Cause& cause : alert.causes) {
      auto [it, added] = by_id.try_emplace({static_cast<int>(cause.kind), cause.id}, cause);
      if (!added && cause.count > it->second.count) it->second = cause;
    }
  }
  std::vector<Cause> out;
  for (auto& [key, cause] : by_id) out.push_back(std::move(cause));
  std::stable_sort(out.begin(), out.end(),
                   [](const Cause& a, const Cause& b) { return a.count > b.count; });
  return out;
}

std::string Title(const Notification& n) {
  std::string tag = n.firing ? "[FIRING:" + std::to_string(FiringAlerts(n)) + "] " : "[RESOLVED] ";
  std::string_view summary = Get(n.common_annotations, "summary");
  if (!summary.empty()) return tag + std::string(summary);
  std::string what;
  for (const char* key : {"service", "slo"}) {
    std::string_view value = Get(n.common_labels, key);
    if (value.empty()) continue;
    if (!what.empty()) what += ' ';
    what += value;
  }
  if (what.empty()) {
    for (const auto& [name, value] : n.group_labels) {
      if (!what.empty()) what += ", ";
      what += name + "=" + value;
    }
  }
  return tag + (what.empty() ? std::string("traceslo alert") : what);
}

std::string GeneratorUrl(const Notification& n, const Alert& alert) {
  if (!alert.generator_url.empty()) return alert.generator_url;
  return BaseUrl(n.external_url) + "/alerts";
}

std::string GroupKeyHash(std::string_view group_key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(group_key.data()), group_key.size(), digest);
  return Hex(digest, sizeof digest);
}

std::string WebhookPayload(const Notification& n, std::string_view trace_url) {
  JsonWriter w;
  // Alertmanager's order (template.Data, then version, groupKey, truncatedAlerts).
  w.BeginObject();
  w.Key("receiver").String(n.receiver);
  w.Key("status").String(n.firing ? "firing" : "resolved");
  w.Key("alerts").BeginArray();
  for (const Alert& alert : n.alerts) {
    w.BeginObject();
    w.Key("status").String(alert.firing ? "firing" : "resolved");
    w.Key("labels").StringMap(alert.labels);
    w.Key("annotations").StringMap(alert.annotations);
    w.Key("startsAt").String(FormatTime(alert.starts_at_unix_nano));
    w.Key("endsAt").String(FormatTime(alert.firing ? 0 : alert.ends_at_unix_nano));
    w.Key("generatorURL").String(GeneratorUrl(n, alert));
    w.Key("fingerprint").String(Fingerprint(alert.labels));
    w.EndObject();
  }
  w.EndArray();
  w.Key("groupLabels").StringMap(n.group_labels);
  w.Key("commonLabels").StringMap(n.common_labels);
  w.Key("commonAnnotations").StringMap(n.common_annotations);
  w.Key("externalURL").String(n.external_url);
  w.Key("version").String("4");
  w.Key("groupKey").String(n.group_key);
  w.Key("truncatedAlerts").Int(0);
  w.Key("traceslo").BeginObject();
  w.Key("notificationId").String(n.id);
  w.Key("sequence").Uint(n.sequence);
  w.Key("causes").BeginArray();
  for (const Cause& cause : MergedCauses(n)) {
    w.BeginObject();
    w.Key("kind").String(CauseKindName(cause.kind));
    w.Key(IdKey(cause.kind)).String(cause.id);
    w.Key("title").String(cause.title);
    w.Key("count").Uint(cause.count);
    w.Key("share").Double(cause.share);
    w.Key("sampleMessage").String(cause.sample_message);
    w.Key("exemplars");
    WriteExemplars(w, n, cause, trace_url);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  w.EndObject();
  return w.Take();
}

std::string SlackPayload(const Notification& n, std::string_view trace_url) {
  const std::string title = Title(n);
  const std::string base = BaseUrl(n.external_url);
  JsonWriter w;
  w.BeginObject();
  w.Key("text").String(title);  // the fallback for notifications and old clients
  w.Key("blocks").BeginArray();

  w.BeginObject().Key("type").String("header");
  w.Key("text").BeginObject().Key("type").String("plain_text");
  w.Key("text").String(Truncate(title, kSlackHeaderMax)).EndObject();
  w.EndObject();

  std::string summary;
  for (const char* key : {"service", "slo", "severity"}) {
    std::string_view value = Get(n.common_labels, key);
    if (value.empty()) continue;
    if (!summary.empty()) summary += "  ";
    summary += "*" + std::string(key) + "* " + SlackEscape(value);
  }
  std::string_view description = Get(n.common_annotations, "description");
  if (!description.empty()) summary += (summary.empty() ? "" : "\n") + SlackEscape(description);
  std::string_view runbook = Get(n.common_annotations, "runbook_url");
  if (!runbook.empty()) summary += (summary.empty() ? "" : "\n") + SlackLink(runbook, "Runbook");
  if (!summary.empty()) {
    w.BeginObject().Key("type").String("section");
    w.Key("text").BeginObject().Key("type").String("mrkdwn");
    w.Key("text").String(Truncate(summary, kSlackSectionMax)).EndObject();
    w.EndObject();
  }

  const std::vector<Cause> causes = MergedCauses(n);
  for (size_t i = 0; i < causes.size() && i < kSlackMaxCauses; ++i) {
    const Cause& cause = causes[i];
    std::string text = "*" + std::string(KindTitle(cause.kind)) + "* `" + SlackEscape(cause.id) +
                       "`  " + SlackEscape(cause.title) + "\n" + Percent(cause.share) +
                       " of bad events (" + std::to_string(cause.count) + ")";
    if (!cause.sample_message.empty()) text += "\n>" + SlackEscape(cause.sample_message);
    std::string traces;
    for (const std::string& trace_id : cause.trace_ids) {
      const TraceLink link = LinkTrace(n.external_url, trace_url, trace_id);
      if (!traces.empty()) traces += "  ";
      traces += SlackLink(link.url, ShortId(trace_id));
      if (!link.external_url.empty())
        traces += " (" + SlackLink(link.external_url, "external") + ")";
    }
    if (!traces.empty()) text += "\nTraces: " + traces;
    w.BeginObject().Key("type").String("section");
    w.Key("text").BeginObject().Key("type").String("mrkdwn");
    w.Key("text").String(Truncate(text, kSlackSectionMax)).EndObject();
    w.EndObject();
  }

  w.BeginObject().Key("type").String("context");
  w.Key("elements").BeginArray();
  w.BeginObject().Key("type").String("mrkdwn");
  w.Key("text").String(SlackLink(base + "/alerts", "traceslo") + "  notification " +
                       SlackEscape(n.id));
  w.EndObject();
  w.EndArray();
  w.EndObject();

  w.EndArray();
  w.EndObject();
  return w.Take();
}

std::string PagerDutyPayload(const Notification& n, std::string_view routing_key,
                             std::string_view trace_url) {
  JsonWriter w;
  w.BeginObject();
  w.Key("routing_key").String(routing_key);
  w.Key("event_action").String(n.firing ? "trigger" : "resolve");
  w.Key("dedup_key").String(GroupKeyHash(n.group_key));
  if (!n.firing) {  // a resolve needs nothing else
    w.EndObject();
    return w.Take();
  }
  const std::vector<Cause> causes = MergedCauses(n);
  bool page = false;
  int64_t first_start = 0;
  for (const Alert& alert : n.alerts) {
    if (!alert.firing) continue;
    if (Get(alert.labels, "severity") == "page") page = true;
    if (first_start == 0 || alert.starts_at_unix_nano < first_start) {
      first_start = alert.starts_at_unix_nano;
    }
  }
  std::string summary = Title(n);
  if (!causes.empty()) summary += " \xe2\x80\x94 " + causes[0].title;
  std::string_view service = Get(n.common_labels, "service");

  w.Key("payload").BeginObject();
  w.Key("summary").String(Truncate(summary, kPagerDutySummaryMax));
  w.Key("source").String(service.empty() ? std::string_view("traceslo") : service);
  w.Key("severity").String(page ? "critical" : "warning");
  if (first_start != 0) w.Key("timestamp").String(FormatTime(first_start));
  std::string_view slo = Get(n.common_labels, "slo");
  if (!slo.empty()) w.Key("component").String(slo);
  std::string_view signature = Get(n.common_labels, "signature");
  if (!signature.empty()) w.Key("class").String(signature);
  w.Key("custom_details").BeginObject();
  w.Key("group_key").String(n.group_key);
  w.Key("notification_id").String(n.id);
  w.Key("sequence").Uint(n.sequence);
  w.Key("common_labels").StringMap(n.common_labels);
  w.Key("common_annotations").StringMap(n.common_annotations);
  w.Key("alerts").BeginArray();
  for (const Alert& alert : n.alerts) {
    w.BeginObject();
    w.Key("status").String(alert.firing ? "firing" : "resolved");
    w.Key("labels").StringMap(alert.labels);
    w.Key("starts_at").String(FormatTime(alert.starts_at_unix_nano));
    w.EndObject();
  }
  w.EndArray();
  w.Key("causes").BeginArray();
  for (const Cause& cause : causes) {
    w.BeginObject();
    w.Key("kind").String(CauseKindName(cause.kind));
    w.Key(IdKey(cause.kind)).String(cause.id);
    w.Key("title").String(cause.title);
    w.Key("count").Uint(cause.count);
    w.Key("share").Double(cause.share);
    w.Key("sample_message").String(cause.sample_message);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();  // custom_details
  w.EndObject();  // payload

  w.Key("client").String("traceslo");
  w.Key("client_url").String(BaseUrl(n.external_url) + "/alerts");
  w.Key("links").BeginArray();
  size_t links = 0;
  for (const Cause& cause : causes) {
    for (const std::string& trace_id : cause.trace_ids) {
      const TraceLink link = LinkTrace(n.external_url, trace_url, trace_id);
      if (links++ < kPagerDutyMaxLinks) {
        w.BeginObject().Key("href").String(link.url);
        w.Key("text").String("Trace " + ShortId(trace_id) + " (traceslo)").EndObject();
      }
      if (!link.external_url.empty() && links++ < kPagerDutyMaxLinks) {
        w.BeginObject().Key("href").String(link.external_url);
        w.Key("text").String("Trace " + ShortId(trace_id)).EndObject();
      }
    }
  }
  w.EndArray();
  w.EndObject();
  return w.Take();
}

std::string AlertmanagerPayload(const Notification& n, std::string_view trace_url) {
  JsonWriter w;
  w.BeginArray();
  for (const Alert& alert : n.alerts) {
    Labels annotations = alert.annotations;
    if (!alert.causes.empty()) {
      const Cause& top =
          *std::max_element(alert.causes.begin(), alert.causes.end(),
                            [](const Cause& a, const Cause& b) { return a.count < b.count; });
      annotations.try_emplace("traceslo_cause", top.title);
      if (!top.trace_ids.empty()) {
        const TraceLink link = LinkTrace(n.external_url, trace_url, top.trace_ids[0]);
        annotations.try_emplace("traceslo_trace_url", link.url);
        if (!link.external_url.empty()) {
          annotations.try_emplace("traceslo_trace_external_url", link.external_url);
        }
      }
    }
    w.BeginObject();
    w.Key("labels").StringMap(alert.labels);
    w.Key("annotations").StringMap(annotations);
    w.Key("startsAt").String(FormatTime(alert.starts_at_unix_nano));
    // Firing alerts leave endsAt out: Alertmanager then resolves them after its resolve_timeout
    // unless they are sent again, as Prometheus does.
    if (!alert.firing) w.Key("endsAt").String(FormatTime(alert.ends_at_unix_nano));
    w.Key("generatorURL").String(GeneratorUrl(n, alert));
    w.EndObject();
  }
  w.EndArray();
  return w.Take();
}

std::string StandardWebhookSignature(std::string_view secret, std::string_view id,
                                     int64_t timestamp_seconds, std::string_view body) {
  std::string key =
      secret.substr(0, 6) == "whsec_" ? Unbase64(secret.substr(6)) : std::string(secret);
  std::string content(id);
  content += '.';
  content += std::to_string(timestamp_seconds);
  content += '.';
  content += body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac, &mac_size);
  return "v1," + Base64(std::string_view(reinterpret_cast<const char*>(mac), mac_size));
}

}  // namespace traceslo::alerting
