#include "tests/bench/otlp_request.h"

#include <array>
#include <cstdio>
#include <random>

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

}  // namespace

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
