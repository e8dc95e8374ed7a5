#include "services/ingest/gzip.h"

#include <zlib.h>

#include <algorithm>
#include <string>

namespace traceslo::ingest {

absl::Status Gunzip(std::string_view in, size_t max_bytes, std::string& out) {
  out.clear();
  z_stream stream{};
  // 15 + 32: accept gzip and zlib headers.
  if (inflateInit2(&stream, 15 + 32) != Z_OK) return absl::InternalError("inflateInit2 failed");
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  stream.avail_in = static_cast<uInt>(std::min<size_t>(in.size(), UINT32_MAX));
  constexpr size_t kChunk = 64 * 1024;
  absl::Status status;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (out.size() >= max_bytes + 1) {
      status = absl::ResourceExhaustedError("decompressed body exceeds " +
                                            std::to_string(max_bytes) + " bytes");
      break;
    }
    size_t old_size = out.size();
    // One byte past the limit tells "exactly at the limit" from "over it".
    size_t grow = std::min(kChunk, max_bytes + 1 - old_size);
    out.resize(old_size + grow);
    stream.next_out = reinterpret_cast<Bytef*>(out.data() + old_size);
    stream.avail_out = static_cast<uInt>(grow);
    rc = inflate(&stream, Z_NO_FLUSH);
    out.resize(old_size + (grow - stream.avail_out));
    if (rc == Z_STREAM_END) break;
    if (rc == Z_BUF_ERROR && stream.avail_in == 0) {
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
  if (status.ok() && out.size() > max_bytes) {
    status = absl::ResourceExhaustedError("decompressed body exceeds " + std::to_string(max_bytes) +
                                          " bytes");
  }
  if (!status.ok()) out.clear();
  return status;
}

}  // namespace traceslo::ingest
