#include "traceslo/ingest/otlp_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "services/ingest/otlp_decode.h"
#include "services/ingest/span_builder.h"

namespace traceslo::ingest {
namespace {

constexpr std::string_view kByteOrderMark = "\xEF\xBB\xBF";
constexpr size_t kLengthPrefixBytes = 4;

std::string ErrnoMessage(int error) {
  return std::error_code(error, std::generic_category()).message();
}

bool IsBlank(std::string_view line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

std::string Bytes(uint64_t n) { return std::to_string(n) + (n == 1 ? " byte" : " bytes"); }

// DecodeOtlpRecord, protobuf resources through `resources` (optional).
absl::Status DecodeRecord(OtlpFileFormat format, std::string_view record,
                          uint32_t max_spans_per_request, SpanBatch& out, RecordSpans& spans,
                          ResourceCache* resources) {
  const DecodeLimits limits{.max_spans = max_spans_per_request};
  DecodeResult result;
  const bool json = format == OtlpFileFormat::kJsonLines;
  absl::Status status = json ? DecodeOtlpJson(record, limits, out, result)
                             : DecodeOtlpProto(record, limits, out, result, resources);
  if (!status.ok()) return status;
  // Unknown fields are ignored, so a metrics or logs export decodes as an empty trace request.
  // Empty requests are legal but never written by exporters, so a line without any resourceSpans
  // is refused as the wrong kind of file rather than replayed as nothing.
  if (json && result.accepted == 0 && result.TotalRejected() == 0 &&
      record.find("\"resourceSpans\"") == std::string_view::npos &&
      record.find("\"resource_spans\"") == std::string_view::npos) {
    return absl::InvalidArgumentError(
        "request: no resourceSpans: not an OTLP trace export request (a metrics or logs "
        "export?)");
  }
  spans.accepted += result.accepted;
  spans.rejected += result.TotalRejected();
  if (spans.first_rejection.empty()) spans.first_rejection = std::move(result.first_error);
  return absl::OkStatus();
}

}  // namespace

absl::Status DecodeOtlpRecord(OtlpFileFormat format, std::string_view record,
                              uint32_t max_spans_per_request, SpanBatch& out, RecordSpans& spans) {
  return DecodeRecord(format, record, max_spans_per_request, out, spans, nullptr);
}

OtlpRecordDecoder::OtlpRecordDecoder(OtlpFileFormat format, uint32_t max_spans_per_request)
    : format_(format),
      max_spans_per_request_(max_spans_per_request),
      resources_(format == OtlpFileFormat::kLengthPrefixedProtobuf
                     ? std::make_unique<ResourceCache>()
                     : nullptr) {}

OtlpRecordDecoder::~OtlpRecordDecoder() = default;

absl::Status OtlpRecordDecoder::Decode(std::string_view record, SpanBatch& out,
                                       RecordSpans& spans) {
  return DecodeRecord(format_, record, max_spans_per_request_, out, spans, resources_.get());
}

absl::StatusOr<std::unique_ptr<OtlpFileReader>> OtlpFileReader::Open(
    const std::string& path, const OtlpFileOptions& options) {
  if (options.max_line_bytes == 0 || options.read_chunk_bytes == 0) {
    return absl::InvalidArgumentError("max_line_bytes and read_chunk_bytes must be positive");
  }
  const bool standard_input = path == "-";
  const int fd = standard_input ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    std::string message = path + ": " + ErrnoMessage(error);
    if (error == ENOENT) return absl::NotFoundError(message);
    if (error == EACCES) return absl::PermissionDeniedError(message);
    return absl::InvalidArgumentError(message);
  }
  struct stat st {};
  std::optional<uint64_t> size;
  if (::fstat(fd, &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      if (!standard_input) ::close(fd);
      return absl::InvalidArgumentError(path + ": is a directory");
    }
    if (S_ISREG(st.st_mode)) {
      size = static_cast<uint64_t>(st.st_size);
      (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    }
  }
  return std::unique_ptr<OtlpFileReader>(
      new OtlpFileReader(fd, !standard_input, path, options, size));
}

OtlpFileReader::OtlpFileReader(int fd, bool owned, std::string name, const OtlpFileOptions& options,
                               std::optional<uint64_t> size_bytes)
    : fd_(fd), owned_(owned), name_(std::move(name)), options_(options), size_bytes_(size_bytes) {}

OtlpFileReader::~OtlpFileReader() {
  if (owned_) ::close(fd_);
}

bool OtlpFileReader::Fill() {
  if (pos_ > 0) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  const size_t old_size = buffer_.size();
  buffer_.resize(old_size + options_.read_chunk_bytes);
  ssize_t n;
  do {
    n = ::read(fd_, buffer_.data() + old_size, options_.read_chunk_bytes);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    read_error_ = ErrnoMessage(errno);
    buffer_.resize(old_size);
    return false;
  }
  buffer_.resize(old_size + static_cast<size_t>(n));
  bytes_read_ += static_cast<uint64_t>(n);
  return n > 0;
}

OtlpRecord OtlpFileReader::Next(SpanBatch& out) {
  out.Clear();
  if (done_) return OtlpRecord{.kind = OtlpRecord::Kind::kEnd, .number = number_};
  OtlpRecord record =
      options_.format == OtlpFileFormat::kJsonLines ? NextLine(out) : NextProtobuf(out);
  if (record.kind == OtlpRecord::Kind::kEnd || record.kind == OtlpRecord::Kind::kFailed) {
    done_ = true;
    buffer_.clear();
    buffer_.shrink_to_fit();
    pos_ = 0;
  }
  return record;
}

OtlpRecord OtlpFileReader::NextLine(SpanBatch& out) {
  size_t searched = 0;         // bytes of the current line already searched for its end
  bool too_long = false;       // the current line passed max_line_bytes: dropped as read
  uint64_t dropped_bytes = 0;  // of it
  auto failed = [&](uint64_t number) {
    return OtlpRecord{
        .kind = OtlpRecord::Kind::kFailed,
        .number = number,
        .error = name_ + ":" + std::to_string(number) + ": read error: " + read_error_};
  };
  auto over_long = [&](uint64_t number, uint64_t length) {
    return OtlpRecord{.kind = OtlpRecord::Kind::kBad,
                      .number = number,
                      .error = name_ + ":" + std::to_string(number) + ": line of " + Bytes(length) +
                               " is longer than " + Bytes(options_.max_line_bytes) +
                               " (max_line_bytes); skipped"};
  };
  while (true) {
    const size_t available = buffer_.size() - pos_;
    const char* begin = buffer_.data() + pos_;
    const char* newline =
        available > searched
            ? static_cast<const char*>(std::memchr(begin + searched, '\n', available - searched))
            : nullptr;
    if (newline != nullptr || (eof_ && available > 0)) {
      const size_t length = newline != nullptr ? static_cast<size_t>(newline - begin) : available;
      const size_t consumed = length + (newline != nullptr ? 1 : 0);
      std::string_view line(begin, length);
      const uint64_t number = ++number_;
      pos_ += consumed;
      consumed_ += consumed;
      searched = 0;
      // The limit is on the bytes before the line break, as the streaming check below sees them.
      if (too_long) return over_long(number, dropped_bytes + length);
      if (length > options_.max_line_bytes) return over_long(number, length);
      if (number == 1 && line.starts_with(kByteOrderMark)) {
        line.remove_prefix(kByteOrderMark.size());
      }
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (IsBlank(line)) continue;
      return Decoded(line, number, name_ + ":" + std::to_string(number), out);
    }
    if (eof_) {
      if (!read_error_.empty()) return failed(number_ + 1);
      if (too_long) return over_long(++number_, dropped_bytes);
      return OtlpRecord{.kind = OtlpRecord::Kind::kEnd, .number = number_};
    }
    searched = available;
    if (available > options_.max_line_bytes) {
      // Too long to decode: forget what was read of it and look for its end.
      too_long = true;
      dropped_bytes += available;
      consumed_ += available;
      pos_ = buffer_.size();
      searched = 0;
    }
    if (!Fill()) {
      eof_ = true;
      if (!read_error_.empty()) return failed(number_ + 1);
    }
  }
}

OtlpRecord OtlpFileReader::NextProtobuf(SpanBatch& out) {
  // Reads until `n` bytes are buffered or the input ends.
  auto have = [&](size_t n) {
    while (buffer_.size() - pos_ < n && !eof_) {
      if (!Fill()) eof_ = true;
    }
    return buffer_.size() - pos_ >= n;
  };
  const uint64_t offset = consumed_;
  const uint64_t number = number_ + 1;
  const std::string location =
      name_ + ": record " + std::to_string(number) + " at byte " + std::to_string(offset);
  auto failed = [&](std::string message) {
    return OtlpRecord{
        .kind = OtlpRecord::Kind::kFailed, .number = number, .error = location + ": " + message};
  };
  if (!have(kLengthPrefixBytes)) {
    if (!read_error_.empty()) return failed("read error: " + read_error_);
    const size_t left = buffer_.size() - pos_;
    if (left == 0) return OtlpRecord{.kind = OtlpRecord::Kind::kEnd, .number = number_};
    return failed("the file ends inside a 4-byte length prefix (" + Bytes(left) + " left)");
  }
  const auto* p = reinterpret_cast<const unsigned char*>(buffer_.data() + pos_);
  const uint64_t length = uint64_t{p[0]} << 24 | uint64_t{p[1]} << 16 | uint64_t{p[2]} << 8 | p[3];
  number_ = number;
  if (length > options_.max_line_bytes) {
    return failed("length prefix of " + Bytes(length) + " is more than " +
                  Bytes(options_.max_line_bytes) +
                  " (max_line_bytes): not length-prefixed OTLP protobuf, or corrupt; stopping");
  }
  if (!have(kLengthPrefixBytes + length)) {
    if (!read_error_.empty()) return failed("read error: " + read_error_);
    return failed("the file ends inside the record: " + Bytes(length) + " announced, " +
                  Bytes(buffer_.size() - pos_ - kLengthPrefixBytes) + " left");
  }
  const std::string_view record(buffer_.data() + pos_ + kLengthPrefixBytes, length);
  pos_ += kLengthPrefixBytes + length;
  consumed_ += kLengthPrefixBytes + length;
  return Decoded(record, number, location, out);
}

OtlpRecord OtlpFileReader::Decoded(std::string_view record, uint64_t number, std::string location,
                                   SpanBatch& out) {
  OtlpRecord result{.kind = OtlpRecord::Kind::kRequest, .number = number};
  absl::Status status =
      DecodeOtlpRecord(options_.format, record, options_.max_spans_per_request, out, result.spans);
  if (!status.ok()) {
    out.Clear();
    result.kind = OtlpRecord::Kind::kBad;
    result.error = std::move(location) + ": " + std::string(status.message());
    result.spans = RecordSpans{};
  }
  return result;
}

}  // namespace traceslo::ingest
