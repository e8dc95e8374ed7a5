#include "services/ingest/bearer_auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cctype>

namespace traceslo::ingest {
namespace {

std::array<unsigned char, 32> Digest(std::string_view s) {
  std::array<unsigned char, 32> out{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), out.data());
  return out;
}

}  // namespace

BearerAuth::BearerAuth(const std::vector<std::string>& tokens) {
  for (const auto& token : tokens) {
    if (!token.empty()) digests_.push_back(Digest(token));
  }
}

bool BearerAuth::Allows(std::string_view authorization) const {
  if (digests_.empty()) return true;
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return false;
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  auto digest = Digest(token);
  int matches = 0;
  for (const auto& d : digests_) matches |= CRYPTO_memcmp(d.data(), digest.data(), d.size()) == 0;
  return matches != 0;
}

}  // namespace traceslo::ingest
