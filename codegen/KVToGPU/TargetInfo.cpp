//===- TargetInfo.cpp - GPU target descriptions and decode planning -------===//
//
// The sm_80 (A100) and sm_90 (H100) descriptions and the split planner.
//
//===----------------------------------------------------------------------===//

#include "TargetInfo.h"

#include <algorithm>

using namespace kvopt::gpugen;

int64_t TargetInfo::decodeRegisterBudget() const {
  int64_t perThread = registersPerSM / (decodeThreads() * decodeBlocksPerSM);
  return std::min(perThread, maxRegistersPerThread);
}

std::optional<TargetInfo> kvopt::gpugen::getTargetInfo(llvm::StringRef chip) {
  TargetInfo t;
  t.chip = chip.str();
  if (chip == "sm_80") {
    t.smCount = 108;
    return t;
  }
  if (chip == "sm_90") {
    t.smCount = 132;
    return t;
  }
  return std::nullopt;
}

DecodeSplitPlan kvopt::gpugen::planDecodeSplits(const TargetInfo &target,
                                                int64_t batch, int64_t kvHeads,
                                                int64_t maxLength,
                                                int64_t tileTokens) {
  DecodeSplitPlan plan;
  int64_t tiles =
      std::max<int64_t>(1, (maxLength + tileTokens - 1) / tileTokens);
  int64_t minTiles = std::max<int64_t>(
      1, (target.minChunkTokens + tileTokens - 1) / tileTokens);
  int64_t maxGrid = target.smCount * target.decodeBlocksPerSM;
  int64_t rows = std::max<int64_t>(1, batch * kvHeads);
  // Smallest chunk (in tiles) whose grid fits in one wave; grids of many
  // sequences get one chunk each.
  int64_t chunk = tiles;
  for (int64_t c = minTiles; c < tiles; ++c) {
    int64_t splits = (tiles + c - 1) / c;
    if (splits <= target.maxSplits && rows * splits <= maxGrid) {
      chunk = c;
      break;
    }
  }
  chunk = std::max(chunk, (tiles + target.maxSplits - 1) / target.maxSplits);
  plan.splits = (tiles + chunk - 1) / chunk;
  plan.chunkTokens = chunk * tileTokens;
  return plan;
}
