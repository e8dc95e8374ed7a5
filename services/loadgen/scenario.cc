#include "services/loadgen/scenario.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/status/status.h"

namespace traceslo::loadgen {
namespace {

std::string Location(std::string_view source, const YAML::Mark& mark) {
  // yaml-cpp counts from 0 and marks some synthesized nodes with -1.
  const int line = mark.line >= 0 ? mark.line + 1 : 1;
  const int column = mark.column >= 0 ? mark.column + 1 : 1;
  return std::string(source) + ":" + std::to_string(line) + ":" + std::to_string(column);
}

absl::Status Error(std::string_view source, const YAML::Mark& mark, std::string_view message) {
  return absl::InvalidArgumentError(Location(source, mark) + ": " + std::string(message));
}

std::string_view KindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "an undefined node";
  }
}

class Parser {
 public:
  explicit Parser(std::string_view source) : source_(source) {}

  absl::StatusOr<Scenario> Parse(std::string_view yaml) {
    if (yaml.size() > kMaxScenarioBytes) {
      return absl::InvalidArgumentError(source_ + ":1:1: scenario is larger than " +
                                        std::to_string(kMaxScenarioBytes) + " bytes");
    }
    std::vector<YAML::Node> documents = YAML::LoadAll(std::string(yaml));
    if (documents.size() > 1) {
      return Error(source_, documents[1].Mark(), "a scenario is one YAML document");
    }
    if (documents.empty() || documents[0].IsNull()) {
      return absl::InvalidArgumentError(source_ +
                                        ":1:1: empty scenario (expected a mapping with incidents)");
    }
    const YAML::Node& root = documents[0];
    if (!root.IsMap()) {
      return Error(
          source_, root.Mark(),
          "a scenario must be a mapping with incidents, got " + std::string(KindName(root)));
    }
    Scenario scenario;
    bool seen_description = false;
    bool seen_incidents = false;
    for (const auto& entry : root) {
      absl::StatusOr<std::string> key = Key(entry.first);
      if (!key.ok()) return key.status();
      if (*key == "description") {
        if (seen_description)
          return Error(source_, entry.first.Mark(), "duplicate key 'description'");
        seen_description = true;
        if (!entry.second.IsScalar()) {
          return Error(source_, Mark(entry.second, entry.first),
                       "description must be a string, got " + std::string(KindName(entry.second)));
        }
        scenario.description = entry.second.Scalar();
        if (scenario.description.size() > kMaxMessageBytes) {
          return Error(source_, entry.second.Mark(),
                       "description is longer than " + std::to_string(kMaxMessageBytes) + " bytes");
        }
      } else if (*key == "incidents") {
        if (seen_incidents) return Error(source_, entry.first.Mark(), "duplicate key 'incidents'");
        seen_incidents = true;
        if (entry.second.IsNull()) continue;
        if (!entry.second.IsSequence()) {
          return Error(source_, Mark(entry.second, entry.first),
                       "incidents must be a list, got " + std::string(KindName(entry.second)));
        }
        if (entry.second.size() > kMaxIncidents) {
          return Error(source_, entry.second.Mark(),
                       "more than " + std::to_string(kMaxIncidents) + " incidents");
        }
        for (const YAML::Node& item : entry.second) {
          absl::StatusOr<Incident> incident = ParseIncident(item);
          if (!incident.ok()) return incident.status();
          scenario.incidents.push_back(*std::move(incident));
        }
      } else {
        return Error(source_, entry.first.Mark(),
                     "unknown key '" + *key + "' (expected description or incidents)");
      }
    }
    if (!seen_incidents) {
      return Error(source_, root.Mark(), "a scenario needs incidents (a list, may be empty)");
    }
    return scenario;
  }

 private:
  // A node's mark, or `fallback`'s when yaml-cpp gave the node none (an empty value).
  static YAML::Mark Mark(const YAML::Node& node, const YAML::Node& fallback) {
    const YAML::Mark mark = node.Mark();
    return mark.line >= 0 ? mark : fallback.Mark();
  }

  absl::StatusOr<std::string> Key(const YAML::Node& key) const {
    if (!key.IsScalar()) {
      return Error(source_, key.Mark(), "keys must be strings, got " + std::string(KindName(key)));
    }
    if (key.Scalar().size() > kMaxNameBytes) {
      return Error(source_, key.Mark(),
                   "key longer than " + std::to_string(kMaxNameBytes) + " bytes");
    }
    return key.Scalar();
  }

  absl::StatusOr<Incident> ParseIncident(const YAML::Node& item) const {
    const std::string location = Location(source_, item.Mark());
    if (!item.IsMap()) {
      return absl::InvalidArgumentError(location + ": an incident must be a mapping, got " +
                                        std::string(KindName(item)));
    }
    std::vector<IncidentField> fields;
    for (const auto& entry : item) {
      absl::StatusOr<std::string> key = Key(entry.first);
      if (!key.ok()) return key.status();
      const YAML::Mark value_mark = Mark(entry.second, entry.first);
      if (!entry.second.IsScalar()) {
        return Error(source_, value_mark,
                     *key + " must be a scalar, got " + std::string(KindName(entry.second)));
      }
      fields.push_back(IncidentField{.key = *std::move(key),
                                     .value = entry.second.Scalar(),
                                     .key_location = Location(source_, entry.first.Mark()),
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
  try {
    return Parser(source_name).Parse(yaml);
  } catch (const YAML::Exception& e) {
    return Error(source_name, e.mark, e.msg);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(std::string(source_name) + ":1:1: " + e.what());
  }
}

absl::StatusOr<Scenario> LoadScenarioFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(path + ": no such file");
  }
  // Only regular files: a FIFO or a device could block the start forever.
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::InvalidArgumentError(path + ": not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(path + ": " + std::strerror(errno));
  std::string text;
  text.resize(kMaxScenarioBytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return absl::InvalidArgumentError(path + ": read error");
  text.resize(static_cast<size_t>(in.gcount()));
  return ParseScenario(text, path);
}

}  // namespace traceslo::loadgen
