#include "traceslo/config/yaml_document.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/anchor.h>
#include <yaml-cpp/emitterstyle.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <sstream>

namespace traceslo::config {
namespace {

YamlMark ToMark(const YAML::Mark& mark) { return YamlMark{mark.line, mark.column}; }

// Optimal string alignment distance (Levenshtein plus adjacent transpositions), used only for
// "did you mean" hints between short keys.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// Thrown from the event handler to stop yaml-cpp mid-parse; caught in ParseYamlDocument.
struct DocumentRejected {
  YAML::Mark mark;
  std::string message;
};

// Builds the tree from yaml-cpp's parse events.
//
// yaml-cpp's own YAML::Node is not used: building it cannot be stopped part-way, aliases to an
// enclosing node make it cyclic, and its lookups convert keys on every access. This tree is
// acyclic, carries the mark of every node and is bounded in depth and expanded size while it is
// built.
class TreeBuilder final : public YAML::EventHandler {
 public:
  TreeBuilder(const YamlLimits& limits, std::string_view one_document_of)
      : limits_(limits), one_document_of_(one_document_of) {}

  YamlNodePtr root() const { return root_; }

  // YAML::EventHandler
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > 1) {
      // Also reached when yaml-cpp ends the first document early, e.g. "- a\nb: c".
      throw DocumentRejected{mark, "unexpected content after the end of the document (" +
                                       std::string(one_document_of_) + " holds one YAML document)"};
    }
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    Count(mark, 1);
    auto node = std::make_shared<YamlNode>();
    node->mark = ToMark(mark);
    Finish(std::move(node), anchor);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) {
      // yaml-cpp resolves the name already; an anchor it knows but we have not finished is the
      // node the alias sits inside.
      throw DocumentRejected{mark, "alias refers to a node that contains it (recursive alias)"};
    }
    Count(mark, it->second->weight);
    Attach(it->second);
  }
  void OnScalar(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                const std::string& value) override {
    Count(mark, 1);
    auto node = std::make_shared<YamlNode>();
    node->kind = YamlNode::Kind::kScalar;
    node->mark = ToMark(mark);
    node->value = value;
    Finish(std::move(node), anchor);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value /*style*/) override {
    Open(YamlNode::Kind::kSequence, mark, anchor);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string& /*tag*/, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value /*style*/) override {
    Open(YamlNode::Kind::kMapping, mark, anchor);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct Frame {
    std::shared_ptr<YamlNode> node;
    YAML::anchor_t anchor;
    YamlNodePtr pending_key;  // mappings: the key waiting for its value
  };

  void Count(const YAML::Mark& mark, uint64_t nodes) {
    // Both terms are <= max_nodes here; saturate rather than wrap for absurd limits.
    expanded_nodes_ = nodes > UINT64_MAX - expanded_nodes_ ? UINT64_MAX : expanded_nodes_ + nodes;
    if (expanded_nodes_ > limits_.max_nodes) {
      throw DocumentRejected{mark, "document has more than " + std::to_string(limits_.max_nodes) +
                                       " nodes (counting alias expansions)"};
    }
  }

  void Open(YamlNode::Kind kind, const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (open_.size() >= limits_.max_depth) {
      throw DocumentRejected{
          mark, "document is nested deeper than " + std::to_string(limits_.max_depth) + " levels"};
    }
    Count(mark, 1);
    auto node = std::make_shared<YamlNode>();
    node->kind = kind;
    node->mark = ToMark(mark);
    open_.push_back(Frame{std::move(node), anchor, nullptr});
  }

  void Close() {
    if (open_.empty()) return;  // yaml-cpp pairs every end with a start; stay safe if not
    Frame frame = std::move(open_.back());
    open_.pop_back();
    Finish(std::move(frame.node), frame.anchor);
  }

  void Finish(YamlNodePtr node, YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor) anchors_[anchor] = node;
    Attach(std::move(node));
  }

  void Attach(YamlNodePtr node) {
    if (open_.empty()) {
      root_ = std::move(node);
      return;
    }
    Frame& parent = open_.back();
    parent.node->weight += node->weight;
    if (parent.node->kind == YamlNode::Kind::kSequence) {
      parent.node->items.push_back(std::move(node));
    } else if (parent.pending_key == nullptr) {
      parent.pending_key = std::move(node);
    } else {
      parent.node->entries.emplace_back(std::move(parent.pending_key), std::move(node));
      parent.pending_key = nullptr;
    }
  }

  const YamlLimits limits_;
  const std::string_view one_document_of_;
  std::vector<Frame> open_;
  std::map<YAML::anchor_t, YamlNodePtr> anchors_;
  YamlNodePtr root_;
  uint64_t expanded_nodes_ = 0;
  int documents_ = 0;
};

}  // namespace

const char* YamlKindName(YamlNode::Kind kind) {
  switch (kind) {
    case YamlNode::Kind::kNull:
      return "null";
    case YamlNode::Kind::kScalar:
      return "a scalar";
    case YamlNode::Kind::kSequence:
      return "a list";
    case YamlNode::Kind::kMapping:
      return "a mapping";
  }
  return "?";
}

YamlParseResult ParseYamlDocument(std::string_view text, const YamlLimits& limits,
                                  std::string_view one_document_of) {
  TreeBuilder builder(limits, one_document_of);
  try {
    std::istringstream stream{std::string(text)};
    YAML::Parser parser(stream);
    if (parser.HandleNextDocument(builder)) parser.HandleNextDocument(builder);
  } catch (const DocumentRejected& rejected) {
    return {nullptr, YamlError{ToMark(rejected.mark), rejected.message}};
  } catch (const YAML::Exception& e) {
    // yaml-cpp 0.7 says "the referenced anchor is not defined"; later versions add the name.
    std::string_view unknown_anchor = YAML::ErrorMsg::UNKNOWN_ANCHOR;
    if (std::string_view(e.msg).starts_with(unknown_anchor)) {
      std::string name = e.msg.substr(unknown_anchor.size());
      return {nullptr,
              YamlError{ToMark(e.mark),
                        "invalid YAML: alias to an undefined anchor" +
                            (name.empty() ? std::string() : ": *" + EscapeForMessage(name, 64))}};
    }
    // yaml-cpp quotes offending input bytes in some messages ("unknown escape character: \x01").
    return {nullptr, YamlError{ToMark(e.mark), "invalid YAML: " + EscapeForMessage(e.msg, 256)}};
  }
  return {builder.root(), std::nullopt};
}

std::string EscapeForMessage(std::string_view text, size_t max_shown, char quote) {
  std::string out;
  for (size_t i = 0; i < text.size() && i < max_shown; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (quote != '\0' && (c == '\\' || c == static_cast<unsigned char>(quote))) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  if (text.size() > max_shown) out += "...";
  return out;
}

std::string QuoteForMessage(std::string_view text, char quote) {
  return quote + EscapeForMessage(text, 64, quote) + quote;
}

namespace {

template <typename Range>
std::string_view ClosestIn(std::string_view key, const Range& known) {
  constexpr size_t kMaxDistance = 2;
  std::string_view best;
  size_t best_distance = kMaxDistance + 1;
  for (std::string_view candidate : known) {
    // The distance is at least the difference in length; skipping early keeps long keys cheap.
    size_t length_gap = key.size() > candidate.size() ? key.size() - candidate.size()
                                                      : candidate.size() - key.size();
    if (length_gap > kMaxDistance) continue;
    size_t distance = EditDistance(key, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

}  // namespace

std::string_view ClosestKey(std::string_view key, std::initializer_list<std::string_view> known) {
  return ClosestIn(key, known);
}

std::string_view ClosestKey(std::string_view key, const std::vector<std::string_view>& known) {
  return ClosestIn(key, known);
}

std::string JoinKeys(std::initializer_list<std::string_view> keys) {
  std::string out;
  for (std::string_view key : keys) {
    if (!out.empty()) out += ", ";
    out += key;
  }
  return out;
}

std::optional<FileReadError> ReadFileCapped(const std::string& path, size_t max_bytes,
                                            std::string& out, bool allow_special) {
  out.clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return FileReadError{errno, std::strerror(errno)};
  auto fail = [fd](int error, std::string reason) {
    ::close(fd);
    return FileReadError{error, std::move(reason)};
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(errno, std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return fail(EISDIR, std::strerror(EISDIR));
  if (!S_ISREG(st.st_mode)) {
    if (!allow_special) return fail(0, "not a regular file");
    int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
  char buffer[64 * 1024];
  while (out.size() <= max_bytes) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(errno, std::strerror(errno));
    }
    if (n == 0) break;
    out.append(buffer, std::min(static_cast<size_t>(n), max_bytes + 1 - out.size()));
  }
  ::close(fd);
  return std::nullopt;
}

}  // namespace traceslo::config
