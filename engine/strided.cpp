// Strided copy and fill (see strided.hpp).
#include "engine/strided.hpp"

#include <algorithm>
#include <cstring>

namespace crt {
namespace {

template <class S, class D>
void copy_typed(const Tensor& src, const Tensor& dst) {
  const int r = src.dim();
  const S* sp = static_cast<const S*>(src.impl().storage->data()) + src.offset();
  D* dp = static_cast<D*>(dst.impl().storage->data()) + dst.offset();
  if (r == 0) {
    *dp = D(*sp);
    return;
  }
  const std::int64_t n = src.shape()[r - 1];
  const std::int64_t ss = src.strides()[r - 1], ds = dst.strides()[r - 1];
  // Walk the outer axes of both tensors in lock-step.
  std::int64_t index[kMaxRank] = {};
  std::int64_t total = 1;
  for (int a = 0; a < r - 1; ++a) total *= src.shape()[a];
  std::int64_t so = 0, dof = 0;
  for (std::int64_t row = 0; row < total; ++row) {
    const S* s = sp + so;
    D* d = dp + dof;
    if constexpr (std::is_same_v<S, D>) {
      if (ss == 1 && ds == 1) {
        std::memcpy(d, s, std::size_t(n) * sizeof(S));
      } else {
        for (std::int64_t i = 0; i < n; ++i) d[i * ds] = s[i * ss];
      }
    } else {
      for (std::int64_t i = 0; i < n; ++i) d[i * ds] = D(s[i * ss]);
    }
    for (int a = r - 2; a >= 0; --a) {
      so += src.strides()[a];
      dof += dst.strides()[a];
      if (++index[a] < src.shape()[a]) break;
      so -= src.strides()[a] * src.shape()[a];
      dof -= dst.strides()[a] * dst.shape()[a];
      index[a] = 0;
    }
  }
}

template <class T>
void fill_typed(const Tensor& t, double value) {
  T* base = static_cast<T*>(t.impl().storage->data()) + t.offset();
  const int r = t.dim();
  if (r == 0) {
    *base = T(value);
    return;
  }
  const std::int64_t n = t.shape()[r - 1], s = t.strides()[r - 1];
  for_each_outer(t.shape(), t.strides(), r - 1, [&](std::int64_t off) {
    for (std::int64_t i = 0; i < n; ++i) base[off + i * s] = T(value);
  });
}

}  // namespace

void strided_copy(const Tensor& src, const Tensor& dst) {
  if (src.numel() == 0) return;
  if (src.dtype() == DType::f32) {
    if (dst.dtype() == DType::f32) copy_typed<float, float>(src, dst);
    else copy_typed<float, double>(src, dst);
  } else {
    if (dst.dtype() == DType::f32) copy_typed<double, float>(src, dst);
    else copy_typed<double, double>(src, dst);
  }
}

void strided_fill(const Tensor& t, double value) {
  if (t.numel() == 0) return;
  if (t.dtype() == DType::f32) fill_typed<float>(t, value);
  else fill_typed<double>(t, value);
}

}  // namespace crt
