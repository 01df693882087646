// Status and Result<T>: the one error type of walcut.
//
// Operating errors (a damaged file, a refused syscall, a bad argument) are
// values of these types and never exceptions or exits. Programmer errors
// (a broken invariant) are assertions.
#pragma once

#include <cassert>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace walcut {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // the caller asked for something impossible
  kNotFound,         // a file or object that must exist does not
  kCorruption,       // bytes on disk are damaged or inconsistent
  kIoError,          // the operating system refused an operation
  kCancelled,        // the caller asked to stop
};

const char* status_code_name(StatusCode code);

// A code and a message. The message names the file, offset or argument.
// Cost: one std::string when not ok; free when ok.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return {}; }
  static Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
  static Status io_error(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  // An errno-based I/O error: "<what>: <strerror(err)>", which keeps `err`
  // (error_number()). A std::error_code of the system's is one too.
  static Status from_errno(const std::string& what, int err);
  static Status from_error_code(const std::string& what, const std::error_code& ec) {
    return from_errno(what, ec.value());
  }
  static Status cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // The errno a from_errno() status was made of; 0 for any other.
  int error_number() const { return errno_; }
  // "Corruption: <message>"
  std::string to_string() const;
  // The same code with "<where>: " before the message (ok stays ok): an
  // error gains where it happened without becoming another kind of error.
  Status with_context(const std::string& where) const {
    if (ok()) return {};
    Status s(code_, where + ": " + message_);
    s.errno_ = errno_;
    return s;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  int errno_ = 0;
};

// A value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace walcut

// Returns early from the enclosing function when `expr` is a non-ok Status.
#define WALCUT_RETURN_IF_ERROR(expr)        \
  do {                                      \
    ::walcut::Status walcut_s_ = (expr);    \
    if (!walcut_s_.ok()) return walcut_s_;  \
  } while (0)
