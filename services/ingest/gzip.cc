#include "services/ingest/gzip.h"

#include <zlib.h>

#include <algorithm>
#include <limits>
#include <string>

namespace traceslo::ingest {
namespace {

absl::Status TooLarge(size_t max_bytes) {
  return absl::ResourceExhaustedError("decompressed body exceeds " + std::to_string(max_bytes) +
                                      " bytes");
}

}  // namespace

absl::Status Gunzip(std::string_view in, size_t max_bytes, std::string& out) {
  out.clear();
  // One byte past the limit tells "exactly at the limit" from "over it".
  max_bytes = std::min(max_bytes, std::numeric_limits<size_t>::max() - 1);
  z_stream stream{};
  // 15 + 32: accept gzip and zlib headers.
  if (inflateInit2(&stream, 15 + 32) != Z_OK) return absl::InternalError("inflateInit2 failed");
  constexpr size_t kChunk = 64 * 1024;
  const auto* next = reinterpret_cast<const Bytef*>(in.data());
  size_t remaining = in.size();
  absl::Status status;
  while (true) {
    if (stream.avail_in == 0 && remaining > 0) {
      const size_t take = std::min<size_t>(remaining, std::numeric_limits<uInt>::max());
      stream.next_in = const_cast<Bytef*>(next);
      stream.avail_in = static_cast<uInt>(take);
      next += take;
      remaining -= take;
    }
    if (out.size() > max_bytes) {
      status = TooLarge(max_bytes);
      break;
    }
    const size_t old_size = out.size();
    const size_t grow = std::min(kChunk, max_bytes + 1 - old_size);
    out.resize(old_size + grow);
    stream.next_out = reinterpret_cast<Bytef*>(out.data() + old_size);
    stream.avail_out = static_cast<uInt>(grow);
    const int rc = inflate(&stream, Z_NO_FLUSH);
    out.resize(old_size + (grow - stream.avail_out));
    if (rc == Z_STREAM_END) {
      // RFC 1952 allows several members back to back; each is inflated in turn.
      if (stream.avail_in == 0 && remaining == 0) break;
      if (inflateReset(&stream) != Z_OK) {
        status = absl::InternalError("inflateReset failed");
        break;
      }
      continue;
    }
    if (rc == Z_BUF_ERROR && stream.avail_in == 0 && remaining == 0) {
      status = absl::InvalidArgumentError("gzip body is truncated");
      break;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      status = absl::InvalidArgumentError(std::string("gzip body is corrupt: ") +
                                          (stream.msg ? stream.msg : "inflate failed"));
      break;
    }
  }
  inflateEnd(&stream);
  if (status.ok() && out.size() > max_bytes) status = TooLarge(max_bytes);
  if (!status.ok()) out.clear();
  return status;
}

}  // namespace traceslo::ingest
