//===- status.h - Error status of the kvopt runtime ---------------*- C++
//-*-===//
//
// Every fallible runtime operation returns a Status: a code plus a message
// naming what went wrong. The runtime never throws across its API.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_RUNTIME_STATUS_H
#define KVOPT_RUNTIME_STATUS_H

#include <string>
#include <utility>

namespace kvopt {
namespace rt {

/// Error categories. The numeric values are the C API's kvopt_status values.
enum class StatusCode : int {
  Ok = 0,
  InvalidArgument = 1, ///< malformed input (layout, token range, sizes)
  OutOfPages = 2,      ///< the pool has too few free pages (or window slots)
  UnknownSequence = 3, ///< a sequence id the pool never handed out
  FreedSequence = 4,   ///< a sequence id that was already freed
  AbiMismatch = 5,     ///< bundle ABI version differs from the runtime's
  LayoutMismatch = 6,  ///< bundle cache layout differs from the pool's
  NoDevice = 7,        ///< no CUDA driver / device available
  DriverError = 8,     ///< a CUDA driver call failed
  IoError = 9,         ///< file could not be read / library not loaded
  ParseError = 10,     ///< JSON syntax or schema error
  NotFound = 11,       ///< unknown kernel, symbol or backend name
  OutOfMemory = 12,    ///< backing memory allocation failed
  Internal = 13,       ///< unexpected failure (e.g. std::bad_alloc)
};

/// Returns a stable lowercase name for `code` ("out_of_pages", ...).
const char *statusCodeName(StatusCode code);

/// The result of a fallible operation: Ok, or an error code with a message.
class [[nodiscard]] Status {
public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status error(StatusCode code, std::string message) {
    Status s;
    s.code_ = code;
    s.message_ = std::move(message);
    return s;
  }

  bool isOk() const { return code_ == StatusCode::Ok; }
  explicit operator bool() const { return isOk(); }
  StatusCode code() const { return code_; }
  const std::string &message() const { return message_; }
  /// "<code name>: <message>", or "ok".
  std::string toString() const;

private:
  StatusCode code_ = StatusCode::Ok;
  std::string message_;
};

} // namespace rt
} // namespace kvopt

/// Returns `expr`'s Status from the enclosing function if it is an error.
#define KVOPT_RT_RETURN_IF_ERROR(expr)                                         \
  do {                                                                         \
    ::kvopt::rt::Status kvoptRtStatus_ = (expr);                               \
    if (!kvoptRtStatus_.isOk())                                                \
      return kvoptRtStatus_;                                                   \
  } while (false)

#endif // KVOPT_RUNTIME_STATUS_H
