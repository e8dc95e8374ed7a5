#include "traceslo/alerting/notification.h"

#include <openssl/sha.h>

#include <cstdio>

#include "traceslo/alerting/outbox.h"

namespace traceslo::alerting {
namespace {

constexpr uint64_t kFnvOffset = 14695981039346656037ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;
constexpr unsigned char kSeparator = 0xff;  // Prometheus' model.SeparatorByte

uint64_t FnvAdd(uint64_t hash, std::string_view bytes) {
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= kFnvPrime;
  }
  return hash;
}

uint64_t FnvAddByte(uint64_t hash, unsigned char c) {
  hash ^= c;
  hash *= kFnvPrime;
  return hash;
}

}  // namespace

std::string Fingerprint(const Labels& labels) {
  uint64_t hash = kFnvOffset;
  for (const auto& [name, value] : labels) {  // std::map: sorted by name, as Prometheus sorts
    hash = FnvAddByte(FnvAdd(hash, name), kSeparator);
    hash = FnvAddByte(FnvAdd(hash, value), kSeparator);
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash));
  return buf;
}

namespace {

std::string IdOf(const std::string& input) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

std::string IdInput(std::string_view instance, std::string_view receiver,
                    std::string_view group_key, uint64_t sequence) {
  std::string input(instance);
  input += '\0';
  input += receiver;
  input += '\0';
  input += group_key;
  input += '\0';
  input += std::to_string(sequence);
  return input;
}

}  // namespace

std::string NotificationId(std::string_view instance, std::string_view receiver,
                           std::string_view group_key, uint64_t sequence) {
  return IdOf(IdInput(instance, receiver, group_key, sequence));
}

std::string NotificationId(std::string_view instance, std::string_view receiver,
                           std::string_view group_key, uint64_t sequence, int64_t episode,
                           bool firing) {
  return IdOf(IdInput(instance, receiver, group_key, sequence) + '\0' + std::to_string(episode) +
              '\0' + (firing ? "firing" : "resolved"));
}

std::string_view OutcomeName(DeliveryRecord::Outcome outcome) {
  switch (outcome) {
    case DeliveryRecord::Outcome::kDelivered:
      return "delivered";
    case DeliveryRecord::Outcome::kRetryable:
      return "retryable";
    case DeliveryRecord::Outcome::kFailed:
      return "failed";
    case DeliveryRecord::Outcome::kExpired:
      return "expired";
    case DeliveryRecord::Outcome::kSuperseded:
      return "superseded";
  }
  return "failed";
}

}  // namespace traceslo::alerting
