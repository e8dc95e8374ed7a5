#include "services/alerting/json_writer.h"

#include <charconv>
#include <cmath>

#include "traceslo/common/json.h"

namespace traceslo::alerting {

void JsonWriter::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!first_.empty()) {
    if (!first_.back()) out_ += ',';
    first_.back() = false;
  }
}

JsonWriter& JsonWriter::BeginObject() {
  BeforeValue();
  out_ += '{';
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::EndObject() {
  out_ += '}';
  first_.pop_back();
  return *this;
}

JsonWriter& JsonWriter::BeginArray() {
  BeforeValue();
  out_ += '[';
  first_.push_back(true);
  return *this;
}

JsonWriter& JsonWriter::EndArray() {
  out_ += ']';
  first_.pop_back();
  return *this;
}

JsonWriter& JsonWriter::Key(std::string_view key) {
  BeforeValue();
  AppendJsonString(out_, key);
  out_ += ':';
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::String(std::string_view value) {
  BeforeValue();
  AppendJsonString(out_, value);
  return *this;
}

JsonWriter& JsonWriter::Int(int64_t value) {
  BeforeValue();
  out_ += std::to_string(value);
  return *this;
}

JsonWriter& JsonWriter::Uint(uint64_t value) {
  BeforeValue();
  out_ += std::to_string(value);
  return *this;
}

JsonWriter& JsonWriter::Double(double value) {
  BeforeValue();
  if (!std::isfinite(value)) {
    out_ += "null";
    return *this;
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out_.append(buf, ec == std::errc() ? end : buf);
  return *this;
}

JsonWriter& JsonWriter::Bool(bool value) {
  BeforeValue();
  out_ += value ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::Null() {
  BeforeValue();
  out_ += "null";
  return *this;
}

JsonWriter& JsonWriter::StringMap(const Labels& labels) {
  BeginObject();
  for (const auto& [name, value] : labels) Key(name).String(value);
  return EndObject();
}

void WriteCause(JsonWriter& w, const Cause& cause, CauseKindForm kind_form) {
  w.BeginObject();
  w.Key("kind");
  if (kind_form == CauseKindForm::kName) {
    w.String(CauseKindName(cause.kind));
  } else {
    w.Int(static_cast<int>(cause.kind));
  }
  w.Key("id").String(cause.id);
  w.Key("title").String(cause.title);
  w.Key("sampleMessage").String(cause.sample_message);
  w.Key("count").Uint(cause.count);
  w.Key("share").Double(cause.share);
  w.Key("traceIds").BeginArray();
  for (const std::string& id : cause.trace_ids) w.String(id);
  w.EndArray();
  w.EndObject();
}

}  // namespace traceslo::alerting
