// Element-wise add, sub, mul, div with NumPy broadcasting, and sum_to (their gradient's
// reduction back to an input's shape).
#include <algorithm>

#include "engine/ops.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "engine/strided.hpp"
#include "kernels/kernels.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::usize;
using kernels::BinaryOp;

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const int r = std::max(a.rank(), b.rank());
  Shape out;
  for (int i = 0; i < r; ++i) {
    const int ia = i - (r - a.rank()), ib = i - (r - b.rank());
    const std::int64_t ea = ia >= 0 ? a[ia] : 1, eb = ib >= 0 ? b[ib] : 1;
    require(ea == eb || ea == 1 || eb == 1, op, "shapes ", a, " and ", b,
            " cannot be broadcast (axis ", i, ": ", ea, " vs ", eb, ")");
    out.push_back(ea == 1 ? eb : ea);
  }
  return out;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const int lead = g.dim() - shape.rank();
  require(lead >= 0, "sum_to", "cannot reduce ", g.describe(), " to ", shape);
  std::vector<int> axes;
  for (int i = 0; i < g.dim(); ++i)
    if (i < lead || (shape[i - lead] == 1 && g.shape()[i] != 1)) axes.push_back(i);
  Tensor s = sum(g, axes, /*keepdim=*/true);
  return s.reshape(shape);
}

namespace {

// y = a op b over the broadcast shape. The innermost axis is handed to the kernel as a
// vector-vector, vector-scalar or scalar-vector run; outer axes are walked here.
template <class T>
void binary_forward(BinaryOp op, const Tensor& a_in, const Tensor& b_in, const Tensor& y) {
  const Shape& shape = y.shape();
  const int r = shape.rank();
  if (r == 0) {
    kernels::binary(op, a_in.data<T>(), b_in.data<T>(), y.data<T>(), 1);
    return;
  }
  Tensor a = a_in.expand(shape), b = b_in.expand(shape);
  const std::int64_t n = shape[r - 1];
  // Inner runs must be unit-stride or broadcast; anything else is copied first.
  if (a.strides()[r - 1] > 1) a = a.contiguous();
  if (b.strides()[r - 1] > 1) b = b.contiguous();
  const T* ap = a.data<T>();
  const T* bp = b.data<T>();
  T* yp = y.data<T>();
  const bool a_scalar = a.strides()[r - 1] == 0 && n > 1;
  const bool b_scalar = b.strides()[r - 1] == 0 && n > 1;
  // Fast path: everything contiguous and same shape.
  if (!a_scalar && !b_scalar && a.is_contiguous() && b.is_contiguous()) {
    const std::int64_t total = y.numel();
    parallel_for(0, total, 1 << 16, [&](std::int64_t lo, std::int64_t hi) {
      kernels::binary(op, ap + lo, bp + lo, yp + lo, usize(hi - lo));
    });
    return;
  }
  std::int64_t outer = 1;
  for (int i = 0; i < r - 1; ++i) outer *= shape[i];
  std::vector<std::int64_t> a_off, b_off;
  a_off.reserve(usize(outer));
  b_off.reserve(usize(outer));
  for_each_outer(shape, a.strides(), r - 1, [&](std::int64_t o) { a_off.push_back(o); });
  for_each_outer(shape, b.strides(), r - 1, [&](std::int64_t o) { b_off.push_back(o); });
  const std::int64_t grain = std::max<std::int64_t>(1, (1 << 16) / std::max<std::int64_t>(1, n));
  parallel_for(0, outer, grain, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t row = lo; row < hi; ++row) {
      const T* ar = ap + a_off[usize(row)];
      const T* br = bp + b_off[usize(row)];
      T* yr = yp + row * n;
      if (a_scalar && b_scalar) {
        T v;
        kernels::binary(op, ar, br, &v, 1);
        std::fill(yr, yr + n, v);
      } else if (a_scalar) {
        kernels::binary_scalar_left(op, ar[0], br, yr, usize(n));
      } else if (b_scalar) {
        kernels::binary_scalar_right(op, ar, br[0], yr, usize(n));
      } else {
        kernels::binary(op, ar, br, yr, usize(n));
      }
    }
  });
}

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return "add";
    case BinaryOp::sub: return "sub";
    case BinaryOp::mul: return "mul";
    case BinaryOp::div: return "div";
  }
  return "binary";
}

Tensor binary_op(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  detail::require_defined(a, name, "left operand");
  detail::require_defined(b, name, "right operand");
  detail::require_same_dtype(a, b, name);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor y = Tensor::empty(shape, a.dtype());
  dispatch_dtype(a.dtype(), [&](auto t) { binary_forward<decltype(t)>(op, a, b, y); });
  if (should_record({&a, &b})) {
    const Shape sa = a.shape(), sb = b.shape();
    // Save only what the gradient formula reads.
    const Tensor a_saved = op == BinaryOp::mul || op == BinaryOp::div ? a.detach() : Tensor();
    const Tensor b_saved = op == BinaryOp::mul || op == BinaryOp::div ? b.detach() : Tensor();
    record_node(y, name, {a, b},
                [op, sa, sb, a_saved, b_saved](const Tensor& g, const NeedsGrad& needs) {
                  Tensor ga, gb;
                  switch (op) {
                    case BinaryOp::add:
                      if (needs[0]) ga = sum_to(g, sa);
                      if (needs[1]) gb = sum_to(g, sb);
                      break;
                    case BinaryOp::sub:
                      if (needs[0]) ga = sum_to(g, sa);
                      if (needs[1]) gb = sum_to(neg(g), sb);
                      break;
                    case BinaryOp::mul:
                      if (needs[0]) ga = sum_to(mul(g, b_saved), sa);
                      if (needs[1]) gb = sum_to(mul(g, a_saved), sb);
                      break;
                    case BinaryOp::div:
                      if (needs[0]) ga = sum_to(div(g, b_saved), sa);
                      // d(a/b)/db = -a / b^2
                      if (needs[1]) gb = sum_to(neg(div(mul(g, a_saved), square(b_saved))), sb);
                      break;
                  }
                  return std::vector<Tensor>{ga, gb};
                });
  }
  return y;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::div, a, b); }

}  // namespace crt
