//===- LibDevice.cpp - Host stand-ins for the libdevice functions ---------===//
//
// convert-gpu-to-nvvm lowers math ops to calls of libdevice's `__nv_*`
// functions. On the host they are the C library's functions: results agree
// with libdevice to a few ulp, not bit for bit, so compare with a tolerance.
// The list is every `__nv_*` name MLIR 22's lowerings can emit.
//
//===----------------------------------------------------------------------===//

#include <cmath>
#include <cstdint>
#include <cstdlib>

#define KV_UNARY_F(name, fn)                                                   \
  float __nv_##name##f(float x) { return fn(x); }                              \
  double __nv_##name(double x) { return fn(x); }
#define KV_BINARY_F(name, fn)                                                  \
  float __nv_##name##f(float x, float y) { return fn(x, y); }                  \
  double __nv_##name(double x, double y) { return fn(x, y); }

extern "C" {
KV_UNARY_F(acos, std::acos)
KV_UNARY_F(acosh, std::acosh)
KV_UNARY_F(asin, std::asin)
KV_UNARY_F(asinh, std::asinh)
KV_UNARY_F(atan, std::atan)
KV_UNARY_F(atanh, std::atanh)
KV_UNARY_F(cbrt, std::cbrt)
KV_UNARY_F(ceil, std::ceil)
KV_UNARY_F(cos, std::cos)
KV_UNARY_F(cosh, std::cosh)
KV_UNARY_F(erf, std::erf)
KV_UNARY_F(erfc, std::erfc)
KV_UNARY_F(exp, std::exp)
KV_UNARY_F(exp2, std::exp2)
KV_UNARY_F(expm1, std::expm1)
KV_UNARY_F(fabs, std::fabs)
KV_UNARY_F(floor, std::floor)
KV_UNARY_F(log, std::log)
KV_UNARY_F(log10, std::log10)
KV_UNARY_F(log1p, std::log1p)
KV_UNARY_F(log2, std::log2)
KV_UNARY_F(rint, std::rint)
KV_UNARY_F(round, std::round)
KV_UNARY_F(sin, std::sin)
KV_UNARY_F(sinh, std::sinh)
KV_UNARY_F(sqrt, std::sqrt)
KV_UNARY_F(tan, std::tan)
KV_UNARY_F(tanh, std::tanh)
KV_BINARY_F(atan2, std::atan2)
KV_BINARY_F(copysign, std::copysign)
KV_BINARY_F(fmax, std::fmax)
KV_BINARY_F(fmin, std::fmin)
KV_BINARY_F(fmod, std::fmod)
KV_BINARY_F(pow, std::pow)

float __nv_rsqrtf(float x) { return 1.0f / std::sqrt(x); }
double __nv_rsqrt(double x) { return 1.0 / std::sqrt(x); }
float __nv_fmaf(float a, float b, float c) { return std::fma(a, b, c); }
double __nv_fma(double a, double b, double c) { return std::fma(a, b, c); }
float __nv_powif(float x, int n) { return std::pow(x, float(n)); }
double __nv_powi(double x, int n) { return std::pow(x, double(n)); }
void __nv_sincosf(float x, float *s, float *c) {
  *s = std::sin(x);
  *c = std::cos(x);
}
void __nv_sincos(double x, double *s, double *c) {
  *s = std::sin(x);
  *c = std::cos(x);
}
int __nv_abs(int x) { return std::abs(x); }
int __nv_isnanf(float x) { return std::isnan(x); }
int __nv_isnand(double x) { return std::isnan(x); }
int __nv_isinff(float x) { return std::isinf(x); }
int __nv_isinfd(double x) { return std::isinf(x); }
int __nv_finitef(float x) { return std::isfinite(x); }
int __nv_isfinited(double x) { return std::isfinite(x); }

// The fast (approximate) forms: the exact host function is within their
// documented error bounds.
float __nv_fast_expf(float x) { return std::exp(x); }
float __nv_fast_logf(float x) { return std::log(x); }
float __nv_fast_log2f(float x) { return std::log2(x); }
float __nv_fast_log10f(float x) { return std::log10(x); }
float __nv_fast_powf(float x, float y) { return std::pow(x, y); }
float __nv_fast_sinf(float x) { return std::sin(x); }
float __nv_fast_cosf(float x) { return std::cos(x); }
float __nv_fast_tanf(float x) { return std::tan(x); }
void __nv_fast_sincosf(float x, float *s, float *c) {
  *s = std::sin(x);
  *c = std::cos(x);
}
}

// nvvm.rcp.approx.ftz.f: reciprocal with denormal inputs flushed to zero.
extern "C" float __kv_simt_rcp_approx_ftz_f32(float x) {
  if (std::fpclassify(x) == FP_SUBNORMAL)
    x = std::copysign(0.0f, x);
  return 1.0f / x;
}
