#include "services/loadgen/incidents.h"

#include <charconv>
#include <cmath>
#include <span>
#include <utility>

#include "absl/status/status.h"
#include "traceslo/config/config.h"
#include "traceslo/config/yaml_document.h"

namespace traceslo::loadgen {
namespace {

// `text` quoted and escaped, cut short after 64 bytes: safe in a one-line message.
std::string Quoted(std::string_view text) { return config::QuoteForMessage(text, '\''); }

absl::Status Error(std::string_view location, std::string_view message) {
  return absl::InvalidArgumentError(std::string(location) + ": " + std::string(message));
}

constexpr std::string_view kCommonKeys[] = {"type", "start", "duration"};
constexpr std::string_view kErrorBurstKeys[] = {"service", "operation", "ratio", "exception_type",
                                                "message"};
constexpr std::string_view kLatencyKeys[] = {"service", "factor", "add"};
constexpr std::string_view kBreakKeys[] = {"service", "ratio"};
constexpr std::string_view kDropKeys[] = {"ratio"};

struct TypeInfo {
  IncidentType type;
  std::string_view name;
  std::span<const std::string_view> keys;  // besides type, start and duration
};
constexpr TypeInfo kTypes[] = {
    {IncidentType::kErrorBurst, "error_burst", kErrorBurstKeys},
    {IncidentType::kLatencyRegression, "latency_regression", kLatencyKeys},
    {IncidentType::kPropagationBreak, "propagation_break", kBreakKeys},
    {IncidentType::kTrafficDrop, "traffic_drop", kDropKeys},
};

std::string KeysOf(const TypeInfo& info) {
  std::string out;
  for (std::string_view key : kCommonKeys) {
    if (!out.empty()) out += ", ";
    out += key;
  }
  for (std::string_view key : info.keys) {
    out += ", ";
    out += key;
  }
  return out;
}

absl::StatusOr<double> ParseNumber(const IncidentField& field) {
  double value = 0;
  const char* begin = field.value.data();
  const char* end = begin + field.value.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (field.value.empty() || ec != std::errc() || ptr != end || !std::isfinite(value)) {
    return Error(field.value_location, field.key + " must be a number, got " + Quoted(field.value));
  }
  return value;
}

absl::StatusOr<std::chrono::milliseconds> ParseOffset(const IncidentField& field, bool positive) {
  absl::StatusOr<std::chrono::milliseconds> d = config::ParseDuration(field.value);
  if (!d.ok()) {
    return Error(field.value_location, field.key + ": " + std::string(d.status().message()));
  }
  if ((positive && d->count() <= 0) || *d > kMaxOffset) {
    return Error(field.value_location, field.key + " must be " +
                                           (positive ? "greater than 0" : "at least 0") +
                                           " and at most 365d, got " + Quoted(field.value));
  }
  return *d;
}

// Whether `s` is well-formed UTF-8 (OTLP strings must be; a receiver may refuse the request).
bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = 0;
    uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = cp << 6 | (cc & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

absl::Status CheckName(const IncidentField& field, size_t max_bytes) {
  if (field.value.empty()) return Error(field.value_location, field.key + " must not be empty");
  if (!IsUtf8(field.value)) return Error(field.value_location, field.key + " is not valid UTF-8");
  if (field.value.size() > max_bytes) {
    return Error(field.value_location,
                 field.key + " is longer than " + std::to_string(max_bytes) + " bytes");
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view IncidentTypeName(IncidentType type) {
  for (const TypeInfo& info : kTypes) {
    if (info.type == type) return info.name;
  }
  return "unknown";
}

absl::StatusOr<Incident> BuildIncident(const std::vector<IncidentField>& fields,
                                       std::string_view location) {
  const IncidentField* type_field = nullptr;
  for (const IncidentField& field : fields) {
    if (field.key == "type") type_field = &field;
  }
  if (type_field == nullptr) {
    return Error(location,
                 "incident has no type (expected one of error_burst, "
                 "latency_regression, propagation_break, traffic_drop)");
  }
  const TypeInfo* info = nullptr;
  for (const TypeInfo& candidate : kTypes) {
    if (candidate.name == type_field->value) info = &candidate;
  }
  if (info == nullptr) {
    return Error(type_field->value_location,
                 "unknown incident type " + Quoted(type_field->value) +
                     " (expected one of error_burst, latency_regression, propagation_break, "
                     "traffic_drop)");
  }

  Incident incident;
  incident.type = info->type;
  const IncidentField* service_field = nullptr;
  const IncidentField* operation_field = nullptr;
  const IncidentField* factor_field = nullptr;
  const IncidentField* add_field = nullptr;
  for (size_t i = 0; i < fields.size(); ++i) {
    const IncidentField& field = fields[i];
    for (size_t j = 0; j < i; ++j) {
      if (fields[j].key == field.key) {
        return Error(field.key_location, "duplicate key " + Quoted(field.key));
      }
    }
    const std::string& key = field.key;
    bool known = key == "type" || key == "start" || key == "duration";
    for (std::string_view k : info->keys) known = known || key == k;
    if (!known) {
      return Error(field.key_location, "unknown key " + Quoted(key) + " for " +
                                           std::string(info->name) + " (expected one of " +
                                           KeysOf(*info) + ")");
    }
    if (key == "type") continue;
    if (key == "start") {
      absl::StatusOr<std::chrono::milliseconds> start = ParseOffset(field, false);
      if (!start.ok()) return start.status();
      incident.start = *start;
    } else if (key == "duration") {
      absl::StatusOr<std::chrono::milliseconds> duration = ParseOffset(field, true);
      if (!duration.ok()) return duration.status();
      incident.duration = *duration;
    } else if (key == "service") {
      std::optional<uint8_t> service = FindService(field.value);
      if (!service) {
        return Error(field.value_location, "unknown service " + Quoted(field.value) +
                                               " (expected one of " + ServiceList() + ")");
      }
      incident.service = *service;
      service_field = &field;
    } else if (key == "operation") {
      if (absl::Status s = CheckName(field, kMaxNameBytes); !s.ok()) return s;
      incident.operation = field.value;
      operation_field = &field;
    } else if (key == "ratio") {
      absl::StatusOr<double> ratio = ParseNumber(field);
      if (!ratio.ok()) return ratio.status();
      if (*ratio < 0 || *ratio > 1) {
        return Error(field.value_location,
                     "ratio must be between 0 and 1, got " + Quoted(field.value));
      }
      incident.ratio = *ratio;
    } else if (key == "exception_type") {
      if (absl::Status s = CheckName(field, kMaxNameBytes); !s.ok()) return s;
      incident.exception_type = field.value;
    } else if (key == "message") {
      if (absl::Status s = CheckName(field, kMaxMessageBytes); !s.ok()) return s;
      incident.message = field.value;
    } else if (key == "factor") {
      absl::StatusOr<double> factor = ParseNumber(field);
      if (!factor.ok()) return factor.status();
      if (*factor <= 0 || *factor > kMaxLatencyFactor) {
        return Error(field.value_location,
                     "factor must be greater than 0 and at most 1000, got " + Quoted(field.value));
      }
      incident.factor = *factor;
      factor_field = &field;
    } else if (key == "add") {
      absl::StatusOr<std::chrono::milliseconds> add = config::ParseDuration(field.value);
      if (!add.ok()) {
        return Error(field.value_location, "add: " + std::string(add.status().message()));
      }
      if (add->count() <= 0 || *add > kMaxLatencyAdd) {
        return Error(field.value_location,
                     "add must be greater than 0 and at most 1h, got " + Quoted(field.value));
      }
      incident.add = *add;
      add_field = &field;
    }
  }

  if (info->type != IncidentType::kTrafficDrop && service_field == nullptr) {
    return Error(location,
                 std::string(info->name) + " needs a service (one of " + ServiceList() + ")");
  }
  if (operation_field != nullptr) {
    bool found = false;
    std::string known;
    for (std::string_view op : EntryOperations(incident.service)) {
      found = found || op == incident.operation;
      if (!known.empty()) known += ", ";
      known += Quoted(op);
    }
    if (!found) {
      return Error(operation_field->value_location,
                   "service " + std::string(kServiceNames[incident.service]) +
                       " has no entry operation " + Quoted(incident.operation) +
                       " (expected one of " + known + ")");
    }
  }
  if (info->type == IncidentType::kLatencyRegression) {
    if ((factor_field == nullptr) == (add_field == nullptr)) {
      return Error(factor_field != nullptr && add_field != nullptr ? add_field->key_location
                                                                   : std::string(location),
                   "latency_regression needs exactly one of factor (e.g. 3) or add (e.g. 200ms)");
    }
  }
  return incident;
}

absl::StatusOr<Incident> ParseIncidentFlag(std::string_view text, std::string origin) {
  const std::string location = "--incident " + Quoted(text);
  if (text.size() > kMaxMessageBytes + 512) {
    return Error(location, "longer than " + std::to_string(kMaxMessageBytes + 512) + " bytes");
  }
  std::vector<IncidentField> fields;
  const size_t colon = text.find(':');
  fields.push_back(IncidentField{.key = "type",
                                 .value = std::string(text.substr(0, colon)),
                                 .key_location = location,
                                 .value_location = location});
  if (colon != std::string_view::npos) {
    size_t pos = colon + 1;
    while (pos < text.size()) {
      const size_t eq = text.find_first_of("=,", pos);
      if (eq == std::string_view::npos || text[eq] != '=') {
        return Error(location, "expected key=value at " + Quoted(text.substr(pos)) +
                                   " (form: type:key=value,key=value)");
      }
      IncidentField field{.key = std::string(text.substr(pos, eq - pos)),
                          .key_location = location,
                          .value_location = location};
      if (field.key.empty()) return Error(location, "empty key before '='");
      pos = eq + 1;
      if (pos < text.size() && text[pos] == '"') {
        ++pos;
        bool closed = false;
        while (pos < text.size()) {
          const char c = text[pos++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\' && pos < text.size()) {
            field.value += text[pos++];
          } else {
            field.value += c;
          }
        }
        if (!closed) return Error(location, "unterminated quote in the value of " + field.key);
        if (pos < text.size() && text[pos] != ',') {
          return Error(location, "expected ',' after the quoted value of " + field.key);
        }
      } else {
        const size_t comma = text.find(',', pos);
        const size_t end = comma == std::string_view::npos ? text.size() : comma;
        field.value = std::string(text.substr(pos, end - pos));
        pos = end;
      }
      if (pos < text.size()) ++pos;  // the comma
      fields.push_back(std::move(field));
    }
  }
  absl::StatusOr<Incident> incident = BuildIncident(fields, location);
  if (incident.ok()) incident->origin = std::move(origin);
  return incident;
}

Effects EffectsAt(const std::vector<Incident>& incidents, std::chrono::nanoseconds offset) {
  Effects effects;
  for (size_t i = 0; i < incidents.size(); ++i) {
    const Incident& incident = incidents[i];
    if (!incident.ActiveAt(offset)) continue;
    switch (incident.type) {
      case IncidentType::kErrorBurst:
        effects.errors.push_back(ErrorEffect{.service = incident.service,
                                             .operation = incident.operation,
                                             .ratio = incident.ratio,
                                             .exception_type = incident.exception_type,
                                             .message_template = incident.message,
                                             .incident = i});
        break;
      case IncidentType::kLatencyRegression:
        effects.latency.emplace_back(
            incident.service,
            LatencyEffect{
                .factor = incident.factor,
                .add_us =
                    std::chrono::duration_cast<std::chrono::microseconds>(incident.add).count(),
                .incident = i});
        break;
      case IncidentType::kPropagationBreak:
        effects.breaks.push_back(
            RatioEffect{.service = incident.service, .ratio = incident.ratio, .incident = i});
        break;
      case IncidentType::kTrafficDrop:
        effects.drops.push_back(RatioEffect{.ratio = incident.ratio, .incident = i});
        break;
    }
  }
  return effects;
}

}  // namespace traceslo::loadgen
