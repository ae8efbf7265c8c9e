// Embedding lookup: gathers rows of weight [V, C] by id. Backward scatter-adds the gradient
// rows into a zero [V, C]; threads own disjoint column blocks and each walks the ids in order,
// so repeated ids accumulate in the same order at any thread count.
#include <algorithm>

#include "engine/ops.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "kernels/kernels.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::usize;

namespace {

constexpr const char* kOp = "embedding";
constexpr std::int64_t kColumnBlock = 256;    // columns per scatter-add block
constexpr std::int64_t kSerialWork = 1 << 15;   // below this many elements: one thread

// out: [n, C] rows = weight: [V, C] rows at ids
template <class T>
void gather_rows(const Tensor& weight, const std::vector<std::int32_t>& ids, const Tensor& out) {
  const std::int64_t n = std::int64_t(ids.size()), cols = weight.size(1);
  const T* wp = weight.data<T>();
  T* op = out.data<T>();
  const std::int64_t grain =
      std::max<std::int64_t>(1, kSerialWork / std::max<std::int64_t>(1, cols));
  parallel_for(0, n, grain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t i = lo; i < hi; ++i) {
      const T* src = wp + std::int64_t(ids[usize(i)]) * cols;
      std::copy(src, src + cols, op + i * cols);
    }
  });
}

// dweight: [V, C] (zeroed) += g: [n, C] rows scattered to ids
template <class T>
void scatter_add_rows(const Tensor& g, const std::vector<std::int32_t>& ids,
                      const Tensor& dweight) {
  const std::int64_t n = std::int64_t(ids.size()), cols = dweight.size(1);
  const T* gp = g.data<T>();
  T* dp = dweight.data<T>();
  const std::int64_t blocks = (cols + kColumnBlock - 1) / kColumnBlock;
  const std::int64_t grain = n * cols < kSerialWork ? blocks : 1;
  parallel_for(0, blocks, grain, [&](std::int64_t lo, std::int64_t hi) {
    const std::int64_t c0 = lo * kColumnBlock, c1 = std::min(cols, hi * kColumnBlock);
    for (std::int64_t i = 0; i < n; ++i)
      kernels::axpy(T(1), gp + i * cols + c0, dp + std::int64_t(ids[usize(i)]) * cols + c0,
                    usize(c1 - c0));
  });
}

}  // namespace

// weight: [V, C]; ids: ids_shape.numel() values in [0, V) -> [ids_shape..., C]
Tensor embedding(const Tensor& weight_in, const std::vector<std::int32_t>& ids,
                 const Shape& ids_shape) {
  detail::require_defined(weight_in, kOp, "weight");
  require(weight_in.dim() == 2, kOp, "weight must be 2-D [V, C], got ", weight_in.describe());
  require(std::int64_t(ids.size()) == ids_shape.numel(), kOp, ids.size(),
          " ids given for ids_shape ", ids_shape, " (", ids_shape.numel(), " positions)");
  require(ids_shape.rank() < kMaxRank, kOp, "ids_shape ", ids_shape,
          " leaves no room for the C axis (max rank ", kMaxRank, ")");
  const std::int64_t vocab = weight_in.size(0), cols = weight_in.size(1);
  for (std::size_t i = 0; i < ids.size(); ++i)
    require(ids[i] >= 0 && ids[i] < vocab, kOp, "id at position ", i, " is ", ids[i],
            ", outside [0, V) with V = ", vocab, " (weight ", weight_in.describe(), ")");

  Tensor weight;
  {
    NoGradGuard ng;
    weight = weight_in.contiguous();
  }
  Shape out_shape = ids_shape;
  out_shape.push_back(cols);
  Tensor y = Tensor::empty(out_shape, weight.dtype());
  dispatch_dtype(weight.dtype(), [&](auto t) { gather_rows<decltype(t)>(weight, ids, y); });

  if (should_record({&weight_in})) {
    const DType dtype = weight.dtype();
    record_node(y, kOp, {weight_in}, [ids, vocab, cols, dtype](const Tensor& g, const NeedsGrad&) {
      const Tensor gc = g.contiguous();
      Tensor dweight = Tensor::zeros({vocab, cols}, dtype);
      dispatch_dtype(dtype, [&](auto t) { scatter_add_rows<decltype(t)>(gc, ids, dweight); });
      return std::vector<Tensor>{dweight};
    });
  }
  return y;
}

}  // namespace crt
