//===- MLAHarness.h - MLA decode cases and reference data ---------*- C++
//-*-===//
//
// The MLA decode test case (latent cache, absorbed queries) and its inputs:
// pages written as CacheLayout.md's latent layout with shuffled placement,
// and the reference latent attention with its f32 tolerance. Shared by the
// MLA kernel tests and the graph runner's bundle test.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_TEST_GPU_MLAHARNESS_H
#define KVOPT_TEST_GPU_MLAHARNESS_H

#include "DecodeHarness.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace kvopt::gpu_test {

struct MLACase {
  int64_t latent = 512, rope = 64, heads = 16, queryLen = 1, pageSize = 64;
  std::vector<int64_t> lengths;
  reference::ScalarType element = reference::ScalarType::BF16;
  reference::ScalarType query = reference::ScalarType::BF16;
  reference::ScalarType output = reference::ScalarType::BF16;
  std::optional<Encoding> quant;
  bool causal = false;
  uint64_t seed = 1;

  int64_t width() const { return latent + rope; }
  int64_t batch() const { return lengths.size(); }
  int64_t maxLength() const {
    return *std::max_element(lengths.begin(), lengths.end());
  }
  int64_t maxPages() const {
    return std::max<int64_t>(1, (maxLength() + pageSize - 1) / pageSize);
  }
  double scale() const { return double(1.0f / std::sqrt(192.0f)); }

  std::string describe() const {
    std::ostringstream os;
    os << "MLA " << latent << "+" << rope << " H=" << heads
       << " Tq=" << queryLen << " P=" << pageSize << " el=" << typeName(element)
       << " q=" << typeName(query) << " out=" << typeName(output)
       << " quant=" << (quant ? quantText(*quant) : "none")
       << (causal ? " causal" : "") << " lens=[";
    for (size_t i = 0; i < lengths.size(); ++i)
      os << (i ? "," : "") << lengths[i];
    os << "] seed=" << seed;
    return os.str();
  }

  std::string moduleText() const {
    std::ostringstream ct;
    ct << "!kv.latent_cache<latent_dim = " << latent << ", rope_dim = " << rope
       << ", capacity = " << maxPages() * pageSize
       << ", element = " << typeName(element)
       << ", layout = #kv.layout<paged, page_size = " << pageSize << ">";
    if (quant)
      ct << ", quant = " << quantText(*quant);
    ct << ">";
    int64_t B = batch();
    auto t = [&](int64_t d, reference::ScalarType e) {
      std::ostringstream os;
      os << "tensor<" << B << "x" << heads << "x" << queryLen << "x" << d << "x"
         << typeName(e) << ">";
      return os.str();
    };
    std::string qlt = t(latent, query), qrt = t(rope, query),
                ot = t(latent, output);
    std::ostringstream lt, bt;
    lt << "tensor<" << B << "x" << heads << "x" << queryLen << "xf32>";
    bt << "tensor<" << B << "x" << maxPages() << "xi32>";
    std::ostringstream os;
    os << "func.func @mla(%ql: " << qlt << ", %qr: " << qrt
       << ", %c: " << ct.str() << ", %lens: tensor<" << B
       << "xi32>, %bt: " << bt.str() << ") -> (" << ot << ", " << lt.str()
       << ") {\n  %o, %l = kv.mla_attention %ql, %qr, %c, %lens block_table "
       << "%bt {scale = " << std::showpoint << float(scale())
       << std::noshowpoint << " : f32" << (causal ? ", causal" : "") << "} : ("
       << qlt << ", " << qrt << ", " << ct.str() << ", tensor<" << B
       << "xi32>, " << bt.str() << ") -> (" << ot << ", " << lt.str()
       << ")\n  return %o, %l : " << ot << ", " << lt.str() << "\n}\n";
    return os.str();
  }
};

/// Inputs in page bytes and the reference result.
struct MLAData {
  std::vector<uint8_t> ql, qr; ///< queries in their element type
  std::vector<uint8_t> pool;
  std::vector<int32_t> table, lens;
  reference::AttentionResult expected;
  reference::AttentionTolerance tol;
};

MLAData makeMLAData(const MLACase &c);

} // namespace kvopt::gpu_test

#endif // KVOPT_TEST_GPU_MLAHARNESS_H
