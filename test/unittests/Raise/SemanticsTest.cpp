//===- SemanticsTest.cpp - transformed graphs compute what originals do ---===//
//
// Every example graph (examples/graphs) runs on the CPU as written and after
// kvopt pipelines, on the same random inputs (seeds 1, 2 and
// KVOPT_TEST_SEED); outputs agree within the f32 bounds of GraphModel.h.
// Where a pipeline changes the model on purpose (quantization, MHA->GQA,
// cross-layer sharing), the expectation is the double-precision model with
// the same change applied; that model is itself checked against the
// original graph in the raise tests. docs/Raising.md "Semantics tests".
//
//===----------------------------------------------------------------------===//

#include "GraphModel.h"
#include "SemanticsSupport.h"

#include <cmath>
#include <map>
#include <random>

using namespace kvopt;
using namespace kvopt::semtest;
using namespace kvopt::reference;
using cputest::CacheSpec;

namespace {

constexpr int64_t kBatch = 2, kPast = 7, kHidden = 64;

/// A compiled module with its signature, built once per binary.
struct Compiled {
  Signature sig;
  CPUModule *module = nullptr;
};

Compiled compileOriginal(const std::string &graph) {
  static auto &cache = *new std::map<std::string, Compiled>();
  Compiled &c = cache[graph];
  if (!c.module) {
    std::string source = prepareOriginal(loadGraph(graph));
    c.sig = signature(source);
    c.module = &cputest::compiled(source);
  }
  return c;
}

Compiled compileTransformed(const std::string &graph,
                            const std::string &pipeline) {
  static auto &cache = *new std::map<std::string, Compiled>();
  Compiled &c = cache[graph + "|" + pipeline];
  if (!c.module) {
    // Attention the passes leave in linalg (MLA before kv-absorb-mla) keeps
    // its linalg.softmax, which kv-lower-to-cpu does not lower: decomposed
    // the same way as in the original.
    std::string source = prepareOriginal(transform(loadGraph(graph), pipeline));
    c.sig = signature(source);
    c.module = &cputest::compiled(source);
  }
  return c;
}

Tensor uniform(std::mt19937_64 &rng, std::vector<int64_t> shape, double bound) {
  return cputest::randomTensor(rng, std::move(shape), ScalarType::F32, -bound,
                               bound);
}

/// Weights scaled by 1/sqrt(fan-in) so activations stay O(1).
Tensor weight(std::mt19937_64 &rng, int64_t in, int64_t out) {
  return uniform(rng, {in, out}, 1.0 / std::sqrt(static_cast<double>(in)));
}

/// Inputs of the transformed function: plain tensors in order (the
/// original's non-cache arguments), and per layer what its cache holds.
struct CacheContents {
  Tensor k, v; ///< [B, Hkv, P, D]; latent caches: k = rows [B, P, W]
};
struct Inputs {
  std::vector<Tensor> plain;
  std::map<int64_t, CacheContents> caches;
};

/// The bytes of a latent cache: pages of [page][W] elements or, quantized,
/// [codes][scales][zeros] of one component (docs/CPU.md), then the
/// per-sequence window region. A latent page is the key part of a K/V page
/// with one head of width W, so the reference's writer fills a K/V pool
/// with the latent rows as keys and no value encoding, and the key part of
/// each page and the (key-only) window region are kept.
std::vector<uint8_t> latentBytes(const CacheSpec &spec, const BlockTable &table,
                                 const Tensor &rows) {
  int64_t batch = rows.dim(0), tokens = rows.dim(1), width = spec.headDim;
  CacheSpec kv = spec;
  kv.value.reset();
  Tensor k = rows.reshaped({batch, 1, tokens, width});
  std::vector<int64_t> lengths(batch, tokens);
  cputest::CachePool pool =
      cputest::writeCache(kv, table, k, Tensor(k.shape()), lengths);
  int64_t latentPage =
      reference::computePageLayout(kv.format()).valueData.offset;
  int64_t windows = batch * kv.windowBytes();
  int64_t pages =
      (static_cast<int64_t>(pool.bytes.size()) - windows) / pool.pageBytes;
  std::vector<uint8_t> bytes;
  for (int64_t p = 0; p < pages; ++p)
    bytes.insert(bytes.end(), pool.bytes.begin() + p * pool.pageBytes,
                 pool.bytes.begin() + p * pool.pageBytes + latentPage);
  bytes.insert(bytes.end(), pool.bytes.end() - windows, pool.bytes.end());
  return bytes;
}

/// Arguments for `sig`: caches written in the kernels' byte layout
/// (reference writePagedCache; block tables with shuffled pages), the past
/// tokens in slots 0 .. P-1 as kv-raise-attention promises.
std::vector<Buffer> buildArgs(const Signature &sig, const Inputs &in,
                              std::mt19937_64 &rng, bool writePast = true) {
  std::vector<Buffer> args;
  size_t plain = 0;
  BlockTable lastTable;
  std::vector<int64_t> lengths(kBatch, kPast);
  for (const ArgInfo &a : sig.args) {
    switch (a.kind) {
    case ArgInfo::TensorArg:
      EXPECT_LT(plain, in.plain.size());
      args.push_back(f32Buffer(in.plain[plain++]));
      break;
    case ArgInfo::TableArg:
      args.push_back(tableBuffer(lastTable));
      break;
    case ArgInfo::CacheArg: {
      const CacheContents &c = in.caches.at(a.layer);
      lastTable = cputest::makeTable(rng, a.spec, kBatch);
      Tensor k = c.k, v = c.v;
      if (!writePast)
        k = Tensor(k.shape()), v = Tensor(v.shape());
      args.push_back(cacheBuffer(
          cputest::writeCache(a.spec, lastTable, k, v, lengths).bytes));
      break;
    }
    case ArgInfo::LatentCacheArg: {
      lastTable = cputest::makeTable(rng, a.spec, kBatch);
      Tensor rows = in.caches.at(a.layer).k;
      if (!writePast)
        rows = Tensor(rows.shape());
      args.push_back(cacheBuffer(latentBytes(a.spec, lastTable, rows)));
      break;
    }
    }
  }
  EXPECT_EQ(plain, in.plain.size()) << "unused plain inputs";
  return args;
}

std::vector<Buffer> plainArgs(const std::vector<Tensor> &tensors) {
  std::vector<Buffer> args;
  for (const Tensor &t : tensors)
    args.push_back(f32Buffer(t));
  return args;
}

Tensor scaled(const Tensor &t, double factor) {
  Tensor out = t;
  for (double &x : out.values())
    x *= factor;
  return out;
}

/// Expects |got - want| <= tol element-wise.
void expectClose(const Tensor &got, const Tensor &want, const Tensor &tol,
                 const std::string &what) {
  int64_t worst = -1;
  double ratio = worstRatio(got, want, tol, &worst);
  EXPECT_LE(ratio, 1.0) << what << ": element " << worst << " got "
                        << (worst >= 0 ? got.data()[worst] : 0.0) << " want "
                        << (worst >= 0 ? want.data()[worst] : 0.0) << " tol "
                        << (worst >= 0 ? tol.data()[worst] : 0.0);
}

/// Tolerance for K/V rows [B, H, P+1, D] returned by both sides: past rows
/// exact (copied bytes), the new row within what an input off by hTol
/// moves x·W by (plus the f32 sum's rounding), or exact when hTol = 0.
Tensor rowTolerance(const Tensor &rows, double hTol, const Tensor &w,
                    double extra = 0.0) {
  double cols = 0.0, mags = 0.0;
  for (int64_t n = 0; n < w.dim(1); ++n) {
    double s = 0.0;
    for (int64_t k = 0; k < w.dim(0); ++k)
      s += std::fabs(w.at({k, n}));
    cols = std::max(cols, s);
  }
  mags = cols * 4.0; // |h| <= ~4 after the residuals of the 4-layer model
  Tensor tol(rows.shape(), 1e-300);
  int64_t p = rows.dim(2) - 1;
  for (int64_t b = 0; b < rows.dim(0); ++b)
    for (int64_t h = 0; h < rows.dim(1); ++h)
      for (int64_t t = 0; t <= p; ++t)
        for (int64_t d = 0; d < rows.dim(3); ++d) {
          double x = std::fabs(rows.at({b, h, t, d}));
          double e = extra * (x + 2.0);
          if (t == p && hTol > 0.0)
            e += 2.0 * (hTol * cols + w.dim(0) * kU * mags);
          tol.at({b, h, t, d}) = std::max(e, 1e-300);
        }
  return tol;
}

//===----------------------------------------------------------------------===//
// Single attention layers: llama-gqa-layer, mha-layer
//===----------------------------------------------------------------------===//

struct LayerGraph {
  std::string file;
  LayerShape shape;
};

LayerGraph llamaGqa() {
  LayerGraph g{"llama-gqa-layer.mlir", {}};
  g.shape.qHeads = 8;
  g.shape.kvHeads = 2;
  return g;
}

LayerGraph mha() {
  LayerGraph g{"mha-layer.mlir", {}};
  g.shape.qHeads = 4;
  g.shape.kvHeads = 4;
  return g;
}

struct LayerData {
  Tensor x, pastK, pastV;
  LayerWeights w;
};

LayerData layerData(std::mt19937_64 &rng, const LayerShape &s) {
  LayerData d;
  d.x = uniform(rng, {kBatch, 1, kHidden}, 1.0);
  d.pastK = uniform(rng, {kBatch, s.kvHeads, kPast, s.dim}, 1.0);
  d.pastV = uniform(rng, {kBatch, s.kvHeads, kPast, s.dim}, 1.0);
  d.w.wq = weight(rng, kHidden, s.qHeads * s.dim);
  d.w.wk = weight(rng, kHidden, s.kvHeads * s.dim);
  d.w.wv = weight(rng, kHidden, s.kvHeads * s.dim);
  d.w.wo = weight(rng, s.qHeads * s.dim, kHidden);
  return d;
}

/// The quantization round trip of the 8 attended tokens, per sequence, as
/// the cache of `spec` stores them (past written by writePagedCache, the
/// new token by the append kernel; bit-exact codes, docs/CPU.md).
EffectiveKV quantizedView(const CacheSpec &spec) {
  return [spec](Tensor &k, Tensor &v) {
    std::vector<int64_t> lengths(k.dim(0), k.dim(2));
    k = cputest::effectiveCache(k, spec.key, lengths);
    v = cputest::effectiveCache(v, spec.value, lengths);
  };
}

const CacheSpec &onlyCache(const Signature &sig) {
  for (const ArgInfo &a : sig.args)
    if (a.kind == ArgInfo::CacheArg)
      return a.spec;
  static CacheSpec none;
  ADD_FAILURE() << "no cache argument";
  return none;
}

/// kv-raise-attention (+ paginate / quantize) on one layer: the transformed
/// graph vs the original (2x the f32 bound) and vs the model (1x); the
/// returned K/V (kv.view) vs the original's concatenations.
void checkLayer(const LayerGraph &g, const std::string &pipeline) {
  Compiled orig = compileOriginal(g.file);
  Compiled tr = compileTransformed(g.file, pipeline);
  const CacheSpec &spec = onlyCache(tr.sig);
  bool quantized = spec.key || spec.value;
  for (uint64_t seed : cputest::testSeeds()) {
    SCOPED_TRACE("seed " + std::to_string(seed) + ", " + pipeline);
    std::mt19937_64 rng(seed);
    LayerData d = layerData(rng, g.shape);
    LayerResult model =
        runLayer(g.shape, d.w, d.x.reshaped({kBatch, kHidden}), 0.0, d.pastK,
                 d.pastV, quantized ? quantizedView(spec) : nullptr, quantized);
    Inputs in{{d.x, d.w.wq, d.w.wk, d.w.wv, d.w.wo}, {{0, {d.pastK, d.pastV}}}};
    std::vector<Buffer> args = buildArgs(tr.sig, in, rng);
    std::vector<Tensor> got = run(*tr.module, tr.sig, args);
    ASSERT_EQ(got.size(), 3u);
    Tensor yTol = model.yTol.reshaped({kBatch, 1, kHidden});
    expectClose(got[0], model.y.reshaped({kBatch, 1, kHidden}), yTol,
                "y vs model");

    if (!quantized) {
      std::vector<Buffer> oargs =
          plainArgs({d.x, d.pastK, d.pastV, d.w.wq, d.w.wk, d.w.wv, d.w.wo});
      std::vector<Tensor> want = run(*orig.module, orig.sig, oargs);
      ASSERT_EQ(want.size(), 3u);
      expectClose(want[0], model.y.reshaped({kBatch, 1, kHidden}), yTol,
                  "original y vs model");
      expectClose(got[0], want[0], scaled(yTol, 2.0), "y vs original");
      // The views return exactly the concatenated K/V.
      expectClose(got[1], want[1], rowTolerance(want[1], 0.0, d.w.wk),
                  "K view vs concat");
      expectClose(got[2], want[2], rowTolerance(want[2], 0.0, d.w.wv),
                  "V view vs concat");
      continue;
    }
    // Quantized: token-axis components are read back by kv.view as the
    // reference dequantizes them (q*s + z rounded in f32); channel-axis
    // keys of an incomplete group are not defined through kv.view (it
    // has no lengths, docs/CPU.md), so only their model output is checked.
    if (!spec.key || spec.key->axis == QuantAxis::Token)
      expectClose(got[1], model.kSeen,
                  rowTolerance(model.kSeen, 0.0, d.w.wk, 0x1p-23), "K view");
    if (!spec.value || spec.value->axis == QuantAxis::Token)
      expectClose(got[2], model.vSeen,
                  rowTolerance(model.vSeen, 0.0, d.w.wv, 0x1p-23), "V view");
  }
}

} // namespace

TEST(Semantics, LlamaGqaRaise) { checkLayer(llamaGqa(), "kv-raise-attention"); }
TEST(Semantics, LlamaGqaRaiseCapacity64) {
  checkLayer(llamaGqa(), "kv-raise-attention{capacity=64}");
}
TEST(Semantics, LlamaGqaPaged1) {
  checkLayer(llamaGqa(),
             "kv-raise-attention{capacity=32},kv-paginate{page-size=1}");
}
TEST(Semantics, LlamaGqaPaged16) {
  checkLayer(llamaGqa(),
             "kv-raise-attention{capacity=32},kv-paginate{page-size=16}");
}
TEST(Semantics, LlamaGqaInt8) {
  checkLayer(
      llamaGqa(),
      "kv-raise-attention{capacity=64},kv-quantize{key=int8 value=int8}");
}
TEST(Semantics, LlamaGqaFp8) {
  checkLayer(llamaGqa(), "kv-raise-attention{capacity=64},kv-quantize{key="
                         "fp8_e4m3 value=fp8_e4m3}");
}
TEST(Semantics, LlamaGqaInt4) {
  checkLayer(
      llamaGqa(),
      "kv-raise-attention{capacity=64},kv-quantize{key=int4 value=int4}");
}
TEST(Semantics, LlamaGqaInt2) {
  checkLayer(
      llamaGqa(),
      "kv-raise-attention{capacity=64},kv-quantize{key=int2 value=int2}");
}
TEST(Semantics, LlamaGqaOptimizePipeline) {
  // The registered pipeline: raise, int4 K (channel, 16) / V (token),
  // paged by 16.
  checkLayer(llamaGqa(), "kv-optimize{page-size=16 key=int4 value=int4 "
                         "capacity=64 report=false}");
}
TEST(Semantics, MhaRaise) { checkLayer(mha(), "kv-raise-attention"); }
TEST(Semantics, MhaPaged1) {
  checkLayer(mha(), "kv-raise-attention{capacity=32},kv-paginate{page-size=1}");
}
TEST(Semantics, MhaPaged16) {
  checkLayer(mha(),
             "kv-raise-attention{capacity=32},kv-paginate{page-size=16}");
}
TEST(Semantics, MhaOptimizePipeline) {
  // The registered pipeline on the MHA layer: raise, int8 K (channel, 16)
  // / V (token), paged by 16.
  checkLayer(mha(), "kv-optimize{page-size=16 key=int8 value=int8 "
                    "capacity=64 report=false}");
}
TEST(Semantics, MhaInt4) {
  checkLayer(
      mha(),
      "kv-raise-attention{capacity=64},kv-quantize{key=int4 value=int4}");
}

// The comparison can fail: the raised graph run on a cache whose past was
// never written is far outside the bound.
TEST(Semantics, DetectsAnUnwrittenPast) {
  LayerGraph g = llamaGqa();
  Compiled tr = compileTransformed(g.file, "kv-raise-attention");
  std::mt19937_64 rng(1);
  LayerData d = layerData(rng, g.shape);
  LayerResult model = runLayer(g.shape, d.w, d.x.reshaped({kBatch, kHidden}),
                               0.0, d.pastK, d.pastV, nullptr, false);
  Inputs in{{d.x, d.w.wq, d.w.wk, d.w.wv, d.w.wo}, {{0, {d.pastK, d.pastV}}}};
  std::vector<Buffer> args = buildArgs(tr.sig, in, rng, /*writePast=*/false);
  std::vector<Tensor> got = run(*tr.module, tr.sig, args);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_GT(worstRatio(got[0], model.y.reshaped({kBatch, 1, kHidden}),
                       model.yTol.reshaped({kBatch, 1, kHidden})),
            1e3);
}

//===----------------------------------------------------------------------===//
// kv-mha-to-gqa on mha-layer
//===----------------------------------------------------------------------===//

namespace {
/// What kv-mha-to-gqa computes for a weight [hidden, H*D]: per group of R
/// adjacent heads, acc = f32(acc + f32(w * (1/R))) in head order.
Tensor poolWeight(const Tensor &w, int64_t heads, int64_t groups, int64_t dim) {
  int64_t r = heads / groups;
  float inverse = 1.0f / static_cast<float>(r);
  Tensor out({w.dim(0), groups * dim});
  for (int64_t i = 0; i < w.dim(0); ++i)
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t d = 0; d < dim; ++d) {
        float acc = 0.0f;
        for (int64_t j = 0; j < r; ++j)
          acc = acc +
                static_cast<float>(w.at({i, (g * r + j) * dim + d})) * inverse;
        out.at({i, g * dim + d}) = acc;
      }
  return out;
}

/// Mean of each group of heads of past[B, H, P, D], rounded to f32.
Tensor poolPast(const Tensor &past, int64_t groups) {
  int64_t r = past.dim(1) / groups;
  Tensor out({past.dim(0), groups, past.dim(2), past.dim(3)});
  for (int64_t b = 0; b < past.dim(0); ++b)
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t t = 0; t < past.dim(2); ++t)
        for (int64_t d = 0; d < past.dim(3); ++d) {
          double sum = 0.0;
          for (int64_t j = 0; j < r; ++j)
            sum += past.at({b, g * r + j, t, d});
          out.at({b, g, t, d}) = static_cast<float>(sum / r);
        }
  return out;
}

/// Pooled heads repeated back over their group: an MHA with identical
/// heads per group, which is the GQA model.
Tensor repeatHeads(const Tensor &x, int64_t heads, int64_t dim, bool weight) {
  if (weight) {
    int64_t groups = x.dim(1) / dim, r = heads / groups;
    Tensor out({x.dim(0), heads * dim});
    for (int64_t i = 0; i < x.dim(0); ++i)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t d = 0; d < dim; ++d)
          out.at({i, h * dim + d}) = x.at({i, (h / r) * dim + d});
    return out;
  }
  int64_t r = heads / x.dim(1);
  Tensor out({x.dim(0), heads, x.dim(2), x.dim(3)});
  for (int64_t b = 0; b < x.dim(0); ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t = 0; t < x.dim(2); ++t)
        for (int64_t d = 0; d < x.dim(3); ++d)
          out.at({b, h, t, d}) = x.at({b, h / r, t, d});
  return out;
}

/// kv-mha-to-gqa{kv-heads=groups} (or `pipeline`, which must convert to
/// that many heads) on the MHA layer. A quantized result is checked against
/// the pooled model with the cache's quantization round trip (the original
/// runs in full precision and is compared only without quantization).
void checkMhaToGqa(int64_t groups, std::string pipeline = "") {
  LayerGraph g = mha();
  if (pipeline.empty())
    pipeline =
        "kv-raise-attention,kv-mha-to-gqa{kv-heads=" + std::to_string(groups) +
        "}";
  Compiled orig = compileOriginal(g.file);
  Compiled tr = compileTransformed(g.file, pipeline);
  const CacheSpec &spec = onlyCache(tr.sig);
  EXPECT_EQ(spec.kvHeads, groups);
  bool quantized = spec.key || spec.value;
  int64_t heads = g.shape.qHeads, dim = g.shape.dim;
  for (uint64_t seed : cputest::testSeeds()) {
    SCOPED_TRACE("seed " + std::to_string(seed) + ", " + pipeline);
    std::mt19937_64 rng(seed);
    LayerData d = layerData(rng, g.shape);
    LayerShape gqa = g.shape;
    gqa.kvHeads = groups;
    LayerWeights pooled = d.w;
    pooled.wk = poolWeight(d.w.wk, heads, groups, dim);
    pooled.wv = poolWeight(d.w.wv, heads, groups, dim);
    Tensor pastK = poolPast(d.pastK, groups), pastV = poolPast(d.pastV, groups);
    LayerResult model =
        runLayer(gqa, pooled, d.x.reshaped({kBatch, kHidden}), 0.0, pastK,
                 pastV, quantized ? quantizedView(spec) : nullptr, quantized);
    Tensor yTol = model.yTol.reshaped({kBatch, 1, kHidden});

    // Transformed: the original weights (the pass pools them), the pooled
    // past in a cache of `groups` heads.
    Inputs in{{d.x, d.w.wq, d.w.wk, d.w.wv, d.w.wo}, {{0, {pastK, pastV}}}};
    std::vector<Buffer> args = buildArgs(tr.sig, in, rng);
    std::vector<Tensor> got = run(*tr.module, tr.sig, args);
    ASSERT_EQ(got.size(), 3u);
    if (quantized) {
      expectClose(got[0], model.y.reshaped({kBatch, 1, kHidden}), yTol,
                  "y vs pooled quantized model");
      // Token-axis components through kv.view as the reference
      // dequantizes them (see checkLayer).
      if (!spec.key || spec.key->axis == QuantAxis::Token)
        expectClose(got[1], model.kSeen,
                    rowTolerance(model.kSeen, 0.0, pooled.wk, 0x1p-23),
                    "K view");
      if (!spec.value || spec.value->axis == QuantAxis::Token)
        expectClose(got[2], model.vSeen,
                    rowTolerance(model.vSeen, 0.0, pooled.wv, 0x1p-23),
                    "V view");
      continue;
    }
    // Original: the pooled K/V weights and past repeated over each group.
    std::vector<Buffer> oargs =
        plainArgs({d.x, repeatHeads(pastK, heads, dim, false),
                   repeatHeads(pastV, heads, dim, false), d.w.wq,
                   repeatHeads(pooled.wk, heads, dim, true),
                   repeatHeads(pooled.wv, heads, dim, true), d.w.wo});
    std::vector<Tensor> want = run(*orig.module, orig.sig, oargs);
    ASSERT_EQ(want.size(), 3u);
    expectClose(got[0], want[0], scaled(yTol, 2.0), "y vs pooled original");
    expectClose(want[0], model.y.reshaped({kBatch, 1, kHidden}), yTol,
                "pooled original vs model");
    // The views shrink with the cache: the pooled K/V, new row included
    // (the pass's pooled weight is reproduced bit for bit).
    expectClose(got[1], model.kPresent,
                rowTolerance(model.kPresent, 0.0, pooled.wk), "K view");
    expectClose(got[2], model.vPresent,
                rowTolerance(model.vPresent, 0.0, pooled.wv), "V view");
    expectClose(want[1], repeatHeads(model.kPresent, heads, dim, false),
                rowTolerance(want[1], 0.0, pooled.wk), "original K");
  }
}
} // namespace

TEST(Semantics, MhaToGqa2) { checkMhaToGqa(2); }
TEST(Semantics, MhaToMqa) { checkMhaToGqa(1); }
TEST(Semantics, MhaToGqaQuantizedPagedPipeline) {
  // MHA->GQA, quantization and paging in one kv-optimize run: 4 heads
  // pooled to 2, int8 keys per token in 8-channel groups (quantized on
  // append, not held in a window), int4 values per token, pages of 16.
  checkMhaToGqa(2, "kv-optimize{kv-heads=2 key=int8 key-axis=token "
                   "key-group=8 value=int4 page-size=16 capacity=64 "
                   "report=false}");
}

//===----------------------------------------------------------------------===//
// llama-4layer: raise, paginate, quantize, kv-share-layers
//===----------------------------------------------------------------------===//

namespace {
constexpr int64_t kLayers = 4;

struct StackData {
  Tensor x;
  std::vector<Tensor> pastK, pastV;
  std::vector<LayerWeights> w;
};

StackData stackData(std::mt19937_64 &rng, const LayerShape &s) {
  StackData d;
  d.x = uniform(rng, {kBatch, 1, kHidden}, 1.0);
  for (int64_t l = 0; l < kLayers; ++l) {
    d.pastK.push_back(uniform(rng, {kBatch, s.kvHeads, kPast, s.dim}, 1.0));
    d.pastV.push_back(uniform(rng, {kBatch, s.kvHeads, kPast, s.dim}, 1.0));
  }
  for (int64_t l = 0; l < kLayers; ++l) {
    LayerWeights w;
    w.wq = weight(rng, kHidden, s.qHeads * s.dim);
    w.wk = weight(rng, kHidden, s.kvHeads * s.dim);
    w.wv = weight(rng, kHidden, s.kvHeads * s.dim);
    w.wo = weight(rng, s.qHeads * s.dim, kHidden);
    d.w.push_back(w);
  }
  return d;
}

/// The original's arguments: x, (past_k, past_v) per layer, then (wq, wk,
/// wv, wo) per layer.
std::vector<Tensor> stackOriginalArgs(const StackData &d) {
  std::vector<Tensor> args{d.x};
  for (int64_t l = 0; l < kLayers; ++l) {
    args.push_back(d.pastK[l]);
    args.push_back(d.pastV[l]);
  }
  for (const LayerWeights &w : d.w)
    for (const Tensor *t : {&w.wq, &w.wk, &w.wv, &w.wo})
      args.push_back(*t);
  return args;
}

Inputs stackInputs(const StackData &d) {
  Inputs in;
  in.plain.push_back(d.x);
  for (const LayerWeights &w : d.w)
    for (const Tensor *t : {&w.wq, &w.wk, &w.wv, &w.wo})
      in.plain.push_back(*t);
  for (int64_t l = 0; l < kLayers; ++l)
    in.caches[l] = {d.pastK[l], d.pastV[l]};
  return in;
}

/// `share[l]` = the layer whose cache layer l reads (l itself when it owns
/// one): sharing layers attend to the owner's past and new K/V and append
/// nothing (kv-share-layers); each layer still computes its own q.
/// `kvHeads` > 0: the pipeline converts to that many KV heads
/// (kv-mha-to-gqa); the model is the stack with every layer's K/V weights
/// pooled as the pass pools them and the caches holding the pooled past.
void checkStack(const std::string &pipeline, std::vector<int64_t> share,
                int64_t kvHeads = 0) {
  LayerShape original = llamaGqa().shape, s = original;
  if (kvHeads > 0)
    s.kvHeads = kvHeads;
  const std::string file = "llama-4layer.mlir";
  Compiled orig = compileOriginal(file);
  Compiled tr = compileTransformed(file, pipeline);
  const CacheSpec &spec = onlyCache(tr.sig);
  EXPECT_EQ(spec.kvHeads, s.kvHeads);
  bool quantized = spec.key || spec.value;
  bool shared = false;
  for (int64_t l = 0; l < kLayers; ++l)
    shared |= share[l] != l;
  for (uint64_t seed : cputest::testSeeds()) {
    SCOPED_TRACE("seed " + std::to_string(seed) + ", " + pipeline);
    std::mt19937_64 rng(seed);
    StackData d = stackData(rng, original);
    // What the model (and the caches) see: the pooled weights and past.
    StackData m = d;
    if (kvHeads > 0)
      for (int64_t l = 0; l < kLayers; ++l) {
        m.w[l].wk =
            poolWeight(d.w[l].wk, original.kvHeads, kvHeads, original.dim);
        m.w[l].wv =
            poolWeight(d.w[l].wv, original.kvHeads, kvHeads, original.dim);
        m.pastK[l] = poolPast(d.pastK[l], kvHeads);
        m.pastV[l] = poolPast(d.pastV[l], kvHeads);
      }
    Tensor out, outTol;
    std::vector<LayerResult> model = runStack(
        s, m.w, m.x, m.pastK, m.pastV,
        [&](int64_t l, const std::vector<LayerResult> &done, Tensor &k,
            Tensor &v) {
          if (share[l] != l) {
            k = done[share[l]].kSeen;
            v = done[share[l]].vSeen;
          } else if (quantized) {
            quantizedView(spec)(k, v);
          }
        },
        quantized, out, outTol);
    // The transformed graph takes the original weights (kv-mha-to-gqa pools
    // them) and caches holding the pooled past.
    Inputs in = stackInputs(d);
    for (int64_t l = 0; l < kLayers; ++l)
      in.caches[l] = {m.pastK[l], m.pastV[l]};
    std::vector<Buffer> args = buildArgs(tr.sig, in, rng);
    std::vector<Tensor> got = run(*tr.module, tr.sig, args);
    ASSERT_EQ(got.size(), 1u + 2 * kLayers);
    expectClose(got[0], out, outTol, "out vs model");
    for (int64_t l = 0; l < kLayers; ++l) {
      // Layer l returns its cache's view: the owner's K/V when it shares.
      const LayerResult &owner = model[share[l]];
      std::string layer = "layer " + std::to_string(l);
      if (!quantized) {
        expectClose(got[1 + 2 * l], owner.kPresent,
                    rowTolerance(owner.kPresent, owner.hTol, m.w[share[l]].wk),
                    layer + " K view vs model");
        expectClose(got[2 + 2 * l], owner.vPresent,
                    rowTolerance(owner.vPresent, owner.hTol, m.w[share[l]].wv),
                    layer + " V view vs model");
      } else if (spec.value && spec.value->axis == QuantAxis::Token) {
        expectClose(
            got[2 + 2 * l], owner.vSeen,
            rowTolerance(owner.vSeen, owner.hTol, m.w[share[l]].wv, 0x1p-23),
            layer + " V view vs model");
      }
    }
    if (quantized || shared || kvHeads > 0)
      continue;
    std::vector<Buffer> oargs = plainArgs(stackOriginalArgs(d));
    std::vector<Tensor> want = run(*orig.module, orig.sig, oargs);
    ASSERT_EQ(want.size(), 1u + 2 * kLayers);
    expectClose(want[0], out, outTol, "original out vs model");
    expectClose(got[0], want[0], scaled(outTol, 2.0), "out vs original");
    for (int64_t l = 0; l < kLayers; ++l) {
      expectClose(got[1 + 2 * l], want[1 + 2 * l],
                  rowTolerance(want[1 + 2 * l], model[l].hTol, d.w[l].wk),
                  "layer " + std::to_string(l) + " K view vs concat");
      expectClose(got[2 + 2 * l], want[2 + 2 * l],
                  rowTolerance(want[2 + 2 * l], model[l].hTol, d.w[l].wv),
                  "layer " + std::to_string(l) + " V view vs concat");
    }
  }
}
} // namespace

TEST(Semantics, FourLayerRaise) {
  checkStack("kv-raise-attention", {0, 1, 2, 3});
}
TEST(Semantics, FourLayerPaged1) {
  checkStack("kv-raise-attention{capacity=32},kv-paginate{page-size=1}",
             {0, 1, 2, 3});
}
TEST(Semantics, FourLayerPaged16) {
  checkStack("kv-raise-attention{capacity=32},kv-paginate{page-size=16}",
             {0, 1, 2, 3});
}
TEST(Semantics, FourLayerInt4) {
  checkStack("kv-raise-attention{capacity=64},kv-quantize{key=int4 value=int4}",
             {0, 1, 2, 3});
}
TEST(Semantics, FourLayerShareGroups2) {
  checkStack("kv-raise-attention,kv-share-layers{group-size=2}", {0, 0, 2, 2});
}
TEST(Semantics, FourLayerOptimizePipeline) {
  // The registered pipeline with every technique the stack allows: GQA ->
  // MQA (2 KV heads pooled to 1), pairs of layers sharing a cache, int4 K
  // (channel, 16) / V (token), pages of 16.
  checkStack("kv-optimize{kv-heads=1 share-group=2 page-size=16 key=int4 "
             "value=int4 capacity=64 report=false}",
             {0, 0, 2, 2}, /*kvHeads=*/1);
}
TEST(Semantics, FourLayerShareMapPaged) {
  checkStack("kv-raise-attention{capacity=32},kv-share-layers{map=0,0,0,3},"
             "kv-paginate{page-size=16}",
             {0, 0, 0, 3});
}

//===----------------------------------------------------------------------===//
// deepseek-mla-layer: raise (latent cache), paginate, kv-absorb-mla
//===----------------------------------------------------------------------===//

namespace {
const CacheSpec &latentCache(const Signature &sig) {
  for (const ArgInfo &a : sig.args)
    if (a.kind == ArgInfo::LatentCacheArg)
      return a.spec;
  static CacheSpec none;
  ADD_FAILURE() << "no latent cache argument";
  return none;
}

/// With a quantized latent cache (token axis only: a channel-axis group
/// would be quantized from the kernel's new row, which rounds differently
/// from the model's), attention reads the past as the reference
/// dequantizes the codes written for it and the new row from the window
/// (`recent` >= 1), so the model is the same chain over those rows; the
/// original, in full precision, is not compared.
void checkMla(const std::string &pipeline) {
  const std::string file = "deepseek-mla-layer.mlir";
  Compiled orig = compileOriginal(file);
  Compiled tr = compileTransformed(file, pipeline);
  const CacheSpec &spec = latentCache(tr.sig);
  bool quantized = spec.key.has_value();
  if (quantized) {
    ASSERT_EQ(spec.key->axis, QuantAxis::Token) << pipeline;
    ASSERT_GE(spec.key->recent, 1) << pipeline;
    // The view's bound below is an integer asymmetric one.
    ASSERT_NE(spec.key->kind, QuantKind::Fp8E4M3) << pipeline;
    ASSERT_FALSE(spec.key->symmetric) << pipeline;
  }
  for (uint64_t seed : cputest::testSeeds()) {
    SCOPED_TRACE("seed " + std::to_string(seed) + ", " + pipeline);
    std::mt19937_64 rng(seed);
    Tensor x = uniform(rng, {kBatch, 1, kHidden}, 1.0);
    Tensor past = uniform(rng, {kBatch, kPast, 40}, 1.0);
    MlaWeightsF32 w;
    w.wq = weight(rng, kHidden, 96);
    w.wdkv = weight(rng, kHidden, 32);
    w.wkr = weight(rng, kHidden, 8);
    w.wuk = weight(rng, 32, 64);
    w.wuv = weight(rng, 32, 64);
    w.wo = weight(rng, 64, kHidden);
    // The rows attention reads: codes dequantized, windows exact.
    auto effective = [&](Tensor &rows) {
      std::vector<int64_t> lengths(rows.dim(0), rows.dim(1));
      Tensor k = rows.reshaped({rows.dim(0), 1, rows.dim(1), rows.dim(2)});
      rows = cputest::effectiveCache(k, spec.key, lengths)
                 .reshaped({rows.dim(0), rows.dim(1), rows.dim(2)});
    };
    MlaResult model =
        runMla(w, x, past, quantized ? EffectiveRows(effective) : nullptr);
    Tensor yTol = model.yTol.reshaped({kBatch, 1, kHidden});
    Inputs in{{x, w.wq, w.wdkv, w.wkr, w.wuk, w.wuv, w.wo}, {{0, {past, {}}}}};
    std::vector<Buffer> args = buildArgs(tr.sig, in, rng);
    std::vector<Tensor> got = run(*tr.module, tr.sig, args);
    ASSERT_EQ(got.size(), 2u);
    expectClose(got[0], model.y.reshaped({kBatch, 1, kHidden}), yTol,
                "y vs model");
    // The latent rows come back through kv.view: the past exactly, the new
    // row from kv.mla_project, whose FMA chains round differently from the
    // graph's matmuls: (hidden + 1) u sum |x w| per side (docs/CPU.md).
    Tensor rowTol(model.rows.shape(), 1e-300);
    Tensor xr = x.reshaped({kBatch, kHidden});
    Tensor magC = matmulAbs(xr, w.wdkv), magR = matmulAbs(xr, w.wkr);
    for (int64_t b = 0; b < kBatch; ++b)
      for (int64_t e = 0; e < 40; ++e)
        rowTol.at({b, kPast, e}) =
            2.0 * (kHidden + 1) * kU *
            (e < 32 ? magC.at({b, e}) : magR.at({b, e - 32}));
    if (quantized) {
      // kv.view reads the codes (no windows: it has no lengths): the past
      // as the reference dequantizes it (q * s + z rounded in f32); the new
      // row was quantized by the append from the kernel's row, which is
      // within rowTol of the model's, so within that plus two steps of its
      // scale group (each side's rounding; the f16 scale and zero point add
      // 2^-9 of the group's range).
      Tensor codes = model.rows.reshaped({kBatch, 1, kPast + 1, 40});
      reference::QuantEncoding noWindows = *spec.key;
      noWindows.recent = noWindows.sinks = 0;
      Tensor want =
          cputest::effectiveCache(codes, noWindows,
                                  std::vector<int64_t>(kBatch, kPast + 1))
              .reshaped({kBatch, kPast + 1, 40});
      int64_t group = spec.key->group ? spec.key->group : 40;
      for (int64_t b = 0; b < kBatch; ++b)
        for (int64_t t = 0; t <= kPast; ++t)
          for (int64_t e = 0; e < 40; ++e) {
            double lo = INFINITY, hi = -INFINITY;
            for (int64_t f = e / group * group; f < (e / group + 1) * group;
                 ++f) {
              lo = std::min(lo, model.rows.at({b, t, f}));
              hi = std::max(hi, model.rows.at({b, t, f}));
            }
            double levels = spec.key->kind == QuantKind::Int8   ? 255.0
                            : spec.key->kind == QuantKind::Int4 ? 15.0
                                                                : 3.0;
            double &tol = rowTol.at({b, t, e});
            if (t == kPast)
              tol += 2.0 * (hi - lo) / levels +
                     0x1p-9 * (std::fabs(lo) + std::fabs(hi));
            else
              tol = 0x1p-23 * (std::fabs(want.at({b, t, e})) + 2.0);
          }
      expectClose(got[1], want, rowTol, "rows view vs model");
      continue;
    }
    std::vector<Buffer> oargs =
        plainArgs({x, past, w.wq, w.wdkv, w.wkr, w.wuk, w.wuv, w.wo});
    std::vector<Tensor> want = run(*orig.module, orig.sig, oargs);
    ASSERT_EQ(want.size(), 2u);
    expectClose(want[0], model.y.reshaped({kBatch, 1, kHidden}), yTol,
                "original y vs model");
    expectClose(got[0], want[0], scaled(yTol, 2.0), "y vs original");
    expectClose(got[1], want[1], rowTol, "rows view vs concat");
    expectClose(got[1], model.rows, rowTol, "rows vs model");
  }
}
} // namespace

TEST(Semantics, MlaRaise) { checkMla("kv-raise-attention"); }
TEST(Semantics, MlaPaged1) {
  checkMla("kv-raise-attention{capacity=32},kv-paginate{page-size=1}");
}
TEST(Semantics, MlaPaged16) {
  checkMla("kv-raise-attention{capacity=32},kv-paginate{page-size=16}");
}
TEST(Semantics, MlaAbsorb) { checkMla("kv-raise-attention,kv-absorb-mla"); }
TEST(Semantics, MlaAbsorbPaged16) {
  checkMla("kv-raise-attention{capacity=32},kv-absorb-mla,"
           "kv-paginate{page-size=16}");
}
TEST(Semantics, MlaOptimizePipeline) {
  // The registered pipeline on the MLA layer: raise to a latent cache,
  // absorb (on by default), page by 16; full precision.
  checkMla("kv-optimize{page-size=16 capacity=32 report=false}");
}
TEST(Semantics, MlaOptimizeInt8Latent) {
  // int8 latent rows, one f16 scale and zero point per 8 channels of a
  // token, the newest token in the full-precision window.
  checkMla("kv-optimize{page-size=16 key=int8 key-axis=token key-group=8 "
           "key-recent=1 capacity=32 report=false}");
}

//===----------------------------------------------------------------------===//
// Unbatched (2-D linalg.matmul) single-head attention
//===----------------------------------------------------------------------===//

namespace {
/// One decode step of single-head attention written with 2-D matmuls:
/// q [1, 16], new k/v [1, 16], past [7, 16]; returns the output and the
/// concatenated K/V.
constexpr const char *kUnbatchedGraph = R"mlir(
#id2 = affine_map<(t, s) -> (t, s)>
func.func @unbatched(%q: tensor<1x16xf32>, %k: tensor<1x16xf32>,
                     %v: tensor<1x16xf32>, %past_k: tensor<7x16xf32>,
                     %past_v: tensor<7x16xf32>)
    -> (tensor<1x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>) {
  %zero = arith.constant 0.0 : f32
  %k_all = tensor.concat dim(0) %past_k, %k : (tensor<7x16xf32>, tensor<1x16xf32>) -> tensor<8x16xf32>
  %v_all = tensor.concat dim(0) %past_v, %v : (tensor<7x16xf32>, tensor<1x16xf32>) -> tensor<8x16xf32>
  %ekt = tensor.empty() : tensor<16x8xf32>
  %kt = linalg.transpose ins(%k_all : tensor<8x16xf32>) outs(%ekt : tensor<16x8xf32>) permutation = [1, 0]
  %es = tensor.empty() : tensor<1x8xf32>
  %fs = linalg.fill ins(%zero : f32) outs(%es : tensor<1x8xf32>) -> tensor<1x8xf32>
  %s = linalg.matmul ins(%q, %kt : tensor<1x16xf32>, tensor<16x8xf32>) outs(%fs : tensor<1x8xf32>) -> tensor<1x8xf32>
  %ss = linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%s : tensor<1x8xf32>) outs(%es : tensor<1x8xf32>) {
  ^bb0(%a: f32, %out: f32):
    %c = arith.constant 0.25 : f32
    %t = arith.mulf %a, %c : f32
    linalg.yield %t : f32
  } -> tensor<1x8xf32>
  %p = linalg.softmax dimension(1) ins(%ss : tensor<1x8xf32>) outs(%es : tensor<1x8xf32>) -> tensor<1x8xf32>
  %eo = tensor.empty() : tensor<1x16xf32>
  %fo = linalg.fill ins(%zero : f32) outs(%eo : tensor<1x16xf32>) -> tensor<1x16xf32>
  %o = linalg.matmul ins(%p, %v_all : tensor<1x8xf32>, tensor<8x16xf32>) outs(%fo : tensor<1x16xf32>) -> tensor<1x16xf32>
  return %o, %k_all, %v_all : tensor<1x16xf32>, tensor<8x16xf32>, tensor<8x16xf32>
}
)mlir";

double maxAbsOf(const Tensor &t) {
  double m = 0.0;
  for (double x : t.values())
    m = std::max(m, std::fabs(x));
  return m;
}
} // namespace

// kv-raise-attention on 2-D attention (raised as B = 1, H = 1): the
// transformed graph vs the original and both vs reference::attention; the
// returned K/V (kv.view, collapsed to 2-D) bit-exact vs the concatenations.
TEST(Semantics, UnbatchedRaise) {
  constexpr int64_t kD = 16, kP = 7;
  std::string source = kUnbatchedGraph;
  std::string transformed = transform(source, "kv-raise-attention");
  ASSERT_NE(transformed.find("kv.attention"), std::string::npos)
      << transformed;
  std::string origSource = prepareOriginal(source);
  Signature osig = signature(origSource);
  CPUModule &orig = cputest::compiled(origSource);
  std::string trSource = prepareOriginal(transformed);
  Signature tsig = signature(trSource);
  CPUModule &tr = cputest::compiled(trSource);
  for (uint64_t seed : cputest::testSeeds()) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    Tensor q = uniform(rng, {1, kD}, 1.0), k = uniform(rng, {1, kD}, 1.0),
           v = uniform(rng, {1, kD}, 1.0);
    Tensor pastK = uniform(rng, {kP, kD}, 1.0),
           pastV = uniform(rng, {kP, kD}, 1.0);
    Tensor kAll({kP + 1, kD}), vAll({kP + 1, kD});
    for (int64_t t = 0; t <= kP; ++t)
      for (int64_t d = 0; d < kD; ++d) {
        kAll.at({t, d}) = t < kP ? pastK.at({t, d}) : k.at({0, d});
        vAll.at({t, d}) = t < kP ? pastV.at({t, d}) : v.at({0, d});
      }
    AttentionOptions options;
    options.scale = 0.25;
    AttentionResult att =
        attention(q.reshaped({1, 1, 1, kD}), kAll.reshaped({1, 1, kP + 1, kD}),
                  vAll.reshaped({1, 1, kP + 1, kD}), {kP + 1}, options);
    double maxScore = 0.0;
    for (int64_t t = 0; t <= kP; ++t) {
      double dot = 0.0;
      for (int64_t d = 0; d < kD; ++d)
        dot += std::fabs(q.at({0, d}) * kAll.at({t, d}));
      maxScore = std::max(maxScore, 0.25 * dot);
    }
    AttentionTolerance tol =
        fp32AttentionTolerance(kD, kP + 1, maxScore, maxAbsOf(vAll),
                               maxAbsOf(att.lse), false, ScalarType::F32);
    Tensor model = att.out.reshaped({1, kD});
    Tensor yTol({1, kD}, tol.out);
    Tensor exact({kP + 1, kD}, 1e-300);

    std::vector<Buffer> oargs = plainArgs({q, k, v, pastK, pastV});
    std::vector<Tensor> want = run(orig, osig, oargs);
    ASSERT_EQ(want.size(), 3u);
    expectClose(want[0], model, yTol, "original y vs model");
    expectClose(want[1], kAll, exact, "original K concat");

    std::vector<Buffer> args;
    std::vector<Tensor> plain = {q, k, v};
    size_t next = 0;
    for (const ArgInfo &a : tsig.args) {
      if (a.kind == ArgInfo::TensorArg) {
        ASSERT_LT(next, plain.size());
        args.push_back(f32Buffer(plain[next++]));
        continue;
      }
      ASSERT_EQ(a.kind, ArgInfo::CacheArg);
      BlockTable table = cputest::makeTable(rng, a.spec, 1);
      args.push_back(cacheBuffer(
          cputest::writeCache(a.spec, table, pastK.reshaped({1, 1, kP, kD}),
                              pastV.reshaped({1, 1, kP, kD}), {kP})
              .bytes));
    }
    ASSERT_EQ(next, plain.size());
    std::vector<Tensor> got = run(tr, tsig, args);
    ASSERT_EQ(got.size(), 3u);
    expectClose(got[0], model, yTol, "y vs model");
    expectClose(got[0], want[0], scaled(yTol, 2.0), "y vs original");
    expectClose(got[1], want[1], exact, "K view vs concat");
    expectClose(got[2], want[2], exact, "V view vs concat");
  }
}
