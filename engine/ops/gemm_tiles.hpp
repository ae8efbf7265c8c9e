// The tiled GEMM behind the engine's products (matmul, linear, the GRU ops): C = op(A) op(B) +
// beta C on row-major buffers, split over fixed output tiles that threads share. Internal to
// engine/ops.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>

#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/kernels.hpp"

namespace crt::detail {

// A split of [0, extent) into `parts` pieces that start on multiples of `align`, each as near
// to extent / parts as that allows. Piece i is [at(i), at(i + 1)).
struct Split {
  std::int64_t extent, parts, align;
  std::int64_t at(std::int64_t i) const {
    if (i >= parts) return extent;
    return std::min(extent, (2 * i * extent + parts * align) / (2 * parts * align) * align);
  }
  std::int64_t size(std::int64_t i) const { return at(i + 1) - at(i); }
  // Every piece holds at least `align` (or, when the extent is shorter, all of it).
  bool whole_units() const {
    for (std::int64_t i = 0; i < parts; ++i)
      if (size(i) < std::min(align, extent)) return false;
    return true;
  }
};

// The output tiling of an m x n product: rows.parts x cols.parts tiles, row-major.
struct TileGrid {
  Split rows, cols;
  std::int64_t count() const { return rows.parts * cols.parts; }
};

// The tiles of an m x n x k product for `threads` threads, on whole register tiles (mr x nr).
// One thread: the whole product in one kernel call (every tile repacks its rows of A and columns
// of B, so more tiles on one thread only cost). More: one or two tiles per thread, fewer for
// products under 2^23 FLOPs a tile, but one per thread down to 2^20 FLOPs a tile (so that a
// batch-16 GRU step's 16 x 768 x 256 product, 6.3 MFLOP, still uses every core). Of the ways to cut them
// (tm x tn), the one whose busiest thread has the least estimated work: parallel_for hands each
// thread a contiguous run of count / threads tiles (row-major), and a tile costs its
// multiply-adds plus the packing of its A rows (about 20 FLOP-equivalents an element in the
// kernel's transposition) and B columns (about 8); ties go to the least total.
inline TileGrid choose_tiles(std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t mr,
                             std::int64_t nr, std::int64_t threads) {
  TileGrid best{{m, 1, mr}, {n, 1, nr}};
  if (threads <= 1) return best;
  std::int64_t most = 1;
  while (most < 2 * threads && 2 * m * n * k >= most * (std::int64_t(1) << 23)) most *= 2;
  if (most < threads && 2 * m * n * k >= threads * (std::int64_t(1) << 20)) most = threads;
  const auto cost = [&](std::int64_t rows, std::int64_t cols) {
    return 2.0 * double(rows) * double(cols) + 20.0 * double(rows) + 8.0 * double(cols);
  };
  double best_score = std::numeric_limits<double>::infinity();
  for (std::int64_t want = std::min(most, threads); want <= most; want *= 2) {
    for (std::int64_t tm = 1; tm <= want; tm *= 2) {
      const TileGrid grid{{m, tm, mr}, {n, want / tm, nr}};
      if (!grid.rows.whole_units() || !grid.cols.whole_units()) continue;
      const std::int64_t run = std::max<std::int64_t>(1, grid.count() / threads);
      double total = 0.0, busiest = 0.0, this_run = 0.0;
      for (std::int64_t t = 0; t < grid.count(); ++t) {
        const double c =
            cost(grid.rows.size(t / grid.cols.parts), grid.cols.size(t % grid.cols.parts));
        total += c;
        this_run += c;
        if ((t + 1) % run == 0 || t + 1 == grid.count()) {
          busiest = std::max(busiest, this_run);
          this_run = 0.0;
        }
      }
      const double score = busiest + 1e-3 * total;
      if (score < best_score) {
        best = grid;
        best_score = score;
      }
    }
  }
  return best;
}

// Whether gemm_tiles computes a product as two half-depth products summed in a fixed order,
// C = (beta C + op(A)[:, :k0] op(B)[:k0, :]) + op(A)[:, k0:] op(B)[k0:, :], at every thread
// count. Deep products of few rows: cut by rows or columns, two threads share one operand and
// each reads it whole (each runs slower beside the other than alone, and thinner tiles are
// slower too); the halves share nothing. Measured faster up to 128 rows and slower at 512;
// 256 was not measured, hence the bound of 128.
inline bool splits_depth(std::int64_t m, std::int64_t n, std::int64_t k) {
  return m > 4 && m <= 128 && k >= 512 && 2 * m * n * k >= (std::int64_t(1) << 24);
}

// C = op(A) op(B) + beta C over the tiles of choose_tiles, each running the whole k-reduction
// in one kernel call (for splits_depth products, half of it). The tiling depends on the thread
// count, the bits do not: the kernel computes an element the same way in whatever tile it
// falls (test "kernels: gemm results do not depend on the tile an element falls in") when the
// tile has more than 4 rows, and rows are only cut into pieces of whole register tiles (6 rows
// or more); products of at most 4 rows (which take other kernel paths) are cut the same at
// every thread count. `threads` false (or a product under 2^18 FLOPs) keeps it on the calling
// thread as one kernel call.
template <class T>
void gemm_tiles(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
                std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc,
                T beta = T(0), bool threads = true) {
  const auto& kt = kernels::active_kernels();
  const std::int64_t mr = std::int64_t(kt.gemm_mr), nr = std::int64_t(kt.gemm_nr);
  // Tile `tile` of `grid` over depth [p0, p0 + kh), into out (ld ldo) with `beta_out`.
  const auto run_tile = [&](const TileGrid& grid, std::int64_t tile, std::int64_t p0,
                            std::int64_t kh, T* out, std::int64_t ldo, T beta_out) {
    const std::int64_t tn = grid.cols.parts;
    const std::int64_t i0 = grid.rows.at(tile / tn), mi = grid.rows.size(tile / tn);
    const std::int64_t j0 = grid.cols.at(tile % tn), nj = grid.cols.size(tile % tn);
    const T* at = ta ? a + p0 * lda + i0 : a + i0 * lda + p0;
    const T* bt = tb ? b + j0 * ldb + p0 : b + p0 * ldb + j0;
    kernels::gemm(ta, tb, usize(mi), usize(nj), usize(kh), T(1), at, usize(lda), bt, usize(ldb),
                  beta_out, out + i0 * ldo + j0, usize(ldo));
  };
  if (threads && splits_depth(m, n, k)) {
    // The halves on half the threads each (their tiles' bits do not depend on the tiling, as
    // below), the second into a buffer added to C afterwards.
    const std::int64_t kc = std::int64_t(kt.gemm_kc);
    const std::int64_t k0 = std::max(kc, (k / 2 + kc / 2) / kc * kc);
    const std::unique_ptr<T[]> second(new T[usize(m * n)]);
    const std::int64_t per_half = std::max(1, num_threads() / 2);
    const TileGrid first_half = choose_tiles(m, n, k0, mr, nr, per_half);
    const TileGrid second_half = choose_tiles(m, n, k - k0, mr, nr, per_half);
    parallel_for(0, first_half.count() + second_half.count(), 1,
                 [&](std::int64_t lo, std::int64_t hi) {
                   for (std::int64_t t = lo; t < hi; ++t) {
                     if (t < first_half.count())
                       run_tile(first_half, t, 0, k0, c, ldc, beta);
                     else
                       run_tile(second_half, t - first_half.count(), k0, k - k0, second.get(),
                                n, T(0));
                   }
                 });
    parallel_for(0, m, 16, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t i = lo; i < hi; ++i)  // C += second, row by row (1 * x + y is exact)
        kernels::axpy(T(1), second.get() + i * n, c + i * ldc, usize(n));
    });
    return;
  }
  const bool one_call = !threads || 2 * m * n * k < (1 << 18);
  const std::int64_t split_for = one_call ? 1 : m <= 4 ? 2 : num_threads();
  const TileGrid grid = choose_tiles(m, n, k, mr, nr, split_for);
  parallel_for(0, grid.count(), 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t t = lo; t < hi; ++t) run_tile(grid, t, 0, k, c, ldc, beta);
  });
}

}  // namespace crt::detail
