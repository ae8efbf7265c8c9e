// Strided element loops shared by the engine: copy between any two layouts (and dtypes) of
// the same shape, fill, and a walker over the outer axes of a tensor. Internal to engine/.
#pragma once

#include <cstdint>

#include "engine/tensor.hpp"

namespace crt {

// dst[i] = src[i] for every multi-index i; shapes must match; converts dtypes.
void strided_copy(const Tensor& src, const Tensor& dst);
// t[i] = value for every multi-index i.
void strided_fill(const Tensor& t, double value);

// Calls fn(offset) for every index of the first `outer` axes of (shape, strides),
// in row-major order, with offset = sum(index[a] * strides[a]).
template <class Fn>
void for_each_outer(const Shape& shape, const Shape& strides, int outer, Fn&& fn) {
  std::int64_t index[kMaxRank] = {};
  std::int64_t total = 1;
  for (int a = 0; a < outer; ++a) total *= shape[a];
  std::int64_t offset = 0;
  for (std::int64_t n = 0; n < total; ++n) {
    fn(offset);
    for (int a = outer - 1; a >= 0; --a) {
      offset += strides[a];
      if (++index[a] < shape[a]) break;
      offset -= strides[a] * shape[a];
      index[a] = 0;
    }
  }
}

}  // namespace crt
