// Feeds arbitrary bytes to the error-signature normalizers, as a message and as a stack trace.
// Invariants (a violation traps): outputs stay within their caps; outputs don't depend on what
// the scratch strings held before; NormalizeMessage is idempotent on output that was not cut at
// the cap; a signature is a pure function of its input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "traceslo/pipeline/error_signature.h"

namespace {

namespace sig = traceslo::pipeline;

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

// A cut can only happen when the next token (at most a placeholder or a UTF-8 character, plus
// a space) did not fit.
constexpr size_t kLongestToken = 8;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  std::string message = "stale scratch";
  const std::string_view normalized = sig::NormalizeMessage(in, message);
  Check(normalized.data() == message.data() && normalized.size() == message.size());
  Check(message.size() <= sig::kMaxNormalizedMessageBytes);
  Check(message.empty() || (message.front() != ' ' && message.back() != ' '));
  if (message.size() + kLongestToken < sig::kMaxNormalizedMessageBytes) {
    std::string again;
    sig::NormalizeMessage(message, again);
    Check(again == message);
  }

  std::string frame = "stale scratch";
  sig::TopFrame(in, frame);
  Check(frame.size() <= sig::kMaxTopFrameBytes);
  std::string frame_again;
  sig::TopFrame(in, frame_again);
  Check(frame_again == frame);

  // Split the input in two for the remaining fields.
  const std::string_view first = in.substr(0, size / 2);
  const std::string_view second = in.substr(size / 2);
  const sig::SignatureInput input{.service = first,
                                  .operation = second,
                                  .exception_type = first,
                                  .message = message,
                                  .top_frame = frame,
                                  .http_status = static_cast<int32_t>(size),
                                  .rpc_status = -1};
  const sig::ErrorSignature a = sig::ComputeSignature(input);
  Check(sig::ComputeSignature(input) == a);
  Check(sig::ParseSignatureId(sig::SignatureIdHex(a.id)) == a.id);
  return 0;
}
