// Softmax, log-softmax and fused cross-entropy over contiguous rows, compiled once per ISA
// (Note [ISA objects] in isa.hpp). logsumexp reads each row from memory once: per block of
// kBlock floats, the lane maxima first, then exp(x - running max) from L1 (online rescaling).
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/simd_kernels.hpp"
#include "kernels/simd_util.hpp"

namespace crt::kernels::simd {
namespace {

// Floats per block of the one-pass logsumexp (16 KiB: half an L1 data cache).
constexpr size_t kBlock = 4096;

// log(sum_i exp(x[i])) for i < n; -inf when n == 0 or every x[i] is -inf. Each lane keeps its
// own running maximum m and sum s of exp(x - m); lanes are combined at the end.
template <class Arch>
float row_logsumexp(const float* x, size_t n) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  V m_run(-kInf), s_run(0.0f);
  for (size_t b0 = 0; b0 < n; b0 += kBlock) {
    const float* xb = x + b0;
    const size_t len = n - b0 < kBlock ? n - b0 : kBlock;
    V m0(-kInf), m1(-kInf), m2(-kInf), m3(-kInf);
    size_t i = 0;
    for (; i + 4 * W <= len; i += 4 * W) {
      m0 = xsimd::max(m0, V::load_unaligned(xb + i));
      m1 = xsimd::max(m1, V::load_unaligned(xb + i + W));
      m2 = xsimd::max(m2, V::load_unaligned(xb + i + 2 * W));
      m3 = xsimd::max(m3, V::load_unaligned(xb + i + 3 * W));
    }
    for (; i + W <= len; i += W) m0 = xsimd::max(m0, V::load_unaligned(xb + i));
    if (i < len) m1 = xsimd::max(m1, load_first<Arch>(xb + i, len - i, -kInf));
    const V m_new = xsimd::max(m_run, xsimd::max(xsimd::max(m0, m1), xsimd::max(m2, m3)));
    // A lane whose values are all -inf so far shifts by 0: exp(-inf - 0) = 0, not NaN.
    const V shift = xsimd::select(m_new == V(-kInf), V(0.0f), m_new);
    V s0 = s_run * simd::exp<Arch>(m_run - shift), s1(0.0f);
    i = 0;
    for (; i + 2 * W <= len; i += 2 * W) {
      // Fetch the next block while this one is computed (its max pass then hits the cache).
      for (size_t line = 0; line < 2 * W; line += 16) __builtin_prefetch(xb + kBlock + i + line);
      s0 += simd::exp<Arch>(V::load_unaligned(xb + i) - shift);
      s1 += simd::exp<Arch>(V::load_unaligned(xb + i + W) - shift);
    }
    for (; i + W <= len; i += W) s0 += simd::exp<Arch>(V::load_unaligned(xb + i) - shift);
    if (i < len) s1 += simd::exp<Arch>(load_first<Arch>(xb + i, len - i, -kInf) - shift);
    s_run = s0 + s1;
    m_run = m_new;
  }
  const float m = hmax<Arch>(m_run);
  if (m == -kInf) return m;
  const float s = hsum<Arch>(s_run * simd::exp<Arch>(m_run - V(m)));
  return m + std::log(s);
}

// y = exp(x - shift) for i < n; returns the sum of y.
template <class Arch>
float exp_store_sum(const float* x, float shift, float* y, size_t n) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  const V vs(shift);
  V s0(0.0f), s1(0.0f);
  size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const V e0 = simd::exp<Arch>(V::load_unaligned(x + i) - vs);
    const V e1 = simd::exp<Arch>(V::load_unaligned(x + i + W) - vs);
    e0.store_unaligned(y + i);
    e1.store_unaligned(y + i + W);
    s0 += e0;
    s1 += e1;
  }
  for (; i + W <= n; i += W) {
    const V e = simd::exp<Arch>(V::load_unaligned(x + i) - vs);
    e.store_unaligned(y + i);
    s0 += e;
  }
  if (i < n) {
    const V e = simd::exp<Arch>(load_first<Arch>(x + i, n - i, -kInf) - vs);
    store_first<Arch>(e, y + i, n - i);
    s1 += e;
  }
  return hsum<Arch>(s0 + s1);
}

}  // namespace

template <class Arch>
void softmax_rows(const float* x, float* y, size_t rows, size_t cols) {
  using V = Vec<Arch>;
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    const float m = row_max<Arch>(xr, cols);
    const V inv(1.0f / exp_store_sum<Arch>(xr, m, yr, cols));
    map<Arch>(cols, yr, [inv](V e) { return e * inv; }, yr);
  }
}

template <class Arch>
void softmax_backward_rows(const float* y, const float* dy, float* dx, size_t rows, size_t cols) {
  using V = Vec<Arch>;
  for (size_t r = 0; r < rows; ++r) {
    const float* yr = y + r * cols;
    const float* gr = dy + r * cols;
    const V dot(row_dot<Arch>(yr, gr, cols));
    map_row<Arch>(cols, dx + r * cols, [dot](V yv, V g) { return yv * (g - dot); }, yr, gr);
  }
}

template <class Arch>
void log_softmax_rows(const float* x, float* y, size_t rows, size_t cols) {
  using V = Vec<Arch>;
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const V lse(row_logsumexp<Arch>(xr, cols));
    map<Arch>(cols, y + r * cols, [lse](V xv) { return xv - lse; }, xr);
  }
}

template <class Arch>
void log_softmax_backward_rows(const float* y, const float* dy, float* dx, size_t rows,
                               size_t cols) {
  using V = Vec<Arch>;
  for (size_t r = 0; r < rows; ++r) {
    const float* yr = y + r * cols;
    const float* gr = dy + r * cols;
    const V sum(row_sum<Arch>(gr, cols));
    map<Arch>(cols, dx + r * cols,
              [sum](V yv, V g) { return g - simd::exp<Arch>(yv) * sum; }, yr, gr);
  }
}

template <class Arch>
void cross_entropy_forward(const float* logits, const std::int32_t* targets, float* loss,
                           float* lse, size_t rows, size_t cols, std::int32_t ignore_index) {
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = logits + r * cols;
    lse[r] = row_logsumexp<Arch>(xr, cols);
    loss[r] = targets[r] == ignore_index ? 0.0f : lse[r] - xr[targets[r]];
  }
}

template <class Arch>
void cross_entropy_backward(const float* logits, const float* lse, const std::int32_t* targets,
                            const float* row_scale, float* dlogits, size_t rows, size_t cols,
                            std::int32_t ignore_index) {
  using V = Vec<Arch>;
  for (size_t r = 0; r < rows; ++r) {
    float* dr = dlogits + r * cols;
    if (targets[r] == ignore_index) {
      map<Arch>(cols, dr, [] { return V(0.0f); });
      continue;
    }
    const V shift(lse[r]), scale(row_scale[r]);
    map<Arch>(cols, dr, [shift, scale](V xv) { return scale * simd::exp<Arch>(xv - shift); },
              logits + r * cols);
    dr[targets[r]] -= row_scale[r];
  }
}

template void softmax_rows<arch_t>(const float*, float*, size_t, size_t);
template void softmax_backward_rows<arch_t>(const float*, const float*, float*, size_t, size_t);
template void log_softmax_rows<arch_t>(const float*, float*, size_t, size_t);
template void log_softmax_backward_rows<arch_t>(const float*, const float*, float*, size_t,
                                                size_t);
template void cross_entropy_forward<arch_t>(const float*, const std::int32_t*, float*, float*,
                                            size_t, size_t, std::int32_t);
template void cross_entropy_backward<arch_t>(const float*, const float*, const std::int32_t*,
                                             const float*, float*, size_t, size_t, std::int32_t);

}  // namespace crt::kernels::simd
