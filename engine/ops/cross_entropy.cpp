// Fused cross-entropy over logits [N, V] (or [..., V], flattened to rows): the mean of
// logsumexp(x_r) - x_r[target_r] over rows whose target is not ignore_index. Forward keeps
// only the per-row logsumexp; backward recomputes the probabilities from it.
#include <algorithm>

#include "engine/ops.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "kernels/kernels.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::usize;

namespace {

constexpr const char* kOp = "cross_entropy";

std::int64_t row_grain(std::int64_t cols) {
  return std::max<std::int64_t>(1, (1 << 15) / std::max<std::int64_t>(1, cols));
}

// logits: [N, V] contiguous; writes per-row losses and logsumexps, returns the mean loss over
// the `counted` non-ignored rows (0 when there are none), summed in row order.
template <class T>
double forward_mean(const Tensor& logits, const std::vector<std::int32_t>& targets,
                    std::int32_t ignore_index, const Tensor& lse, std::int64_t counted) {
  const std::int64_t rows = logits.size(0), cols = logits.size(1);
  std::vector<T> loss(usize(rows));
  const T* xp = logits.data<T>();
  T* lp = lse.data<T>();
  parallel_for(0, rows, row_grain(cols), [&](std::int64_t lo, std::int64_t hi) {
    kernels::cross_entropy_forward(xp + lo * cols, targets.data() + lo, loss.data() + lo,
                                   lp + lo, usize(hi - lo), usize(cols), ignore_index);
  });
  if (counted == 0) return 0.0;
  double total = 0;
  for (const T l : loss) total += double(l);
  return total / double(counted);
}

// dlogits: [N, V] = g / counted * (softmax(logits) - onehot(target)), zero on ignored rows.
template <class T>
void backward_rows(const Tensor& logits, const Tensor& lse,
                   const std::vector<std::int32_t>& targets, std::int32_t ignore_index,
                   double row_scale, const Tensor& dlogits) {
  const std::int64_t rows = logits.size(0), cols = logits.size(1);
  const std::vector<T> scale(usize(rows), T(row_scale));
  const T* xp = logits.data<T>();
  const T* lp = lse.data<T>();
  T* dp = dlogits.data<T>();
  parallel_for(0, rows, row_grain(cols), [&](std::int64_t lo, std::int64_t hi) {
    kernels::cross_entropy_backward(xp + lo * cols, lp + lo, targets.data() + lo,
                                    scale.data() + lo, dp + lo * cols, usize(hi - lo),
                                    usize(cols), ignore_index);
  });
}

}  // namespace

// logits: [..., V]; targets: one per row of the flattened [N, V] -> scalar (rank 0)
Tensor cross_entropy(const Tensor& logits_in, const std::vector<std::int32_t>& targets,
                     std::int32_t ignore_index) {
  detail::require_defined(logits_in, kOp, "logits");
  require(logits_in.dim() >= 1, kOp, "logits must have rank >= 1 ([N, V] or [..., V]), got ",
          logits_in.describe());
  const std::int64_t classes = logits_in.size(-1);
  const std::int64_t rows = detail::leading_rows(logits_in);
  require(classes > 0, kOp, "logits ", logits_in.describe(), " have no classes (V = 0)");
  require(std::int64_t(targets.size()) == rows, kOp, "logits ", logits_in.describe(), " have ",
          rows, " rows but ", targets.size(), " targets were given");
  std::int64_t counted = 0;
  for (std::size_t r = 0; r < targets.size(); ++r) {
    const std::int32_t t = targets[r];
    if (t == ignore_index) continue;
    require(t >= 0 && t < classes, kOp, "target at row ", r, " is ", t,
            ", outside [0, V) with V = ", classes, " (logits ", logits_in.describe(),
            ", ignore_index ", ignore_index, ")");
    ++counted;
  }

  Tensor logits;
  {
    NoGradGuard ng;
    logits = logits_in.reshape({rows, classes}).contiguous();
  }
  const Tensor lse = Tensor::empty({rows}, logits.dtype());
  const double mean_loss = dispatch_dtype(logits.dtype(), [&](auto t) {
    return forward_mean<decltype(t)>(logits, targets, ignore_index, lse, counted);
  });
  Tensor loss = Tensor::scalar(mean_loss, logits.dtype());

  if (should_record({&logits_in})) {
    const Tensor logits_saved = logits.detach();
    const Shape in_shape = logits_in.shape();
    record_node(loss, kOp, {logits_in},
                [logits_saved, lse, targets, ignore_index, counted, in_shape](
                    const Tensor& g, const NeedsGrad&) {
                  const double scale = counted == 0 ? 0.0 : g.item() / double(counted);
                  Tensor dlogits = Tensor::empty(logits_saved.shape(), logits_saved.dtype());
                  dispatch_dtype(logits_saved.dtype(), [&](auto t) {
                    backward_rows<decltype(t)>(logits_saved, lse, targets, ignore_index, scale,
                                               dlogits);
                  });
                  return std::vector<Tensor>{dlogits.view(in_shape)};
                });
  }
  return loss;
}

}  // namespace crt
