// RUN: kvopt-opt %s -kv-share-layers=group-size=2 | FileCheck %s --check-prefix=PAIRS
// RUN: kvopt-opt %s -kv-share-layers=map=0,0,0,3 | FileCheck %s --check-prefix=MAP

!c = !kv.cache<kv_heads = 2, head_dim = 16, capacity = 32, element = f32>

// Four layers, each with its own cache. In pairs, layers 1 and 3 read the
// caches of layers 0 and 2 through views and stop appending; their cache
// arguments disappear.
// PAIRS-LABEL: func @four_layers
// PAIRS-SAME: (%[[C0:[a-z0-9]+]]: !kv_cache {kv.layer = 0 : i64}, %[[C2:[a-z0-9]+]]: !kv_cache {kv.layer = 2 : i64}, %{{.*}}: tensor<1xi32>
// PAIRS-DAG: %[[S1:.*]] = kv.share_cache %[[C0]] {layer = 1 : i64}
// PAIRS-DAG: %[[S3:.*]] = kv.share_cache %[[C2]] {layer = 3 : i64}
// PAIRS: kv.append %[[C0]]
// PAIRS: kv.attention %{{.*}}, %[[C0]]
// PAIRS-NOT: kv.append
// PAIRS: kv.attention %{{.*}}, %[[S1]]
// PAIRS: kv.append %[[C2]]
// PAIRS: kv.attention %{{.*}}, %[[C2]]
// PAIRS-NOT: kv.append
// PAIRS: kv.attention %{{.*}}, %[[S3]]
// MAP-LABEL: func @four_layers
// MAP-SAME: (%[[C0:[a-z0-9]+]]: !kv_cache {kv.layer = 0 : i64}, %[[C3:[a-z0-9]+]]: !kv_cache {kv.layer = 3 : i64}, %{{.*}}: tensor<1xi32>
// MAP-COUNT-2: kv.share_cache %[[C0]]
// MAP-COUNT-2: kv.append
// MAP-NOT: kv.append
func.func @four_layers(%c0: !c {kv.layer = 0 : i64}, %c1: !c {kv.layer = 1 : i64},
                       %c2: !c {kv.layer = 2 : i64}, %c3: !c {kv.layer = 3 : i64},
                       %pos: tensor<1xi32>, %lens: tensor<1xi32>, %k: tensor<1x2x1x16xf32>,
                       %q: tensor<1x4x1x16xf32>) -> (tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>) {
  kv.append %c0[%pos], %k, %k : !c, tensor<1xi32>, tensor<1x2x1x16xf32>, tensor<1x2x1x16xf32>
  %o0 = kv.attention %q, %c0, %lens : (tensor<1x4x1x16xf32>, !c, tensor<1xi32>) -> tensor<1x4x1x16xf32>
  kv.append %c1[%pos], %k, %k : !c, tensor<1xi32>, tensor<1x2x1x16xf32>, tensor<1x2x1x16xf32>
  %o1 = kv.attention %q, %c1, %lens : (tensor<1x4x1x16xf32>, !c, tensor<1xi32>) -> tensor<1x4x1x16xf32>
  kv.append %c2[%pos], %k, %k : !c, tensor<1xi32>, tensor<1x2x1x16xf32>, tensor<1x2x1x16xf32>
  %o2 = kv.attention %q, %c2, %lens : (tensor<1x4x1x16xf32>, !c, tensor<1xi32>) -> tensor<1x4x1x16xf32>
  kv.append %c3[%pos], %k, %k : !c, tensor<1xi32>, tensor<1x2x1x16xf32>, tensor<1x2x1x16xf32>
  %o3 = kv.attention %q, %c3, %lens : (tensor<1x4x1x16xf32>, !c, tensor<1xi32>) -> tensor<1x4x1x16xf32>
  return %o0, %o1, %o2, %o3 : tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>, tensor<1x4x1x16xf32>
}
