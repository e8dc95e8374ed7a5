#include "traceslo/web/openmetrics.h"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "prometheus/client_metric.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

namespace traceslo::web {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricType;

// OpenMetrics caps an exemplar's label set at 128 UTF-8 characters (names and values).
constexpr size_t kMaxExemplarLabelChars = 128;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// The q-value of one media range's parameters: 1 when absent; nullopt when malformed.
std::optional<double> QualityOf(std::string_view params) {
  double q = 1;
  while (!params.empty()) {
    const size_t semi = params.find(';');
    const std::string_view param = Trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view() : params.substr(semi + 1);
    const size_t eq = param.find('=');
    if (eq == std::string_view::npos || !EqualsIgnoreCase(Trim(param.substr(0, eq)), "q")) {
      continue;
    }
    const std::string_view value = Trim(param.substr(eq + 1));
    double parsed = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), parsed);
    if (ec != std::errc() || end != value.data() + value.size() || !(parsed >= 0) || parsed > 1) {
      return std::nullopt;
    }
    q = parsed;
  }
  return q;
}

void AppendDouble(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    char buffer[32];
    const auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
    out.append(buffer, ec == std::errc() ? end : buffer);
  }
}

// Label values and HELP text escape backslash, double quote and newline.
void AppendEscaped(std::string& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

// `{name="value",...}` with an optional last label whose value needs no escaping (le, quantile);
// nothing for no labels unless `braces_when_empty` (exemplars always have their braces).
void AppendLabels(std::string& out, const std::vector<ClientMetric::Label>& labels,
                  std::string_view extra_name = {}, std::string_view extra_value = {},
                  bool braces_when_empty = false) {
  if (labels.empty() && extra_name.empty() && !braces_when_empty) return;
  out += '{';
  bool first = true;
  for (const ClientMetric::Label& label : labels) {
    if (!first) out += ',';
    first = false;
    out += label.name;
    out += "=\"";
    AppendEscaped(out, label.value);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out += '"';
  }
  out += '}';
}

size_t Utf8Chars(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

void AppendExemplar(std::string& out, const std::optional<metrics::Exemplar>& exemplar) {
  if (!exemplar) return;
  size_t chars = 0;
  for (const ClientMetric::Label& label : exemplar->labels) {
    chars += Utf8Chars(label.name) + Utf8Chars(label.value);
  }
  if (chars > kMaxExemplarLabelChars) return;  // not valid OpenMetrics: leave it out
  out += " # ";
  AppendLabels(out, exemplar->labels, {}, {}, /*braces_when_empty=*/true);
  out += ' ';
  AppendDouble(out, exemplar->value);
  if (exemplar->timestamp_seconds) {
    out += ' ';
    AppendDouble(out, *exemplar->timestamp_seconds);
  }
}

void AppendSample(std::string& out, std::string_view name,
                  const std::vector<ClientMetric::Label>& labels, double value,
                  const std::optional<metrics::Exemplar>* exemplar = nullptr,
                  std::string_view extra_name = {}, std::string_view extra_value = {}) {
  out += name;
  AppendLabels(out, labels, extra_name, extra_value);
  out += ' ';
  AppendDouble(out, value);
  if (exemplar != nullptr) AppendExemplar(out, *exemplar);
  out += '\n';
}

const std::optional<metrics::Exemplar>* ExemplarAt(const metrics::ExemplarFamily& f, size_t metric,
                                                   size_t index) {
  if (metric >= f.exemplars.size() || index >= f.exemplars[metric].size()) return nullptr;
  return &f.exemplars[metric][index];
}

// One family's samples (its metadata is written by the caller).
void AppendSamples(std::string& out, const metrics::ExemplarFamily& f, std::string_view name,
                   MetricType type, bool counter_total) {
  const std::string total = std::string(name) + "_total";
  const std::string bucket = std::string(name) + "_bucket";
  const std::string count = std::string(name) + "_count";
  const std::string sum = std::string(name) + "_sum";
  for (size_t m = 0; m < f.family.metric.size(); ++m) {
    const ClientMetric& metric = f.family.metric[m];
    switch (type) {
      case MetricType::Counter:
        if (counter_total) {
          AppendSample(out, total, metric.label, metric.counter.value, ExemplarAt(f, m, 0));
        } else {
          AppendSample(out, name, metric.label, metric.counter.value);
        }
        break;
      case MetricType::Gauge:
        AppendSample(out, name, metric.label, metric.gauge.value);
        break;
      case MetricType::Untyped:
        AppendSample(out, name, metric.label, metric.untyped.value);
        break;
      case MetricType::Summary: {
        for (const ClientMetric::Quantile& q : metric.summary.quantile) {
          std::string quantile;
          AppendDouble(quantile, q.quantile);
          AppendSample(out, name, metric.label, q.value, nullptr, "quantile", quantile);
        }
        AppendSample(out, sum, metric.label, metric.summary.sample_sum);
        AppendSample(out, count, metric.label, static_cast<double>(metric.summary.sample_count));
        break;
      }
      case MetricType::Histogram: {
        bool has_inf = false;
        const auto& buckets = metric.histogram.bucket;
        for (size_t b = 0; b < buckets.size(); ++b) {
          std::string le;
          AppendDouble(le, buckets[b].upper_bound);
          has_inf = has_inf || std::isinf(buckets[b].upper_bound);
          AppendSample(out, bucket, metric.label, static_cast<double>(buckets[b].cumulative_count),
                       ExemplarAt(f, m, b), "le", le);
        }
        if (!has_inf) {  // OpenMetrics requires the +Inf bucket
          AppendSample(out, bucket, metric.label,
                       static_cast<double>(metric.histogram.sample_count), nullptr, "le", "+Inf");
        }
        AppendSample(out, count, metric.label, static_cast<double>(metric.histogram.sample_count));
        AppendSample(out, sum, metric.label, metric.histogram.sample_sum);
        break;
      }
    }
  }
}

std::string_view TypeName(MetricType type, bool counter_total) {
  switch (type) {
    case MetricType::Counter:
      return counter_total ? "counter" : "unknown";
    case MetricType::Gauge:
      return "gauge";
    case MetricType::Summary:
      return "summary";
    case MetricType::Histogram:
      return "histogram";
    case MetricType::Untyped:
      return "unknown";
  }
  return "unknown";
}

}  // namespace

bool PrefersOpenMetrics(std::string_view accept) {
  double openmetrics = 0;
  double text = 0;
  while (!accept.empty()) {
    const size_t comma = accept.find(',');
    const std::string_view range = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view() : accept.substr(comma + 1);
    const size_t semi = range.find(';');
    const std::string_view type = Trim(range.substr(0, semi));
    const std::optional<double> q =
        QualityOf(semi == std::string_view::npos ? std::string_view() : range.substr(semi + 1));
    if (!q) continue;
    if (EqualsIgnoreCase(type, "application/openmetrics-text")) {
      openmetrics = std::max(openmetrics, *q);
    } else if (EqualsIgnoreCase(type, "text/plain")) {
      text = std::max(text, *q);
    }
  }
  return openmetrics > 0 && openmetrics >= text;
}

std::string SerializeOpenMetrics(const std::vector<metrics::ExemplarFamily>& families) {
  // OpenMetrics names each family once: families of the same name (from several collectables)
  // are written together, in the order their names first appear.
  std::vector<std::vector<const metrics::ExemplarFamily*>> groups;
  std::unordered_map<std::string_view, size_t> group_of;
  for (const metrics::ExemplarFamily& f : families) {
    auto [it, inserted] = group_of.try_emplace(f.family.name, groups.size());
    if (inserted) groups.emplace_back();
    groups[it->second].push_back(&f);
  }
  std::string out;
  for (const auto& group : groups) {
    const prometheus::MetricFamily& first = group.front()->family;
    std::string_view name = first.name;
    const bool counter_total = first.type == MetricType::Counter && name.ends_with("_total");
    if (counter_total) name.remove_suffix(6);
    out += "# TYPE ";
    out += name;
    out += ' ';
    out += TypeName(first.type, counter_total);
    out += '\n';
    if (!first.help.empty()) {
      out += "# HELP ";
      out += name;
      out += ' ';
      AppendEscaped(out, first.help);
      out += '\n';
    }
    for (const metrics::ExemplarFamily* f : group) {
      // A same-named family of another type cannot join this one.
      if (f->family.type != first.type) continue;
      AppendSamples(out, *f, name, first.type, counter_total);
    }
  }
  out += "# EOF\n";
  return out;
}

}  // namespace traceslo::web
