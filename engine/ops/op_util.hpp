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

}  // namespace crt::detail
