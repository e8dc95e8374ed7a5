#include "tests/bench/otlp_request.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "traceslo/common/json.h"

namespace traceslo::bench {
namespace {

namespace collector = opentelemetry::proto::collector::trace::v1;
namespace common = opentelemetry::proto::common::v1;
namespace trace = opentelemetry::proto::trace::v1;

constexpr std::array<std::string_view, 4> kServices = {"checkout", "cart", "payment", "frontend"};
constexpr std::array<std::string_view, 6> kRoutes = {"/api/v1/orders/{id}", "/api/v1/cart",
                                                     "/api/v1/payments",    "/api/v1/products",
                                                     "/api/v1/users/{id}",  "/healthz"};
constexpr std::string_view kStacktrace =
    "java.lang.IllegalStateException: order not found in inventory\n"
    "\tat com.example.checkout.InventoryClient.reserve(InventoryClient.java:118)\n"
    "\tat com.example.checkout.OrderService.place(OrderService.java:87)\n"
    "\tat com.example.checkout.OrderController.create(OrderController.java:42)\n"
    "\tat jdk.internal.reflect.GeneratedMethodAccessor112.invoke(Unknown Source)\n"
    "\tat java.base/java.lang.reflect.Method.invoke(Method.java:568)\n"
    "\tat org.springframework.web.method.support.InvocableHandlerMethod.doInvoke("
    "InvocableHandlerMethod.java:205)\n"
    "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:883)\n"
    "\tat jakarta.servlet.http.HttpServlet.service(HttpServlet.java:658)\n"
    "\tat org.apache.catalina.core.ApplicationFilterChain.doFilter("
    "ApplicationFilterChain.java:166)\n";

void AddString(google::protobuf::RepeatedPtrField<common::KeyValue>* attributes,
               std::string_view key, std::string_view value) {
  common::KeyValue* kv = attributes->Add();
  kv->set_key(std::string(key));
  kv->mutable_value()->set_string_value(std::string(value));
}

void AddInt(google::protobuf::RepeatedPtrField<common::KeyValue>* attributes, std::string_view key,
            int64_t value) {
  common::KeyValue* kv = attributes->Add();
  kv->set_key(std::string(key));
  kv->mutable_value()->set_int_value(value);
}

std::string RandomBytes(std::mt19937_64& rng, size_t size) {
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    uint64_t v = rng() | 1;  // never all zero
    for (size_t j = 0; j < 8 && i + j < size; ++j) bytes[i + j] = static_cast<char>(v >> (8 * j));
  }
  return bytes;
}

// --- OTLP/JSON writer -------------------------------------------------------------------------

void AppendHex(std::string& out, std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  out.push_back('"');
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  out.push_back('"');
}

void AppendKey(std::string& out, std::string_view key) {
  out.push_back('"');
  out.append(key);
  out += "\":";
}

void AppendAnyValue(std::string& out, const common::AnyValue& value);

void AppendAttributes(std::string& out,
                      const google::protobuf::RepeatedPtrField<common::KeyValue>& attributes) {
  out += "\"attributes\":[";
  for (int i = 0; i < attributes.size(); ++i) {
    if (i != 0) out.push_back(',');
    out += "{\"key\":";
    AppendJsonString(out, attributes[i].key());
    out += ",\"value\":";
    AppendAnyValue(out, attributes[i].value());
    out.push_back('}');
  }
  out.push_back(']');
}

void AppendAnyValue(std::string& out, const common::AnyValue& value) {
  out.push_back('{');
  switch (value.value_case()) {
    case common::AnyValue::kStringValue:
      AppendKey(out, "stringValue");
      AppendJsonString(out, value.string_value());
      break;
    case common::AnyValue::kIntValue:
      AppendKey(out, "intValue");
      out += "\"" + std::to_string(value.int_value()) + "\"";
      break;
    case common::AnyValue::kBoolValue:
      AppendKey(out, "boolValue");
      out += value.bool_value() ? "true" : "false";
      break;
    case common::AnyValue::kDoubleValue:
      AppendKey(out, "doubleValue");
      out += std::to_string(value.double_value());
      break;
    default:
      break;  // the builder above writes no other kinds
  }
  out.push_back('}');
}

void AppendSpan(std::string& out, const trace::Span& span) {
  out += "{\"traceId\":";
  AppendHex(out, span.trace_id());
  out += ",\"spanId\":";
  AppendHex(out, span.span_id());
  if (!span.parent_span_id().empty()) {
    out += ",\"parentSpanId\":";
    AppendHex(out, span.parent_span_id());
  }
  out += ",\"flags\":" + std::to_string(span.flags());
  out += ",\"name\":";
  AppendJsonString(out, span.name());
  out += ",\"kind\":" + std::to_string(static_cast<int>(span.kind()));
  out += ",\"startTimeUnixNano\":\"" + std::to_string(span.start_time_unix_nano()) + "\"";
  out += ",\"endTimeUnixNano\":\"" + std::to_string(span.end_time_unix_nano()) + "\",";
  AppendAttributes(out, span.attributes());
  if (span.events_size() != 0) {
    out += ",\"events\":[";
    for (int i = 0; i < span.events_size(); ++i) {
      const trace::Span::Event& event = span.events(i);
      if (i != 0) out.push_back(',');
      out += "{\"timeUnixNano\":\"" + std::to_string(event.time_unix_nano()) + "\",\"name\":";
      AppendJsonString(out, event.name());
      out.push_back(',');
      AppendAttributes(out, event.attributes());
      out.push_back('}');
    }
    out.push_back(']');
  }
  if (span.has_status()) {
    out += ",\"status\":{\"code\":" + std::to_string(static_cast<int>(span.status().code()));
    if (!span.status().message().empty()) {
      out += ",\"message\":";
      AppendJsonString(out, span.status().message());
    }
    out.push_back('}');
  }
  out.push_back('}');
}

// --- service-mesh traffic ---------------------------------------------------------------------

constexpr std::array<std::string_view, 24> kMeshServices = {
    "frontend",  "checkout", "cart",     "payment", "shipping", "inventory", "catalog", "search",
    "recommend", "ads",      "currency", "email",   "auth",     "users",     "reviews", "pricing",
    "orders",    "fraud",    "loyalty",  "gateway", "media",    "notify",    "tax",     "quotes"};

// Operation names of every service, by role: four HTTP routes (SERVER), two HTTP client calls,
// a database query, a publish (PRODUCER) and two internal steps.
enum MeshOp : uint32_t {
  kRoute0 = 0,  // kRoute0 + 0..3
  kHttpGet = 4,
  kHttpPost = 5,
  kDbQuery = 6,
  kPublish = 7,
  kValidate = 8,
  kRender = 9,
};
constexpr std::array<std::string_view, MeshShape::kOperationsPerService> kMeshOps = {
    "GET /api/v1/items/{id}",
    "POST /api/v1/items",
    "GET /api/v1/search",
    "DELETE /api/v1/items/{id}",
    "GET",
    "POST",
    "SELECT shop.items",
    "publish shop.events",
    "validate",
    "render"};

struct MeshError {
  std::string_view type;
  std::string_view format;  // "{}" stands for a number
};
constexpr std::array<MeshError, 4> kMeshErrors = {{
    {"java.lang.IllegalStateException", "order {} not found in inventory (warehouse {}, try {})"},
    {"java.net.ConnectException", "connection #{} to 10.0.3.{}:5432 refused after {} ms"},
    {"io.github.ratelimit.RateLimitExceededException",
     "user {} exceeded the limit of {} requests per {} s"},
    {"java.util.concurrent.TimeoutException",
     "deadline of {} ms exceeded after {} ms (attempt {})"},
}};

// `format` with each "{}" replaced by the next of `numbers` (the second is always < 256, so it
// can be an address byte).
std::string FillNumbers(std::string_view format, std::array<uint64_t, 3> numbers) {
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format.compare(i, 2, "{}") == 0 && next < numbers.size()) {
      out += std::to_string(numbers[next++]);
      ++i;
    } else {
      out.push_back(format[i]);
    }
  }
  return out;
}

struct MeshSpan {
  uint32_t service;
  uint32_t op;
  trace::Span::SpanKind kind;
  int parent;  // index in the trace, -1 for the root
  uint64_t start;
  uint64_t end;
  bool error;
  std::string trace_id;
  std::string span_id;
};

void AddMeshAttributes(trace::Span* span, const MeshSpan& s, std::string_view service,
                       std::mt19937_64& rng) {
  auto* attributes = span->mutable_attributes();
  const int64_t status = s.error ? 500 : (rng() % 20 == 0 ? 404 : 200);
  switch (s.op) {
    case kHttpGet:
    case kHttpPost:
      AddString(attributes, "http.request.method", s.op == kHttpGet ? "GET" : "POST");
      AddString(attributes, "url.full",
                "http://backend:8080/api/v1/items/" + std::to_string(rng() % 100000));
      AddString(attributes, "server.address", "backend");
      AddInt(attributes, "server.port", 8080);
      AddInt(attributes, "http.response.status_code", status);
      AddString(attributes, "network.protocol.version", "1.1");
      break;
    case kDbQuery:
      AddString(attributes, "db.system", "postgresql");
      AddString(attributes, "db.namespace", "shop");
      AddString(attributes, "db.query.text", "SELECT id, name, price FROM items WHERE id = $1");
      AddString(attributes, "server.address", "postgres.shop.svc.cluster.local");
      AddInt(attributes, "server.port", 5432);
      break;
    case kPublish:
      AddString(attributes, "messaging.system", "kafka");
      AddString(attributes, "messaging.destination.name", "shop.events");
      AddString(attributes, "messaging.operation.type", "publish");
      AddString(attributes, "server.address", "kafka.shop.svc.cluster.local");
      break;
    case kValidate:
    case kRender:
      AddString(attributes, "code.function", s.op == kValidate ? "validate" : "render");
      AddString(attributes, "code.namespace", "com.example." + std::string(service));
      break;
    default: {  // a route: an HTTP server span
      const std::string_view name = kMeshOps[s.op];
      const size_t space = name.find(' ');
      AddString(attributes, "http.request.method", name.substr(0, space));
      AddString(attributes, "http.route", name.substr(space + 1));
      AddString(attributes, "url.path", "/api/v1/items/" + std::to_string(rng() % 100000));
      AddString(attributes, "url.scheme", "https");
      AddString(attributes, "server.address", std::string(service) + ".shop.svc.cluster.local");
      AddInt(attributes, "server.port", 8080);
      AddInt(attributes, "http.response.status_code", status);
      AddString(attributes, "network.protocol.version", "1.1");
      AddString(attributes, "user_agent.original",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)");
      AddString(attributes, "client.address", "10.12." + std::to_string(rng() % 256) + ".17");
      break;
    }
  }
}

// Reads a varint at `pos`; false if it runs past `end`.
bool ReadVarint(std::string_view bytes, size_t& pos, size_t end, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && pos < end; shift += 7) {
    const auto byte = static_cast<uint8_t>(bytes[pos++]);
    value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// Calls f(field, wire_type, offset, size) for each field of the message in [begin, end), where
// [offset, offset + size) is the field's value (for LEN fields, its payload). False if malformed.
template <typename F>
bool ForEachField(std::string_view bytes, size_t begin, size_t end, F&& f) {
  size_t pos = begin;
  while (pos < end) {
    uint64_t tag;
    if (!ReadVarint(bytes, pos, end, tag)) return false;
    const auto field = static_cast<uint32_t>(tag >> 3);
    const auto wire_type = static_cast<uint32_t>(tag & 7);
    uint64_t size;
    switch (wire_type) {
      case 0: {
        const size_t at = pos;
        uint64_t ignored;
        if (!ReadVarint(bytes, pos, end, ignored)) return false;
        size = pos - at;
        pos = at;
        break;
      }
      case 1:
        size = 8;
        break;
      case 2:
        if (!ReadVarint(bytes, pos, end, size)) return false;
        break;
      case 5:
        size = 4;
        break;
      default:
        return false;
    }
    if (size > end - pos) return false;
    if (!f(field, wire_type, pos, static_cast<size_t>(size))) return false;
    pos += size;
  }
  return true;
}

}  // namespace

std::vector<std::string> MeshServiceNames(uint32_t services) {
  services = std::clamp<uint32_t>(services, 3, kMeshServices.size());
  return std::vector<std::string>(kMeshServices.begin(), kMeshServices.begin() + services);
}

std::string MakeMeshOtlpProtoRequest(const MeshShape& shape) {
  std::mt19937_64 rng(shape.seed);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::lognormal_distribution<double> root_duration(std::log(shape.root_median_ms * 1e6),
                                                    shape.sigma);
  std::bernoulli_distribution error(shape.error_rate);
  const uint32_t services = std::clamp<uint32_t>(shape.services, 3, kMeshServices.size());

  std::vector<MeshSpan> spans;
  spans.reserve(shape.spans());
  for (uint32_t t = 0; t < shape.traces; ++t) {
    const std::string trace_id = RandomBytes(rng, 16);
    const auto a = static_cast<uint32_t>(rng() % services);
    const auto b = static_cast<uint32_t>((a + 1 + rng() % (services - 1)) % services);
    uint32_t c = static_cast<uint32_t>(rng() % services);
    while (c == a || c == b) c = (c + 1) % services;
    const bool three = rng() % 2 == 0;
    const auto route = [&] { return static_cast<uint32_t>(kRoute0 + rng() % 4); };
    const auto http = [&] { return rng() % 3 == 0 ? kHttpPost : kHttpGet; };
    using K = trace::Span;
    // (service, operation, kind, parent) of the 8 spans.
    struct Shape {
      uint32_t service;
      uint32_t op;
      trace::Span::SpanKind kind;
      int parent;
    };
    std::array<Shape, MeshShape::kSpansPerTrace> tree = {{
        {a, route(), K::SPAN_KIND_SERVER, -1},
        {a, kValidate, K::SPAN_KIND_INTERNAL, 0},
        {a, http(), K::SPAN_KIND_CLIENT, 0},
        {b, route(), K::SPAN_KIND_SERVER, 2},
        {b, kDbQuery, K::SPAN_KIND_CLIENT, 3},
        {b, kRender, K::SPAN_KIND_INTERNAL, 3},
        {a, kPublish, K::SPAN_KIND_PRODUCER, 0},
        {a, kRender, K::SPAN_KIND_INTERNAL, 0},
    }};
    if (three) {
      tree[5] = {a, http(), K::SPAN_KIND_CLIENT, 0};
      tree[6] = {c, route(), K::SPAN_KIND_SERVER, 5};
      tree[7] = {c, kPublish, K::SPAN_KIND_PRODUCER, 6};
    }
    const size_t first = spans.size();
    for (const Shape& node : tree) {
      MeshSpan s{.service = node.service,
                 .op = node.op,
                 .kind = node.kind,
                 .parent = node.parent,
                 .start = 0,
                 .end = 0,
                 .error = error(rng),
                 .trace_id = trace_id,
                 .span_id = RandomBytes(rng, 8)};
      if (node.parent < 0) {
        s.end = shape.sent_unix_nano -
                static_cast<uint64_t>(unit(rng) * static_cast<double>(shape.window_nanos));
        const auto duration = static_cast<uint64_t>(std::clamp(root_duration(rng), 2e4, 6e10));
        s.start = s.end - duration;
      } else {
        const MeshSpan& parent = spans[first + static_cast<size_t>(node.parent)];
        const double parent_duration = static_cast<double>(parent.end - parent.start);
        // The callee's SERVER span fills most of its CLIENT span; other children less.
        const double share =
            node.kind == K::SPAN_KIND_SERVER ? 0.8 + 0.18 * unit(rng) : 0.05 + 0.55 * unit(rng);
        const auto duration = static_cast<uint64_t>(parent_duration * share);
        s.start = parent.start +
                  static_cast<uint64_t>(unit(rng) *
                                        static_cast<double>(parent.end - parent.start - duration));
        s.end = s.start + duration;
      }
      spans.push_back(std::move(s));
    }
  }

  // One resource per service, in order of first appearance; spans by end time within each.
  std::vector<uint32_t> order;
  for (const MeshSpan& s : spans) {
    if (std::find(order.begin(), order.end(), s.service) == order.end()) order.push_back(s.service);
  }
  std::vector<size_t> by_end(spans.size());
  for (size_t i = 0; i < by_end.size(); ++i) by_end[i] = i;
  std::stable_sort(by_end.begin(), by_end.end(),
                   [&](size_t x, size_t y) { return spans[x].end < spans[y].end; });

  collector::ExportTraceServiceRequest request;
  for (uint32_t service_index : order) {
    const std::string service(kMeshServices[service_index]);
    trace::ResourceSpans* resource_spans = request.add_resource_spans();
    auto* resource_attributes = resource_spans->mutable_resource()->mutable_attributes();
    AddString(resource_attributes, "service.name", service);
    AddString(resource_attributes, "service.namespace", "shop");
    AddString(resource_attributes, "service.version", "2.14.3");
    AddString(resource_attributes, "service.instance.id",
              "3f0c5a1e-9b7d-4c2e-8a61-" + std::to_string(100000000000 + service_index));
    AddString(resource_attributes, "host.name", service + "-7d9f8b6c5-x2k4q");
    AddString(resource_attributes, "os.type", "linux");
    AddInt(resource_attributes, "process.pid", 4242 + service_index);
    AddString(resource_attributes, "telemetry.sdk.language", "java");
    AddString(resource_attributes, "telemetry.sdk.version", "1.32.0");
    trace::ScopeSpans* scope_spans = resource_spans->add_scope_spans();
    scope_spans->mutable_scope()->set_name("io.opentelemetry.spring-webmvc-6.0");
    scope_spans->mutable_scope()->set_version("1.32.0-alpha");

    for (size_t i : by_end) {
      const MeshSpan& s = spans[i];
      if (s.service != service_index) continue;
      trace::Span* span = scope_spans->add_spans();
      span->set_trace_id(s.trace_id);
      span->set_span_id(s.span_id);
      if (s.parent >= 0) {
        const size_t trace_first = i - i % MeshShape::kSpansPerTrace;
        span->set_parent_span_id(spans[trace_first + static_cast<size_t>(s.parent)].span_id);
      }
      span->set_flags(1);
      span->set_name(std::string(kMeshOps[s.op]));
      span->set_kind(s.kind);
      span->set_start_time_unix_nano(s.start);
      span->set_end_time_unix_nano(s.end);
      AddMeshAttributes(span, s, service, rng);
      if (s.error) {
        const MeshError& e = kMeshErrors[rng() % kMeshErrors.size()];
        const std::string message =
            FillNumbers(e.format, {rng() % 100000, rng() % 256, 1 + rng() % 5000});
        trace::Span::Event* event = span->add_events();
        event->set_time_unix_nano(s.end);
        event->set_name("exception");
        AddString(event->mutable_attributes(), "exception.type", e.type);
        AddString(event->mutable_attributes(), "exception.message", message);
        AddString(event->mutable_attributes(), "exception.stacktrace", kStacktrace);
        AddString(event->mutable_attributes(), "exception.escaped", "false");
        span->mutable_status()->set_code(trace::Status::STATUS_CODE_ERROR);
        span->mutable_status()->set_message(message);
      }
    }
  }
  return request.SerializeAsString();
}

SpanFieldOffsets FindSpanFields(std::string_view proto_bytes) {
  SpanFieldOffsets offsets;
  // ExportTraceServiceRequest.resource_spans (1) > ResourceSpans.scope_spans (2) >
  // ScopeSpans.spans (2) > Span.trace_id (1), start_time_unix_nano (7), end_time_unix_nano (8).
  auto span_fields = [&](uint32_t field, uint32_t wire_type, size_t offset, size_t size) {
    if (field == 1 && wire_type == 2 && size == 16) offsets.trace_ids.push_back(offset);
    if (field == 7 && wire_type == 1) offsets.start_times.push_back(offset);
    if (field == 8 && wire_type == 1) offsets.end_times.push_back(offset);
    return true;
  };
  auto scope_fields = [&](uint32_t field, uint32_t wire_type, size_t offset, size_t size) {
    if (field != 2 || wire_type != 2) return true;
    return ForEachField(proto_bytes, offset, offset + size, span_fields);
  };
  auto resource_fields = [&](uint32_t field, uint32_t wire_type, size_t offset, size_t size) {
    if (field != 2 || wire_type != 2) return true;
    return ForEachField(proto_bytes, offset, offset + size, scope_fields);
  };
  auto request_fields = [&](uint32_t field, uint32_t wire_type, size_t offset, size_t size) {
    if (field != 1 || wire_type != 2) return true;
    return ForEachField(proto_bytes, offset, offset + size, resource_fields);
  };
  if (!ForEachField(proto_bytes, 0, proto_bytes.size(), request_fields)) return {};
  return offsets;
}

void RestampRequest(std::string_view original, const SpanFieldOffsets& offsets, uint64_t trace_salt,
                    int64_t shift_nanos, std::string& request) {
  for (size_t offset : offsets.trace_ids) std::memcpy(&request[offset], &trace_salt, 8);
  for (const std::vector<size_t>* times : {&offsets.start_times, &offsets.end_times}) {
    for (size_t offset : *times) {
      uint64_t value;
      std::memcpy(&value, original.data() + offset, 8);  // little-endian, as the wire
      value += static_cast<uint64_t>(shift_nanos);
      std::memcpy(&request[offset], &value, 8);
    }
  }
}

std::string MakeOtlpProtoRequest(const RequestShape& shape) {
  std::mt19937_64 rng(shape.seed);
  collector::ExportTraceServiceRequest request;
  uint64_t now = 1'700'000'000'000'000'000ull;
  for (uint32_t r = 0; r < shape.resources; ++r) {
    const std::string service(kServices[r % kServices.size()]);
    trace::ResourceSpans* resource_spans = request.add_resource_spans();
    auto* resource_attributes = resource_spans->mutable_resource()->mutable_attributes();
    AddString(resource_attributes, "service.name", service);
    AddString(resource_attributes, "service.namespace", "shop");
    AddString(resource_attributes, "service.version", "2.14.3");
    AddString(resource_attributes, "service.instance.id",
              "3f0c5a1e-9b7d-4c2e-8a61-" + std::to_string(100000000000 + r));
    AddString(resource_attributes, "host.name", service + "-7d9f8b6c5-x2k4q");
    AddString(resource_attributes, "os.type", "linux");
    AddInt(resource_attributes, "process.pid", 4242 + r);
    AddString(resource_attributes, "telemetry.sdk.language", "java");
    AddString(resource_attributes, "telemetry.sdk.version", "1.32.0");

    trace::ScopeSpans* scope_spans = resource_spans->add_scope_spans();
    scope_spans->mutable_scope()->set_name("io.opentelemetry.spring-webmvc-6.0");
    scope_spans->mutable_scope()->set_version("1.32.0-alpha");
    std::string trace_id;
    std::string parent_id;
    for (uint32_t i = 0; i < shape.spans_per_resource; ++i) {
      trace::Span* span = scope_spans->add_spans();
      const bool root = i % shape.spans_per_trace == 0;
      if (root) {
        trace_id = RandomBytes(rng, 16);
        parent_id.clear();
      }
      const std::string span_id = RandomBytes(rng, 8);
      span->set_trace_id(trace_id);
      span->set_span_id(span_id);
      if (!parent_id.empty()) span->set_parent_span_id(parent_id);
      parent_id = span_id;
      span->set_flags(1);
      const std::string_view route = kRoutes[rng() % kRoutes.size()];
      const bool post = rng() % 3 == 0;
      span->set_name(std::string(post ? "POST " : "GET ") + std::string(route));
      span->set_kind(
          root ? trace::Span::SPAN_KIND_SERVER
               : (i % 2 ? trace::Span::SPAN_KIND_CLIENT : trace::Span::SPAN_KIND_INTERNAL));
      const uint64_t start = now + i * 1'000'000ull;
      const uint64_t duration = 100'000 + rng() % 50'000'000;
      span->set_start_time_unix_nano(start);
      span->set_end_time_unix_nano(start + duration);

      const bool error =
          shape.exception_every != 0 && i % shape.exception_every == shape.exception_every - 1;
      const int64_t status = error ? 500 : (rng() % 10 == 0 ? 404 : 200);
      auto* attributes = span->mutable_attributes();
      AddString(attributes, "http.request.method", post ? "POST" : "GET");
      AddString(attributes, "http.route", route);
      AddString(attributes, "url.path", "/api/v1/orders/" + std::to_string(rng() % 100000));
      AddString(attributes, "url.scheme", "https");
      AddString(attributes, "server.address", service + ".shop.svc.cluster.local");
      AddInt(attributes, "server.port", 8080);
      AddInt(attributes, "http.response.status_code", status);
      AddString(attributes, "network.protocol.version", "1.1");
      AddString(attributes, "user_agent.original",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)");
      AddString(attributes, "client.address", "10.12." + std::to_string(rng() % 256) + ".17");

      if (error) {
        trace::Span::Event* event = span->add_events();
        event->set_time_unix_nano(start + duration / 2);
        event->set_name("exception");
        AddString(event->mutable_attributes(), "exception.type", "java.lang.IllegalStateException");
        AddString(event->mutable_attributes(), "exception.message",
                  "order " + std::to_string(rng() % 100000) + " not found in inventory");
        AddString(event->mutable_attributes(), "exception.stacktrace", kStacktrace);
        AddString(event->mutable_attributes(), "exception.escaped", "false");
        span->mutable_status()->set_code(trace::Status::STATUS_CODE_ERROR);
        span->mutable_status()->set_message("order not found");
      }
    }
    now += shape.spans_per_resource * 1'000'000ull;
  }
  return request.SerializeAsString();
}

std::string OtlpProtoToJson(std::string_view proto_bytes) {
  collector::ExportTraceServiceRequest request;
  if (!request.ParseFromArray(proto_bytes.data(), static_cast<int>(proto_bytes.size()))) return {};
  std::string out;
  out.reserve(proto_bytes.size() * 3);
  out += "{\"resourceSpans\":[";
  for (int r = 0; r < request.resource_spans_size(); ++r) {
    const trace::ResourceSpans& resource_spans = request.resource_spans(r);
    if (r != 0) out.push_back(',');
    out += "{\"resource\":{";
    AppendAttributes(out, resource_spans.resource().attributes());
    out += "},\"scopeSpans\":[";
    for (int s = 0; s < resource_spans.scope_spans_size(); ++s) {
      const trace::ScopeSpans& scope_spans = resource_spans.scope_spans(s);
      if (s != 0) out.push_back(',');
      out += "{\"scope\":{\"name\":";
      AppendJsonString(out, scope_spans.scope().name());
      out += ",\"version\":";
      AppendJsonString(out, scope_spans.scope().version());
      out += "},\"spans\":[";
      for (int i = 0; i < scope_spans.spans_size(); ++i) {
        if (i != 0) out.push_back(',');
        AppendSpan(out, scope_spans.spans(i));
      }
      out += "]}";
    }
    out += "]}";
  }
  out += "]}";
  return out;
}

}  // namespace traceslo::bench
