// Helpers shared by the op files: dtype dispatch and common argument checks. Internal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "engine/tensor.hpp"

namespace crt::detail {

// Calls fn(T{}) with T = float or double according to dtype.
template <class Fn>
decltype(auto) dispatch_dtype(DType dtype, Fn&& fn) {
  if (dtype == DType::f32) return fn(float{});
  return fn(double{});
}

inline void require_defined(const Tensor& t, const char* op, const char* what) {
  require(t.defined(), op, what, " is an undefined tensor");
}

inline void require_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  require(a.dtype() == b.dtype(), op, "dtype mismatch: ", a.describe(), " vs ", b.describe());
}

inline int normalize_axis(int axis, int rank, const char* op) {
  const int a = axis < 0 ? axis + rank : axis;
  require(a >= 0 && a < rank, op, "axis ", axis, " out of range for rank ", rank);
  return a;
}

inline std::size_t usize(std::int64_t v) { return static_cast<std::size_t>(v); }

// Rows of a contiguous tensor viewed as [rows, last].
inline std::int64_t leading_rows(const Tensor& t) {
  return t.dim() == 0 ? 1 : t.numel() / std::max<std::int64_t>(1, t.shape().back());
}

// The GRU weights' checks shared by gru_cell and gru_sequence: w_ih [3H, I], w_hh [3H, H],
// b_ih and b_hh [3H] or undefined, all of x's dtype (state: h or h0, already checked).
inline void require_gru_weights(const char* op, const Tensor& x, const Tensor& state,
                                const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                                const Tensor& b_hh, std::int64_t in, std::int64_t hidden) {
  require(w_ih.shape() == Shape{3 * hidden, in}, op, "w_ih ", w_ih.describe(),
          " should be [3H, I] = [", 3 * hidden, ", ", in, "]");
  require(w_hh.shape() == Shape{3 * hidden, hidden}, op, "w_hh ", w_hh.describe(),
          " should be [3H, H] = [", 3 * hidden, ", ", hidden, "]");
  if (b_ih.defined())
    require(b_ih.shape() == Shape{3 * hidden}, op, "b_ih ", b_ih.describe(),
            " should be [3H] = [", 3 * hidden, "]");
  if (b_hh.defined())
    require(b_hh.shape() == Shape{3 * hidden}, op, "b_hh ", b_hh.describe(),
            " should be [3H] = [", 3 * hidden, "]");
  for (const Tensor* t : {&state, &w_ih, &w_hh, &b_ih, &b_hh})
    if (t->defined()) require_same_dtype(x, *t, op);
}

}  // namespace crt::detail
