#pragma once

#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "traceslo/common/clock.h"

namespace traceslo {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class LogFormat { kLogfmt, kJson };

absl::StatusOr<LogLevel> ParseLogLevel(std::string_view text);
absl::StatusOr<LogFormat> ParseLogFormat(std::string_view text);

struct LogField {
  std::string_view key;
  std::string value;
};

// Structured log lines (logfmt or JSON, one line each) to a stream, stderr by default.
// Thread-safe; one write per line. Never on the per-span path. `clock` is borrowed and must
// outlive the logger. Secrets must never be passed as fields.
class Logger {
 public:
  Logger(const Clock& clock, LogFormat format, LogLevel level, std::FILE* out = stderr)
      : clock_(clock), format_(format), level_(level), out_(out) {}

  bool Enabled(LogLevel level) const { return level >= level_; }
  void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});
  void Debug(std::string_view msg, std::initializer_list<LogField> fields = {}) {
    Log(LogLevel::kDebug, msg, fields);
  }
  void Info(std::string_view msg, std::initializer_list<LogField> fields = {}) {
    Log(LogLevel::kInfo, msg, fields);
  }
  void Warn(std::string_view msg, std::initializer_list<LogField> fields = {}) {
    Log(LogLevel::kWarn, msg, fields);
  }
  void Error(std::string_view msg, std::initializer_list<LogField> fields = {}) {
    Log(LogLevel::kError, msg, fields);
  }

 private:
  const Clock& clock_;
  const LogFormat format_;
  const LogLevel level_;
  std::FILE* const out_;
  std::mutex mu_;
};

}  // namespace traceslo
