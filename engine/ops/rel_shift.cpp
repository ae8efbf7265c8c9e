// Transformer-XL's relative shift as an explicit gather: scores indexed by relative distance
// become scores indexed by key position. Pure data movement (no arithmetic kernel).
#include <algorithm>

#include "engine/ops.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::usize;

namespace {

// forward: y[r, i, j] = x[r, i, i + offset - j] when 0 <= i + offset - j < kd, else 0.
// backward (scatter = true): x[r, i, d] = y[r, i, i + offset - d] for valid j, else 0.
template <class T>
void shift_rows(const T* src, T* dst, std::int64_t rows, std::int64_t tq, std::int64_t src_cols,
                std::int64_t dst_cols, std::int64_t offset) {
  parallel_for(0, rows, std::max<std::int64_t>(1, 4096 / std::max<std::int64_t>(1, tq * dst_cols)),
               [&](std::int64_t lo, std::int64_t hi) {
                 for (std::int64_t r = lo; r < hi; ++r)
                   for (std::int64_t i = 0; i < tq; ++i) {
                     const T* s = src + (r * tq + i) * src_cols;
                     T* d = dst + (r * tq + i) * dst_cols;
                     for (std::int64_t j = 0; j < dst_cols; ++j) {
                       const std::int64_t k = i + offset - j;
                       d[j] = k >= 0 && k < src_cols ? s[k] : T(0);
                     }
                   }
               });
}

Tensor shift(const Tensor& x_in, std::int64_t offset, std::int64_t out_cols) {
  const Tensor x = x_in.contiguous();
  const std::int64_t tq = x.size(-2), cols = x.size(-1);
  Shape shape = x.shape();
  shape[shape.rank() - 1] = out_cols;
  Tensor y = Tensor::empty(shape, x.dtype());
  const std::int64_t rows = tq == 0 ? 0 : x.numel() / std::max<std::int64_t>(1, tq * cols);
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    shift_rows<T>(x.data<T>(), y.data<T>(), rows, tq, cols, out_cols, offset);
  });
  return y;
}

}  // namespace

Tensor rel_shift(const Tensor& x, std::int64_t offset, std::int64_t tk) {
  detail::require_defined(x, "rel_shift", "input");
  require(x.dim() >= 2, "rel_shift", "input must be [..., Tq, K], got ", x.describe());
  require(tk >= 0 && offset >= 0, "rel_shift", "tk and offset must be >= 0 (got ", tk, ", ",
          offset, ")");
  Tensor y = shift(x, offset, tk);
  if (should_record({&x})) {
    const std::int64_t k = x.size(-1);
    // The map (i, d) <-> (i, j = i + offset - d) is one-to-one, so the same shift inverts it.
    record_node(y, "rel_shift", {x}, [offset, k](const Tensor& g, const NeedsGrad&) {
      return std::vector<Tensor>{shift(g, offset, k)};
    });
  }
  return y;
}

}  // namespace crt
