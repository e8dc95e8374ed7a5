#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "traceslo/config/yaml_document.h"
#include "traceslo/slo/rule.h"

namespace traceslo::slo {

// Paths in messages: Child("slos[0]", "sli") is "slos[0].sli", Index("slos", 0) is "slos[0]".
std::string Child(std::string_view path, std::string_view key);
std::string Index(std::string_view path, size_t i);
// "line:column" as shown to users (1-based).
std::string Position(const config::YamlMark& mark);

// The Status a parse returns when it reported problems from diagnostics[first] on:
// InvalidArgument with the first one's "file:line:col: message" and how many more there are.
// With none reported (a parser bug), adds "invalid <noun>" at `source` first.
absl::Status ProblemsStatus(std::vector<Diagnostic>& diagnostics, size_t first,
                            std::string_view source, std::string_view noun);
// True when `text` has no control characters.
bool IsPrintable(std::string_view text);

// The entries of one mapping, by key, after unknown and repeated keys were reported.
class Fields {
 public:
  struct Entry {
    std::string_view key;
    const config::YamlNode* key_node;
    const config::YamlNode* value;
  };

  void Add(Entry entry) { entries_.push_back(entry); }
  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* Find(std::string_view key) const;
  // The value of `key` unless it is absent or null ("key:" keeps the default).
  const config::YamlNode* Value(std::string_view key) const;
  bool Has(std::string_view key) const { return Value(key) != nullptr; }

 private:
  std::vector<Entry> entries_;
};

// Walks a bounded YAML tree (rule files, rule test files) and records every problem as a
// file:line:col diagnostic, so one run reports them all. Each typed read reports its own problem
// (at the value) and returns nullopt then. Owned by the thread that parses one file.
// `diagnostics` is borrowed and must outlive the reader; it may already hold entries.
class DiagnosticReader {
 public:
  using Keys = std::initializer_list<std::string_view>;

  DiagnosticReader(std::string_view source, std::vector<Diagnostic>& diagnostics)
      : source_(source), diagnostics_(diagnostics), first_(diagnostics.size()) {}

  // Problems recorded by this reader.
  size_t errors() const { return diagnostics_.size() - first_; }
  // The file name diagnostics carry.
  std::string_view source() const { return source_; }

  void Error(const config::YamlMark& mark, std::string message);

 protected:
  // Records `message` at a 1-based line and column.
  void ErrorAt(int line, int column, std::string message);

  // `node` as a mapping whose keys are among `known`, each once (null: no entries). Reports
  // unknown ("did you mean") and repeated keys and leaves them out; nullopt when `node` is not a
  // mapping at all.
  std::optional<Fields> Mapping(const config::YamlNode& node, std::string_view path, Keys known);
  // Reports a missing or null required key at the mapping (or at the key, if it is there).
  void Required(const Fields& fields, const config::YamlNode& mapping, std::string_view path,
                std::string_view key);

  std::optional<std::string> String(const config::YamlNode& node, std::string_view path);
  std::optional<double> Number(const config::YamlNode& node, std::string_view path);
  // An integer in [min, max].
  std::optional<uint64_t> Uint(const config::YamlNode& node, std::string_view path, uint64_t min,
                               uint64_t max);
  std::optional<bool> Bool(const config::YamlNode& node, std::string_view path);
  std::optional<std::chrono::milliseconds> Duration(const config::YamlNode& node,
                                                    std::string_view path);
  // A duration in [min, max].
  std::optional<std::chrono::milliseconds> Duration(const config::YamlNode& node,
                                                    std::string_view path,
                                                    std::chrono::milliseconds min,
                                                    std::chrono::milliseconds max);

 private:
  std::string_view source_;
  std::vector<Diagnostic>& diagnostics_;
  size_t first_;
};

}  // namespace traceslo::slo
