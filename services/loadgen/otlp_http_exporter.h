#pragma once

#include <memory>

#include "services/loadgen/exporter.h"
#include "services/loadgen/http_client.h"
#include "services/loadgen/otlp_encoder.h"

namespace traceslo::loadgen {

// OTLP/HTTP: POST /v1/traces with application/x-protobuf or application/json bodies, gzip when
// asked, the extra headers (e.g. Authorization) on every request, over one keep-alive
// connection. 200 is acknowledged (partialSuccess read from the body); 429, 502, 503 and 504
// and network failures are retryable (Retry-After honoured); other statuses are permanent.
// Owned by one thread.
class OtlpHttpExporter final : public Exporter {
 public:
  OtlpHttpExporter(std::unique_ptr<BlockingHttpClient> client, Encoding encoding,
                   HttpHeaders extra_headers, bool gzip);

  // traceslo::loadgen::Exporter
  ExportResult Export(std::string_view body) override;

 private:
  std::unique_ptr<BlockingHttpClient> client_;
  HttpHeaders headers_;
  const bool gzip_;
};

}  // namespace traceslo::loadgen
