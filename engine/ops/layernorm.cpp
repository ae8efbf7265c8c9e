// Layer normalisation over the last axis with optional affine gamma / beta. The gamma / beta
// gradients are summed over fixed row chunks (independent of the thread count) whose partial
// sums are then added in chunk order, so results are bit-identical at any thread count.
#include <algorithm>
#include <cmath>

#include "engine/ops.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "kernels/kernels.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::usize;

namespace {

constexpr const char* kOp = "layernorm";

// Rows per chunk: about 32k elements, so small inputs are a single chunk.
std::int64_t chunk_rows(std::int64_t cols) {
  return std::max<std::int64_t>(1, (1 << 15) / std::max<std::int64_t>(1, cols));
}

// Pointer to a tensor's data, or null when the tensor is undefined.
template <class T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

struct Saved {
  Tensor x, gamma, mean, rstd;  // x: [rows, C]; gamma: [C] or undefined; mean, rstd: [rows]
};

// x: [rows, C] -> y: [rows, C]; mean, rstd: [rows]
template <class T>
void forward_rows(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps,
                  const Tensor& y, const Tensor& mean, const Tensor& rstd) {
  const std::int64_t rows = x.size(0), cols = x.size(1);
  const T* xp = x.data<T>();
  const T* gp = data_or_null<T>(gamma);
  const T* bp = data_or_null<T>(beta);
  T* yp = y.data<T>();
  T* mp = mean.data<T>();
  T* rp = rstd.data<T>();
  parallel_for(0, rows, chunk_rows(cols), [&](std::int64_t lo, std::int64_t hi) {
    kernels::layernorm_forward(xp + lo * cols, gp, bp, yp + lo * cols, mp + lo, rp + lo,
                               usize(hi - lo), usize(cols), T(eps));
  });
}

// dy: [rows, C] -> dx: [rows, C]; dgamma, dbeta: [C] (undefined when not wanted)
template <class T>
void backward_rows(const Saved& s, const Tensor& dy, const Tensor& dx, const Tensor& dgamma,
                   const Tensor& dbeta) {
  const std::int64_t rows = s.x.size(0), cols = s.x.size(1);
  const std::int64_t per_chunk = chunk_rows(cols);
  const std::int64_t chunks = std::max<std::int64_t>(1, (rows + per_chunk - 1) / per_chunk);
  // One partial row per chunk for each of dgamma and dbeta.
  std::vector<T> partial_gamma(dgamma.defined() ? usize(chunks * cols) : 0, T(0));
  std::vector<T> partial_beta(dbeta.defined() ? usize(chunks * cols) : 0, T(0));
  const T* xp = s.x.data<T>();
  const T* gp = data_or_null<T>(s.gamma);
  const T* mp = s.mean.data<T>();
  const T* rp = s.rstd.data<T>();
  const T* dyp = dy.data<T>();
  T* dxp = dx.data<T>();
  parallel_for(0, chunks, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t c = lo; c < hi; ++c) {
      const std::int64_t r0 = c * per_chunk, r1 = std::min(rows, r0 + per_chunk);
      T* pg = partial_gamma.empty() ? nullptr : partial_gamma.data() + c * cols;
      T* pb = partial_beta.empty() ? nullptr : partial_beta.data() + c * cols;
      kernels::layernorm_backward(xp + r0 * cols, gp, mp + r0, rp + r0, dyp + r0 * cols,
                                  dxp + r0 * cols, pg, pb, usize(r1 - r0), usize(cols));
    }
  });
  // Chunk-order reduction of the partials.
  if (dgamma.defined())
    kernels::sum_cols(partial_gamma.data(), dgamma.data<T>(), usize(chunks), usize(cols), false);
  if (dbeta.defined())
    kernels::sum_cols(partial_beta.data(), dbeta.data<T>(), usize(chunks), usize(cols), false);
}

void check_affine(const Tensor& p, const char* what, const Tensor& x) {
  if (!p.defined()) return;
  detail::require_same_dtype(x, p, kOp);
  require(p.dim() == 1 && p.size(0) == x.size(-1), kOp, what, " ", p.describe(),
          " must be [C] with C = ", x.size(-1), " for input ", x.describe());
}

}  // namespace

// x: [..., C]; gamma, beta: [C] or undefined -> [..., C]
Tensor layernorm(const Tensor& x_in, const Tensor& gamma_in, const Tensor& beta_in, double eps) {
  detail::require_defined(x_in, kOp, "input");
  require(x_in.dim() >= 1, kOp, "input must have rank >= 1 ([..., C]), got ", x_in.describe());
  check_affine(gamma_in, "gamma", x_in);
  check_affine(beta_in, "beta", x_in);
  require(std::isfinite(eps) && eps >= 0, kOp, "eps must be finite and >= 0, got ", eps);
  const std::int64_t cols = x_in.size(-1);
  const std::int64_t rows = detail::leading_rows(x_in);

  Saved s;
  Tensor beta;
  {
    NoGradGuard ng;
    s.x = x_in.reshape({rows, cols}).contiguous().detach();
    if (gamma_in.defined()) s.gamma = gamma_in.contiguous().detach();
    if (beta_in.defined()) beta = beta_in.contiguous().detach();
  }
  s.mean = Tensor::empty({rows}, x_in.dtype());
  s.rstd = Tensor::empty({rows}, x_in.dtype());
  Tensor y2 = Tensor::empty({rows, cols}, x_in.dtype());
  if (rows * cols > 0)
    dispatch_dtype(x_in.dtype(), [&](auto t) {
      forward_rows<decltype(t)>(s.x, s.gamma, beta, eps, y2, s.mean, s.rstd);
    });
  Tensor y;
  {
    NoGradGuard ng;
    y = y2.view(x_in.shape());
  }

  if (should_record({&x_in, &gamma_in, &beta_in})) {
    const Shape x_shape = x_in.shape();
    record_node(y, kOp, {x_in, gamma_in, beta_in},
                [s, x_shape, rows, cols](const Tensor& g, const NeedsGrad& needs) {
                  const Tensor dy = g.reshape({rows, cols}).contiguous();
                  // dx is always computed: the kernel makes it with the affine gradients.
                  Tensor dx = Tensor::empty({rows, cols}, s.x.dtype());
                  Tensor dgamma = needs[1] ? Tensor::empty({cols}, s.x.dtype()) : Tensor();
                  Tensor dbeta = needs[2] ? Tensor::empty({cols}, s.x.dtype()) : Tensor();
                  if (rows * cols > 0) {
                    dispatch_dtype(s.x.dtype(), [&](auto t) {
                      backward_rows<decltype(t)>(s, dy, dx, dgamma, dbeta);
                    });
                  } else {
                    if (dgamma.defined()) dgamma.fill_(0.0);
                    if (dbeta.defined()) dbeta.fill_(0.0);
                  }
                  const Tensor dx_shaped = needs[0] ? dx.view(x_shape) : Tensor();
                  return std::vector<Tensor>{dx_shaped, dgamma, dbeta};
                });
  }
  return y;
}

}  // namespace crt
