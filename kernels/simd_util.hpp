// Helpers for the per-ISA kernel sources (kernels/*_simd.cpp only): partial loads and stores for
// row tails, horizontal reductions, element-wise drivers and vector math shared by several
// kernels. Every function is a template on the arch tag (Note [ISA objects] in isa.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/arch.hpp"

#if defined(__SSE2__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

namespace crt::kernels::simd {

using std::size_t;

template <class Arch>
using Vec = xsimd::batch<float, Arch>;

template <class Arch>
inline constexpr size_t kLanes = Vec<Arch>::size;

inline constexpr float kInf = std::numeric_limits<float>::infinity();

// Lanes [0, n) read from p, the other lanes set to `fill`; 0 <= n < W. Touches no memory at or
// past p + n (masked loads on AVX2 and AVX-512, a copy through a buffer elsewhere).
template <class Arch>
inline Vec<Arch> load_first(const float* p, size_t n, float fill = 0.0f) {
#if defined(CRT_KERNEL_ISA_AVX512)
  if constexpr (std::is_same_v<Arch, xsimd::avx512bw>)
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), static_cast<__mmask16>((1u << n) - 1u), p);
#elif defined(CRT_KERNEL_ISA_AVX2)
  if constexpr (std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>>) {
    const __m256i mask =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, mask),
                            _mm256_castsi256_ps(mask));
  }
#endif
  alignas(64) float buf[kLanes<Arch>];
  for (size_t i = 0; i < kLanes<Arch>; ++i) buf[i] = i < n ? p[i] : fill;
  return Vec<Arch>::load_aligned(buf);
}

// Stores lanes [0, n) of v to p; 0 <= n < W. Touches no memory at or past p + n.
template <class Arch>
inline void store_first(const Vec<Arch>& v, float* p, size_t n) {
#if defined(CRT_KERNEL_ISA_AVX512)
  if constexpr (std::is_same_v<Arch, xsimd::avx512bw>) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v);
    return;
  }
#elif defined(CRT_KERNEL_ISA_AVX2)
  if constexpr (std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>>) {
    const __m256i mask =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(p, mask, v);
    return;
  }
#endif
  alignas(64) float buf[kLanes<Arch>];
  v.store_aligned(buf);
  for (size_t i = 0; i < n; ++i) p[i] = buf[i];
}

// The sum of the lanes.
template <class Arch>
inline float hsum(const Vec<Arch>& v) {
#if defined(CRT_KERNEL_ISA_AVX512)
  if constexpr (std::is_same_v<Arch, xsimd::avx512bw>) return _mm512_reduce_add_ps(v);
#endif
  return xsimd::hadd(v);
}

// The largest lane (xsimd 8.1 has no reduce_max).
template <class Arch>
inline float hmax(const Vec<Arch>& v) {
#if defined(CRT_KERNEL_ISA_AVX512)
  if constexpr (std::is_same_v<Arch, xsimd::avx512bw>) return _mm512_reduce_max_ps(v);
#endif
  alignas(64) float buf[kLanes<Arch>];
  v.store_aligned(buf);
  float m = buf[0];
  for (size_t i = 1; i < kLanes<Arch>; ++i) m = buf[i] > m ? buf[i] : m;
  return m;
}

// y[i] = f(in[i]...) for i < n, one vector at a time; the tail runs the same f on a partial
// vector (padded with zeros), so that every element is computed the same way.
template <class Arch, class Fn, class... In>
inline void map(size_t n, float* y, Fn f, const In*... in) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  size_t i = 0;
  for (; i + W <= n; i += W) f(V::load_unaligned(in + i)...).store_unaligned(y + i);
  if (i < n) store_first<Arch>(f(load_first<Arch>(in + i, n - i)...), y + i, n - i);
}

// Whether [a, a + n) and [b, b + n) share no element.
inline bool disjoint(const float* a, const float* b, size_t n) { return a + n <= b || b + n <= a; }

// map for rows that start anywhere in a cache line: when n >= W and y overlaps no input, every
// store is a whole vector and all but the first and last are aligned (the first vector of the
// row, then aligned vectors from the first aligned element, then the last vector of the row,
// recomputing a few elements from the same inputs). On rows that are not a multiple of a cache
// line apart, map's stores straddle two lines in most rows and end each row with a masked
// store, which costs more than the one recomputed vector. Not map itself: on short operands in
// L1 the extra vector and checks cost more than they save.
template <class Arch, class Fn, class... In>
inline void map_row(size_t n, float* y, Fn f, const In*... in) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  constexpr size_t kAlign = W * sizeof(float);
  const auto address = reinterpret_cast<std::uintptr_t>(y);
  if (n < W || address % sizeof(float) != 0 || !(disjoint(y, in, n) && ...))
    return map<Arch>(n, y, f, in...);
  f(V::load_unaligned(in)...).store_unaligned(y);
  size_t i = (kAlign - address % kAlign) % kAlign / sizeof(float);
  if (i == 0) i = W;  // y is aligned: the first vector was an aligned one
  for (; i + W <= n; i += W) f(V::load_unaligned(in + i)...).store_aligned(y + i);
  if (i < n) f(V::load_unaligned(in + n - W)...).store_unaligned(y + n - W);
}

// ---- vector math ----------------------------------------------------------------------------
// xsimd 8.1's float exp, log, tanh and erfc are within a few ulp of the correctly rounded
// result over the whole range (the kernel tests bound them against double).

// -x, flipping the sign bit (xsimd 8.1 computes 0 - x on AVX-512, which gives +0 for x = +0).
template <class Arch>
inline Vec<Arch> negate(const Vec<Arch>& x) {
  return x ^ Vec<Arch>(-0.0f);
}

inline constexpr float kInvSqrt2 = 0.70710678118654752440f;
inline constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

// a / b and sqrt(x), correctly rounded: xsimd 8.1 computes both with Newton-Raphson estimates
// on NEON (a few ulp off, and not IEEE at 0 and infinity); AArch64 has the exact instructions.
template <class Arch>
inline Vec<Arch> divide(const Vec<Arch>& a, const Vec<Arch>& b) {
#if defined(CRT_KERNEL_ISA_NEON64)
  if constexpr (std::is_same_v<Arch, xsimd::neon64>) return vdivq_f32(a, b);
#endif
  return a / b;
}

template <class Arch>
inline Vec<Arch> square_root(const Vec<Arch>& x) {
#if defined(CRT_KERNEL_ISA_NEON64)
  if constexpr (std::is_same_v<Arch, xsimd::neon64>) return vsqrtq_f32(x);
#endif
  return xsimd::sqrt(x);
}

// exp(x): xsimd::exp, except on AVX-512, where the same range reduction and polynomial as
// xsimd's finish with vscalefps (p * 2^k, with overflow to inf and gradual underflow to 0 done
// by the instruction) instead of integer exponent arithmetic and two selects. The input is
// clamped to [-110, 89] first (NaN passes through), so exp(-inf) = 0 and exp(+inf) = inf.
template <class Arch>
inline Vec<Arch> exp(const Vec<Arch>& x) {
#if defined(CRT_KERNEL_ISA_AVX512)
  if constexpr (std::is_same_v<Arch, xsimd::avx512bw>) {
    using V = Vec<Arch>;
    // max / min return their second operand when either is NaN
    const V xc = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-110.0f), x));
    const V k = _mm512_roundscale_ps(xc * V(1.44269504088896341f),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm512_fnmadd_ps(k, V(0.693359375f), xc);  // x - k ln2, ln2 split in two parts
    r = _mm512_fnmadd_ps(k, V(-2.12194440e-4f), r);
    // e^r = 1 + r + r^2 (c0 + c1 r + c2 r^2 + c3 r^3 + c4 r^4) on |r| <= ln2 / 2
    V y = _mm512_fmadd_ps(V(1.3997796e-03f), r, V(8.3955629e-03f));
    y = _mm512_fmadd_ps(y, r, V(4.1665401e-02f));
    y = _mm512_fmadd_ps(y, r, V(1.6666277e-01f));
    y = _mm512_fmadd_ps(y, r, V(0.5f));
    const V p = V(_mm512_fmadd_ps(y, r * r, r)) + V(1.0f);
    return V(_mm512_scalef_ps(p, k));
  }
#endif
  return xsimd::exp(x);
}

// 1 / (1 + exp(-x)): 0 below about -88, 1 above about 17.
template <class Arch>
inline Vec<Arch> sigmoid(const Vec<Arch>& x) {
  using V = Vec<Arch>;
  return divide<Arch>(V(1.0f), V(1.0f) + simd::exp<Arch>(negate<Arch>(x)));
}

// The normal CDF Phi(x) = erfc(-x / sqrt 2) / 2, the exact-GELU gate. The erfc form keeps its
// relative accuracy in the left tail, where 1 + erf(x / sqrt 2) cancels.
template <class Arch>
inline Vec<Arch> normal_cdf(const Vec<Arch>& x) {
  using V = Vec<Arch>;
  return V(0.5f) * xsimd::erfc(x * V(-kInvSqrt2));
}

// a * b + c, fused where the ISA has FMA (kernels/arch.hpp).
template <class Arch>
inline Vec<Arch> fma(const Vec<Arch>& a, const Vec<Arch>& b, const Vec<Arch>& c) {
  return madd<Arch>(a, b, c);
}

// ---- row reductions -------------------------------------------------------------------------

// sum of x[0, n), four vector accumulators.
template <class Arch>
inline float row_sum(const float* x, size_t n) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  V s0(0.0f), s1(0.0f), s2(0.0f), s3(0.0f);
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    s0 += V::load_unaligned(x + i);
    s1 += V::load_unaligned(x + i + W);
    s2 += V::load_unaligned(x + i + 2 * W);
    s3 += V::load_unaligned(x + i + 3 * W);
  }
  for (; i + W <= n; i += W) s0 += V::load_unaligned(x + i);
  if (i < n) s1 += load_first<Arch>(x + i, n - i);
  return hsum<Arch>((s0 + s1) + (s2 + s3));
}

// sum of x[i] * y[i] for i < n, four vector accumulators.
template <class Arch>
inline float row_dot(const float* x, const float* y, size_t n) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  V s0(0.0f), s1(0.0f), s2(0.0f), s3(0.0f);
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    s0 = fma<Arch>(V::load_unaligned(x + i), V::load_unaligned(y + i), s0);
    s1 = fma<Arch>(V::load_unaligned(x + i + W), V::load_unaligned(y + i + W), s1);
    s2 = fma<Arch>(V::load_unaligned(x + i + 2 * W), V::load_unaligned(y + i + 2 * W), s2);
    s3 = fma<Arch>(V::load_unaligned(x + i + 3 * W), V::load_unaligned(y + i + 3 * W), s3);
  }
  for (; i + W <= n; i += W) s0 = fma<Arch>(V::load_unaligned(x + i), V::load_unaligned(y + i), s0);
  if (i < n) s1 = fma<Arch>(load_first<Arch>(x + i, n - i), load_first<Arch>(y + i, n - i), s1);
  return hsum<Arch>((s0 + s1) + (s2 + s3));
}

// max of x[0, n) (-inf when n == 0), four vector accumulators.
template <class Arch>
inline float row_max(const float* x, size_t n) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  V m0(-kInf), m1(-kInf), m2(-kInf), m3(-kInf);
  size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    m0 = xsimd::max(m0, V::load_unaligned(x + i));
    m1 = xsimd::max(m1, V::load_unaligned(x + i + W));
    m2 = xsimd::max(m2, V::load_unaligned(x + i + 2 * W));
    m3 = xsimd::max(m3, V::load_unaligned(x + i + 3 * W));
  }
  for (; i + W <= n; i += W) m0 = xsimd::max(m0, V::load_unaligned(x + i));
  if (i < n) m1 = xsimd::max(m1, load_first<Arch>(x + i, n - i, -kInf));
  return hmax<Arch>(xsimd::max(xsimd::max(m0, m1), xsimd::max(m2, m3)));
}

}  // namespace crt::kernels::simd
