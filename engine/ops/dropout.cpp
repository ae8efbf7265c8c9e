// Inverted dropout. One key is drawn from the generator per call; element i (row-major index)
// is kept iff to_unit(hash(key, i)) >= p and then scaled by 1/(1-p). Backward saves only the
// key and p and rebuilds the same mask chunk by chunk.
#include <cmath>

#include "engine/ops.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "engine/random.hpp"
#include "kernels/kernels.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::usize;

namespace {

constexpr const char* kOp = "dropout";
constexpr std::int64_t kGrain = 1 << 14;

// dst[i] = src[i] * mask(i) for contiguous src, dst of n elements; mask(i) is 0 or 1/(1-p).
// to_unit(h) >= p compares (h >> 11) * 2^-53 with p, both exact in double, so it is the integer
// test (h >> 11) >= ceil(p * 2^53) that kernels::dropout_apply makes.
template <class T>
void apply_mask(const T* src, T* dst, std::int64_t n, std::uint64_t key, double p) {
  const T scale = T(1.0 / (1.0 - p));
  const auto threshold = std::uint64_t(std::ceil(std::ldexp(p, 53)));
  parallel_for(0, n, kGrain, [&](std::int64_t lo, std::int64_t hi) {
    kernels::dropout_apply(src + lo, dst + lo, usize(hi - lo), key, std::uint64_t(lo), threshold,
                           scale);
  });
}

// x: any shape -> a new contiguous tensor of the same shape, masked and scaled.
Tensor masked(const Tensor& x_in, std::uint64_t key, double p) {
  const Tensor x = x_in.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  dispatch_dtype(x.dtype(), [&](auto t) {
    using T = decltype(t);
    apply_mask<T>(x.data<T>(), y.data<T>(), x.numel(), key, p);
  });
  return y;
}

}  // namespace

// x: any shape -> same shape
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  detail::require_defined(x, kOp, "input");
  require(p >= 0.0 && p < 1.0, kOp, "p must be in [0, 1), got ", p, " (input ", x.describe(),
          ")");
  // Identity: no copy, and no draw from the generator.
  if (!training || p == 0.0) return x;
  const std::uint64_t key = gen.next_u64();
  Tensor y;
  {
    NoGradGuard ng;
    y = masked(x, key, p);
  }
  if (should_record({&x})) {
    record_node(y, kOp, {x}, [key, p](const Tensor& g, const NeedsGrad&) {
      return std::vector<Tensor>{masked(g, key, p)};
    });
  }
  return y;
}

}  // namespace crt
