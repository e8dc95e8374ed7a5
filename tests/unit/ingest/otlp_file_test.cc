// Recorded OTLP files: one record decoded (good, bad JSON, wrong shape, a logs export, limits),
// and files streamed as JSON lines or length-prefixed protobuf, with errors at FILE:LINE and
// reading going on after a bad line, whatever the read chunk size.
#include "traceslo/ingest/otlp_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace traceslo::ingest {
namespace {

namespace otlp = ::opentelemetry::proto;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// One request with `spans` spans of service "checkout", the i-th with trace id ...i and end time
// 1000 + i; `bad_trace_id` adds one span with an invalid trace id (refused alone).
std::string JsonRequest(int spans, bool bad_trace_id = false) {
  std::string out = R"({"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":)"
                    R"({"stringValue":"checkout"}}]},"scopeSpans":[{"spans":[)";
  for (int i = 0; i < spans; ++i) {
    char trace_id[33];
    std::snprintf(trace_id, sizeof trace_id, "%032x", i + 1);
    if (i > 0) out += ",";
    out += R"({"traceId":")" + std::string(trace_id) +
           R"(","spanId":"00000000000000aa","name":"GET /","kind":2,"startTimeUnixNano":"1000",)"
           R"("endTimeUnixNano":")" +
           std::to_string(1000 + i) + R"("})";
  }
  if (bad_trace_id) {
    out += std::string(spans > 0 ? "," : "") +
           R"({"traceId":"xyz","spanId":"00000000000000aa","name":"GET /"})";
  }
  return out + "]}]}]}";
}

std::string ProtoRequest(int spans) {
  otlp::collector::trace::v1::ExportTraceServiceRequest request;
  auto* resource_spans = request.add_resource_spans();
  auto* attribute = resource_spans->mutable_resource()->add_attributes();
  attribute->set_key("service.name");
  attribute->mutable_value()->set_string_value("payment");
  auto* scope = resource_spans->add_scope_spans();
  for (int i = 0; i < spans; ++i) {
    auto* span = scope->add_spans();
    std::string trace_id(16, '\0');
    trace_id[15] = static_cast<char>(i + 1);
    span->set_trace_id(trace_id);
    span->set_span_id(std::string("\0\0\0\0\0\0\0\x07", 8));
    span->set_name("Charge");
    span->set_start_time_unix_nano(10);
    span->set_end_time_unix_nano(20 + i);
  }
  return request.SerializeAsString();
}

std::string LengthPrefixed(const std::string& record) {
  const auto n = static_cast<uint32_t>(record.size());
  std::string out = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8), static_cast<char>(n)};
  return out + record;
}

class OtlpFileTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& content) {
    const std::filesystem::path dir =
        std::filesystem::path(::testing::TempDir()) / "otlp_file_test";
    std::filesystem::create_directories(dir);
    const std::string path = (dir / name).string();
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    return path;
  }
};

// Everything Next() returns, up to and including kEnd or kFailed.
struct Read {
  std::vector<OtlpRecord> records;
  std::vector<size_t> spans;  // per record
};

Read ReadAll(const std::string& path, OtlpFileOptions options) {
  Read read;
  auto reader = OtlpFileReader::Open(path, options);
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return read;
  SpanBatch batch;
  for (int guard = 0; guard < 10'000; ++guard) {
    OtlpRecord record = (*reader)->Next(batch);
    read.spans.push_back(batch.spans.size());
    const bool last =
        record.kind == OtlpRecord::Kind::kEnd || record.kind == OtlpRecord::Kind::kFailed;
    read.records.push_back(std::move(record));
    if (last) break;
  }
  // Done stays done.
  EXPECT_EQ((*reader)->Next(batch).kind, OtlpRecord::Kind::kEnd);
  return read;
}

TEST(DecodeOtlpRecordTest, GoodJsonLine) {
  SpanBatch batch;
  RecordSpans spans;
  ASSERT_TRUE(DecodeOtlpRecord(OtlpFileFormat::kJsonLines, JsonRequest(3), 100, batch, spans).ok());
  ASSERT_EQ(batch.spans.size(), 3u);
  EXPECT_EQ(spans.accepted, 3u);
  EXPECT_EQ(spans.rejected, 0u);
  EXPECT_EQ(batch.Str(batch.spans[0].service), "checkout");
  EXPECT_EQ(batch.spans[2].end_unix_nano, 1002u);
}

TEST(DecodeOtlpRecordTest, InvalidSpansAreRefusedOneByOne) {
  SpanBatch batch;
  RecordSpans spans;
  ASSERT_TRUE(
      DecodeOtlpRecord(OtlpFileFormat::kJsonLines, JsonRequest(2, true), 100, batch, spans).ok());
  EXPECT_EQ(batch.spans.size(), 2u);
  EXPECT_EQ(spans.rejected, 1u);
  EXPECT_THAT(spans.first_rejection, HasSubstr("trace"));
}

TEST(DecodeOtlpRecordTest, BadJsonAndWrongShapesSayWhat) {
  struct Case {
    std::string line;
    std::string message;
  };
  const std::vector<Case> cases = {
      {R"({"resourceSpans":[)", "malformed JSON"},
      {"[1,2]", "request: expected a JSON object"},
      {R"("resourceSpans")", "request: expected a JSON object"},
      {R"({"resourceSpans":5})", "resourceSpans: expected an array"},
      {R"({"resourceSpans":[{"scopeSpans":[{"spans":[7]}]}]})",
       "resourceSpans[0].scopeSpans[0].spans[0]: expected an object"},
      {R"({"resourceLogs":[{"scopeLogs":[]}]})", "no resourceSpans"},
      {"{}", "no resourceSpans"},
  };
  for (const Case& c : cases) {
    SpanBatch batch;
    batch.Add("kept", 10);
    RecordSpans spans;
    const absl::Status status =
        DecodeOtlpRecord(OtlpFileFormat::kJsonLines, c.line, 100, batch, spans);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.line;
    EXPECT_THAT(status.message(), HasSubstr(c.message)) << c.line;
    EXPECT_EQ(batch.strings, "kept") << "left as it was";
    EXPECT_EQ(spans.accepted, 0u);
  }
  // An empty request is legal, and is not "the wrong kind of file".
  SpanBatch batch;
  RecordSpans spans;
  EXPECT_TRUE(
      DecodeOtlpRecord(OtlpFileFormat::kJsonLines, R"({"resourceSpans":[]})", 100, batch, spans)
          .ok());
}

TEST(DecodeOtlpRecordTest, MaxSpansPerRequestAsTheReceivers) {
  SpanBatch batch;
  RecordSpans spans;
  const absl::Status status =
      DecodeOtlpRecord(OtlpFileFormat::kJsonLines, JsonRequest(5), 4, batch, spans);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("more than 4 spans (max_spans)"));
  EXPECT_TRUE(batch.spans.empty());
}

TEST(DecodeOtlpRecordTest, Protobuf) {
  SpanBatch batch;
  RecordSpans spans;
  ASSERT_TRUE(
      DecodeOtlpRecord(OtlpFileFormat::kLengthPrefixedProtobuf, ProtoRequest(2), 100, batch, spans)
          .ok());
  ASSERT_EQ(batch.spans.size(), 2u);
  EXPECT_EQ(batch.Str(batch.spans[1].service), "payment");
  EXPECT_FALSE(
      DecodeOtlpRecord(OtlpFileFormat::kLengthPrefixedProtobuf, "\x0a\x05xx", 100, batch, spans)
          .ok());
}

TEST_F(OtlpFileTest, JsonLinesWithBadLinesBlankLinesAndCrlf) {
  const std::string content = "\xEF\xBB\xBF" + JsonRequest(2) + "\n" +  // 1: BOM, 2 spans
                              "\n" +                                    // 2: blank
                              "{not json\n" +                           // 3: bad JSON
                              "  \t\r\n" +                              // 4: blank
                              JsonRequest(1, true) + "\r\n" +           // 5: CRLF, 1 + 1 refused
                              R"({"resourceMetrics":[]})" + "\n" +      // 6: metrics export
                              JsonRequest(3);                           // 7: no final newline
  const std::string path = Write("mixed.jsonl", content);
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{64}, size_t{1} << 20}) {
    SCOPED_TRACE("read chunk " + std::to_string(chunk));
    const Read read = ReadAll(path, OtlpFileOptions{.read_chunk_bytes = chunk});
    ASSERT_EQ(read.records.size(), 6u);
    EXPECT_EQ(read.records[0].kind, OtlpRecord::Kind::kRequest);
    EXPECT_EQ(read.records[0].number, 1u);
    EXPECT_EQ(read.spans[0], 2u);

    EXPECT_EQ(read.records[1].kind, OtlpRecord::Kind::kBad);
    EXPECT_EQ(read.records[1].number, 3u);
    EXPECT_THAT(read.records[1].error, StartsWith(path + ":3: malformed JSON"));
    EXPECT_EQ(read.spans[1], 0u);

    EXPECT_EQ(read.records[2].kind, OtlpRecord::Kind::kRequest);
    EXPECT_EQ(read.records[2].number, 5u);
    EXPECT_EQ(read.spans[2], 1u);
    EXPECT_EQ(read.records[2].spans.rejected, 1u);

    EXPECT_EQ(read.records[3].kind, OtlpRecord::Kind::kBad);
    EXPECT_THAT(read.records[3].error, StartsWith(path + ":6: request: no resourceSpans"));

    EXPECT_EQ(read.records[4].kind, OtlpRecord::Kind::kRequest);
    EXPECT_EQ(read.records[4].number, 7u);
    EXPECT_EQ(read.spans[4], 3u);

    EXPECT_EQ(read.records[5].kind, OtlpRecord::Kind::kEnd);
  }
}

TEST_F(OtlpFileTest, OverLongLinesAreSkippedWithoutBeingKept) {
  const std::string good = JsonRequest(1);
  const std::string long_line = JsonRequest(40);
  ASSERT_GT(long_line.size(), good.size() + 100);
  const size_t max = good.size() + 50;
  const std::string path = Write("long.jsonl", good + "\n" + long_line + "\n" + good + "\n" +
                                                   long_line);  // the last one ends the file
  for (size_t chunk : {size_t{5}, size_t{100}, size_t{1} << 20}) {
    SCOPED_TRACE("read chunk " + std::to_string(chunk));
    const Read read =
        ReadAll(path, OtlpFileOptions{.max_line_bytes = max, .read_chunk_bytes = chunk});
    ASSERT_EQ(read.records.size(), 5u);
    EXPECT_EQ(read.records[0].kind, OtlpRecord::Kind::kRequest);
    EXPECT_EQ(read.records[1].kind, OtlpRecord::Kind::kBad);
    EXPECT_EQ(read.records[1].error, path + ":2: line of " + std::to_string(long_line.size()) +
                                         " bytes is longer than " + std::to_string(max) +
                                         " bytes (max_line_bytes); skipped");
    EXPECT_EQ(read.records[2].kind, OtlpRecord::Kind::kRequest);
    EXPECT_EQ(read.records[2].number, 3u);
    EXPECT_EQ(read.records[3].kind, OtlpRecord::Kind::kBad);
    EXPECT_THAT(read.records[3].error, StartsWith(path + ":4: line of "));
    EXPECT_EQ(read.records[4].kind, OtlpRecord::Kind::kEnd);
  }
}

TEST_F(OtlpFileTest, EmptyFile) {
  const Read read = ReadAll(Write("empty.jsonl", ""), OtlpFileOptions{});
  ASSERT_EQ(read.records.size(), 1u);
  EXPECT_EQ(read.records[0].kind, OtlpRecord::Kind::kEnd);
}

TEST_F(OtlpFileTest, LengthPrefixedProtobuf) {
  const std::string path = Write("records.pb", LengthPrefixed(ProtoRequest(2)) +
                                                   LengthPrefixed("\x0a\x05xx") +  // bad record
                                                   LengthPrefixed("") +            // empty request
                                                   LengthPrefixed(ProtoRequest(1)));
  for (size_t chunk : {size_t{1}, size_t{3}, size_t{1} << 20}) {
    SCOPED_TRACE("read chunk " + std::to_string(chunk));
    const Read read =
        ReadAll(path, OtlpFileOptions{.format = OtlpFileFormat::kLengthPrefixedProtobuf,
                                      .read_chunk_bytes = chunk});
    ASSERT_EQ(read.records.size(), 5u);
    EXPECT_EQ(read.records[0].kind, OtlpRecord::Kind::kRequest);
    EXPECT_EQ(read.spans[0], 2u);
    EXPECT_EQ(read.records[1].kind, OtlpRecord::Kind::kBad);
    EXPECT_THAT(read.records[1].error,
                StartsWith(path + ": record 2 at byte " +
                           std::to_string(4 + ProtoRequest(2).size()) + ": "));
    EXPECT_EQ(read.records[2].kind, OtlpRecord::Kind::kRequest);
    EXPECT_EQ(read.spans[2], 0u);
    EXPECT_EQ(read.records[3].kind, OtlpRecord::Kind::kRequest);
    EXPECT_EQ(read.records[3].number, 4u);
    EXPECT_EQ(read.spans[3], 1u);
    EXPECT_EQ(read.records[4].kind, OtlpRecord::Kind::kEnd);
  }
}

TEST_F(OtlpFileTest, LostProtobufFramingStopsTheRead) {
  const std::string record = LengthPrefixed(ProtoRequest(1));
  const OtlpFileOptions options{.format = OtlpFileFormat::kLengthPrefixedProtobuf,
                                .max_line_bytes = 1000};
  struct Case {
    std::string name;
    std::string content;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"cut_prefix.pb", record + std::string("\x00\x00", 2),
       "the file ends inside a 4-byte length prefix"},
      {"cut_record.pb", record + record.substr(0, record.size() - 3),
       "the file ends inside the record"},
      {"too_long.pb", record + std::string("\x7f\x00\x00\x00", 4) + "{}",
       "is more than 1000 bytes (max_line_bytes): not length-prefixed OTLP protobuf"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = Write(c.name, c.content);
    const Read read = ReadAll(path, options);
    ASSERT_EQ(read.records.size(), 2u);
    EXPECT_EQ(read.records[0].kind, OtlpRecord::Kind::kRequest);
    EXPECT_EQ(read.records[1].kind, OtlpRecord::Kind::kFailed);
    EXPECT_THAT(read.records[1].error,
                StartsWith(path + ": record 2 at byte " + std::to_string(record.size()) + ": "));
    EXPECT_THAT(read.records[1].error, HasSubstr(c.message));
  }
}

TEST_F(OtlpFileTest, OpenErrorsNameThePath) {
  auto missing = OtlpFileReader::Open("/nonexistent/spans.jsonl", OtlpFileOptions{});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/spans.jsonl"));
  const std::string dir = std::filesystem::path(Write("x", "")).parent_path().string();
  auto directory = OtlpFileReader::Open(dir, OtlpFileOptions{});
  EXPECT_EQ(directory.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(directory.status().message(), HasSubstr("is a directory"));
  auto reader = OtlpFileReader::Open(Write("size.jsonl", "12345"), OtlpFileOptions{});
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->size_bytes(), 5u);
}

}  // namespace
}  // namespace traceslo::ingest
