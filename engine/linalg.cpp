// Dense linear algebra in double (see linalg.hpp).
#include "engine/linalg.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <utility>

#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "engine/parallel.hpp"
#include "kernels/kernels.hpp"

namespace crt {

// Rows of the result are split into fixed chunks of rows (the same sums at any thread count);
// within a chunk, a block of b's rows is reused by every row of the chunk.
Tensor matmul_f64(const Tensor& a_in, const Tensor& b_in) {
  require(a_in.defined() && b_in.defined() && a_in.dim() == 2 && b_in.dim() == 2 && a_in.size(1) == b_in.size(0),
          "matmul_f64", "needs [m, k] and [k, n] matrices, got ", a_in.describe(), " and ", b_in.describe());
  NoGradGuard no_grad;
  const Tensor a = a_in.to(DType::f64).contiguous(), b = b_in.to(DType::f64).contiguous();
  const std::int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  Tensor c = Tensor::zeros({m, n}, DType::f64);
  const double* ap = a.data<double>();
  const double* bp = b.data<double>();
  double* cp = c.data<double>();
  constexpr std::int64_t kRowsPerChunk = 32;
  parallel_for(0, m, kRowsPerChunk, [&](std::int64_t lo, std::int64_t hi) {
    kernels::gemm_f64_accumulate(ap + lo * k, bp, cp + lo * n, std::size_t(hi - lo),
                                 std::size_t(n), std::size_t(k));
  });
  return c;
}

Tensor gauss_jordan_inverse(const Tensor& m_in) {
  const char* op = "gauss_jordan_inverse";
  require(m_in.defined(), op, "matrix is an undefined tensor");
  require(m_in.dim() == 2 && m_in.size(0) == m_in.size(1), op, "needs a square matrix, got ",
          m_in.describe());
  NoGradGuard no_grad;
  const std::int64_t n = m_in.size(0);
  Tensor work = m_in.to(DType::f64);  // contiguous copy, reduced to I in place
  Tensor inv = Tensor::zeros({n, n}, DType::f64);
  double* m = work.data<double>();
  double* r = inv.data<double>();
  double scale = 0.0;
  for (std::int64_t i = 0; i < n * n; ++i) {
    require(std::isfinite(m[i]), op, "matrix ", m_in.describe(), " has non-finite entries");
    scale = std::max(scale, std::abs(m[i]));
  }
  for (std::int64_t i = 0; i < n; ++i) r[i * n + i] = 1.0;
  const double tiny = double(std::max<std::int64_t>(n, 1)) * DBL_EPSILON * scale;
  // Rows per parallel chunk: about 16k multiply-adds each.
  const std::int64_t grain = std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(n, 1));
  for (std::int64_t k = 0; k < n; ++k) {
    std::int64_t pivot = k;
    for (std::int64_t i = k + 1; i < n; ++i)
      if (std::abs(m[i * n + k]) > std::abs(m[pivot * n + k])) pivot = i;
    const double pv = m[pivot * n + k];
    require(std::abs(pv) > tiny && scale > 0.0, op, "matrix ", m_in.describe(),
            " is singular to working precision (pivot ", pv, " in column ", k, ")");
    if (pivot != k) {
      std::swap_ranges(m + pivot * n, m + pivot * n + n, m + k * n);
      std::swap_ranges(r + pivot * n, r + pivot * n + n, r + k * n);
    }
    const double inv_pv = 1.0 / pv;
    for (std::int64_t j = k; j < n; ++j) m[k * n + j] *= inv_pv;
    for (std::int64_t j = 0; j < n; ++j) r[k * n + j] *= inv_pv;
    // Eliminate column k from every other row; each chunk writes only its own rows.
    parallel_for(0, n, grain, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i) {
        if (i == k) continue;
        const double f = m[i * n + k];
        if (f == 0.0) continue;
        for (std::int64_t j = k; j < n; ++j) m[i * n + j] -= f * m[k * n + j];
        for (std::int64_t j = 0; j < n; ++j) r[i * n + j] -= f * r[k * n + j];
      }
    });
  }
  return inv;
}

}  // namespace crt
