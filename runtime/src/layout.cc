//===- layout.cc - KV cache layout description and size formulas ----------===//
//
// Validation, JSON (de)serialization and the byte formulas of
// docs/CacheLayout.md. Page bytes are computed in integers; bytes per token
// is a double because channel-axis scales are amortized over a token group.
//
//===----------------------------------------------------------------------===//

#include "kvopt/runtime/layout.h"

#include "json_reader.h"

#include <algorithm>
#include <utility>

namespace kvopt {
namespace rt {

using nlohmann::json;

/// Upper bound on num_layers; keeps a malformed layout from allocating.
static constexpr uint32_t kMaxLayers = 1u << 16;

unsigned elementBytes(ElementType type) {
  switch (type) {
  case ElementType::F16:
  case ElementType::BF16:
    return 2;
  case ElementType::F32:
    return 4;
  }
  return 0;
}

unsigned quantBits(QuantKind kind) {
  switch (kind) {
  case QuantKind::Int8:
  case QuantKind::Fp8E4M3:
    return 8;
  case QuantKind::Int4:
    return 4;
  case QuantKind::Int2:
    return 2;
  }
  return 0;
}

const char *elementTypeName(ElementType type) {
  switch (type) {
  case ElementType::F16:
    return "f16";
  case ElementType::BF16:
    return "bf16";
  case ElementType::F32:
    return "f32";
  }
  return "?";
}

const char *quantKindName(QuantKind kind) {
  switch (kind) {
  case QuantKind::Int8:
    return "int8";
  case QuantKind::Fp8E4M3:
    return "fp8_e4m3";
  case QuantKind::Int4:
    return "int4";
  case QuantKind::Int2:
    return "int2";
  }
  return "?";
}

static const char *axisName(QuantAxis axis) {
  return axis == QuantAxis::Token ? "token" : "channel";
}

bool QuantEncoding::operator==(const QuantEncoding &o) const {
  return kind == o.kind && axis == o.axis && group == o.group &&
         symmetric == o.symmetric && scale == o.scale && recent == o.recent &&
         sinks == o.sinks;
}

uint32_t CacheLayout::numCaches() const {
  uint32_t n = 0;
  for (uint32_t c : layerToCache)
    n = std::max(n, c + 1);
  return n;
}

uint64_t CacheLayout::rowWidth() const {
  return kind == CacheKind::KV ? uint64_t(kvHeads) * headDim
                               : uint64_t(latentDim) + ropeDim;
}

/// Channels per scale of a token-axis encoding (group 0 = the whole head, or
/// the whole latent row).
static uint64_t tokenGroupWidth(const CacheLayout &l, const QuantEncoding &q) {
  if (q.group != 0)
    return q.group;
  return l.kind == CacheKind::KV ? l.headDim : l.rowWidth();
}

/// Scale copies per scale: 1 (symmetric) or 2 (scale + zero point).
static unsigned scaleCopies(const QuantEncoding &q) {
  return q.symmetric ? 1 : 2;
}

Status CacheLayout::validate() const {
  auto bad = [](const std::string &m) {
    return Status::error(StatusCode::InvalidArgument, "cache layout: " + m);
  };
  if (kind == CacheKind::KV) {
    if (kvHeads == 0 || headDim == 0)
      return bad("kv_heads and head_dim must be >= 1 for kind \"kv\"");
  } else {
    if (latentDim == 0)
      return bad("latent_dim must be >= 1 for kind \"latent\"");
    if (value)
      return bad("a latent cache has no value component; value must be null");
  }
  uint64_t w = rowWidth();
  for (Component c : {Component::Key, Component::Value}) {
    const std::optional<QuantEncoding> &enc = encoding(c);
    if (!enc)
      continue;
    std::string name = c == Component::Key ? "key" : "value";
    const QuantEncoding &q = *enc;
    if (q.kind == QuantKind::Fp8E4M3 && !q.symmetric)
      return bad(name + ": fp8_e4m3 must be symmetric");
    if ((w * quantBits(q.kind)) % 8 != 0)
      return bad(name + ": a row of " + std::to_string(w) + " " +
                 quantKindName(q.kind) + " values is not a whole byte count");
    if (q.axis == QuantAxis::Token) {
      uint64_t divisor = kind == CacheKind::KV ? headDim : w;
      if (q.group != 0 && divisor % q.group != 0)
        return bad(name + ": token-axis group " + std::to_string(q.group) +
                   " does not divide " +
                   (kind == CacheKind::KV ? "head_dim " : "the latent row ") +
                   std::to_string(divisor));
    } else {
      if (q.group == 0)
        return bad(name + ": channel-axis group (tokens per scale) must be "
                          ">= 1");
      if (layout == StorageLayout::Paged && pageSize % q.group != 0)
        return bad(name + ": channel-axis token group " +
                   std::to_string(q.group) + " does not divide page_size " +
                   std::to_string(pageSize));
    }
  }
  if (layout == StorageLayout::Paged && (pageSize < 1 || pageSize > 4096))
    return bad("page_size " + std::to_string(pageSize) + " is outside 1..4096");
  if (numLayers == 0 || numLayers > kMaxLayers)
    return bad("num_layers " + std::to_string(numLayers) + " is outside 1.." +
               std::to_string(kMaxLayers));
  if (layerToCache.size() != numLayers)
    return bad("layer_to_cache has " + std::to_string(layerToCache.size()) +
               " entries for num_layers " + std::to_string(numLayers));
  uint32_t caches = numCaches();
  std::vector<bool> used(caches, false);
  for (uint32_t c : layerToCache)
    used[c] = true;
  for (uint32_t c = 0; c < caches; ++c)
    if (!used[c])
      return bad("caches must be numbered densely from 0; no layer reads "
                 "cache " +
                 std::to_string(c));
  return Status::ok();
}

/// Bytes per token of one component (formula of CacheLayout.md).
static double componentBytesPerToken(const CacheLayout &l, Component c) {
  uint64_t w = l.rowWidth();
  const std::optional<QuantEncoding> &enc = l.encoding(c);
  if (!enc)
    return double(w * elementBytes(l.element));
  const QuantEncoding &q = *enc;
  double bytes = double(w * quantBits(q.kind) / 8);
  uint64_t s = elementBytes(q.scale) * scaleCopies(q);
  if (q.axis == QuantAxis::Token)
    bytes += double((w / tokenGroupWidth(l, q)) * s);
  else
    bytes += double(w * s) / double(q.group);
  return bytes;
}

double CacheLayout::cacheBytesPerToken() const {
  double bytes = 0;
  for (unsigned i = 0; i < numComponents(); ++i)
    bytes += componentBytesPerToken(*this, Component(i));
  return bytes;
}

double CacheLayout::bytesPerToken() const {
  return cacheBytesPerToken() * numCaches();
}

uint64_t CacheLayout::cacheFixedBytesPerSequence() const {
  uint64_t bytes = 0;
  for (unsigned i = 0; i < numComponents(); ++i)
    if (const auto &q = encoding(Component(i)))
      bytes +=
          uint64_t(q->recent + q->sinks) * rowWidth() * elementBytes(element);
  return bytes;
}

uint64_t CacheLayout::fixedBytesPerSequence() const {
  return cacheFixedBytesPerSequence() * numCaches();
}

ComponentPageLayout componentPageLayout(const CacheLayout &l, Component c) {
  uint64_t p = l.pageSize, w = l.rowWidth();
  uint64_t offset = 0;
  ComponentPageLayout result;
  for (unsigned i = 0; i <= unsigned(c); ++i) {
    ComponentPageLayout part;
    const std::optional<QuantEncoding> &enc = l.encoding(Component(i));
    part.dataOffset = offset;
    if (!enc) {
      part.dataRowBytes = w * elementBytes(l.element);
      offset += p * part.dataRowBytes;
    } else {
      const QuantEncoding &q = *enc;
      part.dataRowBytes = w * quantBits(q.kind) / 8;
      offset += p * part.dataRowBytes;
      part.hasScales = true;
      part.hasZeros = !q.symmetric;
      uint64_t scaleRows;
      if (q.axis == QuantAxis::Token) {
        part.tokensPerScaleRow = 1;
        part.scaleRowBytes =
            (w / tokenGroupWidth(l, q)) * elementBytes(q.scale);
        scaleRows = p;
      } else {
        part.tokensPerScaleRow = q.group;
        part.scaleRowBytes = w * elementBytes(q.scale);
        scaleRows = p / q.group;
      }
      part.scaleOffset = offset;
      offset += scaleRows * part.scaleRowBytes;
      if (part.hasZeros) {
        part.zeroOffset = offset;
        offset += scaleRows * part.scaleRowBytes;
      }
    }
    part.endOffset = offset;
    result = part;
  }
  return result;
}

uint64_t CacheLayout::pageBytes() const {
  Component last = numComponents() == 2 ? Component::Value : Component::Key;
  return componentPageLayout(*this, last).endOffset;
}

//===----------------------------------------------------------------------===//
// Comparison: both layouts are flattened into (field, value) lists.
//===----------------------------------------------------------------------===//

using FieldList = std::vector<std::pair<std::string, std::string>>;

static void flattenEncoding(const char *name,
                            const std::optional<QuantEncoding> &enc,
                            FieldList &out) {
  std::string n = name;
  if (!enc) {
    out.push_back({n, "null"});
    return;
  }
  out.push_back({n, "quantized"});
  out.push_back({n + ".kind", quantKindName(enc->kind)});
  out.push_back({n + ".axis", axisName(enc->axis)});
  out.push_back({n + ".group", std::to_string(enc->group)});
  out.push_back({n + ".symmetric", enc->symmetric ? "true" : "false"});
  out.push_back({n + ".scale", elementTypeName(enc->scale)});
  out.push_back({n + ".recent", std::to_string(enc->recent)});
  out.push_back({n + ".sinks", std::to_string(enc->sinks)});
}

static FieldList flatten(const CacheLayout &l) {
  FieldList f;
  f.push_back({"kind", l.kind == CacheKind::KV ? "kv" : "latent"});
  if (l.kind == CacheKind::KV) {
    f.push_back({"kv_heads", std::to_string(l.kvHeads)});
    f.push_back({"head_dim", std::to_string(l.headDim)});
  } else {
    f.push_back({"latent_dim", std::to_string(l.latentDim)});
    f.push_back({"rope_dim", std::to_string(l.ropeDim)});
  }
  f.push_back({"element", elementTypeName(l.element)});
  flattenEncoding("key", l.key, f);
  flattenEncoding("value", l.value, f);
  bool paged = l.layout == StorageLayout::Paged;
  f.push_back({"layout", paged ? "paged" : "contiguous"});
  if (paged)
    f.push_back({"page_size", std::to_string(l.pageSize)});
  f.push_back({"num_layers", std::to_string(l.numLayers)});
  std::string map = "[";
  for (size_t i = 0; i < l.layerToCache.size(); ++i)
    map += (i ? "," : "") + std::to_string(l.layerToCache[i]);
  f.push_back({"layer_to_cache", map + "]"});
  return f;
}

Status CacheLayout::compare(const CacheLayout &actual, const char *expectedName,
                            const char *actualName) const {
  FieldList a = flatten(*this), b = flatten(actual);
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (a[i] == b[i])
      continue;
    // Fields line up until the first difference, so names agree here.
    return Status::error(StatusCode::LayoutMismatch,
                         "cache layout mismatch: " + a[i].first + " is " +
                             a[i].second + " in the " + expectedName + " but " +
                             b[i].second + " in the " + actualName);
  }
  return Status::ok();
}

//===----------------------------------------------------------------------===//
// JSON
//===----------------------------------------------------------------------===//

template <typename Enum, size_t N>
static bool readEnum(detail::JsonObjectReader &r, const char *key,
                     const std::pair<const char *, Enum> (&names)[N], Enum &out,
                     bool required) {
  std::string text;
  if (!r.getString(key, text, required))
    return false;
  for (const auto &entry : names) {
    if (text == entry.first) {
      out = entry.second;
      return true;
    }
  }
  std::string allowed;
  for (const auto &entry : names)
    allowed += std::string(allowed.empty() ? "" : ", ") + entry.first;
  r.fail(key, "\"" + text + "\" is not one of " + allowed);
  return false;
}

static const std::pair<const char *, ElementType> kElementNames[] = {
    {"f16", ElementType::F16},
    {"bf16", ElementType::BF16},
    {"f32", ElementType::F32}};
static const std::pair<const char *, QuantKind> kQuantNames[] = {
    {"int8", QuantKind::Int8},
    {"fp8_e4m3", QuantKind::Fp8E4M3},
    {"int4", QuantKind::Int4},
    {"int2", QuantKind::Int2}};
static const std::pair<const char *, QuantAxis> kAxisNames[] = {
    {"token", QuantAxis::Token}, {"channel", QuantAxis::Channel}};
static const std::pair<const char *, CacheKind> kKindNames[] = {
    {"kv", CacheKind::KV}, {"latent", CacheKind::Latent}};
static const std::pair<const char *, StorageLayout> kLayoutNames[] = {
    {"contiguous", StorageLayout::Contiguous}, {"paged", StorageLayout::Paged}};

static Status parseEncoding(const json &value, const std::string &where,
                            std::optional<QuantEncoding> &out) {
  if (value.is_null()) {
    out.reset();
    return Status::ok();
  }
  detail::JsonObjectReader r(value, where);
  QuantEncoding q;
  readEnum(r, "kind", kQuantNames, q.kind, true);
  readEnum(r, "axis", kAxisNames, q.axis, true);
  r.getUInt32("group", q.group, true);
  r.getBool("symmetric", q.symmetric, true);
  readEnum(r, "scale", kElementNames, q.scale, true);
  r.getUInt32("recent", q.recent, false);
  r.getUInt32("sinks", q.sinks, false);
  KVOPT_RT_RETURN_IF_ERROR(r.finish());
  out = q;
  return Status::ok();
}

Status detail::parseCacheLayout(const json &value, const std::string &where,
                                CacheLayout &out) {
  detail::JsonObjectReader r(value, where);
  CacheLayout l;
  readEnum(r, "kind", kKindNames, l.kind, true);
  bool isKV = l.kind == CacheKind::KV;
  r.getUInt32("kv_heads", l.kvHeads, isKV);
  r.getUInt32("head_dim", l.headDim, isKV);
  r.getUInt32("latent_dim", l.latentDim, !isKV);
  r.getUInt32("rope_dim", l.ropeDim, false);
  readEnum(r, "element", kElementNames, l.element, true);
  readEnum(r, "layout", kLayoutNames, l.layout, true);
  r.getUInt32("page_size", l.pageSize, l.layout == StorageLayout::Paged);
  r.getUInt32("num_layers", l.numLayers, true);
  const json *key = r.field("key", false);
  const json *val = r.field("value", false);
  const json *map = r.field("layer_to_cache", false);
  KVOPT_RT_RETURN_IF_ERROR(r.finish());
  if (key)
    KVOPT_RT_RETURN_IF_ERROR(parseEncoding(*key, where + ".key", l.key));
  if (val)
    KVOPT_RT_RETURN_IF_ERROR(parseEncoding(*val, where + ".value", l.value));
  if (map) {
    if (!map->is_array())
      return Status::error(StatusCode::ParseError,
                           where + ".layer_to_cache: expected an array");
    for (const json &e : *map) {
      if (!e.is_number_unsigned() || e.get<uint64_t>() >= l.numLayers)
        return Status::error(StatusCode::ParseError,
                             where + ".layer_to_cache: entries must be cache "
                                     "numbers below num_layers");
      l.layerToCache.push_back(e.get<uint32_t>());
    }
  } else {
    // No sharing: layer i reads cache i.
    for (uint32_t i = 0; i < l.numLayers && i <= kMaxLayers; ++i)
      l.layerToCache.push_back(i);
  }
  KVOPT_RT_RETURN_IF_ERROR(l.validate());
  out = std::move(l);
  return Status::ok();
}

Status CacheLayout::fromJson(const std::string &text, CacheLayout &out) {
  json value;
  KVOPT_RT_RETURN_IF_ERROR(detail::parseJsonText(text, "cache layout", value));
  return detail::parseCacheLayout(value, "layout", out);
}

static json encodingToJson(const std::optional<QuantEncoding> &enc) {
  if (!enc)
    return nullptr;
  return json{{"kind", quantKindName(enc->kind)},
              {"axis", axisName(enc->axis)},
              {"group", enc->group},
              {"symmetric", enc->symmetric},
              {"scale", elementTypeName(enc->scale)},
              {"recent", enc->recent},
              {"sinks", enc->sinks}};
}

std::string CacheLayout::toJson() const {
  json j;
  j["kind"] = kind == CacheKind::KV ? "kv" : "latent";
  if (kind == CacheKind::KV) {
    j["kv_heads"] = kvHeads;
    j["head_dim"] = headDim;
  } else {
    j["latent_dim"] = latentDim;
    j["rope_dim"] = ropeDim;
  }
  j["element"] = elementTypeName(element);
  j["key"] = encodingToJson(key);
  j["value"] = encodingToJson(value);
  j["layout"] = layout == StorageLayout::Paged ? "paged" : "contiguous";
  if (layout == StorageLayout::Paged)
    j["page_size"] = pageSize;
  j["num_layers"] = numLayers;
  j["layer_to_cache"] = layerToCache;
  return j.dump();
}

} // namespace rt
} // namespace kvopt
