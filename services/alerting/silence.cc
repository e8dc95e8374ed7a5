#include "traceslo/alerting/silence.h"

#include <string>
#include <vector>

namespace traceslo::alerting {
namespace {

bool IsLabelName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !(digit && i > 0)) return false;
  }
  return true;
}

// A name as the message shows it: quoted, cut after 64 bytes.
std::string Quoted(std::string_view s) {
  constexpr size_t kShown = 64;
  std::string out = "\"";
  out += s.substr(0, kShown);
  if (s.size() > kShown) out += "...";
  out += '"';
  return out;
}

}  // namespace

absl::Status ValidateSilence(const Silence& silence) {
  std::vector<std::string> problems;
  if (silence.matchers.empty()) {
    problems.push_back("a silence needs at least one matcher");
  } else if (silence.matchers.size() > kMaxSilenceMatchers) {
    problems.push_back("a silence has at most " + std::to_string(kMaxSilenceMatchers) +
                       " matchers, this one has " + std::to_string(silence.matchers.size()));
  }
  for (size_t i = 0; i < silence.matchers.size() && i < kMaxSilenceMatchers; ++i) {
    const SilenceMatcher& m = silence.matchers[i];
    const std::string where = "matcher " + std::to_string(i + 1);
    if (!IsLabelName(m.name)) {
      problems.push_back(where + ": label name " + Quoted(m.name) +
                         " is not valid ([A-Za-z_][A-Za-z0-9_]*)");
    }
    if (m.value.size() > kMaxSilenceTextBytes) {
      problems.push_back(where + " (" + Quoted(m.name) + "): value is " +
                         std::to_string(m.value.size()) + " bytes, at most " +
                         std::to_string(kMaxSilenceTextBytes));
    }
  }
  if (silence.starts_at_unix_nano < 0) problems.push_back("starts_at must not be negative");
  if (silence.ends_at_unix_nano <= silence.starts_at_unix_nano) {
    problems.push_back("ends_at (" + std::to_string(silence.ends_at_unix_nano) +
                       ") must be after starts_at (" + std::to_string(silence.starts_at_unix_nano) +
                       ")");
  }
  if (silence.created_by.size() > kMaxSilenceTextBytes) {
    problems.push_back("created_by is " + std::to_string(silence.created_by.size()) +
                       " bytes, at most " + std::to_string(kMaxSilenceTextBytes));
  }
  if (silence.comment.size() > kMaxSilenceTextBytes) {
    problems.push_back("comment is " + std::to_string(silence.comment.size()) + " bytes, at most " +
                       std::to_string(kMaxSilenceTextBytes));
  }
  if (problems.empty()) return absl::OkStatus();
  std::string message;
  for (const std::string& problem : problems) {
    if (!message.empty()) message += "; ";
    message += problem;
  }
  return absl::InvalidArgumentError(message);
}

bool SilenceMatches(const Silence& silence, const Labels& labels) {
  for (const SilenceMatcher& m : silence.matchers) {
    auto it = labels.find(m.name);
    const std::string_view value = it == labels.end() ? std::string_view() : it->second;
    if ((value == m.value) != m.equal) return false;
  }
  return true;
}

std::string_view SilenceStateName(SilenceState state) {
  switch (state) {
    case SilenceState::kPending:
      return "pending";
    case SilenceState::kActive:
      return "active";
    case SilenceState::kExpired:
      return "expired";
  }
  return "expired";
}

SilenceState SilenceStateAt(const Silence& silence, int64_t now_unix_nano) {
  if (now_unix_nano < silence.starts_at_unix_nano) return SilenceState::kPending;
  if (now_unix_nano < silence.ends_at_unix_nano) return SilenceState::kActive;
  return SilenceState::kExpired;
}

bool ExpireSilenceAt(Silence& silence, int64_t at_unix_nano) {
  if (silence.ends_at_unix_nano <= at_unix_nano) return false;
  silence.ends_at_unix_nano = at_unix_nano;
  if (silence.starts_at_unix_nano > at_unix_nano) silence.starts_at_unix_nano = at_unix_nano;
  return true;
}

std::string NewSilenceId(std::mt19937_64& random) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  id.reserve(32);
  for (int word = 0; word < 2; ++word) {
    uint64_t bits = random();
    for (int i = 0; i < 16; ++i) {
      id += kHex[bits >> 60];
      bits <<= 4;
    }
  }
  return id;
}

}  // namespace traceslo::alerting
