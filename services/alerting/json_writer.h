#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "traceslo/alerting/notification.h"

namespace traceslo::alerting {

// Writes compact JSON in the order it is told, with numbers as people write them ("0.8", not
// Boost.JSON's "8E-1"). Owned by one thread. Misuse (a value without a key in an object) is a bug
// the writer does not check.
class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Double(double value);  // shortest round-trip form; NaN and infinities as null
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // An object of string values, in the map's (sorted) order.
  JsonWriter& StringMap(const Labels& labels);

  std::string Take() { return std::move(out_); }

 private:
  void BeforeValue();

  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written in it yet
  bool after_key_ = false;
};

// How WriteCause writes a cause's kind: its CauseKindName, or the enum's value.
enum class CauseKindForm { kName, kNumber };

// {"kind":…,"id":…,"title":…,"sampleMessage":…,"count":…,"share":…,"traceIds":[…]}: a cause
// as the alert history (kName) and the outbox's notification JSON (kNumber) store it.
void WriteCause(JsonWriter& w, const Cause& cause, CauseKindForm kind_form);

}  // namespace traceslo::alerting
