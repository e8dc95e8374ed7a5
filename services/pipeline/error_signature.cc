#include "traceslo/pipeline/error_signature.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace traceslo::pipeline {
namespace {

bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAlnum(unsigned char c) { return IsDigit(c) || IsAlpha(c); }
bool IsHex(unsigned char c) {
  return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool IsWord(unsigned char c) { return IsAlnum(c) || c == '_'; }
// ASCII whitespace and control bytes.
bool IsSpace(unsigned char c) { return c <= 0x20 || c == 0x7f; }
bool IsQuote(unsigned char c) { return c == '\'' || c == '"' || c == '`'; }
bool IsUtf8Continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// The longest prefix of `s` of at most `max_bytes` that does not end inside a UTF-8 character
// (for valid UTF-8; arbitrary bytes are cut at most 3 bytes early).
std::string_view CutAtCharBoundary(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t cut = max_bytes;
  while (cut > 0 && max_bytes - cut < 3 && IsUtf8Continuation(s[cut])) --cut;
  return s.substr(0, cut);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

bool Contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

enum class Mask : uint8_t { kNone, kStr, kUrl, kEmail, kUuid, kIp, kHex, kNum };

constexpr std::string_view kStrMask = "<str>";
constexpr std::string_view kNumMask = "<num>";

std::string_view MaskText(Mask mask) {
  switch (mask) {
    case Mask::kStr:
      return kStrMask;
    case Mask::kUrl:
      return "<url>";
    case Mask::kEmail:
      return "<email>";
    case Mask::kUuid:
      return "<uuid>";
    case Mask::kIp:
      return "<ip>";
    case Mask::kHex:
      return "<hex>";
    case Mask::kNum:
      return kNumMask;
    case Mask::kNone:
      break;
  }
  return {};
}

constexpr std::array<Mask, 7> kAllMasks = {Mask::kStr, Mask::kUrl, Mask::kEmail, Mask::kUuid,
                                           Mask::kIp,  Mask::kHex, Mask::kNum};

// One left-to-right pass over `in` that appends the normalized text to `out` without letting
// `out` grow past `cap` bytes. See NormalizeMessage for the rules. Every matcher either looks
// at a bounded window or, when it fails, records how far later attempts would fail the same way,
// so the pass is linear in the input.
//
// Idempotence: text a first pass copies literally is text every matcher rejected. In a second
// pass the same text may be followed by a placeholder where the first pass saw the masked
// value, so a matcher whose scan reaches a '<' must reject too (never accept because of it).
class Normalizer {
 public:
  Normalizer(std::string_view in, std::string& out, size_t cap)
      : in_(in), out_(out), cap_(cap), base_(out.size()) {}

  void Run() {
    const size_t n = in_.size();
    size_t i = 0;
    while (i < n && !full_) {
      const unsigned char c = in_[i];
      if (IsSpace(c)) {
        if (out_.size() > base_) pending_space_ = true;
        SetState(false, false);
        ++i;
        continue;
      }
      if (c == '<') {
        if (const Mask existing = PlaceholderAt(i); existing != Mask::kNone) {
          EmitMask(existing);
          i += MaskText(existing).size();
          continue;
        }
      }
      if (!prev_word_ && IsQuote(c)) {
        if (const size_t end = MatchQuote(i); end != 0) {
          EmitMask(Mask::kStr);
          i = end;
          continue;
        }
      }
      if (!prev_word_) {
        size_t end = 0;
        if (const Mask mask = MatchToken(i, end); mask != Mask::kNone) {
          EmitMask(mask);
          i = end;
          continue;
        }
      }
      if (numeric_word_ && IsDigit(c)) {
        EmitMask(Mask::kNum);
        i = ScanNumber(i);
        continue;
      }
      i = EmitLiteral(i);
    }
  }

 private:
  void SetState(bool prev_word, bool numeric_word) {
    prev_word_ = prev_word;
    numeric_word_ = numeric_word;
  }

  bool Reserve(size_t bytes) {
    const size_t need = bytes + (pending_space_ ? 1 : 0);
    if (out_.size() + need > cap_) {
      full_ = true;
      return false;
    }
    if (pending_space_) out_.push_back(' ');
    pending_space_ = false;
    return true;
  }

  void EmitMask(Mask mask) {
    const std::string_view text = MaskText(mask);
    if (!Reserve(text.size())) return;
    out_.append(text);
    // A number is part of the word it starts: glued letters are its unit and later digits in
    // the same word are numbers too. Every other mask ends at a boundary.
    SetState(mask == Mask::kNum, mask == Mask::kNum);
  }

  // Copies one byte, or one whole UTF-8 character; returns the next position.
  size_t EmitLiteral(size_t i) {
    const unsigned char c = in_[i];
    size_t len = 1;
    if (c >= 0xC0) {
      const size_t want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
      while (len < want && i + len < in_.size() && IsUtf8Continuation(in_[i + len])) ++len;
    }
    if (!Reserve(len)) return i;
    out_.append(in_.substr(i, len));
    const bool word = IsWord(c);
    SetState(word, word && numeric_word_);
    return i + len;
  }

  // Whether a token may end before `i`. A '<' does not end one: in a second pass it may begin a
  // placeholder that replaced a word, and the decision must not change between passes.
  bool AtBoundary(size_t i) const { return i >= in_.size() || (!IsWord(in_[i]) && in_[i] != '<'); }

  Mask PlaceholderAt(size_t i) const {
    const std::string_view rest = in_.substr(i);
    for (const Mask mask : kAllMasks) {
      if (rest.starts_with(MaskText(mask))) return mask;
    }
    return Mask::kNone;
  }

  // End of the quoted value opening at `i`, or 0. No escapes: the next quote of the same kind
  // closes (for ', one not followed by a letter or '<').
  size_t MatchQuote(size_t i) {
    const char q = in_[i];
    const int kind = q == '\'' ? 0 : q == '"' ? 1 : 2;
    if (no_closer_[kind]) return 0;
    for (size_t j = i + 1; j < in_.size(); ++j) {
      if (in_[j] != q) continue;
      if (q == '\'' && j + 1 < in_.size()) {
        const unsigned char next = in_[j + 1];
        if (IsAlpha(next) || next == '<') continue;
      }
      return j + 1;
    }
    // Closers depend only on their own position, so no later opener of this kind can close.
    no_closer_[kind] = true;
    return 0;
  }

  Mask MatchToken(size_t i, size_t& end) {
    const unsigned char c = in_[i];
    if (IsAlpha(c) && MatchUrl(i, end)) return Mask::kUrl;
    if (IsAlnum(c) && MatchEmail(i, end)) return Mask::kEmail;
    if (IsHex(c) || c == ':' || c == '[') {
      if (const Mask mask = MatchHexLike(i, end); mask != Mask::kNone) return mask;
    }
    if (IsDigit(c)) {
      end = ScanNumber(i);
      return Mask::kNum;
    }
    if ((c == '-' || c == '+') && i + 1 < in_.size() && IsDigit(in_[i + 1])) {
      // A sign belongs to a plain number only; "-10.0.0.1" keeps its '-' and masks the address.
      size_t unused = 0;
      if (MatchEmail(i + 1, unused) || MatchHexLike(i + 1, unused) != Mask::kNone) {
        return Mask::kNone;
      }
      end = ScanNumber(i + 1);
      return Mask::kNum;
    }
    return Mask::kNone;
  }

  // UUID, IPv6, IPv4 or hex, in this order.
  Mask MatchHexLike(size_t i, size_t& end) const {
    const unsigned char c = in_[i];
    if (IsHex(c) && MatchUuid(i, end)) return Mask::kUuid;
    if (MatchIpv6(i, end)) return Mask::kIp;
    if (IsDigit(c) && MatchIpv4(i, end)) return Mask::kIp;
    if (IsHex(c) && MatchHex(i, end)) return Mask::kHex;
    return Mask::kNone;
  }

  bool MatchUrl(size_t i, size_t& end) {
    constexpr size_t kMaxScheme = 32;
    if (i < url_fails_until_) return false;
    size_t j = i + 1;
    while (j < in_.size() && (IsAlnum(in_[j]) || in_[j] == '+' || in_[j] == '.' || in_[j] == '-')) {
      ++j;
    }
    if (in_.substr(j, 3) != "://") {
      // Any start inside [i, j) reaches the same end of the scheme run, so it fails too.
      url_fails_until_ = j;
      return false;
    }
    if (j - i > kMaxScheme) {
      url_fails_until_ = j - kMaxScheme;  // starts that far from "://" are too long as well
      return false;
    }
    const size_t body = j + 3;
    size_t k = body;
    while (k < in_.size()) {
      const unsigned char ch = in_[k];
      if (IsSpace(ch) || IsQuote(ch) || ch == '<' || ch == '>') break;
      ++k;
    }
    while (k > body && std::string_view(".,;:!?)]}").find(in_[k - 1]) != std::string_view::npos) {
      --k;
    }
    if (k == body) {
      url_fails_until_ = j;  // every start in the scheme run sees the same empty body
      return false;
    }
    end = k;
    return true;
  }

  static bool IsEmailLocal(unsigned char c) {
    return IsAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
  }

  bool MatchEmail(size_t i, size_t& end) {
    if (i < email_fails_until_) return false;
    size_t j = i;
    while (j < in_.size() && IsEmailLocal(in_[j])) ++j;
    // Any start inside [i, j) reaches the same '@' and domain, so it fails the same way.
    if (j >= in_.size() || in_[j] != '@') {
      email_fails_until_ = j;
      return false;
    }
    // Domain labels; the e-mail ends after the last label that can end it (a second or later
    // label, alphabetic, >= 2 letters, at a boundary), so "a@b.com.5" masks "a@b.com".
    size_t k = j + 1;
    int labels = 0;
    size_t best = 0;
    while (true) {
      const size_t label = k;
      while (k < in_.size() && (IsAlnum(in_[k]) || in_[k] == '-')) ++k;
      if (k == label) break;
      ++labels;
      bool alpha = k - label >= 2;
      for (size_t t = label; alpha && t < k; ++t) alpha = IsAlpha(in_[t]);
      if (labels >= 2 && alpha && AtBoundary(k)) best = k;
      if (k + 1 < in_.size() && in_[k] == '.' && IsAlnum(in_[k + 1])) {
        ++k;
        continue;
      }
      break;
    }
    if (best == 0) {
      email_fails_until_ = j;
      return false;
    }
    k = best;
    end = k;
    return true;
  }

  bool MatchUuid(size_t i, size_t& end) const {
    constexpr size_t kLen = 36;
    if (in_.size() - i < kLen) return false;
    for (size_t k = 0; k < kLen; ++k) {
      const bool dash = k == 8 || k == 13 || k == 18 || k == 23;
      if (dash ? in_[i + k] != '-' : !IsHex(in_[i + k])) return false;
    }
    if (!AtBoundary(i + kLen)) return false;
    end = i + kLen;
    return true;
  }

  // Dotted quad at `i`; sets `end` after the last octet.
  bool ScanDottedQuad(size_t i, size_t& end) const {
    size_t k = i;
    for (int octet = 0; octet < 4; ++octet) {
      if (octet > 0) {
        if (k >= in_.size() || in_[k] != '.') return false;
        ++k;
      }
      const size_t start = k;
      int value = 0;
      while (k < in_.size() && IsDigit(in_[k]) && k - start < 4)
        value = value * 10 + (in_[k++] - '0');
      if (k == start || k - start > 3 || value > 255) return false;
    }
    end = k;
    return true;
  }

  // Up to `max_digits` digits at `i` that end at a boundary; returns the end or 0.
  size_t ScanDigitsToBoundary(size_t i, size_t max_digits) const {
    size_t k = i;
    while (k < in_.size() && IsDigit(in_[k]) && k - i <= max_digits) ++k;
    if (k == i || k - i > max_digits || !AtBoundary(k)) return 0;
    return k;
  }

  bool MatchIpv4(size_t i, size_t& end) const {
    size_t k = 0;
    if (!ScanDottedQuad(i, k)) return false;
    if (k + 1 < in_.size() && in_[k] == '.' && (IsDigit(in_[k + 1]) || in_[k + 1] == '<')) {
      return false;  // 1.2.3.4.5
    }
    if (k + 1 < in_.size() && (in_[k] == ':' || in_[k] == '/')) {
      if (const size_t suffix_end = ScanDigitsToBoundary(k + 1, in_[k] == ':' ? 5 : 2)) {
        end = suffix_end;
        return true;
      }
    }
    if (!AtBoundary(k)) return false;
    end = k;
    return true;
  }

  bool MatchIpv6(size_t i, size_t& end) const {
    constexpr size_t kMaxText = 45;
    const bool bracket = in_[i] == '[';
    const size_t start = bracket ? i + 1 : i;
    size_t k = start;
    int groups = 0;
    bool double_colon = false;
    bool digit = false;
    if (k < in_.size() && in_[k] == ':') {
      if (k + 1 >= in_.size() || in_[k + 1] != ':') return false;
      double_colon = true;
      k += 2;
      if (k < in_.size() && in_[k] == '<') return false;
    }
    while (groups <= 8) {
      const size_t group = k;
      while (k < in_.size() && IsHex(in_[k]) && k - group <= 4) ++k;
      if (k == group) break;
      if (k - group > 4) return false;
      if (k < in_.size() && in_[k] == '.') {  // IPv4 tail, e.g. ::ffff:10.0.0.1
        if (!ScanDottedQuad(group, k)) return false;
        groups += 2;
        digit = true;
        break;
      }
      ++groups;
      for (size_t g = group; g < k; ++g) digit = digit || IsDigit(in_[g]);
      if (k + 1 < in_.size() && in_[k] == ':') {
        if (in_[k + 1] == '<') return false;
        if (in_[k + 1] == ':') {
          if (double_colon) return false;
          double_colon = true;
          k += 2;
          if (k < in_.size() && in_[k] == '<') return false;
          continue;
        }
        if (IsHex(in_[k + 1])) {
          ++k;
          continue;
        }
      }
      break;
    }
    if (k - start > kMaxText || !digit) return false;
    if (double_colon ? groups > 7 : groups != 8) return false;
    if (bracket) {
      if (k >= in_.size() || in_[k] != ']') return false;
      ++k;
      if (k + 1 < in_.size() && in_[k] == ':') {
        if (const size_t port_end = ScanDigitsToBoundary(k + 1, 5)) k = port_end;
      }
    } else if (!AtBoundary(k)) {
      return false;
    }
    end = k;
    return true;
  }

  bool MatchHex(size_t i, size_t& end) const {
    constexpr size_t kMinRun = 8;
    size_t k = i;
    if (in_[i] == '0' && i + 2 < in_.size() && (in_[i + 1] == 'x' || in_[i + 1] == 'X') &&
        IsHex(in_[i + 2])) {
      k = i + 2;
      while (k < in_.size() && IsHex(in_[k])) ++k;
      if (!AtBoundary(k)) return false;
      end = k;
      return true;
    }
    bool digit = false;
    bool letter = false;
    while (k < in_.size() && IsHex(in_[k])) {
      (IsDigit(in_[k]) ? digit : letter) = true;
      ++k;
    }
    if (k - i < kMinRun || !digit || !letter || !AtBoundary(k)) return false;
    end = k;
    return true;
  }

  // Digits at `i`, optionally ".digits"; returns the end.
  size_t ScanNumber(size_t i) const {
    size_t k = i;
    while (k < in_.size() && IsDigit(in_[k])) ++k;
    if (k + 1 < in_.size() && in_[k] == '.' && IsDigit(in_[k + 1])) {
      ++k;
      while (k < in_.size() && IsDigit(in_[k])) ++k;
    }
    return k;
  }

  const std::string_view in_;
  std::string& out_;
  const size_t cap_;
  const size_t base_;
  bool prev_word_ = false;     // the last thing emitted ends a word: no token starts here
  bool numeric_word_ = false;  // ...and that word started with a number
  bool pending_space_ = false;
  bool full_ = false;
  std::array<bool, 3> no_closer_ = {};  // per quote kind ', ", `
  size_t email_fails_until_ = 0;
  size_t url_fails_until_ = 0;
};

// Appends the normalized `text` to `out`, which never grows past `cap`.
void AppendNormalized(std::string_view text, size_t cap, std::string& out) {
  Normalizer(text, out, cap).Run();
}

// ---- Stack frames ----

enum class FrameFormat : uint8_t { kNone, kAt, kPython, kRuby, kGo };

struct Frame {
  std::string_view function;
  std::string_view file;
  bool app = false;
};

bool StartsWithAny(std::string_view s, std::initializer_list<std::string_view> prefixes) {
  for (const std::string_view p : prefixes) {
    if (s.starts_with(p)) return true;
  }
  return false;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return IsDigit(c); });
}

// "x.js:10:5" -> "x.js", "Y.java:42" -> "Y.java".
std::string_view StripLineColumn(std::string_view loc) {
  for (int i = 0; i < 2; ++i) {
    const size_t colon = loc.rfind(':');
    if (colon == std::string_view::npos || !AllDigits(loc.substr(colon + 1))) break;
    loc = loc.substr(0, colon);
  }
  return loc;
}

// Position of the '(' matching the ')' that ends `s`, or npos.
size_t MatchingOpenParen(std::string_view s) {
  int depth = 0;
  for (size_t j = s.size(); j-- > 0;) {
    if (s[j] == ')') ++depth;
    if (s[j] == '(' && --depth == 0) return j;
  }
  return std::string_view::npos;
}

// Java, .NET and Node: "at ...".
bool ParseAtFrame(std::string_view line, Frame& frame) {
  if (!line.starts_with("at ")) return false;
  const std::string_view rest = Trim(line.substr(3));
  if (rest.empty()) return false;
  frame = Frame{};
  if (const size_t in = rest.find(") in "); in != std::string_view::npos) {  // .NET with file
    frame.function = rest.substr(0, in + 1);
    frame.file = rest.substr(in + 5);
    if (const size_t line_pos = frame.file.rfind(":line ");
        line_pos != std::string_view::npos && AllDigits(frame.file.substr(line_pos + 6))) {
      frame.file = frame.file.substr(0, line_pos);
    }
  } else if (rest.back() == ')' && MatchingOpenParen(rest) != std::string_view::npos) {
    const size_t open = MatchingOpenParen(rest);
    const std::string_view inner = rest.substr(open + 1, rest.size() - open - 2);
    if (open > 0 && rest[open - 1] == ' ') {  // Node: "fn (file:line:col)"
      frame.function = Trim(rest.substr(0, open));
      frame.file = StripLineColumn(inner);
    } else {  // Java "pkg.Class.method(File.java:42)", .NET "Ns.C.M(String s)"
      frame.function = rest.substr(0, open);
      // Java 9+ module prefix: "java.base/java.lang.Thread.run", "app//com.x.Y.m".
      if (const size_t slash = frame.function.rfind('/'); slash != std::string_view::npos) {
        frame.function = frame.function.substr(slash + 1);
      }
      frame.file = StripLineColumn(inner);
    }
  } else {  // Node: "at /app/x.js:10:5"
    frame.file = StripLineColumn(rest);
  }
  const bool library_function = StartsWithAny(
      frame.function, {"java.", "javax.", "jakarta.", "jdk.", "sun.", "com.sun.", "kotlin.",
                       "kotlinx.", "scala.", "org.springframework.", "org.apache.", "io.netty.",
                       "io.grpc.", "reactor.", "okhttp3.", "System.", "Microsoft."});
  const bool library_file =
      StartsWithAny(frame.file, {"node:", "internal/", "<anonymous>", "index "}) ||
      Contains(frame.file, "node_modules");
  frame.app = !library_function && !library_file;
  return true;
}

// Python: File "app.py", line 12, in handler
bool ParsePythonFrame(std::string_view line, Frame& frame) {
  if (!line.starts_with("File \"")) return false;
  const size_t quote = line.find('"', 6);
  if (quote == std::string_view::npos) return false;
  std::string_view rest = line.substr(quote + 1);
  if (!rest.starts_with(", line ")) return false;
  frame = Frame{};
  frame.file = line.substr(6, quote - 6);
  if (const size_t in = rest.find(", in "); in != std::string_view::npos) {
    frame.function = Trim(rest.substr(in + 5));
  }
  frame.app = !(Contains(frame.file, "site-packages") || Contains(frame.file, "dist-packages") ||
                Contains(frame.file, "/lib/python") || frame.file.starts_with("<"));
  return true;
}

// Ruby: app.rb:12:in 'handler' (or `handler'), optionally after "from ".
bool ParseRubyFrame(std::string_view line, Frame& frame) {
  if (line.starts_with("from ")) line = Trim(line.substr(5));
  const size_t in = line.find(":in ");
  if (in == std::string_view::npos || in + 4 >= line.size()) return false;
  const std::string_view location = line.substr(0, in);
  const size_t colon = location.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || !AllDigits(location.substr(colon + 1))) {
    return false;
  }
  const char open = line[in + 4];
  if (open != '`' && open != '\'') return false;
  const std::string_view name = line.substr(in + 5);
  const size_t close = name.find('\'');
  if (close == std::string_view::npos) return false;
  frame = Frame{};
  frame.file = location.substr(0, colon);
  frame.function = name.substr(0, close);
  frame.app = !(Contains(frame.file, "/gems/") || Contains(frame.file, "/lib/ruby/") ||
                frame.file.starts_with("<internal:"));
  return true;
}

// Go: a function line followed by an indented "\t/app/x.go:42 +0x1d".
bool ParseGoFrame(std::string_view raw_line, std::string_view line, std::string_view previous,
                  Frame& frame) {
  if (raw_line.empty() || (raw_line.front() != '\t' && raw_line.front() != ' ')) return false;
  const size_t go = line.find(".go:");
  if (go == std::string_view::npos || go == 0) return false;
  std::string_view line_number = line.substr(go + 4);
  line_number = line_number.substr(0, line_number.find(' '));
  if (!AllDigits(line_number) || previous.empty() || previous.starts_with("goroutine ")) {
    return false;
  }
  frame = Frame{};
  frame.file = line.substr(0, go + 3);
  std::string_view function = previous;
  if (function.starts_with("created by ")) {
    function.remove_prefix(11);
    function = function.substr(0, function.find(" in goroutine "));
  }
  if (!function.empty() && function.back() == ')') {
    if (const size_t open = MatchingOpenParen(function); open != std::string_view::npos) {
      function = function.substr(0, open);
    }
  }
  frame.function = function;
  frame.app =
      !(StartsWithAny(function, {"runtime.", "runtime/", "testing."}) || function == "panic" ||
        Contains(frame.file, "/src/runtime/") || Contains(frame.file, "/pkg/mod/") ||
        Contains(frame.file, "/usr/local/go/") || Contains(frame.file, "/usr/lib/go"));
  return true;
}

FrameFormat ParseFrame(std::string_view raw_line, std::string_view line, std::string_view previous,
                       Frame& frame) {
  if (ParsePythonFrame(line, frame)) return FrameFormat::kPython;
  if (ParseAtFrame(line, frame)) return FrameFormat::kAt;
  if (ParseRubyFrame(line, frame)) return FrameFormat::kRuby;
  if (ParseGoFrame(raw_line, line, previous, frame)) return FrameFormat::kGo;
  return FrameFormat::kNone;
}

// ---- Hashing ----

class Fnv1a64 {
 public:
  void Byte(uint8_t b) {
    hash_ ^= b;
    hash_ *= 0x100000001b3ULL;
  }
  void U32(uint32_t v) {
    for (int i = 0; i < 4; ++i) Byte(static_cast<uint8_t>(v >> (8 * i)));
  }
  void Field(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    for (const char c : s) Byte(static_cast<uint8_t>(c));
  }
  uint64_t hash() const { return hash_; }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ULL;
};

std::string_view ArenaStr(std::string_view strings, StrRef ref) {
  if (ref.offset > strings.size()) return {};
  return strings.substr(ref.offset, ref.size);
}

}  // namespace

std::string_view NormalizeMessage(std::string_view message, std::string& out) {
  out.clear();
  out.reserve(kMaxNormalizedMessageBytes);
  AppendNormalized(CutAtCharBoundary(message, kMaxSignatureMessageScanBytes),
                   kMaxNormalizedMessageBytes, out);
  return out;
}

std::string_view TopFrame(std::string_view stacktrace, std::string& out) {
  out.clear();
  out.reserve(kMaxTopFrameBytes);
  const std::string_view text = CutAtCharBoundary(stacktrace, kMaxStacktraceScanBytes);

  FrameFormat format = FrameFormat::kNone;
  Frame first;   // the top frame of the decided format (fallback)
  Frame chosen;  // the application frame
  bool have_chosen = false;
  std::string_view first_line;
  std::string_view previous;
  size_t pos = 0;
  while (pos < text.size() && !(have_chosen && format != FrameFormat::kPython)) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string_view raw_line = text.substr(pos, eol - pos);
    pos = eol + 1;
    const std::string_view line = Trim(raw_line);
    if (line.empty()) continue;
    if (first_line.empty()) first_line = line;
    Frame frame;
    const FrameFormat line_format = ParseFrame(raw_line, line, previous, frame);
    previous = line;
    if (line_format == FrameFormat::kNone) continue;
    if (format == FrameFormat::kNone) {
      format = line_format;
      first = frame;
    } else if (line_format != format) {
      continue;
    }
    if (format == FrameFormat::kPython) {
      first = frame;  // most recent call last: the fallback is the last frame
    }
    if (frame.app) {
      chosen = frame;
      have_chosen = true;
    }
  }

  if (format == FrameFormat::kNone) {
    AppendNormalized(first_line, kMaxTopFrameBytes, out);
    return out;
  }
  const Frame& frame = have_chosen ? chosen : first;
  AppendNormalized(frame.function, kMaxTopFrameBytes, out);
  if (!frame.file.empty()) {
    const size_t before = out.size();
    const bool with_function = before > 0;
    if (with_function) {
      if (before + 3 > kMaxTopFrameBytes) return out;  // no room for " (x)"
      out.append(" (");
    }
    const size_t file_start = out.size();
    AppendNormalized(frame.file, kMaxTopFrameBytes - (with_function ? 1 : 0), out);
    if (with_function) {
      if (out.size() == file_start) {
        out.resize(before);  // nothing of the file fitted: drop the " ("
      } else {
        out.push_back(')');
      }
    }
  }
  return out;
}

ErrorSignature ComputeSignature(const SignatureInput& input) {
  Fnv1a64 h;
  h.Byte(0x01);
  h.Field(input.service);
  h.Field(input.operation);
  h.Field(input.exception_type);
  h.Field(input.message);
  h.Field(input.top_frame);
  h.U32(static_cast<uint32_t>(input.http_status));
  h.U32(static_cast<uint32_t>(input.rpc_status));
  return ErrorSignature{h.hash()};
}

ErrorSignature SignatureOfSpan(const Span& span, std::string_view strings,
                               SignatureScratch& scratch) {
  std::string_view message = ArenaStr(strings, span.exception_message);
  if (message.empty()) message = ArenaStr(strings, span.status_message);
  SignatureInput input;
  input.service = ArenaStr(strings, span.service);
  input.operation = ArenaStr(strings, span.name);
  input.exception_type = ArenaStr(strings, span.exception_type);
  input.message = NormalizeMessage(message, scratch.message);
  input.top_frame = TopFrame(ArenaStr(strings, span.exception_stacktrace), scratch.frame);
  input.http_status = span.http_status;
  input.rpc_status = span.rpc_status;
  return ComputeSignature(input);
}

std::array<char, kSignatureIdHexChars> FormatSignatureId(uint64_t id) {
  constexpr std::string_view kDigits = "0123456789abcdef";
  std::array<char, kSignatureIdHexChars> hex{};
  for (size_t i = 0; i < kSignatureIdHexChars; ++i) {
    hex[i] = kDigits[(id >> (4 * (kSignatureIdHexChars - 1 - i))) & 0xF];
  }
  return hex;
}

std::string SignatureIdHex(uint64_t id) {
  const std::array<char, kSignatureIdHexChars> hex = FormatSignatureId(id);
  return std::string(hex.data(), hex.size());
}

std::optional<uint64_t> ParseSignatureId(std::string_view hex) {
  if (hex.size() != kSignatureIdHexChars) return std::nullopt;
  uint64_t id = 0;
  for (const char c : hex) {
    uint64_t nibble = 0;
    if (IsDigit(c)) {
      nibble = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      nibble = static_cast<uint64_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      nibble = static_cast<uint64_t>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
    id = id << 4 | nibble;
  }
  return id;
}

}  // namespace traceslo::pipeline
