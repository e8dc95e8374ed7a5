#include "services/loadgen/gzip.h"

#include <zlib.h>

#include <cassert>

namespace traceslo::loadgen {

std::string Gzip(std::string_view data) {
  z_stream stream{};
  // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
  int rc = deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  assert(rc == Z_OK);
  std::string out(deflateBound(&stream, static_cast<uLong>(data.size())), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  rc = deflate(&stream, Z_FINISH);
  assert(rc == Z_STREAM_END);
  (void)rc;
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

}  // namespace traceslo::loadgen
