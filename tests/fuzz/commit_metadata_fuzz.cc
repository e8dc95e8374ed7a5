// Stage1Consumer::ParseCommitMetadata on arbitrary bytes: the metadata of a committed offset of
// otlp_spans, written by any member of the group (any version). What parses formats back to the
// same fields.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "traceslo/kafka/stage1_consumer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using traceslo::kafka::Stage1Consumer;
  const auto parsed = Stage1Consumer::ParseCommitMetadata(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!parsed.ok()) return 0;
  const auto again =
      Stage1Consumer::ParseCommitMetadata(Stage1Consumer::FormatCommitMetadata(*parsed));
  if (!again.ok() || !(*again == *parsed)) std::abort();
  return 0;
}
