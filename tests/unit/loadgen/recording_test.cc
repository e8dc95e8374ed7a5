// --record: every request once, as OTLP/JSON lines, whatever is sent; --start-time; and the
// record-only run that sends nothing.
#include "services/loadgen/recording.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "services/loadgen/options.h"
#include "services/loadgen/runner.h"
#include "tests/fakes/fake_clock.h"
#include "tests/unit/loadgen/loadgen_test_util.h"
#include "traceslo/ingest/otlp_file.h"

namespace traceslo::loadgen {
namespace {

using std::chrono::seconds;
using testing_util::DecodeAll;
using testing_util::FakeExporter;
using testing_util::Retryable;

ParsedFlags Parse(std::vector<std::string> args) {
  std::vector<const char*> argv = {"traceslo-loadgen"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  return ParseFlags(static_cast<int>(argv.size()), argv.data());
}

// Records in memory.
class FakeRecorder final : public RequestRecorder {
 public:
  void Record(std::string_view json_request) override { requests.emplace_back(json_request); }
  std::vector<std::string> requests;
};

std::string TempPath(const std::string& name) {
  const auto dir = std::filesystem::path(::testing::TempDir()) / "loadgen_recording_test";
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

TEST(RecordingOptionsTest, RecordWithoutEndpointSendsNothing) {
  const ParsedFlags only = Parse({"--record", "run.jsonl"});
  ASSERT_TRUE(only.run) << only.output;
  EXPECT_EQ(only.options.record_file, "run.jsonl");
  EXPECT_FALSE(only.options.send);
  EXPECT_FALSE(only.options.start_time.has_value());

  const ParsedFlags both = Parse({"--record", "run.jsonl", "--endpoint", "127.0.0.1:4317"});
  ASSERT_TRUE(both.run) << both.output;
  EXPECT_TRUE(both.options.send);

  const ParsedFlags neither = Parse({});
  ASSERT_TRUE(neither.run);
  EXPECT_TRUE(neither.options.send);
  EXPECT_TRUE(neither.options.record_file.empty());
}

TEST(RecordingOptionsTest, StartTime) {
  const auto at = [](std::string text) {
    const ParsedFlags parsed = Parse({"--record", "x", "--start-time", text});
    EXPECT_TRUE(parsed.run) << parsed.output;
    return parsed.options.start_time.value_or(std::chrono::system_clock::time_point{});
  };
  using std::chrono::system_clock;
  EXPECT_EQ(at("2025-06-01T12:00:00Z"), system_clock::time_point(seconds(1'748'779'200)));
  EXPECT_EQ(at("1748779200"), system_clock::time_point(seconds(1'748'779'200)));
  EXPECT_EQ(at("2024-02-29T23:59:59.25Z"),
            system_clock::time_point(seconds(1'709'251'199)) + std::chrono::milliseconds(250));
  EXPECT_EQ(at("1970-01-01T00:00:00Z"), system_clock::time_point{});

  for (const std::string bad :
       {"2025-06-01 12:00:00", "2025-02-29T00:00:00Z", "2025-06-01T24:00:00Z",
        "2025-06-01T12:00:00+02:00", "2025-06-01T12:00:00.Z", "yesterday", "-5"}) {
    const ParsedFlags parsed = Parse({"--record", "x", "--start-time", bad});
    EXPECT_FALSE(parsed.run) << bad;
    EXPECT_EQ(parsed.exit_code, 2) << bad;
    EXPECT_NE(parsed.output.find("--start-time must be unix seconds or an RFC 3339 UTC time"),
              std::string::npos)
        << parsed.output;
  }
  const ParsedFlags sending =
      Parse({"--endpoint", "127.0.0.1:4317", "--start-time", "2025-06-01T12:00:00Z"});
  EXPECT_EQ(sending.exit_code, 2);
  EXPECT_NE(sending.output.find("--start-time sets the simulated clock of a record-only run"),
            std::string::npos)
      << sending.output;
}

TEST(RecordingTest, EveryRequestOnceAsJsonWhateverIsSent) {
  fakes::FakeClock clock;
  FakeExporter exporter;
  // The first attempt is retried: the recording still holds the request once.
  exporter.script = {Retryable("http_503", std::nullopt)};
  FakeRecorder recorder;
  std::mt19937_64 engine(3);
  Runner runner(RunOptions{.rate = 20, .traces = 40, .batch_size = 100}, TopologyOptions{}, {},
                clock, engine, exporter, nullptr, nullptr, nullptr, &recorder);
  const Report report = runner.Run();
  EXPECT_EQ(report.requests.retries, 1u);
  EXPECT_EQ(exporter.bodies.size(), recorder.requests.size() + 1);
  // The same spans as what was acknowledged, as OTLP/JSON though the exporter sent protobuf.
  const SpanBatch sent = DecodeAll(exporter.AcknowledgedBodies(), Encoding::kProtobuf);
  const SpanBatch recorded = DecodeAll(recorder.requests, Encoding::kJson);
  ASSERT_EQ(sent.spans.size(), recorded.spans.size());
  ASSERT_EQ(recorded.spans.size(), report.spans.sent);
  for (size_t i = 0; i < sent.spans.size(); ++i) {
    EXPECT_EQ(sent.spans[i].span_id, recorded.spans[i].span_id);
    EXPECT_EQ(sent.spans[i].end_unix_nano, recorded.spans[i].end_unix_nano);
  }
  for (const std::string& line : recorder.requests) {
    EXPECT_EQ(line.find('\n'), std::string::npos) << "one request, one line";
  }
}

TEST(RecordingTest, JsonLinesRecorderWritesWhatTracesloReplayReads) {
  const std::string path = TempPath("run.jsonl");
  auto recorder = JsonLinesRecorder::Create(path);
  ASSERT_TRUE(recorder.ok()) << recorder.status();
  fakes::FakeClock clock;
  DiscardingExporter exporter;
  std::mt19937_64 engine(5);
  Runner runner(RunOptions{.rate = 10, .traces = 30, .batch_size = 64}, TopologyOptions{}, {},
                clock, engine, exporter, nullptr, nullptr, nullptr, recorder->get());
  const Report report = runner.Run();
  ASSERT_TRUE((*recorder)->Close().ok());
  EXPECT_EQ(report.spans.acknowledged, report.spans.sent) << "discarded, as acknowledged";

  auto reader = ingest::OtlpFileReader::Open(path, ingest::OtlpFileOptions{});
  ASSERT_TRUE(reader.ok()) << reader.status();
  SpanBatch batch;
  uint64_t spans = 0;
  uint64_t requests = 0;
  for (;;) {
    const ingest::OtlpRecord record = (*reader)->Next(batch);
    if (record.kind == ingest::OtlpRecord::Kind::kEnd) break;
    ASSERT_EQ(record.kind, ingest::OtlpRecord::Kind::kRequest) << record.error;
    ++requests;
    spans += batch.spans.size();
  }
  EXPECT_EQ(requests, report.requests.sent);
  EXPECT_EQ(spans, report.spans.sent);
}

TEST(RecordingTest, UnwritablePathIsAnError) {
  auto recorder = JsonLinesRecorder::Create("/nonexistent/dir/run.jsonl");
  ASSERT_FALSE(recorder.ok());
  EXPECT_NE(recorder.status().message().find("cannot write /nonexistent/dir/run.jsonl"),
            std::string::npos)
      << recorder.status();
}

}  // namespace
}  // namespace traceslo::loadgen
