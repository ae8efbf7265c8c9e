// Tensor-scalar arithmetic: a + s, a * s, s - a, s / a, a ^ p.
#include <cmath>

#include "engine/ops.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "kernels/kernels.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::usize;
using kernels::BinaryOp;

namespace {

constexpr std::int64_t kGrain = 1 << 15;

// y = a op s (scalar_on_left: y = s op a), no recording.
Tensor scalar_forward(BinaryOp op, const Tensor& a_in, double s, bool scalar_on_left) {
  const Tensor a = a_in.contiguous();
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  dispatch_dtype(a.dtype(), [&](auto t) {
    using T = decltype(t);
    parallel_for(0, y.numel(), kGrain, [&](std::int64_t lo, std::int64_t hi) {
      if (scalar_on_left)
        kernels::binary_scalar_left(op, T(s), a.data<T>() + lo, y.data<T>() + lo, usize(hi - lo));
      else
        kernels::binary_scalar_right(op, a.data<T>() + lo, T(s), y.data<T>() + lo, usize(hi - lo));
    });
  });
  return y;
}

}  // namespace

Tensor add_scalar(const Tensor& a, double s) {
  detail::require_defined(a, "add_scalar", "input");
  Tensor y = scalar_forward(BinaryOp::add, a, s, false);
  if (should_record({&a}))
    record_node(y, "add_scalar", {a}, [](const Tensor& g, const NeedsGrad&) {
      return std::vector<Tensor>{g};
    });
  return y;
}

Tensor mul_scalar(const Tensor& a, double s) {
  detail::require_defined(a, "mul_scalar", "input");
  Tensor y = scalar_forward(BinaryOp::mul, a, s, false);
  if (should_record({&a}))
    record_node(y, "mul_scalar", {a}, [s](const Tensor& g, const NeedsGrad&) {
      return std::vector<Tensor>{mul_scalar(g, s)};
    });
  return y;
}

Tensor rsub_scalar(double s, const Tensor& a) {
  detail::require_defined(a, "rsub_scalar", "input");
  Tensor y = scalar_forward(BinaryOp::sub, a, s, true);
  if (should_record({&a}))
    record_node(y, "rsub_scalar", {a}, [](const Tensor& g, const NeedsGrad&) {
      return std::vector<Tensor>{neg(g)};
    });
  return y;
}

Tensor rdiv_scalar(double s, const Tensor& a) {
  detail::require_defined(a, "rdiv_scalar", "input");
  Tensor y = scalar_forward(BinaryOp::div, a, s, true);
  if (should_record({&a})) {
    const Tensor y_saved = y.detach();
    // d(s/a)/da = -s / a^2 = -y / a
    const Tensor a_saved = a.detach();
    record_node(y, "rdiv_scalar", {a}, [y_saved, a_saved](const Tensor& g, const NeedsGrad&) {
      return std::vector<Tensor>{neg(div(mul(g, y_saved), a_saved))};
    });
  }
  return y;
}

Tensor pow_scalar(const Tensor& a_in, double p) {
  detail::require_defined(a_in, "pow_scalar", "input");
  const Tensor a = a_in.contiguous();
  Tensor y = Tensor::empty(a.shape(), a.dtype());
  dispatch_dtype(a.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* ap = a.data<T>();
    T* yp = y.data<T>();
    for (std::int64_t i = 0; i < y.numel(); ++i) yp[i] = T(std::pow(ap[i], T(p)));
  });
  if (should_record({&a_in})) {
    const Tensor a_saved = a.detach();
    record_node(y, "pow_scalar", {a_in}, [a_saved, p](const Tensor& g, const NeedsGrad&) {
      return std::vector<Tensor>{mul(g, mul_scalar(pow_scalar(a_saved, p - 1.0), p))};
    });
  }
  return y;
}

}  // namespace crt
