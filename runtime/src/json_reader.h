//===- json_reader.h - Checked field access on nlohmann::json objects -----===//
//
// A small helper that reads typed fields from a JSON object, remembers the
// first error (naming the field with its path) and rejects unknown fields.
// It never throws: every access is type-checked before it is made.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_RUNTIME_SRC_JSON_READER_H
#define KVOPT_RUNTIME_SRC_JSON_READER_H

#include "kvopt/runtime/layout.h"
#include "kvopt/runtime/status.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <set>
#include <string>

namespace kvopt {
namespace rt {
namespace detail {

/// Reads the fields of one JSON object at path `where` ("manifest.kernels[2]").
class JsonObjectReader {
public:
  JsonObjectReader(const nlohmann::json &value, std::string where);

  /// True while no error was recorded.
  bool ok() const { return status_.isOk(); }
  /// Returns the field or null when absent (recording an error if required).
  const nlohmann::json *field(const char *key, bool required);
  /// Reads an unsigned integer that fits in `maxValue`.
  bool getUnsigned(const char *key, uint64_t &out, bool required,
                   uint64_t maxValue = UINT32_MAX);
  bool getUInt32(const char *key, uint32_t &out, bool required);
  bool getString(const char *key, std::string &out, bool required);
  bool getBool(const char *key, bool &out, bool required);
  /// Records a ParseError "<where>.<key>: <message>" (first one wins).
  void fail(const std::string &key, const std::string &message);
  /// Finishes reading: reports the first unknown field, then the first error.
  Status finish();
  const std::string &where() const { return where_; }

private:
  const nlohmann::json &value_;
  std::string where_;
  std::set<std::string> seen_;
  Status status_;
};

/// Parses `text` as JSON without exceptions; `what` names the document.
Status parseJsonText(const std::string &text, const char *what,
                     nlohmann::json &out);

/// Parses a decoded cache layout object at path `where` and validates it.
Status parseCacheLayout(const nlohmann::json &value, const std::string &where,
                        CacheLayout &out);

} // namespace detail
} // namespace rt
} // namespace kvopt

#endif // KVOPT_RUNTIME_SRC_JSON_READER_H
