#include "services/loadgen/scenario.h"

#include <cerrno>
#include <new>
#include <utility>

#include "absl/status/status.h"
#include "traceslo/config/yaml_document.h"

namespace traceslo::loadgen {
namespace {

using config::YamlMark;
using config::YamlNode;
using config::YamlNodePtr;

// A scenario is small: these bound what a broken or hostile file can cost. (yaml-cpp's own
// YAML::Node is not used: on some malformed inputs yaml-cpp 0.7 keeps creating nodes without
// end, which only a bounded event handler can stop.)
constexpr config::YamlLimits kLimits{.max_depth = 16, .max_nodes = 20'000};

std::string Location(std::string_view source, const YamlMark& mark) {
  return std::string(source) + ":" + std::to_string(mark.DisplayLine()) + ":" +
         std::to_string(mark.DisplayColumn());
}

absl::Status Error(std::string_view source, const YamlMark& mark, std::string_view message) {
  return absl::InvalidArgumentError(Location(source, mark) + ": " + std::string(message));
}

std::string KindName(const YamlNode& node) {
  return node.kind == YamlNode::Kind::kNull ? "nothing" : config::YamlKindName(node.kind);
}

// A node's mark, or `fallback`'s when yaml-cpp gave the node none (an empty value).
YamlMark MarkOr(const YamlNode& node, const YamlNode& fallback) {
  return node.mark.line >= 0 ? node.mark : fallback.mark;
}

class Parser {
 public:
  explicit Parser(std::string_view source) : source_(source) {}

  absl::StatusOr<Scenario> Parse(const YamlNodePtr& root) const {
    if (root == nullptr || root->kind == YamlNode::Kind::kNull) {
      return absl::InvalidArgumentError(source_ +
                                        ":1:1: empty scenario (expected a mapping with incidents)");
    }
    if (root->kind != YamlNode::Kind::kMapping) {
      return Error(source_, root->mark,
                   "a scenario must be a mapping with incidents, got " + KindName(*root));
    }
    Scenario scenario;
    bool seen_description = false;
    bool seen_incidents = false;
    for (const auto& [key_node, value] : root->entries) {
      absl::StatusOr<std::string> key = Key(*key_node);
      if (!key.ok()) return key.status();
      if (*key == "description") {
        if (seen_description) return Error(source_, key_node->mark, "duplicate key 'description'");
        seen_description = true;
        if (value->kind != YamlNode::Kind::kScalar) {
          return Error(source_, MarkOr(*value, *key_node),
                       "description must be a string, got " + KindName(*value));
        }
        if (value->value.size() > kMaxMessageBytes) {
          return Error(source_, value->mark,
                       "description is longer than " + std::to_string(kMaxMessageBytes) + " bytes");
        }
        scenario.description = value->value;
      } else if (*key == "incidents") {
        if (seen_incidents) return Error(source_, key_node->mark, "duplicate key 'incidents'");
        seen_incidents = true;
        if (value->kind == YamlNode::Kind::kNull) continue;
        if (value->kind != YamlNode::Kind::kSequence) {
          return Error(source_, MarkOr(*value, *key_node),
                       "incidents must be a list, got " + KindName(*value));
        }
        if (value->items.size() > kMaxIncidents) {
          return Error(source_, value->mark,
                       "more than " + std::to_string(kMaxIncidents) + " incidents");
        }
        for (const YamlNodePtr& item : value->items) {
          absl::StatusOr<Incident> incident = ParseIncident(*item);
          if (!incident.ok()) return incident.status();
          scenario.incidents.push_back(*std::move(incident));
        }
      } else {
        return Error(source_, key_node->mark,
                     "unknown key '" + config::EscapeForMessage(*key, 64) +
                         "' (expected description or incidents)");
      }
    }
    if (!seen_incidents) {
      return Error(source_, root->mark, "a scenario needs incidents (a list, may be empty)");
    }
    return scenario;
  }

 private:
  absl::StatusOr<std::string> Key(const YamlNode& key) const {
    if (key.kind != YamlNode::Kind::kScalar) {
      return Error(source_, key.mark, "keys must be strings, got " + KindName(key));
    }
    if (key.value.size() > kMaxNameBytes) {
      return Error(source_, key.mark,
                   "key longer than " + std::to_string(kMaxNameBytes) + " bytes");
    }
    return key.value;
  }

  absl::StatusOr<Incident> ParseIncident(const YamlNode& item) const {
    const std::string location = Location(source_, item.mark);
    if (item.kind != YamlNode::Kind::kMapping) {
      return absl::InvalidArgumentError(location + ": an incident must be a mapping, got " +
                                        KindName(item));
    }
    std::vector<IncidentField> fields;
    for (const auto& [key_node, value] : item.entries) {
      absl::StatusOr<std::string> key = Key(*key_node);
      if (!key.ok()) return key.status();
      const YamlMark value_mark = MarkOr(*value, *key_node);
      if (value->kind != YamlNode::Kind::kScalar) {
        return Error(source_, value_mark, *key + " must be a scalar, got " + KindName(*value));
      }
      fields.push_back(IncidentField{.key = *std::move(key),
                                     .value = value->value,
                                     .key_location = Location(source_, key_node->mark),
                                     .value_location = Location(source_, value_mark)});
    }
    absl::StatusOr<Incident> incident = BuildIncident(fields, location);
    if (incident.ok()) incident->origin = location;
    return incident;
  }

  const std::string source_;
};

}  // namespace

absl::StatusOr<Scenario> ParseScenario(std::string_view yaml, std::string_view source_name) {
  if (yaml.size() > kMaxScenarioBytes) {
    return absl::InvalidArgumentError(std::string(source_name) + ":1:1: scenario is larger than " +
                                      std::to_string(kMaxScenarioBytes) + " bytes");
  }
  try {
    config::YamlParseResult parsed = config::ParseYamlDocument(yaml, kLimits, "a scenario file");
    if (parsed.error) return Error(source_name, parsed.error->mark, parsed.error->message);
    return Parser(source_name).Parse(parsed.root);
  } catch (const std::bad_alloc&) {
    return absl::InvalidArgumentError(std::string(source_name) +
                                      ":1:1: out of memory while parsing the scenario");
  }
}

absl::StatusOr<Scenario> LoadScenarioFile(const std::string& path) {
  std::string text;
  if (std::optional<config::FileReadError> error =
          config::ReadFileCapped(path, kMaxScenarioBytes, text)) {
    const std::string message = path + ": " + error->reason;
    return error->error == ENOENT ? absl::NotFoundError(message)
                                  : absl::InvalidArgumentError(message);
  }
  return ParseScenario(text, path);
}

}  // namespace traceslo::loadgen
