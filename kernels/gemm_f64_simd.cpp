// Double-precision C += A B on row-major contiguous matrices, vectorised along the rows of B
// and C, four rows of A at a time. For the double math that runs in training, not only in
// tests: the NCGRU's orthogonal update (crt/ncgru.cpp) multiplies H x H matrices in double at
// every optimiser step. (The other double kernels run the scalar reference.) Compiled once per
// ISA (Note [ISA objects] in isa.hpp).
#include <cstddef>

#include "kernels/simd_kernels.hpp"
#include "kernels/simd_util.hpp"

namespace crt::kernels::simd {
namespace {

// C[0:R, j0:j0+NV*W] += A[0:R, :] B[:, j0:j0+NV*W] with R rows of A, NV vectors of B per k.
template <class Arch, size_t R, size_t NV>
void f64_tile(const double* a, const double* b, double* c, size_t n, size_t k, size_t j0) {
  using V = xsimd::batch<double, Arch>;
  constexpr size_t W = V::size;
  V acc[R][NV];
  for (size_t r = 0; r < R; ++r)
    for (size_t v = 0; v < NV; ++v) acc[r][v] = V::load_unaligned(c + r * n + j0 + v * W);
  for (size_t p = 0; p < k; ++p) {
    V bv[NV];
    for (size_t v = 0; v < NV; ++v) bv[v] = V::load_unaligned(b + p * n + j0 + v * W);
    for (size_t r = 0; r < R; ++r) {
      const V av(a[r * k + p]);
      for (size_t v = 0; v < NV; ++v) acc[r][v] = xsimd::fma(av, bv[v], acc[r][v]);
    }
  }
  for (size_t r = 0; r < R; ++r)
    for (size_t v = 0; v < NV; ++v) acc[r][v].store_unaligned(c + r * n + j0 + v * W);
}

template <class Arch, size_t R>
void f64_rows(const double* a, const double* b, double* c, size_t n, size_t k) {
  constexpr size_t W = xsimd::batch<double, Arch>::size, NV = 2;
  size_t j = 0;
  for (; j + NV * W <= n; j += NV * W) f64_tile<Arch, R, NV>(a, b, c, n, k, j);
  for (; j + W <= n; j += W) f64_tile<Arch, R, 1>(a, b, c, n, k, j);
  for (; j < n; ++j)  // the last columns, one at a time
    for (size_t r = 0; r < R; ++r) {
      double s = c[r * n + j];
      for (size_t p = 0; p < k; ++p) s += a[r * k + p] * b[p * n + j];
      c[r * n + j] = s;
    }
}

}  // namespace

template <class Arch>
void gemm_f64_accumulate(const double* a, const double* b, double* c, size_t m, size_t n,
                         size_t k) {
  size_t i = 0;
  for (; i + 4 <= m; i += 4) f64_rows<Arch, 4>(a + i * k, b, c + i * n, n, k);
  for (; i < m; ++i) f64_rows<Arch, 1>(a + i * k, b, c + i * n, n, k);
}

template void gemm_f64_accumulate<arch_t>(const double*, const double*, double*, size_t, size_t,
                                          size_t);

}  // namespace crt::kernels::simd
