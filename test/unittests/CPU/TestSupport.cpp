//===- TestSupport.cpp - helpers of the CPU kernel tests ------------------===//
//
// Implementation of TestSupport.h.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include "kvopt/Reference/Numeric.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <numeric>
#include <sstream>

using namespace kvopt;
using namespace kvopt::cputest;
using namespace kvopt::reference;

std::vector<uint64_t> kvopt::cputest::testSeeds() {
  std::vector<uint64_t> seeds{1, 2};
  if (const char *env = std::getenv("KVOPT_TEST_SEED"))
    seeds.push_back(std::strtoull(env, nullptr, 10));
  return seeds;
}

bool kvopt::cputest::sweepEnabled() {
  const char *env = std::getenv("KVOPT_CPU_SWEEP");
  return env && std::string(env) == "1";
}

Tensor kvopt::cputest::randomTensor(std::mt19937_64 &rng,
                                    std::vector<int64_t> shape,
                                    ScalarType element, double lo, double hi) {
  Tensor t(std::move(shape));
  std::uniform_real_distribution<double> dist(lo, hi);
  for (double &x : t.values())
    x = roundToScalar(element, dist(rng));
  return t;
}

int64_t kvopt::cputest::randomInt(std::mt19937_64 &rng, int64_t lo,
                                  int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

std::string kvopt::cputest::typeName(ScalarType t) {
  switch (t) {
  case ScalarType::F16:
    return "f16";
  case ScalarType::BF16:
    return "bf16";
  case ScalarType::F32:
    return "f32";
  }
  return "?";
}

std::string kvopt::cputest::quantAttr(const QuantEncoding &q) {
  static const char *kinds[] = {"int8", "fp8_e4m3", "int4", "int2"};
  std::ostringstream os;
  os << "#kv.quant<" << kinds[static_cast<int>(q.kind)]
     << ", axis = " << (q.axis == QuantAxis::Token ? "token" : "channel")
     << ", group = " << q.group
     << ", symmetric = " << (q.symmetric ? "true" : "false")
     << ", scale = " << typeName(q.scaleType) << ", recent = " << q.recent
     << ", sinks = " << q.sinks << ">";
  return os.str();
}

std::string kvopt::cputest::shapeType(const std::vector<int64_t> &shape,
                                      const std::string &e) {
  std::ostringstream os;
  for (int64_t d : shape)
    os << d << "x";
  os << e;
  return os.str();
}

std::vector<uint8_t> kvopt::cputest::encode(const Tensor &t, ScalarType type) {
  int64_t size = scalarBytes(type);
  std::vector<uint8_t> bytes(t.numel() * size);
  for (int64_t i = 0; i < t.numel(); ++i)
    writeScalarBytes(type, t.data()[i], bytes.data() + i * size);
  return bytes;
}

Tensor kvopt::cputest::decode(const std::vector<uint8_t> &bytes,
                              std::vector<int64_t> shape, ScalarType type) {
  Tensor t(std::move(shape));
  int64_t size = scalarBytes(type);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data()[i] = readScalarBytes(type, bytes.data() + i * size);
  return t;
}

Desc kvopt::cputest::makeDesc(void *data, const std::vector<int64_t> &shape) {
  Desc d;
  d.allocated = d.aligned = data;
  int64_t n = static_cast<int64_t>(shape.size());
  d.rank = n;
  int64_t stride = 1;
  for (int64_t i = n - 1; i >= 0; --i) {
    d.dims[i] = shape[i];
    d.dims[n + i] = stride;
    stride *= shape[i];
  }
  return d;
}

std::string kvopt::cputest::compileKey(const std::string &source,
                                       const CPUCompileOptions &options) {
  std::ostringstream key;
  key << options.splits << "/" << options.splitTokens << "/"
      << options.blockTokens << "/" << options.vectorBits << "/"
      << options.intDots << "/" << options.threads << "/" << options.optLevel
      << "\n"
      << source;
  return key.str();
}

std::vector<void *>
kvopt::cputest::expandedParams(const std::vector<Desc> &descs,
                               std::vector<uint64_t> &values) {
  values.clear();
  for (const Desc &d : descs) {
    values.push_back(reinterpret_cast<uint64_t>(d.allocated));
    values.push_back(reinterpret_cast<uint64_t>(d.aligned));
    values.push_back(static_cast<uint64_t>(d.offset));
    for (int64_t i = 0; i < 2 * d.rank; ++i)
      values.push_back(static_cast<uint64_t>(d.dims[i]));
  }
  std::vector<void *> params;
  for (uint64_t &v : values)
    params.push_back(&v);
  return params;
}

CPUModule &kvopt::cputest::compiled(const std::string &source,
                                    const CPUCompileOptions &options) {
  // Never destroyed: tearing ExecutionEngines down from static destructors
  // runs after LLVM's own statics are gone.
  static auto &cache = *new std::map<std::string, std::unique_ptr<CPUModule>>();
  auto &slot = cache[compileKey(source, options)];
  if (!slot) {
    auto module = CPUModule::compile(source, options);
    if (!module) {
      ADD_FAILURE() << llvm::toString(module.takeError()) << "\n" << source;
      std::abort();
    }
    slot = std::move(*module);
  }
  return *slot;
}

void kvopt::cputest::call(CPUModule &module, const std::string &name,
                          std::vector<Desc> &descs) {
  std::vector<void *> pointers, args;
  for (Desc &d : descs)
    pointers.push_back(&d);
  for (void *&p : pointers)
    args.push_back(&p);
  llvm::Error error = module.invoke(name, args);
  ASSERT_FALSE(static_cast<bool>(error)) << llvm::toString(std::move(error));
}

std::string CacheSpec::mlirType() const {
  std::ostringstream os;
  os << "!kv.cache<kv_heads = " << kvHeads << ", head_dim = " << headDim
     << ", capacity = " << capacity << ", element = " << typeName(element);
  if (pageSize)
    os << ", layout = #kv.layout<paged, page_size = " << pageSize << ">";
  if (key)
    os << ", key = " << quantAttr(*key);
  if (value)
    os << ", value = " << quantAttr(*value);
  os << ">";
  return os.str();
}

reference::PagedCacheFormat CacheSpec::format() const {
  PagedCacheFormat f;
  f.kvHeads = kvHeads;
  f.headDim = headDim;
  f.pageSize = pageSize ? pageSize : capacity;
  f.element = element;
  f.key = key;
  f.value = value;
  return f;
}

int64_t CacheSpec::pagesPerSequence() const {
  return pageSize ? (capacity + pageSize - 1) / pageSize : 1;
}

int64_t CacheSpec::windowBytes() const {
  int64_t bytes = 0;
  for (const auto *q : {&key, &value})
    if (*q)
      bytes += ((*q)->sinks + (*q)->recent) * kvHeads * headDim *
               scalarBytes(element);
  return bytes;
}

BlockTable kvopt::cputest::makeTable(std::mt19937_64 &rng,
                                     const CacheSpec &spec, int64_t batch) {
  BlockTable table;
  table.batch = batch;
  table.maxPages = spec.pagesPerSequence();
  if (!spec.pageSize) {
    for (int64_t b = 0; b < batch; ++b)
      table.pages.push_back(static_cast<int32_t>(b));
    return table;
  }
  int64_t pages = batch * table.maxPages + 3;
  std::vector<int32_t> ids(pages);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  ids.resize(batch * table.maxPages);
  table.pages = ids;
  return table;
}

CachePool kvopt::cputest::writeCache(const CacheSpec &spec,
                                     const BlockTable &table, const Tensor &k,
                                     const Tensor &v,
                                     const std::vector<int64_t> &lengths) {
  CachePool pool;
  pool.table = table;
  pool.tableData = table.pages;
  PagedCacheFormat format = spec.format();
  pool.pageBytes = computePageLayout(format).pageBytes;
  int64_t pages = 0;
  for (int32_t p : table.pages)
    pages = std::max<int64_t>(pages, p + 1);
  if (spec.pageSize)
    pages = std::max<int64_t>(pages, table.batch * table.maxPages + 3);
  pool.bytes.assign(pages * pool.pageBytes, 0);
  writePagedCache(format, pool.bytes, table, k, v, lengths);
  // Window region: [B][K window][V window], sinks then a ring by t % recent.
  int64_t windowBytes = spec.windowBytes();
  if (!windowBytes)
    return pool;
  size_t base = pool.bytes.size();
  pool.bytes.resize(base + table.batch * windowBytes, 0);
  int64_t esize = scalarBytes(spec.element);
  for (int64_t b = 0; b < table.batch; ++b) {
    int64_t offset = 0;
    for (int c = 0; c < 2; ++c) {
      const auto &q = c ? spec.value : spec.key;
      if (!q || q->sinks + q->recent == 0)
        continue;
      const Tensor &x = c ? v : k;
      auto put = [&](int64_t slot, int64_t t) {
        for (int64_t h = 0; h < spec.kvHeads; ++h)
          for (int64_t d = 0; d < spec.headDim; ++d)
            writeScalarBytes(
                spec.element, x.at({b, h, t, d}),
                pool.bytes.data() + base + b * windowBytes + offset +
                    ((slot * spec.kvHeads + h) * spec.headDim + d) * esize);
      };
      for (int64_t t = 0; t < std::min(q->sinks, lengths[b]); ++t)
        put(t, t);
      if (q->recent > 0)
        for (int64_t t = std::max<int64_t>(0, lengths[b] - q->recent);
             t < lengths[b]; ++t)
          put(q->sinks + t % q->recent, t);
      offset += (q->sinks + q->recent) * spec.kvHeads * spec.headDim * esize;
    }
  }
  return pool;
}

Tensor kvopt::cputest::effectiveCache(const Tensor &x,
                                      const std::optional<QuantEncoding> &q,
                                      const std::vector<int64_t> &lengths) {
  int64_t maxLen = *std::max_element(lengths.begin(), lengths.end());
  if (q)
    return dequantizeCache(quantizeCache(x, lengths, *q));
  Tensor out({x.dim(0), x.dim(1), maxLen, x.dim(3)});
  for (int64_t b = 0; b < x.dim(0); ++b)
    for (int64_t h = 0; h < x.dim(1); ++h)
      for (int64_t t = 0; t < lengths[b]; ++t)
        for (int64_t d = 0; d < x.dim(3); ++d)
          out.at({b, h, t, d}) = x.at({b, h, t, d});
  return out;
}

QuantEncoding kvopt::cputest::makeEncoding(QuantKind kind, QuantAxis axis,
                                           int64_t group, bool symmetric,
                                           ScalarType scale) {
  QuantEncoding q;
  q.kind = kind;
  q.axis = axis;
  q.group = group;
  q.symmetric = symmetric;
  q.scaleType = scale;
  return q;
}

std::vector<std::pair<std::string, QuantEncoding>>
kvopt::cputest::encodingZoo(int64_t dim) {
  auto enc = makeEncoding;
  int64_t half = dim % 32 == 0 ? 32 : 16;
  std::vector<std::pair<std::string, QuantEncoding>> zoo = {
      {"int8_tok",
       enc(QuantKind::Int8, QuantAxis::Token, 0, true, ScalarType::F32)},
      {"int8_tok_g_asym_f16",
       enc(QuantKind::Int8, QuantAxis::Token, half, false, ScalarType::F16)},
      {"fp8_tok",
       enc(QuantKind::Fp8E4M3, QuantAxis::Token, 0, true, ScalarType::F32)},
      {"fp8_tok_g_bf16",
       enc(QuantKind::Fp8E4M3, QuantAxis::Token, half, true, ScalarType::BF16)},
      {"int4_tok_g_asym",
       enc(QuantKind::Int4, QuantAxis::Token, half, false, ScalarType::F16)},
      {"int4_tok_sym",
       enc(QuantKind::Int4, QuantAxis::Token, 0, true, ScalarType::F16)},
      {"int2_tok_g_asym",
       enc(QuantKind::Int2, QuantAxis::Token, 16, false, ScalarType::F16)},
      {"int2_tok_sym",
       enc(QuantKind::Int2, QuantAxis::Token, 0, true, ScalarType::F32)},
  };
  QuantEncoding ch4 =
      enc(QuantKind::Int4, QuantAxis::Channel, 16, false, ScalarType::F16);
  ch4.recent = 16;
  zoo.push_back({"int4_ch16_asym_recent", ch4});
  QuantEncoding ch8 =
      enc(QuantKind::Int8, QuantAxis::Channel, 8, true, ScalarType::F32);
  ch8.recent = 7;
  ch8.sinks = 2;
  zoo.push_back({"int8_ch8_recent_sinks", ch8});
  QuantEncoding ch2 =
      enc(QuantKind::Int2, QuantAxis::Channel, 4, false, ScalarType::BF16);
  ch2.recent = 5;
  zoo.push_back({"int2_ch4_asym_recent", ch2});
  QuantEncoding tokWin =
      enc(QuantKind::Int4, QuantAxis::Token, 0, false, ScalarType::F16);
  tokWin.recent = 8;
  tokWin.sinks = 4;
  zoo.push_back({"int4_tok_recent_sinks", tokWin});
  return zoo;
}
