//===- layout_test.cc - Cache layout formulas, JSON and validation --------===//
//
// Checks the worked examples of docs/CacheLayout.md, page layouts, the JSON
// form and every validation rule.
//
//===----------------------------------------------------------------------===//

#include "kvopt/runtime/layout.h"

#include "test_util.h"

#include <gtest/gtest.h>

using namespace kvopt::rt;

namespace {

CacheLayout parse(const std::string &json) {
  CacheLayout l;
  Status s = CacheLayout::fromJson(json, l);
  EXPECT_TRUE(s.isOk()) << s.toString() << "\n" << json;
  return l;
}

/// A one-layer paged kv layout with the given encodings (JSON fragments).
std::string kvJson(int heads, int dim, const char *element, const char *key,
                   const char *value, int pageSize = 32) {
  return std::string("{\"kind\":\"kv\",\"kv_heads\":") + std::to_string(heads) +
         ",\"head_dim\":" + std::to_string(dim) + ",\"element\":\"" + element +
         "\",\"key\":" + key + ",\"value\":" + value +
         ",\"layout\":\"paged\",\"page_size\":" + std::to_string(pageSize) +
         ",\"num_layers\":1,\"layer_to_cache\":[0]}";
}

// The table "Worked examples" of docs/CacheLayout.md, row by row.
TEST(LayoutTest, WorkedExamplesOfCacheLayoutDoc) {
  EXPECT_EQ(parse(kvJson(32, 128, "f16", "null", "null")).bytesPerToken(),
            16384);
  EXPECT_EQ(parse(kvJson(8, 128, "f16", "null", "null")).bytesPerToken(), 4096);
  const char *k4 = R"({"kind":"int4","axis":"channel","group":32,
      "symmetric":false,"scale":"f16"})";
  const char *v4 = R"({"kind":"int4","axis":"token","group":32,
      "symmetric":false,"scale":"f16"})";
  CacheLayout kivi = parse(kvJson(8, 128, "f16", k4, v4));
  EXPECT_EQ(kivi.bytesPerToken(), 1280);
  EXPECT_EQ(kivi.pageBytes(), 32u * 1280u);
  const char *i8 = R"({"kind":"int8","axis":"token","group":0,
      "symmetric":true,"scale":"f32"})";
  EXPECT_EQ(parse(kvJson(8, 128, "f16", i8, i8)).bytesPerToken(), 2112);
  CacheLayout mla = parse(R"({"kind":"latent","latent_dim":512,"rope_dim":64,
      "element":"bf16","layout":"paged","page_size":64,"num_layers":1})");
  EXPECT_EQ(mla.bytesPerToken(), 1152);
  CacheLayout mla8 = parse(R"({"kind":"latent","latent_dim":512,"rope_dim":64,
      "element":"bf16","key":{"kind":"fp8_e4m3","axis":"token","group":0,
      "symmetric":true,"scale":"f32"},"value":null,"layout":"paged",
      "page_size":64,"num_layers":1})");
  EXPECT_EQ(mla8.bytesPerToken(), 580);
  EXPECT_EQ(mla8.pageBytes(), 64u * 580u);
}

// Shared layers count a cache once; windows are a per-sequence fixed cost.
TEST(LayoutTest, SharingAndWindows) {
  CacheLayout l = parse(R"({"kind":"kv","kv_heads":8,"head_dim":128,
      "element":"f16","key":{"kind":"int8","axis":"token","group":0,
      "symmetric":true,"scale":"f32","recent":16,"sinks":4},"value":null,
      "layout":"paged","page_size":16,"num_layers":4,
      "layer_to_cache":[0,0,1,1]})");
  EXPECT_EQ(l.numCaches(), 2u);
  EXPECT_EQ(l.cacheBytesPerToken(), 1024 + 32 + 2048);
  EXPECT_EQ(l.bytesPerToken(), 2 * (1024 + 32 + 2048));
  // Only K is quantized: (16 + 4) rows of 1024 f16 values per cache.
  EXPECT_EQ(l.cacheFixedBytesPerSequence(), 20u * 1024u * 2u);
  EXPECT_EQ(l.fixedBytesPerSequence(), 2u * 20u * 1024u * 2u);
}

// Channel-axis scales are amortized: the per-token figure may be fractional
// while the page stays integral.
TEST(LayoutTest, FractionalChannelScales) {
  const char *k = R"({"kind":"int2","axis":"channel","group":3,
      "symmetric":true,"scale":"f16"})";
  CacheLayout l = parse(kvJson(1, 4, "f32", k, "null", 6));
  // K: 4 * 2 / 8 = 1 byte data + 4 * 2 / 3 scale bytes; V: 16 bytes.
  EXPECT_DOUBLE_EQ(l.bytesPerToken(), 1 + 8.0 / 3 + 16);
  EXPECT_EQ(l.pageBytes(), 6u * 1 + 2u * 4 * 2 + 6u * 16);
}

// Offsets follow [K data][K scales][K zeros][V data][V scales][V zeros].
TEST(LayoutTest, ComponentPageLayout) {
  const char *k = R"({"kind":"int4","axis":"channel","group":2,
      "symmetric":false,"scale":"f16"})";
  const char *v = R"({"kind":"int8","axis":"token","group":2,
      "symmetric":false,"scale":"f32"})";
  CacheLayout l = parse(kvJson(2, 4, "f16", k, v, 4));
  ComponentPageLayout kp = componentPageLayout(l, Component::Key);
  EXPECT_EQ(kp.dataOffset, 0u);
  EXPECT_EQ(kp.dataRowBytes, 4u); // 8 int4 values
  EXPECT_EQ(kp.scaleOffset, 16u);
  EXPECT_EQ(kp.scaleRowBytes, 16u); // [kv_heads][head_dim] f16 per group
  EXPECT_EQ(kp.tokensPerScaleRow, 2u);
  EXPECT_EQ(kp.zeroOffset, 16u + 2 * 16);
  EXPECT_EQ(kp.endOffset, 16u + 4 * 16);
  ComponentPageLayout vp = componentPageLayout(l, Component::Value);
  EXPECT_EQ(vp.dataOffset, 80u);
  EXPECT_EQ(vp.dataRowBytes, 8u);
  EXPECT_EQ(vp.scaleOffset, 80u + 32);
  EXPECT_EQ(vp.scaleRowBytes, 4u * 4); // 8 / 2 scales of f32
  EXPECT_EQ(vp.tokensPerScaleRow, 1u);
  EXPECT_EQ(vp.zeroOffset, 112u + 64);
  EXPECT_EQ(vp.endOffset, 176u + 64);
  EXPECT_EQ(l.pageBytes(), 240u);
  EXPECT_DOUBLE_EQ(l.cacheBytesPerToken(), 240.0 / 4);
}

TEST(LayoutTest, JsonRoundTrip) {
  const char *k = R"({"kind":"int4","axis":"channel","group":2,
      "symmetric":false,"scale":"bf16","recent":3,"sinks":1})";
  CacheLayout a = parse(kvJson(2, 4, "f16", k, "null", 4));
  CacheLayout b = parse(a.toJson());
  EXPECT_TRUE(a.compare(b, "a", "b").isOk());
  EXPECT_EQ(a.toJson(), b.toJson());
}

TEST(LayoutTest, CompareNamesTheFirstDifference) {
  CacheLayout a = kvopt::rt::test::smallLayout(16);
  CacheLayout b = a;
  b.pageSize = 32;
  Status s = a.compare(b, "bundle", "pool");
  EXPECT_EQ(s.code(), StatusCode::LayoutMismatch);
  EXPECT_EQ(s.message(), "cache layout mismatch: page_size is 16 in the bundle "
                         "but 32 in the pool");
  b = a;
  b.key = QuantEncoding();
  s = a.compare(b, "bundle", "pool");
  EXPECT_NE(s.message().find("key is null in the bundle but quantized"),
            std::string::npos)
      << s.message();
  b = a;
  b.numLayers = 2;
  b.layerToCache = {0, 0};
  EXPECT_NE(a.compare(b, "x", "y").message().find("num_layers"),
            std::string::npos);
}

struct BadLayout {
  const char *json;
  const char *messagePart;
};

class LayoutErrorTest : public ::testing::TestWithParam<BadLayout> {};

// Each malformed layout is rejected with a message naming the problem.
TEST_P(LayoutErrorTest, Rejected) {
  CacheLayout l;
  Status s = CacheLayout::fromJson(GetParam().json, l);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find(GetParam().messagePart), std::string::npos)
      << s.toString();
}

#define KV_PREFIX R"({"kind":"kv","kv_heads":2,"head_dim":4,"element":"f16",)"
#define KV_SUFFIX R"("layout":"paged","page_size":4,"num_layers":1})"

INSTANTIATE_TEST_SUITE_P(
    Rules, LayoutErrorTest,
    ::testing::Values(
        BadLayout{"not json", "not valid JSON"},
        BadLayout{"[1]", "expected a JSON object"},
        BadLayout{KV_PREFIX R"("layout":"paged","page_size":4})",
                  "num_layers: missing"},
        BadLayout{KV_PREFIX KV_SUFFIX R"(x)", "not valid JSON"},
        BadLayout{
            R"({"kind":"kv","kv_heads":0,"head_dim":4,"element":"f16",)" KV_SUFFIX,
            "kv_heads and head_dim"},
        BadLayout{
            R"({"kind":"kv","kv_heads":-1,"head_dim":4,"element":"f16",)" KV_SUFFIX,
            "non-negative integer"},
        BadLayout{
            R"({"kind":"qkv","kv_heads":2,"head_dim":4,"element":"f16",)" KV_SUFFIX,
            "\"qkv\" is not one of kv, latent"},
        BadLayout{
            R"({"kind":"kv","kv_heads":2,"head_dim":4,"element":"f8",)" KV_SUFFIX,
            "element"},
        BadLayout{KV_PREFIX R"("pagesize":4,"layout":"paged","page_size":4,
                  "num_layers":1})",
                  "pagesize: unknown field"},
        BadLayout{KV_PREFIX R"("layout":"paged","page_size":0,"num_layers":1})",
                  "page_size 0 is outside 1..4096"},
        BadLayout{KV_PREFIX R"("layout":"paged","page_size":8192,
                  "num_layers":1})",
                  "outside 1..4096"},
        BadLayout{KV_PREFIX R"("layout":"paged","page_size":4,"num_layers":2,
                  "layer_to_cache":[1,1]})",
                  "densely"},
        BadLayout{KV_PREFIX R"("layout":"paged","page_size":4,"num_layers":2,
                  "layer_to_cache":[0]})",
                  "1 entries for num_layers 2"},
        BadLayout{KV_PREFIX R"("layout":"paged","page_size":4,"num_layers":0})",
                  "num_layers 0"},
        BadLayout{KV_PREFIX R"("key":{"kind":"fp8_e4m3","axis":"token",
                  "group":0,"symmetric":false,"scale":"f32"},)" KV_SUFFIX,
                  "fp8_e4m3 must be symmetric"},
        BadLayout{KV_PREFIX R"("key":{"kind":"int8","axis":"token",
                  "group":3,"symmetric":true,"scale":"f32"},)" KV_SUFFIX,
                  "group 3 does not divide head_dim 4"},
        BadLayout{KV_PREFIX R"("key":{"kind":"int8","axis":"channel",
                  "group":0,"symmetric":true,"scale":"f32"},)" KV_SUFFIX,
                  "must be >= 1"},
        BadLayout{KV_PREFIX R"("key":{"kind":"int8","axis":"channel",
                  "group":3,"symmetric":true,"scale":"f32"},)" KV_SUFFIX,
                  "token group 3 does not divide page_size 4"},
        BadLayout{KV_PREFIX R"("key":{"kind":"int8","axis":"row",
                  "group":0,"symmetric":true,"scale":"f32"},)" KV_SUFFIX,
                  "layout.key.axis"},
        BadLayout{KV_PREFIX R"("key":{"kind":"int8","axis":"token",
                  "symmetric":true,"scale":"f32"},)" KV_SUFFIX,
                  "layout.key.group: missing"},
        BadLayout{R"({"kind":"kv","kv_heads":1,"head_dim":3,"element":"f16",
                  "key":{"kind":"int2","axis":"token","group":0,
                  "symmetric":true,"scale":"f32"},)" KV_SUFFIX,
                  "not a whole byte count"},
        BadLayout{R"({"kind":"latent","latent_dim":8,"rope_dim":0,
                  "element":"f16","value":{"kind":"int8","axis":"token",
                  "group":0,"symmetric":true,"scale":"f32"},)" KV_SUFFIX,
                  "value must be null"},
        BadLayout{
            R"({"kind":"latent","latent_dim":0,"element":"f16",)" KV_SUFFIX,
            "latent_dim must be >= 1"},
        BadLayout{R"({"kind":"latent","latent_dim":8,"element":"f16",
                  "key":{"kind":"int8","axis":"token","group":3,
                  "symmetric":true,"scale":"f32"},)" KV_SUFFIX,
                  "does not divide the latent row 8"}));

} // namespace
