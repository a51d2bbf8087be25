//===- decode_plan.h - Split-KV plan of the generated decode kernels -*- C++
//-*-===//
//
// How a decode launch splits each (sequence, KV head) over KV chunks, the
// FlashInfer-style host plan. Header-only and dependency-free: the code
// generator (gpugen::planDecodeSplits) and the runtime's graph runner share
// this one implementation.
//
//===----------------------------------------------------------------------===//

#ifndef KVOPT_RUNTIME_DECODE_PLAN_H
#define KVOPT_RUNTIME_DECODE_PLAN_H

#include <algorithm>
#include <cstdint>

namespace kvopt {
namespace rt {

/// What the target allows, from the decode kernel's launch constants.
struct DecodePlanLimits {
  int64_t smCount = 1;        ///< streaming multiprocessors
  int64_t blocksPerSM = 1;    ///< decode blocks resident per SM
  int64_t maxSplits = 1;      ///< most chunks the merge kernel takes
  int64_t minChunkTokens = 1; ///< fewest keys worth a chunk
};

struct DecodePlan {
  int64_t splits = 1;      ///< grid.x of the decode kernel
  int64_t chunkTokens = 0; ///< keys per chunk, a multiple of the tile
};

/// The smallest chunk (in tiles, at least minChunkTokens keys) such that
/// batch * kvHeads * splits fills at most smCount * blocksPerSM blocks,
/// never more than maxSplits chunks; grids of many sequences get one chunk
/// each.
inline DecodePlan planDecodeSplits(const DecodePlanLimits &limits,
                                   int64_t batch, int64_t kvHeads,
                                   int64_t maxLength, int64_t tileTokens) {
  DecodePlan plan;
  tileTokens = std::max<int64_t>(1, tileTokens);
  int64_t maxSplits = std::max<int64_t>(1, limits.maxSplits);
  int64_t tiles =
      std::max<int64_t>(1, (maxLength + tileTokens - 1) / tileTokens);
  int64_t minTiles = std::max<int64_t>(
      1, (limits.minChunkTokens + tileTokens - 1) / tileTokens);
  int64_t maxGrid = limits.smCount * limits.blocksPerSM;
  int64_t rows = std::max<int64_t>(1, batch * kvHeads);
  int64_t chunk = tiles;
  for (int64_t c = minTiles; c < tiles; ++c) {
    int64_t splits = (tiles + c - 1) / c;
    if (splits <= maxSplits && rows * splits <= maxGrid) {
      chunk = c;
      break;
    }
  }
  chunk = std::max(chunk, (tiles + maxSplits - 1) / maxSplits);
  plan.splits = (tiles + chunk - 1) / chunk;
  plan.chunkTokens = chunk * tileTokens;
  return plan;
}

} // namespace rt
} // namespace kvopt

#endif // KVOPT_RUNTIME_DECODE_PLAN_H
