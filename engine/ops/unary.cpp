// Element-wise unary functions: neg, exp, log, sqrt, square, relu, gelu, tanh, sigmoid.
#include "engine/ops.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "kernels/kernels.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::usize;
using kernels::UnaryOp;

namespace {

const char* unary_name(UnaryOp op) {
  switch (op) {
    case UnaryOp::neg: return "neg";
    case UnaryOp::exp: return "exp";
    case UnaryOp::log: return "log";
    case UnaryOp::relu: return "relu";
    case UnaryOp::gelu: return "gelu";
    case UnaryOp::tanh: return "tanh";
    case UnaryOp::sigmoid: return "sigmoid";
    case UnaryOp::sqrt: return "sqrt";
    case UnaryOp::square: return "square";
  }
  return "unary";
}

constexpr std::int64_t kGrain = 1 << 15;

Tensor unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& g) {
  const Tensor gc = g.contiguous();
  Tensor dx = Tensor::empty(g.shape(), g.dtype());
  dispatch_dtype(g.dtype(), [&](auto t) {
    using T = decltype(t);
    const T* xp = x.defined() ? x.data<T>() : nullptr;
    const T* yp = y.defined() ? y.data<T>() : nullptr;
    parallel_for(0, dx.numel(), kGrain, [&](std::int64_t lo, std::int64_t hi) {
      kernels::unary_backward(op, xp ? xp + lo : nullptr, yp ? yp + lo : nullptr,
                              gc.data<T>() + lo, dx.data<T>() + lo, usize(hi - lo));
    });
  });
  return dx;
}

Tensor unary_op(UnaryOp op, const Tensor& x_in) {
  const char* name = unary_name(op);
  detail::require_defined(x_in, name, "input");
  const Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    parallel_for(0, y.numel(), kGrain, [&](std::int64_t lo, std::int64_t hi) {
      kernels::unary(op, x.data<T>() + lo, y.data<T>() + lo, usize(hi - lo));
    });
  });
  if (should_record({&x_in})) {
    // Derivatives that are functions of the output save y; the rest save x.
    const bool uses_y = op == UnaryOp::exp || op == UnaryOp::tanh || op == UnaryOp::sigmoid ||
                        op == UnaryOp::sqrt;
    const bool uses_x = !uses_y && op != UnaryOp::neg;
    const Tensor x_saved = uses_x ? x.detach() : Tensor();
    const Tensor y_saved = uses_y ? y.detach() : Tensor();
    record_node(y, name, {x_in}, [op, x_saved, y_saved](const Tensor& g, const NeedsGrad&) {
      if (op == UnaryOp::neg) return std::vector<Tensor>{neg(g)};
      return std::vector<Tensor>{unary_backward(op, x_saved, y_saved, g)};
    });
  }
  return y;
}

}  // namespace

Tensor neg(const Tensor& x) { return unary_op(UnaryOp::neg, x); }
Tensor exp(const Tensor& x) { return unary_op(UnaryOp::exp, x); }
Tensor log(const Tensor& x) { return unary_op(UnaryOp::log, x); }
Tensor sqrt(const Tensor& x) { return unary_op(UnaryOp::sqrt, x); }
Tensor square(const Tensor& x) { return unary_op(UnaryOp::square, x); }
Tensor relu(const Tensor& x) { return unary_op(UnaryOp::relu, x); }
Tensor gelu(const Tensor& x) { return unary_op(UnaryOp::gelu, x); }
Tensor tanh(const Tensor& x) { return unary_op(UnaryOp::tanh, x); }
Tensor sigmoid(const Tensor& x) { return unary_op(UnaryOp::sigmoid, x); }

}  // namespace crt
