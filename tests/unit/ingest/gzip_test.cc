#include "services/ingest/gzip.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace traceslo::ingest {
namespace {

// Compresses `chunk` repeated `repeat` times into one gzip member (windowBits 15 + 16).
std::string GzipRepeated(std::string_view chunk, size_t repeat, int level = Z_BEST_SPEED) {
  z_stream stream{};
  EXPECT_EQ(deflateInit2(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out;
  char buffer[64 * 1024];
  for (size_t i = 0; i <= repeat; ++i) {
    const bool last = i == repeat;
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(last ? "" : chunk.data()));
    stream.avail_in = last ? 0 : static_cast<uInt>(chunk.size());
    int rc;
    do {
      stream.next_out = reinterpret_cast<Bytef*>(buffer);
      stream.avail_out = sizeof(buffer);
      rc = deflate(&stream, last ? Z_FINISH : Z_NO_FLUSH);
      EXPECT_NE(rc, Z_STREAM_ERROR);
      out.append(buffer, sizeof(buffer) - stream.avail_out);
    } while (stream.avail_out == 0 || (last && rc != Z_STREAM_END));
  }
  deflateEnd(&stream);
  return out;
}

std::string Gzip(std::string_view data) { return GzipRepeated(data, 1); }

// Deterministic, poorly compressible bytes.
std::string NoiseBytes(size_t size) {
  std::string data(size, '\0');
  uint32_t state = 12345;
  for (char& c : data) {
    state = state * 1103515245 + 12345;
    c = static_cast<char>(state >> 24);
  }
  return data;
}

TEST(GunzipTest, RoundTrip) {
  const std::string data = NoiseBytes(300'000) + std::string(100'000, 'a');
  std::string out;
  ASSERT_TRUE(Gunzip(Gzip(data), 1 << 20, out).ok());
  EXPECT_EQ(out, data);
}

TEST(GunzipTest, EmptyPayload) {
  std::string out = "stale";
  ASSERT_TRUE(Gunzip(Gzip(""), 0, out).ok());
  EXPECT_TRUE(out.empty());
}

TEST(GunzipTest, AcceptsZlibFormat) {
  const std::string data = "zlib-wrapped payload";
  uLongf size = compressBound(data.size());
  std::string compressed(size, '\0');
  ASSERT_EQ(compress(reinterpret_cast<Bytef*>(compressed.data()), &size,
                     reinterpret_cast<const Bytef*>(data.data()), data.size()),
            Z_OK);
  compressed.resize(size);
  std::string out;
  ASSERT_TRUE(Gunzip(compressed, 1024, out).ok());
  EXPECT_EQ(out, data);
}

TEST(GunzipTest, ExactlyAtLimitIsAccepted) {
  // Sizes around the 64 KiB inflate chunk as well as small ones.
  for (size_t size :
       {size_t{1}, size_t{1000}, size_t{65535}, size_t{65536}, size_t{65537}, size_t{200'000}}) {
    const std::string data = NoiseBytes(size);
    std::string out;
    absl::Status status = Gunzip(Gzip(data), size, out);
    ASSERT_TRUE(status.ok()) << size << ": " << status;
    EXPECT_EQ(out, data);
  }
}

TEST(GunzipTest, OneByteOverLimitIsResourceExhausted) {
  for (size_t size : {size_t{1}, size_t{1000}, size_t{65536}, size_t{65537}, size_t{200'000}}) {
    const std::string data = NoiseBytes(size);
    std::string out;
    absl::Status status = Gunzip(Gzip(data), size - 1, out);
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << size << ": " << status;
    EXPECT_TRUE(out.empty());
  }
}

TEST(GunzipTest, EveryTruncationIsInvalidArgument) {
  const std::string compressed = Gzip(NoiseBytes(2000));
  for (size_t size = 0; size < compressed.size(); ++size) {
    std::string out;
    absl::Status status = Gunzip(std::string_view(compressed).substr(0, size), 1 << 20, out);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << size << ": " << status;
    EXPECT_TRUE(out.empty()) << size;
  }
}

TEST(GunzipTest, GarbageIsInvalidArgument) {
  std::string out;
  absl::Status status = Gunzip("this is not gzip at all", 1024, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(Gunzip(NoiseBytes(5000), 1 << 20, out).code(), absl::StatusCode::kInvalidArgument);
}

TEST(GunzipTest, CorruptChecksumIsInvalidArgument) {
  std::string compressed = Gzip("payload with a crc32 trailer");
  compressed[compressed.size() - 6] ^= 0x55;  // inside the CRC-32 of the trailer
  std::string out;
  absl::Status status = Gunzip(compressed, 1024, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
}

TEST(GunzipTest, CorruptDeflateDataIsInvalidArgument) {
  std::string compressed = Gzip(NoiseBytes(4000));
  for (size_t i = 12; i < 40; ++i) compressed[i] = static_cast<char>(0xff);
  std::string out;
  EXPECT_EQ(Gunzip(compressed, 1 << 20, out).code(), absl::StatusCode::kInvalidArgument);
}

TEST(GunzipTest, BombStopsAtLimit) {
  // 64 MiB of zeros compresses to ~64 KiB; inflating must stop just past the 1 MiB limit.
  const std::string bomb = GzipRepeated(std::string(1 << 20, '\0'), 64, Z_BEST_COMPRESSION);
  ASSERT_LT(bomb.size(), 200'000u);
  std::string out;
  absl::Status status = Gunzip(bomb, 1 << 20, out);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_TRUE(out.empty());
  EXPECT_LE(out.capacity(), size_t{4} << 20);  // never held more than about the limit
}

}  // namespace
}  // namespace traceslo::ingest
