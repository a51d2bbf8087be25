//===- json_reader.cc - Checked field access on nlohmann::json objects ----===//
//
// Implementation of JsonObjectReader and exception-free JSON parsing.
//
//===----------------------------------------------------------------------===//

#include "json_reader.h"

namespace kvopt {
namespace rt {
namespace detail {

using nlohmann::json;

/// Short JSON text of `v` for messages; never throws on odd strings.
static std::string describe(const json &v) {
  std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 40)
    text = text.substr(0, 37) + "...";
  return text;
}

JsonObjectReader::JsonObjectReader(const json &value, std::string where)
    : value_(value), where_(std::move(where)) {
  if (!value_.is_object())
    status_ = Status::error(StatusCode::ParseError,
                            where_ + ": expected a JSON object");
}

void JsonObjectReader::fail(const std::string &key,
                            const std::string &message) {
  if (status_.isOk())
    status_ = Status::error(StatusCode::ParseError,
                            where_ + "." + key + ": " + message);
}

const json *JsonObjectReader::field(const char *key, bool required) {
  if (!value_.is_object())
    return nullptr;
  seen_.insert(key);
  auto it = value_.find(key);
  if (it == value_.end()) {
    if (required)
      fail(key, "missing required field");
    return nullptr;
  }
  return &*it;
}

bool JsonObjectReader::getUnsigned(const char *key, uint64_t &out,
                                   bool required, uint64_t maxValue) {
  const json *v = field(key, required);
  if (!v)
    return false;
  if (!v->is_number_integer() ||
      (v->is_number_integer() && !v->is_number_unsigned() &&
       v->get<int64_t>() < 0)) {
    fail(key, "expected a non-negative integer, got " + describe(*v));
    return false;
  }
  uint64_t x = v->get<uint64_t>();
  if (x > maxValue) {
    fail(key,
         "value " + std::to_string(x) + " exceeds " + std::to_string(maxValue));
    return false;
  }
  out = x;
  return true;
}

bool JsonObjectReader::getUInt32(const char *key, uint32_t &out,
                                 bool required) {
  uint64_t x = 0;
  if (!getUnsigned(key, x, required, UINT32_MAX))
    return false;
  out = static_cast<uint32_t>(x);
  return true;
}

bool JsonObjectReader::getString(const char *key, std::string &out,
                                 bool required) {
  const json *v = field(key, required);
  if (!v)
    return false;
  if (!v->is_string()) {
    fail(key, "expected a string, got " + describe(*v));
    return false;
  }
  out = v->get<std::string>();
  return true;
}

bool JsonObjectReader::getBool(const char *key, bool &out, bool required) {
  const json *v = field(key, required);
  if (!v)
    return false;
  if (!v->is_boolean()) {
    fail(key, "expected true or false, got " + describe(*v));
    return false;
  }
  out = v->get<bool>();
  return true;
}

Status JsonObjectReader::finish() {
  if (status_.isOk() && value_.is_object()) {
    for (auto it = value_.begin(); it != value_.end(); ++it) {
      if (!seen_.count(it.key())) {
        fail(it.key(), "unknown field");
        break;
      }
    }
  }
  return status_;
}

Status parseJsonText(const std::string &text, const char *what, json &out) {
  out = json::parse(text, /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded())
    return Status::error(StatusCode::ParseError,
                         std::string(what) + ": not valid JSON");
  return Status::ok();
}

} // namespace detail
} // namespace rt
} // namespace kvopt
