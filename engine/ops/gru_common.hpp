// GEMM helpers shared by the fused GRU ops (gru_cell, gru_sequence): a tiled, optionally
// threaded product on contiguous buffers that counts its FLOPs, and the gate projection
// bias + in W^T. Internal to engine/ops.
#pragma once

#include <algorithm>
#include <cstdint>

#include "engine/flops.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "kernels/kernels.hpp"

namespace crt::detail {

// C = op(A) op(B) + beta C on contiguous row-major buffers; counts 2 m n k FLOPs (a multiply-
// add is 2), exactly what gru_cell counts for the same product. Large products are split over
// fixed output tiles (the partition, and with it every result, is independent of the thread
// count; each tile runs the full k-reduction on one thread). `threads` false keeps it on the
// calling thread.
template <class T>
void gemm_tiled(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
                std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
                bool threads) {
  count_flops(2 * m * n * k);
  if (m == 0 || n == 0) return;
  if (k == 0) {  // empty product: C = beta C
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  constexpr std::int64_t kTileM = 64, kTileN = 256;
  const bool split = threads && 2 * m * n * k >= (1 << 18);
  const std::int64_t tile_m = split ? kTileM : m, tile_n = split ? kTileN : n;
  const std::int64_t tiles_m = (m + tile_m - 1) / tile_m, tiles_n = (n + tile_n - 1) / tile_n;
  auto run_tiles = [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t t = lo; t < hi; ++t) {
      const std::int64_t i0 = (t / tiles_n) * tile_m, j0 = (t % tiles_n) * tile_n;
      const std::int64_t mi = std::min(tile_m, m - i0), nj = std::min(tile_n, n - j0);
      const T* at = ta ? a + i0 : a + i0 * lda;
      const T* bt = tb ? b + j0 * ldb : b + j0;
      kernels::gemm(ta, tb, usize(mi), usize(nj), usize(k), T(1), at, usize(lda), bt, usize(ldb),
                    beta, c + i0 * ldc + j0, usize(ldc));
    }
  };
  if (split) parallel_for(0, tiles_m * tiles_n, 1, run_tiles);
  else run_tiles(0, tiles_m * tiles_n);
}

// rows of gates: [rows, 3H] = bias broadcast over rows (or 0 when undefined), then
// gates += in [rows, K] W^T (W: [3H, K]). Used by gru_cell and gru_sequence alike.
template <class T>
void project(const T* in, std::int64_t rows, std::int64_t k, const Tensor& w, const Tensor& bias,
             T* gates, std::int64_t g3, bool threads) {
  if (bias.defined()) {
    const T* bp = bias.data<T>();
    for (std::int64_t r = 0; r < rows; ++r) std::copy(bp, bp + g3, gates + r * g3);
  }
  gemm_tiled<T>(false, true, rows, g3, k, in, k, w.data<T>(), k, bias.defined() ? T(1) : T(0),
                gates, g3, threads);
}

}  // namespace crt::detail
