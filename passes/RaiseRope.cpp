//===- RaiseRope.cpp - kv-raise-rope: rotary embeddings to kv.rope -------===//
//
// Finds rotary position embedding written in linalg/tensor/arith/math
// (`x * cos + rotate_half(x) * sin`, rotate_half as slices, negation and a
// concatenation, or as a generic with index arithmetic) on the queries and
// new keys that kv-raise-attention made explicit, proves it element by
// element to be kv.rope's rotate-half rotation at the positions the kv ops
// imply, infers theta from the tables, and rewrites it to kv.rope.
//
//===----------------------------------------------------------------------===//

#include "AttentionMatcher.h"

#include "kvopt/Transforms/RaisePasses.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Matchers.h"

#include <cmath>

namespace kvopt {
#define GEN_PASS_DEF_KVRAISEROPE
#include "kvopt/Transforms/RaisePasses.h.inc"
} // namespace kvopt

using namespace mlir;
using namespace kvopt;
using namespace kvopt::kv;

namespace {

/// A value at one point as `constant + Σ coefficient · x[flat index]`, with
/// `x` the one non-constant tensor the rotation reads.
struct Form {
  double constant = 0.0;
  SmallVector<std::pair<int64_t, double>, 2> terms;

  bool isConstant() const { return terms.empty(); }
  static Form number(double v) {
    Form f;
    f.constant = v;
    return f;
  }
  Form scaled(double s) const {
    Form f;
    f.constant = constant * s;
    for (auto [i, c] : terms)
      f.terms.push_back({i, c * s});
    return f;
  }
  Form plus(const Form &o) const {
    Form f = *this;
    f.constant += o.constant;
    for (const auto &term : o.terms) {
      auto *it = llvm::find_if(f.terms,
                               [&](auto &t) { return t.first == term.first; });
      if (it != f.terms.end())
        it->second += term.second;
      else
        f.terms.push_back(term);
    }
    return f;
  }
};

int64_t linearize(ArrayRef<int64_t> idx, ArrayRef<int64_t> shape) {
  int64_t flat = 0;
  for (auto [i, s] : llvm::zip(idx, shape))
    flat = flat * s + i;
  return flat;
}

SmallVector<int64_t> delinearize(int64_t flat, ArrayRef<int64_t> shape) {
  SmallVector<int64_t> idx(shape.size());
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return idx;
}

bool inBounds(ArrayRef<int64_t> idx, ArrayRef<int64_t> shape) {
  if (idx.size() != shape.size())
    return false;
  for (auto [i, s] : llvm::zip(idx, shape))
    if (i < 0 || i >= s)
      return false;
  return true;
}

/// A linalg op whose body only yields block arguments: a copy, transpose or
/// broadcast, which moves data instead of computing it.
bool movesOnly(linalg::LinalgOp op) {
  Block *body = op.getBlock();
  return llvm::hasSingleElement(body->getOperations()) &&
         llvm::all_of(body->getTerminator()->getOperands(),
                      [](Value v) { return isa<BlockArgument>(v); });
}

/// Evaluates tensors element by element as linear forms of one unknown
/// tensor `x`. Everything computable from constants (tables given as
/// constants or computed from constants and linalg.index) evaluates to
/// numbers; computing ops (elementwise linalg, arith on tensors, slices,
/// concatenations) are followed; the first value that is neither is `x`,
/// and every element must be linear in it.
class Evaluator {
public:
  explicit Evaluator(RankedTensorType xType) : xType(xType) {}

  std::optional<Form> eval(Value v, ArrayRef<int64_t> idx, bool allowVar,
                           int depth = 0) {
    auto type = dyn_cast<RankedTensorType>(v.getType());
    if (!type || !type.hasStaticShape() || !inBounds(idx, type.getShape()))
      return fail("a tensor without a static shape or read out of bounds");
    if (depth > kMaxDepth)
      return fail("the computation is too deep");
    if (auto table = constant(v))
      return Form::number((*table)[linearize(idx, type.getShape())]);
    if (v == x)
      return leaf(v, idx, allowVar);
    Operation *def = v.getDefiningOp();
    if (!def)
      return leaf(v, idx, allowVar);
    if (auto slice = dyn_cast<tensor::ExtractSliceOp>(def)) {
      auto isDynamic = [](int64_t v) { return ShapedType::isDynamic(v); };
      if (slice.getSourceType().getRank() != type.getRank() ||
          llvm::any_of(slice.getStaticOffsets(), isDynamic) ||
          llvm::any_of(slice.getStaticStrides(), isDynamic))
        return leaf(v, idx, allowVar);
      SmallVector<int64_t> src(idx.size());
      for (size_t d = 0; d < idx.size(); ++d)
        src[d] =
            slice.getStaticOffsets()[d] + idx[d] * slice.getStaticStrides()[d];
      return eval(slice.getSource(), src, allowVar, depth + 1);
    }
    if (auto concat = dyn_cast<tensor::ConcatOp>(def)) {
      int64_t dim = concat.getDim(), at = idx[dim];
      for (Value input : concat.getInputs()) {
        int64_t size = cast<RankedTensorType>(input.getType()).getDimSize(dim);
        if (at < size) {
          SmallVector<int64_t> src(idx);
          src[dim] = at;
          return eval(input, src, allowVar, depth + 1);
        }
        at -= size;
      }
      return fail("a concatenation read out of bounds");
    }
    if (isa<tensor::ExpandShapeOp, tensor::CollapseShapeOp>(def)) {
      Value src = def->getOperand(0);
      auto srcType = cast<RankedTensorType>(src.getType());
      if (!srcType.hasStaticShape())
        return leaf(v, idx, allowVar);
      SmallVector<int64_t> srcIdx =
          delinearize(linearize(idx, type.getShape()), srcType.getShape());
      return moved(v, src, srcIdx, idx, allowVar, depth);
    }
    if (auto linalgOp = dyn_cast<linalg::LinalgOp>(def))
      return evalLinalg(linalgOp, cast<OpResult>(v).getResultNumber(), v, idx,
                        allowVar, depth);
    if (def->hasTrait<OpTrait::Elementwise>() && def->getNumResults() == 1 &&
        llvm::all_of(def->getOperandTypes(), [&](Type t) {
          auto tt = dyn_cast<RankedTensorType>(t);
          return tt && tt.getShape() == type.getShape();
        })) {
      SmallVector<Form> args;
      for (Value operand : def->getOperands()) {
        auto f = eval(operand, idx, allowVar, depth + 1);
        if (!f)
          return std::nullopt;
        args.push_back(*f);
      }
      return apply(def, args);
    }
    return leaf(v, idx, allowVar);
  }

  Value x;
  std::string why;

private:
  static constexpr int kMaxDepth = 256;

  std::nullopt_t fail(StringRef reason) {
    if (why.empty())
      why = reason.str();
    return std::nullopt;
  }

  /// The elements of a dense constant, as doubles (cached).
  const std::vector<double> *constant(Value v) {
    if (auto it = constants.find(v); it != constants.end())
      return &it->second;
    DenseElementsAttr attr;
    if (!matchPattern(v, m_Constant(&attr)))
      return nullptr;
    std::vector<double> values;
    values.reserve(attr.getNumElements());
    if (isa<FloatType>(attr.getElementType())) {
      for (APFloat f : attr.getValues<APFloat>())
        values.push_back(f.convertToDouble());
    } else if (attr.getElementType().isIntOrIndex()) {
      for (APInt i : attr.getValues<APInt>())
        values.push_back(attr.getElementType().isInteger(1)
                             ? double(i.getBoolValue())
                             : double(i.getSExtValue()));
    } else {
      return nullptr;
    }
    return &constants.try_emplace(v, std::move(values)).first->second;
  }

  std::optional<Form> leaf(Value v, ArrayRef<int64_t> idx, bool allowVar) {
    if (!allowVar)
      return fail("not computable from constants");
    if (!x) {
      if (v.getType() != xType)
        return fail("the rotated tensor is not read in the result's shape");
      x = v;
    } else if (x != v) {
      return fail("the result reads more than one unknown tensor");
    }
    Form f;
    f.terms.push_back({linearize(idx, xType.getShape()), 1.0});
    return f;
  }

  /// `v` is `src` read at `srcIdx` by an op that only moves data: a number
  /// when `src` is computable from constants, else `v` is the unknown.
  std::optional<Form> moved(Value v, Value src, ArrayRef<int64_t> srcIdx,
                            ArrayRef<int64_t> idx, bool allowVar, int depth) {
    if (!variable.contains(v)) {
      std::string saved = why;
      auto f = eval(src, srcIdx, /*allowVar=*/false, depth + 1);
      if (f)
        return f;
      why = saved;
      variable.insert(v);
    }
    return leaf(v, idx, allowVar);
  }

  std::optional<Form> evalLinalg(linalg::LinalgOp op, unsigned resultIdx,
                                 Value v, ArrayRef<int64_t> idx, bool allowVar,
                                 int depth) {
    if (!op.hasPureTensorSemantics() ||
        op.getNumParallelLoops() != op.getNumLoops())
      return leaf(v, idx, allowVar);
    OpOperand *init = op.getDpsInitOperand(resultIdx);
    AffineMap outMap = op.getMatchingIndexingMap(init);
    if (!outMap.isPermutation())
      return leaf(v, idx, allowVar);
    SmallVector<int64_t> loops(op.getNumLoops());
    for (auto [k, e] : llvm::enumerate(outMap.getResults()))
      loops[cast<AffineDimExpr>(e).getPosition()] = idx[k];
    bool moves = movesOnly(op);
    if (moves && variable.contains(v))
      return leaf(v, idx, allowVar);
    // A copy/transpose/broadcast of unknown data makes its result the
    // unknown; only computing ops are looked into for it.
    bool inner = moves ? false : allowVar;
    Block *body = op.getBlock();
    DenseMap<Value, Form> values;
    auto read = [&](BlockArgument arg) -> std::optional<Form> {
      OpOperand *operand = op.getMatchingOpOperand(arg);
      Value source = operand->get();
      if (!isa<RankedTensorType>(source.getType())) {
        Attribute attr;
        std::optional<Form> f;
        if (matchPattern(source, m_Constant(&attr)))
          f = scalarConstant(attr);
        return f ? f : fail("a scalar operand is not a constant number");
      }
      SmallVector<int64_t> at =
          op.getMatchingIndexingMap(operand).compose(loops);
      return eval(source, at, inner, depth + 1);
    };
    for (Operation &inst : body->without_terminator()) {
      SmallVector<Form> args;
      if (auto index = dyn_cast<linalg::IndexOp>(inst)) {
        values[index] = Form::number(double(loops[index.getDim()]));
        continue;
      }
      if (auto extract = dyn_cast<tensor::ExtractOp>(inst)) {
        SmallVector<int64_t> at;
        for (Value i : extract.getIndices()) {
          auto it = values.find(i);
          std::optional<double> n;
          if (it != values.end() && it->second.isConstant())
            n = it->second.constant;
          else if (IntegerAttr attr; matchPattern(i, m_Constant(&attr)))
            n = double(attr.getInt());
          if (!n)
            return fail("a tensor.extract index is not computable");
          at.push_back(int64_t(*n));
        }
        auto f = eval(extract.getTensor(), at, inner, depth + 1);
        if (!f)
          return std::nullopt;
        values[extract.getResult()] = *f;
        continue;
      }
      if (Attribute attr; inst.getNumResults() == 1 &&
                          matchPattern(inst.getResult(0), m_Constant(&attr))) {
        auto f = scalarConstant(attr);
        if (!f)
          return fail("a constant in the body is not a number");
        values[inst.getResult(0)] = *f;
        continue;
      }
      for (Value operand : inst.getOperands()) {
        std::optional<Form> f;
        if (auto it = values.find(operand); it != values.end())
          f = it->second;
        else if (auto arg = dyn_cast<BlockArgument>(operand);
                 arg && arg.getOwner() == body)
          f = read(arg);
        else if (Attribute attr; matchPattern(operand, m_Constant(&attr)))
          f = scalarConstant(attr);
        if (!f)
          return fail("an operand of the body is not computable");
        args.push_back(*f);
      }
      if (inst.getNumResults() != 1)
        return fail("a body op with several results");
      auto r = apply(&inst, args);
      if (!r)
        return std::nullopt;
      values[inst.getResult(0)] = *r;
    }
    Value yielded = body->getTerminator()->getOperand(resultIdx);
    if (auto it = values.find(yielded); it != values.end())
      return it->second;
    if (auto arg = dyn_cast<BlockArgument>(yielded);
        arg && arg.getOwner() == body) {
      std::string saved = why;
      auto f = read(arg);
      if (f || !moves)
        return f;
      why = saved;
      variable.insert(v);
      return leaf(v, idx, allowVar);
    }
    if (Attribute attr; matchPattern(yielded, m_Constant(&attr)))
      return scalarConstant(attr);
    return fail("the body yields a value from outside");
  }

  static std::optional<Form> scalarConstant(Attribute attr) {
    if (auto f = dyn_cast<FloatAttr>(attr))
      return Form::number(f.getValueAsDouble());
    if (auto i = dyn_cast<IntegerAttr>(attr))
      return Form::number(i.getType().isInteger(1)
                              ? double(i.getValue().getBoolValue())
                              : double(i.getValue().getSExtValue()));
    return std::nullopt;
  }

  /// A scalar op on forms: linear ops on anything, the rest on numbers.
  std::optional<Form> apply(Operation *op, ArrayRef<Form> a) {
    auto num = [&](unsigned i) { return a[i].constant; };
    bool numbers =
        llvm::all_of(a, [](const Form &f) { return f.isConstant(); });
    if (isa<arith::AddFOp, arith::AddIOp>(op))
      return a[0].plus(a[1]);
    if (isa<arith::SubFOp, arith::SubIOp>(op))
      return a[0].plus(a[1].scaled(-1.0));
    if (isa<arith::NegFOp>(op))
      return a[0].scaled(-1.0);
    if (isa<arith::MulFOp, arith::MulIOp>(op)) {
      if (a[0].isConstant())
        return a[1].scaled(num(0));
      if (a[1].isConstant())
        return a[0].scaled(num(1));
      return fail("a product of two unknown values (not a rotation)");
    }
    if (isa<arith::DivFOp>(op)) {
      if (a[1].isConstant() && num(1) != 0.0)
        return a[0].scaled(1.0 / num(1));
      return fail("a division by an unknown value");
    }
    // Float width changes keep the value (as the attention matcher reads
    // them).
    if (isa<arith::ExtFOp, arith::TruncFOp>(op))
      return a[0];
    if (isa<arith::SelectOp>(op)) {
      if (!a[0].isConstant())
        return fail("a select on an unknown condition");
      return num(0) != 0.0 ? a[1] : a[2];
    }
    if (!numbers)
      return fail("an unknown value goes through a non-linear op");
    if (isa<arith::SIToFPOp, arith::UIToFPOp, arith::IndexCastOp,
            arith::IndexCastUIOp, arith::ExtSIOp, arith::ExtUIOp>(op))
      return a[0];
    if (isa<arith::FPToSIOp>(op))
      return Form::number(std::trunc(num(0)));
    auto integer = [&](unsigned i) { return int64_t(num(i)); };
    if (isa<arith::DivSIOp, arith::DivUIOp, arith::RemSIOp, arith::RemUIOp,
            arith::FloorDivSIOp>(op)) {
      if (integer(1) == 0)
        return fail("an integer division by zero");
      int64_t q = integer(0) / integer(1), r = integer(0) % integer(1);
      if (isa<arith::RemSIOp, arith::RemUIOp>(op))
        return Form::number(double(r));
      if (isa<arith::FloorDivSIOp>(op) && r != 0 &&
          ((r < 0) != (integer(1) < 0)))
        --q;
      return Form::number(double(q));
    }
    if (auto cmp = dyn_cast<arith::CmpIOp>(op)) {
      int64_t l = integer(0), r = integer(1);
      bool v = false;
      switch (cmp.getPredicate()) {
      case arith::CmpIPredicate::eq:
        v = l == r;
        break;
      case arith::CmpIPredicate::ne:
        v = l != r;
        break;
      case arith::CmpIPredicate::slt:
      case arith::CmpIPredicate::ult:
        v = l < r;
        break;
      case arith::CmpIPredicate::sle:
      case arith::CmpIPredicate::ule:
        v = l <= r;
        break;
      case arith::CmpIPredicate::sgt:
      case arith::CmpIPredicate::ugt:
        v = l > r;
        break;
      case arith::CmpIPredicate::sge:
      case arith::CmpIPredicate::uge:
        v = l >= r;
        break;
      }
      return Form::number(v ? 1.0 : 0.0);
    }
    if (isa<math::CosOp>(op))
      return Form::number(std::cos(num(0)));
    if (isa<math::SinOp>(op))
      return Form::number(std::sin(num(0)));
    if (isa<math::ExpOp>(op))
      return Form::number(std::exp(num(0)));
    if (isa<math::LogOp>(op))
      return Form::number(std::log(num(0)));
    if (isa<math::PowFOp>(op))
      return Form::number(std::pow(num(0), num(1)));
    if (isa<math::SqrtOp>(op))
      return Form::number(std::sqrt(num(0)));
    if (isa<math::RsqrtOp>(op))
      return Form::number(1.0 / std::sqrt(num(0)));
    if (isa<arith::MaximumFOp, arith::MaxNumFOp, arith::MaxSIOp>(op))
      return Form::number(std::max(num(0), num(1)));
    if (isa<arith::MinimumFOp, arith::MinNumFOp, arith::MinSIOp>(op))
      return Form::number(std::min(num(0), num(1)));
    return fail(("'" + op->getName().getStringRef() +
                 "' is not understood in a rotation")
                    .str());
  }

  RankedTensorType xType;
  DenseMap<Value, std::vector<double>> constants;
  /// Values known not to be computable from constants.
  DenseSet<Value> variable;
};

/// A proven rotation: result = kv.rope(x, positions) {theta}.
struct RopeMatch {
  Value x;
  double theta = 0.0;
};

/// The angle tolerance: f32 rounding of the tables and of angles computed
/// in f32 (a few ulps of the angle).
double tolerance(double angle) { return 2.0e-6 + 2.5e-7 * std::fabs(angle); }

constexpr double kTwoPi = 6.283185307179586;

/// Infers theta from the (cos, sin) coefficients of the token at position
/// `p > 0` (frequency index i = 0 .. D/2 - 1): the lowest frequency's
/// angle is taken in [0, 2π), each higher frequency is unwrapped towards
/// the angle the estimate so far predicts and refines it.
std::optional<double> inferTheta(ArrayRef<double> cosines,
                                 ArrayRef<double> sines, double p,
                                 int64_t dim) {
  int64_t half = dim / 2;
  std::optional<double> theta;
  for (int64_t i = half - 1; i >= 1; --i) {
    double measured = std::atan2(sines[i], cosines[i]);
    double angle;
    if (!theta) {
      angle = measured < 0 ? measured + kTwoPi : measured;
    } else {
      double predicted = p * std::pow(*theta, -2.0 * double(i) / double(dim));
      angle = measured + kTwoPi * std::round((predicted - measured) / (kTwoPi));
    }
    if (!(angle > 0.0) || angle >= p)
      return std::nullopt;
    // angle = p * theta^(-2i/D)  =>  theta = (p / angle)^(D / 2i).
    theta = std::pow(p / angle, double(dim) / (2.0 * double(i)));
    if (!std::isfinite(*theta))
      return std::nullopt;
  }
  return theta;
}

struct RaiseRopePass : public kvopt::impl::KVRaiseRopeBase<RaiseRopePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (maxElements <= 0) {
      module.emitError() << "kv-raise-rope: option 'max-elements' must be "
                            "positive, got "
                         << int64_t(maxElements);
      return signalPassFailure();
    }
    // Candidates: rank-4 results read as kv.rope's input would be (keys
    // appended to a cache, queries of kv.attention).
    SmallVector<Value> candidates;
    module.walk([&](Operation *op) {
      if (auto append = dyn_cast<AppendOp>(op)) {
        if (isa<CacheType>(append.getCache().getType()) &&
            !append.getRopeTheta())
          candidates.push_back(append.getKeys());
      } else if (auto attention = dyn_cast<AttentionOp>(op)) {
        candidates.push_back(attention.getQueries());
      }
    });
    DenseSet<Value> seen;
    for (Value v : candidates)
      if (seen.insert(v).second)
        raise(v);
  }

  void raise(Value result) {
    Operation *def = result.getDefiningOp();
    // Only values computed here can be a written-out rotation; a plain
    // copy or transpose is not one.
    auto linalgOp = dyn_cast_or_null<linalg::LinalgOp>(def);
    if (!def || (linalgOp && movesOnly(linalgOp)) ||
        (!linalgOp && !def->hasTrait<OpTrait::Elementwise>()))
      return;
    std::string why;
    FailureOr<SmallVector<int64_t>> start = positionsOf(result, why);
    FailureOr<RopeMatch> match = failure();
    if (succeeded(start))
      match = matchRope(result, *start, why);
    if (failed(match)) {
      if (emitRemarks && !why.empty())
        def->emitRemark() << "kv-raise-rope: not raised: " << why;
      return;
    }
    OpBuilder b(def);
    b.setInsertionPointAfter(def);
    Location loc = def->getLoc();
    auto posType =
        RankedTensorType::get({int64_t(start->size())}, b.getI32Type());
    SmallVector<int32_t> narrow(start->begin(), start->end());
    Value pos = arith::ConstantOp::create(
        b, loc, DenseElementsAttr::get(posType, ArrayRef<int32_t>(narrow)));
    auto rope = RopeOp::create(b, loc, result.getType(), match->x, pos,
                               b.getF64FloatAttr(match->theta));
    result.replaceAllUsesWith(rope.getResult());
    raise::eraseDeadOps({def});
  }

  /// The position of token 0 of each sequence, from the kv ops `result`
  /// feeds: an append's positions (keys), or `seq_lens - Tq` (queries of
  /// kv.attention).
  FailureOr<SmallVector<int64_t>> positionsOf(Value result, std::string &why) {
    auto type = cast<RankedTensorType>(result.getType());
    std::optional<SmallVector<int64_t>> found;
    for (OpOperand &use : result.getUses()) {
      Operation *user = use.getOwner();
      Value source;
      int64_t shift = 0;
      if (auto append = dyn_cast<AppendOp>(user);
          append && &use == &append.getKeysMutable()) {
        source = append.getPositions();
      } else if (auto attention = dyn_cast<AttentionOp>(user);
                 attention && &use == &attention.getQueriesMutable()) {
        source = attention.getSeqLens();
        shift = type.getRank() == 4 ? type.getDimSize(2) : 0;
      } else {
        continue;
      }
      DenseIntElementsAttr attr;
      if (!matchPattern(source, m_Constant(&attr))) {
        why = "the positions of the rotated tokens are not constants";
        return failure();
      }
      SmallVector<int64_t> pos;
      for (APInt p : attr.getValues<APInt>())
        pos.push_back(p.getSExtValue() - shift);
      if (found && *found != pos) {
        why = "the kv ops reading the rotation imply different positions";
        return failure();
      }
      found = pos;
    }
    if (!found) {
      why = "the rotation feeds no kv.append keys or kv.attention queries "
            "(positions unknown)";
      return failure();
    }
    if (llvm::any_of(*found, [](int64_t p) {
          return p < 0 || p > std::numeric_limits<int32_t>::max();
        })) {
      why = "positions outside [0, 2^31)";
      return failure();
    }
    return *found;
  }

  /// Proves `result[b, h, t, d]` is kv.rope(x) at `positions` and infers
  /// theta.
  FailureOr<RopeMatch> matchRope(Value result, ArrayRef<int64_t> start,
                                 std::string &why) {
    auto type = cast<RankedTensorType>(result.getType());
    if (type.getRank() != 4 || !type.hasStaticShape() ||
        !isa<FloatType>(type.getElementType())) {
      why = "not a static [B, H, T, D] float tensor";
      return failure();
    }
    ArrayRef<int64_t> shape = type.getShape();
    int64_t dim = shape[3], half = dim / 2;
    if (dim % 2 != 0 || dim < 4) {
      why = "the head dim is odd or smaller than 4";
      return failure();
    }
    if (type.getNumElements() > maxElements) {
      why = "the tensor has more elements than 'max-elements' (" +
            std::to_string(int64_t(maxElements)) + ")";
      return failure();
    }
    if (int64_t(start.size()) != shape[0]) {
      why = "the positions are not one per sequence";
      return failure();
    }

    // cos and sin coefficients at every point.
    int64_t n = type.getNumElements();
    std::vector<double> cosines(n), sines(n);
    Evaluator eval(type);
    for (int64_t flat = 0; flat < n; ++flat) {
      SmallVector<int64_t> idx = delinearize(flat, shape);
      std::optional<Form> f = eval.eval(result, idx, /*allowVar=*/true);
      if (!f) {
        why = eval.why.empty() ? "the result is not linear in one tensor"
                               : eval.why;
        return failure();
      }
      if (f->constant != 0.0 || !eval.x) {
        why = "the result adds a constant to the rotation";
        return failure();
      }
      int64_t d = idx[3], partner = d < half ? d + half : d - half;
      double c = 0.0, s = 0.0;
      for (auto [at, coefficient] : f->terms) {
        SmallVector<int64_t> xi = delinearize(at, shape);
        if (xi[0] != idx[0] || xi[1] != idx[1] || xi[2] != idx[2] ||
            (xi[3] != d && xi[3] != partner)) {
          why = "element " + std::to_string(flat) +
                " mixes elements other than the rotate-half pair (i, i + D/2) "
                "of one token";
          return failure();
        }
        if (xi[3] == d)
          c = coefficient;
        else
          s = d < half ? -coefficient : coefficient;
      }
      cosines[flat] = c;
      sines[flat] = s;
    }

    // Nothing reads a rotate-half partner: not a rotation (a scaling or
    // other elementwise op), nothing to say.
    if (llvm::all_of(sines, [](double v) { return v == 0.0; })) {
      why.clear();
      return failure();
    }

    // Theta from the token with the largest position.
    int64_t best = -1, bestPos = 0;
    for (int64_t b = 0; b < shape[0]; ++b)
      for (int64_t t = 0; t < shape[2]; ++t)
        if (start[b] + t > bestPos) {
          bestPos = start[b] + t;
          best = linearize({b, 0, t, 0}, shape);
        }
    if (best < 0) {
      why = "every token is at position 0, which does not determine theta";
      return failure();
    }
    std::optional<double> theta = inferTheta(
        ArrayRef<double>(cosines).slice(best, half),
        ArrayRef<double>(sines).slice(best, half), double(bestPos), dim);
    if (!theta) {
      why = "the coefficients are not cos/sin of p * theta^(-2i/D) for any "
            "theta";
      return failure();
    }
    auto verify = [&](double th, int64_t &bad) {
      for (int64_t flat = 0; flat < n; ++flat) {
        SmallVector<int64_t> idx = delinearize(flat, shape);
        double p = double(start[idx[0]] + idx[2]);
        int64_t i = idx[3] % half;
        double angle = p * std::pow(th, -2.0 * double(i) / double(dim));
        double tol = tolerance(angle);
        if (std::fabs(cosines[flat] - std::cos(angle)) > tol ||
            std::fabs(sines[flat] - std::sin(angle)) > tol) {
          bad = flat;
          return false;
        }
      }
      return true;
    };
    // Prefer the nearest whole theta (10000, 500000, ...) when it fits.
    int64_t bad = 0;
    double rounded = std::round(*theta);
    if (rounded > 0 && std::fabs(rounded - *theta) <= 1e-3 * *theta &&
        verify(rounded, bad)) {
      theta = rounded;
    } else if (!verify(*theta, bad)) {
      SmallVector<int64_t> idx = delinearize(bad, shape);
      why = "the coefficients are not cos/sin of p * theta^(-2i/D) (theta ~ " +
            std::to_string(*theta) + ") at element [" + std::to_string(idx[0]) +
            ", " + std::to_string(idx[1]) + ", " + std::to_string(idx[2]) +
            ", " + std::to_string(idx[3]) + "] (position " +
            std::to_string(start[idx[0]] + idx[2]) + ")";
      return failure();
    }
    return RopeMatch{eval.x, *theta};
  }
};

} // namespace
