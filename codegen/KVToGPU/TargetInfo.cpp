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
  rt::DecodePlan p = rt::planDecodeSplits(decodePlanLimits(target), batch,
                                          kvHeads, maxLength, tileTokens);
  DecodeSplitPlan plan;
  plan.splits = p.splits;
  plan.chunkTokens = p.chunkTokens;
  return plan;
}

kvopt::rt::DecodePlanLimits
kvopt::gpugen::decodePlanLimits(const TargetInfo &t) {
  rt::DecodePlanLimits l;
  l.smCount = t.smCount;
  l.blocksPerSM = t.decodeBlocksPerSM;
  l.maxSplits = t.maxSplits;
  l.minChunkTokens = t.minChunkTokens;
  return l;
}
