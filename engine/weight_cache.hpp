// Copies of weights in the layouts inference reads fastest, made once and reused for as long as
// the weight's storage is unchanged (Storage id and version, see tensor.hpp):
// - the transpose: a linear layer stores its weight [out, in] and computes x W^T; for a short
//   segment (a few rows of x) the GEMM's packing of W^T, a transpose of the whole weight, costs
//   as much as the product. With gradients off, matmul reads a contiguous [in, out] copy.
// - GEMV panels: a GRU step at batch 1 streams its weights once per step; packed in row panels
//   (kernels::gemv_pack) each panel is one contiguous stream.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/tensor.hpp"

namespace crt {

// The contiguous copy of w.transpose(0, 1) (w: [n, k] -> [k, n]); made on first use and again
// whenever w's storage has been written since. Thread-safe.
Tensor cached_transpose(const Tensor& w);

// Whether a product of `rows` rows against weight w [n, k] used as B^T should read the cached
// copy: gradients off, w a parameter (requires grad) of at least 16k values, and 5 to 512 rows
// (up to 4 rows run as dot products that read w as stored; taller products amortise the
// GEMM's own packing).
bool use_weight_cache_rows(std::int64_t rows, const Tensor& w);
// Whether one row against w [n, k] used as B^T should read w's cached GEMV panels: gradients
// off, w a parameter of at least 16k values, a single row (a batch-1 step or token).
bool use_gemv_panels(std::int64_t rows, const Tensor& w);
// The panel width the GEMV kernel of this dtype reads (float: the active ISA's lanes).
std::size_t gemv_panel_for(DType dtype);

// The `blocks` equal row blocks of w [blocks * n, k] each packed for kernels::gemv_packed in
// panels of `panel` rows (kernels.hpp), one after another: block g at g * gemv_packed_size(n,
// k, panel). For the batch-1 steps of a GRU (blocks = 3 gates). Made once per weight version.
Tensor cached_gemv_panels(const Tensor& w, std::int64_t blocks, std::size_t panel);

struct WeightCacheStats {
  std::int64_t entries;
  std::int64_t bytes;
  std::int64_t hits;
  std::int64_t misses;  // copies made (first use or a stale entry)
};
WeightCacheStats weight_cache_stats();
// Drops every cached copy and zeroes the counts (also done by release_cached_memory()).
void clear_weight_cache();

}  // namespace crt
