#include "services/ingest/otlp_http_handler.h"

#include <cctype>
#include <string>

#include "google/rpc/status.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "services/ingest/gzip.h"
#include "traceslo/common/json.h"

namespace traceslo::ingest {
namespace {

constexpr std::string_view kProtobufType = "application/x-protobuf";
constexpr std::string_view kJsonType = "application/json";

// The media type without parameters, lower-cased.
std::string MediaType(std::string_view content_type) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  while (!type.empty() && type.front() == ' ') type.remove_prefix(1);
  std::string out(type);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// google.rpc.Status code for an HTTP status, as OTLP/HTTP error bodies carry it.
int RpcCodeFor(int http_status) {
  switch (http_status) {
    case 400:
      return 3;  // INVALID_ARGUMENT
    case 401:
      return 16;  // UNAUTHENTICATED
    case 404:
      return 5;  // NOT_FOUND
    case 405:
    case 415:
      return 12;  // UNIMPLEMENTED
    case 413:
      return 8;  // RESOURCE_EXHAUSTED
    case 503:
      return 14;  // UNAVAILABLE
    default:
      return 13;  // INTERNAL
  }
}

}  // namespace

http::Response OtlpHttpHandler::Answer(Encoding encoding, int status, std::string_view message) {
  http::Response response;
  response.status = status;
  if (encoding == Encoding::kJson) {
    response.content_type = std::string(kJsonType);
    std::string body = "{\"code\":" + std::to_string(RpcCodeFor(status)) + ",\"message\":";
    AppendJsonString(body, message);
    body += "}";
    response.body = std::move(body);
  } else {
    google::rpc::Status rpc_status;
    rpc_status.set_code(RpcCodeFor(status));
    rpc_status.set_message(std::string(message));
    response.content_type = std::string(kProtobufType);
    response.body = rpc_status.SerializeAsString();
  }
  ingest_.CountRequest(Transport::kHttp, status);
  return response;
}

std::optional<http::Response> OtlpHttpHandler::CheckHeaders(const http::Request& request) {
  const std::string media_type = MediaType(request.Header("content-type"));
  const Encoding encoding = media_type == kJsonType ? Encoding::kJson : Encoding::kProtobuf;
  if (request.Path() != "/v1/traces") {
    return Answer(encoding, 404, "not found: OTLP/HTTP traces are received on /v1/traces");
  }
  if (request.method != "POST") {
    http::Response response = Answer(encoding, 405, "method not allowed: use POST");
    response.headers.emplace_back("Allow", "POST");
    return response;
  }
  if (!ingest_.auth().Allows(request.Header("authorization"))) {
    http::Response response = Answer(encoding, 401, "missing or invalid bearer token");
    response.headers.emplace_back("WWW-Authenticate", "Bearer");
    return response;
  }
  if (media_type != kJsonType && media_type != kProtobufType) {
    return Answer(encoding, 415,
                  "unsupported media type \"" + media_type +
                      "\": use application/x-protobuf or application/json");
  }
  const std::string_view content_encoding = request.Header("content-encoding");
  if (!content_encoding.empty() && content_encoding != "identity" && content_encoding != "gzip" &&
      content_encoding != "x-gzip") {
    return Answer(
        encoding, 415,
        "unsupported content encoding \"" + std::string(content_encoding) + "\": use gzip or none");
  }
  return std::nullopt;
}

http::Response OtlpHttpHandler::Handle(const http::Request& request) {
  if (std::optional<http::Response> refusal = CheckHeaders(request)) return *std::move(refusal);
  const Encoding encoding = MediaType(request.Header("content-type")) == kJsonType
                                ? Encoding::kJson
                                : Encoding::kProtobuf;
  const uint64_t max_bytes = ingest_.options().max_request_bytes;
  if (request.body_too_large) {
    return Answer(encoding, 413, "request body exceeds " + std::to_string(max_bytes) + " bytes");
  }
  const std::string_view encoding_header = request.Header("content-encoding");
  std::string_view body = request.body;
  std::string inflated;
  if (encoding_header == "gzip" || encoding_header == "x-gzip") {
    absl::Status status = Gunzip(request.body, max_bytes, inflated);
    if (absl::IsResourceExhausted(status)) {
      return Answer(encoding, 413, std::string(status.message()));
    }
    if (!status.ok()) return Answer(encoding, 400, std::string(status.message()));
    body = inflated;
  }

  ExportOutcome outcome = ingest_.Export(Transport::kHttp, encoding, body);
  switch (outcome.kind) {
    case ExportOutcome::Kind::kUndecodable:
      return Answer(encoding, 400, outcome.message);
    case ExportOutcome::Kind::kTooLarge:
      return Answer(encoding, 413, outcome.message);
    case ExportOutcome::Kind::kUnavailable: {
      http::Response response = Answer(encoding, 503, outcome.message);
      response.headers.emplace_back("Retry-After", "1");
      return response;
    }
    case ExportOutcome::Kind::kOk:
      break;
  }
  http::Response response;
  if (encoding == Encoding::kJson) {
    response.content_type = std::string(kJsonType);
    if (outcome.rejected_spans == 0) {
      response.body = "{}";
    } else {
      response.body = "{\"partialSuccess\":{\"rejectedSpans\":\"" +
                      std::to_string(outcome.rejected_spans) + "\",\"errorMessage\":";
      AppendJsonString(response.body, outcome.message);
      response.body += "}}";
    }
  } else {
    opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse message;
    if (outcome.rejected_spans != 0) {
      message.mutable_partial_success()->set_rejected_spans(outcome.rejected_spans);
      message.mutable_partial_success()->set_error_message(outcome.message);
    }
    response.content_type = std::string(kProtobufType);
    response.body = message.SerializeAsString();
  }
  ingest_.CountRequest(Transport::kHttp, 200);
  return response;
}

}  // namespace traceslo::ingest
