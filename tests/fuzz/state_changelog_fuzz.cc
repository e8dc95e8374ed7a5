// StateChangelogReader and Stage2Partition::OpenRestored on arbitrary records: a traceslo_state
// partition read by an instance taking a partition over. The input is a sequence of records,
// each a 2-byte little-endian key length, the key, a 2-byte value length and the value (a length
// past the end takes what is left). Outbox records are folded too (the notifications handed
// over).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "traceslo/kafka/stage2.h"
#include "traceslo/pipeline/series_registry.h"
#include "traceslo/pipeline/sli_store.h"

namespace {

class NullSink final : public traceslo::pipeline::DeltaSink {
 public:
  void Apply(traceslo::pipeline::ShardDelta) override {}
};

std::string_view Take(std::string_view& in) {
  if (in.size() < 2) {
    in = {};
    return {};
  }
  const size_t n =
      static_cast<uint8_t>(in[0]) | (static_cast<size_t>(static_cast<uint8_t>(in[1])) << 8);
  in.remove_prefix(2);
  const std::string_view out = in.substr(0, n);
  in.remove_prefix(out.size());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  traceslo::kafka::StateChangelogReader reader(
      0, {.max_record_bytes = 1 << 16, .max_keys = 1'000, .max_outbox = 100});
  while (!in.empty()) {
    const std::string_view key = Take(in);
    const std::string_view value = Take(in);
    reader.Add(key, value);
  }
  // Handed-over notifications are as the reader promises: named, and within the limits.
  const std::vector<traceslo::kafka::OutboxItem> outbox = reader.outbox();
  if (outbox.size() > 100) std::abort();
  for (const traceslo::kafka::OutboxItem& item : outbox) {
    if (item.receiver.empty() || item.id.empty() || item.notification.empty() ||
        item.receiver.size() > traceslo::kafka::kMaxOutboxIdBytes ||
        item.id.size() > traceslo::kafka::kMaxOutboxIdBytes) {
      std::abort();
    }
  }
  if (!reader.has_checkpoint()) return 0;
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("traceslo_state_changelog_fuzz_" + std::to_string(::getpid()));
  traceslo::kafka::Stage2Options options;
  options.source_partitions = 4;
  options.config_hashes = {1};
  options.changelog = true;
  traceslo::pipeline::SeriesRegistry registry(50, 50);
  NullSink sink;
  {
    auto opened = traceslo::kafka::Stage2Partition::OpenRestored(dir.string(), options, reader,
                                                                 registry, sink);
    if (opened.ok()) (void)(*opened)->Snapshot();
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
  return 0;
}
