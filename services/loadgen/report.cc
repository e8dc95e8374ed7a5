#include "services/loadgen/report.h"

#include <charconv>
#include <chrono>
#include <cstdio>

#include "traceslo/common/json.h"

namespace traceslo::loadgen {
namespace {

void Number(std::string& out, double value) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, ec == std::errc() ? ptr : buf);
}

// Unix seconds with microseconds.
void UnixSeconds(std::string& out, int64_t unix_nano) {
  char buf[64];
  const int64_t micros = unix_nano / 1000;
  const int n =
      std::snprintf(buf, sizeof buf, "%lld.%06lld", static_cast<long long>(micros / 1'000'000),
                    static_cast<long long>(micros % 1'000'000));
  out.append(buf, static_cast<size_t>(n));
}

void OptionalUnixSeconds(std::string& out, const std::optional<int64_t>& unix_nano) {
  if (unix_nano) {
    UnixSeconds(out, *unix_nano);
  } else {
    out += "null";
  }
}

void Seconds(std::string& out, std::chrono::milliseconds d) {
  Number(out, static_cast<double>(d.count()) / 1000.0);
}

class Object {
 public:
  explicit Object(std::string& out) : out_(out) { out_.push_back('{'); }
  ~Object() { out_.push_back('}'); }
  std::string& Key(std::string_view key) {
    if (!first_) out_.push_back(',');
    first_ = false;
    AppendJsonString(out_, key);
    out_.push_back(':');
    return out_;
  }
  void Int(std::string_view key, uint64_t value) { Key(key) += std::to_string(value); }
  void Bool(std::string_view key, bool value) { Key(key) += value ? "true" : "false"; }
  void Str(std::string_view key, std::string_view value) { AppendJsonString(Key(key), value); }
  void Double(std::string_view key, double value) { Number(Key(key), value); }

 private:
  std::string& out_;
  bool first_ = true;
};

void WriteCounts(std::string& out, const Counts& c, bool spans) {
  Object o(out);
  o.Int("generated", c.generated);
  o.Int("dropped", c.dropped);
  o.Int("sent", c.sent);
  o.Int("acknowledged", c.acknowledged);
  o.Int("failed", c.failed);
  if (spans) o.Int("rejected", c.rejected);
}

void WriteIncident(std::string& out, const Report& report, const Incident& incident,
                   const IncidentRecord& record) {
  Object o(out);
  o.Str("type", IncidentTypeName(incident.type));
  o.Str("origin", incident.origin);
  if (incident.type != IncidentType::kTrafficDrop) {
    o.Str("service", kServiceNames[incident.service]);
  }
  if (incident.type == IncidentType::kErrorBurst) {
    o.Str("operation", incident.operation);
    o.Str("exception_type", incident.exception_type);
    o.Str("message", incident.message);
  }
  if (incident.type == IncidentType::kLatencyRegression) {
    if (incident.add.count() > 0) {
      Seconds(o.Key("add_seconds"), incident.add);
    } else {
      o.Double("factor", incident.factor);
    }
  } else {
    o.Double("ratio", incident.ratio);
  }
  Seconds(o.Key("start_offset_seconds"), incident.start);
  if (incident.duration) {
    Seconds(o.Key("duration_seconds"), *incident.duration);
  } else {
    o.Key("duration_seconds") += "null";
  }
  const int64_t scheduled_start =
      report.start_unix_nano +
      std::chrono::duration_cast<std::chrono::nanoseconds>(incident.start).count();
  UnixSeconds(o.Key("scheduled_start_unix"), scheduled_start);
  if (incident.duration) {
    UnixSeconds(
        o.Key("scheduled_end_unix"),
        scheduled_start +
            std::chrono::duration_cast<std::chrono::nanoseconds>(*incident.duration).count());
  } else {
    o.Key("scheduled_end_unix") += "null";
  }
  OptionalUnixSeconds(o.Key("start_unix"), record.start_unix_nano);
  OptionalUnixSeconds(o.Key("end_unix"), record.end_unix_nano);
  o.Int("traces", record.traces);
  o.Int("affected", record.affected);
}

}  // namespace

std::string ReportToJson(const Report& report) {
  std::string out;
  {
    Object o(out);
    o.Str("endpoint", report.endpoint);
    o.Str("protocol", report.protocol);
    o.Int("seed", report.seed);
    o.Double("rate", report.rate);
    o.Int("spans_per_trace", report.spans_per_trace);
    o.Int("batch_size", report.batch_size);
    o.Bool("gzip", report.gzip);
    UnixSeconds(o.Key("start_unix"), report.start_unix_nano);
    UnixSeconds(o.Key("end_unix"), report.end_unix_nano);
    o.Double("elapsed_seconds", report.elapsed_seconds);
    o.Bool("interrupted", report.interrupted);
    o.Bool("exact", report.exact());
    {
      std::string& key = o.Key("traces");
      Object t(key);
      t.Int("planned", report.traces_planned);
      t.Int("generated", report.traces.generated);
      t.Int("dropped", report.traces.dropped);
      t.Int("sent", report.traces.sent);
      t.Int("acknowledged", report.traces.acknowledged);
      t.Int("failed", report.traces.failed);
    }
    WriteCounts(o.Key("spans"), report.spans, true);
    {
      Object r(o.Key("requests"));
      r.Int("sent", report.requests.sent);
      r.Int("succeeded", report.requests.succeeded);
      r.Int("failed", report.requests.failed);
      r.Int("retries", report.requests.retries);
      r.Int("bytes", report.requests.bytes);
      Object f(r.Key("failures"));
      for (const auto& [reason, count] : report.requests.failures) f.Int(reason, count);
    }
    {
      // {"service": {"operation": {"requests": n, "errors": n}}}
      Object services(o.Key("operations"));
      const auto& ops = report.expected.operations();
      for (auto it = ops.begin(); it != ops.end();) {
        const uint8_t service = it->first.first;
        Object per_service(services.Key(kServiceNames[service]));
        for (; it != ops.end() && it->first.first == service; ++it) {
          Object counts(per_service.Key(it->first.second));
          counts.Int("requests", it->second.requests);
          counts.Int("errors", it->second.errors);
        }
      }
    }
    {
      Object services(o.Key("services"));
      for (size_t s = 0; s < kServiceCount; ++s) {
        const ServiceCounts& c = report.expected.services()[s];
        Object counts(services.Key(kServiceNames[s]));
        counts.Int("traces", c.traces);
        counts.Int("error_traces_root", c.error_traces_root);
        counts.Int("error_traces_origin", c.error_traces_origin);
        counts.Int("partial_traces", c.partial_traces);
        counts.Int("propagation_breaks", c.propagation_breaks);
      }
    }
    std::string& incidents = o.Key("incidents");
    incidents.push_back('[');
    for (size_t i = 0; i < report.incidents.size(); ++i) {
      if (i != 0) incidents.push_back(',');
      WriteIncident(incidents, report, report.incidents[i], report.incident_records[i]);
    }
    incidents.push_back(']');
  }
  out.push_back('\n');
  return out;
}

}  // namespace traceslo::loadgen
