// Row-major copies of transposed weights, kept for inference. A linear layer stores its weight
// [out, in] and computes x W^T; for a short segment (a few rows of x) the GEMM's packing of W^T,
// a transpose of the whole weight, costs as much as the product. With gradients off, matmul
// takes W^T from this cache instead: a contiguous [in, out] copy made once and reused for as
// long as the weight's storage is unchanged (Storage id and version, see tensor.hpp).
#pragma once

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

struct WeightCacheStats {
  std::int64_t entries;
  std::int64_t bytes;
  std::int64_t hits;
  std::int64_t misses;  // copies made (first use or a stale entry)
};
WeightCacheStats weight_cache_stats();
// Drops every cached copy (also done by release_cached_memory()).
void clear_weight_cache();

}  // namespace crt
