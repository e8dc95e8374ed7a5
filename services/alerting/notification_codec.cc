#include "traceslo/alerting/notification_codec.h"

#include <boost/json.hpp>

#include "absl/status/status.h"
#include "services/alerting/json_writer.h"

namespace traceslo::alerting {
namespace {

namespace json = boost::json;

// Reading: each accessor throws std::exception on a missing or mistyped field; Decode turns that
// into DataLoss.
const json::value& Field(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) throw std::invalid_argument("missing field " + std::string(key));
  return *v;
}

std::string Str(const json::object& o, std::string_view key) {
  return std::string(Field(o, key).as_string());
}

int64_t I64(const json::object& o, std::string_view key) {
  return Field(o, key).to_number<int64_t>();
}

uint64_t U64(const json::object& o, std::string_view key) {
  return Field(o, key).to_number<uint64_t>();
}

Labels ReadLabels(const json::object& o, std::string_view key) {
  Labels out;
  for (const auto& [name, value] : Field(o, key).as_object()) {
    out[std::string(name)] = std::string(value.as_string());
  }
  return out;
}

}  // namespace

std::string EncodeNotification(const Notification& n) {
  JsonWriter w;
  w.BeginObject();
  w.Key("id").String(n.id);
  w.Key("receiver").String(n.receiver);
  w.Key("groupKey").String(n.group_key);
  w.Key("groupLabels").StringMap(n.group_labels);
  w.Key("commonLabels").StringMap(n.common_labels);
  w.Key("commonAnnotations").StringMap(n.common_annotations);
  w.Key("firing").Bool(n.firing);
  w.Key("sequence").Uint(n.sequence);
  w.Key("createdUnixNano").Int(n.created_unix_nano);
  w.Key("externalUrl").String(n.external_url);
  w.Key("alerts").BeginArray();
  for (const Alert& a : n.alerts) {
    w.BeginObject();
    w.Key("labels").StringMap(a.labels);
    w.Key("annotations").StringMap(a.annotations);
    w.Key("firing").Bool(a.firing);
    w.Key("startsAtUnixNano").Int(a.starts_at_unix_nano);
    w.Key("endsAtUnixNano").Int(a.ends_at_unix_nano);
    w.Key("generatorUrl").String(a.generator_url);
    w.Key("causes").BeginArray();
    for (const Cause& c : a.causes) WriteCause(w, c, CauseKindForm::kNumber);
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return w.Take();
}

absl::StatusOr<Notification> DecodeNotification(std::string_view text) {
  try {
    const json::value root = json::parse(json::string_view(text.data(), text.size()));
    const json::object& o = root.as_object();
    Notification n;
    n.id = Str(o, "id");
    n.receiver = Str(o, "receiver");
    n.group_key = Str(o, "groupKey");
    n.group_labels = ReadLabels(o, "groupLabels");
    n.common_labels = ReadLabels(o, "commonLabels");
    n.common_annotations = ReadLabels(o, "commonAnnotations");
    n.firing = Field(o, "firing").as_bool();
    n.sequence = U64(o, "sequence");
    n.created_unix_nano = I64(o, "createdUnixNano");
    n.external_url = Str(o, "externalUrl");
    for (const json::value& av : Field(o, "alerts").as_array()) {
      const json::object& ao = av.as_object();
      Alert a;
      a.labels = ReadLabels(ao, "labels");
      a.annotations = ReadLabels(ao, "annotations");
      a.firing = Field(ao, "firing").as_bool();
      a.starts_at_unix_nano = I64(ao, "startsAtUnixNano");
      a.ends_at_unix_nano = I64(ao, "endsAtUnixNano");
      a.generator_url = Str(ao, "generatorUrl");
      for (const json::value& cv : Field(ao, "causes").as_array()) {
        const json::object& co = cv.as_object();
        Cause c;
        const int64_t kind = I64(co, "kind");
        if (kind < 0 || kind > static_cast<int64_t>(Cause::Kind::kPropagationBreak)) {
          throw std::invalid_argument("unknown cause kind");
        }
        c.kind = static_cast<Cause::Kind>(kind);
        c.id = Str(co, "id");
        c.title = Str(co, "title");
        c.sample_message = Str(co, "sampleMessage");
        c.count = U64(co, "count");
        c.share = Field(co, "share").is_null() ? 0.0 : Field(co, "share").to_number<double>();
        for (const json::value& t : Field(co, "traceIds").as_array()) {
          c.trace_ids.emplace_back(t.as_string());
        }
        a.causes.push_back(std::move(c));
      }
      n.alerts.push_back(std::move(a));
    }
    return n;
  } catch (const std::exception& e) {
    return absl::DataLossError(std::string("a stored notification does not decode: ") + e.what());
  }
}

}  // namespace traceslo::alerting
