#include "services/traceslo/replay_command.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string_view>
#include <utility>

#include "traceslo/common/json.h"
#include "traceslo/common/time_format.h"
#include "traceslo/config/config.h"
#include "traceslo/ingest/otlp_file.h"
#include "traceslo/slo/replay.h"
#include "traceslo/slo/rule_file.h"

namespace traceslo {
namespace {

using std::chrono::milliseconds;

// Problems (bad lines, refused spans) printed one by one on stderr; later ones are only counted.
constexpr uint64_t kMaxProblemsShown = 100;
constexpr auto kProgressInterval = std::chrono::milliseconds(250);

int UsageError(const std::string& message) {
  std::fprintf(stderr, "traceslo replay: %s\n", message.c_str());
  return 2;
}

// RFC 3339 in UTC with as many fraction digits as the time needs (none on whole seconds). 0 is
// the epoch here, a recorded time, not Go's zero time as FormatRfc3339 writes it.
std::string FormatTime(int64_t unix_nano) {
  return unix_nano == 0 ? "1970-01-01T00:00:00Z" : FormatRfc3339(unix_nano);
}

std::string Duration(milliseconds d) {
  return config::FormatDuration(std::max(d, milliseconds(0)));
}
std::string DurationNanos(int64_t nanos) {
  return Duration(std::chrono::duration_cast<milliseconds>(std::chrono::nanoseconds(nanos)));
}

std::string Fixed(double value, int digits) {
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (std::isnan(value)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

// The shortest text that reads back as `value`; JSON has no infinities (null).
std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  return ec == std::errc() ? std::string(buf, end) : "null";
}

std::string Hex(uint64_t id) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, id);
  return buf;
}

// Text from the data, on one line: control characters written as C escapes.
std::string OneLine(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string QuantileName(double quantile) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "p%g", quantile * 100);
  return buf;
}

std::string AlertName(const slo::AlertStatus& alert) {
  return alert.service + "/" + alert.slo + (alert.no_data ? " no_data" : "");
}

std::string SignatureText(const slo::SignatureCount& s) {
  std::string text = OneLine(s.exception_type);
  if (!s.normalized_message.empty()) {
    if (!text.empty()) text += ": ";
    text += OneLine(s.normalized_message);
  }
  if (s.http_status != 0)
    text += (text.empty() ? "" : " ") + ("(HTTP " + std::to_string(s.http_status) + ")");
  if (s.rpc_status >= 0)
    text += (text.empty() ? "" : " ") + ("(gRPC " + std::to_string(s.rpc_status) + ")");
  return text.empty() ? "(no message)" : text;
}

// What the replay read and did, for the summary.
struct InputStats {
  std::string file;
  std::string format;
  uint64_t requests = 0;
  uint64_t bad_lines = 0;
  uint64_t spans_refused = 0;
  bool read_failed = false;
  milliseconds drain{0};
  milliseconds evaluation_interval{0};
  milliseconds tick_interval{0};
};

struct Results {
  const InputStats& input;
  const std::vector<slo::TimelineEntry>& timeline;
  const slo::ReplayStats& stats;
  const std::vector<slo::SloStatus>& slos;
  const std::vector<slo::AlertStatus>& alerts;
  const pipeline::SliStore::GlobalTotals& pipeline;
  const std::map<std::pair<std::string, std::string>, slo::Slo>& rules;
};

size_t FiringAtEnd(const Results& r) {
  return static_cast<size_t>(std::count_if(r.alerts.begin(), r.alerts.end(), [](const auto& a) {
    return a.state == slo::AlertState::kFiring;
  }));
}

std::string TransitionDetails(const Results& r, const slo::TimelineEntry& e) {
  const slo::AlertStatus& a = e.alert;
  if (a.no_data) {
    const auto rule = r.rules.find({a.service, a.slo});
    if (rule == r.rules.end() || !rule->second.alerting.no_data) return "no events";
    return "no events for " + Duration(rule->second.alerting.no_data->for_duration);
  }
  const auto rule = r.rules.find({a.service, a.slo});
  if (rule != r.rules.end() && rule->second.sli.kind == slo::SliKind::kLatencyQuantile) {
    const slo::LatencyQuantileSli& q = rule->second.sli.latency_quantile;
    return QuantileName(q.quantile) + " over " + Duration(q.window) + ": " +
           Fixed(e.latency_quantile_seconds, 3) + "s (threshold " + Duration(q.threshold) + ")";
  }
  return "burn rate " + Duration(a.long_window) + ": " + Fixed(e.burn_rate_long, 2) + ", " +
         Duration(a.short_window) + ": " + Fixed(e.burn_rate_short, 2) + " (fires at " +
         Fixed(a.threshold_burn_rate, 2) + ")";
}

std::string Text(const Results& r) {
  std::string out = "timeline (recorded time, UTC):\n";
  if (r.timeline.empty()) out += "  (no alert transitions)\n";
  for (const slo::TimelineEntry& e : r.timeline) {
    out += FormatTime(e.unix_nano) + "  " + AlertName(e.alert) + "  " +
           std::string(slo::SeverityName(e.alert.severity)) + "  " +
           std::string(slo::AlertStateName(e.from)) + " -> " +
           std::string(slo::AlertStateName(e.alert.state)) + "  " + TransitionDetails(r, e) +
           (e.in_drain ? "  (drain)" : "") + "\n";
    if (e.alert.state == slo::AlertState::kFiring && !e.alert.no_data) {
      if (e.signatures.empty()) {
        out += "    no error signatures in the last " + Duration(e.signature_window) + "\n";
      } else {
        out += "    top error signatures in the last " + Duration(e.signature_window) + ":\n";
      }
      for (const slo::SignatureCount& s : e.signatures) {
        out += "    " + Hex(s.id) + "  " + std::to_string(s.count) + "x  " + OneLine(s.operation) +
               "  " + SignatureText(s) + "\n";
      }
    }
  }

  const slo::ReplayStats& st = r.stats;
  out += "\nsummary:\n";
  out += "  input: " + r.input.file + " (" + r.input.format + ")" +
         (r.input.read_failed ? ", not read to its end" : "") + "\n";
  out += "  requests: " + std::to_string(r.input.requests) +
         ", bad lines skipped: " + std::to_string(r.input.bad_lines) + "\n";
  out += "  spans: " + std::to_string(st.spans) + " replayed, " +
         std::to_string(r.input.spans_refused) + " refused (invalid ids or times)\n";
  if (st.started) {
    out += "  recorded time: " + FormatTime(st.first_unix_nano) + " to " +
           FormatTime(st.last_unix_nano) + " (" +
           DurationNanos(st.last_unix_nano - st.first_unix_nano) + ")\n";
    out += "  replayed to: " + FormatTime(st.end_unix_nano) + " (drain " + Duration(r.input.drain) +
           ")\n";
  } else {
    out += "  recorded time: none (no span)\n";
  }
  out += "  evaluations: " + std::to_string(st.evaluations) + " (every " +
         Duration(r.input.evaluation_interval) + "), pipeline ticks: " + std::to_string(st.ticks) +
         " (every " + Duration(r.input.tick_interval) + ")\n";
  out += "  alerts: " + std::to_string(st.alerts_fired) + " fired, " +
         std::to_string(st.alerts_resolved) + " resolved, " + std::to_string(FiringAtEnd(r)) +
         " firing at the end\n";
  out += "  pipeline: " + std::to_string(r.pipeline.clock_skew_spans) + " clock-skew spans, " +
         std::to_string(r.pipeline.late_spans) + " late spans, " +
         std::to_string(r.pipeline.evicted_traces) + " evicted traces, " +
         std::to_string(st.time_jumps_capped) + " time jumps capped\n";
  out += "  slos at the last evaluation:\n";
  if (r.slos.empty()) out += st.evaluations == 0 ? "    (no evaluation ran)\n" : "    (none)\n";
  for (const slo::SloStatus& s : r.slos) {
    out += "    " + s.service + "/" + s.slo + "  " + std::string(slo::SliKindName(s.kind));
    if (s.kind == slo::SliKind::kLatencyQuantile) {
      out += "  " + Fixed(s.latency_quantile_seconds, 3) + "s\n";
      continue;
    }
    const slo::WindowFigures* compliance = s.windows.empty() ? nullptr : &s.windows.back();
    char objective[32];
    std::snprintf(objective, sizeof objective, "%g", s.objective_ratio * 100);
    out += "  objective " + std::string(objective) + "%";
    if (compliance != nullptr) {
      out += "  sli " + Fixed(compliance->sli_ratio * 100, 3) + "% over " +
             Duration(compliance->window) + " (" + std::to_string(compliance->events.bad) +
             " bad of " + std::to_string(compliance->events.total) + ")";
    }
    out += "  budget remaining " + Fixed(s.error_budget_remaining_ratio * 100, 1) + "%";
    out += "  burn rate";
    for (size_t i = 0; i < s.windows.size(); ++i) {
      out += (i == 0 ? " " : ", ") + Duration(s.windows[i].window) + ": " +
             Fixed(s.windows[i].burn_rate, 2);
    }
    out += "\n";
  }
  return out;
}

void AppendKey(std::string& out, std::string_view key) {
  AppendJsonString(out, key);
  out += ':';
}
void AppendString(std::string& out, std::string_view key, std::string_view value) {
  AppendKey(out, key);
  AppendJsonString(out, value);
}
void AppendRaw(std::string& out, std::string_view key, std::string_view value) {
  AppendKey(out, key);
  out += value;
}

std::string Json(const Results& r) {
  std::string out = "{";
  AppendKey(out, "timeline");
  out += '[';
  for (size_t i = 0; i < r.timeline.size(); ++i) {
    const slo::TimelineEntry& e = r.timeline[i];
    const slo::AlertStatus& a = e.alert;
    out += i == 0 ? "{" : ",{";
    AppendString(out, "time", FormatTime(e.unix_nano));
    out += ',';
    AppendRaw(out, "unix_nano", std::to_string(e.unix_nano));
    out += ',';
    AppendString(out, "service", a.service);
    out += ',';
    AppendString(out, "slo", a.slo);
    out += ',';
    AppendString(out, "severity", slo::SeverityName(a.severity));
    out += ',';
    AppendString(out, "alert", a.no_data ? "no_data" : "slo");
    out += ',';
    AppendString(out, "from", slo::AlertStateName(e.from));
    out += ',';
    AppendString(out, "to", slo::AlertStateName(a.state));
    out += ',';
    AppendRaw(out, "in_drain", e.in_drain ? "true" : "false");
    out += ',';
    AppendString(out, "details", TransitionDetails(r, e));
    const auto rule = r.rules.find({a.service, a.slo});
    const bool quantile =
        rule != r.rules.end() && rule->second.sli.kind == slo::SliKind::kLatencyQuantile;
    if (!a.no_data && quantile) {
      out += ',';
      AppendRaw(out, "latency_quantile_seconds", JsonNumber(e.latency_quantile_seconds));
    } else if (!a.no_data) {
      out += ',';
      AppendString(out, "long_window", Duration(a.long_window));
      out += ',';
      AppendString(out, "short_window", Duration(a.short_window));
      out += ',';
      AppendRaw(out, "burn_rate_long", JsonNumber(e.burn_rate_long));
      out += ',';
      AppendRaw(out, "burn_rate_short", JsonNumber(e.burn_rate_short));
      out += ',';
      AppendRaw(out, "threshold_burn_rate", JsonNumber(a.threshold_burn_rate));
    }
    if (a.state == slo::AlertState::kFiring && !a.no_data) {
      out += ',';
      AppendString(out, "signature_window", Duration(e.signature_window));
      out += ',';
      AppendKey(out, "signatures");
      out += '[';
      for (size_t j = 0; j < e.signatures.size(); ++j) {
        const slo::SignatureCount& s = e.signatures[j];
        out += j == 0 ? "{" : ",{";
        AppendString(out, "id", Hex(s.id));
        out += ',';
        AppendRaw(out, "count", std::to_string(s.count));
        out += ',';
        AppendString(out, "operation", s.operation);
        out += ',';
        AppendString(out, "exception_type", s.exception_type);
        out += ',';
        AppendString(out, "message", s.normalized_message);
        out += ',';
        AppendRaw(out, "http_status", std::to_string(s.http_status));
        out += ',';
        AppendRaw(out, "rpc_status", std::to_string(s.rpc_status));
        out += '}';
      }
      out += ']';
    }
    out += '}';
  }
  out += "],";

  const slo::ReplayStats& st = r.stats;
  AppendKey(out, "summary");
  out += '{';
  AppendString(out, "input", r.input.file);
  out += ',';
  AppendString(out, "input_format", r.input.format);
  out += ',';
  AppendRaw(out, "read_to_end", r.input.read_failed ? "false" : "true");
  out += ',';
  AppendRaw(out, "requests", std::to_string(r.input.requests));
  out += ',';
  AppendRaw(out, "bad_lines", std::to_string(r.input.bad_lines));
  out += ',';
  AppendRaw(out, "spans", std::to_string(st.spans));
  out += ',';
  AppendRaw(out, "spans_refused", std::to_string(r.input.spans_refused));
  out += ',';
  AppendRaw(out, "first_unix_nano", st.started ? std::to_string(st.first_unix_nano) : "null");
  out += ',';
  AppendRaw(out, "last_unix_nano", st.started ? std::to_string(st.last_unix_nano) : "null");
  out += ',';
  AppendRaw(out, "end_unix_nano", st.started ? std::to_string(st.end_unix_nano) : "null");
  out += ',';
  AppendString(out, "drain", Duration(r.input.drain));
  out += ',';
  AppendString(out, "evaluation_interval", Duration(r.input.evaluation_interval));
  out += ',';
  AppendRaw(out, "evaluations", std::to_string(st.evaluations));
  out += ',';
  AppendRaw(out, "ticks", std::to_string(st.ticks));
  out += ',';
  AppendRaw(out, "alerts_fired", std::to_string(st.alerts_fired));
  out += ',';
  AppendRaw(out, "alerts_resolved", std::to_string(st.alerts_resolved));
  out += ',';
  AppendRaw(out, "alerts_firing_at_end", std::to_string(FiringAtEnd(r)));
  out += ',';
  AppendRaw(out, "clock_skew_spans", std::to_string(r.pipeline.clock_skew_spans));
  out += ',';
  AppendRaw(out, "late_spans", std::to_string(r.pipeline.late_spans));
  out += ',';
  AppendRaw(out, "evicted_traces", std::to_string(r.pipeline.evicted_traces));
  out += ',';
  AppendRaw(out, "time_jumps_capped", std::to_string(st.time_jumps_capped));
  out += ',';
  AppendKey(out, "slos");
  out += '[';
  for (size_t i = 0; i < r.slos.size(); ++i) {
    const slo::SloStatus& s = r.slos[i];
    out += i == 0 ? "{" : ",{";
    AppendString(out, "service", s.service);
    out += ',';
    AppendString(out, "slo", s.slo);
    out += ',';
    AppendString(out, "kind", slo::SliKindName(s.kind));
    out += ',';
    AppendRaw(out, "objective_ratio", JsonNumber(s.objective_ratio));
    out += ',';
    AppendRaw(out, "error_budget_remaining_ratio", JsonNumber(s.error_budget_remaining_ratio));
    out += ',';
    AppendRaw(out, "latency_quantile_seconds", JsonNumber(s.latency_quantile_seconds));
    out += ',';
    AppendKey(out, "windows");
    out += '[';
    for (size_t j = 0; j < s.windows.size(); ++j) {
      const slo::WindowFigures& w = s.windows[j];
      out += j == 0 ? "{" : ",{";
      AppendString(out, "window", Duration(w.window));
      out += ',';
      AppendRaw(out, "total", std::to_string(w.events.total));
      out += ',';
      AppendRaw(out, "bad", std::to_string(w.events.bad));
      out += ',';
      AppendRaw(out, "sli_ratio", JsonNumber(w.sli_ratio));
      out += ',';
      AppendRaw(out, "burn_rate", JsonNumber(w.burn_rate));
      out += '}';
    }
    out += "]}";
  }
  out += "]}}\n";
  return out;
}

// The progress line on a terminal: rewritten in place at most every kProgressInterval.
class Progress {
 public:
  Progress(const Clock& clock, const ingest::OtlpFileReader& reader)
      : clock_(clock), reader_(reader), enabled_(::isatty(STDERR_FILENO) == 1) {}

  void Update(uint64_t records, uint64_t spans) {
    if (!enabled_) return;
    const auto now = clock_.SteadyNow();
    if (shown_ && now < next_) return;
    next_ = now + kProgressInterval;
    shown_ = true;
    std::string line = "\rtraceslo replay: " + std::to_string(records) + " lines, " +
                       std::to_string(spans) + " spans";
    if (reader_.size_bytes() && *reader_.size_bytes() > 0) {
      line += ", " +
              Fixed(100.0 * static_cast<double>(reader_.bytes_read()) /
                        static_cast<double>(*reader_.size_bytes()),
                    0) +
              "% of " + reader_.name();
    }
    std::fputs((line + "\x1b[K").c_str(), stderr);
    std::fflush(stderr);
  }
  // Clears the progress line before other output to stderr, and at the end.
  void Clear() {
    if (!shown_) return;
    std::fputs("\r\x1b[K", stderr);
    shown_ = false;
  }

 private:
  const Clock& clock_;
  const ingest::OtlpFileReader& reader_;
  const bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point next_;
};

}  // namespace

CLI::App* AddReplayCommand(CLI::App& app, ReplayFlags& flags) {
  CLI::App* replay = app.add_subcommand(
      "replay",
      "Replay recorded OTLP through the SLI pipeline and the rules on recorded time; print the "
      "alert timeline and a summary.");
  replay->add_option("--rules", flags.rules,
                     "Rule files, directories or globs (repeatable; default: rules.files of "
                     "--config.file, else rules/*.yaml)");
  replay
      ->add_option("--spans", flags.spans,
                   "The recording: OTLP/JSON lines, or length-prefixed protobuf (- : stdin)")
      ->required();
  replay->add_option("--spans-format", flags.spans_format,
                     "json (one ExportTraceServiceRequest per line, default) or proto (4-byte "
                     "big-endian length before each request, the Collector file exporter's "
                     "format: proto)");
  replay->add_option("--config.file", flags.config_file,
                     "Configuration file: pipeline settings, rules.evaluation_interval, "
                     "otlp.max_spans_per_request");
  replay->add_option("--drain", flags.drain,
                     "Time run after the last request so traces complete and alerts resolve "
                     "(default: trace_max_age + 2 ticks + the longest short window + 2 "
                     "evaluations)");
  replay->add_option("--max-gap", flags.max_gap,
                     "Furthest one request may move the replay time forward (default 1h)");
  replay->add_option("--max-line-bytes", flags.max_line_bytes,
                     "Longest line (or protobuf record) read (default 64MiB)");
  replay->add_option("--format", flags.format, "Output: text (default) or json");
  replay->add_option("--top-signatures", flags.top_signatures,
                     "Error signatures shown per firing alert (default 3)");
  replay->add_flag("--allow-bad-lines", flags.allow_bad_lines,
                   "Exit 0 even when bad lines were skipped");
  return replay;
}

int Replay(const ReplayFlags& flags, const Clock& clock) {
  config::Config config;
  if (!flags.config_file.empty()) {
    auto loaded = config::LoadConfigFile(flags.config_file);
    if (!loaded.ok()) return UsageError(std::string(loaded.status().message()));
    config = *std::move(loaded);
  }
  if (flags.format != "text" && flags.format != "json") {
    return UsageError("--format must be text or json, got \"" + flags.format + "\"");
  }
  ingest::OtlpFileOptions file_options{.max_spans_per_request = config.otlp.max_spans_per_request};
  if (flags.spans_format == "json") {
    file_options.format = ingest::OtlpFileFormat::kJsonLines;
  } else if (flags.spans_format == "proto") {
    file_options.format = ingest::OtlpFileFormat::kLengthPrefixedProtobuf;
  } else {
    return UsageError("--spans-format must be json or proto, got \"" + flags.spans_format + "\"");
  }
  auto max_line = config::ParseByteSize(flags.max_line_bytes);
  if (!max_line.ok() || *max_line == 0 || *max_line > (uint64_t{1} << 32)) {
    return UsageError("--max-line-bytes must be a byte size between 1 and 4GiB, got \"" +
                      flags.max_line_bytes + "\"");
  }
  file_options.max_line_bytes = static_cast<size_t>(*max_line);
  auto max_gap = config::ParseDuration(flags.max_gap);
  if (!max_gap.ok() || max_gap->count() <= 0) {
    return UsageError("--max-gap must be a duration greater than 0, got \"" + flags.max_gap + "\"");
  }

  const std::vector<std::string> rule_paths =
      flags.rules.empty() ? config.rules.files : flags.rules;
  slo::CheckResult rules = slo::CheckRuleFiles(rule_paths);
  if (!rules.ok()) {
    for (const slo::Diagnostic& d : rules.diagnostics) {
      std::fprintf(stderr, "%s\n", d.ToString().c_str());
    }
    return UsageError("the rule files have problems (traceslo check shows the same)");
  }
  std::vector<slo::Slo> slos;
  std::map<std::pair<std::string, std::string>, slo::Slo> by_name;
  for (const slo::RuleFile& file : rules.files) {
    for (const slo::Slo& s : file.slos) {
      slos.push_back(s);
      by_name[{s.service, s.name}] = s;
    }
  }

  const milliseconds evaluation_interval = config.rules.evaluation_interval;
  milliseconds drain = slo::DefaultReplayDrain(config.pipeline, evaluation_interval, slos);
  if (!flags.drain.empty()) {
    auto parsed = config::ParseDuration(flags.drain);
    if (!parsed.ok()) return UsageError("--drain: " + std::string(parsed.status().message()));
    drain = *parsed;
  }

  auto reader = ingest::OtlpFileReader::Open(flags.spans, file_options);
  if (!reader.ok()) return UsageError("--spans: " + std::string(reader.status().message()));

  slo::Replayer replayer(config.pipeline,
                         slo::ReplayOptions{.evaluation_interval = evaluation_interval,
                                            .drain = drain,
                                            .max_gap = *max_gap,
                                            .top_signatures = flags.top_signatures},
                         slos);
  InputStats input{
      .file = flags.spans,
      .format = flags.spans_format == "json" ? "json lines" : "length-prefixed protobuf",
      .drain = drain,
      .evaluation_interval = evaluation_interval,
      .tick_interval = config.pipeline.tick_interval};
  Progress progress(clock, **reader);
  uint64_t problems = 0;
  auto problem = [&](const std::string& message) {
    if (++problems > kMaxProblemsShown) return;
    progress.Clear();
    std::fprintf(stderr, "%s\n", message.c_str());
  };
  SpanBatch batch;
  uint64_t records = 0;
  for (bool more = true; more;) {
    ingest::OtlpRecord record = (*reader)->Next(batch);
    switch (record.kind) {
      case ingest::OtlpRecord::Kind::kRequest:
        ++input.requests;
        if (record.spans.rejected > 0) {
          input.spans_refused += record.spans.rejected;
          problem((*reader)->name() + ":" + std::to_string(record.number) + ": " +
                  std::to_string(record.spans.rejected) +
                  " spans refused: " + record.spans.first_rejection);
        }
        replayer.Feed(batch);
        break;
      case ingest::OtlpRecord::Kind::kBad:
        ++input.bad_lines;
        problem(record.error);
        break;
      case ingest::OtlpRecord::Kind::kFailed:
        input.read_failed = true;
        problem(record.error);
        more = false;
        break;
      case ingest::OtlpRecord::Kind::kEnd:
        more = false;
        break;
    }
    progress.Update(++records, replayer.stats().spans);
  }
  progress.Clear();
  if (problems > kMaxProblemsShown) {
    std::fprintf(stderr, "traceslo replay: %" PRIu64 " more problems not shown\n",
                 problems - kMaxProblemsShown);
  }
  replayer.Finish();

  // Before the first evaluation the evaluator has no figures to show.
  const std::vector<slo::SloStatus> slo_status =
      replayer.stats().evaluations > 0 ? replayer.Slos() : std::vector<slo::SloStatus>{};
  const std::vector<slo::AlertStatus> alerts = replayer.Alerts();
  const pipeline::SliStore::GlobalTotals totals = replayer.PipelineTotals();
  const Results results{input,  replayer.timeline(), replayer.stats(), slo_status, alerts, totals,
                        by_name};
  const std::string out = flags.format == "json" ? Json(results) : Text(results);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);

  if (input.read_failed) return 1;
  if (input.bad_lines > 0) {
    std::fprintf(stderr, "traceslo replay: %" PRIu64 " bad line%s skipped%s\n", input.bad_lines,
                 input.bad_lines == 1 ? "" : "s",
                 flags.allow_bad_lines ? "" : " (exit 1; --allow-bad-lines to accept them)");
    if (!flags.allow_bad_lines) return 1;
  }
  return 0;
}

}  // namespace traceslo
