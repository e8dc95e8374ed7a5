#include "services/loadgen/otlp_http_exporter.h"

#include <string>
#include <utility>

#include "services/loadgen/gzip.h"
#include "services/loadgen/otlp_response.h"

#ifndef TRACESLO_VERSION
#define TRACESLO_VERSION "0.0.0-dev"
#endif

namespace traceslo::loadgen {
namespace {

constexpr std::string_view kPath = "/v1/traces";

// The first line of `body`, printable and short: for messages.
std::string Excerpt(std::string_view body) {
  std::string out;
  for (char c : body.substr(0, 200)) {
    if (c == '\n' || c == '\r') break;
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}

}  // namespace

OtlpHttpExporter::OtlpHttpExporter(std::unique_ptr<BlockingHttpClient> client, Encoding encoding,
                                   HttpHeaders extra_headers, bool gzip)
    : client_(std::move(client)), gzip_(gzip) {
  headers_.emplace_back(
      "Content-Type", encoding == Encoding::kJson ? "application/json" : "application/x-protobuf");
  headers_.emplace_back("User-Agent", "traceslo-loadgen/" TRACESLO_VERSION);
  if (gzip_) headers_.emplace_back("Content-Encoding", "gzip");
  for (auto& header : extra_headers) headers_.push_back(std::move(header));
}

ExportResult OtlpHttpExporter::Export(std::string_view body) {
  std::string compressed;
  if (gzip_) {
    compressed = Gzip(body);
    body = compressed;
  }
  absl::StatusOr<HttpResponse> response = client_->Post(kPath, headers_, body);
  ExportResult result;
  if (!response.ok()) {
    result.kind = ExportResult::Kind::kRetryable;
    result.reason = "network";
    result.message = std::string(response.status().message());
    return result;
  }
  const int status = response->status;
  if (status == 200) {
    const bool json = response->Header("Content-Type").find("json") != std::string_view::npos;
    std::optional<int64_t> rejected =
        json ? RejectedSpansFromJson(response->body) : RejectedSpansFromProtobuf(response->body);
    result.rejected_spans = rejected.value_or(0);
    return result;
  }
  result.reason = "http_" + std::to_string(status);
  result.message = "HTTP " + std::to_string(status) + " " + Excerpt(response->body);
  if (status == 429 || status == 502 || status == 503 || status == 504) {
    result.kind = ExportResult::Kind::kRetryable;
    result.retry_after = ParseRetryAfter(response->Header("Retry-After"));
  } else {
    result.kind = ExportResult::Kind::kPermanent;
  }
  return result;
}

}  // namespace traceslo::loadgen
