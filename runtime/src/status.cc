//===- status.cc - Error status of the kvopt runtime ----------------------===//
//
// Names of status codes and their textual form.
//
//===----------------------------------------------------------------------===//

#include "kvopt/runtime/status.h"

namespace kvopt {
namespace rt {

const char *statusCodeName(StatusCode code) {
  switch (code) {
  case StatusCode::Ok:
    return "ok";
  case StatusCode::InvalidArgument:
    return "invalid_argument";
  case StatusCode::OutOfPages:
    return "out_of_pages";
  case StatusCode::UnknownSequence:
    return "unknown_sequence";
  case StatusCode::FreedSequence:
    return "freed_sequence";
  case StatusCode::AbiMismatch:
    return "abi_mismatch";
  case StatusCode::LayoutMismatch:
    return "layout_mismatch";
  case StatusCode::NoDevice:
    return "no_device";
  case StatusCode::DriverError:
    return "driver_error";
  case StatusCode::IoError:
    return "io_error";
  case StatusCode::ParseError:
    return "parse_error";
  case StatusCode::NotFound:
    return "not_found";
  case StatusCode::OutOfMemory:
    return "out_of_memory";
  case StatusCode::Internal:
    return "internal";
  }
  return "unknown_status";
}

std::string Status::toString() const {
  if (isOk())
    return "ok";
  return std::string(statusCodeName(code_)) + ": " + message_;
}

} // namespace rt
} // namespace kvopt
