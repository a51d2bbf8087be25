//===- test_util.h - Shared helpers of the runtime tests ---------*- C++
//-*-===//
//
// Layout strings, pool construction and file helpers used by several test
// files.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_RUNTIME_TEST_TEST_UTIL_H
#define KVOPT_RUNTIME_TEST_TEST_UTIL_H

#include "kvopt/runtime/cache_pool.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

namespace kvopt {
namespace rt {
namespace test {

/// Asserts that a Status is ok, printing it otherwise.
#define ASSERT_RT_OK(expr)                                                     \
  do {                                                                         \
    ::kvopt::rt::Status s_ = (expr);                                           \
    ASSERT_TRUE(s_.isOk()) << s_.toString();                                   \
  } while (false)
#define EXPECT_RT_OK(expr)                                                     \
  do {                                                                         \
    ::kvopt::rt::Status s_ = (expr);                                           \
    EXPECT_TRUE(s_.isOk()) << s_.toString();                                   \
  } while (false)

/// 2 KV heads x 4, f16, page 4, one layer: 32 bytes per token, 128 per page.
inline CacheLayout smallLayout(uint32_t pageSize = 4) {
  CacheLayout l;
  l.kind = CacheKind::KV;
  l.kvHeads = 2;
  l.headDim = 4;
  l.element = ElementType::F16;
  l.layout = StorageLayout::Paged;
  l.pageSize = pageSize;
  l.numLayers = 1;
  l.layerToCache = {0};
  return l;
}

/// smallLayout(4) with quantized K (int4, channel axis, group 2,
/// asymmetric, f16 scales) and V (int8, token axis, group 2, symmetric, f32
/// scales), three layers on two caches (layer_to_cache = [0, 1, 0]).
inline CacheLayout quantizedLayout() {
  CacheLayout l = smallLayout(4);
  l.numLayers = 3;
  l.layerToCache = {0, 1, 0};
  l.key = QuantEncoding{
      QuantKind::Int4, QuantAxis::Channel, 2, false, ElementType::F16, 0, 0};
  l.value = QuantEncoding{
      QuantKind::Int8, QuantAxis::Token, 2, true, ElementType::F32, 0, 0};
  return l;
}

inline std::unique_ptr<CachePool>
makePool(const CacheLayout &layout, uint32_t pages, uint32_t maxSequences = 0) {
  std::unique_ptr<CachePool> pool;
  PoolOptions options;
  options.numPages = pages;
  options.maxSequences = maxSequences;
  Status s = CachePool::create(layout, options, createHostMemory(), pool);
  EXPECT_TRUE(s.isOk()) << s.toString();
  return pool;
}

/// A fresh temporary directory, removed (with its files) on destruction.
class TempDir {
public:
  TempDir() {
    char name[] = "/tmp/kvopt-rt-test-XXXXXX";
    path_ = mkdtemp(name) ? name : "/tmp";
  }
  ~TempDir() {
    for (const std::string &f : files_)
      std::remove(f.c_str());
    rmdir(path_.c_str());
  }
  /// Writes `text` to `name` in the directory and returns its path.
  std::string write(const std::string &name, const std::string &text) {
    std::string p = path_ + "/" + name;
    std::ofstream(p) << text;
    files_.push_back(p);
    return p;
  }
  const std::string &path() const { return path_; }

private:
  std::string path_;
  std::vector<std::string> files_;
};

} // namespace test
} // namespace rt
} // namespace kvopt

#endif // KVOPT_RUNTIME_TEST_TEST_UTIL_H
