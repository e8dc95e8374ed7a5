#include "traceslo/config/config.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "traceslo/common/url.h"
#include "traceslo/config/yaml_document.h"

namespace traceslo::config {
namespace {

// Limits on the document itself. A config file is small and hand-written; these bound the work
// a hostile or broken file can cause.
constexpr size_t kMaxDocumentBytes = size_t{1} << 20;
// Nesting depth and nodes counting alias expansions (see YamlLimits).
constexpr size_t kMaxDepth = 64;
constexpr uint64_t kMaxNodes = 100'000;
constexpr size_t kMaxSecretFileBytes = size_t{1} << 20;

// ReadDuration's `max` for "no upper bound".
constexpr std::chrono::milliseconds kNoMaxDuration = std::chrono::milliseconds::max();

// ---------------------------------------------------------------------------------------------
// Text helpers.

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Parses a run of decimal digits at `text[pos]`, advancing `pos`. nullopt on no digits or
// overflow of uint64_t.
std::optional<uint64_t> ParseDigits(std::string_view text, size_t& pos) {
  size_t start = pos;
  uint64_t value = 0;
  bool overflow = false;
  while (pos < text.size() && IsDigit(text[pos])) {
    uint64_t digit = static_cast<uint64_t>(text[pos] - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) overflow = true;
    if (!overflow) value = value * 10 + digit;
    ++pos;
  }
  if (pos == start || overflow) return std::nullopt;
  return value;
}

std::string FormatByteSize(uint64_t bytes) {
  struct Unit {
    uint64_t bytes;
    const char* name;
  };
  constexpr Unit kUnits[] = {
      {1ull << 40, "TiB"}, {1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}};
  for (const Unit& unit : kUnits) {
    if (bytes != 0 && bytes % unit.bytes == 0)
      return std::to_string(bytes / unit.bytes) + unit.name;
  }
  return std::to_string(bytes) + "B";
}

using Node = YamlNode;
using NodePtr = YamlNodePtr;

// ---------------------------------------------------------------------------------------------
// Files and environment.

bool IsEnvNameStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsEnvNameChar(char c) { return IsEnvNameStart(c) || IsDigit(c); }

// Token characters: printable ASCII without spaces (they go into an Authorization header).
bool IsValidToken(std::string_view token) {
  if (token.empty()) return false;
  return std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

std::string_view TrimWhitespace(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n\v\f";
  size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(kSpace);
  return text.substr(begin, end - begin + 1);
}

// "source:line:col: message", 1-based; a null Mark (no position known) reads as 1:1.
absl::Status ErrorAt(std::string_view source, const YamlMark& mark, std::string_view message) {
  int line = mark.line < 0 ? 1 : mark.line + 1;
  int column = mark.column < 0 ? 1 : mark.column + 1;
  return absl::InvalidArgumentError(std::string(source) + ":" + std::to_string(line) + ":" +
                                    std::to_string(column) + ": " + std::string(message));
}

// ---------------------------------------------------------------------------------------------
// Reading the tree into a Config.

class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  absl::Status Read(const Node& root, Config& config);

 private:
  using Keys = std::initializer_list<std::string_view>;

  absl::Status Error(const YamlMark& mark, std::string_view message) const {
    return ErrorAt(source_, mark, message);
  }

  // Calls fn(key, value) for each entry of `node` (a mapping, or null for "nothing set"), after
  // checking the key is one of `known` and not repeated.
  template <typename Fn>
  absl::Status ForEachEntry(const Node& node, std::string_view path, Keys known, Fn&& fn) const;
  // Calls fn(key_node, value) for each entry of a mapping whose keys are data (label names,
  // header names): non-empty strings, each once.
  template <typename Fn>
  absl::Status ForEachEntryAny(const Node& node, std::string_view path, Fn&& fn) const;

  // ${VAR} expansion of a scalar; `path` names the key in errors.
  absl::Status Expand(const Node& node, std::string_view path, std::string& out) const;

  // Typed leaves. A null value leaves `out` at its default.
  absl::Status ReadString(const Node& node, std::string_view path, std::string& out) const;
  absl::Status ReadStringList(const Node& node, std::string_view path,
                              std::vector<std::string>& out) const;
  absl::Status ReadUint(const Node& node, std::string_view path, uint64_t min, uint64_t max,
                        uint32_t& out) const;
  // Each item as by ReadUint; `max` must fit in int32_t. Null items are errors.
  absl::Status ReadIntList(const Node& node, std::string_view path, uint64_t min, uint64_t max,
                           std::vector<int32_t>& out) const;
  // Greater than 0.
  absl::Status ReadDuration(const Node& node, std::string_view path,
                            std::chrono::milliseconds& out) const;
  // Between `min` and `max`, both inclusive; `max` = kNoMaxDuration: no upper bound.
  absl::Status ReadDuration(const Node& node, std::string_view path, std::chrono::milliseconds min,
                            std::chrono::milliseconds max, std::chrono::milliseconds& out) const;
  absl::Status ReadByteSize(const Node& node, std::string_view path, uint64_t min, uint64_t max,
                            uint64_t& out) const;
  absl::Status ReadListenAddress(const Node& node, std::string_view path,
                                 ListenerConfig& out) const;
  absl::Status ReadChoice(const Node& node, std::string_view path, Keys choices,
                          std::string& out) const;

  absl::Status ReadOtlp(const Node& node, OtlpConfig& otlp);
  absl::Status ReadWeb(const Node& node, WebConfig& web);
  absl::Status ReadStorage(const Node& node, StorageConfig& storage);
  absl::Status ReadPipeline(const Node& node, PipelineConfig& pipeline);
  absl::Status ReadPipelineErrors(const Node& node, PipelineConfig::Errors& errors) const;
  absl::Status ReadRules(const Node& node, RulesConfig& rules);
  absl::Status ReadLog(const Node& node, LogConfig& log);
  absl::Status ReadAlerting(const Node& node, AlertingConfig& alerting);
  absl::Status ReadReceivers(const Node& node, std::vector<ReceiverConfig>& receivers);
  absl::Status ReadReceiver(const Node& node, const std::string& path, ReceiverConfig& receiver);
  // The keys of one receiver kind (`path` is e.g. "alerting.receivers[0].webhook").
  absl::Status ReadReceiverSettings(const Node& node, const std::string& path,
                                    ReceiverConfig& receiver) const;
  absl::Status ReadHeaders(const Node& node, const std::string& path,
                           std::vector<std::pair<std::string, std::string>>& headers) const;
  absl::Status ReadRoutes(const Node& node, std::vector<RouteConfig>& routes);
  absl::Status ReadDelivery(const Node& node, DeliveryConfig& delivery);
  absl::Status ReadLinks(const Node& node, LinksConfig& links) const;
  absl::Status ReadKafka(const Node& node, KafkaConfig& kafka);
  absl::Status ReadTopicName(const Node& node, std::string_view path, std::string& out) const;
  absl::Status ReadLibrdkafka(const Node& node, std::map<std::string, std::string>& out) const;
  absl::Status ReadBool(const Node& node, std::string_view path, bool& out) const;
  // A secret read from its file: at most 64 KiB, trailing whitespace (the newline) trimmed.
  absl::Status ReadSecretFile(const Node& node, std::string_view path, std::string& out) const;

  // Checks that need more than one key, run after the walk.
  absl::Status CheckTls(const TlsConfig& tls) const;
  absl::Status CheckReadable(const std::optional<YamlMark>& mark, std::string_view path,
                             const std::string& file) const;
  absl::Status ReadTokensFile(const std::string& file, std::vector<std::string>& tokens) const;
  absl::Status CheckPipeline(const PipelineConfig& pipeline) const;
  absl::Status CheckAlerting(AlertingConfig& alerting) const;

  std::string source_;
  // Where the keys checked after the walk were set, for their error locations.
  std::optional<YamlMark> cert_file_mark_, key_file_mark_, client_ca_file_mark_;
  std::optional<YamlMark> tokens_file_mark_;
  std::string tokens_file_;
  std::optional<YamlMark> idle_timeout_mark_, max_age_mark_;
  std::optional<YamlMark> sli_retention_mark_, exemplar_retention_mark_;
  // Receiver names as referenced (routes, default_receiver), checked once all receivers are read.
  struct ReceiverReference {
    std::string path;
    std::string name;
    YamlMark mark;
  };
  std::vector<ReceiverReference> receiver_references_;
  bool api_token_seen_ = false;  // web.api_token or web.api_token_file
  std::optional<YamlMark> initial_backoff_mark_, max_backoff_mark_;
  std::optional<YamlMark> kafka_mark_;
};

std::string Child(std::string_view path, std::string_view key) {
  if (path.empty()) return std::string(key);
  return std::string(path) + "." + std::string(key);
}

template <typename Fn>
absl::Status Reader::ForEachEntry(const Node& node, std::string_view path, Keys known,
                                  Fn&& fn) const {
  if (node.kind == Node::Kind::kNull) return absl::OkStatus();
  if (node.kind != Node::Kind::kMapping) {
    return Error(node.mark, (path.empty() ? std::string("the top level") : std::string(path)) +
                                " must be a mapping, got " + YamlKindName(node.kind));
  }
  std::vector<std::pair<std::string_view, YamlMark>> seen;
  for (const auto& [key_node, value] : node.entries) {
    if (key_node->kind != Node::Kind::kScalar || key_node->value.empty()) {
      return Error(
          key_node->mark,
          "keys" + (path.empty() ? std::string() : " in " + std::string(path)) +
              " must be non-empty strings, got " +
              (key_node->kind == Node::Kind::kScalar ? std::string("an empty string")
                                                     : std::string(YamlKindName(key_node->kind))));
    }
    std::string_view key = key_node->value;
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string message =
          "unknown key " + QuoteForMessage(key, '\'') +
          (path.empty() ? std::string(" at the top level") : " in " + std::string(path));
      std::string_view hint = ClosestKey(key, known);
      if (!hint.empty()) {
        message += "; did you mean '" + std::string(hint) + "'?";
      } else {
        message += " (valid keys: " + JoinKeys(known) + ")";
      }
      return Error(key_node->mark, message);
    }
    for (const auto& [previous, previous_mark] : seen) {
      if (previous == key) {
        return Error(key_node->mark, "duplicate key " + Child(path, key) + " (first set at " +
                                         std::to_string(previous_mark.line + 1) + ":" +
                                         std::to_string(previous_mark.column + 1) + ")");
      }
    }
    seen.emplace_back(key, key_node->mark);
    if (absl::Status status = fn(key, *value); !status.ok()) return status;
  }
  return absl::OkStatus();
}

template <typename Fn>
absl::Status Reader::ForEachEntryAny(const Node& node, std::string_view path, Fn&& fn) const {
  if (node.kind == Node::Kind::kNull) return absl::OkStatus();
  if (node.kind != Node::Kind::kMapping) {
    return Error(node.mark,
                 std::string(path) + " must be a mapping, got " + YamlKindName(node.kind));
  }
  for (size_t i = 0; i < node.entries.size(); ++i) {
    const Node& key = *node.entries[i].first;
    if (key.kind != Node::Kind::kScalar || key.value.empty()) {
      return Error(key.mark,
                   "keys in " + std::string(path) + " must be non-empty strings, got " +
                       (key.kind == Node::Kind::kScalar ? std::string("an empty string")
                                                        : std::string(YamlKindName(key.kind))));
    }
    for (size_t j = 0; j < i; ++j) {
      const Node& previous = *node.entries[j].first;
      if (previous.value != key.value) continue;
      return Error(key.mark, "duplicate key " + Child(path, key.value) + " (first set at " +
                                 std::to_string(previous.mark.DisplayLine()) + ":" +
                                 std::to_string(previous.mark.DisplayColumn()) + ")");
    }
    if (absl::Status status = fn(key, *node.entries[i].second); !status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status Reader::Expand(const Node& node, std::string_view path, std::string& out) const {
  const std::string& text = node.value;
  out.clear();
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '$' || i + 1 >= text.size()) {
      out += c;
      continue;
    }
    if (text[i + 1] == '$') {  // "$$": a literal "$"
      out += '$';
      ++i;
      continue;
    }
    if (text[i + 1] != '{') {  // a lone "$" stays as written
      out += c;
      continue;
    }
    size_t close = text.find('}', i + 2);
    if (close == std::string::npos) {
      return Error(node.mark,
                   std::string(path) + ": unterminated \"${\" (write \"$$\" for a literal \"$\")");
    }
    std::string_view inner = std::string_view(text).substr(i + 2, close - i - 2);
    std::string_view name = inner;
    std::optional<std::string_view> fallback;
    if (size_t sep = inner.find(":-"); sep != std::string_view::npos) {
      name = inner.substr(0, sep);
      fallback = inner.substr(sep + 2);
    }
    if (name.empty() || !IsEnvNameStart(name[0]) ||
        !std::all_of(name.begin(), name.end(), IsEnvNameChar)) {
      return Error(node.mark, std::string(path) + ": invalid environment variable reference " +
                                  QuoteForMessage(std::string("${") + std::string(inner) + "}") +
                                  " (expected ${NAME} or ${NAME:-default})");
    }
    const char* value = std::getenv(std::string(name).c_str());
    if (value != nullptr && (*value != '\0' || !fallback)) {
      out += value;
    } else if (fallback) {
      out += *fallback;
    } else {
      return Error(node.mark, std::string(path) + ": environment variable " + std::string(name) +
                                  " is not set (use ${" + std::string(name) +
                                  ":-default} to give a default)");
    }
    i = close;
  }
  return absl::OkStatus();
}

absl::Status Reader::ReadString(const Node& node, std::string_view path, std::string& out) const {
  if (node.kind == Node::Kind::kNull) return absl::OkStatus();
  if (node.kind != Node::Kind::kScalar) {
    return Error(node.mark,
                 std::string(path) + " must be a string, got " + YamlKindName(node.kind));
  }
  return Expand(node, path, out);
}

absl::Status Reader::ReadStringList(const Node& node, std::string_view path,
                                    std::vector<std::string>& out) const {
  if (node.kind == Node::Kind::kNull) return absl::OkStatus();
  if (node.kind != Node::Kind::kSequence) {
    return Error(node.mark,
                 std::string(path) + " must be a list of strings, got " + YamlKindName(node.kind));
  }
  std::vector<std::string> values;
  for (size_t i = 0; i < node.items.size(); ++i) {
    const Node& item = *node.items[i];
    std::string item_path = std::string(path) + "[" + std::to_string(i) + "]";
    if (item.kind != Node::Kind::kScalar) {
      return Error(item.mark, item_path + " must be a string, got " + YamlKindName(item.kind));
    }
    std::string value;
    if (absl::Status status = Expand(item, item_path, value); !status.ok()) return status;
    if (value.empty()) return Error(item.mark, item_path + " must not be empty");
    values.push_back(std::move(value));
  }
  out = std::move(values);
  return absl::OkStatus();
}

absl::Status Reader::ReadUint(const Node& node, std::string_view path, uint64_t min, uint64_t max,
                              uint32_t& out) const {
  if (node.kind == Node::Kind::kNull) return absl::OkStatus();
  std::string expected = std::string(path) + " must be an integer between " + std::to_string(min) +
                         " and " + std::to_string(max) + ", got ";
  if (node.kind != Node::Kind::kScalar) return Error(node.mark, expected + YamlKindName(node.kind));
  std::string text;
  if (absl::Status status = Expand(node, path, text); !status.ok()) return status;
  size_t pos = 0;
  std::optional<uint64_t> value = ParseDigits(text, pos);
  if (!value || pos != text.size() || *value < min || *value > max) {
    return Error(node.mark, expected + QuoteForMessage(text));
  }
  out = static_cast<uint32_t>(*value);
  return absl::OkStatus();
}

absl::Status Reader::ReadIntList(const Node& node, std::string_view path, uint64_t min,
                                 uint64_t max, std::vector<int32_t>& out) const {
  if (node.kind == Node::Kind::kNull) return absl::OkStatus();
  if (node.kind != Node::Kind::kSequence) {
    return Error(node.mark, std::string(path) + " must be a list of integers between " +
                                std::to_string(min) + " and " + std::to_string(max) + ", got " +
                                YamlKindName(node.kind));
  }
  std::vector<int32_t> values;
  for (size_t i = 0; i < node.items.size(); ++i) {
    const Node& item = *node.items[i];
    std::string item_path = std::string(path) + "[" + std::to_string(i) + "]";
    // ReadUint keeps its default for a null; in a list, a null is a mistake.
    if (item.kind == Node::Kind::kNull) {
      return Error(item.mark, item_path + " must be an integer between " + std::to_string(min) +
                                  " and " + std::to_string(max) + ", got null");
    }
    uint32_t value = 0;
    if (absl::Status status = ReadUint(item, item_path, min, max, value); !status.ok()) {
      return status;
    }
    values.push_back(static_cast<int32_t>(value));
  }
  out = std::move(values);
  return absl::OkStatus();
}

absl::Status Reader::ReadDuration(const Node& node, std::string_view path,
                                  std::chrono::milliseconds& out) const {
  return ReadDuration(node, path, std::chrono::milliseconds(1), kNoMaxDuration, out);
}

absl::Status Reader::ReadDuration(const Node& node, std::string_view path,
                                  std::chrono::milliseconds min, std::chrono::milliseconds max,
                                  std::chrono::milliseconds& out) const {
  if (node.kind == Node::Kind::kNull) return absl::OkStatus();
  if (node.kind != Node::Kind::kScalar) {
    return Error(node.mark, std::string(path) + " must be a duration like \"15s\", got " +
                                YamlKindName(node.kind));
  }
  std::string text;
  if (absl::Status status = Expand(node, path, text); !status.ok()) return status;
  absl::StatusOr<std::chrono::milliseconds> duration = ParseDuration(text);
  if (!duration.ok()) {
    return Error(node.mark, std::string(path) + ": " + std::string(duration.status().message()));
  }
  if (*duration < min || *duration > max) {
    std::string range = "at least " + FormatDuration(min);
    if (max != kNoMaxDuration) {
      range = "between " + FormatDuration(min) + " and " + FormatDuration(max);
    } else if (min == std::chrono::milliseconds(1)) {
      range = "greater than 0";
    }
    return Error(node.mark,
                 std::string(path) + " must be " + range + ", got " + QuoteForMessage(text));
  }
  out = *duration;
  return absl::OkStatus();
}

absl::Status Reader::ReadByteSize(const Node& node, std::string_view path, uint64_t min,
                                  uint64_t max, uint64_t& out) const {
  if (node.kind == Node::Kind::kNull) return absl::OkStatus();
  if (node.kind != Node::Kind::kScalar) {
    return Error(node.mark, std::string(path) + " must be a byte size like \"16MiB\", got " +
                                YamlKindName(node.kind));
  }
  std::string text;
  if (absl::Status status = Expand(node, path, text); !status.ok()) return status;
  absl::StatusOr<uint64_t> bytes = ParseByteSize(text);
  if (!bytes.ok()) {
    return Error(node.mark, std::string(path) + ": " + std::string(bytes.status().message()));
  }
  if (*bytes < min || *bytes > max) {
    return Error(node.mark, std::string(path) + " must be between " + FormatByteSize(min) +
                                " and " + FormatByteSize(max) + ", got " + QuoteForMessage(text));
  }
  out = *bytes;
  return absl::OkStatus();
}

// Why `address` is not host:port, or nullopt if it is. The host may be empty (all interfaces).
std::optional<std::string> ListenAddressProblem(std::string_view address) {
  std::string_view host;
  std::string_view port;
  if (!address.empty() && address.front() == '[') {
    size_t close = address.find(']');
    if (close == std::string_view::npos) return "missing \"]\" after the IPv6 address";
    host = address.substr(1, close - 1);
    if (host.empty()) return "empty IPv6 address in brackets";
    if (!std::all_of(host.begin(), host.end(), [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                 c == ':' || c == '.';
        })) {
      return "invalid IPv6 address";
    }
    if (close + 1 >= address.size() || address[close + 1] != ':') return "missing \":port\"";
    port = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) return "missing \":port\"";
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return "IPv6 addresses must be in brackets, e.g. [::1]:4317";
    }
    if (!std::all_of(host.begin(), host.end(), [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 c == '.' || c == '-' || c == '_';
        })) {
      return "invalid host name";
    }
  }
  size_t pos = 0;
  std::optional<uint64_t> number = ParseDigits(port, pos);
  if (!number || pos != port.size()) return "the port must be a number";
  if (*number > 65535) return "the port must be between 0 and 65535";
  return std::nullopt;
}

absl::Status Reader::ReadListenAddress(const Node& node, std::string_view path,
                                       ListenerConfig& out) const {
  std::string address = out.listen_address;
  if (absl::Status status = ReadString(node, path, address); !status.ok()) return status;
  if (std::optional<std::string> problem = ListenAddressProblem(address)) {
    return Error(node.mark, std::string(path) + " must be host:port (IPv6 as [::1]:4317), got " +
                                QuoteForMessage(address) + ": " + *problem);
  }
  out.listen_address = std::move(address);
  return absl::OkStatus();
}

absl::Status Reader::ReadChoice(const Node& node, std::string_view path, Keys choices,
                                std::string& out) const {
  std::string value = out;
  if (absl::Status status = ReadString(node, path, value); !status.ok()) return status;
  if (std::find(choices.begin(), choices.end(), value) == choices.end()) {
    return Error(node.mark, std::string(path) + " must be one of " + JoinKeys(choices) + ", got " +
                                QuoteForMessage(value));
  }
  out = std::move(value);
  return absl::OkStatus();
}

absl::Status Reader::ReadOtlp(const Node& node, OtlpConfig& otlp) {
  return ForEachEntry(
      node, "otlp",
      {"grpc", "http", "auth", "tls", "max_request_bytes", "max_spans_per_request",
       "grpc_max_concurrent_streams", "max_connections", "grpc_memory_bytes"},
      [&](std::string_view key, const Node& value) -> absl::Status {
        if (key == "grpc" || key == "http") {
          std::string path = "otlp." + std::string(key);
          ListenerConfig& listener = key == "grpc" ? otlp.grpc : otlp.http;
          return ForEachEntry(
              value, path, {"listen_address"}, [&](std::string_view, const Node& address) {
                return ReadListenAddress(address, path + ".listen_address", listener);
              });
        }
        if (key == "auth") {
          return ForEachEntry(
              value, "otlp.auth", {"bearer_tokens", "bearer_tokens_file"},
              [&](std::string_view auth_key, const Node& auth_value) -> absl::Status {
                if (auth_key == "bearer_tokens") {
                  std::vector<std::string> tokens;
                  if (absl::Status status =
                          ReadStringList(auth_value, "otlp.auth.bearer_tokens", tokens);
                      !status.ok()) {
                    return status;
                  }
                  for (size_t i = 0; i < tokens.size(); ++i) {
                    if (!IsValidToken(tokens[i])) {
                      // The token is a secret: the message names it by position only.
                      return Error(auth_value.items[i]->mark,
                                   "otlp.auth.bearer_tokens[" + std::to_string(i) +
                                       "] must not contain spaces or control characters");
                    }
                  }
                  otlp.bearer_tokens = std::move(tokens);  // the file's tokens follow
                  return absl::OkStatus();
                }
                tokens_file_mark_ = auth_value.mark;
                return ReadString(auth_value, "otlp.auth.bearer_tokens_file", tokens_file_);
              });
        }
        if (key == "tls") {
          return ForEachEntry(value, "otlp.tls", {"cert_file", "key_file", "client_ca_file"},
                              [&](std::string_view tls_key, const Node& tls_value) -> absl::Status {
                                std::string path = "otlp.tls." + std::string(tls_key);
                                if (tls_key == "cert_file") {
                                  cert_file_mark_ = tls_value.mark;
                                  return ReadString(tls_value, path, otlp.tls.cert_file);
                                }
                                if (tls_key == "key_file") {
                                  key_file_mark_ = tls_value.mark;
                                  return ReadString(tls_value, path, otlp.tls.key_file);
                                }
                                client_ca_file_mark_ = tls_value.mark;
                                return ReadString(tls_value, path, otlp.tls.client_ca_file);
                              });
        }
        if (key == "max_request_bytes") {
          return ReadByteSize(value, "otlp.max_request_bytes", uint64_t{1} << 10, uint64_t{1} << 30,
                              otlp.max_request_bytes);
        }
        if (key == "max_spans_per_request") {
          return ReadUint(value, "otlp.max_spans_per_request", 1, 100'000'000,
                          otlp.max_spans_per_request);
        }
        if (key == "grpc_max_concurrent_streams") {
          return ReadUint(value, "otlp.grpc_max_concurrent_streams", 1, 100'000,
                          otlp.grpc_max_concurrent_streams);
        }
        if (key == "max_connections") {
          return ReadUint(value, "otlp.max_connections", 1, 1'000'000, otlp.max_connections);
        }
        return ReadByteSize(value, "otlp.grpc_memory_bytes", uint64_t{1} << 20, uint64_t{1} << 40,
                            otlp.grpc_memory_bytes);
      });
}

absl::Status Reader::ReadWeb(const Node& node, WebConfig& web) {
  return ForEachEntry(
      node, "web", {"listen_address", "external_url", "api_token", "api_token_file"},
      [&](std::string_view key, const Node& value) -> absl::Status {
        if (key == "listen_address") {
          return ReadListenAddress(value, "web.listen_address", web.listen);
        }
        if (key == "api_token" || key == "api_token_file") {
          if (api_token_seen_) {
            return Error(value.mark, "web: set either api_token or api_token_file, not both");
          }
          api_token_seen_ = true;
          absl::Status status = key == "api_token"
                                    ? ReadString(value, "web.api_token", web.api_token)
                                    : ReadSecretFile(value, "web.api_token_file", web.api_token);
          if (status.ok() && std::any_of(web.api_token.begin(), web.api_token.end(), [](char c) {
                return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;
              })) {
            return Error(value.mark, "web." + std::string(key) +
                                         ": the token must be printable ASCII without spaces");
          }
          return status;
        }
        std::string url = web.external_url;
        if (absl::Status status = ReadString(value, "web.external_url", url); !status.ok()) {
          return status;
        }
        std::string_view rest = url;
        bool http = rest.substr(0, 7) == "http://";
        bool https = rest.substr(0, 8) == "https://";
        rest.remove_prefix(http ? 7 : https ? 8 : 0);
        if ((!http && !https) || rest.empty() || rest.front() == '/' ||
            std::any_of(url.begin(), url.end(),
                        [](char c) { return static_cast<unsigned char>(c) <= 0x20; })) {
          return Error(value.mark,
                       "web.external_url must be an absolute http:// or https:// URL, got " +
                           QuoteForMessage(url));
        }
        web.external_url = std::move(url);
        return absl::OkStatus();
      });
}

absl::Status Reader::ReadStorage(const Node& node, StorageConfig& storage) {
  using std::chrono::milliseconds;
  return ForEachEntry(node, "storage", {"path", "flush_interval", "retention"},
                      [&](std::string_view key, const Node& value) -> absl::Status {
                        if (key == "flush_interval") {
                          return ReadDuration(value, "storage.flush_interval", milliseconds(100),
                                              milliseconds(3'600'000), storage.flush_interval);
                        }
                        if (key == "retention") {
                          return ReadDuration(value, "storage.retention", milliseconds(3'600'000),
                                              milliseconds(400LL * 86'400'000), storage.retention);
                        }
                        std::string path = storage.path;
                        if (absl::Status status = ReadString(value, "storage.path", path);
                            !status.ok()) {
                          return status;
                        }
                        if (path.empty())
                          return Error(value.mark, "storage.path must not be empty");
                        storage.path = std::move(path);
                        return absl::OkStatus();
                      });
}

absl::Status Reader::ReadPipeline(const Node& node, PipelineConfig& pipeline) {
  using std::chrono::milliseconds;
  return ForEachEntry(
      node, "pipeline",
      {"shards", "queue_capacity_spans", "trace_idle_timeout", "trace_max_age", "max_live_traces",
       "max_lateness", "tick_interval", "max_spans_per_trace", "max_services",
       "max_operations_per_service", "max_signatures", "sli_retention", "exemplar_retention",
       "errors"},
      [&](std::string_view key, const Node& value) -> absl::Status {
        if (key == "shards") return ReadUint(value, "pipeline.shards", 1, 256, pipeline.shards);
        if (key == "queue_capacity_spans") {
          return ReadUint(value, "pipeline.queue_capacity_spans", 1, uint64_t{1} << 26,
                          pipeline.queue_capacity_spans);
        }
        if (key == "trace_idle_timeout") {
          if (value.kind != Node::Kind::kNull) idle_timeout_mark_ = value.mark;
          return ReadDuration(value, "pipeline.trace_idle_timeout", pipeline.trace_idle_timeout);
        }
        if (key == "trace_max_age") {
          if (value.kind != Node::Kind::kNull) max_age_mark_ = value.mark;
          return ReadDuration(value, "pipeline.trace_max_age", pipeline.trace_max_age);
        }
        if (key == "max_live_traces") {
          return ReadUint(value, "pipeline.max_live_traces", 1, 100'000'000,
                          pipeline.max_live_traces);
        }
        if (key == "max_lateness") {
          // At most 3 d: the SLI store keeps 3 d of buckets, and the shards store a span's bucket
          // as a 16-bit offset from its trace's (SliShardProcessor::kMaxLateness, 90 h).
          return ReadDuration(value, "pipeline.max_lateness", milliseconds(1),
                              milliseconds(3LL * 86'400'000), pipeline.max_lateness);
        }
        if (key == "tick_interval") {
          return ReadDuration(value, "pipeline.tick_interval", milliseconds(10),
                              milliseconds(60'000), pipeline.tick_interval);
        }
        if (key == "max_spans_per_trace") {
          return ReadUint(value, "pipeline.max_spans_per_trace", 1, 100'000,
                          pipeline.max_spans_per_trace);
        }
        if (key == "max_services") {
          return ReadUint(value, "pipeline.max_services", 1, 100'000, pipeline.max_services);
        }
        if (key == "max_operations_per_service") {
          return ReadUint(value, "pipeline.max_operations_per_service", 1, 10'000,
                          pipeline.max_operations_per_service);
        }
        if (key == "max_signatures") {
          return ReadUint(value, "pipeline.max_signatures", 1, 1'000'000, pipeline.max_signatures);
        }
        if (key == "sli_retention") {
          if (value.kind != Node::Kind::kNull) sli_retention_mark_ = value.mark;
          return ReadDuration(value, "pipeline.sli_retention", milliseconds(3'600'000),
                              milliseconds(7 * 86'400'000), pipeline.sli_retention);
        }
        if (key == "exemplar_retention") {
          // At most sli_retention: checked after the walk, as the keys may come in any order.
          if (value.kind != Node::Kind::kNull) exemplar_retention_mark_ = value.mark;
          return ReadDuration(value, "pipeline.exemplar_retention", milliseconds(10'000),
                              kNoMaxDuration, pipeline.exemplar_retention);
        }
        return ReadPipelineErrors(value, pipeline.errors);
      });
}

absl::Status Reader::ReadPipelineErrors(const Node& node, PipelineConfig::Errors& errors) const {
  return ForEachEntry(
      node, "pipeline.errors", {"http_status_min", "grpc_codes"},
      [&](std::string_view key, const Node& value) -> absl::Status {
        if (key == "http_status_min") {
          // 600 is above every status: no HTTP status is an error.
          uint32_t status_min = static_cast<uint32_t>(errors.http_status_min);
          if (absl::Status status =
                  ReadUint(value, "pipeline.errors.http_status_min", 100, 600, status_min);
              !status.ok()) {
            return status;
          }
          errors.http_status_min = static_cast<int32_t>(status_min);
          return absl::OkStatus();
        }
        if (value.kind == Node::Kind::kNull) return absl::OkStatus();
        // An empty list is allowed: no gRPC code is an error.
        std::vector<int32_t> codes;
        if (absl::Status status = ReadIntList(value, "pipeline.errors.grpc_codes", 0, 16, codes);
            !status.ok()) {
          return status;
        }
        for (size_t i = 0; i < codes.size(); ++i) {
          for (size_t j = 0; j < i; ++j) {
            if (codes[j] != codes[i]) continue;
            const YamlMark& first = value.items[j]->mark;
            return Error(value.items[i]->mark, "pipeline.errors.grpc_codes[" + std::to_string(i) +
                                                   "]: duplicate code " + std::to_string(codes[i]) +
                                                   " (first listed at " +
                                                   std::to_string(first.line + 1) + ":" +
                                                   std::to_string(first.column + 1) + ")");
          }
        }
        errors.grpc_codes = std::move(codes);
        return absl::OkStatus();
      });
}

absl::Status Reader::ReadRules(const Node& node, RulesConfig& rules) {
  return ForEachEntry(node, "rules", {"files", "evaluation_interval"},
                      [&](std::string_view key, const Node& value) -> absl::Status {
                        if (key == "files")
                          return ReadStringList(value, "rules.files", rules.files);
                        return ReadDuration(value, "rules.evaluation_interval",
                                            rules.evaluation_interval);
                      });
}

absl::Status Reader::ReadLog(const Node& node, LogConfig& log) {
  return ForEachEntry(
      node, "log", {"format", "level"},
      [&](std::string_view key, const Node& value) -> absl::Status {
        if (key == "format") {
          return ReadChoice(value, "log.format", {"logfmt", "json"}, log.format);
        }
        return ReadChoice(value, "log.level", {"debug", "info", "warn", "error"}, log.level);
      });
}

// ---------------------------------------------------------------------------------------------
// alerting, links.

constexpr size_t kMaxReceiverNameBytes = 64;
constexpr size_t kMaxSecretBytes = size_t{64} << 10;

bool IsReceiverNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c) || c == '_' || c == '.' ||
         c == '-';
}

bool IsLabelName(std::string_view name) {
  if (name.empty() || !IsEnvNameStart(name[0])) return false;
  return std::all_of(name.begin(), name.end(), IsEnvNameChar);
}

// RFC 9110 token characters (header names).
bool IsHeaderNameChar(char c) {
  constexpr std::string_view kSpecials = "!#$%&'*+-.^_`|~";
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c) ||
         kSpecials.find(c) != std::string_view::npos;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Base64 (standard alphabet, padded) as Standard Webhooks writes the key after "whsec_".
bool IsBase64(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) return false;
  size_t padding = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '=') {
      if (i + 2 < text.size()) return false;
      ++padding;
      continue;
    }
    if (padding != 0) return false;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c) || c == '+' || c == '/'))
      return false;
  }
  return true;
}

absl::Status Reader::ReadBool(const Node& node, std::string_view path, bool& out) const {
  if (node.kind == Node::Kind::kNull) return absl::OkStatus();
  std::string expected = std::string(path) + " must be true or false, got ";
  if (node.kind != Node::Kind::kScalar) return Error(node.mark, expected + YamlKindName(node.kind));
  std::string text;
  if (absl::Status status = Expand(node, path, text); !status.ok()) return status;
  if (text == "true") {
    out = true;
  } else if (text == "false") {
    out = false;
  } else {
    return Error(node.mark, expected + QuoteForMessage(text));
  }
  return absl::OkStatus();
}

absl::Status Reader::ReadSecretFile(const Node& node, std::string_view path,
                                    std::string& out) const {
  std::string file;
  if (absl::Status status = ReadString(node, path, file); !status.ok()) return status;
  if (file.empty()) return Error(node.mark, std::string(path) + " must not be empty");
  std::string contents;
  if (std::optional<FileReadError> failure = ReadFileCapped(file, kMaxSecretBytes, contents)) {
    return Error(node.mark, std::string(path) + ": cannot read " + QuoteForMessage(file) + ": " +
                                failure->reason);
  }
  if (contents.size() > kMaxSecretBytes) {
    return Error(node.mark,
                 std::string(path) + ": " + QuoteForMessage(file) + " is larger than 64 KiB");
  }
  while (!contents.empty() && (contents.back() == '\n' || contents.back() == '\r' ||
                               contents.back() == ' ' || contents.back() == '\t')) {
    contents.pop_back();
  }
  if (contents.empty()) {
    return Error(node.mark, std::string(path) + ": " + QuoteForMessage(file) + " is empty");
  }
  out = std::move(contents);
  return absl::OkStatus();
}

absl::Status Reader::ReadAlerting(const Node& node, AlertingConfig& alerting) {
  using std::chrono::milliseconds;
  return ForEachEntry(
      node, "alerting",
      {"group_by", "group_wait", "group_wait_start", "group_interval", "repeat_interval", "routes",
       "default_receiver", "receivers", "delivery", "cause_coverage_percent", "max_causes"},
      [&](std::string_view key, const Node& value) -> absl::Status {
        if (key == "cause_coverage_percent") {
          return ReadUint(value, "alerting.cause_coverage_percent", 1, 100,
                          alerting.cause_coverage_percent);
        }
        if (key == "max_causes") {
          return ReadUint(value, "alerting.max_causes", 1, 20, alerting.max_causes);
        }
        if (key == "group_by") {
          if (value.kind == Node::Kind::kNull) return absl::OkStatus();
          std::vector<std::string> labels;
          if (absl::Status status = ReadStringList(value, "alerting.group_by", labels);
              !status.ok()) {
            return status;
          }
          for (size_t i = 0; i < labels.size(); ++i) {
            const std::string item_path = "alerting.group_by[" + std::to_string(i) + "]";
            if (!IsLabelName(labels[i])) {
              return Error(value.items[i]->mark,
                           item_path + " must be a label name ([a-zA-Z_][a-zA-Z0-9_]*), got " +
                               QuoteForMessage(labels[i]));
            }
            for (size_t j = 0; j < i; ++j) {
              if (labels[j] != labels[i]) continue;
              const YamlMark& first = value.items[j]->mark;
              return Error(value.items[i]->mark, item_path + ": duplicate label " + labels[i] +
                                                     " (first listed at " +
                                                     std::to_string(first.DisplayLine()) + ":" +
                                                     std::to_string(first.DisplayColumn()) + ")");
            }
          }
          alerting.group_by = std::move(labels);
          return absl::OkStatus();
        }
        if (key == "group_wait") {
          return ReadDuration(value, "alerting.group_wait", milliseconds(0),
                              milliseconds(3'600'000), alerting.group_wait);
        }
        if (key == "group_wait_start") {
          return ReadChoice(value, "alerting.group_wait_start", {"warming", "firing"},
                            alerting.group_wait_start);
        }
        if (key == "group_interval") {
          return ReadDuration(value, "alerting.group_interval", milliseconds(1'000),
                              milliseconds(86'400'000), alerting.group_interval);
        }
        if (key == "repeat_interval") {
          return ReadDuration(value, "alerting.repeat_interval", milliseconds(1'000),
                              milliseconds(30LL * 86'400'000), alerting.repeat_interval);
        }
        if (key == "routes") return ReadRoutes(value, alerting.routes);
        if (key == "default_receiver") {
          std::string name = alerting.default_receiver;
          if (absl::Status status = ReadString(value, "alerting.default_receiver", name);
              !status.ok()) {
            return status;
          }
          alerting.default_receiver = name;
          if (value.kind != Node::Kind::kNull) {
            receiver_references_.push_back(
                {.path = "alerting.default_receiver", .name = std::move(name), .mark = value.mark});
          }
          return absl::OkStatus();
        }
        if (key == "receivers") return ReadReceivers(value, alerting.receivers);
        return ReadDelivery(value, alerting.delivery);
      });
}

absl::Status Reader::ReadRoutes(const Node& node, std::vector<RouteConfig>& routes) {
  if (node.kind == Node::Kind::kNull) return absl::OkStatus();
  if (node.kind != Node::Kind::kSequence) {
    return Error(node.mark,
                 "alerting.routes must be a list of routes ({match: {...}, receiver: "
                 "name}), got " +
                     std::string(YamlKindName(node.kind)));
  }
  std::vector<RouteConfig> out;
  for (size_t i = 0; i < node.items.size(); ++i) {
    const Node& item = *node.items[i];
    const std::string path = "alerting.routes[" + std::to_string(i) + "]";
    if (item.kind != Node::Kind::kMapping) {
      return Error(item.mark, path + " must be a mapping, got " + YamlKindName(item.kind));
    }
    RouteConfig route;
    bool has_receiver = false;
    absl::Status status = ForEachEntry(
        item, path, {"match", "receiver", "continue"},
        [&](std::string_view key, const Node& value) -> absl::Status {
          if (key == "continue")
            return ReadBool(value, path + ".continue", route.continue_matching);
          if (key == "receiver") {
            if (absl::Status s = ReadString(value, path + ".receiver", route.receiver); !s.ok()) {
              return s;
            }
            has_receiver = value.kind != Node::Kind::kNull;
            if (has_receiver) {
              receiver_references_.push_back(
                  {.path = path + ".receiver", .name = route.receiver, .mark = value.mark});
            }
            return absl::OkStatus();
          }
          return ForEachEntryAny(
              value, path + ".match", [&](const Node& name_node, const Node& label_value) {
                const std::string& name = name_node.value;
                const std::string label_path = path + ".match." + name;
                if (!IsLabelName(name)) {
                  return Error(name_node.mark, path +
                                                   ".match: keys must be label names "
                                                   "([a-zA-Z_][a-zA-Z0-9_]*), got " +
                                                   QuoteForMessage(name));
                }
                if (label_value.kind != Node::Kind::kScalar) {
                  return Error(label_value.mark, label_path + " must be a string, got " +
                                                     YamlKindName(label_value.kind));
                }
                std::string text;
                if (absl::Status s = Expand(label_value, label_path, text); !s.ok()) return s;
                route.match[name] = std::move(text);
                return absl::OkStatus();
              });
        });
    if (!status.ok()) return status;
    if (!has_receiver) return Error(item.mark, path + " needs a receiver");
    out.push_back(std::move(route));
  }
  routes = std::move(out);
  return absl::OkStatus();
}

absl::Status Reader::ReadReceivers(const Node& node, std::vector<ReceiverConfig>& receivers) {
  if (node.kind == Node::Kind::kNull) return absl::OkStatus();
  if (node.kind != Node::Kind::kSequence) {
    return Error(node.mark,
                 "alerting.receivers must be a list of receivers ({name: ..., webhook: {...}}), "
                 "got " +
                     std::string(YamlKindName(node.kind)));
  }
  std::vector<ReceiverConfig> out;
  std::vector<YamlMark> name_marks;
  for (size_t i = 0; i < node.items.size(); ++i) {
    const Node& item = *node.items[i];
    const std::string path = "alerting.receivers[" + std::to_string(i) + "]";
    ReceiverConfig receiver;
    if (absl::Status status = ReadReceiver(item, path, receiver); !status.ok()) return status;
    // The name's own mark, for "first set at".
    YamlMark name_mark = item.mark;
    for (const auto& [key, value] : item.entries) {
      if (key->value == "name") name_mark = value->mark;
    }
    for (size_t j = 0; j < out.size(); ++j) {
      if (out[j].name != receiver.name) continue;
      return Error(name_mark, path + ".name: duplicate receiver " + QuoteForMessage(receiver.name) +
                                  " (first named at " +
                                  std::to_string(name_marks[j].DisplayLine()) + ":" +
                                  std::to_string(name_marks[j].DisplayColumn()) + ")");
    }
    out.push_back(std::move(receiver));
    name_marks.push_back(name_mark);
  }
  receivers = std::move(out);
  return absl::OkStatus();
}

absl::Status Reader::ReadReceiver(const Node& node, const std::string& path,
                                  ReceiverConfig& receiver) {
  if (node.kind != Node::Kind::kMapping) {
    return Error(node.mark, path + " must be a mapping ({name: ..., webhook: {...}}), got " +
                                YamlKindName(node.kind));
  }
  const Keys kinds = {"webhook", "slack", "pagerduty", "alertmanager", "log"};
  std::optional<std::string> kind_key;
  bool has_name = false;
  absl::Status status = ForEachEntry(
      node, path, {"name", "webhook", "slack", "pagerduty", "alertmanager", "log"},
      [&](std::string_view key, const Node& value) -> absl::Status {
        if (key == "name") {
          if (absl::Status s = ReadString(value, path + ".name", receiver.name); !s.ok()) return s;
          if (receiver.name.empty() || receiver.name.size() > kMaxReceiverNameBytes ||
              !std::all_of(receiver.name.begin(), receiver.name.end(), IsReceiverNameChar)) {
            return Error(value.mark, path +
                                         ".name must be 1 to 64 letters, digits, '_', '.' or "
                                         "'-', got " +
                                         QuoteForMessage(receiver.name));
          }
          has_name = true;
          return absl::OkStatus();
        }
        if (kind_key) {
          return Error(value.mark, path + ": a receiver has one kind, found " + *kind_key +
                                       " and " + std::string(key) + " (write a receiver for each)");
        }
        kind_key = std::string(key);
        const std::string kind_path = path + "." + std::string(key);
        if (key == "webhook") receiver.kind = ReceiverConfig::Kind::kWebhook;
        if (key == "slack") receiver.kind = ReceiverConfig::Kind::kSlack;
        if (key == "pagerduty") receiver.kind = ReceiverConfig::Kind::kPagerDuty;
        if (key == "alertmanager") receiver.kind = ReceiverConfig::Kind::kAlertmanager;
        if (key == "log") {
          receiver.kind = ReceiverConfig::Kind::kLog;
          if (value.kind == Node::Kind::kNull ||
              (value.kind == Node::Kind::kMapping && value.entries.empty())) {
            return absl::OkStatus();
          }
          return Error(value.mark, kind_path + " takes no settings (write log: {})");
        }
        return ReadReceiverSettings(value, kind_path, receiver);
      });
  if (!status.ok()) return status;
  if (!has_name) return Error(node.mark, path + " needs a name");
  if (!kind_key) {
    return Error(node.mark, path + " (" + QuoteForMessage(receiver.name) + ") needs one of " +
                                JoinKeys(kinds));
  }
  return absl::OkStatus();
}

absl::Status Reader::ReadReceiverSettings(const Node& node, const std::string& path,
                                          ReceiverConfig& receiver) const {
  using Kind = ReceiverConfig::Kind;
  const Kind kind = receiver.kind;
  // Which keys each kind takes.
  const Keys webhook_keys = {"url",     "url_file", "hmac_secret", "hmac_secret_file",
                             "headers", "ca_file"};
  const Keys slack_keys = {"url", "url_file", "ca_file"};
  const Keys pagerduty_keys = {"routing_key", "routing_key_file", "url", "ca_file"};
  const Keys alertmanager_keys = {"url", "ca_file"};
  const Keys& keys = kind == Kind::kSlack          ? slack_keys
                     : kind == Kind::kPagerDuty    ? pagerduty_keys
                     : kind == Kind::kAlertmanager ? alertmanager_keys
                                                   : webhook_keys;
  if (node.kind == Node::Kind::kNull) {
    return Error(node.mark, path + " needs settings (" + JoinKeys(keys) + ")");
  }
  // Where each secret came from, for "set one of X or X_file" and "needs X".
  std::optional<YamlMark> url_mark, url_file_mark, secret_mark, secret_file_mark, key_mark,
      key_file_mark;
  absl::Status status =
      ForEachEntry(node, path, keys, [&](std::string_view key, const Node& value) -> absl::Status {
        const std::string key_path = path + "." + std::string(key);
        if (value.kind == Node::Kind::kNull) return absl::OkStatus();
        if (key == "url" || key == "url_file") {
          (key == "url" ? url_mark : url_file_mark) = value.mark;
          if (url_mark && url_file_mark) {
            return Error(value.mark, path + ": set either url or url_file, not both");
          }
          absl::Status s = key == "url" ? ReadString(value, key_path, receiver.url)
                                        : ReadSecretFile(value, key_path, receiver.url);
          if (!s.ok()) return s;
          if (absl::StatusOr<HttpUrl> url = ParseHttpUrl(receiver.url); !url.ok()) {
            // The URL is a secret (Slack and webhook URLs are credentials): never shown.
            return Error(value.mark, key_path + ": " + std::string(url.status().message()) +
                                         " (the value is not shown: receiver URLs are secrets)");
          }
          return absl::OkStatus();
        }
        if (key == "hmac_secret" || key == "hmac_secret_file") {
          (key == "hmac_secret" ? secret_mark : secret_file_mark) = value.mark;
          if (secret_mark && secret_file_mark) {
            return Error(value.mark,
                         path + ": set either hmac_secret or hmac_secret_file, not both");
          }
          absl::Status s = key == "hmac_secret"
                               ? ReadString(value, key_path, receiver.hmac_secret)
                               : ReadSecretFile(value, key_path, receiver.hmac_secret);
          if (!s.ok()) return s;
          if (receiver.hmac_secret.empty()) {
            return Error(value.mark, key_path + " must not be empty");
          }
          if (std::string_view(receiver.hmac_secret).substr(0, 6) == "whsec_" &&
              !IsBase64(std::string_view(receiver.hmac_secret).substr(6))) {
            return Error(value.mark, key_path +
                                         " starts with \"whsec_\" but the rest is not base64 "
                                         "(Standard Webhooks keys are whsec_<base64>)");
          }
          return absl::OkStatus();
        }
        if (key == "routing_key" || key == "routing_key_file") {
          (key == "routing_key" ? key_mark : key_file_mark) = value.mark;
          if (key_mark && key_file_mark) {
            return Error(value.mark,
                         path + ": set either routing_key or routing_key_file, not both");
          }
          absl::Status s = key == "routing_key"
                               ? ReadString(value, key_path, receiver.routing_key)
                               : ReadSecretFile(value, key_path, receiver.routing_key);
          if (!s.ok()) return s;
          if (!IsValidToken(receiver.routing_key)) {
            return Error(value.mark,
                         key_path + " must be non-empty, without spaces or control characters");
          }
          return absl::OkStatus();
        }
        if (key == "headers") return ReadHeaders(value, key_path, receiver.headers);
        // ca_file
        if (absl::Status s = ReadString(value, key_path, receiver.ca_file); !s.ok()) return s;
        if (receiver.ca_file.empty()) return absl::OkStatus();
        return CheckReadable(value.mark, key_path, receiver.ca_file);
      });
  if (!status.ok()) return status;
  if (kind == Kind::kPagerDuty) {
    if (!key_mark && !key_file_mark) {
      return Error(node.mark, path + " needs routing_key or routing_key_file");
    }
    if (!url_mark) receiver.url = "https://events.pagerduty.com/v2/enqueue";
    return absl::OkStatus();
  }
  if (!url_mark && !url_file_mark) {
    return Error(node.mark,
                 path + (kind == Kind::kAlertmanager ? " needs url" : " needs url or url_file"));
  }
  return absl::OkStatus();
}

absl::Status Reader::ReadHeaders(const Node& node, const std::string& path,
                                 std::vector<std::pair<std::string, std::string>>& headers) const {
  // Set by traceslo on every request; a configured copy would conflict or forge a signature.
  const Keys reserved = {"host",
                         "content-length",
                         "content-type",
                         "transfer-encoding",
                         "connection",
                         "webhook-id",
                         "webhook-timestamp",
                         "webhook-signature",
                         "user-agent",
                         "x-traceslo-notification-id"};
  return ForEachEntryAny(node, path, [&](const Node& name_node, const Node& value) {
    const std::string& name = name_node.value;
    if (!std::all_of(name.begin(), name.end(), IsHeaderNameChar)) {
      return Error(name_node.mark,
                   path + ": " + QuoteForMessage(name) + " is not a valid header name");
    }
    const std::string lower = Lower(name);
    if (std::find(reserved.begin(), reserved.end(), lower) != reserved.end()) {
      return Error(name_node.mark,
                   path + "." + name + " is set by traceslo and cannot be configured");
    }
    for (const auto& [previous, unused] : headers) {
      if (Lower(previous) == lower) {
        return Error(name_node.mark,
                     path + "." + name + " is set twice (header names ignore case)");
      }
    }
    if (value.kind != Node::Kind::kScalar) {
      return Error(value.mark,
                   path + "." + name + " must be a string, got " + YamlKindName(value.kind));
    }
    std::string text;
    if (absl::Status s = Expand(value, path + "." + name, text); !s.ok()) return s;
    // Header values may be credentials: the message names the header, never the value.
    if (std::any_of(text.begin(), text.end(), [](char c) {
          return (static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f;
        })) {
      return Error(value.mark, path + "." + name + " must not contain control characters");
    }
    headers.emplace_back(name, std::move(text));
    return absl::OkStatus();
  });
}

absl::Status Reader::ReadDelivery(const Node& node, DeliveryConfig& delivery) {
  using std::chrono::milliseconds;
  return ForEachEntry(
      node, "alerting.delivery",
      {"timeout", "initial_backoff", "max_backoff", "max_age", "log_retention"},
      [&](std::string_view key, const Node& value) -> absl::Status {
        if (key == "timeout") {
          return ReadDuration(value, "alerting.delivery.timeout", milliseconds(100),
                              milliseconds(300'000), delivery.timeout);
        }
        if (key == "initial_backoff") {
          if (value.kind != Node::Kind::kNull) initial_backoff_mark_ = value.mark;
          return ReadDuration(value, "alerting.delivery.initial_backoff", milliseconds(10),
                              milliseconds(3'600'000), delivery.initial_backoff);
        }
        if (key == "max_backoff") {
          if (value.kind != Node::Kind::kNull) max_backoff_mark_ = value.mark;
          return ReadDuration(value, "alerting.delivery.max_backoff", milliseconds(10),
                              milliseconds(86'400'000), delivery.max_backoff);
        }
        if (key == "max_age") {
          return ReadDuration(value, "alerting.delivery.max_age", milliseconds(1'000),
                              milliseconds(30LL * 86'400'000), delivery.max_age);
        }
        return ReadDuration(value, "alerting.delivery.log_retention", milliseconds(3'600'000),
                            milliseconds(400LL * 86'400'000), delivery.log_retention);
      });
}

absl::Status Reader::ReadLinks(const Node& node, LinksConfig& links) const {
  return ForEachEntry(
      node, "links", {"trace_url"}, [&](std::string_view, const Node& value) -> absl::Status {
        std::string url;
        if (absl::Status status = ReadString(value, "links.trace_url", url); !status.ok()) {
          return status;
        }
        if (value.kind == Node::Kind::kNull || url.empty()) return absl::OkStatus();
        const size_t at = url.find("{trace_id}");
        if (at == std::string::npos) {
          return Error(value.mark,
                       "links.trace_url must contain {trace_id} where the trace id goes, e.g. "
                       "\"http://jaeger:16686/trace/{trace_id}\"");
        }
        std::string sample = url;
        sample.replace(at, 10, "0123456789abcdef0123456789abcdef");
        if (absl::StatusOr<HttpUrl> parsed = ParseHttpUrl(sample); !parsed.ok()) {
          return Error(value.mark, "links.trace_url: " + std::string(parsed.status().message()));
        }
        links.trace_url = std::move(url);
        return absl::OkStatus();
      });
}

absl::Status Reader::CheckAlerting(AlertingConfig& alerting) const {
  if (alerting.delivery.max_backoff < alerting.delivery.initial_backoff) {
    YamlMark mark = max_backoff_mark_.value_or(initial_backoff_mark_.value_or(YamlMark()));
    return Error(mark, "alerting.delivery.max_backoff (" +
                           FormatDuration(alerting.delivery.max_backoff) +
                           (max_backoff_mark_ ? "" : ", the default") +
                           ") must be at least alerting.delivery.initial_backoff (" +
                           FormatDuration(alerting.delivery.initial_backoff) +
                           (initial_backoff_mark_ ? "" : ", the default") + ")");
  }
  // The zero-config default: a receiver named "log" exists unless one is written.
  if (alerting.FindReceiver("log") == nullptr) {
    alerting.receivers.push_back(ReceiverConfig{.name = "log"});
  }
  std::vector<std::string_view> names;
  for (const ReceiverConfig& receiver : alerting.receivers) names.push_back(receiver.name);
  for (const ReceiverReference& reference : receiver_references_) {
    if (alerting.FindReceiver(reference.name) != nullptr) continue;
    std::string message = reference.path + ": unknown receiver " + QuoteForMessage(reference.name);
    std::string_view hint = ClosestKey(reference.name, names);
    if (!hint.empty()) {
      message += "; did you mean " + QuoteForMessage(hint) + "?";
    } else {
      std::string known;
      for (std::string_view name : names) known += (known.empty() ? "" : ", ") + std::string(name);
      message += " (receivers: " + known + ")";
    }
    return Error(reference.mark, message);
  }
  return absl::OkStatus();
}

absl::Status Reader::CheckReadable(const std::optional<YamlMark>& mark, std::string_view path,
                                   const std::string& file) const {
  std::string contents;
  // Certificates and keys are small; reading a little proves the file can be read.
  if (std::optional<FileReadError> failure = ReadFileCapped(file, 4096, contents)) {
    return Error(mark.value_or(YamlMark()), std::string(path) + ": cannot read " +
                                                QuoteForMessage(file) + ": " + failure->reason);
  }
  return absl::OkStatus();
}

absl::Status Reader::CheckTls(const TlsConfig& tls) const {
  YamlMark none;
  // Empty values count as unset, so "${TLS_CERT:-}" can switch TLS off.
  if (!tls.key_file.empty() && tls.cert_file.empty()) {
    return Error(key_file_mark_.value_or(none),
                 "otlp.tls.key_file is set but otlp.tls.cert_file is not");
  }
  if (!tls.client_ca_file.empty() && tls.cert_file.empty()) {
    return Error(client_ca_file_mark_.value_or(none),
                 "otlp.tls.client_ca_file (mTLS) needs otlp.tls.cert_file and otlp.tls.key_file");
  }
  if (!tls.cert_file.empty() && tls.key_file.empty()) {
    return Error(cert_file_mark_.value_or(none),
                 "otlp.tls.cert_file is set but otlp.tls.key_file is not");
  }
  if (!tls.cert_file.empty()) {
    if (absl::Status s = CheckReadable(cert_file_mark_, "otlp.tls.cert_file", tls.cert_file);
        !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckReadable(key_file_mark_, "otlp.tls.key_file", tls.key_file);
        !s.ok()) {
      return s;
    }
  }
  if (!tls.client_ca_file.empty()) {
    return CheckReadable(client_ca_file_mark_, "otlp.tls.client_ca_file", tls.client_ca_file);
  }
  return absl::OkStatus();
}

absl::Status Reader::ReadTokensFile(const std::string& file,
                                    std::vector<std::string>& tokens) const {
  const YamlMark mark = tokens_file_mark_.value_or(YamlMark());
  const std::string prefix = "otlp.auth.bearer_tokens_file: " + QuoteForMessage(file);
  std::string contents;
  if (std::optional<FileReadError> failure = ReadFileCapped(file, kMaxSecretFileBytes, contents)) {
    return Error(mark, "otlp.auth.bearer_tokens_file: cannot read " + QuoteForMessage(file) + ": " +
                           failure->reason);
  }
  if (contents.size() > kMaxSecretFileBytes) return Error(mark, prefix + " is larger than 1 MiB");
  size_t added = 0;
  size_t line_number = 0;
  std::string_view rest = contents;
  while (!rest.empty()) {
    size_t newline = rest.find('\n');
    std::string_view line = TrimWhitespace(rest.substr(0, newline));
    rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
    ++line_number;
    if (line.empty() || line.front() == '#') continue;
    if (!IsValidToken(line)) {
      return Error(mark, prefix + " line " + std::to_string(line_number) +
                             ": a token must not contain spaces or control characters");
    }
    tokens.emplace_back(line);
    ++added;
  }
  // Naming a token file means "require a token": an empty one must not switch auth off.
  if (added == 0) return Error(mark, prefix + " contains no tokens");
  return absl::OkStatus();
}

absl::Status Reader::CheckPipeline(const PipelineConfig& pipeline) const {
  if (pipeline.trace_max_age < pipeline.trace_idle_timeout) {
    YamlMark mark = max_age_mark_.value_or(idle_timeout_mark_.value_or(YamlMark()));
    return Error(mark, "pipeline.trace_max_age (" + FormatDuration(pipeline.trace_max_age) +
                           (max_age_mark_ ? "" : ", the default") +
                           ") must be at least pipeline.trace_idle_timeout (" +
                           FormatDuration(pipeline.trace_idle_timeout) +
                           (idle_timeout_mark_ ? "" : ", the default") + ")");
  }
  if (pipeline.exemplar_retention > pipeline.sli_retention) {
    YamlMark mark = exemplar_retention_mark_.value_or(sli_retention_mark_.value_or(YamlMark()));
    return Error(mark, "pipeline.exemplar_retention (" +
                           FormatDuration(pipeline.exemplar_retention) +
                           (exemplar_retention_mark_ ? "" : ", the default") +
                           ") must be at most pipeline.sli_retention (" +
                           FormatDuration(pipeline.sli_retention) +
                           (sli_retention_mark_ ? "" : ", the default") + ")");
  }
  return absl::OkStatus();
}

absl::Status Reader::Read(const Node& root, Config& config) {
  absl::Status status = ForEachEntry(
      root, "",
      {"otlp", "web", "storage", "pipeline", "rules", "log", "alerting", "links", "kafka"},
      [&](std::string_view key, const Node& value) -> absl::Status {
        if (key == "otlp") return ReadOtlp(value, config.otlp);
        if (key == "web") return ReadWeb(value, config.web);
        if (key == "storage") return ReadStorage(value, config.storage);
        if (key == "pipeline") return ReadPipeline(value, config.pipeline);
        if (key == "rules") return ReadRules(value, config.rules);
        if (key == "log") return ReadLog(value, config.log);
        if (key == "alerting") return ReadAlerting(value, config.alerting);
        if (key == "kafka") return ReadKafka(value, config.kafka);
        return ReadLinks(value, config.links);
      });
  if (!status.ok()) return status;
  if (status = CheckTls(config.otlp.tls); !status.ok()) return status;
  if (!tokens_file_.empty()) {
    if (status = ReadTokensFile(tokens_file_, config.otlp.bearer_tokens); !status.ok()) {
      return status;
    }
  }
  if (status = CheckPipeline(config.pipeline); !status.ok()) return status;
  if (config.kafka.enabled && config.kafka.brokers.empty()) {
    return Error(kafka_mark_.value_or(YamlMark()),
                 "kafka.brokers must name at least one broker (host:port) when kafka.enabled is "
                 "true");
  }
  return CheckAlerting(config.alerting);
}

absl::Status Reader::ReadTopicName(const Node& node, std::string_view path,
                                   std::string& out) const {
  std::string name;
  if (absl::Status status = ReadString(node, path, name); !status.ok()) return status;
  if (node.kind == Node::Kind::kNull) return absl::OkStatus();
  // Kafka's own rule for topic names.
  const bool valid =
      !name.empty() && name.size() <= 249 && name != "." && name != ".." &&
      std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
      });
  if (!valid) {
    return Error(node.mark, std::string(path) + ": " + QuoteForMessage(name) +
                                " is not a Kafka topic name (1-249 of [A-Za-z0-9._-])");
  }
  out = std::move(name);
  return absl::OkStatus();
}

absl::Status Reader::ReadLibrdkafka(const Node& node,
                                    std::map<std::string, std::string>& out) const {
  // Set by traceslo: the stages' correctness rests on them (docs/kafka.md). The same list as
  // services/kafka's ReservedSettings(); kafka_test checks they agree.
  const Keys reserved = {"bootstrap.servers",
                         "metadata.broker.list",
                         "group.id",
                         "enable.auto.commit",
                         "enable.auto.offset.store",
                         "auto.offset.reset",
                         "partition.assignment.strategy",
                         "enable.idempotence",
                         "isolation.level",
                         "enable.partition.eof",
                         "message.timeout.ms",
                         "delivery.timeout.ms",
                         "statistics.interval.ms"};
  const std::string path = "kafka.librdkafka";
  return ForEachEntryAny(node, path, [&](const Node& name_node, const Node& value) {
    const std::string& name = name_node.value;
    const bool valid =
        !name.empty() && name.size() <= 128 && std::all_of(name.begin(), name.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_';
        });
    if (!valid) {
      return Error(name_node.mark,
                   path + ": " + QuoteForMessage(name) + " is not a librdkafka property name");
    }
    if (std::find(reserved.begin(), reserved.end(), name) != reserved.end()) {
      return Error(name_node.mark,
                   path + "." + name + " is set by traceslo and cannot be configured");
    }
    if (value.kind != Node::Kind::kScalar) {
      return Error(value.mark,
                   path + "." + name + " must be a string, got " + YamlKindName(value.kind));
    }
    std::string text;
    if (absl::Status s = Expand(value, path + "." + name, text); !s.ok()) return s;
    // Values may be credentials (sasl.password): the message names the key, never the value.
    if (std::any_of(text.begin(), text.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
      return Error(value.mark, path + "." + name + " must not contain control characters");
    }
    out[name] = std::move(text);
    return absl::OkStatus();
  });
}

absl::Status Reader::ReadKafka(const Node& node, KafkaConfig& kafka) {
  using std::chrono::milliseconds;
  if (node.kind != Node::Kind::kNull) kafka_mark_ = node.mark;
  return ForEachEntry(
      node, "kafka",
      {"enabled", "brokers", "topics", "group_ids", "encoding", "librdkafka", "epoch_length",
       "commit_interval", "idle_partition_timeout", "allowed_lateness", "snapshot_interval"},
      [&](std::string_view key, const Node& value) -> absl::Status {
        if (key == "enabled") return ReadBool(value, "kafka.enabled", kafka.enabled);
        if (key == "brokers") {
          if (absl::Status status = ReadStringList(value, "kafka.brokers", kafka.brokers);
              !status.ok()) {
            return status;
          }
          for (size_t i = 0; i < kafka.brokers.size(); ++i) {
            const std::string& broker = kafka.brokers[i];
            const size_t colon = broker.rfind(':');
            const bool valid =
                colon != std::string::npos && colon > 0 && colon + 1 < broker.size() &&
                broker.size() <= 255 &&
                std::all_of(broker.begin() + static_cast<long>(colon) + 1, broker.end(),
                            [](char c) { return c >= '0' && c <= '9'; }) &&
                broker.find_first_of(", \t") == std::string::npos;
            if (!valid) {
              return Error(value.items[i]->mark, "kafka.brokers[" + std::to_string(i) + "]: " +
                                                     QuoteForMessage(broker) + " is not host:port");
            }
          }
          return absl::OkStatus();
        }
        if (key == "topics") {
          return ForEachEntry(value, "kafka.topics", {"spans", "deltas", "state"},
                              [&](std::string_view topic, const Node& name) -> absl::Status {
                                std::string& out = topic == "spans"    ? kafka.topics.spans
                                                   : topic == "deltas" ? kafka.topics.deltas
                                                                       : kafka.topics.state;
                                return ReadTopicName(name, Child("kafka.topics", topic), out);
                              });
        }
        if (key == "group_ids") {
          return ForEachEntry(value, "kafka.group_ids", {"stage1", "stage2"},
                              [&](std::string_view stage, const Node& name) -> absl::Status {
                                std::string& out = stage == "stage1" ? kafka.group_ids.stage1
                                                                     : kafka.group_ids.stage2;
                                std::string id;
                                const std::string path = Child("kafka.group_ids", stage);
                                if (absl::Status status = ReadString(name, path, id);
                                    !status.ok() || name.kind == Node::Kind::kNull) {
                                  return status;
                                }
                                if (id.empty() || id.size() > 255) {
                                  return Error(name.mark, path + " must be 1 to 255 characters");
                                }
                                out = std::move(id);
                                return absl::OkStatus();
                              });
        }
        if (key == "encoding") {
          return ReadChoice(value, "kafka.encoding", {"otlp_proto", "otlp_json"}, kafka.encoding);
        }
        if (key == "librdkafka") return ReadLibrdkafka(value, kafka.librdkafka);
        if (key == "epoch_length") {
          return ReadDuration(value, "kafka.epoch_length", milliseconds(100), milliseconds(60'000),
                              kafka.epoch_length);
        }
        if (key == "commit_interval") {
          return ReadDuration(value, "kafka.commit_interval", milliseconds(100),
                              milliseconds(600'000), kafka.commit_interval);
        }
        if (key == "idle_partition_timeout") {
          return ReadDuration(value, "kafka.idle_partition_timeout", milliseconds(100),
                              milliseconds(3'600'000), kafka.idle_partition_timeout);
        }
        if (key == "snapshot_interval") {
          return ReadDuration(value, "kafka.snapshot_interval", milliseconds(1'000),
                              milliseconds(3'600'000), kafka.snapshot_interval);
        }
        return ReadDuration(value, "kafka.allowed_lateness", milliseconds(0),
                            milliseconds(3'600'000), kafka.allowed_lateness);
      });
}

absl::StatusOr<Config> ParseConfigOrThrow(std::string_view yaml_text, std::string_view source) {
  if (yaml_text.size() > kMaxDocumentBytes) {
    return ErrorAt(source, YamlMark(), "the document is larger than 1 MiB");
  }
  YamlParseResult parsed = ParseYamlDocument(
      yaml_text, YamlLimits{.max_depth = kMaxDepth, .max_nodes = kMaxNodes}, "a config file");
  if (parsed.error) return ErrorAt(source, parsed.error->mark, parsed.error->message);
  Config config;
  NodePtr root = parsed.root;
  if (root == nullptr || root->kind == Node::Kind::kNull) return config;  // empty: all defaults
  if (root->kind != Node::Kind::kMapping) {
    return ErrorAt(
        source, root->mark,
        std::string("the top level must be a mapping of sections (otlp, "
                    "web, storage, pipeline, rules, log, alerting, links, kafka), got ") +
            YamlKindName(root->kind));
  }
  Reader reader(source);
  if (absl::Status status = reader.Read(*root, config); !status.ok()) return status;
  return config;
}

}  // namespace

const ReceiverConfig* AlertingConfig::FindReceiver(std::string_view name) const {
  for (const ReceiverConfig& receiver : receivers) {
    if (receiver.name == name) return &receiver;
  }
  return nullptr;
}

absl::StatusOr<Config> ParseConfig(std::string_view yaml_text, std::string_view source_name) {
  try {
    return ParseConfigOrThrow(yaml_text, source_name);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(std::string(source_name) +
                                        ": out of memory while parsing the configuration");
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(std::string(source_name) +
                                      ":1:1: cannot parse the configuration: " + e.what());
  } catch (...) {
    return absl::InvalidArgumentError(std::string(source_name) +
                                      ":1:1: cannot parse the configuration");
  }
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::string contents;
  try {
    // Config files may be pipes (/dev/stdin, process substitution), so not only regular files.
    std::optional<FileReadError> failure =
        ReadFileCapped(path, kMaxDocumentBytes, contents, /*allow_special=*/true);
    if (failure) {
      if (failure->error == ENOENT) {
        return absl::NotFoundError("config file " + path + ": not found");
      }
      return absl::InvalidArgumentError("config file " + path +
                                        ": cannot read: " + failure->reason);
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("config file " + path + ": out of memory");
  }
  return ParseConfig(contents, path);
}

std::string FormatDuration(std::chrono::milliseconds duration) {
  int64_t ms = duration.count();
  if (ms == 0) return "0s";
  struct Unit {
    int64_t ms;
    const char* name;
  };
  constexpr Unit kUnits[] = {
      {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}, {1, "ms"}};
  std::string out;
  for (const Unit& unit : kUnits) {
    if (ms >= unit.ms) {
      out += std::to_string(ms / unit.ms) + unit.name;
      ms %= unit.ms;
    }
  }
  return out;
}

absl::StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError("invalid duration " + QuoteForMessage(text) + ": " +
                                      std::string(why));
  };
  if (text.empty()) return invalid("empty (use e.g. \"15s\")");
  if (text.front() == '-') return invalid("must not be negative");
  struct Unit {
    std::string_view name;
    int64_t ms;
  };
  constexpr Unit kUnits[] = {
      {"ms", 1}, {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}};
  constexpr std::string_view kUnitList = "ms, s, m, h, d";
  int64_t total = 0;
  int64_t previous_unit = std::numeric_limits<int64_t>::max();
  size_t pos = 0;
  while (pos < text.size()) {
    if (!IsDigit(text[pos])) {
      return invalid("expected a number at " + QuoteForMessage(text.substr(pos)) +
                     " (durations look like \"15s\", \"1h30m\")");
    }
    std::optional<uint64_t> number = ParseDigits(text, pos);
    if (!number) return invalid("too large");
    if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
      return invalid("fractions are not supported; use a smaller unit (e.g. \"1500ms\")");
    }
    if (pos == text.size()) {
      return invalid("a unit is required (" + std::string(kUnitList) + "), e.g. \"" +
                     std::string(text) + "s\"");
    }
    size_t unit_end = pos;
    while (unit_end < text.size() && !IsDigit(text[unit_end])) ++unit_end;
    std::string_view unit_name = text.substr(pos, unit_end - pos);
    const Unit* unit = nullptr;
    for (const Unit& candidate : kUnits) {
      if (unit_name == candidate.name) unit = &candidate;
    }
    if (unit == nullptr) {
      return invalid("unknown unit " + QuoteForMessage(unit_name) + " (use " +
                     std::string(kUnitList) + ")");
    }
    pos += unit->name.size();
    if (unit->ms >= previous_unit) {
      return invalid("units must go from largest to smallest, each once (e.g. \"1h30m\")");
    }
    previous_unit = unit->ms;
    if (*number > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / unit->ms)) {
      return invalid("too large");
    }
    int64_t part = static_cast<int64_t>(*number) * unit->ms;
    if (part > std::numeric_limits<int64_t>::max() - total) return invalid("too large");
    total += part;
  }
  return std::chrono::milliseconds(total);
}

absl::StatusOr<uint64_t> ParseByteSize(std::string_view text) {
  auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError("invalid byte size " + QuoteForMessage(text) + ": " +
                                      std::string(why));
  };
  if (text.empty()) return invalid("empty (use e.g. \"16MiB\")");
  if (text.front() == '-') return invalid("must not be negative");
  size_t pos = 0;
  if (!IsDigit(text.front())) return invalid("expected a number (e.g. \"16MiB\", \"1000\")");
  std::optional<uint64_t> number = ParseDigits(text, pos);
  if (!number) return invalid("too large");
  if (pos < text.size() && (text[pos] == '.' || text[pos] == ',')) {
    return invalid("fractions are not supported; use a smaller unit (e.g. \"1536MiB\")");
  }
  struct Unit {
    std::string_view name;
    uint64_t bytes;
  };
  constexpr Unit kUnits[] = {{"", 1},
                             {"B", 1},
                             {"KiB", 1ull << 10},
                             {"MiB", 1ull << 20},
                             {"GiB", 1ull << 30},
                             {"TiB", 1ull << 40},
                             {"kB", 1'000},
                             {"KB", 1'000},
                             {"MB", 1'000'000},
                             {"GB", 1'000'000'000},
                             {"TB", 1'000'000'000'000}};
  std::string_view suffix = text.substr(pos);
  for (const Unit& unit : kUnits) {
    if (suffix != unit.name) continue;
    if (*number > std::numeric_limits<uint64_t>::max() / unit.bytes) return invalid("too large");
    return *number * unit.bytes;
  }
  return invalid("unknown unit " + QuoteForMessage(suffix) +
                 " (use B, KiB, MiB, GiB, TiB or KB, MB, GB, TB, or none for bytes)");
}

}  // namespace traceslo::config
