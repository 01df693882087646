#include "io/status.h"

#include <cstring>

namespace walcut {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidArgument: return "Invalid argument";
    case StatusCode::kNotFound: return "Not found";
    case StatusCode::kCorruption: return "Corruption";
    case StatusCode::kIoError: return "I/O error";
    case StatusCode::kCancelled: return "Cancelled";
  }
  return "Unknown";
}

Status Status::from_errno(const std::string& what, int err) {
  return io_error(what + ": " + std::strerror(err));
}

std::string Status::to_string() const {
  if (ok()) return "OK";
  return std::string(status_code_name(code_)) + ": " + message_;
}

}  // namespace walcut
