#include "services/slo/diagnostic_reader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <utility>

#include "absl/status/statusor.h"
#include "traceslo/config/config.h"

namespace traceslo::slo {

using config::FormatDuration;
using config::QuoteForMessage;
using config::YamlKindName;
using config::YamlMark;
using config::YamlNode;
using std::chrono::milliseconds;
using Kind = YamlNode::Kind;

std::string Child(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return std::string(path) + "." + std::string(key);
}

std::string Index(std::string_view path, size_t i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

std::string Position(const YamlMark& mark) {
  return std::to_string(mark.DisplayLine()) + ":" + std::to_string(mark.DisplayColumn());
}

bool IsPrintable(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f; });
}

const Fields::Entry* Fields::Find(std::string_view key) const {
  for (const Entry& entry : entries_) {
    if (entry.key == key) return &entry;
  }
  return nullptr;
}

const YamlNode* Fields::Value(std::string_view key) const {
  const Entry* entry = Find(key);
  if (entry == nullptr || entry->value->kind == Kind::kNull) return nullptr;
  return entry->value;
}

void DiagnosticReader::Error(const YamlMark& mark, std::string message) {
  ErrorAt(mark.DisplayLine(), mark.DisplayColumn(), std::move(message));
}

void DiagnosticReader::ErrorAt(int line, int column, std::string message) {
  diagnostics_.push_back(Diagnostic{
      .file = std::string(source_), .line = line, .column = column, .message = std::move(message)});
}

std::optional<Fields> DiagnosticReader::Mapping(const YamlNode& node, std::string_view path,
                                                Keys known) {
  Fields fields;
  if (node.kind == Kind::kNull) return fields;
  if (node.kind != Kind::kMapping) {
    Error(node.mark, (path.empty() ? std::string("the top level") : std::string(path)) +
                         " must be a mapping, got " + YamlKindName(node.kind));
    return std::nullopt;
  }
  std::map<std::string_view, YamlMark> seen;
  for (const auto& [key_node, value] : node.entries) {
    const std::string where =
        path.empty() ? std::string(" at the top level") : " in " + std::string(path);
    if (key_node->kind != Kind::kScalar || key_node->value.empty()) {
      Error(key_node->mark,
            "keys" + (path.empty() ? std::string() : " in " + std::string(path)) +
                " must be non-empty strings, got " +
                (key_node->kind == Kind::kScalar ? std::string("an empty string")
                                                 : std::string(YamlKindName(key_node->kind))));
      continue;
    }
    std::string_view key = key_node->value;
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string message = "unknown key " + QuoteForMessage(key, '\'') + where;
      std::string_view hint = config::ClosestKey(key, known);
      if (!hint.empty()) {
        message += "; did you mean '" + std::string(hint) + "'?";
      } else if (known.size() == 0) {
        message += " (it takes no keys)";
      } else {
        message += " (valid keys: " + config::JoinKeys(known) + ")";
      }
      Error(key_node->mark, std::move(message));
      continue;
    }
    if (auto it = seen.find(key); it != seen.end()) {
      Error(key_node->mark,
            "duplicate key " + Child(path, key) + " (first set at " + Position(it->second) + ")");
      continue;
    }
    seen.emplace(key, key_node->mark);
    fields.Add(Fields::Entry{key, key_node.get(), value.get()});
  }
  return fields;
}

void DiagnosticReader::Required(const Fields& fields, const YamlNode& mapping,
                                std::string_view path, std::string_view key) {
  const Fields::Entry* entry = fields.Find(key);
  if (entry != nullptr && entry->value->kind != Kind::kNull) return;
  if (entry != nullptr) {
    Error(entry->key_node->mark, Child(path, key) + " must have a value");
  } else {
    Error(mapping.mark, Child(path, key) + " is required");
  }
}

std::optional<std::string> DiagnosticReader::String(const YamlNode& node, std::string_view path) {
  if (node.kind != Kind::kScalar) {
    Error(node.mark, std::string(path) + " must be a string, got " + YamlKindName(node.kind));
    return std::nullopt;
  }
  return node.value;
}

std::optional<double> DiagnosticReader::Number(const YamlNode& node, std::string_view path) {
  if (node.kind != Kind::kScalar) {
    Error(node.mark, std::string(path) + " must be a number, got " + YamlKindName(node.kind));
    return std::nullopt;
  }
  const std::string& text = node.value;
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc() && end == text.data() + text.size() && std::isfinite(value)) return value;
  Error(node.mark, std::string(path) + " must be a number, got " + QuoteForMessage(text));
  return std::nullopt;
}

std::optional<uint64_t> DiagnosticReader::Uint(const YamlNode& node, std::string_view path,
                                               uint64_t min, uint64_t max) {
  const std::string expected = std::string(path) + " must be an integer between " +
                               std::to_string(min) + " and " + std::to_string(max) + ", got ";
  if (node.kind != Kind::kScalar) {
    Error(node.mark, expected + YamlKindName(node.kind));
    return std::nullopt;
  }
  const std::string& text = node.value;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    Error(node.mark, expected + QuoteForMessage(text));
    return std::nullopt;
  }
  return value;
}

std::optional<bool> DiagnosticReader::Bool(const YamlNode& node, std::string_view path) {
  if (node.kind == Kind::kScalar) {
    const std::string& text = node.value;
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
  }
  Error(node.mark, std::string(path) + " must be true or false, got " +
                       (node.kind == Kind::kScalar ? QuoteForMessage(node.value)
                                                   : std::string(YamlKindName(node.kind))));
  return std::nullopt;
}

std::optional<milliseconds> DiagnosticReader::Duration(const YamlNode& node,
                                                       std::string_view path) {
  if (node.kind != Kind::kScalar) {
    Error(node.mark,
          std::string(path) + " must be a duration like \"5m\", got " + YamlKindName(node.kind));
    return std::nullopt;
  }
  absl::StatusOr<milliseconds> duration = config::ParseDuration(node.value);
  if (!duration.ok()) {
    Error(node.mark, std::string(path) + ": " + std::string(duration.status().message()));
    return std::nullopt;
  }
  return *duration;
}

std::optional<milliseconds> DiagnosticReader::Duration(const YamlNode& node, std::string_view path,
                                                       milliseconds min, milliseconds max) {
  std::optional<milliseconds> duration = Duration(node, path);
  if (!duration) return std::nullopt;
  if (*duration < min || *duration > max) {
    Error(node.mark, std::string(path) + " must be between " + FormatDuration(min) + " and " +
                         FormatDuration(max) + ", got " + FormatDuration(*duration));
    return std::nullopt;
  }
  return duration;
}

absl::Status ProblemsStatus(std::vector<Diagnostic>& diagnostics, size_t first,
                            std::string_view source, std::string_view noun) {
  if (diagnostics.size() == first) {
    diagnostics.push_back(
        Diagnostic{.file = std::string(source), .message = "invalid " + std::string(noun)});
  }
  std::string message = diagnostics[first].ToString();
  if (size_t more = diagnostics.size() - first - 1; more > 0) {
    message += " (and " + std::to_string(more) + " more problem" + (more == 1 ? "" : "s") + ")";
  }
  return absl::InvalidArgumentError(message);
}

}  // namespace traceslo::slo
