#pragma once

// Recorded OTLP traces in files, for `traceslo replay`: the same decoders and limits as the
// receivers, behind a public API (generated protobuf types and the decoders stay private to
// services/ingest). Two framings, both as the OpenTelemetry Collector's file exporter writes
// them:
//   - JSON lines (`format: json`): one OTLP/JSON ExportTraceServiceRequest (or TracesData, the
//     same shape) per line;
//   - length-prefixed protobuf (`format: proto`): each request as protobuf, preceded by its
//     length as a 4-byte big-endian unsigned integer.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "traceslo/common/span.h"

namespace traceslo::ingest {

enum class OtlpFileFormat { kJsonLines, kLengthPrefixedProtobuf };

// A line (or protobuf record) longer than this is refused: the JSON parser needs about 14 bytes
// of memory per byte of the line it parses.
inline constexpr size_t kDefaultMaxLineBytes = size_t{64} << 20;

struct OtlpFileOptions {
  OtlpFileFormat format = OtlpFileFormat::kJsonLines;
  size_t max_line_bytes = kDefaultMaxLineBytes;  // > 0; protobuf records too
  // Per request, as the receivers' otlp.max_spans_per_request (the other decode limits are the
  // receivers' defaults).
  uint32_t max_spans_per_request = 1'000'000;
  size_t read_chunk_bytes = size_t{1} << 20;  // > 0; small values are for tests
};

// What decoding one record did to the spans it holds (the record as a whole was valid).
struct RecordSpans {
  uint32_t accepted = 0;
  uint32_t rejected = 0;        // refused one by one: invalid ids, end before start
  std::string first_rejection;  // the first refusal's message
};

// Decodes one record (a JSON line without its line break, or one protobuf message without its
// length prefix) and appends its valid spans to `out`. InvalidArgument, saying where, when the
// record is not a trace export request or breaks a limit; `out` is then left as it was. A JSON
// line that decodes to no span and has no resourceSpans at all is refused too (a metrics or logs
// export, most likely). Pure; never throws.
absl::Status DecodeOtlpRecord(OtlpFileFormat format, std::string_view record,
                              uint32_t max_spans_per_request, SpanBatch& out, RecordSpans& spans);

class ResourceCache;

// DecodeOtlpRecord for a stream of records of one format, with the same results byte for byte,
// remembering what it found in the last resources it parsed (by their exact bytes; at most 128
// of at most 2 KiB each): records that repeat their resource (the Collector's Kafka exporter
// writes one record per trace, each with a copy of its resource) skip parsing it again. Protobuf
// records only; JSON lines decode as DecodeOtlpRecord does. Owned by one thread.
class OtlpRecordDecoder {
 public:
  OtlpRecordDecoder(OtlpFileFormat format, uint32_t max_spans_per_request);
  ~OtlpRecordDecoder();
  OtlpRecordDecoder(const OtlpRecordDecoder&) = delete;
  OtlpRecordDecoder& operator=(const OtlpRecordDecoder&) = delete;

  // As DecodeOtlpRecord(format, record, max_spans_per_request, out, spans).
  absl::Status Decode(std::string_view record, SpanBatch& out, RecordSpans& spans);

 private:
  const OtlpFileFormat format_;
  const uint32_t max_spans_per_request_;
  std::unique_ptr<ResourceCache> resources_;  // protobuf only
};

// The outcome of OtlpFileReader::Next.
struct OtlpRecord {
  enum class Kind {
    kRequest,  // a request: its valid spans are in the batch (possibly none)
    kBad,      // a line or record that is not a valid request; reading goes on after it
    kEnd,      // the end of the input
    kFailed,   // reading cannot go on: a read error, or protobuf framing that is lost
  };
  Kind kind = Kind::kEnd;
  uint64_t number = 0;  // 1-based line number (JSON lines) or record number (protobuf)
  // kBad and kFailed: "FILE:LINE: message" (JSON lines) or "FILE: record N at byte B: message".
  std::string error;
  RecordSpans spans;  // kRequest
};

// Streams the records of one file: memory stays within max_line_bytes plus one read chunk,
// however large the file. Blank lines (and a UTF-8 byte order mark) are skipped; a last line
// without a line break counts; CRLF line ends are accepted. Owned by one thread.
class OtlpFileReader {
 public:
  // Opens `path` ("-": standard input). NotFound / PermissionDenied / InvalidArgument (a
  // directory) with the path in the message.
  static absl::StatusOr<std::unique_ptr<OtlpFileReader>> Open(const std::string& path,
                                                              const OtlpFileOptions& options);
  ~OtlpFileReader();
  OtlpFileReader(const OtlpFileReader&) = delete;
  OtlpFileReader& operator=(const OtlpFileReader&) = delete;

  // The next record. `out` is cleared first; on kRequest it holds the request's valid spans.
  // After kEnd or kFailed, every call returns kEnd.
  OtlpRecord Next(SpanBatch& out);

  const std::string& name() const { return name_; }  // the path, or "-"
  uint64_t bytes_read() const { return bytes_read_; }
  // Regular files: the size when opened (for progress); nullopt for pipes and terminals.
  std::optional<uint64_t> size_bytes() const { return size_bytes_; }

 private:
  OtlpFileReader(int fd, bool owned, std::string name, const OtlpFileOptions& options,
                 std::optional<uint64_t> size_bytes);
  // Reads one more chunk into buffer_; false at the end of the input or on a read error
  // (read_error_ set).
  bool Fill();
  OtlpRecord NextLine(SpanBatch& out);
  OtlpRecord NextProtobuf(SpanBatch& out);
  OtlpRecord Decoded(std::string_view record, uint64_t number, std::string location,
                     SpanBatch& out);

  const int fd_;
  const bool owned_;
  const std::string name_;
  const OtlpFileOptions options_;
  const std::optional<uint64_t> size_bytes_;
  std::string buffer_;  // unconsumed input is buffer_[pos_, end)
  size_t pos_ = 0;
  bool eof_ = false;
  bool done_ = false;
  std::string read_error_;
  uint64_t bytes_read_ = 0;
  uint64_t consumed_ = 0;  // input bytes before buffer_[pos_]
  uint64_t number_ = 0;    // lines or records started so far
};

}  // namespace traceslo::ingest
