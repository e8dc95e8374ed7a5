#include "services/loadgen/recording.h"

#include <cerrno>
#include <system_error>
#include <utility>

namespace traceslo::loadgen {
namespace {

std::string ErrnoMessage(int error) {
  return std::error_code(error, std::generic_category()).message();
}

}  // namespace

absl::StatusOr<std::unique_ptr<JsonLinesRecorder>> JsonLinesRecorder::Create(
    const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    return absl::InvalidArgumentError("cannot write " + path + ": " + ErrnoMessage(errno));
  }
  return std::unique_ptr<JsonLinesRecorder>(new JsonLinesRecorder(path, file));
}

JsonLinesRecorder::~JsonLinesRecorder() {
  if (file_ != nullptr) std::fclose(file_);
}

void JsonLinesRecorder::Record(std::string_view json_request) {
  if (file_ == nullptr || !error_.empty()) return;
  // The encoder escapes every control character, so a request is always one line.
  if (std::fwrite(json_request.data(), 1, json_request.size(), file_) != json_request.size() ||
      std::fputc('\n', file_) == EOF) {
    error_ = ErrnoMessage(errno);
  }
}

absl::Status JsonLinesRecorder::Close() {
  if (file_ != nullptr) {
    if (std::fclose(file_) != 0 && error_.empty()) error_ = ErrnoMessage(errno);
    file_ = nullptr;
  }
  if (!error_.empty()) return absl::InternalError("cannot write " + path_ + ": " + error_);
  return absl::OkStatus();
}

}  // namespace traceslo::loadgen
