#pragma once

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/loadgen/exporter.h"

namespace traceslo::loadgen {

// Writes each request as one line of a file: the JSON lines that `traceslo replay --spans` and
// the OpenTelemetry Collector's file exporter (format: json) use. Owns the file.
class JsonLinesRecorder final : public RequestRecorder {
 public:
  // Creates (truncates) `path`; InvalidArgument with the path and the reason if it cannot.
  static absl::StatusOr<std::unique_ptr<JsonLinesRecorder>> Create(const std::string& path);
  ~JsonLinesRecorder() override;

  // traceslo::loadgen::RequestRecorder
  void Record(std::string_view json_request) override;

  // Flushes and closes the file; the first write failure, if any. Call once, after the run.
  absl::Status Close();

 private:
  JsonLinesRecorder(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}

  const std::string path_;
  std::FILE* file_;
  std::string error_;  // the first failure
};

// Answers every request as acknowledged without sending it anywhere: the exporter of a
// record-only run (--record without --endpoint).
class DiscardingExporter final : public Exporter {
 public:
  // traceslo::loadgen::Exporter
  ExportResult Export(std::string_view) override { return ExportResult{}; }
};

}  // namespace traceslo::loadgen
