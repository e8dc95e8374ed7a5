#pragma once

// Reading hand-written YAML documents from outside (the configuration, SLO rule files): a
// bounded document tree that knows where every node was written, a capped file read, and the
// helpers that make messages safe and helpful. yaml-cpp stays behind this header.

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace traceslo::config {

// A position in a YAML document, 0-based as yaml-cpp counts; a negative field means "unknown".
// Messages show it 1-based ("12:5"), an unknown position as 1:1.
struct YamlMark {
  int line = 0;
  int column = 0;
  int DisplayLine() const { return line < 0 ? 1 : line + 1; }
  int DisplayColumn() const { return column < 0 ? 1 : column + 1; }
};

// One node of a parsed document. Every scalar is kept as its text (typing is the reader's job);
// aliases are expanded into shared subtrees, so the tree is acyclic.
struct YamlNode {
  enum class Kind { kNull, kScalar, kSequence, kMapping };
  Kind kind = Kind::kNull;
  YamlMark mark;
  std::string value;                                   // kScalar
  std::vector<std::shared_ptr<const YamlNode>> items;  // kSequence
  std::vector<std::pair<std::shared_ptr<const YamlNode>, std::shared_ptr<const YamlNode>>>
      entries;          // kMapping, in document order
  uint64_t weight = 1;  // nodes in this subtree, counting each alias expansion
};
using YamlNodePtr = std::shared_ptr<const YamlNode>;

// "null", "a scalar", "a list", "a mapping": for "must be X, got Y" messages.
const char* YamlKindName(YamlNode::Kind kind);

// Bounds on the work a hostile or broken document can cause while it is parsed.
struct YamlLimits {
  // Nesting deeper than this is rejected as the next collection opens, which unwinds yaml-cpp's
  // recursive descent (a few frames per level) long before the stack is at risk. yaml-cpp 0.7's
  // own guard (500 levels, reported as "bad file" at 1:1) is the backstop.
  size_t max_depth = 64;
  // Nodes in the document counting every alias expansion: stops "billion laughs" documents whose
  // tree, walked as written, would be exponentially large.
  uint64_t max_nodes = 100'000;
};

struct YamlError {
  YamlMark mark;
  std::string message;  // without the "source:line:col: " prefix
};

struct YamlParseResult {
  YamlNodePtr root;  // null for an empty document, or when `error` is set
  std::optional<YamlError> error;
};

// Parses one YAML document. Syntax errors, a second document, recursive or undefined aliases and
// exceeded limits become `error` (messages start "invalid YAML: " for yaml-cpp's own errors).
// `one_document_of` completes the message for a second document: "a config file" gives
// "... (a config file holds one YAML document)". Only std::bad_alloc escapes.
YamlParseResult ParseYamlDocument(std::string_view text, const YamlLimits& limits,
                                  std::string_view one_document_of);

// `text` with non-printable bytes (and `quote`, if given) escaped, cut short after `max_shown`
// bytes: safe to put in a message.
std::string EscapeForMessage(std::string_view text, size_t max_shown, char quote = '\0');

// `text` in quotes, escaped and cut short (64 bytes) as by EscapeForMessage().
std::string QuoteForMessage(std::string_view text, char quote = '"');

// The known key closest to `key` within edit distance 2 (adjacent transpositions count as one
// edit), or empty: for "did you mean" hints.
std::string_view ClosestKey(std::string_view key, std::initializer_list<std::string_view> known);
// The same over names known only at run time (receiver names).
std::string_view ClosestKey(std::string_view key, const std::vector<std::string_view>& known);

// "a, b, c".
std::string JoinKeys(std::initializer_list<std::string_view> keys);

struct FileReadError {
  int error;           // errno, or 0 for "not a regular file"
  std::string reason;  // for messages: "No such file or directory"
};

// Reads at most `max_bytes + 1` bytes of a file into `out` (one byte past the limit tells "at
// the limit" from "over it"). Unless `allow_special`, only regular files are read, so a path like
// /dev/stdin or a FIFO cannot block.
std::optional<FileReadError> ReadFileCapped(const std::string& path, size_t max_bytes,
                                            std::string& out, bool allow_special = false);

}  // namespace traceslo::config
