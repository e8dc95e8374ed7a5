#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace traceslo::ingest {

// Checks `Authorization: Bearer <token>` against a set of tokens (several, for rotation).
// Tokens are kept only as SHA-256 digests and compared in constant time (every token is
// compared, lengths do not leak). Empty set: everything is allowed. Immutable, thread-safe.
class BearerAuth {
 public:
  explicit BearerAuth(const std::vector<std::string>& tokens);
  bool enabled() const { return !digests_.empty(); }
  // `authorization` is the raw header value ("Bearer abc"); the scheme is case-insensitive.
  bool Allows(std::string_view authorization) const;

 private:
  std::vector<std::array<unsigned char, 32>> digests_;
};

}  // namespace traceslo::ingest
