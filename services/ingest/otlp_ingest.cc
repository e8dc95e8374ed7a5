#include "services/ingest/otlp_ingest.h"

#include <string>

#include "services/ingest/grpc_codes.h"

namespace traceslo::ingest {
namespace {

constexpr std::string_view kTransportNames[] = {"grpc", "http"};

// The HTTP statuses the OTLP/HTTP receiver answers with; anything else counts as 500.
constexpr int kHttpCodes[] = {200, 400, 401, 404, 405, 413, 415, 429, 500, 503};

size_t HttpCodeIndex(int code) {
  for (size_t i = 0; i < std::size(kHttpCodes); ++i) {
    if (kHttpCodes[i] == code) return i;
  }
  return 8;  // 500
}

}  // namespace

OtlpIngest::OtlpIngest(const IngestOptions& options, const BearerAuth& auth,
                       pipeline::SpanSink& sink, prometheus::Registry& registry)
    : options_(options), auth_(auth), sink_(sink) {
  auto& received = prometheus::BuildCounter()
                       .Name("traceslo_spans_received_total")
                       .Help("Spans accepted from OTLP requests and queued for the pipeline.")
                       .Register(registry);
  auto& rejected = prometheus::BuildCounter()
                       .Name("traceslo_spans_rejected_total")
                       .Help(
                           "Spans refused, by reason (invalid spans of otherwise good requests, "
                           "and spans of requests refused because the pipeline was full).")
                       .Register(registry);
  requests_family_ = &prometheus::BuildCounter()
                          .Name("traceslo_otlp_requests_total")
                          .Help("OTLP export requests answered, by transport and response code.")
                          .Register(registry);
  for (size_t t = 0; t < kTransports; ++t) {
    const std::string transport(kTransportNames[t]);
    received_[t] = &received.Add({{"transport", transport}});
    for (size_t r = 0; r < kSpanRejectReasonCount; ++r) {
      rejected_[t][r] = &rejected.Add(
          {{"transport", transport},
           {"reason", std::string(SpanRejectReasonName(static_cast<SpanRejectReason>(r)))}});
    }
    rejected_[t][kSpanRejectReasonCount] =
        &rejected.Add({{"transport", transport}, {"reason", "queue_full"}});
    rejected_[t][kSpanRejectReasonCount + 1] =
        &rejected.Add({{"transport", transport}, {"reason", "shutting_down"}});
  }
  for (size_t c = 0; c < kGrpcCodeNames.size(); ++c) {
    requests_[0][c] =
        &requests_family_->Add({{"transport", "grpc"}, {"code", std::string(kGrpcCodeNames[c])}});
  }
  for (size_t c = 0; c < std::size(kHttpCodes); ++c) {
    requests_[1][c] =
        &requests_family_->Add({{"transport", "http"}, {"code", std::to_string(kHttpCodes[c])}});
  }
}

void OtlpIngest::CountRequest(Transport transport, int code) {
  if (transport == Transport::kGrpc) {
    if (code < 0 || code >= static_cast<int>(kGrpcCodeNames.size())) code = 2;  // UNKNOWN
    requests_[0][static_cast<size_t>(code)]->Increment();
  } else {
    requests_[1][HttpCodeIndex(code)]->Increment();
  }
}

ExportOutcome OtlpIngest::Export(Transport transport, Encoding encoding, std::string_view body) {
  const size_t t = static_cast<size_t>(transport);
  ExportOutcome outcome;
  if (body.size() > options_.max_request_bytes) {
    outcome.kind = ExportOutcome::Kind::kTooLarge;
    outcome.message = "request body of " + std::to_string(body.size()) + " bytes exceeds " +
                      std::to_string(options_.max_request_bytes);
    return outcome;
  }
  // The spans vector keeps its capacity per thread (up to kKeepSpans; a rare huge request does
  // not pin its memory); the arena moves on with the batch.
  constexpr size_t kKeepSpans = 16 * 1024;
  thread_local SpanBatch batch;
  batch.Clear();
  struct Trim {
    ~Trim() {
      batch.Clear();
      if (batch.spans.capacity() > kKeepSpans) std::vector<Span>().swap(batch.spans);
    }
  } trim;
  DecodeResult result;
  absl::Status status = encoding == Encoding::kProtobuf
                            ? DecodeOtlpProto(body, options_.limits, batch, result)
                            : DecodeOtlpJson(body, options_.limits, batch, result);
  if (!status.ok()) {
    batch.Clear();
    outcome.kind = ExportOutcome::Kind::kUndecodable;
    outcome.message = std::string(status.message());
    return outcome;
  }
  const size_t accepted = batch.spans.size();
  status = sink_.TryEnqueue(batch);
  if (!status.ok()) {
    const bool full = status.code() == absl::StatusCode::kResourceExhausted;
    rejected_[t][kSpanRejectReasonCount + (full ? 0 : 1)]->Increment(static_cast<double>(accepted));
    batch.Clear();
    outcome.kind = ExportOutcome::Kind::kUnavailable;
    outcome.message = std::string(status.message());
    return outcome;
  }
  received_[t]->Increment(static_cast<double>(accepted));
  for (size_t r = 0; r < kSpanRejectReasonCount; ++r) {
    if (result.rejected[r] != 0) rejected_[t][r]->Increment(result.rejected[r]);
  }
  outcome.rejected_spans = result.TotalRejected();
  outcome.message = std::move(result.first_error);
  return outcome;
}

}  // namespace traceslo::ingest
