//===- BundleCase.h - the decode case the test bundle is built from -*- C++
//-*-===//
//
// kvopt-gpu-bundle-case prints this case's module at build time,
// kvopt-gpu-bundle turns it into the bundles, and kvopt-gpu-bundle-tests runs
// them against the reference for the same case.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_TEST_GPU_BUNDLECASE_H
#define KVOPT_TEST_GPU_BUNDLECASE_H

#include "DecodeHarness.h"
#include "MLAHarness.h"

namespace kvopt::gpu_test {

/// GQA 8/2, head dim 64, page 16, int8 keys (f32 scales) and asymmetric
/// int4 values (groups of 32, f16 scales), f16 queries and output; the
/// module appends each sequence's last token before attending (a decode
/// step), so the bundle holds append, decode and merge kernels.
inline DecodeCase bundleCase() {
  DecodeCase c;
  c.kvHeads = 2;
  c.group = 4;
  c.headDim = 64;
  c.pageSize = 16;
  c.lengths = {37, 100, 1};
  c.query = reference::ScalarType::F16;
  c.output = reference::ScalarType::F16;
  c.key = Encoding{reference::QuantKind::Int8, reference::QuantAxis::Token, 0,
                   true, reference::ScalarType::F32};
  c.value = Encoding{reference::QuantKind::Int4, reference::QuantAxis::Token,
                     32, false, reference::ScalarType::F16};
  c.seed = 11;
  c.appendTokens = 1;
  return c;
}

/// A chunked-prefill step over the same kind of cache: 16 new tokens of each
/// sequence appended, then attended by 16 causal query rows per head (64
/// rows per KV head: the tensor-core prefill kernel).
inline DecodeCase prefillBundleCase() {
  DecodeCase c = bundleCase();
  c.lengths = {40, 100, 16};
  c.queryLen = 16;
  c.causal = true;
  c.appendTokens = 16;
  c.seed = 12;
  return c;
}

/// MLA decode over a paged int8 latent cache (DeepSeek's 512 + 64, 16
/// heads, page 64): the bundle holds mla_decode and merge kernels.
inline MLACase mlaBundleCase() {
  MLACase c;
  c.lengths = {70, 200, 1};
  c.quant = Encoding{reference::QuantKind::Int8, reference::QuantAxis::Token, 0,
                     true, reference::ScalarType::F32};
  c.seed = 13;
  return c;
}

} // namespace kvopt::gpu_test

#endif // KVOPT_TEST_GPU_BUNDLECASE_H
