//===- AttentionMatcher.cpp - find attention in linalg model graphs ------===//
//
// Proves that a P·V contraction computes softmax(scale · Q·Kᵀ + mask) · V.
// Elementwise and reduction code between the two contractions is read as an
// expression tree (whatever way it is split into linalg ops), and layout
// ops on q, K and V are followed as mixed-radix digits of the attention's
// loops, so that head repetition and [B*H, T, D] reshapes are proven, not
// assumed.
//
//===----------------------------------------------------------------------===//

#include "AttentionMatcher.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/LinalgInterfaces.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Utils/ReshapeOpsUtils.h"
#include "mlir/IR/Matchers.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/SmallBitVector.h"

#include <cmath>
#include <deque>

using namespace mlir;
using namespace kvopt::raise;

namespace {

//===----------------------------------------------------------------------===//
// Digits
//===----------------------------------------------------------------------===//

/// Drops extent-1 digits and merges adjacent digits of one role that form
/// a contiguous range, so that equal index functions compare equal.
DimDigits normalize(ArrayRef<Digit> digits) {
  DimDigits out;
  for (Digit d : digits) {
    if (d.extent == 1)
      continue;
    if (!out.empty() && out.back().role == d.role &&
        out.back().stride == d.stride * d.extent) {
      out.back() = {d.role, d.stride, out.back().extent * d.extent};
      continue;
    }
    out.push_back(d);
  }
  return out;
}

/// Splits the digits of one dimension over the dimensions of `sizes`
/// (outer to inner), as a collapse_shape's source group sees them.
std::optional<Layout> splitDigits(ArrayRef<Digit> dim,
                                  ArrayRef<int64_t> sizes) {
  SmallVector<Digit> rest(dim.begin(), dim.end());
  Layout out(sizes.size());
  for (int64_t g = int64_t(sizes.size()) - 1; g >= 0; --g) {
    int64_t need = sizes[g];
    if (ShapedType::isDynamic(need))
      return std::nullopt;
    while (need > 1) {
      if (rest.empty())
        return std::nullopt;
      Digit d = rest.back();
      if (d.extent <= need) {
        if (need % d.extent)
          return std::nullopt;
        out[g].insert(out[g].begin(), d);
        need /= d.extent;
        rest.pop_back();
      } else {
        if (d.extent % need)
          return std::nullopt;
        out[g].insert(out[g].begin(), Digit{d.role, d.stride, need});
        rest.back() = Digit{d.role, d.stride * need, d.extent / need};
        need = 1;
      }
    }
  }
  if (!rest.empty())
    return std::nullopt;
  return out;
}

//===----------------------------------------------------------------------===//
// Expression trees
//===----------------------------------------------------------------------===//

/// One node of the elementwise/reduction computation that produces a
/// tensor, evaluated at a point of an iteration space (the attention
/// scores' dimensions).
struct Expr {
  enum Kind {
    Leaf,   // `value` read at `map(point)`
    Scalar, // a constant
    Acc,    // the accumulator of the reduction being built
    Exp,
    Neg,
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Select,
    ReduceAdd, // sum over the reduced dimension of args[0], from `init`
    ReduceMax,
    Opaque // anything else; args are its operands
  } kind;
  Value value;
  AffineMap map;
  double number = 0.0;
  SmallVector<const Expr *, 3> args;
  const Expr *init = nullptr;
};

/// The constant value of a scalar or splat constant, if `v` is one.
std::optional<double> scalarOf(Value v) {
  Attribute attr;
  if (!matchPattern(v, m_Constant(&attr)))
    return std::nullopt;
  if (auto dense = dyn_cast<DenseElementsAttr>(attr)) {
    if (!dense.isSplat())
      return std::nullopt;
    attr = dense.getSplatValue<Attribute>();
  }
  if (auto f = dyn_cast<FloatAttr>(attr))
    return f.getValueAsDouble();
  if (auto i = dyn_cast<IntegerAttr>(attr))
    return i.getType().isInteger(1) ? double(i.getValue().getBoolValue())
                                    : double(i.getValue().getSExtValue());
  return std::nullopt;
}

bool isContraction(Operation *op) {
  auto linalgOp = dyn_cast_or_null<linalg::LinalgOp>(op);
  return linalgOp && linalg::isaContractionOpInterface(linalgOp);
}

/// Builds expression trees. Reductions are only understood over space
/// dimension `reduced` (the keys); everything a tree cannot express becomes
/// a Leaf or an Opaque node, never a failure.
class ExprBuilder {
public:
  explicit ExprBuilder(int64_t reduced) : reduced(reduced) {}

  static constexpr int kUnlimited = 1 << 20;

  /// `value` read at `map(point)`, expanding at most `depth` ops.
  const Expr *build(Value value, AffineMap map, int depth) {
    if (auto number = scalarOf(value))
      return scalar(*number);
    if (depth <= 0 || ++expanded > kMaxExpanded)
      return leaf(value, map);
    Operation *def = value.getDefiningOp();
    if (!def)
      return leaf(value, map);
    if (isa<RankedTensorType>(value.getType()) &&
        def->hasTrait<OpTrait::Elementwise>() && def->getNumResults() == 1 &&
        llvm::all_of(def->getOperandTypes(), [&](Type t) {
          auto tt = dyn_cast<RankedTensorType>(t);
          return tt && tt.getShape() ==
                           cast<RankedTensorType>(value.getType()).getShape();
        })) {
      SmallVector<const Expr *> args;
      for (Value operand : def->getOperands())
        args.push_back(build(operand, map, depth - 1));
      return node(def, args);
    }
    if (auto softmax = dyn_cast<linalg::SoftmaxOp>(def))
      return buildSoftmax(softmax, map, depth);
    if (auto linalgOp = dyn_cast<linalg::LinalgOp>(def)) {
      if (isContraction(def))
        return leaf(value, map);
      return buildLinalg(linalgOp, cast<OpResult>(value).getResultNumber(), map,
                         depth);
    }
    return leaf(value, map);
  }

  const Expr *scalar(double number) {
    Expr &e = make(Expr::Scalar);
    e.number = number;
    return &e;
  }

  const Expr *make(Expr::Kind kind, ArrayRef<const Expr *> args,
                   const Expr *init = nullptr) {
    Expr &e = make(kind);
    e.args.assign(args.begin(), args.end());
    e.init = init;
    return &e;
  }

private:
  static constexpr int kMaxExpanded = 4096;

  Expr &make(Expr::Kind kind) {
    arena.emplace_back();
    arena.back().kind = kind;
    return arena.back();
  }

  const Expr *leaf(Value value, AffineMap map) {
    Expr &e = make(Expr::Leaf);
    e.value = value;
    e.map = map;
    return &e;
  }

  /// The node for scalar or elementwise op `op` on `args`, folding
  /// constants and looking through float casts.
  const Expr *node(Operation *op, ArrayRef<const Expr *> args) {
    auto allScalar = llvm::all_of(
        args, [](const Expr *e) { return e->kind == Expr::Scalar; });
    auto num = [&](unsigned i) { return args[i]->number; };
    if (isa<arith::ExtFOp, arith::TruncFOp>(op))
      return args[0];
    if (isa<arith::SelectOp>(op) && args[0]->kind == Expr::Scalar)
      return num(0) != 0.0 ? args[1] : args[2];
    Expr::Kind kind = Expr::Opaque;
    if (isa<arith::AddFOp>(op))
      kind = Expr::Add;
    else if (isa<arith::SubFOp>(op))
      kind = Expr::Sub;
    else if (isa<arith::MulFOp>(op))
      kind = Expr::Mul;
    else if (isa<arith::DivFOp>(op))
      kind = Expr::Div;
    else if (isa<arith::MaximumFOp, arith::MaxNumFOp>(op))
      kind = Expr::Max;
    else if (isa<arith::NegFOp>(op))
      kind = Expr::Neg;
    else if (isa<math::ExpOp>(op))
      kind = Expr::Exp;
    else if (isa<arith::SelectOp>(op))
      kind = Expr::Select;
    if (allScalar && !args.empty()) {
      switch (kind) {
      case Expr::Add:
        return scalar(num(0) + num(1));
      case Expr::Sub:
        return scalar(num(0) - num(1));
      case Expr::Mul:
        return scalar(num(0) * num(1));
      case Expr::Div:
        return scalar(num(0) / num(1));
      case Expr::Max:
        return scalar(std::max(num(0), num(1)));
      case Expr::Neg:
        return scalar(-num(0));
      case Expr::Exp:
        return scalar(std::exp(num(0)));
      default:
        break;
      }
      if (isa<math::SqrtOp>(op))
        return scalar(std::sqrt(num(0)));
      if (isa<math::RsqrtOp>(op))
        return scalar(1.0 / std::sqrt(num(0)));
    }
    return make(kind, args);
  }

  /// linalg.softmax, spelled out as exp(x - max x) / sum exp(x - max x).
  const Expr *buildSoftmax(linalg::SoftmaxOp op, AffineMap map, int depth) {
    int64_t dim = op.getDimension();
    const Expr *x = build(op.getInput(), map, depth - 1);
    // A softmax over another dimension: opaque, but its input still shows.
    auto opaque = [&] {
      Expr &e = make(Expr::Opaque);
      e.args.push_back(x);
      e.value = op.getResult()[0];
      return &e;
    };
    if (reduced < 0 || dim >= int64_t(map.getNumResults()) ||
        map.getResult(dim) != getAffineDimExpr(reduced, op.getContext()))
      return opaque();
    for (auto [i, e] : llvm::enumerate(map.getResults()))
      if (int64_t(i) != dim && e.isFunctionOfDim(reduced))
        return opaque();
    const Expr *max = make(Expr::ReduceMax, {x},
                           scalar(-std::numeric_limits<double>::infinity()));
    const Expr *e = make(Expr::Exp, {make(Expr::Sub, {x, max})});
    return make(Expr::Div, {e, make(Expr::ReduceAdd, {e}, scalar(0.0))});
  }

  /// Result `resultIdx` of a non-contraction linalg op, read at `map`.
  const Expr *buildLinalg(linalg::LinalgOp op, unsigned resultIdx,
                          AffineMap map, int depth) {
    Value result = op->getResult(resultIdx);
    if (!op.hasPureTensorSemantics())
      return leaf(result, map);
    MLIRContext *ctx = op.getContext();
    OpOperand *init = op.getDpsInitOperand(resultIdx);
    AffineMap outMap = op.getMatchingIndexingMap(init);
    if (!outMap.isProjectedPermutation() ||
        outMap.getNumResults() != map.getNumResults())
      return leaf(result, map);
    SmallVector<AffineExpr> loopPoint(op.getNumLoops());
    for (auto [k, e] : llvm::enumerate(outMap.getResults()))
      loopPoint[cast<AffineDimExpr>(e).getPosition()] = map.getResult(k);
    SmallVector<unsigned> reductions;
    op.getReductionDims(reductions);
    if (reductions.size() > 1)
      return leaf(result, map);
    bool reduces = reductions.size() == 1;
    if (reduces) {
      if (reduced < 0 || map.isFunctionOfDim(reduced))
        return leaf(result, map);
      loopPoint[reductions[0]] = getAffineDimExpr(reduced, ctx);
    }
    if (llvm::any_of(loopPoint, [](AffineExpr e) { return !e; }))
      return leaf(result, map);
    AffineMap loopMap = AffineMap::get(map.getNumDims(), 0, loopPoint, ctx);

    Block *body = op.getBlock();
    DenseMap<Value, const Expr *> memo;
    std::function<const Expr *(Value)> eval = [&](Value v) -> const Expr * {
      if (auto it = memo.find(v); it != memo.end())
        return it->second;
      const Expr *e = nullptr;
      if (auto number = scalarOf(v)) {
        e = scalar(*number);
      } else if (auto arg = dyn_cast<BlockArgument>(v);
                 arg && arg.getOwner() == body) {
        OpOperand *operand = op.getMatchingOpOperand(arg);
        Type type = operand->get().getType();
        if (!isa<RankedTensorType>(type)) {
          auto number = scalarOf(operand->get());
          e = number ? scalar(*number) : make(Expr::Opaque, {});
        } else if (op.isDpsInit(operand)) {
          if (reduces && operand == init)
            e = make(Expr::Acc, {});
          else if (reduces)
            e = make(Expr::Opaque, {});
          else
            e = build(operand->get(),
                      op.getMatchingIndexingMap(operand).compose(loopMap),
                      depth - 1);
        } else {
          e = build(operand->get(),
                    op.getMatchingIndexingMap(operand).compose(loopMap),
                    depth - 1);
        }
      } else if (Operation *def = v.getDefiningOp();
                 def && def->getBlock() == body) {
        SmallVector<const Expr *> args;
        if (!isa<linalg::IndexOp>(def))
          for (Value operand : def->getOperands())
            args.push_back(eval(operand));
        e = def->getNumResults() == 1 ? node(def, args)
                                      : make(Expr::Opaque, args);
      } else {
        auto number = scalarOf(v);
        e = number ? scalar(*number) : make(Expr::Opaque, {});
      }
      memo[v] = e;
      return e;
    };
    const Expr *yielded = eval(body->getTerminator()->getOperand(resultIdx));
    if (!reduces)
      return yielded;
    // A reduction must yield combine(acc, x) with x free of acc.
    auto isAcc = [](const Expr *e) { return e->kind == Expr::Acc; };
    if ((yielded->kind != Expr::Add && yielded->kind != Expr::Max) ||
        yielded->args.size() != 2)
      return make(Expr::Opaque, {yielded});
    const Expr *x = nullptr;
    if (isAcc(yielded->args[0]))
      x = yielded->args[1];
    else if (isAcc(yielded->args[1]))
      x = yielded->args[0];
    if (!x || containsAcc(x))
      return make(Expr::Opaque, {yielded});
    const Expr *initExpr = build(init->get(), map, depth - 1);
    return make(yielded->kind == Expr::Add ? Expr::ReduceAdd : Expr::ReduceMax,
                {x}, initExpr);
  }

  static bool containsAcc(const Expr *e) {
    if (e->kind == Expr::Acc)
      return true;
    return llvm::any_of(e->args, containsAcc) ||
           (e->init && containsAcc(e->init));
  }

  int64_t reduced;
  int expanded = 0;
  std::deque<Expr> arena;
};

/// Structural equality of trees.
bool equal(const Expr *a, const Expr *b) {
  if (a == b)
    return true;
  if (a->kind != b->kind || a->args.size() != b->args.size())
    return false;
  switch (a->kind) {
  case Expr::Leaf:
    return a->value == b->value && a->map == b->map;
  case Expr::Scalar:
    return a->number == b->number;
  case Expr::Opaque:
  case Expr::Acc:
    return false;
  default:
    break;
  }
  for (auto [x, y] : llvm::zip(a->args, b->args))
    if (!equal(x, y))
      return false;
  if (bool(a->init) != bool(b->init))
    return false;
  return !a->init || equal(a->init, b->init);
}

/// Whether `e` may vary along space dimension `dim`.
bool dependsOn(const Expr *e, unsigned dim) {
  switch (e->kind) {
  case Expr::Scalar:
    return false;
  case Expr::Leaf:
    return !e->map || e->map.isFunctionOfDim(dim);
  case Expr::ReduceAdd:
  case Expr::ReduceMax:
    return e->init && dependsOn(e->init, dim);
  case Expr::Opaque:
  case Expr::Acc:
    return true;
  default:
    return llvm::any_of(e->args,
                        [&](const Expr *a) { return dependsOn(a, dim); });
  }
}

/// Calls `fn` on every leaf.
void forEachLeaf(const Expr *e, llvm::function_ref<void(const Expr *)> fn) {
  if (e->kind == Expr::Leaf)
    fn(e);
  for (const Expr *a : e->args)
    forEachLeaf(a, fn);
  if (e->init)
    forEachLeaf(e->init, fn);
}

/// Matches `softmax(x)` over dimension `dim`: exp(x - m) / sum exp(x - m)
/// with m constant along `dim` (softmax does not depend on it; the row
/// maximum is the usual choice) or no m. Returns x.
const Expr *matchSoftmax(const Expr *p, unsigned dim, std::string &why) {
  const Expr *num = nullptr, *den = nullptr;
  if (p->kind == Expr::Div) {
    num = p->args[0];
    den = p->args[1];
  } else if (p->kind == Expr::Mul) {
    for (int i = 0; i < 2 && !den; ++i) {
      const Expr *r = p->args[i];
      if (r->kind == Expr::Div && r->args[0]->kind == Expr::Scalar &&
          r->args[0]->number == 1.0) {
        den = r->args[1];
        num = p->args[1 - i];
      }
    }
  }
  if (p->kind == Expr::Opaque && p->value &&
      p->value.getDefiningOp<linalg::SoftmaxOp>()) {
    why = "the softmax does not run over the keys";
    return nullptr;
  }
  if (!num || num->kind != Expr::Exp) {
    why = "the attention weights are not a softmax (exp(x - max) / sum)";
    return nullptr;
  }
  if (den->kind != Expr::ReduceAdd || !equal(den->args[0], num) || !den->init ||
      den->init->kind != Expr::Scalar || den->init->number != 0.0) {
    why = "the softmax denominator is not the sum of its numerators over "
          "the keys";
    return nullptr;
  }
  const Expr *arg = num->args[0];
  if (arg->kind == Expr::Sub && !dependsOn(arg->args[1], dim))
    return arg->args[0];
  return arg;
}

/// The dense constant behind a leaf, if any.
DenseElementsAttr constantOf(const Expr *e) {
  if (e->kind != Expr::Leaf)
    return {};
  DenseElementsAttr attr;
  if (!matchPattern(e->value, m_Constant(&attr)))
    return {};
  return attr;
}

/// Threshold below which an additive mask entry counts as "-inf".
constexpr double kMaskedBelow = -1.0e4;

/// The scores side: scale · (S + mask) in any order and fusion.
struct ScoresForm {
  const Expr *scores = nullptr;
  double scale = 1.0;
  const Expr *mask = nullptr; // additive constant or i1 select condition
  bool selectMask = false;    // mask is an i1 condition
  bool trueMeansVisible = true;
};

LogicalResult peelScores(const Expr *x, ScoresForm &form, std::string &why) {
  while (true) {
    auto scalarArg = [&](int i) {
      return x->args.size() > size_t(i) && x->args[i]->kind == Expr::Scalar;
    };
    if (x->kind == Expr::Mul && (scalarArg(0) || scalarArg(1))) {
      int s = scalarArg(0) ? 0 : 1;
      form.scale *= x->args[s]->number;
      x = x->args[1 - s];
    } else if (x->kind == Expr::Div && scalarArg(1)) {
      form.scale /= x->args[1]->number;
      x = x->args[0];
    } else if ((x->kind == Expr::Add || x->kind == Expr::Sub) &&
               (scalarArg(1) || (x->kind == Expr::Add && scalarArg(0)))) {
      // A constant shift of every score leaves softmax unchanged.
      int s = scalarArg(1) ? 1 : 0;
      if (!std::isfinite(x->args[s]->number)) {
        why = "the scores are shifted by a non-finite constant";
        return failure();
      }
      x = x->args[1 - s];
    } else if (x->kind == Expr::Add &&
               (constantOf(x->args[0]) || constantOf(x->args[1]))) {
      if (form.mask) {
        why = "more than one mask is applied to the scores";
        return failure();
      }
      int m = constantOf(x->args[0]) ? 0 : 1;
      form.mask = x->args[m];
      form.selectMask = false;
      x = x->args[1 - m];
    } else if (x->kind == Expr::Select && constantOf(x->args[0]) &&
               (scalarArg(1) || scalarArg(2))) {
      if (form.mask) {
        why = "more than one mask is applied to the scores";
        return failure();
      }
      int fill = scalarArg(2) ? 2 : 1;
      if (!(x->args[fill]->number <= kMaskedBelow)) {
        why = "the select mask fills masked scores with a value that is "
              "not very negative";
        return failure();
      }
      form.mask = x->args[0];
      form.selectMask = true;
      form.trueMeansVisible = fill == 2;
      x = x->args[fill == 2 ? 1 : 2];
    } else {
      break;
    }
  }
  if (x->kind != Expr::Leaf || !isContraction(x->value.getDefiningOp())) {
    why = "the softmax input is not scale * Q·Kᵀ + mask";
    return failure();
  }
  if (!x->map.isIdentity()) {
    why = "the softmax does not run over the keys of Q·Kᵀ";
    return failure();
  }
  if (!(form.scale > 0.0) || !std::isfinite(form.scale)) {
    why = "the attention scale is not positive";
    return failure();
  }
  form.scores = x;
  return success();
}

/// Reads a mask constant as a visibility matrix [qLen][kvLen] and infers
/// causal / window / sinks that produce exactly it.
LogicalResult verifyMask(const ScoresForm &form, unsigned qDim, unsigned kDim,
                         int64_t qLen, int64_t kvLen, MaskInfo &info,
                         std::string &why) {
  DenseElementsAttr attr = constantOf(form.mask);
  AffineMap map = form.mask->map;
  auto type = cast<RankedTensorType>(attr.getType());
  if (type.getNumElements() > (int64_t(1) << 26)) {
    why = "the mask constant is too large to verify";
    return failure();
  }
  // Which mask dimension holds the query / key index (-1: broadcast).
  int64_t qAt = -1, kAt = -1;
  for (auto [i, e] : llvm::enumerate(map.getResults())) {
    if (auto d = dyn_cast<AffineDimExpr>(e)) {
      if (d.getPosition() == qDim)
        qAt = i;
      if (d.getPosition() == kDim)
        kAt = i;
    } else if (auto c = dyn_cast<AffineConstantExpr>(e);
               !c || c.getValue() != 0 || type.getDimSize(i) != 1) {
      why = "the mask is not indexed by the score dimensions";
      return failure();
    }
  }
  // -1: unknown yet, 0: masked, 1: visible.
  std::vector<int8_t> vis(size_t(qLen * kvLen), -1);
  ArrayRef<int64_t> shape = type.getShape();
  SmallVector<int64_t> strides(shape.size(), 1);
  for (int64_t i = int64_t(shape.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * shape[i + 1];
  auto record = [&](int64_t i, int64_t j, bool visible) {
    int8_t &slot = vis[size_t(i * kvLen + j)];
    if (slot != -1 && slot != int8_t(visible))
      return false;
    slot = int8_t(visible);
    return true;
  };
  bool isFloat = isa<FloatType>(type.getElementType());
  if (form.selectMask != !isFloat) {
    why = form.selectMask ? "the select mask is not an i1 constant"
                          : "the additive mask is not a float constant";
    return failure();
  }
  int64_t flat = 0;
  auto visibleAt = [&](int64_t index, bool &visible) {
    if (isFloat) {
      double value = attr.getValues<APFloat>()[index].convertToDouble();
      if (value == 0.0)
        visible = true;
      else if (value <= kMaskedBelow)
        visible = false;
      else
        return false;
    } else {
      bool bit = attr.getValues<bool>()[index];
      visible = bit == form.trueMeansVisible;
    }
    return true;
  };
  for (flat = 0; flat < type.getNumElements(); ++flat) {
    bool visible;
    if (!visibleAt(flat, visible)) {
      why = "the mask holds values other than 0 and very negative (<= -1e4)";
      return failure();
    }
    int64_t qi = qAt >= 0 ? (flat / strides[qAt]) % shape[qAt] : -1;
    int64_t kj = kAt >= 0 ? (flat / strides[kAt]) % shape[kAt] : -1;
    for (int64_t i = qi < 0 ? 0 : qi; i < (qi < 0 ? qLen : qi + 1); ++i)
      for (int64_t j = kj < 0 ? 0 : kj; j < (kj < 0 ? kvLen : kj + 1); ++j)
        if (!record(i, j, visible)) {
          why = "the mask differs across batch or heads";
          return failure();
        }
  }
  auto at = [&](int64_t i, int64_t j) {
    return vis[size_t(i * kvLen + j)] == 1;
  };
  auto pos = [&](int64_t i) { return kvLen - qLen + i; };
  bool futureHidden = true, futureShown = true, pastAllShown = true;
  int64_t row = -1;
  for (int64_t i = 0; i < qLen; ++i)
    for (int64_t j = 0; j < kvLen; ++j) {
      if (j > pos(i)) {
        futureHidden &= !at(i, j);
        futureShown &= at(i, j);
      } else if (!at(i, j)) {
        pastAllShown = false;
        row = i;
      }
    }
  if (!futureHidden && !futureShown) {
    why = "the mask is neither causal nor open to future keys";
    return failure();
  }
  info.present = true;
  info.causal = futureHidden;
  if (!pastAllShown) {
    int64_t j0 = pos(row);
    while (at(row, j0))
      --j0;
    int64_t sinks = 0;
    while (sinks < j0 && at(row, sinks))
      ++sinks;
    info.window = pos(row) - j0;
    info.sinks = sinks;
  }
  for (int64_t i = 0; i < qLen; ++i)
    for (int64_t j = 0; j < kvLen; ++j) {
      bool expected;
      if (j > pos(i))
        expected = !info.causal;
      else
        expected = !info.window || j > pos(i) - *info.window || j < info.sinks;
      if (expected != at(i, j)) {
        why = "the mask is not causal / sliding-window with sinks";
        return failure();
      }
    }
  return success();
}

/// The digits of the operand of `op` read through `map`.
Layout operandDigits(AffineMap map, ArrayRef<Role> roles,
                     ArrayRef<int64_t> extents) {
  Layout dims;
  for (AffineExpr e : map.getResults()) {
    unsigned loop = cast<AffineDimExpr>(e).getPosition();
    dims.push_back(normalize({Digit{roles[loop], 1, extents[loop]}}));
  }
  return dims;
}

/// Whether `init` is a zero-filled tensor (contractions accumulate on it).
bool isZeroInit(Value init) {
  ExprBuilder builder(-1);
  auto type = cast<RankedTensorType>(init.getType());
  const Expr *e = builder.build(
      init,
      AffineMap::getMultiDimIdentityMap(type.getRank(), init.getContext()), 2);
  return e->kind == Expr::Scalar && e->number == 0.0;
}

/// For each digit list of `dims`, the indices of `canonical` digits that
/// tile it, in row-major order; none if some dimension is not a product of
/// canonical digits or a digit is used twice or not at all.
std::optional<SmallVector<int64_t>> decompose(ArrayRef<DimDigits> dims,
                                              ArrayRef<Digit> canonical) {
  SmallVector<int64_t> order;
  for (const DimDigits &dim : dims) {
    for (Digit t : normalize(dim)) {
      SmallVector<int64_t> parts;
      for (auto [i, c] : llvm::enumerate(canonical))
        if (c.role == t.role && c.stride >= t.stride &&
            c.stride < t.stride * t.extent)
          parts.push_back(i);
      llvm::sort(parts, [&](int64_t a, int64_t b) {
        return canonical[a].stride > canonical[b].stride;
      });
      int64_t expect = t.stride * t.extent;
      for (int64_t p : parts) {
        if (canonical[p].stride * canonical[p].extent != expect)
          return std::nullopt;
        expect = canonical[p].stride;
      }
      if (parts.empty() || expect != t.stride)
        return std::nullopt;
      order.append(parts);
    }
  }
  SmallVector<int64_t> sorted(order);
  llvm::sort(sorted);
  if (sorted != llvm::to_vector(llvm::seq<int64_t>(0, canonical.size())))
    return std::nullopt;
  return order;
}

} // namespace

//===----------------------------------------------------------------------===//
// Layout tracing
//===----------------------------------------------------------------------===//

/// `op` copies its single input (transpose, broadcast, generic permutation).
static bool isCopy(linalg::LinalgOp op) {
  if (!op.hasPureTensorSemantics() || op.getNumDpsInputs() != 1 ||
      op.getNumDpsInits() != 1 || op->getNumResults() != 1 ||
      op.getNumReductionLoops() != 0 ||
      !isa<RankedTensorType>(op.getDpsInputOperand(0)->get().getType()))
    return false;
  Block *body = op.getBlock();
  return body->getOperations().size() == 1 &&
         body->getTerminator()->getOperand(0) == body->getArgument(0);
}

LayoutTrace kvopt::raise::traceLayout(Value value, Layout dims,
                                      bool peelScales) {
  LayoutTrace t;
  t.value = value;
  for (DimDigits &d : dims)
    d = normalize(d);
  t.dims = std::move(dims);
  while (true) {
    t.path.push_back({t.value, t.dims, t.scale});
    Operation *def = t.value.getDefiningOp();
    if (!def)
      break;
    if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(def)) {
      ArrayRef<int64_t> src = collapse.getSrcType().getShape();
      Layout next;
      bool ok = true;
      for (auto [j, group] :
           llvm::enumerate(collapse.getReassociationIndices())) {
        SmallVector<int64_t> sizes;
        for (int64_t d : group)
          sizes.push_back(src[d]);
        auto split = splitDigits(t.dims[j], sizes);
        if (!split) {
          ok = false;
          break;
        }
        next.append(split->begin(), split->end());
      }
      if (!ok)
        break;
      t.value = collapse.getSrc();
      t.dims = std::move(next);
      continue;
    }
    if (auto expand = dyn_cast<tensor::ExpandShapeOp>(def)) {
      Layout next;
      for (ReassociationIndices group : expand.getReassociationIndices()) {
        DimDigits merged;
        for (int64_t d : group)
          merged.append(t.dims[d].begin(), t.dims[d].end());
        next.push_back(normalize(merged));
      }
      t.value = expand.getSrc();
      t.dims = std::move(next);
      continue;
    }
    if (auto linalgOp = dyn_cast<linalg::LinalgOp>(def);
        linalgOp && isCopy(linalgOp)) {
      AffineMap outMap =
          linalgOp.getIndexingMapMatchingResult(cast<OpResult>(t.value));
      OpOperand *input = linalgOp.getDpsInputOperand(0);
      AffineMap inMap = linalgOp.getMatchingIndexingMap(input);
      auto inType = cast<RankedTensorType>(input->get().getType());
      if (!outMap.isPermutation())
        break;
      SmallVector<DimDigits> loopDigits(linalgOp.getNumLoops());
      for (auto [k, e] : llvm::enumerate(outMap.getResults()))
        loopDigits[cast<AffineDimExpr>(e).getPosition()] = t.dims[k];
      Layout next;
      llvm::SmallBitVector used(linalgOp.getNumLoops());
      bool ok = true;
      for (auto [k, e] : llvm::enumerate(inMap.getResults())) {
        if (auto d = dyn_cast<AffineDimExpr>(e)) {
          next.push_back(loopDigits[d.getPosition()]);
          used.set(d.getPosition());
        } else if (auto c = dyn_cast<AffineConstantExpr>(e);
                   c && c.getValue() == 0 && inType.getDimSize(k) == 1) {
          next.push_back({});
        } else {
          ok = false;
        }
      }
      if (!ok)
        break;
      for (unsigned l = 0; l < linalgOp.getNumLoops(); ++l)
        if (!used.test(l))
          t.dropped.append(loopDigits[l].begin(), loopDigits[l].end());
      t.value = input->get();
      t.dims = std::move(next);
      continue;
    }
    if (peelScales) {
      auto type = dyn_cast<RankedTensorType>(t.value.getType());
      if (!type)
        break;
      ExprBuilder builder(-1);
      AffineMap id =
          AffineMap::getMultiDimIdentityMap(type.getRank(), def->getContext());
      const Expr *e = builder.build(t.value, id, 1);
      auto isInput = [&](const Expr *x) {
        return x->kind == Expr::Leaf && x->map == id &&
               cast<RankedTensorType>(x->value.getType()).getShape() ==
                   type.getShape();
      };
      auto isNumber = [](const Expr *x) {
        return x->kind == Expr::Scalar && std::isfinite(x->number) &&
               x->number != 0.0;
      };
      if (e->kind == Expr::Mul && isInput(e->args[0]) && isNumber(e->args[1])) {
        t.scale *= e->args[1]->number;
        t.value = e->args[0]->value;
        continue;
      }
      if (e->kind == Expr::Mul && isInput(e->args[1]) && isNumber(e->args[0])) {
        t.scale *= e->args[0]->number;
        t.value = e->args[1]->value;
        continue;
      }
      if (e->kind == Expr::Div && isInput(e->args[0]) && isNumber(e->args[1])) {
        t.scale /= e->args[1]->number;
        t.value = e->args[0]->value;
        continue;
      }
    }
    break;
  }
  return t;
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

bool kvopt::raise::isAttentionCandidate(linalg::LinalgOp op) {
  if (!isContraction(op) || !op.hasPureTensorSemantics())
    return false;
  auto dims = linalg::inferContractionDims(op);
  if (failed(dims) || dims->k.size() != 1)
    return false;
  // An unbatched (2-D) product is attention-like only when one operand is
  // a softmax of another unbatched product: 2-D matmul chains with
  // elementwise code between them (MLPs) are common and are not attention.
  bool unbatched = dims->batch.empty();
  if (unbatched && (dims->m.size() != 1 || dims->n.size() != 1))
    return false;
  for (OpOperand *operand : op.getDpsInputOperands()) {
    AffineMap map = op.getMatchingIndexingMap(operand);
    auto pos =
        map.getResultPosition(getAffineDimExpr(dims->k[0], op.getContext()));
    auto type = dyn_cast<RankedTensorType>(operand->get().getType());
    if (!pos || !type)
      continue;
    ExprBuilder builder(*pos);
    const Expr *tree = builder.build(
        operand->get(),
        AffineMap::getMultiDimIdentityMap(type.getRank(), op.getContext()),
        ExprBuilder::kUnlimited);
    if (tree->kind == Expr::Leaf)
      continue;
    if (unbatched) {
      std::string ignored;
      if (!matchSoftmax(tree, *pos, ignored))
        continue;
    }
    bool found = false;
    forEachLeaf(tree, [&](const Expr *leaf) {
      Operation *def = leaf->value.getDefiningOp();
      if (!isContraction(def))
        return;
      auto inner = linalg::inferContractionDims(cast<linalg::LinalgOp>(def));
      found |= succeeded(inner) && inner->batch.empty() == unbatched;
    });
    if (found)
      return true;
  }
  return false;
}

LogicalResult kvopt::raise::checkKVLayout(AttentionMatch &m,
                                          const LayoutTrace &trace,
                                          Role dimRole, std::string &why) {
  const char *what = dimRole == Role::HeadDim ? "keys" : "values";
  auto type = dyn_cast<RankedTensorType>(trace.value.getType());
  // Unbatched single-head attention may keep its K/V as [T, D].
  bool unbatched = type && type.getRank() == 2 && m.batch == 1 &&
                   m.qHeads == 1;
  if (!type || (type.getRank() != 4 && !unbatched) ||
      !type.hasStaticShape()) {
    why = std::string(what) + " do not come from a static [B, H, T, D] tensor";
    return failure();
  }
  int64_t kvHeads = unbatched ? 1 : type.getDimSize(1);
  if (kvHeads == 0 || m.qHeads % kvHeads != 0) {
    why = std::string(what) + " have a head count that does not divide the "
                              "query heads";
    return failure();
  }
  int64_t ratio = m.qHeads / kvHeads;
  Digit batch = m.batchDigit;
  // KV head h / ratio is the outer part of q's head digit.
  Role headRole = m.headDigit.role;
  int64_t headStride = m.headDigit.stride;
  Layout expected(4);
  if (m.batch > 1)
    expected[0] = {Digit{batch.role, batch.stride, m.batch}};
  if (kvHeads > 1)
    expected[1] = {Digit{headRole, headStride * ratio, kvHeads}};
  if (m.kvLen > 1)
    expected[2] = {Digit{Role::KeyTok, 1, m.kvLen}};
  int64_t dim = dimRole == Role::HeadDim ? m.headDim : m.valueDim;
  if (dim > 1)
    expected[3] = {Digit{dimRole, 1, dim}};
  if (unbatched)
    expected.erase(expected.begin(), expected.begin() + 2);
  if (trace.dims != expected) {
    // A broadcast head digit in inner position is torch's repeat (tiled),
    // which maps q head h to KV head h % kvHeads.
    if (ratio > 1 && trace.dims.size() == 4 &&
        trace.dims[1] == DimDigits{Digit{headRole, headStride, kvHeads}})
      why = std::string(what) + " are repeated across heads in tiled order "
                                "(q head h reads KV head h % KV heads, not "
                                "h / group)";
    else
      why = std::string(what) + " are not laid out as [B, KV heads, tokens, "
                                "dim] for the attention's loops";
    return failure();
  }
  DimDigits dropped = normalize(trace.dropped);
  DimDigits expectedDrop;
  if (ratio > 1)
    expectedDrop.push_back(Digit{headRole, headStride, ratio});
  if (dropped != expectedDrop) {
    why = std::string(what) + " are broadcast over something else than "
                              "groups of query heads";
    return failure();
  }
  if (m.kvHeads && m.kvHeads != kvHeads) {
    why = "keys and values have different head counts";
    return failure();
  }
  m.kvHeads = kvHeads;
  return success();
}

FailureOr<AttentionMatch> kvopt::raise::matchAttention(linalg::LinalgOp pv,
                                                       std::string &why) {
  MLIRContext *ctx = pv.getContext();
  if (!isContraction(pv) || !pv.hasPureTensorSemantics()) {
    why = "P·V is not a contraction on tensors";
    return failure();
  }
  auto dims2 = linalg::inferContractionDims(pv);
  if (failed(dims2) || dims2->batch.size() > 2 || dims2->m.size() != 1 ||
      dims2->n.size() != 1 || dims2->k.size() != 1) {
    why = "P·V is not a (batched) matrix product";
    return failure();
  }
  SmallVector<int64_t> ranges2 = pv.getStaticLoopRanges();
  if (llvm::any_of(ranges2, ShapedType::isDynamic)) {
    why = "shapes are dynamic";
    return failure();
  }
  if (!isZeroInit(pv.getDpsInitOperand(0)->get())) {
    why = "P·V accumulates into a tensor that is not zero";
    return failure();
  }

  // Find which operand is softmax(scores).
  ScoresForm form;
  OpOperand *pOperand = nullptr;
  int64_t keyDim = -1;
  std::string firstWhy;
  // The trees of `form` live in these builders.
  std::deque<ExprBuilder> builders;
  for (OpOperand *operand : pv.getDpsInputOperands()) {
    AffineMap map = pv.getMatchingIndexingMap(operand);
    auto pos = map.getResultPosition(getAffineDimExpr(dims2->k[0], ctx));
    auto type = cast<RankedTensorType>(operand->get().getType());
    if (!pos)
      continue;
    ExprBuilder &builder = builders.emplace_back(*pos);
    const Expr *tree = builder.build(
        operand->get(), AffineMap::getMultiDimIdentityMap(type.getRank(), ctx),
        ExprBuilder::kUnlimited);
    std::string reason;
    const Expr *x = matchSoftmax(tree, *pos, reason);
    ScoresForm candidate;
    if (x && succeeded(peelScores(x, candidate, reason))) {
      form = candidate;
      pOperand = operand;
      keyDim = *pos;
      break;
    }
    if (firstWhy.empty() || tree->kind != Expr::Leaf)
      firstWhy = reason;
  }
  if (!pOperand) {
    why = firstWhy;
    return failure();
  }

  auto qk = cast<linalg::LinalgOp>(form.scores->value.getDefiningOp());
  auto dims1 = linalg::inferContractionDims(qk);
  if (!qk.hasPureTensorSemantics() || failed(dims1) ||
      dims1->batch.size() != dims2->batch.size() || dims1->m.size() != 1 ||
      dims1->n.size() != 1 || dims1->k.size() != 1) {
    why = "Q·Kᵀ is not a batched matrix product like P·V";
    return failure();
  }
  if (!isZeroInit(qk.getDpsInitOperand(0)->get())) {
    why = "Q·Kᵀ accumulates into a tensor that is not zero";
    return failure();
  }
  SmallVector<int64_t> ranges1 = qk.getStaticLoopRanges();
  if (llvm::any_of(ranges1, ShapedType::isDynamic)) {
    why = "shapes are dynamic";
    return failure();
  }

  // Roles of Q·Kᵀ's loops, read off the scores' dimensions.
  AffineMap out1 = qk.getIndexingMapMatchingResult(qk->getResult(0));
  AffineMap pMap = pv.getMatchingIndexingMap(pOperand);
  SmallVector<Role> roles1(qk.getNumLoops()), roles2(pv.getNumLoops());
  unsigned keyLoop1 = cast<AffineDimExpr>(out1.getResult(keyDim)).getPosition();
  unsigned queryLoop1;
  if (keyLoop1 == dims1->m[0])
    queryLoop1 = dims1->n[0];
  else if (keyLoop1 == dims1->n[0])
    queryLoop1 = dims1->m[0];
  else {
    why = "the softmax runs over a batch dimension of Q·Kᵀ";
    return failure();
  }
  roles1[keyLoop1] = Role::KeyTok;
  roles1[queryLoop1] = Role::QueryTok;
  roles1[dims1->k[0]] = Role::HeadDim;
  SmallVector<unsigned> batchLoops;
  for (AffineExpr e : out1.getResults()) {
    unsigned l = cast<AffineDimExpr>(e).getPosition();
    if (llvm::is_contained(dims1->batch, l))
      batchLoops.push_back(l);
  }
  // No batch loop: unbatched single-head attention (B = H = 1).
  if (batchLoops.size() == 2) {
    roles1[batchLoops[0]] = Role::Batch;
    roles1[batchLoops[1]] = Role::Head;
  } else if (batchLoops.size() == 1) {
    roles1[batchLoops[0]] = Role::BatchHead;
  }
  // P·V's loops take the roles of the scores' dimensions they read.
  for (auto [i, e] : llvm::enumerate(pMap.getResults())) {
    unsigned l2 = cast<AffineDimExpr>(e).getPosition();
    unsigned l1 = cast<AffineDimExpr>(out1.getResult(i)).getPosition();
    roles2[l2] = roles1[l1];
    if (ranges2[l2] != ranges1[l1]) {
      why = "P·V and Q·Kᵀ disagree on the scores' shape";
      return failure();
    }
  }
  // m and n follow operand order; the one P does not read is the value dim.
  unsigned valueLoop =
      pMap.isFunctionOfDim(dims2->m[0]) ? dims2->n[0] : dims2->m[0];
  unsigned queryLoop2 = valueLoop == dims2->n[0] ? dims2->m[0] : dims2->n[0];
  roles2[valueLoop] = Role::ValueDim;
  if (roles2[dims2->k[0]] != Role::KeyTok ||
      roles2[queryLoop2] != Role::QueryTok || pMap.isFunctionOfDim(valueLoop)) {
    why = "P·V does not contract the softmax over the keys";
    return failure();
  }

  AttentionMatch m;
  m.scores = qk;
  m.output = pv;
  m.qLen = ranges1[queryLoop1];
  m.kvLen = ranges1[keyLoop1];
  m.headDim = ranges1[dims1->k[0]];
  m.valueDim = ranges2[valueLoop];
  m.scale = form.scale;

  // Q and K operands of Q·Kᵀ: K is the one indexed by the keys.
  OpOperand *qOperand = qk.getDpsInputOperand(0);
  OpOperand *kOperand = qk.getDpsInputOperand(1);
  if (qk.getMatchingIndexingMap(qOperand).isFunctionOfDim(keyLoop1))
    std::swap(qOperand, kOperand);
  if (!qk.getMatchingIndexingMap(kOperand).isFunctionOfDim(keyLoop1) ||
      qk.getMatchingIndexingMap(kOperand).isFunctionOfDim(queryLoop1)) {
    why = "Q·Kᵀ does not pair a query operand with a key operand";
    return failure();
  }
  LayoutTrace qTrace = traceLayout(
      qOperand->get(),
      operandDigits(qk.getMatchingIndexingMap(qOperand), roles1, ranges1),
      /*peelScales=*/true);
  m.keys = traceLayout(
      kOperand->get(),
      operandDigits(qk.getMatchingIndexingMap(kOperand), roles1, ranges1),
      /*peelScales=*/true);
  OpOperand *vOperand =
      pv.getDpsInputOperand(pOperand->getOperandNumber() == 0 ? 1 : 0);
  m.values = traceLayout(
      vOperand->get(),
      operandDigits(pv.getMatchingIndexingMap(vOperand), roles2, ranges2),
      /*peelScales=*/false);

  // Batch and query heads. With a [B*H] loop, the batch digit is the one
  // spanning its top: its stride is the number of query heads.
  if (batchLoops.empty()) {
    m.batch = 1;
    m.qHeads = 1;
  } else if (batchLoops.size() == 2) {
    m.batch = ranges1[batchLoops[0]];
    m.qHeads = ranges1[batchLoops[1]];
  } else {
    int64_t all = ranges1[batchLoops[0]];
    m.qHeads = all;
    for (const LayoutTrace *trace : {&qTrace, &m.keys, &m.values})
      for (const LayoutTrace::Step &step : trace->path)
        for (const DimDigits &dim : step.dims)
          for (Digit d : dim)
            if (d.role == Role::BatchHead && d.stride > 1 &&
                d.stride * d.extent == all)
              m.qHeads = std::min(m.qHeads, d.stride);
    m.batch = all / m.qHeads;
  }
  bool split = batchLoops.size() != 1;
  Role batchRole = split ? Role::Batch : Role::BatchHead;
  Role headRole = split ? Role::Head : Role::BatchHead;
  int64_t batchStride = split ? 1 : m.qHeads;
  auto canonical = [&](Role last, int64_t lastExtent) {
    SmallVector<Digit> digits;
    for (Digit d :
         {Digit{batchRole, batchStride, m.batch}, Digit{headRole, 1, m.qHeads},
          Digit{Role::QueryTok, 1, m.qLen}, Digit{last, 1, lastExtent}})
      if (d.extent > 1)
        digits.push_back(d);
    return digits;
  };
  m.queryCanonical = canonical(Role::HeadDim, m.headDim);
  m.outputCanonical = canonical(Role::ValueDim, m.valueDim);
  m.batchDigit = {batchRole, batchStride, m.batch};
  m.headDigit = {headRole, 1, m.qHeads};

  // The query: the furthest value back that is exactly [B, Hq, Tq, D], else
  // the nearest one that holds q up to layout.
  const LayoutTrace::Step *chosen = nullptr;
  for (const LayoutTrace::Step &step : qTrace.path) {
    auto order = decompose(step.dims, m.queryCanonical);
    if (!order)
      continue;
    auto type = cast<RankedTensorType>(step.value.getType());
    // Unbatched attention keeps q as [T, D].
    bool exact =
        type.getShape() ==
            ArrayRef<int64_t>{m.batch, m.qHeads, m.qLen, m.headDim} ||
        (batchLoops.empty() &&
         type.getShape() == ArrayRef<int64_t>{m.qLen, m.headDim});
    if (exact || !chosen)
      chosen = &step;
  }
  if (!chosen) {
    why = "the query is not laid out as [B, H, T, D] for the attention's "
          "loops";
    return failure();
  }
  m.query = chosen->value;
  m.queryDims = chosen->dims;
  m.scale *= chosen->scale * m.keys.scale;

  m.outputDims = operandDigits(
      pv.getIndexingMapMatchingResult(pv->getResult(0)), roles2, ranges2);
  if (!decompose(m.outputDims, m.outputCanonical)) {
    why = "the attention output layout is not understood";
    return failure();
  }

  // Mask.
  if (form.mask) {
    unsigned qDim = 0;
    for (auto [i, e] : llvm::enumerate(out1.getResults()))
      if (cast<AffineDimExpr>(e).getPosition() == queryLoop1)
        qDim = i;
    if (failed(verifyMask(form, qDim, keyDim, m.qLen, m.kvLen, m.mask, why)))
      return failure();
  }

  Type element = cast<ShapedType>(m.query.getType()).getElementType();
  for (Value v : {m.keys.value, m.values.value, Value(pv->getResult(0))})
    if (cast<ShapedType>(v.getType()).getElementType() != element) {
      why = "q, K, V and the output do not share one element type";
      return failure();
    }
  m.elementType = element;
  return std::move(m);
}

//===----------------------------------------------------------------------===//
// Building
//===----------------------------------------------------------------------===//

Value kvopt::raise::reshapeTo(OpBuilder &b, Location loc, Value value,
                              RankedTensorType type) {
  auto src = cast<RankedTensorType>(value.getType());
  if (src == type)
    return value;
  if (src.getRank() != type.getRank()) {
    auto reassoc = getReassociationIndicesForReshape(src, type);
    if (reassoc && src.getRank() > type.getRank())
      return tensor::CollapseShapeOp::create(b, loc, type, value, *reassoc);
    if (reassoc)
      return tensor::ExpandShapeOp::create(b, loc, type, value, *reassoc);
  }
  // Through one dimension.
  auto flatType =
      RankedTensorType::get({src.getNumElements()}, src.getElementType());
  Value flat = value;
  if (src.getRank() != 1) {
    ReassociationIndices all =
        llvm::to_vector(llvm::seq<int64_t>(0, src.getRank()));
    flat = tensor::CollapseShapeOp::create(b, loc, flatType, value,
                                           ArrayRef<ReassociationIndices>{all});
  }
  if (type.getRank() == 1)
    return flat;
  ReassociationIndices all =
      llvm::to_vector(llvm::seq<int64_t>(0, type.getRank()));
  return tensor::ExpandShapeOp::create(b, loc, type, flat,
                                       ArrayRef<ReassociationIndices>{all});
}

/// Transposes `value` so that result dimension k is input dimension
/// perm[k]; no op for the identity.
static Value transpose(OpBuilder &b, Location loc, Value value,
                       ArrayRef<int64_t> perm) {
  if (llvm::equal(perm, llvm::seq<int64_t>(0, perm.size())))
    return value;
  auto type = cast<RankedTensorType>(value.getType());
  SmallVector<int64_t> shape;
  for (int64_t p : perm)
    shape.push_back(type.getDimSize(p));
  Value init = tensor::EmptyOp::create(b, loc, shape, type.getElementType());
  return linalg::TransposeOp::create(b, loc, value, init, perm).getResult()[0];
}

static SmallVector<int64_t> extents(ArrayRef<Digit> digits,
                                    ArrayRef<int64_t> order) {
  SmallVector<int64_t> shape;
  for (int64_t i : order)
    shape.push_back(digits[i].extent);
  return shape;
}

Value kvopt::raise::materializeQuery(OpBuilder &b, Location loc,
                                     const AttentionMatch &m) {
  auto order = *decompose(m.queryDims, m.queryCanonical);
  Type element = m.elementType;
  auto type =
      RankedTensorType::get({m.batch, m.qHeads, m.qLen, m.headDim}, element);
  if (llvm::equal(order, llvm::seq<int64_t>(0, order.size())))
    return reshapeTo(b, loc, m.query, type);
  Value atomic = reshapeTo(
      b, loc, m.query,
      RankedTensorType::get(extents(m.queryCanonical, order), element));
  SmallVector<int64_t> perm(order.size());
  for (auto [pos, idx] : llvm::enumerate(order))
    perm[idx] = pos;
  return reshapeTo(b, loc, transpose(b, loc, atomic, perm), type);
}

Value kvopt::raise::materializeOutput(OpBuilder &b, Location loc,
                                      const AttentionMatch &m,
                                      Value canonical) {
  auto order = *decompose(m.outputDims, m.outputCanonical);
  auto type = cast<RankedTensorType>(m.output->getResult(0).getType());
  if (llvm::equal(order, llvm::seq<int64_t>(0, order.size())))
    return reshapeTo(b, loc, canonical, type);
  auto all = llvm::to_vector(llvm::seq<int64_t>(0, m.outputCanonical.size()));
  Value atomic = reshapeTo(
      b, loc, canonical,
      RankedTensorType::get(extents(m.outputCanonical, all), m.elementType));
  return reshapeTo(b, loc, transpose(b, loc, atomic, order), type);
}

void kvopt::raise::eraseDeadOps(ArrayRef<Operation *> roots) {
  SmallVector<Operation *> worklist(roots.begin(), roots.end());
  DenseSet<Operation *> erased;
  while (!worklist.empty()) {
    Operation *op = worklist.pop_back_val();
    if (erased.contains(op) || !isOpTriviallyDead(op))
      continue;
    for (Value operand : op->getOperands())
      if (Operation *def = operand.getDefiningOp())
        worklist.push_back(def);
    erased.insert(op);
    op->erase();
  }
}

Value kvopt::raise::i32Splat(OpBuilder &b, Location loc, int64_t batch,
                             int64_t value) {
  auto type = RankedTensorType::get({batch}, b.getI32Type());
  return arith::ConstantOp::create(
      b, loc, type,
      DenseElementsAttr::get(type, b.getI32IntegerAttr(int32_t(value))));
}
