// softmax and log_softmax over any axis. The axis is moved last (permute + contiguous) when
// it is not already, the row kernels run over [rows, C], and the result is viewed back in the
// input's axis order. Only the output is saved for backward.
#include <algorithm>

#include "engine/ops.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "kernels/kernels.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::usize;

namespace {

// Work per chunk, in elements: small inputs stay on the calling thread.
constexpr std::int64_t kGrainElements = 1 << 15;

std::int64_t row_grain(std::int64_t cols) {
  return std::max<std::int64_t>(1, kGrainElements / std::max<std::int64_t>(1, cols));
}

// Axis orders that move `axis` last and back again (empty when it is already last).
struct AxisMove {
  std::vector<int> to_last, from_last;
};

AxisMove plan_axis_move(int axis, int rank) {
  AxisMove m;
  if (axis == rank - 1) return m;
  for (int i = 0; i < rank; ++i)
    if (i != axis) m.to_last.push_back(i);
  m.to_last.push_back(axis);
  m.from_last.assign(usize(rank), 0);
  for (int i = 0; i < rank; ++i) m.from_last[usize(m.to_last[usize(i)])] = i;
  return m;
}

// A tensor's contents as contiguous rows over the moved axis (not recorded).
Tensor rows_of(const Tensor& t, const AxisMove& m) {
  NoGradGuard ng;
  return m.to_last.empty() ? t.contiguous() : t.permute(m.to_last).contiguous();
}

// A [.., C] row-layout result seen back in the original axis order (not recorded).
Tensor back_from_rows(const Tensor& t, const AxisMove& m) {
  NoGradGuard ng;
  return m.to_last.empty() ? t : t.permute(m.from_last);
}

enum class Kind { softmax, log_softmax };

// y_rows: [rows, cols] = (log_)softmax of x_rows: [rows, cols]
template <class T>
void forward_rows(Kind kind, const Tensor& x_rows, const Tensor& y_rows) {
  const std::int64_t cols = x_rows.shape().back();
  const std::int64_t rows = detail::leading_rows(x_rows);
  const T* xp = x_rows.data<T>();
  T* yp = y_rows.data<T>();
  parallel_for(0, rows, row_grain(cols), [&](std::int64_t lo, std::int64_t hi) {
    if (kind == Kind::softmax)
      kernels::softmax_rows(xp + lo * cols, yp + lo * cols, usize(hi - lo), usize(cols));
    else
      kernels::log_softmax_rows(xp + lo * cols, yp + lo * cols, usize(hi - lo), usize(cols));
  });
}

// dx_rows from the saved output y_rows and the upstream gradient dy_rows (all [rows, cols]).
template <class T>
void backward_rows(Kind kind, const Tensor& y_rows, const Tensor& dy_rows, const Tensor& dx_rows) {
  const std::int64_t cols = y_rows.shape().back();
  const std::int64_t rows = detail::leading_rows(y_rows);
  const T* yp = y_rows.data<T>();
  const T* dyp = dy_rows.data<T>();
  T* dxp = dx_rows.data<T>();
  parallel_for(0, rows, row_grain(cols), [&](std::int64_t lo, std::int64_t hi) {
    const std::int64_t at = lo * cols;
    if (kind == Kind::softmax)
      kernels::softmax_backward_rows(yp + at, dyp + at, dxp + at, usize(hi - lo), usize(cols));
    else
      kernels::log_softmax_backward_rows(yp + at, dyp + at, dxp + at, usize(hi - lo),
                                         usize(cols));
  });
}

// x: any shape with rank >= 1; reduces over `axis`.
Tensor softmax_family(Kind kind, const Tensor& x, int axis_in) {
  const char* name = kind == Kind::softmax ? "softmax" : "log_softmax";
  detail::require_defined(x, name, "input");
  require(x.dim() >= 1, name, "input must have rank >= 1, got ", x.describe());
  const int axis = detail::normalize_axis(axis_in, x.dim(), name);
  const AxisMove move = plan_axis_move(axis, x.dim());
  const Tensor x_rows = rows_of(x, move);
  const Tensor y_rows = Tensor::empty(x_rows.shape(), x.dtype());
  if (y_rows.numel() > 0)
    dispatch_dtype(x.dtype(), [&](auto t) { forward_rows<decltype(t)>(kind, x_rows, y_rows); });
  Tensor y = back_from_rows(y_rows, move);
  if (should_record({&x})) {
    const Tensor y_saved = y_rows.detach();
    record_node(y, name, {x}, [kind, move, y_saved](const Tensor& g, const NeedsGrad&) {
      const Tensor dy_rows = rows_of(g, move);
      const Tensor dx_rows = Tensor::empty(y_saved.shape(), y_saved.dtype());
      if (dx_rows.numel() > 0)
        dispatch_dtype(y_saved.dtype(), [&](auto t) {
          backward_rows<decltype(t)>(kind, y_saved, dy_rows, dx_rows);
        });
      return std::vector<Tensor>{back_from_rows(dx_rows, move)};
    });
  }
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, int axis) { return softmax_family(Kind::softmax, x, axis); }
Tensor log_softmax(const Tensor& x, int axis) {
  return softmax_family(Kind::log_softmax, x, axis);
}

}  // namespace crt
