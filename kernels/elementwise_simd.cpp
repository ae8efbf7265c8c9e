// Element-wise kernels, row and column sums, and modReLU, compiled once per ISA (Note [ISA
// objects] in isa.hpp). Semantics: the float overloads in kernels.hpp; the scalar reference is
// kernels/reference.cpp. Row tails run the same vector code on a partial vector.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/simd_kernels.hpp"
#include "kernels/simd_util.hpp"

namespace crt::kernels::simd {
namespace {

// The lower and upper halves of v's lanes widened to double.
template <class Arch>
struct Widened {
  xsimd::batch<double, Arch> lo, hi;
};

template <class Arch>
inline Widened<Arch> widen(const Vec<Arch>& v) {
#if defined(CRT_KERNEL_ISA_AVX512)
  if constexpr (std::is_same_v<Arch, xsimd::avx512bw>) {
    const __m512 x = v;
    const __m256 upper = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1));
    return {_mm512_cvtps_pd(_mm512_castps512_ps256(x)), _mm512_cvtps_pd(upper)};
  }
#elif defined(CRT_KERNEL_ISA_AVX2)
  if constexpr (std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>>) {
    const __m256 x = v;
    return {_mm256_cvtps_pd(_mm256_castps256_ps128(x)),
            _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1))};
  }
#elif defined(CRT_KERNEL_ISA_SSE2)
  if constexpr (std::is_same_v<Arch, xsimd::sse2>) {
    const __m128 x = v;
    return {_mm_cvtps_pd(x), _mm_cvtps_pd(_mm_movehl_ps(x, x))};
  }
#elif defined(CRT_KERNEL_ISA_NEON64)
  if constexpr (std::is_same_v<Arch, xsimd::neon64>) {
    const float32x4_t x = v;
    return {vcvt_f64_f32(vget_low_f32(x)), vcvt_high_f64_f32(x)};
  }
#endif
}

// Runs f(a op b) for the op chosen once, outside the loop.
template <class Arch, class Fn>
inline void with_binary_op(BinaryOp op, Fn f) {
  using V = Vec<Arch>;
  switch (op) {
    case BinaryOp::add: return f([](V a, V b) { return a + b; });
    case BinaryOp::sub: return f([](V a, V b) { return a - b; });
    case BinaryOp::mul: return f([](V a, V b) { return a * b; });
    case BinaryOp::div: return f([](V a, V b) { return divide<Arch>(a, b); });
  }
}

}  // namespace

template <class Arch>
void binary(BinaryOp op, const float* a, const float* b, float* y, size_t n) {
  with_binary_op<Arch>(op, [&](auto fn) {
    map<Arch>(n, y, [fn](Vec<Arch> x, Vec<Arch> z) { return fn(x, z); }, a, b);
  });
}

template <class Arch>
void binary_scalar_right(BinaryOp op, const float* a, float b, float* y, size_t n) {
  const Vec<Arch> vb(b);
  with_binary_op<Arch>(op, [&](auto fn) {
    map<Arch>(n, y, [fn, vb](Vec<Arch> x) { return fn(x, vb); }, a);
  });
}

template <class Arch>
void binary_scalar_left(BinaryOp op, float a, const float* b, float* y, size_t n) {
  const Vec<Arch> va(a);
  with_binary_op<Arch>(op, [&](auto fn) {
    map<Arch>(n, y, [fn, va](Vec<Arch> x) { return fn(va, x); }, b);
  });
}

template <class Arch>
void unary(UnaryOp op, const float* x, float* y, size_t n) {
  using V = Vec<Arch>;
  switch (op) {
    case UnaryOp::neg: return map<Arch>(n, y, [](V v) { return negate<Arch>(v); }, x);
    case UnaryOp::exp: return map<Arch>(n, y, [](V v) { return simd::exp<Arch>(v); }, x);
    case UnaryOp::log: return map<Arch>(n, y, [](V v) { return xsimd::log(v); }, x);
    case UnaryOp::relu:
      return map<Arch>(n, y, [](V v) { return xsimd::select(v > V(0.0f), v, V(0.0f)); }, x);
    case UnaryOp::gelu:
      return map<Arch>(n, y, [](V v) { return v * normal_cdf<Arch>(v); }, x);
    case UnaryOp::tanh: return map<Arch>(n, y, [](V v) { return xsimd::tanh(v); }, x);
    case UnaryOp::sigmoid: return map<Arch>(n, y, [](V v) { return sigmoid<Arch>(v); }, x);
    case UnaryOp::sqrt: return map<Arch>(n, y, [](V v) { return square_root<Arch>(v); }, x);
    case UnaryOp::square: return map<Arch>(n, y, [](V v) { return v * v; }, x);
  }
}

template <class Arch>
void unary_backward(UnaryOp op, const float* x, const float* y, const float* dy, float* dx,
                    size_t n) {
  using V = Vec<Arch>;
  switch (op) {  // x or y is null for the ops that do not read it
    case UnaryOp::neg: return map<Arch>(n, dx, [](V g) { return negate<Arch>(g); }, dy);
    case UnaryOp::exp: return map<Arch>(n, dx, [](V g, V out) { return g * out; }, dy, y);
    case UnaryOp::log:
      return map<Arch>(n, dx, [](V g, V in) { return divide<Arch>(g, in); }, dy, x);
    case UnaryOp::relu:
      return map<Arch>(  // g * (0 or 1), as the reference: -0 for negative g, NaN for inf g
          n, dx, [](V g, V in) { return g * xsimd::select(in > V(0.0f), V(1.0f), V(0.0f)); }, dy,
          x);
    case UnaryOp::gelu:
      return map<Arch>(
          n, dx,
          [](V g, V in) {  // Phi(x) + x phi(x)
            const V pdf = V(kInvSqrt2Pi) * simd::exp<Arch>(V(-0.5f) * in * in);
            return g * fma<Arch>(in, pdf, normal_cdf<Arch>(in));
          },
          dy, x);
    case UnaryOp::tanh:
      return map<Arch>(n, dx, [](V g, V out) { return g * (V(1.0f) - out * out); }, dy, y);
    case UnaryOp::sigmoid:
      return map<Arch>(n, dx, [](V g, V out) { return g * (out * (V(1.0f) - out)); }, dy, y);
    case UnaryOp::sqrt:
      return map<Arch>(n, dx, [](V g, V out) { return g * divide<Arch>(V(0.5f), out); }, dy, y);
    case UnaryOp::square:
      return map<Arch>(n, dx, [](V g, V in) { return g * (V(2.0f) * in); }, dy, x);
  }
}

template <class Arch>
void axpy(float alpha, const float* x, float* y, size_t n) {
  const Vec<Arch> va(alpha);
  map<Arch>(n, y, [va](Vec<Arch> xv, Vec<Arch> yv) { return fma<Arch>(va, xv, yv); }, x, y);
}

// The mask is made a block at a time into a buffer on the stack, without branches (which kept
// elements are is random: a branch per element mispredicted often enough to double the time),
// then y = x * mask on float vectors. AVX-512 (with a 64-bit vector multiply) hashes 8 indices
// per vector; the other ISAs have none (xsimd emulates it, slower than scalar code) and hash one
// index at a time.
template <class Arch>
void dropout_apply(const float* x, float* y, size_t n, std::uint64_t key, std::uint64_t index0,
                   std::uint64_t threshold, float scale) {
  constexpr size_t kBlock = 256;
  std::uint32_t scale_bits;
  std::memcpy(&scale_bits, &scale, sizeof scale_bits);
  alignas(64) std::uint32_t mask[kBlock];  // the bits of scale or of 0.0f
#if defined(CRT_KERNEL_ISA_AVX512)
  using U = xsimd::batch<std::uint64_t, Arch>;
  constexpr size_t L = U::size;  // divides kBlock
  alignas(64) std::uint64_t lanes[L];
  for (size_t l = 0; l < L; ++l) lanes[l] = l;
  const U lane = U::load_aligned(lanes);
  using namespace counter_hash_constants;  // counter_hash, 8 indices at a time
  const U key_mix(key * kKey + kOffset);
  const U limit(threshold), all_ones(~std::uint64_t(0)), none(0);
#endif
  for (size_t b0 = 0; b0 < n; b0 += kBlock) {
    const size_t len = n - b0 < kBlock ? n - b0 : kBlock;
#if defined(CRT_KERNEL_ISA_AVX512)
    for (size_t j = 0; j < len; j += L) {
      U z = key_mix + (U(index0 + b0 + j) + lane) * U(kIndex);
      z = (z ^ (z >> 30)) * U(kMix1);
      z = (z ^ (z >> 27)) * U(kMix2);
      z = z ^ (z >> 31);
      alignas(64) std::uint64_t keep[L];
      xsimd::select((z >> 11) >= limit, all_ones, none).store_aligned(keep);
      for (size_t l = 0; l < L; ++l) mask[j + l] = scale_bits & std::uint32_t(keep[l]);
    }
#else
    for (size_t j = 0; j < len; ++j) {
      const bool keep = (counter_hash(key, index0 + b0 + j) >> 11) >= threshold;
      mask[j] = scale_bits & (0u - std::uint32_t(keep));
    }
#endif
    map<Arch>(len, y + b0, [](Vec<Arch> xv, Vec<Arch> mv) { return xv * mv; }, x + b0,
              reinterpret_cast<const float*>(mask));
  }
}

template <class Arch>
double sum_squares(const float* x, size_t n) {
  using V = Vec<Arch>;
  using D = xsimd::batch<double, Arch>;
  constexpr size_t W = kLanes<Arch>;
  D s0(0.0), s1(0.0), s2(0.0), s3(0.0);  // squares of floats are exact in double
  size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const Widened<Arch> a = widen<Arch>(V::load_unaligned(x + i));
    const Widened<Arch> b = widen<Arch>(V::load_unaligned(x + i + W));
    s0 = xsimd::fma(a.lo, a.lo, s0);
    s1 = xsimd::fma(a.hi, a.hi, s1);
    s2 = xsimd::fma(b.lo, b.lo, s2);
    s3 = xsimd::fma(b.hi, b.hi, s3);
  }
  if (i + W <= n) {
    const Widened<Arch> a = widen<Arch>(V::load_unaligned(x + i));
    s0 = xsimd::fma(a.lo, a.lo, s0);
    s1 = xsimd::fma(a.hi, a.hi, s1);
    i += W;
  }
  if (i < n) {
    const Widened<Arch> a = widen<Arch>(load_first<Arch>(x + i, n - i));
    s2 = xsimd::fma(a.lo, a.lo, s2);
    s3 = xsimd::fma(a.hi, a.hi, s3);
  }
  return xsimd::hadd((s0 + s1) + (s2 + s3));
}

template <class Arch>
void sum_rows(const float* x, float* y, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r) y[r] = row_sum<Arch>(x + r * cols, cols);
}

// Blocks of up to kColBlock columns (y's block stays in L1); within a block the rows are added
// into y one after another, so each column is summed in row order starting from y
// (accumulate) or 0, as in the reference, and x is read sequentially.
template <class Arch>
void sum_cols(const float* x, float* y, size_t rows, size_t cols, bool accumulate) {
  using V = Vec<Arch>;
  constexpr size_t kColBlock = 2048;
  if (!accumulate) map<Arch>(cols, y, [] { return V(0.0f); });
  for (size_t c0 = 0; c0 < cols; c0 += kColBlock) {
    const size_t width = cols - c0 < kColBlock ? cols - c0 : kColBlock;
    for (size_t r = 0; r < rows; ++r)
      map<Arch>(width, y + c0, [](V acc, V v) { return acc + v; }, y + c0, x + r * cols + c0);
  }
}

namespace {

// sign(z) * max(|z| + b, 0), with sign(0) = 0.
template <class Arch>
inline Vec<Arch> modrelu(const Vec<Arch>& z, const Vec<Arch>& b) {
  using V = Vec<Arch>;
  const V zero(0.0f), mag = xsimd::abs(z) + b;
  const V negative = xsimd::select(z < zero, negate<Arch>(mag), zero);
  const V signed_mag = xsimd::select(z > zero, mag, negative);
  return xsimd::select(mag > zero, signed_mag, zero);
}

}  // namespace

template <class Arch>
void modrelu_forward(const float* z, const float* b, float* y, size_t rows, size_t cols) {
  for (size_t r = 0; r < rows; ++r)
    map<Arch>(cols, y + r * cols, [](Vec<Arch> zv, Vec<Arch> bv) { return modrelu<Arch>(zv, bv); },
              z + r * cols, b);
}

template <class Arch>
void modrelu_backward(const float* z, const float* b, const float* dy, float* dz, float* db,
                      size_t rows, size_t cols) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  const V zero(0.0f);
  // dz = dy where active; db += dy * sign(z) where active. Returns dz, adds to *db_acc.
  const auto step = [zero](V zv, V bv, V g, V& db_acc) {
    const auto active = xsimd::abs(zv) + bv > zero;
    db_acc += xsimd::select(active && (zv > zero), g,
                            xsimd::select(active && (zv < zero), negate<Arch>(g), zero));
    return xsimd::select(active, g, zero);
  };
  for (size_t r = 0; r < rows; ++r) {
    const float* zr = z + r * cols;
    const float* gr = dy + r * cols;
    float* dzr = dz + r * cols;
    size_t c = 0;
    for (; c + W <= cols; c += W) {
      V acc = db ? V::load_unaligned(db + c) : zero;
      step(V::load_unaligned(zr + c), V::load_unaligned(b + c), V::load_unaligned(gr + c), acc)
          .store_unaligned(dzr + c);
      if (db) acc.store_unaligned(db + c);
    }
    if (c < cols) {
      const size_t left = cols - c;
      V acc = db ? load_first<Arch>(db + c, left) : zero;
      store_first<Arch>(step(load_first<Arch>(zr + c, left), load_first<Arch>(b + c, left),
                             load_first<Arch>(gr + c, left), acc),
                        dzr + c, left);
      if (db) store_first<Arch>(acc, db + c, left);
    }
  }
}

template void binary<arch_t>(BinaryOp, const float*, const float*, float*, size_t);
template void binary_scalar_right<arch_t>(BinaryOp, const float*, float, float*, size_t);
template void binary_scalar_left<arch_t>(BinaryOp, float, const float*, float*, size_t);
template void unary<arch_t>(UnaryOp, const float*, float*, size_t);
template void unary_backward<arch_t>(UnaryOp, const float*, const float*, const float*, float*,
                                     size_t);
template void axpy<arch_t>(float, const float*, float*, size_t);
template void dropout_apply<arch_t>(const float*, float*, size_t, std::uint64_t, std::uint64_t,
                                    std::uint64_t, float);
template double sum_squares<arch_t>(const float*, size_t);
template void sum_rows<arch_t>(const float*, float*, size_t, size_t);
template void sum_cols<arch_t>(const float*, float*, size_t, size_t, bool);
template void modrelu_forward<arch_t>(const float*, const float*, float*, size_t, size_t);
template void modrelu_backward<arch_t>(const float*, const float*, const float*, float*, float*,
                                       size_t, size_t);

}  // namespace crt::kernels::simd
