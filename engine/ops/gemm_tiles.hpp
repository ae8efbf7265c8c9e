// The tiled GEMM behind the engine's products (matmul, linear, the GRU ops): C = op(A) op(B) +
// beta C on row-major buffers, split over fixed output tiles that threads share. Internal to
// engine/ops.
#pragma once

#include <algorithm>
#include <cstdint>

#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/kernels.hpp"

namespace crt::detail {

// Tiles depend on the shape (and the active kernel's register tile) only, never on the thread
// count, and each tile runs the full k-reduction on one thread, so results do not depend on
// the thread count. `threads` false (or a product under 2^18 FLOPs) keeps it on the calling
// thread as one kernel call.
template <class T>
void gemm_tiles(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
                std::int64_t lda, const T* b, std::int64_t ldb, T* c, std::int64_t ldc,
                T beta = T(0), bool threads = true) {
  // Tiles depend on the shape only, never on the thread count. The kernel packs each tile's
  // operands, so big tiles (192 x 512) cost least; a product worth several 4-MFLOP tiles is cut
  // (N first, down to 48 x 128) into at least 4 tiles for the threads, then the tiles are evened.
  const auto parts = [](std::int64_t extent, std::int64_t tile) { return (extent + tile - 1) / tile; };
  const auto even = [&](std::int64_t extent, std::int64_t tile, std::int64_t align) {
    const std::int64_t size = parts(extent, parts(extent, tile));
    return (size + align - 1) / align * align;
  };
  std::int64_t tile_m = 192, tile_n = 512;
  const std::int64_t want = std::min<std::int64_t>(4, 2 * m * n * k / (1 << 22));
  while (parts(m, tile_m) * parts(n, tile_n) < want && (tile_n > 128 || tile_m > 48))
    (tile_n > 128 ? tile_n : tile_m) /= 2;
  // Whole register tiles of the active kernel (fixed per process, so still thread-independent).
  const auto& kt = kernels::active_kernels();
  tile_m = even(m, tile_m, std::int64_t(kt.gemm_mr));
  tile_n = even(n, tile_n, std::int64_t(kt.gemm_nr));
  const std::int64_t tiles_m = parts(m, tile_m), tiles_n = parts(n, tile_n);
  const bool small = !threads || 2 * m * n * k < (1 << 18);
  const std::int64_t tiles = small ? 1 : tiles_m * tiles_n;
  parallel_for(0, tiles, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t t = lo; t < hi; ++t) {
      const std::int64_t i0 = small ? 0 : (t / tiles_n) * tile_m;
      const std::int64_t j0 = small ? 0 : (t % tiles_n) * tile_n;
      const std::int64_t mi = small ? m : std::min(tile_m, m - i0);
      const std::int64_t nj = small ? n : std::min(tile_n, n - j0);
      const T* at = ta ? a + i0 : a + i0 * lda;
      const T* bt = tb ? b + j0 * ldb : b + j0;
      kernels::gemm(ta, tb, usize(mi), usize(nj), usize(k), T(1), at, usize(lda), bt, usize(ldb),
                    beta, c + i0 * ldc + j0, usize(ldc));
    }
  });
}

}  // namespace crt::detail
