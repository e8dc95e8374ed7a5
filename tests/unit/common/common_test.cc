#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <string>

#include "tests/fakes/fake_clock.h"
#include "traceslo/common/json.h"
#include "traceslo/common/log.h"

namespace traceslo {
namespace {

std::string Logged(LogFormat format, LogLevel level, const std::function<void(Logger&)>& write) {
  std::FILE* file = std::tmpfile();
  fakes::FakeClock clock(std::chrono::system_clock::time_point(
      std::chrono::milliseconds(1'700'000'000'123)));  // 2023-11-14T22:13:20.123Z
  {
    Logger logger(clock, format, level, file);
    write(logger);
  }
  std::rewind(file);
  std::string text;
  char buf[512];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, file)) > 0) text.append(buf, n);
  std::fclose(file);
  return text;
}

TEST(JsonTest, EscapesQuotesBackslashesAndControlCharacters) {
  std::string out;
  AppendJsonString(out, "a\"b\\c\nd\x01\xc3\xa9");
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\u0001\xc3\xa9\"");
}

TEST(LoggerTest, LogfmtQuotesOnlyWhatNeedsIt) {
  std::string text = Logged(LogFormat::kLogfmt, LogLevel::kInfo, [](Logger& logger) {
    logger.Info("listening", {{"listener", "otlp_grpc"}, {"address", "127.0.0.1:4317"}});
    logger.Warn("two words", {{"empty", ""}, {"eq", "a=b"}});
  });
  EXPECT_EQ(text,
            "ts=2023-11-14T22:13:20.123Z level=info msg=listening listener=otlp_grpc "
            "address=127.0.0.1:4317\n"
            "ts=2023-11-14T22:13:20.123Z level=warn msg=\"two words\" empty=\"\" eq=\"a=b\"\n");
}

TEST(LoggerTest, JsonLinesAndLevelFilter) {
  std::string text = Logged(LogFormat::kJson, LogLevel::kWarn, [](Logger& logger) {
    logger.Info("hidden");
    logger.Error("boom", {{"error", "line1\nline2"}});
  });
  EXPECT_EQ(text,
            "{\"ts\":\"2023-11-14T22:13:20.123Z\",\"level\":\"error\",\"msg\":\"boom\","
            "\"error\":\"line1\\nline2\"}\n");
}

TEST(LoggerTest, ParsesLevelsAndFormats) {
  EXPECT_EQ(*ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  EXPECT_FALSE(ParseLogLevel("verbose").ok());
  EXPECT_FALSE(ParseLogFormat("text").ok());
}

}  // namespace
}  // namespace traceslo
