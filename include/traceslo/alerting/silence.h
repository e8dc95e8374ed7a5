#pragma once

// Silences: label matchers and a time window during which the alert router sends nothing for the
// alerts they match (Alertmanager's silences). Plain values, their validation and matching, and
// the seam where they are kept (SilenceStore).

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "traceslo/alerting/notification.h"

namespace traceslo::alerting {

// One condition on one label: `=` (equal) or `!=`. An absent label has the value "", as in
// Alertmanager, so {team!="db"} matches alerts without a team label.
struct SilenceMatcher {
  std::string name;
  std::string value;
  bool equal = true;  // true: `=`, false: `!=`
  bool operator==(const SilenceMatcher&) const = default;
};

struct Silence {
  std::string id;  // 32 hex digits, assigned by AlertRouter::AddSilence
  std::vector<SilenceMatcher> matchers;
  int64_t starts_at_unix_nano = 0;
  int64_t ends_at_unix_nano = 0;  // exclusive: active while starts_at <= now < ends_at
  std::string created_by;
  std::string comment;
  int64_t created_at_unix_nano = 0;  // assigned by AlertRouter::AddSilence
  bool operator==(const Silence&) const = default;
};

inline constexpr size_t kMaxSilenceMatchers = 32;
inline constexpr size_t kMaxSilenceTextBytes = 1024;  // a matcher value, created_by, comment

// OK, or InvalidArgument naming every bad field ("matcher 2: label name \"1x\" is not valid
// ([A-Za-z_][A-Za-z0-9_]*); ends_at must be after starts_at"): at least one and at most
// kMaxSilenceMatchers matchers, label names [A-Za-z_][A-Za-z0-9_]*, values, created_by and comment
// at most kMaxSilenceTextBytes bytes, starts_at not negative, ends_at > starts_at. `id` and
// `created_at_unix_nano` are not checked (the router assigns them). For silences from users (the
// HTTP API passes its JSON through it); AlertRouter::AddSilence calls it too.
absl::Status ValidateSilence(const Silence& silence);

// Whether every matcher of `silence` holds for `labels` (whatever the time).
bool SilenceMatches(const Silence& silence, const Labels& labels);

enum class SilenceState { kPending, kActive, kExpired };
std::string_view SilenceStateName(SilenceState state);  // "pending", "active", "expired"
// kPending before starts_at, kActive in [starts_at, ends_at), kExpired from ends_at.
SilenceState SilenceStateAt(const Silence& silence, int64_t now_unix_nano);

// Ends `silence` at `at_unix_nano` unless it ended already: ends_at = at and, for a silence not
// started yet, starts_at = at too (Alertmanager's expire). Returns whether it changed.
bool ExpireSilenceAt(Silence& silence, int64_t at_unix_nano);

// A new silence id: 32 hex digits (128 bits) drawn from `random`.
std::string NewSilenceId(std::mt19937_64& random);

// Where silences survive a restart. Thread-safe. Errors are Unavailable (the storage failed;
// nothing was changed), DataLoss for a stored silence that does not decode, NotFound as stated.
class SilenceStore {
 public:
  virtual ~SilenceStore() = default;
  // Every stored silence, expired ones too, in any order.
  virtual absl::StatusOr<std::vector<Silence>> Load() = 0;
  // Inserts or replaces the silence with `silence.id`; committed when OK.
  virtual absl::Status Save(const Silence& silence) = 0;
  // ExpireSilenceAt() on the stored silence `id`; OK when it had ended already, NotFound when
  // there is no silence `id`.
  virtual absl::Status Expire(const std::string& id, int64_t at_unix_nano) = 0;
  // Deletes the silences that ended before `ended_before_unix_nano`; how many went.
  virtual absl::StatusOr<uint64_t> Prune(int64_t ended_before_unix_nano) = 0;
};

}  // namespace traceslo::alerting
