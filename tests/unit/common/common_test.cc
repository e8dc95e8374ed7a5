#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <string>

#include "tests/fakes/fake_clock.h"
#include "traceslo/common/json.h"
#include "traceslo/common/log.h"
#include "traceslo/common/span.h"
#include "traceslo/common/time_format.h"

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

namespace traceslo {
namespace {

TEST(TraceIdHexTest, RoundTripsAndRefusesWhatIsNotATraceId) {
  TraceId id{};
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>(i * 17 + 1);
  const std::string hex = TraceIdHex(id);
  EXPECT_EQ(hex, "0112233445566778899aabbccddeef00");
  EXPECT_EQ(ParseTraceIdHex(hex), id);
  EXPECT_EQ(ParseTraceIdHex("0112233445566778899AABBCCDDEEF00"), id);
  EXPECT_EQ(ParseTraceIdHex(hex.substr(1)), std::nullopt);
  EXPECT_EQ(ParseTraceIdHex(hex + "0"), std::nullopt);
  EXPECT_EQ(ParseTraceIdHex("0112233445566778899aabbccddeeffg"), std::nullopt);
  EXPECT_EQ(ParseTraceIdHex(std::string(32, '0')), std::nullopt);
  EXPECT_EQ(ParseTraceIdHex(""), std::nullopt);
}

}  // namespace
}  // namespace traceslo

namespace traceslo {
namespace {

TEST(Rfc3339Test, FormatsLikeGoAndParsesWhatAlertmanagerSends) {
  EXPECT_EQ(FormatRfc3339(0), "0001-01-01T00:00:00Z");
  EXPECT_EQ(FormatRfc3339(1'700'000'000'250'000'000), "2023-11-14T22:13:20.25Z");
  // 1700000000 s is 2023-11-14T22:13:20Z (date -u -d @1700000000).
  EXPECT_EQ(ParseRfc3339("2023-11-14T22:13:20Z"), 1'700'000'000'000'000'000);
  EXPECT_EQ(ParseRfc3339("2023-11-14T22:13:20.25Z"), 1'700'000'000'250'000'000);
  EXPECT_EQ(ParseRfc3339("2023-11-14t22:13:20.000000001z"), 1'700'000'000'000'000'001);
  EXPECT_EQ(ParseRfc3339("2023-11-15T00:13:20+02:00"), 1'700'000'000'000'000'000);
  EXPECT_EQ(ParseRfc3339("2023-11-14T21:43:20-00:30"), 1'700'000'000'000'000'000);
  EXPECT_EQ(ParseRfc3339("2024-02-29T00:00:00Z"), 1'709'164'800'000'000'000);
  for (const char* bad :
       {"", "2023-11-14", "2023-11-14T22:13:20", "2023-11-14 22:13:20Z", "2023-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z", "2023-11-14T24:00:00Z", "2023-11-14T22:13:20.Z",
        "2023-11-14T22:13:20.1234567890Z", "2023-11-14T22:13:20Zx", "2023-11-14T22:13:20+0200",
        "1969-12-31T23:59:59Z", "2263-01-01T00:00:00Z", "２０２３-11-14T22:13:20Z"}) {
    EXPECT_EQ(ParseRfc3339(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace traceslo
