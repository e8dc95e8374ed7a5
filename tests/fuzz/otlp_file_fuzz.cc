// Fuzzes the framing of recorded OTLP files (OtlpFileReader: JSON lines and length-prefixed
// protobuf; the records themselves go to the decoders otlp_json_fuzz and otlp_proto_fuzz cover).
// Besides not crashing or hanging, it checks that what is read does not depend on how the input
// arrives: one byte per read() gives the same records, numbers, errors and spans as one read.
// The first input byte picks the format and a small max_line_bytes, so the limit paths run too.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "traceslo/ingest/otlp_file.h"

namespace {

using traceslo::SpanBatch;
using traceslo::ingest::OtlpFileFormat;
using traceslo::ingest::OtlpFileOptions;
using traceslo::ingest::OtlpFileReader;
using traceslo::ingest::OtlpRecord;

struct Seen {
  OtlpRecord::Kind kind;
  uint64_t number;
  std::string error;
  size_t spans;
  bool operator==(const Seen& o) const {
    return kind == o.kind && number == o.number && error == o.error && spans == o.spans;
  }
};

std::vector<Seen> ReadAll(const std::string& path, OtlpFileOptions options, size_t size) {
  std::vector<Seen> seen;
  auto reader = OtlpFileReader::Open(path, options);
  if (!reader.ok()) __builtin_trap();
  SpanBatch batch;
  uint64_t last_number = 0;
  while (true) {
    OtlpRecord record = (*reader)->Next(batch);
    // Every record consumes at least one byte: a bounded number of calls reaches the end.
    if (seen.size() > size + 1) __builtin_trap();
    if (record.kind != OtlpRecord::Kind::kEnd && record.number <= last_number) __builtin_trap();
    last_number = record.number;
    if (record.kind != OtlpRecord::Kind::kRequest && !batch.spans.empty()) __builtin_trap();
    if ((record.kind == OtlpRecord::Kind::kBad || record.kind == OtlpRecord::Kind::kFailed) &&
        record.error.rfind(path, 0) != 0) {
      __builtin_trap();  // every error names the file
    }
    seen.push_back(Seen{record.kind, record.number, record.error, batch.spans.size()});
    if (record.kind == OtlpRecord::Kind::kEnd || record.kind == OtlpRecord::Kind::kFailed) break;
  }
  if ((*reader)->bytes_read() > size) __builtin_trap();
  return seen;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t control = data[0];
  const int fd = memfd_create("otlp_file_fuzz", 0);
  if (fd < 0) return 0;
  if (size > 1 && write(fd, data + 1, size - 1) != static_cast<ssize_t>(size - 1)) {
    close(fd);
    return 0;
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  OtlpFileOptions options;
  options.format =
      (control & 1) != 0 ? OtlpFileFormat::kLengthPrefixedProtobuf : OtlpFileFormat::kJsonLines;
  options.max_line_bytes = (control & 2) != 0 ? 64 : 4096;
  options.max_spans_per_request = (control & 4) != 0 ? 2 : 1000;
  options.read_chunk_bytes = 1;
  const std::vector<Seen> bytewise = ReadAll(path, options, size - 1);
  options.read_chunk_bytes = 1 << 16;
  const std::vector<Seen> whole = ReadAll(path, options, size - 1);
  close(fd);
  if (bytewise != whole) __builtin_trap();
  return 0;
}
