#include "traceslo/slo/rule_test.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <set>
#include <tuple>
#include <utility>

#include "absl/status/status.h"
#include "services/slo/diagnostic_reader.h"
#include "traceslo/common/manual_clock.h"
#include "traceslo/config/yaml_document.h"
#include "traceslo/pipeline/sharded_pipeline.h"
#include "traceslo/pipeline/span_sink.h"
#include "traceslo/slo/rule_file.h"
#include "traceslo/slo/sli_engine.h"

namespace traceslo::slo {
namespace {

using config::FormatDuration;
using config::QuoteForMessage;
using config::YamlKindName;
using config::YamlMark;
using config::YamlNode;
using std::chrono::milliseconds;
using Keys = std::initializer_list<std::string_view>;
using Kind = YamlNode::Kind;

// Test files are a few levels deep; a `spans` shape is the deepest part.
constexpr config::YamlLimits kYamlLimits{.max_depth = 32, .max_nodes = 200'000};
constexpr size_t kMaxRuleFileArgs = 100;
constexpr size_t kMaxAlertsPerExpectation = 1'000;
constexpr size_t kMaxNameBytes = 256;
constexpr milliseconds kMinEvaluationInterval{10'000};
constexpr milliseconds kMaxEvaluationInterval{3'600'000};
constexpr milliseconds kMinStep{1'000};
constexpr milliseconds kMaxStep{3'600'000};
constexpr milliseconds kMaxSpanDuration{3'600'000};
constexpr milliseconds kMaxPipelineDuration{86'400'000};
constexpr uint32_t kMaxShards = 64;

TestPosition PositionOf(const YamlMark& mark) {
  return TestPosition{.line = mark.DisplayLine(), .column = mark.DisplayColumn()};
}

std::string PositionText(const TestPosition& p) {
  return std::to_string(p.line) + ":" + std::to_string(p.column);
}

// A value as written (14.4, 0.0005), without exponents for the usual magnitudes.
std::string Written(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.10g", value);
  return buffer;
}

std::string Figure(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.6g", value);
  return buffer;
}

milliseconds LastExpectation(const RuleTest& test) {
  milliseconds last{0};
  for (const Expectation& e : test.expect) last = std::max(last, e.at);
  return last;
}

// A value written into a YAML flow mapping: plain when that reads back the same, else quoted.
std::string YamlValue(std::string_view text) {
  const bool plain = !text.empty() && std::isalnum(static_cast<unsigned char>(text.front())) &&
                     std::all_of(text.begin(), text.end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
                              c == '.' || c == '/';
                     });
  return plain ? std::string(text) : QuoteForMessage(text);
}

// ---------------------------------------------------------------------------------------------
// Reading one test file's tree. Like the rule file reader: every problem is recorded and the walk
// goes on, so one run reports them all.

class Reader : public DiagnosticReader {
 public:
  Reader(std::string_view text, std::string_view source, std::vector<Diagnostic>& diagnostics)
      : DiagnosticReader(source, diagnostics), text_(text) {
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string_view::npos) end = text.size();
      lines_.push_back(text.substr(start, end - start));
      start = end + 1;
    }
  }

  using DiagnosticReader::Error;
  void Error(const TestPosition& position, std::string message) {
    ErrorAt(position.line, position.column, std::move(message));
  }

  std::optional<RuleTestFile> ReadFile(const YamlNode* root);

 private:
  // A non-empty printable string of at most kMaxNameBytes.
  std::optional<std::string> Name(const YamlNode& node, std::string_view path);
  template <typename T>
  std::optional<T> Choice(const YamlNode& node, std::string_view path,
                          std::initializer_list<std::pair<std::string_view, T>> choices);
  std::optional<StepSeries> Series(const YamlNode& node, std::string_view path);
  // Where byte `offset` of a one-line scalar's value is in the file, if it can be told.
  YamlMark ScalarOffset(const YamlNode& node, size_t offset, std::string_view token) const;

  void ReadPipeline(const YamlNode& node, config::PipelineConfig& pipeline);
  std::optional<RuleTest> ReadTest(const YamlNode& node, const std::string& path,
                                   milliseconds evaluation_interval);
  // Appends the traffic of one input entry (a latencies entry gives one per duration).
  bool ReadInput(const YamlNode& node, const std::string& path, std::vector<TestTraffic>& out);
  std::optional<std::vector<SpanShape>> ReadSpans(const YamlNode& node, const std::string& path);
  std::optional<Expectation> ReadExpectation(const YamlNode& node, const std::string& path,
                                             milliseconds evaluation_interval);
  std::optional<ExpectedAlert> ReadAlert(const YamlNode& node, const std::string& path);
  std::optional<ExpectedFigures> ReadFigures(const YamlNode& node, const std::string& path);
  // A mapping of windows to values, for burn_rate, sli and events.
  template <typename T, typename ReadValue>
  bool ReadWindows(const YamlNode& node, const std::string& path, std::map<int64_t, T>& out,
                   std::vector<std::pair<int64_t, TestPosition>>& windows, ReadValue read_value);

  std::string_view text_;
  std::vector<std::string_view> lines_;
  uint64_t file_spans_ = 0;
};

std::optional<std::string> Reader::Name(const YamlNode& node, std::string_view path) {
  std::optional<std::string> value = String(node, path);
  if (!value) return std::nullopt;
  if (value->empty() || value->size() > kMaxNameBytes || !IsPrintable(*value)) {
    Error(node.mark, std::string(path) + " must be 1 to " + std::to_string(kMaxNameBytes) +
                         " bytes without control characters, got " + QuoteForMessage(*value));
    return std::nullopt;
  }
  return value;
}

template <typename T>
std::optional<T> Reader::Choice(const YamlNode& node, std::string_view path,
                                std::initializer_list<std::pair<std::string_view, T>> choices) {
  if (node.kind == Kind::kScalar) {
    for (const auto& [name, value] : choices) {
      if (node.value == name) return value;
    }
  }
  std::string names;
  for (const auto& [name, value] : choices) {
    names += (names.empty() ? "" : ", ") + std::string(name);
  }
  Error(node.mark, std::string(path) + " must be one of " + names + ", got " +
                       (node.kind == Kind::kScalar ? QuoteForMessage(node.value)
                                                   : std::string(YamlKindName(node.kind))));
  return std::nullopt;
}

YamlMark Reader::ScalarOffset(const YamlNode& node, size_t offset, std::string_view token) const {
  if (node.mark.line < 0 || node.mark.column < 0 ||
      static_cast<size_t>(node.mark.line) >= lines_.size()) {
    return node.mark;
  }
  const std::string_view line = lines_[static_cast<size_t>(node.mark.line)];
  size_t start = static_cast<size_t>(node.mark.column);
  if (start < line.size() && (line[start] == '"' || line[start] == '\'')) ++start;
  // Only when the token really is there (no escapes or folding before it).
  if (start + offset + token.size() > line.size() ||
      line.substr(start + offset, token.size()) != token) {
    return node.mark;
  }
  return YamlMark{.line = node.mark.line, .column = static_cast<int>(start + offset)};
}

std::optional<StepSeries> Reader::Series(const YamlNode& node, std::string_view path) {
  if (node.kind != Kind::kScalar) {
    Error(node.mark, std::string(path) + " must be counts per step like \"100x30 0x30\", got " +
                         YamlKindName(node.kind));
    return std::nullopt;
  }
  size_t offset = 0;
  absl::StatusOr<StepSeries> series = ParseStepSeries(node.value, offset);
  if (!series.ok()) {
    std::string_view rest =
        std::string_view(node.value).substr(std::min(offset, node.value.size()));
    std::string_view token = rest.substr(0, rest.find_first_of(" \t"));
    Error(ScalarOffset(node, offset, token),
          std::string(path) + ": " + std::string(series.status().message()));
    return std::nullopt;
  }
  return *std::move(series);
}

void Reader::ReadPipeline(const YamlNode& node, config::PipelineConfig& pipeline) {
  std::optional<Fields> fields =
      Mapping(node, "pipeline", {"shards", "trace_idle_timeout", "trace_max_age", "max_lateness"});
  if (!fields) return;
  const milliseconds ms(1);
  if (const YamlNode* shards = fields->Value("shards")) {
    if (auto value = Uint(*shards, "pipeline.shards", 1, kMaxShards)) {
      pipeline.shards = static_cast<uint32_t>(*value);
    }
  }
  const YamlNode* idle = fields->Value("trace_idle_timeout");
  const YamlNode* age = fields->Value("trace_max_age");
  bool idle_ok = true, age_ok = true;
  if (idle != nullptr) {
    auto value = Duration(*idle, "pipeline.trace_idle_timeout", ms, kMaxPipelineDuration);
    if (value) pipeline.trace_idle_timeout = *value;
    idle_ok = value.has_value();
  }
  if (age != nullptr) {
    auto value = Duration(*age, "pipeline.trace_max_age", ms, kMaxPipelineDuration);
    if (value) pipeline.trace_max_age = *value;
    age_ok = value.has_value();
  }
  if (const YamlNode* lateness = fields->Value("max_lateness")) {
    auto value = Duration(*lateness, "pipeline.max_lateness", ms, kMaxPipelineDuration);
    if (value) pipeline.max_lateness = *value;
  }
  if (idle_ok && age_ok && (idle != nullptr || age != nullptr) &&
      pipeline.trace_max_age < pipeline.trace_idle_timeout) {
    Error((age != nullptr ? age : idle)->mark,
          "pipeline.trace_max_age (" + FormatDuration(pipeline.trace_max_age) +
              (age != nullptr ? "" : ", the default") +
              ") must be at least pipeline.trace_idle_timeout (" +
              FormatDuration(pipeline.trace_idle_timeout) +
              (idle != nullptr ? "" : ", the default") + ")");
  }
}

std::optional<std::vector<SpanShape>> Reader::ReadSpans(const YamlNode& node,
                                                        const std::string& path) {
  if (node.kind != Kind::kSequence || node.items.empty()) {
    Error(node.mark, path + " must be a non-empty list of spans, got " +
                         (node.kind == Kind::kSequence ? std::string("an empty list")
                                                       : std::string(YamlKindName(node.kind))));
    return std::nullopt;
  }
  if (node.items.size() > kMaxSpansPerShape) {
    Error(node.mark, path + " has " + std::to_string(node.items.size()) + " spans; at most " +
                         std::to_string(kMaxSpansPerShape) + " are allowed");
    return std::nullopt;
  }
  const size_t errors_before = errors();
  std::vector<SpanShape> spans(node.items.size());
  std::map<std::string, std::pair<size_t, YamlMark>> ids;
  std::vector<std::pair<std::string, const YamlNode*>> parents(node.items.size());
  for (size_t i = 0; i < node.items.size(); ++i) {
    const YamlNode& item = *node.items[i];
    const std::string span_path = Index(path, i);
    std::optional<Fields> fields =
        Mapping(item, span_path,
                {"id", "parent", "orphan", "service", "operation", "kind", "duration", "status",
                 "http_status", "grpc_status"});
    if (!fields) continue;
    if (item.kind == Kind::kNull) {
      Error(item.mark, span_path + " must be a mapping with service and operation, got null");
      continue;
    }
    SpanShape& span = spans[i];
    if (const YamlNode* id = fields->Value("id")) {
      if (auto value = Name(*id, Child(span_path, "id"))) {
        auto [it, inserted] = ids.emplace(*value, std::make_pair(i, id->mark));
        if (!inserted) {
          Error(id->mark, Child(span_path, "id") + ": duplicate span id " +
                              QuoteForMessage(*value) + " (first used at " +
                              PositionText(PositionOf(it->second.second)) + ")");
        }
      }
    }
    if (const YamlNode* parent = fields->Value("parent")) {
      if (auto value = Name(*parent, Child(span_path, "parent"))) parents[i] = {*value, parent};
    }
    if (const YamlNode* orphan = fields->Value("orphan")) {
      if (auto value = Bool(*orphan, Child(span_path, "orphan"))) span.orphan = *value;
      if (span.orphan && fields->Has("parent")) {
        Error(fields->Find("orphan")->key_node->mark,
              Child(span_path, "orphan") +
                  ": a span has either a parent that arrives (parent) or one that never does "
                  "(orphan: true), not both");
      }
    }
    if (const YamlNode* service = fields->Value("service")) {
      if (auto value = Name(*service, Child(span_path, "service"))) span.service = *value;
    } else {
      Required(*fields, item, span_path, "service");
    }
    if (const YamlNode* operation = fields->Value("operation")) {
      if (auto value = Name(*operation, Child(span_path, "operation"))) span.operation = *value;
    } else {
      Required(*fields, item, span_path, "operation");
    }
    if (const YamlNode* kind = fields->Value("kind")) {
      if (auto value = Choice<SpanKind>(*kind, Child(span_path, "kind"),
                                        {{"server", SpanKind::kServer},
                                         {"client", SpanKind::kClient},
                                         {"internal", SpanKind::kInternal},
                                         {"producer", SpanKind::kProducer},
                                         {"consumer", SpanKind::kConsumer}})) {
        span.kind = *value;
      }
    }
    if (const YamlNode* duration = fields->Value("duration")) {
      if (auto value = Duration(*duration, Child(span_path, "duration"), milliseconds(0),
                                kMaxSpanDuration)) {
        span.duration = *value;
      }
    }
    if (const YamlNode* status = fields->Value("status")) {
      if (auto value = Choice<StatusCode>(*status, Child(span_path, "status"),
                                          {{"unset", StatusCode::kUnset},
                                           {"ok", StatusCode::kOk},
                                           {"error", StatusCode::kError}})) {
        span.status = *value;
      }
    }
    if (const YamlNode* http = fields->Value("http_status")) {
      if (auto value = Uint(*http, Child(span_path, "http_status"), 100, 599)) {
        span.http_status = static_cast<int32_t>(*value);
      }
    }
    if (const YamlNode* grpc = fields->Value("grpc_status")) {
      if (auto value = Uint(*grpc, Child(span_path, "grpc_status"), 0, 16)) {
        span.rpc_status = static_cast<int32_t>(*value);
      }
    }
  }
  // Parents by id, in any order; a cycle would leave the trace without a root.
  for (size_t i = 0; i < spans.size(); ++i) {
    const auto& [name, parent_node] = parents[i];
    if (parent_node == nullptr) continue;
    auto it = ids.find(name);
    if (it == ids.end()) {
      Error(parent_node->mark,
            Child(Index(path, i), "parent") + ": no span of this trace has id " +
                QuoteForMessage(name) +
                " (for a parent that never arrives, write orphan: true instead)");
    } else if (it->second.first == i) {
      Error(parent_node->mark,
            Child(Index(path, i), "parent") + ": a span cannot be its own parent");
    } else {
      spans[i].parent = static_cast<int32_t>(it->second.first);
    }
  }
  if (errors() != errors_before) return std::nullopt;
  for (size_t i = 0; i < spans.size(); ++i) {
    size_t hops = 0;
    for (int32_t p = spans[i].parent; p >= 0 && hops <= spans.size(); p = spans[p].parent) ++hops;
    if (hops > spans.size()) {
      Error(node.items[i]->mark, Index(path, i) +
                                     ": the spans' parents form a cycle; a trace needs a root "
                                     "(a span without parent)");
      return std::nullopt;
    }
  }
  return spans;
}

bool Reader::ReadInput(const YamlNode& node, const std::string& path,
                       std::vector<TestTraffic>& out) {
  std::optional<Fields> fields = Mapping(
      node, path,
      {"service", "operation", "requests", "errors", "duration", "latencies", "traces", "spans"});
  if (!fields) return false;
  if (node.kind == Kind::kNull) {
    Error(node.mark, path + " must be a mapping with requests, latencies or traces, got null");
    return false;
  }
  const size_t errors_before = errors();
  const char* kinds[] = {"requests", "latencies", "traces"};
  std::vector<std::string_view> given;
  for (const char* kind : kinds) {
    if (fields->Find(kind) != nullptr) given.push_back(kind);
  }
  if (given.size() != 1) {
    Error(given.size() > 1 ? fields->Find(given[1])->key_node->mark : node.mark,
          path + (given.empty() ? std::string(" needs one of requests, latencies or traces")
                                : " has both " + std::string(given[0]) + " and " +
                                      std::string(given[1]) + "; write one input entry for each"));
    return false;
  }
  const std::string_view kind = given.front();
  // Keys that do not go with this kind of input.
  auto refuse = [&](std::initializer_list<std::string_view> keys, const std::string& why) {
    for (std::string_view key : keys) {
      if (const Fields::Entry* entry = fields->Find(key)) {
        Error(entry->key_node->mark,
              Child(path, key) + " does not go with " + std::string(kind) + why);
      }
    }
  };
  TestTraffic traffic;
  traffic.position = PositionOf(node.mark);
  if (kind == "traces") {
    refuse({"service", "operation", "errors", "duration"},
           ": each span of `spans` names its service, operation, duration and status");
    if (auto count = Series(*fields->Find("traces")->value, Child(path, "traces"))) {
      traffic.count = *std::move(count);
    }
    if (const YamlNode* spans = fields->Value("spans")) {
      if (auto shape = ReadSpans(*spans, Child(path, "spans"))) traffic.spans = *std::move(shape);
    } else {
      Required(*fields, node, path, "spans");
    }
    if (errors() != errors_before) return false;
    out.push_back(std::move(traffic));
    return true;
  }
  refuse({"traces", "spans"}, "");
  SpanShape span;
  if (const YamlNode* service = fields->Value("service")) {
    if (auto value = Name(*service, Child(path, "service"))) span.service = *value;
  } else {
    Required(*fields, node, path, "service");
  }
  if (const YamlNode* operation = fields->Value("operation")) {
    if (auto value = Name(*operation, Child(path, "operation"))) span.operation = *value;
  } else {
    Required(*fields, node, path, "operation");
  }
  if (kind == "latencies") {
    refuse({"errors", "duration"},
           ": latencies are requests that succeed; write failing requests as a requests input "
           "with errors and duration");
    const YamlNode& latencies = *fields->Find("latencies")->value;
    const std::string latencies_path = Child(path, "latencies");
    if (latencies.kind != Kind::kMapping || latencies.entries.empty()) {
      Error(latencies.mark,
            latencies_path +
                " must map durations to counts per step, like {\"50ms\": "
                "\"90x60\", \"2s\": \"10x60\"}, got " +
                (latencies.kind == Kind::kMapping ? std::string("an empty mapping")
                                                  : std::string(YamlKindName(latencies.kind))));
      return false;
    }
    if (latencies.entries.size() > kMaxInputsPerTest) {
      Error(latencies.mark, latencies_path + " has " + std::to_string(latencies.entries.size()) +
                                " durations; at most " + std::to_string(kMaxInputsPerTest) +
                                " are allowed");
      return false;
    }
    std::map<int64_t, YamlMark> seen;
    std::vector<TestTraffic> parts;
    for (const auto& [key, value] : latencies.entries) {
      auto duration = Duration(*key, latencies_path, milliseconds(0), kMaxSpanDuration);
      auto count = Series(
          *value, latencies_path + "[" + (key->kind == Kind::kScalar ? key->value : "?") + "]");
      if (!duration || !count) continue;
      if (auto [it, inserted] = seen.emplace(duration->count(), key->mark); !inserted) {
        Error(key->mark, latencies_path + ": duration " + FormatDuration(*duration) +
                             " is listed twice (first at " + PositionText(PositionOf(it->second)) +
                             ")");
        continue;
      }
      TestTraffic part;
      part.position = traffic.position;
      part.count = *std::move(count);
      part.spans.push_back(span);
      part.spans.back().duration = *duration;
      parts.push_back(std::move(part));
    }
    if (errors() != errors_before) return false;
    for (TestTraffic& part : parts) out.push_back(std::move(part));
    return true;
  }
  // requests
  const Fields::Entry* requests_entry = fields->Find("requests");
  auto requests = Series(*requests_entry->value, Child(path, "requests"));
  if (requests) traffic.count = *std::move(requests);
  if (const YamlNode* errors_node = fields->Value("errors")) {
    if (auto series = Series(*errors_node, Child(path, "errors"))) {
      traffic.errors = *std::move(series);
      if (requests) {
        // errors.At(i) <= requests.At(i) at every step: both are piecewise linear, so the ends of
        // each piece where both runs stay the same are enough.
        std::vector<uint64_t> cuts;
        for (const StepSeries* s : {&traffic.count, &traffic.errors}) {
          uint64_t start = 0;
          for (const StepSeries::Run& run : s->runs()) {
            cuts.push_back(start);
            start += run.steps;
          }
          cuts.push_back(start);
        }
        std::sort(cuts.begin(), cuts.end());
        cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
        for (size_t c = 0; c + 1 < cuts.size(); ++c) {
          for (uint64_t step : {cuts[c], cuts[c + 1] - 1}) {
            if (step >= traffic.errors.steps()) continue;
            const uint64_t e = traffic.errors.At(step);
            const uint64_t r = traffic.count.At(step);
            if (e > r) {
              Error(errors_node->mark, Child(path, "errors") + " has " + std::to_string(e) +
                                           " errors at step " + std::to_string(step + 1) +
                                           ", more than its " + std::to_string(r) + " requests");
              c = cuts.size();
              break;
            }
          }
        }
      }
    }
  }
  if (const YamlNode* duration = fields->Value("duration")) {
    if (auto value =
            Duration(*duration, Child(path, "duration"), milliseconds(0), kMaxSpanDuration)) {
      span.duration = *value;
    }
  }
  if (errors() != errors_before) return false;
  traffic.spans.push_back(span);
  out.push_back(std::move(traffic));
  return true;
}

template <typename T, typename ReadValue>
bool Reader::ReadWindows(const YamlNode& node, const std::string& path, std::map<int64_t, T>& out,
                         std::vector<std::pair<int64_t, TestPosition>>& windows,
                         ReadValue read_value) {
  if (node.kind != Kind::kMapping || node.entries.empty()) {
    Error(node.mark, path + " must map windows to values, like {1h: 14.4, 5m: 14.4}, got " +
                         (node.kind == Kind::kMapping ? std::string("an empty mapping")
                                                      : std::string(YamlKindName(node.kind))));
    return false;
  }
  bool ok = true;
  for (const auto& [key, value] : node.entries) {
    auto window = Duration(*key, path, kResolution, milliseconds(366LL * 86'400'000));
    const std::string value_path =
        path + "[" + (key->kind == Kind::kScalar ? key->value : std::string("?")) + "]";
    std::optional<T> parsed = read_value(*value, value_path);
    if (!window || !parsed) {
      ok = false;
      continue;
    }
    if (!out.emplace(window->count(), *parsed).second) {
      Error(key->mark, path + ": window " + FormatDuration(*window) + " is listed twice");
      ok = false;
      continue;
    }
    windows.emplace_back(window->count(), PositionOf(key->mark));
  }
  return ok;
}

std::optional<ExpectedAlert> Reader::ReadAlert(const YamlNode& node, const std::string& path) {
  std::optional<Fields> fields =
      Mapping(node, path, {"service", "slo", "severity", "state", "no_data"});
  if (!fields) return std::nullopt;
  if (node.kind == Kind::kNull) {
    Error(node.mark, path + " must be a mapping with slo and severity, got null");
    return std::nullopt;
  }
  const size_t errors_before = errors();
  ExpectedAlert alert;
  alert.position = PositionOf(node.mark);
  alert.slo_position = alert.severity_position = alert.state_position = alert.position;
  if (const YamlNode* service = fields->Value("service")) {
    if (auto value = Name(*service, Child(path, "service"))) alert.service = *value;
  }
  if (const YamlNode* slo = fields->Value("slo")) {
    if (auto value = Name(*slo, Child(path, "slo"))) alert.slo = *value;
    alert.slo_position = PositionOf(slo->mark);
  } else {
    Required(*fields, node, path, "slo");
  }
  if (const YamlNode* severity = fields->Value("severity")) {
    if (auto value = Name(*severity, Child(path, "severity"))) alert.severity = *value;
    alert.severity_position = PositionOf(severity->mark);
  } else {
    Required(*fields, node, path, "severity");
  }
  if (const YamlNode* state = fields->Value("state")) {
    alert.state_position = PositionOf(state->mark);
    if (state->kind == Kind::kScalar && state->value == "inactive") {
      Error(state->mark, Child(path, "state") +
                             ": inactive alerts are not listed; leave the alert out (an empty "
                             "alerts list means nothing is pending or firing)");
    } else if (auto value = Choice<AlertState>(*state, Child(path, "state"),
                                               {{"pending", AlertState::kPending},
                                                {"firing", AlertState::kFiring},
                                                {"resolved", AlertState::kResolved}})) {
      alert.state = *value;
    }
  }
  if (const YamlNode* no_data = fields->Value("no_data")) {
    if (auto value = Bool(*no_data, Child(path, "no_data"))) alert.no_data = *value;
  }
  if (errors() != errors_before) return std::nullopt;
  return alert;
}

std::optional<ExpectedFigures> Reader::ReadFigures(const YamlNode& node, const std::string& path) {
  std::optional<Fields> fields =
      Mapping(node, path,
              {"service", "slo", "burn_rate", "sli", "events", "error_budget_remaining",
               "latency_quantile_seconds", "tolerance"});
  if (!fields) return std::nullopt;
  if (node.kind == Kind::kNull) {
    Error(node.mark, path + " must be a mapping with slo and the figures to check, got null");
    return std::nullopt;
  }
  const size_t errors_before = errors();
  ExpectedFigures figures;
  figures.position = figures.slo_position = PositionOf(node.mark);
  if (const YamlNode* service = fields->Value("service")) {
    if (auto value = Name(*service, Child(path, "service"))) figures.service = *value;
  }
  if (const YamlNode* slo = fields->Value("slo")) {
    if (auto value = Name(*slo, Child(path, "slo"))) figures.slo = *value;
    figures.slo_position = PositionOf(slo->mark);
  } else {
    Required(*fields, node, path, "slo");
  }
  if (const YamlNode* tolerance = fields->Value("tolerance")) {
    auto value = Number(*tolerance, Child(path, "tolerance"));
    if (value && *value < 0) {
      Error(tolerance->mark,
            Child(path, "tolerance") + " must be 0 or more, got " + Written(*value));
    } else if (value) {
      figures.tolerance = *value;
    }
  }
  auto number = [this](const YamlNode& value, const std::string& value_path) {
    return Number(value, value_path);
  };
  bool any = false;
  if (const YamlNode* burn = fields->Value("burn_rate")) {
    ReadWindows(*burn, Child(path, "burn_rate"), figures.burn_rate, figures.windows, number);
    any = true;
  }
  if (const YamlNode* sli = fields->Value("sli")) {
    ReadWindows(*sli, Child(path, "sli"), figures.sli, figures.windows, number);
    any = true;
  }
  if (const YamlNode* events = fields->Value("events")) {
    ReadWindows(
        *events, Child(path, "events"), figures.events, figures.windows,
        [this](const YamlNode& value, const std::string& value_path) -> std::optional<Events> {
          std::optional<Fields> counts = Mapping(value, value_path, {"total", "bad"});
          if (!counts) return std::nullopt;
          const YamlNode* total = counts->Value("total");
          const YamlNode* bad = counts->Value("bad");
          if (total == nullptr || bad == nullptr) {
            Error(value.mark, value_path + " must be {total: N, bad: M}");
            return std::nullopt;
          }
          auto t = Uint(*total, Child(value_path, "total"), 0, UINT64_MAX);
          auto b = Uint(*bad, Child(value_path, "bad"), 0, UINT64_MAX);
          if (!t || !b) return std::nullopt;
          return Events{.total = *t, .bad = *b};
        });
    any = true;
  }
  if (const YamlNode* remaining = fields->Value("error_budget_remaining")) {
    figures.error_budget_remaining = Number(*remaining, Child(path, "error_budget_remaining"));
    any = true;
  }
  if (const YamlNode* quantile = fields->Value("latency_quantile_seconds")) {
    figures.latency_quantile_seconds = Number(*quantile, Child(path, "latency_quantile_seconds"));
    any = true;
  }
  if (!any && errors() == errors_before) {
    Error(node.mark, path +
                         " checks nothing: give burn_rate, sli, events, error_budget_remaining "
                         "or latency_quantile_seconds");
  }
  if (errors() != errors_before) return std::nullopt;
  return figures;
}

std::optional<Expectation> Reader::ReadExpectation(const YamlNode& node, const std::string& path,
                                                   milliseconds evaluation_interval) {
  std::optional<Fields> fields = Mapping(node, path, {"at", "alerts", "slos"});
  if (!fields) return std::nullopt;
  if (node.kind == Kind::kNull) {
    Error(node.mark, path + " must be a mapping with at and alerts, got null");
    return std::nullopt;
  }
  const size_t errors_before = errors();
  Expectation expectation;
  expectation.position = PositionOf(node.mark);
  if (const YamlNode* at = fields->Value("at")) {
    if (auto value = Duration(*at, Child(path, "at"), evaluation_interval, kMaxTestDuration)) {
      if (value->count() % evaluation_interval.count() != 0) {
        const int64_t before = value->count() / evaluation_interval.count();
        Error(at->mark, Child(path, "at") + " " + FormatDuration(*value) +
                            " is not an evaluation time: the rules are evaluated every " +
                            FormatDuration(evaluation_interval) + " (" +
                            FormatDuration(evaluation_interval * before) + " and " +
                            FormatDuration(evaluation_interval * (before + 1)) + " are)");
      } else {
        expectation.at = *value;
      }
    }
  } else {
    Required(*fields, node, path, "at");
  }
  if (const Fields::Entry* alerts = fields->Find("alerts")) {
    const std::string alerts_path = Child(path, "alerts");
    expectation.check_alerts = true;
    const YamlNode& list = *alerts->value;
    if (list.kind == Kind::kNull) {
      Error(alerts->key_node->mark,
            alerts_path + " must be a list (write [] when nothing may be pending or firing)");
    } else if (list.kind != Kind::kSequence) {
      Error(list.mark, alerts_path + " must be a list of alerts, got " + YamlKindName(list.kind));
    } else if (list.items.size() > kMaxAlertsPerExpectation) {
      Error(list.mark, alerts_path + " has " + std::to_string(list.items.size()) +
                           " alerts; at most " + std::to_string(kMaxAlertsPerExpectation) +
                           " are allowed");
    } else {
      for (size_t i = 0; i < list.items.size(); ++i) {
        if (auto alert = ReadAlert(*list.items[i], Index(alerts_path, i))) {
          expectation.alerts.push_back(*std::move(alert));
        }
      }
    }
  }
  if (const YamlNode* slos = fields->Value("slos")) {
    const std::string slos_path = Child(path, "slos");
    if (slos->kind != Kind::kSequence || slos->items.empty()) {
      Error(slos->mark,
            slos_path + " must be a non-empty list of SLO figures, got " +
                (slos->kind == Kind::kSequence ? std::string("an empty list")
                                               : std::string(YamlKindName(slos->kind))));
    } else if (slos->items.size() > kMaxAlertsPerExpectation) {
      Error(slos->mark,
            slos_path + " lists more than " + std::to_string(kMaxAlertsPerExpectation) + " SLOs");
    } else {
      for (size_t i = 0; i < slos->items.size(); ++i) {
        if (auto figures = ReadFigures(*slos->items[i], Index(slos_path, i))) {
          expectation.slos.push_back(*std::move(figures));
        }
      }
    }
  }
  if (fields->Find("alerts") == nullptr && fields->Find("slos") == nullptr &&
      errors() == errors_before) {
    Error(node.mark, path + " checks nothing: give alerts (a list, [] for none) or slos");
  }
  if (errors() != errors_before) return std::nullopt;
  return expectation;
}

std::optional<RuleTest> Reader::ReadTest(const YamlNode& node, const std::string& path,
                                         milliseconds evaluation_interval) {
  std::optional<Fields> fields = Mapping(node, path, {"name", "interval", "input", "expect"});
  if (!fields) return std::nullopt;
  if (node.kind == Kind::kNull) {
    Error(node.mark, path + " must be a mapping with name, input and expect, got null");
    return std::nullopt;
  }
  const size_t errors_before = errors();
  RuleTest test;
  test.position = PositionOf(node.mark);
  test.interval = evaluation_interval;
  if (const YamlNode* name = fields->Value("name")) {
    if (auto value = Name(*name, Child(path, "name"))) test.name = *value;
  } else {
    Required(*fields, node, path, "name");
  }
  if (const YamlNode* interval = fields->Value("interval")) {
    if (auto value = Duration(*interval, Child(path, "interval"), kMinStep, kMaxStep)) {
      test.interval = *value;
    }
  }
  if (const YamlNode* input = fields->Value("input")) {
    const std::string input_path = Child(path, "input");
    if (input->kind != Kind::kSequence) {
      Error(input->mark,
            input_path + " must be a list of inputs, got " + YamlKindName(input->kind));
    } else if (input->items.size() > kMaxInputsPerTest) {
      Error(input->mark, input_path + " has " + std::to_string(input->items.size()) +
                             " entries; at most " + std::to_string(kMaxInputsPerTest) +
                             " are allowed");
    } else {
      for (size_t i = 0; i < input->items.size(); ++i) {
        ReadInput(*input->items[i], Index(input_path, i), test.inputs);
      }
    }
  }
  const YamlNode* expect = fields->Value("expect");
  if (expect == nullptr) {
    Required(*fields, node, path, "expect");
  } else if (expect->kind != Kind::kSequence || expect->items.empty()) {
    Error(expect->mark,
          Child(path, "expect") +
              " must be a non-empty list (a test without expectations cannot "
              "fail), got " +
              (expect->kind == Kind::kSequence ? std::string("an empty list")
                                               : std::string(YamlKindName(expect->kind))));
  } else if (expect->items.size() > kMaxExpectationsPerTest) {
    Error(expect->mark, Child(path, "expect") + " has " + std::to_string(expect->items.size()) +
                            " entries; at most " + std::to_string(kMaxExpectationsPerTest) +
                            " are allowed");
  } else {
    for (size_t i = 0; i < expect->items.size(); ++i) {
      if (auto expectation = ReadExpectation(*expect->items[i], Index(Child(path, "expect"), i),
                                             evaluation_interval)) {
        test.expect.push_back(*std::move(expectation));
      }
    }
  }
  if (test.inputs.size() > kMaxInputsPerTest) {
    Error(fields->Find("input")->key_node->mark,
          Child(path, "input") + " makes " + std::to_string(test.inputs.size()) +
              " inputs (each duration of latencies is one); at most " +
              std::to_string(kMaxInputsPerTest) + " are allowed");
  }
  if (errors() != errors_before) return std::nullopt;
  // The work the test asks for: its spans, up to the last expectation.
  const milliseconds duration = LastExpectation(test);
  const uint64_t steps =
      static_cast<uint64_t>((duration.count() + test.interval.count() - 1) / test.interval.count());
  uint64_t spans = 0;
  for (const TestTraffic& traffic : test.inputs) {
    spans += traffic.count.Sum(steps) * traffic.spans.size();
  }
  if (spans > kMaxSpansPerTest) {
    Error(node.mark, path + " sends " + std::to_string(spans) +
                         " spans up to its last expectation; at most " +
                         std::to_string(kMaxSpansPerTest) + " are allowed per test");
    return std::nullopt;
  }
  file_spans_ += spans;
  if (file_spans_ > kMaxSpansPerFile) {
    Error(node.mark, path + ": the tests of this file send more than " +
                         std::to_string(kMaxSpansPerFile) + " spans in all");
    return std::nullopt;
  }
  return test;
}

std::optional<RuleTestFile> Reader::ReadFile(const YamlNode* root) {
  if (root == nullptr || root->kind == Kind::kNull) {
    Error(root ? root->mark : YamlMark{},
          "the test file is empty; it needs rule_files and tests (see rules/README.md)");
    return std::nullopt;
  }
  if (root->kind != Kind::kMapping) {
    Error(root->mark,
          std::string("the top level must be a mapping with rule_files and tests, got ") +
              YamlKindName(root->kind));
    return std::nullopt;
  }
  std::optional<Fields> fields =
      Mapping(*root, "", {"rule_files", "evaluation_interval", "pipeline", "tests"});
  RuleTestFile file;
  file.path = std::string(source());
  if (const YamlNode* rule_files = fields->Value("rule_files")) {
    file.rule_files_position = PositionOf(rule_files->mark);
    if (rule_files->kind == Kind::kScalar) {
      if (auto value = Name(*rule_files, "rule_files")) file.rule_files.push_back(*value);
    } else if (rule_files->kind != Kind::kSequence || rule_files->items.empty()) {
      Error(rule_files->mark, "rule_files must be a path or a non-empty list of paths, got " +
                                  (rule_files->kind == Kind::kSequence
                                       ? std::string("an empty list")
                                       : std::string(YamlKindName(rule_files->kind))));
    } else if (rule_files->items.size() > kMaxRuleFileArgs) {
      Error(rule_files->mark,
            "rule_files lists more than " + std::to_string(kMaxRuleFileArgs) + " paths");
    } else {
      for (size_t i = 0; i < rule_files->items.size(); ++i) {
        if (auto value = Name(*rule_files->items[i], Index("rule_files", i))) {
          file.rule_files.push_back(*value);
        }
      }
    }
  } else {
    Required(*fields, *root, "", "rule_files");
  }
  if (const YamlNode* interval = fields->Value("evaluation_interval")) {
    if (auto value = Duration(*interval, "evaluation_interval", kMinEvaluationInterval,
                              kMaxEvaluationInterval)) {
      if (value->count() % 1000 != 0) {
        Error(interval->mark, "evaluation_interval must be a whole number of seconds, got " +
                                  FormatDuration(*value));
      } else {
        file.evaluation_interval = *value;
      }
    }
  }
  if (const YamlNode* pipeline = fields->Value("pipeline")) ReadPipeline(*pipeline, file.pipeline);
  const YamlNode* tests = fields->Value("tests");
  if (tests == nullptr) {
    Required(*fields, *root, "", "tests");
  } else if (tests->kind != Kind::kSequence || tests->items.empty()) {
    Error(tests->mark,
          "tests must be a non-empty list of tests, got " +
              (tests->kind == Kind::kSequence ? std::string("an empty list")
                                              : std::string(YamlKindName(tests->kind))));
  } else if (tests->items.size() > kMaxTestsPerFile) {
    Error(tests->mark, "tests has " + std::to_string(tests->items.size()) + " tests; at most " +
                           std::to_string(kMaxTestsPerFile) + " are allowed per file");
  } else {
    std::map<std::string, TestPosition> names;
    for (size_t i = 0; i < tests->items.size(); ++i) {
      std::optional<RuleTest> test =
          ReadTest(*tests->items[i], Index("tests", i), file.evaluation_interval);
      if (!test) continue;
      if (auto [it, inserted] = names.emplace(test->name, test->position); !inserted) {
        Error(test->position, Index("tests", i) + ".name: duplicate test name " +
                                  QuoteForMessage(test->name) + " (first at " +
                                  PositionText(it->second) + ")");
        continue;
      }
      file.tests.push_back(*std::move(test));
    }
  }
  if (errors() != 0) return std::nullopt;
  return file;
}

// ---------------------------------------------------------------------------------------------
// Binding expectations to the rules.

// The alerts an SLO can raise: (severity, no_data).
std::vector<std::pair<Severity, bool>> AlertsOf(const Slo& slo) {
  std::vector<std::pair<Severity, bool>> out;
  if (slo.sli.kind == SliKind::kLatencyQuantile) {
    out.emplace_back(slo.alerting.severity, false);
  } else {
    for (Severity severity : {Severity::kPage, Severity::kTicket}) {
      if (std::any_of(slo.alerting.tiers.begin(), slo.alerting.tiers.end(),
                      [&](const BurnRateTier& t) { return t.severity == severity; })) {
        out.emplace_back(severity, false);
      }
    }
  }
  if (slo.alerting.no_data) out.emplace_back(slo.alerting.no_data->severity, true);
  return out;
}

std::string SeverityLabel(const Slo& slo, Severity severity) {
  return AlertLabels(slo, severity)["severity"];
}

// The windows the evaluator reports for an SLO: its tiers' windows and its compliance window.
std::vector<milliseconds> WindowsOf(const Slo& slo) {
  std::vector<milliseconds> windows;
  if (slo.sli.kind == SliKind::kLatencyQuantile) return windows;
  for (const BurnRateTier& t : slo.alerting.tiers) {
    windows.push_back(t.short_window);
    windows.push_back(t.long_window);
  }
  windows.push_back(slo.window);
  std::sort(windows.begin(), windows.end());
  windows.erase(std::unique(windows.begin(), windows.end()), windows.end());
  return windows;
}

class Binder {
 public:
  Binder(const RuleTestFile& file, const std::vector<Slo>& slos,
         std::vector<Diagnostic>& diagnostics)
      : file_(file), slos_(slos), diagnostics_(diagnostics) {}

  void Error(const TestPosition& position, std::string message) {
    diagnostics_.push_back(Diagnostic{.file = file_.path,
                                      .line = position.line,
                                      .column = position.column,
                                      .message = std::move(message)});
  }

  // The SLO named by (service, slo) as written; reports at `position` when there is none or
  // more than one.
  const Slo* Find(const std::string& service, const std::string& name, const std::string& path,
                  const TestPosition& position) {
    std::vector<const Slo*> found;
    std::set<std::string> services;
    for (const Slo& slo : slos_) {
      services.insert(slo.service);
      if (slo.name == name && (service.empty() || slo.service == service)) found.push_back(&slo);
    }
    if (found.size() == 1) return found.front();
    if (found.size() > 1) {
      std::string list;
      for (const Slo* slo : found) list += (list.empty() ? "" : ", ") + slo->service;
      Error(position, path + ": SLO " + QuoteForMessage(name) +
                          " is defined for several services (" + list + "); add service");
      return nullptr;
    }
    if (!service.empty() && services.count(service) == 0) {
      std::string list;
      for (const std::string& s : services) list += (list.empty() ? "" : ", ") + s;
      Error(position, path + ": no rule file of this test defines service " +
                          QuoteForMessage(service) + " (they define " + list + ")");
      return nullptr;
    }
    std::string names;
    std::string hint;
    for (const Slo& slo : slos_) {
      if (!service.empty() && slo.service != service) continue;
      names += (names.empty() ? "" : ", ") + slo.name;
      if (hint.empty() && !config::ClosestKey(name, {std::string_view(slo.name)}).empty()) {
        hint = slo.name;
      }
    }
    Error(position,
          path + ": no SLO named " + QuoteForMessage(name) +
              (service.empty() ? std::string(" in the rule files")
                               : " for service " + QuoteForMessage(service)) +
              (hint.empty() ? " (SLOs: " + names + ")" : "; did you mean '" + hint + "'?"));
    return nullptr;
  }

  void BindAlert(ExpectedAlert& alert, const std::string& path) {
    const Slo* slo = Find(alert.service, alert.slo, path, alert.slo_position);
    if (slo == nullptr) return;
    alert.bound_service = slo->service;
    const auto alerts = AlertsOf(*slo);
    std::optional<Severity> severity;
    for (const auto& [s, no_data] : alerts) {
      if (no_data == alert.no_data && alert.severity == SeverityName(s)) severity = s;
    }
    for (const auto& [s, no_data] : alerts) {
      if (!severity && no_data == alert.no_data && alert.severity == SeverityLabel(*slo, s)) {
        severity = s;
      }
    }
    if (!severity) {
      std::string list;
      for (const auto& [s, no_data] : alerts) {
        list += (list.empty() ? "" : ", ") + std::string("{severity: ") +
                YamlValue(SeverityLabel(*slo, s)) + (no_data ? ", no_data: true}" : "}");
      }
      Error(alert.severity_position,
            path + ": " + slo->service + "/" + slo->name + " raises no " +
                (alert.no_data ? "no_data alert" : "alert") + " of severity " +
                QuoteForMessage(alert.severity) + "; its alerts: " +
                (list.empty() ? std::string("none (every tier is disabled)") : list));
      return;
    }
    alert.bound_severity = *severity;
    if (alert.state == AlertState::kPending &&
        (alert.no_data || slo->sli.kind != SliKind::kLatencyQuantile ||
         slo->sli.latency_quantile.for_duration.count() == 0)) {
      Error(alert.state_position,
            path + ".state: this alert is never pending: " +
                (alert.no_data
                     ? std::string("a no_data alert fires once its SLI has had no event for its "
                                   "`for`")
                 : slo->sli.kind == SliKind::kLatencyQuantile
                     ? std::string("its latency_quantile SLO has no `for`")
                     : std::string("burn-rate alerts fire at the first evaluation where a tier "
                                   "holds (the long window is their `for`)")));
    }
  }

  void BindFigures(ExpectedFigures& figures, const std::string& path) {
    const Slo* slo = Find(figures.service, figures.slo, path, figures.slo_position);
    if (slo == nullptr) return;
    figures.bound_service = slo->service;
    const bool quantile = slo->sli.kind == SliKind::kLatencyQuantile;
    const std::string name = slo->service + "/" + slo->name;
    if (quantile && (!figures.burn_rate.empty() || !figures.sli.empty() ||
                     !figures.events.empty() || figures.error_budget_remaining)) {
      Error(figures.position, path + ": " + name +
                                  " is a latency_quantile SLO: it has no windows of events or "
                                  "error budget; check latency_quantile_seconds");
      return;
    }
    if (!quantile && figures.latency_quantile_seconds) {
      Error(figures.position, path +
                                  ": latency_quantile_seconds applies to latency_quantile SLOs; "
                                  "the SLI of " +
                                  name + " is " + std::string(SliKindName(slo->sli.kind)));
      return;
    }
    const std::vector<milliseconds> windows = WindowsOf(*slo);
    for (const auto& [window, position] : figures.windows) {
      if (std::find(windows.begin(), windows.end(), milliseconds(window)) != windows.end()) {
        continue;
      }
      std::string list;
      for (milliseconds w : windows) list += (list.empty() ? "" : ", ") + FormatDuration(w);
      Error(position, path + ": " + name + " is not evaluated over " +
                          FormatDuration(milliseconds(window)) + " (its windows: " + list + ")");
    }
  }

  void Bind(RuleTestFile& file) {
    for (size_t t = 0; t < file.tests.size(); ++t) {
      RuleTest& test = file.tests[t];
      for (size_t e = 0; e < test.expect.size(); ++e) {
        Expectation& expectation = test.expect[e];
        const std::string path = Index(Index("tests", t) + ".expect", e);
        std::map<std::tuple<std::string, Severity, bool, std::string>, TestPosition> seen;
        for (size_t a = 0; a < expectation.alerts.size(); ++a) {
          ExpectedAlert& alert = expectation.alerts[a];
          const size_t before = diagnostics_.size();
          BindAlert(alert, path + Index(".alerts", a));
          if (diagnostics_.size() != before) continue;
          auto key =
              std::make_tuple(alert.bound_service, alert.bound_severity, alert.no_data, alert.slo);
          if (auto [it, inserted] = seen.emplace(key, alert.position); !inserted) {
            Error(alert.position, path + Index(".alerts", a) +
                                      ": the same alert is listed twice (first at " +
                                      PositionText(it->second) + ")");
          }
        }
        for (size_t f = 0; f < expectation.slos.size(); ++f) {
          BindFigures(expectation.slos[f], path + Index(".slos", f));
        }
      }
    }
  }

 private:
  const RuleTestFile& file_;
  const std::vector<Slo>& slos_;
  std::vector<Diagnostic>& diagnostics_;
};

void SortByPosition(std::vector<Diagnostic>& diagnostics, size_t first) {
  std::stable_sort(diagnostics.begin() + static_cast<std::ptrdiff_t>(first), diagnostics.end(),
                   [](const Diagnostic& a, const Diagnostic& b) {
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
}

std::optional<RuleTestFile> ParseText(std::string_view text, std::string_view source,
                                      std::vector<Diagnostic>& diagnostics) {
  const size_t first = diagnostics.size();
  if (text.size() > kMaxTestFileBytes) {
    diagnostics.push_back(
        Diagnostic{.file = std::string(source), .message = "the file is larger than 1 MiB"});
    return std::nullopt;
  }
  Reader reader(text, source, diagnostics);
  config::YamlParseResult document =
      config::ParseYamlDocument(text, kYamlLimits, "a rule test file");
  if (document.error) {
    reader.Error(document.error->mark, document.error->message);
    return std::nullopt;
  }
  std::optional<RuleTestFile> file = reader.ReadFile(document.root.get());
  SortByPosition(diagnostics, first);
  return file;
}

}  // namespace

// --- StepSeries --------------------------------------------------------------------------------

void StepSeries::Append(Run run) {
  starts_.push_back(steps_);
  steps_ += run.steps;
  runs_.push_back(run);
}

uint64_t StepSeries::At(uint64_t step, size_t& hint) const {
  if (step >= steps_) return 0;
  if (hint >= runs_.size() || starts_[hint] > step) {
    hint = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), step) -
                               starts_.begin()) -
           1;
  }
  while (starts_[hint] + runs_[hint].steps <= step) ++hint;
  const Run& run = runs_[hint];
  return static_cast<uint64_t>(static_cast<int64_t>(run.first) +
                               run.delta * static_cast<int64_t>(step - starts_[hint]));
}

std::optional<uint64_t> StepSeries::NextNonZero(uint64_t step) const {
  if (step >= steps_) return std::nullopt;
  size_t r = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), step) -
                                 starts_.begin()) -
             1;
  for (; r < runs_.size(); ++r) {
    const Run& run = runs_[r];
    const uint64_t j = step > starts_[r] ? step - starts_[r] : 0;
    if (run.delta >= 0) {
      if (run.first + static_cast<uint64_t>(run.delta) * j > 0) return starts_[r] + j;
      if (run.delta > 0 && j + 1 < run.steps) return starts_[r] + j + 1;
    } else {
      const uint64_t down = static_cast<uint64_t>(-run.delta);
      const uint64_t positive = (run.first + down - 1) / down;  // steps with a value above 0
      if (j < std::min(positive, run.steps)) return starts_[r] + j;
    }
  }
  return std::nullopt;
}

uint64_t StepSeries::Sum(uint64_t steps) const {
  uint64_t sum = 0;
  for (const Run& run : runs_) {
    if (steps == 0) break;
    const uint64_t m = std::min(steps, run.steps);
    steps -= m;
    sum += static_cast<uint64_t>(static_cast<int64_t>(m * run.first) +
                                 run.delta * static_cast<int64_t>(m * (m - 1) / 2));
  }
  return sum;
}

uint64_t StepSeries::Max() const {
  uint64_t max = 0;
  for (const Run& run : runs_) {
    const uint64_t last = static_cast<uint64_t>(static_cast<int64_t>(run.first) +
                                                run.delta * static_cast<int64_t>(run.steps - 1));
    max = std::max({max, run.first, last});
  }
  return max;
}

absl::StatusOr<StepSeries> ParseStepSeries(std::string_view text, size_t& error_offset) {
  StepSeries series;
  size_t pos = 0;
  error_offset = 0;
  auto number = [&](size_t& at, uint64_t& out) {
    const char* begin = text.data() + at;
    const char* end = text.data() + text.size();
    auto [stop, ec] = std::from_chars(begin, end, out);
    if (ec != std::errc() || stop == begin) return false;
    at += static_cast<size_t>(stop - begin);
    return true;
  };
  while (true) {
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t')) ++pos;
    if (pos >= text.size()) break;
    const size_t start = pos;
    size_t end = text.find_first_of(" \t", start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view term = text.substr(start, end - start);
    error_offset = start;
    auto invalid = [&](std::string why) {
      return absl::InvalidArgumentError("invalid term " + QuoteForMessage(term) + ": " + why);
    };
    const std::string syntax = "expected N, NxK, N+DxK or N-DxK (whole numbers)";
    uint64_t first = 0, delta = 0, steps = 1;
    bool down = false;
    size_t at = start;
    if (!number(at, first)) return invalid(syntax);
    if (at < end && (text[at] == '+' || text[at] == '-')) {
      down = text[at] == '-';
      ++at;
      if (!number(at, delta)) return invalid(syntax);
      if (at >= end || text[at] != 'x') {
        return invalid("a term with " + std::string(down ? "-" : "+") +
                       "D needs xK: the number of steps");
      }
    }
    if (at < end && text[at] == 'x') {
      ++at;
      if (!number(at, steps)) return invalid(syntax);
      if (steps == 0) return invalid("xK needs K of at least 1");
    }
    if (at != end) return invalid(syntax);
    if (steps > kMaxStepsPerSeries || series.steps() + steps > kMaxStepsPerSeries) {
      return invalid("the series would have more than " + std::to_string(kMaxStepsPerSeries) +
                     " steps");
    }
    if (first > kMaxEventsPerStep || delta > kMaxEventsPerStep) {
      return invalid("values must be at most " + std::to_string(kMaxEventsPerStep) + " per step");
    }
    // The last value, with everything below 2^63: steps <= 1e6, delta <= 1e5.
    const int64_t last = static_cast<int64_t>(first) + (down ? -1 : 1) *
                                                           static_cast<int64_t>(delta) *
                                                           static_cast<int64_t>(steps - 1);
    if (last < 0) {
      return invalid("goes below 0 (its last step would be " + std::to_string(last) + ")");
    }
    if (last > static_cast<int64_t>(kMaxEventsPerStep)) {
      return invalid("values must be at most " + std::to_string(kMaxEventsPerStep) +
                     " per step (its last step would be " + std::to_string(last) + ")");
    }
    series.Append(StepSeries::Run{
        .first = first, .delta = (down ? -1 : 1) * static_cast<int64_t>(delta), .steps = steps});
    pos = end;
  }
  if (series.empty()) {
    error_offset = 0;
    return absl::InvalidArgumentError("no values; write counts per step like \"100x30 0x30\"");
  }
  return series;
}

// --- Parsing, binding, loading ------------------------------------------------------------------

absl::StatusOr<RuleTestFile> ParseRuleTestFile(std::string_view yaml, std::string_view source_name,
                                               std::vector<Diagnostic>& diagnostics) {
  const size_t first = diagnostics.size();
  try {
    std::optional<RuleTestFile> file = ParseText(yaml, source_name, diagnostics);
    if (file && diagnostics.size() == first) return *std::move(file);
  } catch (const std::bad_alloc&) {
    diagnostics.push_back(Diagnostic{.file = std::string(source_name),
                                     .message = "out of memory while reading the test file"});
    return absl::ResourceExhaustedError(diagnostics.back().ToString());
  } catch (const std::exception& e) {
    diagnostics.push_back(
        Diagnostic{.file = std::string(source_name),
                   .message = std::string("cannot read the test file: ") + e.what()});
  }
  return ProblemsStatus(diagnostics, first, source_name, "test file");
}

bool BindRuleTests(RuleTestFile& file, const std::vector<Slo>& slos,
                   std::vector<Diagnostic>& diagnostics) {
  const size_t first = diagnostics.size();
  Binder(file, slos, diagnostics).Bind(file);
  SortByPosition(diagnostics, first);
  return diagnostics.size() == first;
}

LoadedRuleTestFile LoadRuleTestText(std::string_view yaml, std::string_view source_name,
                                    const std::string& base_dir) {
  LoadedRuleTestFile loaded;
  try {
    absl::StatusOr<RuleTestFile> file = ParseRuleTestFile(yaml, source_name, loaded.diagnostics);
    if (!file.ok()) return loaded;
    // Rule files are relative to the test file, so a test means the same from any directory.
    std::vector<std::string> paths;
    for (const std::string& path : file->rule_files) {
      std::filesystem::path p(path);
      if (p.is_relative() && !base_dir.empty()) p = std::filesystem::path(base_dir) / p;
      paths.push_back(p.lexically_normal().string());
    }
    CheckResult rules = CheckRuleFiles(paths);
    if (!rules.ok()) {
      const size_t problems = rules.diagnostics.size();
      loaded.diagnostics = std::move(rules.diagnostics);
      loaded.diagnostics.push_back(Diagnostic{
          .file = std::string(source_name),
          .line = file->rule_files_position.line,
          .column = file->rule_files_position.column,
          .message = "rule_files: " + std::to_string(problems) + " problem" +
                     (problems == 1 ? "" : "s") +
                     " in the rule files (as traceslo check reports them); no test of this "
                     "file ran"});
      return loaded;
    }
    for (RuleFile& rule_file : rules.files) {
      for (Slo& slo : rule_file.slos) loaded.slos.push_back(std::move(slo));
    }
    if (!BindRuleTests(*file, loaded.slos, loaded.diagnostics)) return loaded;
    loaded.file = *std::move(file);
  } catch (const std::bad_alloc&) {
    loaded.file.reset();
    loaded.diagnostics.push_back(Diagnostic{
        .file = std::string(source_name), .message = "out of memory while loading the test file"});
  } catch (const std::exception& e) {
    loaded.file.reset();
    loaded.diagnostics.push_back(
        Diagnostic{.file = std::string(source_name),
                   .message = std::string("cannot load the test file: ") + e.what()});
  }
  return loaded;
}

LoadedRuleTestFile LoadRuleTestFile(const std::string& path) {
  std::string contents;
  if (std::optional<config::FileReadError> failure =
          config::ReadFileCapped(path, kMaxTestFileBytes, contents)) {
    LoadedRuleTestFile loaded;
    loaded.diagnostics.push_back(
        Diagnostic{.file = path, .message = "cannot read: " + failure->reason});
    return loaded;
  }
  return LoadRuleTestText(contents, path, std::filesystem::path(path).parent_path().string());
}

// --- Running -----------------------------------------------------------------------------------

namespace {

constexpr size_t kBatchSpans = 4096;

int64_t Nanos(milliseconds d) { return d.count() * 1'000'000; }

void PutBigEndian(uint64_t value, uint8_t* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(value & 0xff);
    value >>= 8;
  }
}

// Turns a test's inputs into spans, in time order per input, and hands them to the shard that
// owns their trace (pipeline::ShardOf, as ShardedPipeline does). Times are test nanoseconds
// (0 = kTestEpochUnixSeconds).
class TrafficGenerator {
 public:
  TrafficGenerator(const RuleTest& test, milliseconds duration, uint32_t shards)
      : shards_(shards), batches_(shards) {
    step_nanos_ = Nanos(test.interval);
    steps_ = static_cast<uint64_t>((Nanos(duration) + step_nanos_ - 1) / step_nanos_);
    auto arena = std::make_shared<std::string>();
    SpanBatch names;  // only its arena: StrRef offsets into one string shared by every batch
    for (const TestTraffic& traffic : test.inputs) {
      Source& source = sources_.emplace_back();
      source.traffic = &traffic;
      for (const SpanShape& span : traffic.spans) {
        source.names.emplace_back(names.Add(span.service, traceslo::kMaxNameBytes),
                                  names.Add(span.operation, traceslo::kMaxNameBytes));
      }
    }
    strings_ = std::make_shared<const std::string>(std::move(names.strings));
    for (pipeline::ShardBatch& batch : batches_) batch.strings = strings_;
    for (Source& source : sources_) EnterStep(source, 0);
  }

  // Test time of the next trace's end; INT64_MAX when every input is done.
  int64_t NextEnd() const {
    int64_t next = INT64_MAX;
    for (const Source& source : sources_) next = std::min(next, source.next_end);
    return next;
  }

  // Sends every trace that ended at or before `now` (test time); `last_fed[shard]` is set to
  // `now` for the shards that got spans.
  void SendUntil(int64_t now, std::vector<std::unique_ptr<pipeline::ShardProcessor>>& processors,
                 std::vector<int64_t>& last_fed) {
    for (size_t i = 0; i < sources_.size(); ++i) {
      Source& source = sources_[i];
      while (source.next_end <= now) {
        // Of the step's n traces, the m errors are spread evenly: trace k fails when
        // floor((k + 1) m / n) > floor(k m / n).
        const bool error = (source.k + 1) * source.m / source.n > source.k * source.m / source.n;
        Emit(i, source, source.next_end, error, processors, last_fed, now);
        ++source.k;
        if (source.k == source.n) {
          EnterStep(source, source.step + 1);
        } else {
          source.next_end = EndOf(source);
        }
      }
    }
    for (uint32_t shard = 0; shard < shards_; ++shard) Flush(shard, processors, last_fed, now);
  }

  uint64_t spans_sent() const { return spans_sent_; }

 private:
  struct Source {
    const TestTraffic* traffic = nullptr;
    std::vector<std::pair<StrRef, StrRef>> names;  // per span of the shape: service, operation
    uint64_t step = 0;
    uint64_t k = 0;  // the next trace of the step
    uint64_t n = 0;  // traces in the step
    uint64_t m = 0;  // errors among them
    size_t count_hint = 0;
    size_t errors_hint = 0;
    int64_t next_end = INT64_MAX;
  };

  // Trace k of n in step i ends at i·L + (2k + 1)·L / 2n: the middle of its share of the step.
  int64_t EndOf(const Source& s) const {
    return static_cast<int64_t>(s.step) * step_nanos_ +
           static_cast<int64_t>((2 * s.k + 1) * static_cast<uint64_t>(step_nanos_) / (2 * s.n));
  }

  void EnterStep(Source& s, uint64_t step) {
    s.next_end = INT64_MAX;
    std::optional<uint64_t> next = s.traffic->count.NextNonZero(step);
    if (!next || *next >= steps_) return;
    s.step = *next;
    s.k = 0;
    s.n = s.traffic->count.At(s.step, s.count_hint);
    s.m = s.traffic->errors.At(s.step, s.errors_hint);
    s.next_end = EndOf(s);
  }

  void Emit(size_t index, const Source& s, int64_t end, bool error,
            std::vector<std::unique_ptr<pipeline::ShardProcessor>>& processors,
            std::vector<int64_t>& last_fed, int64_t now) {
    TraceId trace_id{};
    PutBigEndian(index + 1, trace_id.data());
    PutBigEndian(++traces_, trace_id.data() + 8);
    const uint32_t shard = pipeline::ShardOf(trace_id, shards_);
    const std::vector<SpanShape>& shape = s.traffic->spans;
    const uint64_t base = next_span_id_;
    next_span_id_ += shape.size() + 1;  // + 1: the id of an orphan's parent, never sent
    const uint64_t end_unix = static_cast<uint64_t>(kTestEpochUnixSeconds * 1'000'000'000 + end);
    pipeline::ShardBatch& batch = batches_[shard];
    for (size_t j = 0; j < shape.size(); ++j) {
      const SpanShape& shape_span = shape[j];
      Span span;
      span.trace_id = trace_id;
      span.span_id = base + j;
      span.parent_span_id = shape_span.parent >= 0 ? base + static_cast<uint64_t>(shape_span.parent)
                            : shape_span.orphan    ? base + shape.size()
                                                   : 0;
      span.end_unix_nano = end_unix;
      span.start_unix_nano = end_unix - static_cast<uint64_t>(Nanos(shape_span.duration));
      span.service = s.names[j].first;
      span.name = s.names[j].second;
      span.kind = shape_span.kind;
      span.status = j == 0 && error ? StatusCode::kError : shape_span.status;
      span.http_status = shape_span.http_status;
      span.rpc_status = shape_span.rpc_status;
      batch.spans.push_back(span);
    }
    spans_sent_ += shape.size();
    if (batch.spans.size() >= kBatchSpans) Flush(shard, processors, last_fed, now);
  }

  void Flush(uint32_t shard, std::vector<std::unique_ptr<pipeline::ShardProcessor>>& processors,
             std::vector<int64_t>& last_fed, int64_t now) {
    pipeline::ShardBatch& batch = batches_[shard];
    if (batch.spans.empty()) return;
    processors[shard]->Process(batch);
    batch.spans.clear();
    last_fed[shard] = now;
  }

  const uint32_t shards_;
  int64_t step_nanos_ = 0;
  uint64_t steps_ = 0;  // steps up to the last expectation
  std::vector<Source> sources_;
  std::shared_ptr<const std::string> strings_;
  std::vector<pipeline::ShardBatch> batches_;
  uint64_t traces_ = 0;
  uint64_t next_span_id_ = 1;
  uint64_t spans_sent_ = 0;
};

struct SloIndex {
  explicit SloIndex(const std::vector<Slo>& slos) {
    std::set<std::string> services;
    for (const Slo& slo : slos) {
      by_name[{slo.service, slo.name}] = &slo;
      services.insert(slo.service);
    }
    many_services = services.size() > 1;
  }
  const Slo* Find(const std::string& service, const std::string& name) const {
    auto it = by_name.find({service, name});
    return it == by_name.end() ? nullptr : it->second;
  }
  std::map<std::pair<std::string, std::string>, const Slo*> by_name;
  bool many_services = false;
};

std::string AlertText(const Slo& slo, Severity severity, bool no_data, AlertState state,
                      bool with_service) {
  std::string text = "{";
  if (with_service) text += "service: " + YamlValue(slo.service) + ", ";
  text += "slo: " + YamlValue(slo.name) + ", severity: " + YamlValue(SeverityLabel(slo, severity));
  if (no_data) text += ", no_data: true";
  text += ", state: " + std::string(AlertStateName(state)) + "}";
  return text;
}

using AlertKey = std::tuple<std::string, std::string, Severity, bool>;  // service, slo, ...

void CheckAlerts(const Expectation& expectation, const std::vector<AlertStatus>& alerts,
                 const SloIndex& index, ExpectationFailure& failure) {
  std::map<AlertKey, AlertState> expected;
  for (const ExpectedAlert& a : expectation.alerts) {
    expected[{a.bound_service, a.slo, a.bound_severity, a.no_data}] = a.state;
  }
  bool ok = true;
  std::map<AlertKey, AlertState> got;
  for (const AlertStatus& a : alerts) {
    const AlertKey key{a.service, a.slo, a.severity, a.no_data};
    const bool active = a.state == AlertState::kPending || a.state == AlertState::kFiring;
    auto it = expected.find(key);
    if (active || (it != expected.end() && a.state != AlertState::kInactive)) got[key] = a.state;
    if (active && (it == expected.end() || it->second != a.state)) ok = false;
  }
  for (const auto& [key, state] : expected) {
    auto it = got.find(key);
    if (it == got.end() || it->second != state) ok = false;
  }
  if (ok) return;
  failure.alerts_differ = true;
  auto texts = [&](const std::map<AlertKey, AlertState>& set) {
    std::vector<std::string> out;
    for (const auto& [key, state] : set) {
      const auto& [service, slo_name, severity, no_data] = key;
      if (const Slo* slo = index.Find(service, slo_name)) {
        out.push_back(AlertText(*slo, severity, no_data, state, index.many_services));
      }
    }
    return out;
  };
  failure.expected_alerts = texts(expected);
  failure.got_alerts = texts(got);
}

void CheckFigures(const ExpectedFigures& want, const std::vector<SloStatus>& statuses,
                  ExpectationFailure& failure) {
  const std::string name = want.bound_service + "/" + want.slo;
  const SloStatus* status = nullptr;
  for (const SloStatus& s : statuses) {
    if (s.service == want.bound_service && s.slo == want.slo) status = &s;
  }
  if (status == nullptr) {
    failure.figures.push_back(name + ": not evaluated");
    return;
  }
  const std::string tolerance = " ± " + Written(want.tolerance);
  auto compare = [&](const std::string& what, double expected, double got) {
    if (std::fabs(got - expected) <= want.tolerance) return;
    failure.figures.push_back(name + " " + what + ": expected " + Written(expected) + tolerance +
                              ", got " + Figure(got));
  };
  auto window = [&](int64_t ms) -> const WindowFigures* {
    for (const WindowFigures& w : status->windows) {
      if (w.window.count() == ms) return &w;
    }
    return nullptr;
  };
  auto label = [](const char* what, int64_t ms) {
    return std::string(what) + "[" + FormatDuration(milliseconds(ms)) + "]";
  };
  for (const auto& [ms, value] : want.burn_rate) {
    if (const WindowFigures* w = window(ms)) compare(label("burn_rate", ms), value, w->burn_rate);
  }
  for (const auto& [ms, value] : want.sli) {
    if (const WindowFigures* w = window(ms)) compare(label("sli", ms), value, w->sli_ratio);
  }
  for (const auto& [ms, value] : want.events) {
    const WindowFigures* w = window(ms);
    if (w == nullptr) continue;
    if (w->events.total != value.total || w->events.bad != value.bad) {
      failure.figures.push_back(name + " " + label("events", ms) +
                                ": expected {total: " + std::to_string(value.total) +
                                ", bad: " + std::to_string(value.bad) +
                                "}, got {total: " + std::to_string(w->events.total) +
                                ", bad: " + std::to_string(w->events.bad) + "}");
    }
  }
  if (want.error_budget_remaining) {
    compare("error_budget_remaining", *want.error_budget_remaining,
            status->error_budget_remaining_ratio);
  }
  if (want.latency_quantile_seconds) {
    compare("latency_quantile_seconds", *want.latency_quantile_seconds,
            status->latency_quantile_seconds);
  }
}

}  // namespace

RuleTestResult RunRuleTest(const RuleTestFile& file, const RuleTest& test,
                           const std::vector<Slo>& slos) {
  RuleTestResult result;
  result.file = file.path;
  result.name = test.name;
  result.position = test.position;
  if (test.expect.empty()) return result;
  const SloIndex index(slos);
  const std::chrono::system_clock::time_point epoch{std::chrono::seconds(kTestEpochUnixSeconds)};
  ManualClock clock(epoch);
  SliEngine engine(file.pipeline, clock);
  std::vector<std::unique_ptr<pipeline::ShardProcessor>> processors = engine.MakeProcessors();
  Evaluator evaluator(engine.evaluator_options(), engine.source());
  evaluator.SetRules(slos);

  const int64_t tick = Nanos(file.pipeline.tick_interval);
  const int64_t evaluation = Nanos(file.evaluation_interval);
  // Expectations in the order they come due (file order among those at the same time).
  std::vector<const Expectation*> due;
  for (const Expectation& e : test.expect) due.push_back(&e);
  std::stable_sort(due.begin(), due.end(),
                   [](const Expectation* a, const Expectation* b) { return a->at < b->at; });
  const int64_t end = Nanos(due.back()->at);
  // A shard ticks while a trace it was sent may still complete (then publishes it); after that
  // its ticks would publish nothing, so quiet stretches of a test cost nothing.
  const int64_t busy_for = Nanos(file.pipeline.trace_idle_timeout) + tick;
  TrafficGenerator traffic(test, due.back()->at, static_cast<uint32_t>(processors.size()));
  std::vector<int64_t> last_fed(processors.size(), INT64_MIN);
  auto busy = [&](size_t shard, int64_t at) {
    return last_fed[shard] != INT64_MIN && at <= last_fed[shard] + busy_for;
  };
  int64_t now = 0;
  int64_t next_evaluation = evaluation;
  size_t next_expectation = 0;
  while (now < end) {
    int64_t next = next_evaluation;
    for (size_t s = 0; s < processors.size(); ++s) {
      if (busy(s, now + tick)) next = std::min(next, now + tick);
    }
    if (const int64_t arrival = traffic.NextEnd(); arrival != INT64_MAX) {
      // Spans are sent at the first tick at or after their end, as an exporter batches them.
      next = std::min(next, std::max(now + tick, (arrival + tick - 1) / tick * tick));
    }
    now = next;
    clock.AdvanceTo(epoch + std::chrono::nanoseconds(now));
    traffic.SendUntil(now, processors, last_fed);
    for (size_t s = 0; s < processors.size(); ++s) {
      if (busy(s, now)) processors[s]->OnTick();
    }
    if (now != next_evaluation) continue;
    next_evaluation += evaluation;
    evaluator.Evaluate(clock.Now());
    ++result.evaluations;
    if (next_expectation >= due.size() || Nanos(due[next_expectation]->at) != now) continue;
    const std::vector<AlertStatus> alerts = evaluator.Alerts();
    const std::vector<SloStatus> statuses = evaluator.Slos();
    for (; next_expectation < due.size() && Nanos(due[next_expectation]->at) == now;
         ++next_expectation) {
      const Expectation& expectation = *due[next_expectation];
      ExpectationFailure failure;
      failure.position = expectation.position;
      failure.at = expectation.at;
      if (expectation.check_alerts) CheckAlerts(expectation, alerts, index, failure);
      for (const ExpectedFigures& figures : expectation.slos) {
        CheckFigures(figures, statuses, failure);
      }
      if (failure.alerts_differ || !failure.figures.empty()) {
        result.failures.push_back(std::move(failure));
      }
    }
  }
  result.spans = traffic.spans_sent();
  return result;
}

std::string FormatAlertList(const std::vector<std::string>& alerts) {
  std::string out = "[";
  for (size_t i = 0; i < alerts.size(); ++i) out += (i == 0 ? "" : ", ") + alerts[i];
  return out + "]";
}

}  // namespace traceslo::slo
