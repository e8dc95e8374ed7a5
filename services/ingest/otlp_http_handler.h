#pragma once

#include "services/ingest/otlp_ingest.h"
#include "traceslo/http/server.h"

namespace traceslo::ingest {

// OTLP/HTTP: POST /v1/traces, protobuf or JSON, optionally gzip. Maps every outcome to the
// status codes of the OTLP specification, in one place. Thread-safe; `ingest` is borrowed.
class OtlpHttpHandler final : public http::Handler {
 public:
  explicit OtlpHttpHandler(OtlpIngest& ingest) : ingest_(ingest) {}

  // traceslo::http::Handler
  std::optional<http::Response> CheckHeaders(const http::Request& request) override;
  http::Response Handle(const http::Request& request) override;

 private:
  http::Response Answer(Encoding encoding, int status, std::string_view message);
  OtlpIngest& ingest_;
};

}  // namespace traceslo::ingest
