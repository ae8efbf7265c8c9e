// Sum and mean over axes.
#include <algorithm>
#include <numeric>

#include "engine/ops.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "kernels/kernels.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::usize;

namespace {

struct Reduction {
  std::vector<bool> reduced;  // per axis
  Shape kept_shape;           // output shape without keepdim
  Shape keepdim_shape;        // output shape with reduced axes as 1
  std::int64_t count = 1;     // elements summed into each output
};

Reduction plan(const Shape& shape, const std::vector<int>& axes, const char* op) {
  Reduction r;
  r.reduced.assign(usize(shape.rank()), false);
  for (int a : axes) {
    const int n = detail::normalize_axis(a, shape.rank(), op);
    require(!r.reduced[usize(n)], op, "axis ", a, " listed twice");
    r.reduced[usize(n)] = true;
  }
  for (int i = 0; i < shape.rank(); ++i) {
    if (r.reduced[usize(i)]) {
      r.keepdim_shape.push_back(1);
      r.count *= shape[i];
    } else {
      r.keepdim_shape.push_back(shape[i]);
      r.kept_shape.push_back(shape[i]);
    }
  }
  return r;
}

// Sums x over the planned axes into a new contiguous tensor of shape keepdim_shape.
Tensor reduce_sum(const Tensor& x, const Reduction& r) {
  const int rank = x.dim();
  Tensor y = Tensor::empty(r.keepdim_shape, x.dtype());
  const std::int64_t kept = y.numel();
  const std::int64_t red = r.count;
  // Reduced axes leading and x contiguous: x is [red, kept] -> column sums.
  int first_kept = 0;
  while (first_kept < rank && r.reduced[usize(first_kept)]) ++first_kept;
  bool leading = true;
  for (int i = first_kept; i < rank; ++i) leading &= !r.reduced[usize(i)];
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    if (leading && x.is_contiguous()) {
      kernels::sum_cols(x.data<T>(), y.data<T>(), usize(red), usize(kept), false);
      return;
    }
    // Otherwise move the reduced axes last: [kept, red] -> row sums.
    std::vector<int> order;
    for (int i = 0; i < rank; ++i)
      if (!r.reduced[usize(i)]) order.push_back(i);
    for (int i = 0; i < rank; ++i)
      if (r.reduced[usize(i)]) order.push_back(i);
    Tensor xp;
    {
      NoGradGuard ng;
      xp = x.permute(order).contiguous();
    }
    const T* xd = xp.data<T>();
    T* yd = y.data<T>();
    const std::int64_t grain = std::max<std::int64_t>(1, (1 << 15) / std::max<std::int64_t>(1, red));
    parallel_for(0, kept, grain, [&](std::int64_t lo, std::int64_t hi) {
      kernels::sum_rows(xd + lo * red, yd + lo, usize(hi - lo), usize(red));
    });
  });
  return y;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  detail::require_defined(x, "sum", "input");
  const Reduction r = plan(x.shape(), axes, "sum");
  Tensor y = reduce_sum(x, r);
  if (!keepdim) y = y.view(r.kept_shape);
  if (should_record({&x})) {
    const Shape in_shape = x.shape(), keep = r.keepdim_shape;
    record_node(y, "sum", {x}, [in_shape, keep](const Tensor& g, const NeedsGrad&) {
      return std::vector<Tensor>{g.reshape(keep).expand(in_shape).contiguous()};
    });
  }
  return y;
}

Tensor sum(const Tensor& x) {
  detail::require_defined(x, "sum", "input");
  std::vector<int> all(usize(x.dim()));
  std::iota(all.begin(), all.end(), 0);
  return sum(x, all, false);
}

Tensor mean(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  detail::require_defined(x, "mean", "input");
  const Reduction r = plan(x.shape(), axes, "mean");
  require(r.count > 0, "mean", "mean over an empty set of elements in ", x.describe());
  return mul_scalar(sum(x, axes, keepdim), 1.0 / double(r.count));
}

Tensor mean(const Tensor& x) {
  detail::require_defined(x, "mean", "input");
  std::vector<int> all(usize(x.dim()));
  std::iota(all.begin(), all.end(), 0);
  return mean(x, all, false);
}

}  // namespace crt
