#include "services/loadgen/options.h"

#include <CLI/CLI.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <utility>

#include "services/loadgen/scenario.h"
#include "traceslo/config/config.h"

#ifndef TRACESLO_VERSION
#define TRACESLO_VERSION "0.0.0-dev"
#endif

namespace traceslo::loadgen {
namespace {

constexpr double kMaxRate = 1'000'000;
constexpr uint64_t kMaxTraces = 1'000'000'000;
constexpr uint32_t kMaxSpansPerTrace = 200;
constexpr uint32_t kMaxBatchSize = 100'000;

// The flags as typed; validated after CLI11 has split them.
struct RawFlags {
  std::string endpoint;
  std::string protocol = "grpc";
  std::string rate = "10";
  std::string duration;
  std::string traces;
  std::string spans_per_trace = "20";
  std::string batch_size = "512";
  std::string seed;
  std::string scenario;
  std::vector<std::string> incidents;
  std::string report = "-";
  std::string record;
  std::string start_time;
  std::vector<std::string> headers;
  std::string timeout = "10s";
  std::string max_retry_time = "30s";
  bool gzip = false;
  bool quiet = false;
  bool version = false;
};

std::string Quoted(std::string_view text) {
  std::string out = "'";
  for (size_t i = 0; i < text.size() && i < 80; ++i) {
    const char c = text[i];
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (text.size() > 80) out += "...";
  return out + "'";
}

absl::Status Usage(std::string message) { return absl::InvalidArgumentError(std::move(message)); }

template <typename T>
bool ParseInteger(std::string_view text, T& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && ptr == text.data() + text.size();
}

template <typename T>
absl::Status Integer(std::string_view flag, std::string_view text, T min, T max, T& out) {
  T value{};
  if (!ParseInteger(text, value) || value < min || value > max) {
    return Usage(std::string(flag) + " must be an integer between " + std::to_string(min) +
                 " and " + std::to_string(max) + ", got " + Quoted(text));
  }
  out = value;
  return absl::OkStatus();
}

absl::Status Duration(std::string_view flag, std::string_view text, bool positive,
                      std::chrono::milliseconds& out) {
  absl::StatusOr<std::chrono::milliseconds> d = config::ParseDuration(text);
  if (!d.ok()) return Usage(std::string(flag) + ": " + std::string(d.status().message()));
  if (positive && d->count() <= 0) {
    return Usage(std::string(flag) + " must be greater than 0, got " + Quoted(text));
  }
  out = *d;
  return absl::OkStatus();
}

bool IsTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

absl::Status Header(std::string_view text, bool grpc, HttpHeaders& out) {
  const size_t eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) {
    return Usage("--header must be name=value (e.g. authorization=Bearer abc), got " +
                 Quoted(text));
  }
  std::string name(text.substr(0, eq));
  std::string value(text.substr(eq + 1));
  for (char c : name) {
    if (!IsTokenChar(c)) return Usage("--header: invalid header name " + Quoted(name));
  }
  for (char c : value) {
    if (c != '\t' && (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)) {
      return Usage("--header: the value of " + name + " has a control character");
    }
  }
  std::string lower = name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::string_view reserved : {"content-type", "content-length", "content-encoding", "host",
                                    "transfer-encoding", "connection", "te", "user-agent"}) {
    if (lower == reserved) return Usage("--header: " + name + " is set by traceslo-loadgen itself");
  }
  if (grpc) {
    if (lower.starts_with("grpc-")) return Usage("--header: " + name + " is reserved by gRPC");
    name = lower;  // gRPC metadata keys are lower-case
  }
  out.emplace_back(std::move(name), std::move(value));
  return absl::OkStatus();
}

int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// Unix seconds ("1748779200") or RFC 3339 in UTC ("2025-06-01T12:00:00Z", with an optional
// fraction of a second up to nanoseconds).
absl::Status StartTime(std::string_view text, std::chrono::system_clock::time_point& out) {
  const absl::Status bad = Usage(
      "--start-time must be unix seconds or an RFC 3339 UTC time like 2025-06-01T12:00:00Z, got " +
      Quoted(text));
  int64_t seconds = 0;
  int64_t nanos = 0;
  if (ParseInteger(text, seconds)) {
    if (seconds < 0 || seconds > 253'402'300'799) return bad;  // up to 9999-12-31
  } else {
    int64_t year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    auto field = [&](size_t pos, size_t len, int64_t& v) {
      return pos + len <= text.size() && ParseInteger(text.substr(pos, len), v);
    };
    if (text.size() < 20 || !field(0, 4, year) || text[4] != '-' || !field(5, 2, month) ||
        text[7] != '-' || !field(8, 2, day) || (text[10] != 'T' && text[10] != 't') ||
        !field(11, 2, hour) || text[13] != ':' || !field(14, 2, minute) || text[16] != ':' ||
        !field(17, 2, second) || (text.back() != 'Z' && text.back() != 'z')) {
      return bad;
    }
    std::string_view fraction = text.substr(19, text.size() - 20);
    if (!fraction.empty()) {
      if (fraction[0] != '.' || fraction.size() < 2 || fraction.size() > 10) return bad;
      int64_t digits = 0;
      if (fraction[1] < '0' || fraction[1] > '9' || !ParseInteger(fraction.substr(1), digits)) {
        return bad;
      }
      nanos = digits;
      for (size_t i = fraction.size() - 1; i < 9; ++i) nanos *= 10;
    }
    const bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    constexpr int64_t kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1970 || month < 1 || month > 12 || day < 1 ||
        day > kDays[month - 1] + (month == 2 && leap ? 1 : 0) || hour < 0 || hour > 23 ||
        minute < 0 || minute > 59 || second < 0 || second > 59) {
      return bad;
    }
    seconds = DaysFromCivil(year, month, day) * 86'400 + hour * 3'600 + minute * 60 + second;
  }
  out = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(seconds) + std::chrono::nanoseconds(nanos)));
  return absl::OkStatus();
}

#define TRACESLO_RETURN_IF_ERROR(expr)        \
  do {                                        \
    if (absl::Status s_ = (expr); !s_.ok()) { \
      return s_;                              \
    }                                         \
  } while (false)

absl::Status Validate(const RawFlags& raw, LoadgenOptions& o) {
  if (raw.protocol == "grpc") {
    o.protocol = Protocol::kGrpc;
  } else if (raw.protocol == "http/protobuf") {
    o.protocol = Protocol::kHttpProtobuf;
  } else if (raw.protocol == "http/json") {
    o.protocol = Protocol::kHttpJson;
  } else {
    return Usage("--protocol must be grpc, http/protobuf or http/json, got " +
                 Quoted(raw.protocol));
  }
  o.endpoint = raw.endpoint.empty()
                   ? (o.protocol == Protocol::kGrpc ? "127.0.0.1:4317" : "127.0.0.1:4318")
                   : raw.endpoint;
  std::string host;
  uint16_t port = 0;
  if (absl::Status s = SplitHostPort(o.endpoint, host, port); !s.ok()) {
    return Usage("--endpoint: " + std::string(s.message()));
  }

  double rate = 0;
  auto [ptr, ec] = std::from_chars(raw.rate.data(), raw.rate.data() + raw.rate.size(), rate);
  if (raw.rate.empty() || ec != std::errc() || ptr != raw.rate.data() + raw.rate.size() ||
      !std::isfinite(rate) || rate <= 0 || rate > kMaxRate) {
    return Usage("--rate must be a number of traces per second, greater than 0 and at most " +
                 std::to_string(static_cast<uint64_t>(kMaxRate)) + ", got " + Quoted(raw.rate));
  }
  o.rate = rate;
  if (!raw.duration.empty() && !raw.traces.empty()) {
    return Usage("--duration and --traces exclude each other: give one");
  }
  if (!raw.traces.empty()) {
    TRACESLO_RETURN_IF_ERROR(Integer<uint64_t>("--traces", raw.traces, 1, kMaxTraces, o.traces));
  } else {
    const std::string text = raw.duration.empty() ? "60s" : raw.duration;
    std::chrono::milliseconds duration{};
    TRACESLO_RETURN_IF_ERROR(Duration("--duration", text, true, duration));
    o.duration = duration;
    const double traces = std::floor(static_cast<double>(duration.count()) / 1000.0 * o.rate);
    if (traces < 1)
      return Usage("--duration " + text + " at --rate " + raw.rate + " sends no trace");
    if (traces > static_cast<double>(kMaxTraces)) {
      return Usage("--duration x --rate is more than " + std::to_string(kMaxTraces) + " traces");
    }
    o.traces = static_cast<uint64_t>(traces);
  }
  TRACESLO_RETURN_IF_ERROR(Integer<uint32_t>("--spans-per-trace", raw.spans_per_trace, 1,
                                             kMaxSpansPerTrace, o.spans_per_trace));
  TRACESLO_RETURN_IF_ERROR(
      Integer<uint32_t>("--batch-size", raw.batch_size, 1, kMaxBatchSize, o.batch_size));
  if (!raw.seed.empty()) {
    uint64_t seed = 0;
    TRACESLO_RETURN_IF_ERROR(Integer<uint64_t>("--seed", raw.seed, 0, UINT64_MAX, seed));
    o.seed = seed;
  }
  TRACESLO_RETURN_IF_ERROR(Duration("--timeout", raw.timeout, true, o.timeout));
  TRACESLO_RETURN_IF_ERROR(
      Duration("--max-retry-time", raw.max_retry_time, false, o.max_retry_time));

  if (!raw.scenario.empty()) {
    o.scenario_file = raw.scenario;
    absl::StatusOr<Scenario> scenario = LoadScenarioFile(raw.scenario);
    if (!scenario.ok()) return Usage("--scenario: " + std::string(scenario.status().message()));
    o.incidents = std::move(scenario->incidents);
  }
  for (size_t i = 0; i < raw.incidents.size(); ++i) {
    absl::StatusOr<Incident> incident =
        ParseIncidentFlag(raw.incidents[i], "--incident #" + std::to_string(i + 1));
    if (!incident.ok()) return incident.status();
    o.incidents.push_back(*std::move(incident));
  }
  if (o.incidents.size() > kMaxIncidents) {
    return Usage("more than " + std::to_string(kMaxIncidents) + " incidents");
  }
  if (raw.report.empty()) return Usage("--report must name a file, or - for stdout");
  o.report_file = raw.report;
  o.record_file = raw.record;
  o.send = raw.record.empty() || !raw.endpoint.empty();
  if (!raw.start_time.empty()) {
    if (o.send) {
      return Usage(
          "--start-time sets the simulated clock of a record-only run: give --record without "
          "--endpoint");
    }
    std::chrono::system_clock::time_point start;
    TRACESLO_RETURN_IF_ERROR(StartTime(raw.start_time, start));
    o.start_time = start;
  }
  for (const std::string& header : raw.headers) {
    TRACESLO_RETURN_IF_ERROR(Header(header, o.protocol == Protocol::kGrpc, o.headers));
  }
  o.gzip = raw.gzip;
  o.quiet = raw.quiet;
  return absl::OkStatus();
}

#undef TRACESLO_RETURN_IF_ERROR

std::string OneLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

}  // namespace

std::string_view ProtocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kGrpc:
      return "grpc";
    case Protocol::kHttpProtobuf:
      return "http/protobuf";
    case Protocol::kHttpJson:
      return "http/json";
  }
  return "grpc";
}

ParsedFlags ParseFlags(int argc, const char* const* argv) {
  CLI::App app{
      "traceslo-loadgen sends realistic OpenTelemetry traces (a small shop: gateway, checkout, "
      "payment, inventory, database, email, analytics) to an OTLP endpoint at a steady rate, "
      "with incidents on a schedule, and reports what traceslo should count.",
      "traceslo-loadgen"};
  RawFlags raw;
  app.add_option("--endpoint", raw.endpoint,
                 "host:port of the OTLP receiver (default 127.0.0.1:4317 for grpc, "
                 "127.0.0.1:4318 for http)");
  app.add_option("--protocol", raw.protocol, "grpc (default), http/protobuf or http/json");
  app.add_option("--rate", raw.rate, "Traces per second (default 10)");
  app.add_option("--duration", raw.duration, "How long to send, e.g. 30s, 5m (default 60s)");
  app.add_option("--traces", raw.traces, "Send exactly this many traces instead of --duration");
  app.add_option("--spans-per-trace", raw.spans_per_trace,
                 "Approximate mean spans per trace, 1-200; scales the fan-out (default 20)");
  app.add_option("--batch-size", raw.batch_size, "Spans per export request at most (default 512)");
  app.add_option(
      "--seed", raw.seed,
      "Random seed: same seed and flags, same traffic apart from timestamps (default: random, "
      "written to the report)");
  app.add_option("--scenario", raw.scenario, "Scenario file (YAML) with incidents");
  app.add_option("--incident", raw.incidents,
                 "An incident, repeatable: type:key=value,... e.g. "
                 "error_burst:service=payment,ratio=0.3,start=10s,duration=1m")
      ->allow_extra_args(false);
  app.add_option("--report", raw.report, "Where to write the JSON report (default - = stdout)");
  auto* record = app.add_option(
      "--record", raw.record,
      "Also write every request to this file as one OTLP/JSON line (for traceslo replay); "
      "without --endpoint, send nothing and run on simulated time (instantly)");
  record->check([](const std::string& value) {
    return value.empty() ? std::string("--record must name a file") : std::string();
  });
  app.add_option("--start-time", raw.start_time,
                 "Record-only runs: the simulated start time, unix seconds or RFC 3339 UTC "
                 "(default: now)");
  app.add_option("--header", raw.headers, "Extra request header name=value, repeatable")
      ->allow_extra_args(false);
  app.add_flag("--gzip", raw.gzip, "Compress requests with gzip");
  app.add_flag("--quiet", raw.quiet, "No progress lines on stderr");
  app.add_option("--timeout", raw.timeout, "Deadline of one export request (default 10s)");
  app.add_option("--max-retry-time", raw.max_retry_time,
                 "Give up retrying a request after this long (default 30s; 0s: no retries)");
  app.add_flag("--version", raw.version, "Print the version");

  ParsedFlags parsed;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    parsed.output = app.help();
    return parsed;
  } catch (const CLI::ParseError& e) {
    parsed.exit_code = 2;
    parsed.output = "traceslo-loadgen: " + OneLine(e.what()) + " (see --help)";
    return parsed;
  }
  if (raw.version) {
    parsed.output = "traceslo-loadgen " TRACESLO_VERSION "\n";
    return parsed;
  }
  if (absl::Status s = Validate(raw, parsed.options); !s.ok()) {
    parsed.exit_code = 2;
    parsed.output = "traceslo-loadgen: " + OneLine(std::string(s.message()));
    return parsed;
  }
  parsed.run = true;
  return parsed;
}

}  // namespace traceslo::loadgen
