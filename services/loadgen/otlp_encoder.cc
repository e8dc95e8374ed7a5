#include "services/loadgen/otlp_encoder.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "services/loadgen/topology.h"
#include "traceslo/common/json.h"

#ifndef TRACESLO_VERSION
#define TRACESLO_VERSION "0.0.0-dev"
#endif

namespace traceslo::loadgen {
namespace {

constexpr std::string_view kScopeName = "traceslo-loadgen";
constexpr std::string_view kScopeVersion = TRACESLO_VERSION;

// The resource attributes of every service besides service.name.
struct ResourceAttribute {
  std::string_view key;
  std::string_view value;
};
constexpr ResourceAttribute kResourceAttributes[] = {
    {"service.namespace", "shop"},
    {"service.version", "1.4.2"},
    {"deployment.environment.name", "loadgen"},
    {"telemetry.sdk.name", "traceslo-loadgen"},
    {"telemetry.sdk.language", "cpp"},
};

void BigEndian(uint64_t value, uint8_t* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(value >> (56 - 8 * i));
}

// --- protobuf ----------------------------------------------------------------------------------

class ProtoWriter {
 public:
  explicit ProtoWriter(std::string& out) : out_(out) {}

  void Varint(uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<char>((value & 0x7f) | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<char>(value));
  }
  void Tag(uint32_t field, uint32_t wire_type) { Varint(uint64_t{field} << 3 | wire_type); }
  void VarintField(uint32_t field, uint64_t value) {
    Tag(field, 0);
    Varint(value);
  }
  void Fixed64Field(uint32_t field, uint64_t value) {
    Tag(field, 1);
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>(value >> (8 * i)));
  }
  void BytesField(uint32_t field, std::string_view bytes) {
    Tag(field, 2);
    Varint(bytes.size());
    out_.append(bytes);
  }
  // A nested message: Begin returns a mark for End, which writes the length in front of it.
  size_t Begin(uint32_t field) {
    Tag(field, 2);
    out_.push_back('\0');  // the length, when it fits one byte
    return out_.size();
  }
  void End(size_t mark) {
    const size_t length = out_.size() - mark;
    if (length < 0x80) {
      out_[mark - 1] = static_cast<char>(length);
      return;
    }
    // Longer: the length takes more bytes than the one reserved; move the body up.
    char buf[10];
    size_t n = 0;
    uint64_t v = length;
    while (v >= 0x80) {
      buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out_.replace(mark - 1, 1, buf, n);
  }

  void StringAttribute(uint32_t field, std::string_view key, std::string_view value) {
    const size_t kv = Begin(field);
    BytesField(1, key);
    const size_t any = Begin(2);
    BytesField(1, value);
    End(any);
    End(kv);
  }
  void IntAttribute(uint32_t field, std::string_view key, int64_t value) {
    const size_t kv = Begin(field);
    BytesField(1, key);
    const size_t any = Begin(2);
    VarintField(3, static_cast<uint64_t>(value));
    End(any);
    End(kv);
  }

 private:
  std::string& out_;
};

void ProtoSpan(ProtoWriter& w, const GeneratedTrace& trace, const GeneratedSpan& span) {
  const size_t mark = w.Begin(2);  // ScopeSpans.spans
  w.BytesField(1, std::string_view(reinterpret_cast<const char*>(trace.trace_id.data()), 16));
  uint8_t id[8];
  BigEndian(span.span_id, id);
  w.BytesField(2, std::string_view(reinterpret_cast<const char*>(id), 8));
  if (span.parent_span_id != 0) {
    BigEndian(span.parent_span_id, id);
    w.BytesField(4, std::string_view(reinterpret_cast<const char*>(id), 8));
  }
  w.BytesField(5, span.name);
  w.VarintField(6, static_cast<uint64_t>(span.kind));
  w.Fixed64Field(7, static_cast<uint64_t>(trace.StartUnixNano(span)));
  w.Fixed64Field(8, static_cast<uint64_t>(trace.EndUnixNano(span)));
  for (const Attribute& a : span.attributes) {
    if (a.is_int) {
      w.IntAttribute(9, a.key, a.int_value);
    } else {
      w.StringAttribute(9, a.key, a.string_value);
    }
  }
  if (span.http_status > 0) w.IntAttribute(9, "http.response.status_code", span.http_status);
  if (span.rpc_status >= 0) w.IntAttribute(9, "rpc.grpc.status_code", span.rpc_status);
  if (span.exception) {
    const size_t event = w.Begin(11);
    w.Fixed64Field(1, static_cast<uint64_t>(trace.EndUnixNano(span)));
    w.BytesField(2, "exception");
    w.StringAttribute(3, "exception.type", span.exception->type);
    w.StringAttribute(3, "exception.message", span.exception->message);
    w.StringAttribute(3, "exception.stacktrace", span.exception->stacktrace);
    w.End(event);
  }
  if (span.status != SpanStatus::kUnset) {
    const size_t status = w.Begin(15);
    if (!span.status_message.empty()) w.BytesField(2, span.status_message);
    w.VarintField(3, static_cast<uint64_t>(span.status));
    w.End(status);
  }
  w.End(mark);
}

// --- JSON --------------------------------------------------------------------------------------

void Hex(std::string& out, const uint8_t* bytes, size_t n) {
  constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 0xf]);
  }
  out.push_back('"');
}

void JsonStringAttribute(std::string& out, std::string_view key, std::string_view value) {
  out += "{\"key\":";
  AppendJsonString(out, key);
  out += ",\"value\":{\"stringValue\":";
  AppendJsonString(out, value);
  out += "}}";
}
void JsonIntAttribute(std::string& out, std::string_view key, int64_t value) {
  out += "{\"key\":";
  AppendJsonString(out, key);
  out += ",\"value\":{\"intValue\":\"";
  out += std::to_string(value);
  out += "\"}}";
}

void JsonSpan(std::string& out, const GeneratedTrace& trace, const GeneratedSpan& span) {
  uint8_t id[8];
  out += "{\"traceId\":";
  Hex(out, trace.trace_id.data(), 16);
  out += ",\"spanId\":";
  BigEndian(span.span_id, id);
  Hex(out, id, 8);
  if (span.parent_span_id != 0) {
    out += ",\"parentSpanId\":";
    BigEndian(span.parent_span_id, id);
    Hex(out, id, 8);
  }
  out += ",\"name\":";
  AppendJsonString(out, span.name);
  out += ",\"kind\":";
  out += std::to_string(static_cast<int>(span.kind));
  out += ",\"startTimeUnixNano\":\"";
  out += std::to_string(trace.StartUnixNano(span));
  out += "\",\"endTimeUnixNano\":\"";
  out += std::to_string(trace.EndUnixNano(span));
  out += "\",\"attributes\":[";
  bool first = true;
  auto comma = [&] {
    if (!first) out.push_back(',');
    first = false;
  };
  for (const Attribute& a : span.attributes) {
    comma();
    if (a.is_int) {
      JsonIntAttribute(out, a.key, a.int_value);
    } else {
      JsonStringAttribute(out, a.key, a.string_value);
    }
  }
  if (span.http_status > 0) {
    comma();
    JsonIntAttribute(out, "http.response.status_code", span.http_status);
  }
  if (span.rpc_status >= 0) {
    comma();
    JsonIntAttribute(out, "rpc.grpc.status_code", span.rpc_status);
  }
  out += "]";
  if (span.exception) {
    out += ",\"events\":[{\"timeUnixNano\":\"";
    out += std::to_string(trace.EndUnixNano(span));
    out += "\",\"name\":\"exception\",\"attributes\":[";
    JsonStringAttribute(out, "exception.type", span.exception->type);
    out.push_back(',');
    JsonStringAttribute(out, "exception.message", span.exception->message);
    out.push_back(',');
    JsonStringAttribute(out, "exception.stacktrace", span.exception->stacktrace);
    out += "]}]";
  }
  if (span.status != SpanStatus::kUnset) {
    out += ",\"status\":{";
    if (!span.status_message.empty()) {
      out += "\"message\":";
      AppendJsonString(out, span.status_message);
      out.push_back(',');
    }
    out += "\"code\":";
    out += std::to_string(static_cast<int>(span.status));
    out.push_back('}');
  }
  out.push_back('}');
}

// Calls `group(begin, end)` for every run of consecutive spans of one service.
template <typename Group>
void ForEachServiceRun(std::span<const BatchSpan> spans, Group&& group) {
  size_t begin = 0;
  while (begin < spans.size()) {
    size_t end = begin + 1;
    while (end < spans.size() && spans[end].span->service == spans[begin].span->service) ++end;
    group(begin, end);
    begin = end;
  }
}

}  // namespace

std::vector<uint32_t> WireOrder(std::span<const BatchSpan> spans) {
  std::array<size_t, kServiceCount> first_seen;
  first_seen.fill(SIZE_MAX);
  size_t next = 0;
  for (const BatchSpan& s : spans) {
    if (first_seen[s.span->service] == SIZE_MAX) first_seen[s.span->service] = next++;
  }
  std::vector<uint32_t> order(spans.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return first_seen[spans[a].span->service] < first_seen[spans[b].span->service];
  });
  return order;
}

void OrderForWire(std::vector<BatchSpan>& spans) {
  const std::vector<uint32_t> order = WireOrder(spans);
  std::vector<BatchSpan> ordered;
  ordered.reserve(spans.size());
  for (uint32_t i : order) ordered.push_back(spans[i]);
  spans = std::move(ordered);
}

std::string EncodeProtobuf(std::span<const BatchSpan> spans) {
  std::string out;
  out.reserve(spans.size() * 400);
  ProtoWriter w(out);
  ForEachServiceRun(spans, [&](size_t begin, size_t end) {
    const size_t resource_spans = w.Begin(1);
    const size_t resource = w.Begin(1);
    w.StringAttribute(1, "service.name", kServiceNames[spans[begin].span->service]);
    for (const ResourceAttribute& a : kResourceAttributes) w.StringAttribute(1, a.key, a.value);
    w.End(resource);
    const size_t scope_spans = w.Begin(2);
    const size_t scope = w.Begin(1);
    w.BytesField(1, kScopeName);
    w.BytesField(2, kScopeVersion);
    w.End(scope);
    for (size_t i = begin; i < end; ++i) ProtoSpan(w, *spans[i].trace, *spans[i].span);
    w.End(scope_spans);
    w.End(resource_spans);
  });
  return out;
}

std::string EncodeJson(std::span<const BatchSpan> spans) {
  std::string out;
  out.reserve(spans.size() * 700);
  out += "{\"resourceSpans\":[";
  bool first_group = true;
  ForEachServiceRun(spans, [&](size_t begin, size_t end) {
    if (!first_group) out.push_back(',');
    first_group = false;
    out += "{\"resource\":{\"attributes\":[";
    JsonStringAttribute(out, "service.name", kServiceNames[spans[begin].span->service]);
    for (const ResourceAttribute& a : kResourceAttributes) {
      out.push_back(',');
      JsonStringAttribute(out, a.key, a.value);
    }
    out += "]},\"scopeSpans\":[{\"scope\":{\"name\":";
    AppendJsonString(out, kScopeName);
    out += ",\"version\":";
    AppendJsonString(out, kScopeVersion);
    out += "},\"spans\":[";
    for (size_t i = begin; i < end; ++i) {
      if (i != begin) out.push_back(',');
      JsonSpan(out, *spans[i].trace, *spans[i].span);
    }
    out += "]}]}";
  });
  out += "]}";
  return out;
}

std::string Encode(Encoding encoding, std::span<const BatchSpan> spans) {
  return encoding == Encoding::kJson ? EncodeJson(spans) : EncodeProtobuf(spans);
}

}  // namespace traceslo::loadgen
