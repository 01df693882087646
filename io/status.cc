#include "io/status.h"

#include <sys/resource.h>

#include <cerrno>
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
  std::string m = what + ": " + std::strerror(err);
  rlimit files{};
  if (err == EMFILE && ::getrlimit(RLIMIT_NOFILE, &files) == 0) {
    // Whichever open came last is named, not what holds the descriptors
    // (a memory-limited restore's spill files, say): the limit is the clue.
    m += " (the process's limit on open files, ulimit -n, is " + std::to_string(files.rlim_cur) + ")";
  }
  Status s = io_error(std::move(m));
  s.errno_ = err;
  return s;
}

std::string Status::to_string() const {
  if (ok()) return "OK";
  return std::string(status_code_name(code_)) + ": " + message_;
}

}  // namespace walcut
