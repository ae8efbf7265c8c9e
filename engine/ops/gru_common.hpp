// GEMM helpers shared by the fused GRU ops (gru_cell, gru_sequence): a tiled, optionally
// threaded product on contiguous buffers that counts its FLOPs, and the gate projection
// bias + in W^T. Internal to engine/ops.
#pragma once

#include <algorithm>
#include <cstdint>

#include "engine/flops.hpp"
#include "engine/ops/gemm_tiles.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "engine/weight_cache.hpp"
#include "kernels/kernels.hpp"

namespace crt::detail {

// C = op(A) op(B) + beta C (gemm_tiles.hpp), counting its 2 m n k FLOPs (a multiply-add is 2).
template <class T>
void gemm_tiled(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const T* a,
                std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc,
                bool threads) {
  count_flops(2 * m * n * k);
  gemm_tiles<T>(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, beta, threads);
}

// W^T [K, 3H] of `param` for a product of `rows` rows, when inference reads it from the cache
// (weight_cache.hpp), else null; keep_alive holds it.
template <class T>
const T* cached_weight_t(const Tensor& param, std::int64_t rows, Tensor& keep_alive) {
  if (!use_weight_cache_rows(rows, param)) return nullptr;
  keep_alive = cached_transpose(param);
  return keep_alive.data<T>();
}

// rows of gates: [rows, 3H] = bias broadcast over rows (or 0 when undefined), then
// gates += in [rows, K] W^T, with W given as stored (w: [3H, K]) or, when w_t is not null,
// transposed (w_t: [K, 3H], read in place). Used by gru_cell and gru_sequence alike.
template <class T>
void project(const T* in, std::int64_t rows, std::int64_t k, const T* w, const T* w_t,
             const Tensor& bias, T* gates, std::int64_t g3, bool threads) {
  if (bias.defined()) {
    const T* bp = bias.data<T>();
    for (std::int64_t r = 0; r < rows; ++r) std::copy(bp, bp + g3, gates + r * g3);
  }
  const T beta = bias.defined() ? T(1) : T(0);
  if (w_t) gemm_tiled<T>(false, false, rows, g3, k, in, k, w_t, g3, beta, gates, g3, threads);
  else gemm_tiled<T>(false, true, rows, g3, k, in, k, w, k, beta, gates, g3, threads);
}

// Small batches (a streaming step, batch 1) are bound by reading the weights, 3H x (I + H)
// values, not by arithmetic. There a step is split by hidden units instead of by product: a
// block of units reads its three gate rows of the weights, and its gate math follows at once.
// Blocks go to threads with the same assignment at every call (parallel_for_static), so each
// core keeps re-reading its own slice of the weights from its own cache: at d = 256 the 1.5 MB
// of a GRU cell's weights overflow one core's L2 but two cores' together hold them. The
// blocks are fixed by H alone, and each output row of a GEMV is computed the same way wherever
// it falls (kernels' A B^T at one row), so the split gives the same bits as one product over
// all rows: without GEMV panels the op takes the split only with more than one thread, where
// it pays (on one thread twelve smaller products per step cost more than two).
inline bool use_unit_split(std::int64_t batch) { return batch == 1 && num_threads() > 1; }
constexpr std::int64_t kUnitBlock = 64;

// A GRU weight [3H, K] (rows contiguous) as its three gate blocks, and optionally the same
// packed for kernels::gemv_packed (weight_cache.hpp's cached_gemv_panels, blocks = 3) for
// batch-1 steps. Unit blocks start at multiples of kUnitBlock, a multiple of every panel width.
template <class T>
struct GateWeights {
  const T* w = nullptr;
  std::int64_t k = 0;
  const T* packed = nullptr;
  std::size_t panel = 0;
};

// The gate blocks of `param` (its contiguous data: `data`), with its cached panels when it is
// a parameter used at batch 1 with gradients off (inference); keep_alive holds the panels.
template <class T>
GateWeights<T> gate_weights(const Tensor& param, const Tensor& data, std::int64_t batch,
                            Tensor& keep_alive) {
  GateWeights<T> gw{data.data<T>(), data.size(1), nullptr, 0};
  if (use_gemv_panels(batch, param)) {
    gw.panel = gemv_panel_for(param.dtype());
    keep_alive = cached_gemv_panels(param, 3, gw.panel);
    gw.packed = keep_alive.data<T>();
  }
  return gw;
}

// rows[g * nb + j] += in . W[g * H + j0 + j, :] for g = r, z, n and j < nb (one row `in`),
// through the GEMV panels when there are any, else the dot products over W as stored.
template <class T>
void gate_rows_product(const GateWeights<T>& gw, const T* in, std::int64_t hidden,
                       std::int64_t j0, std::int64_t nb, T* rows, bool backwards) {
  const std::int64_t k = gw.k;
  for (std::int64_t i = 0; i < 3; ++i) {
    const std::int64_t g = backwards ? 2 - i : i;
    if (gw.packed) {
      const std::size_t block = kernels::gemv_packed_size(usize(hidden), usize(k), gw.panel);
      kernels::gemv_packed(in, gw.packed + g * block + usize(j0 * k), usize(nb), usize(k),
                           gw.panel, T(1), rows + g * nb);
    } else {
      kernels::gemm(false, true, 1, usize(nb), usize(k), T(1), in, usize(k),
                    gw.w + (g * hidden + j0) * k, usize(k), T(1), rows + g * nb, usize(3 * nb));
    }
  }
}

// Where a step's input pre-activations gi = x W_ih^T + b_ih come from: computed here from x
// (x: [I], w_ih: [3H, I], b_ih: [3H] or null), or given (gi_given: [3H]).
template <class T>
struct StepInput {
  const T* x;
  GateWeights<T> w_ih;
  const T* b_ih;
  const T* gi_given;
};

// One batch-1 GRU step split by hidden units: h_out [H] from h [H], w_hh [3H, H], b_hh [3H]
// (or null). gi_out, gh_out: [3H] pre-activations for the backward pass, or null.
template <class T>
void unit_split_step(const StepInput<T>& input, const T* h, const GateWeights<T>& w_hh,
                     const T* b_hh, T* gi_out, T* gh_out, T* h_out, std::int64_t hidden,
                     bool threads) {
  const std::int64_t g3 = 3 * hidden, in = input.w_ih.k;
  const std::int64_t flops = 2 * g3 * (hidden + (input.gi_given ? 0 : in));
  count_flops(flops);
  // On one thread, every other call walks the weights backwards (blocks, weights and gates in
  // reverse order): a cell's weights at d = 256 are 1.5 MB against a 1 MB L2, and a walk in
  // one fixed order evicts each line just before the next call needs it, while a walk back
  // starts with what the last one read last. The order changes no result: each output is
  // computed by itself.
  const bool serial = !(threads && num_threads() > 1 && flops >= (1 << 18));
  static thread_local bool flip = false;
  flip = !flip;
  const bool backwards = serial && flip;
  const auto run_block = [&](std::int64_t j0, std::int64_t j1) {
    const std::int64_t nb = j1 - j0;
    T gi_blk[3 * kUnitBlock], gh_blk[3 * kUnitBlock];  // [g * nb + j]: gate g, unit j0 + j
    const auto gate_products = [&](const T* in_row, const GateWeights<T>& gw, const T* bias,
                                   T* rows) {
      for (std::int64_t g = 0; g < 3; ++g)
        for (std::int64_t j = 0; j < nb; ++j)
          rows[g * nb + j] = bias ? bias[g * hidden + j0 + j] : T(0);
      gate_rows_product(gw, in_row, hidden, j0, nb, rows, backwards);
    };
    const auto input_products = [&] {
      if (input.gi_given) {
        for (std::int64_t g = 0; g < 3; ++g)
          std::copy_n(input.gi_given + g * hidden + j0, nb, gi_blk + g * nb);
      } else {
        gate_products(input.x, input.w_ih, input.b_ih, gi_blk);
      }
    };
    if (backwards) {
      gate_products(h, w_hh, b_hh, gh_blk);
      input_products();
    } else {
      input_products();
      gate_products(h, w_hh, b_hh, gh_blk);
    }
    kernels::gru_gates_forward(gi_blk, gh_blk, h + j0, h_out + j0, 1, usize(nb));
    for (std::int64_t g = 0; g < 3; ++g) {
      if (gi_out) std::copy_n(gi_blk + g * nb, nb, gi_out + g * hidden + j0);
      if (gh_out) std::copy_n(gh_blk + g * nb, nb, gh_out + g * hidden + j0);
    }
  };
  if (!serial) {
    parallel_for_static(0, hidden, kUnitBlock, run_block);
  } else if (backwards) {
    for (std::int64_t j0 = (hidden - 1) / kUnitBlock * kUnitBlock; j0 >= 0; j0 -= kUnitBlock)
      run_block(j0, std::min(hidden, j0 + kUnitBlock));
  } else {
    for (std::int64_t j0 = 0; j0 < hidden; j0 += kUnitBlock)
      run_block(j0, std::min(hidden, j0 + kUnitBlock));
  }
}

}  // namespace crt::detail
