//===- NVVMToRuntime.cpp - The nvvm op -> SIMT runtime mapping table ------===//
//
// The single place that says which nvvm ops the emulator supports and which
// runtime function implements each. kv-simt-emulate rejects every nvvm op
// that has no row here.
//
//===----------------------------------------------------------------------===//

#include "RuntimeCalls.h"

#include "kvopt/simt/ABI.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "llvm/Support/Path.h"

using namespace mlir;
using namespace kvopt::simt;

//===----------------------------------------------------------------------===//
// RuntimeAPI and SiteTable
//===----------------------------------------------------------------------===//

LLVM::LLVMFuncOp RuntimeAPI::declare(StringRef name, Type result,
                                     TypeRange args, bool pure) {
  if (auto fn = module.lookupSymbol<LLVM::LLVMFuncOp>(name))
    return fn;
  MLIRContext *ctx = module.getContext();
  OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
  Type ret = result ? result : LLVM::LLVMVoidType::get(ctx);
  auto fn = LLVM::LLVMFuncOp::create(
      b, module.getLoc(), name,
      LLVM::LLVMFunctionType::get(ret, llvm::to_vector(args)));
  if (pure) {
    // Constant for the lifetime of one thread's kernel invocation: lets LLVM
    // merge repeated reads of the same special register.
    auto none = LLVM::ModRefInfo::NoModRef;
    fn.setMemoryEffectsAttr(LLVM::MemoryEffectsAttr::get(
        ctx, {none, none, none, none, none, none}));
    fn.setNoUnwind(true);
    fn.setWillReturn(true);
  }
  // Barriers and warp collectives stay plain external calls: opaque to LLVM,
  // so no shared-memory access moves across them.
  return fn;
}

LLVM::CallOp RuntimeAPI::call(OpBuilder &b, Location loc, StringRef name,
                              Type result, ValueRange args, bool pure) {
  LLVM::LLVMFuncOp fn = declare(name, result, args.getTypes(), pure);
  return LLVM::CallOp::create(b, loc, fn, args);
}

Value RuntimeAPI::i32(OpBuilder &b, Location loc, int64_t v) {
  return LLVM::ConstantOp::create(b, loc, b.getI32Type(),
                                  b.getI32IntegerAttr(v));
}

Value RuntimeAPI::i64(OpBuilder &b, Location loc, int64_t v) {
  return LLVM::ConstantOp::create(b, loc, b.getI64Type(),
                                  b.getI64IntegerAttr(v));
}

std::string kvopt::simt::describeLocation(Location loc) {
  if (auto f = dyn_cast<FileLineColLoc>(loc))
    return (llvm::sys::path::filename(f.getFilename().getValue()) + ":" +
            Twine(f.getLine()) + ":" + Twine(f.getColumn()))
        .str();
  if (auto n = dyn_cast<NameLoc>(loc))
    return describeLocation(n.getChildLoc());
  if (auto c = dyn_cast<CallSiteLoc>(loc))
    return describeLocation(c.getCallee());
  if (auto f = dyn_cast<FusedLoc>(loc))
    for (Location l : f.getLocations()) {
      std::string s = describeLocation(l);
      if (s != "?")
        return s;
    }
  return "?";
}

int32_t SiteTable::add(Operation *op, StringRef what) {
  sites.push_back((what + " at " + describeLocation(op->getLoc())).str());
  return int32_t(sites.size() - 1);
}

//===----------------------------------------------------------------------===//
// The table
//===----------------------------------------------------------------------===//

static const NVVMMapping kTable[] = {
#define SREG(op, sym)                                                          \
  {"nvvm.read.ptx.sreg." op, NVVMLowering::SpecialRegister,                    \
   "__kv_simt_sreg_" sym},
    SREG("tid.x", "tid_x") SREG("tid.y", "tid_y") SREG("tid.z", "tid_z") SREG(
        "ntid.x", "ntid_x") SREG("ntid.y", "ntid_y") SREG("ntid.z", "ntid_z")
        SREG("ctaid.x", "ctaid_x") SREG("ctaid.y", "ctaid_y") SREG("ctaid.z",
                                                                   "ctaid_z")
            SREG("nctaid.x", "nctaid_x") SREG("nctaid.y", "nctaid_y") SREG(
                "nctaid.z", "nctaid_z") SREG("laneid", "laneid")
                SREG("warpsize", "warpsize") SREG("warpid", "warpid") SREG(
                    "nwarpid", "nwarpid") SREG("lanemask.eq", "lanemask_eq")
                    SREG("lanemask.le", "lanemask_le") SREG(
                        "lanemask.lt", "lanemask_lt") SREG("lanemask.ge",
                                                           "lanemask_ge")
                        SREG("lanemask.gt", "lanemask_gt") SREG(
                            "dynamic.smem.size", "dynamic_smem_size")
                            SREG("total.smem.size", "total_smem_size") SREG(
                                "smid", "smid") SREG("nsmid", "nsmid")
                                SREG("gridid", "gridid") SREG("clock", "clock")
                                    SREG("clock64", "clock64") SREG(
                                        "globaltimer", "globaltimer")
#undef SREG
                                        {"nvvm.barrier0", NVVMLowering::Barrier,
                                         "__kv_simt_barrier"},
    {"nvvm.barrier", NVVMLowering::Barrier, "__kv_simt_barrier"},
    {"nvvm.shfl.sync", NVVMLowering::Shuffle, "__kv_simt_shfl"},
    {"nvvm.vote.sync", NVVMLowering::Vote, "__kv_simt_vote"},
    {"nvvm.redux.sync", NVVMLowering::Redux, "__kv_simt_redux"},
    {"nvvm.bar.warp.sync", NVVMLowering::WarpSync, "__kv_simt_warp_sync"},
    {"nvvm.rcp.approx.ftz.f", NVVMLowering::Unary,
     "__kv_simt_rcp_approx_ftz_f32"},
    {"nvvm.mma.sync", NVVMLowering::Mma, "__kv_simt_mma"},
};

ArrayRef<NVVMMapping> kvopt::simt::nvvmMappingTable() { return kTable; }

const NVVMMapping *kvopt::simt::lookupNVVMMapping(StringRef opName) {
  for (const NVVMMapping &m : kTable)
    if (m.opName == opName)
      return &m;
  return nullptr;
}

//===----------------------------------------------------------------------===//
// Lowerings
//===----------------------------------------------------------------------===//

/// Bit-casts an i32/f32 value to i32.
static Value toI32(OpBuilder &b, Location loc, Value v) {
  if (v.getType().isInteger(32))
    return v;
  return LLVM::BitcastOp::create(b, loc, b.getI32Type(), v);
}

/// Bit-casts an i32 back to `type` (i32 or f32).
static Value fromI32(OpBuilder &b, Location loc, Value v, Type type) {
  if (type.isInteger(32))
    return v;
  return LLVM::BitcastOp::create(b, loc, type, v);
}

static LogicalResult lowerShuffle(NVVM::ShflOp op, const NVVMMapping &m,
                                  RuntimeAPI &rt, SiteTable &sites) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  Type valueType = op.getVal().getType();
  int32_t site =
      sites.add(op, ("shfl.sync." + stringifyEnum(op.getKind())).str());
  Value packed =
      rt.call(b, loc, m.symbol, b.getI64Type(),
              {rt.i32(b, loc, int64_t(op.getKind())), op.getThreadMask(),
               toI32(b, loc, op.getVal()), op.getOffset(), op.getMaskAndClamp(),
               rt.i32(b, loc, site)})
          .getResult();
  Value value = fromI32(
      b, loc, LLVM::TruncOp::create(b, loc, b.getI32Type(), packed), valueType);
  if (!op.getReturnValueAndIsValid()) {
    op.getResult().replaceAllUsesWith(value);
    op.erase();
    return success();
  }
  Value shifted = LLVM::LShrOp::create(b, loc, packed, rt.i64(b, loc, 32));
  Value valid = LLVM::TruncOp::create(b, loc, b.getI1Type(), shifted);
  Type structType = op.getResult().getType();
  Value s = LLVM::UndefOp::create(b, loc, structType);
  s = LLVM::InsertValueOp::create(b, loc, s, value, ArrayRef<int64_t>{0});
  s = LLVM::InsertValueOp::create(b, loc, s, valid, ArrayRef<int64_t>{1});
  op.getResult().replaceAllUsesWith(s);
  op.erase();
  return success();
}

static LogicalResult lowerVote(NVVM::VoteSyncOp op, const NVVMMapping &m,
                               RuntimeAPI &rt, SiteTable &sites) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  int32_t site =
      sites.add(op, ("vote.sync." + stringifyEnum(op.getKind())).str());
  Value pred = LLVM::ZExtOp::create(b, loc, b.getI32Type(), op.getPred());
  Value r = rt.call(b, loc, m.symbol, b.getI32Type(),
                    {rt.i32(b, loc, int64_t(op.getKind())), op.getMask(), pred,
                     rt.i32(b, loc, site)})
                .getResult();
  if (op.getResult().getType().isInteger(1))
    r = LLVM::TruncOp::create(b, loc, b.getI1Type(), r);
  op.getResult().replaceAllUsesWith(r);
  op.erase();
  return success();
}

static LogicalResult lowerRedux(NVVM::ReduxOp op, const NVVMMapping &m,
                                RuntimeAPI &rt, SiteTable &sites) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  int32_t site =
      sites.add(op, ("redux.sync." + stringifyEnum(op.getKind())).str());
  int64_t flags = (op.getAbs() ? KVOPT_SIMT_REDUX_ABS : 0) |
                  (op.getNan() ? KVOPT_SIMT_REDUX_NAN : 0);
  Value r = rt.call(b, loc, m.symbol, b.getI32Type(),
                    {rt.i32(b, loc, int64_t(op.getKind())),
                     rt.i32(b, loc, flags), op.getMaskAndClamp(),
                     toI32(b, loc, op.getVal()), rt.i32(b, loc, site)})
                .getResult();
  op.getResult().replaceAllUsesWith(fromI32(b, loc, r, op.getVal().getType()));
  op.erase();
  return success();
}

/// nvvm.mma.sync (m16n8k16 / m16n8k8, f16 or bf16 multiplicands, row.col,
/// f32 accumulators): the lane's registers go to a private array, the
/// runtime computes the warp's product, D comes back through another.
static LogicalResult lowerMma(NVVM::MmaOp op, const NVVMMapping &m,
                              RuntimeAPI &rt, SiteTable &sites) {
  NVVM::MMAShapeAttr shape = op.getShape();
  auto aType = op.getMultiplicandAPtxType();
  bool bf16 = aType == NVVM::MMATypes::bf16;
  bool f16 = aType == NVVM::MMATypes::f16;
  auto resultType = dyn_cast<LLVM::LLVMStructType>(op.getRes().getType());
  bool f32Out =
      resultType && resultType.getBody().size() == 4 &&
      llvm::all_of(resultType.getBody(), [](Type t) { return t.isF32(); });
  int64_t k = shape.getK();
  if (shape.getM() != 16 || shape.getN() != 8 || (k != 16 && k != 8) ||
      !(f16 || bf16) || !f32Out || op.getLayoutA() != NVVM::MMALayout::row ||
      op.getLayoutB() != NVVM::MMALayout::col || op.getOperandC().size() != 4)
    return op.emitError()
           << "kv-simt-emulate: only mma.sync m16n8k16 and m16n8k8 with "
              "f16 or bf16 multiplicands, row.col layouts and f32 "
              "accumulators are emulated";
  OpBuilder b(op);
  Location loc = op.getLoc();
  int32_t site = sites.add(op, "mma.sync");
  Type i32 = b.getI32Type(), f32 = b.getF32Type();
  SmallVector<Value> regs;
  for (Value v : llvm::concat<Value>(op.getOperandA(), op.getOperandB()))
    regs.push_back(v.getType().isInteger(32)
                       ? v
                       : Value(LLVM::BitcastOp::create(b, loc, i32, v)));
  for (Value v : op.getOperandC())
    regs.push_back(LLVM::BitcastOp::create(b, loc, i32, v));
  // Private arrays in the entry block, as allocas belong.
  auto func = op->getParentOfType<LLVM::LLVMFuncOp>();
  OpBuilder eb(&func.getBody().front(), func.getBody().front().begin());
  auto ptr = LLVM::LLVMPointerType::get(op.getContext());
  Value one = rt.i32(eb, loc, 1);
  Value frags = LLVM::AllocaOp::create(
      eb, loc, ptr, LLVM::LLVMArrayType::get(i32, 10), one, 4);
  Value out = LLVM::AllocaOp::create(eb, loc, ptr,
                                     LLVM::LLVMArrayType::get(f32, 4), one, 4);
  for (auto [i, v] : llvm::enumerate(regs)) {
    Value at = LLVM::GEPOp::create(b, loc, ptr, i32, frags,
                                   ArrayRef<LLVM::GEPArg>{int32_t(i)});
    LLVM::StoreOp::create(b, loc, v, at);
  }
  int64_t kind = (k == 16 ? 0 : 2) + (bf16 ? 1 : 0);
  rt.call(b, loc, m.symbol, Type(),
          {rt.i32(b, loc, kind), frags, out, rt.i32(b, loc, site)});
  Value s = LLVM::UndefOp::create(b, loc, resultType);
  for (int64_t i = 0; i < 4; ++i) {
    Value at = LLVM::GEPOp::create(b, loc, ptr, f32, out,
                                   ArrayRef<LLVM::GEPArg>{int32_t(i)});
    Value d = LLVM::LoadOp::create(b, loc, f32, at);
    s = LLVM::InsertValueOp::create(b, loc, s, d, ArrayRef<int64_t>{i});
  }
  op.getRes().replaceAllUsesWith(s);
  op.erase();
  return success();
}

LogicalResult kvopt::simt::lowerNVVMOp(Operation *op, const NVVMMapping &m,
                                       RuntimeAPI &rt, SiteTable &sites) {
  OpBuilder b(op);
  Location loc = op->getLoc();
  switch (m.lowering) {
  case NVVMLowering::SpecialRegister: {
    Type t = op->getResult(0).getType();
    Value v = rt.call(b, loc, m.symbol, t, {}, /*pure=*/true).getResult();
    op->getResult(0).replaceAllUsesWith(v);
    op->erase();
    return success();
  }
  case NVVMLowering::Barrier: {
    if (op->getNumOperands() || op->getNumResults() ||
        op->hasAttr("reductionOp"))
      return op->emitError()
             << "kv-simt-emulate: '" << op->getName()
             << "' with a barrier id, thread count or reduction is not "
                "supported by the SIMT runtime";
    int32_t site = sites.add(op, "barrier");
    rt.call(b, loc, m.symbol, Type(), {rt.i32(b, loc, site)});
    op->erase();
    return success();
  }
  case NVVMLowering::Shuffle:
    return lowerShuffle(cast<NVVM::ShflOp>(op), m, rt, sites);
  case NVVMLowering::Vote:
    return lowerVote(cast<NVVM::VoteSyncOp>(op), m, rt, sites);
  case NVVMLowering::Redux:
    return lowerRedux(cast<NVVM::ReduxOp>(op), m, rt, sites);
  case NVVMLowering::WarpSync: {
    int32_t site = sites.add(op, "bar.warp.sync");
    rt.call(b, loc, m.symbol, Type(),
            {op->getOperand(0), rt.i32(b, loc, site)});
    op->erase();
    return success();
  }
  case NVVMLowering::Mma:
    return lowerMma(cast<NVVM::MmaOp>(op), m, rt, sites);
  case NVVMLowering::Unary: {
    Value v = rt.call(b, loc, m.symbol, op->getResult(0).getType(),
                      {op->getOperand(0)}, /*pure=*/true)
                  .getResult();
    op->getResult(0).replaceAllUsesWith(v);
    op->erase();
    return success();
  }
  }
  return failure();
}
