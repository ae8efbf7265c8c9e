// modReLU, the candidate activation of the NCGRU: y = sign(z) * relu(|z| + b).
#include "engine/ops.hpp"
#include "engine/ops/op_util.hpp"
#include "kernels/kernels.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::usize;

// z: [..., H], b: [H]
Tensor modrelu(const Tensor& z_in, const Tensor& b_in) {
  detail::require_defined(z_in, "modrelu", "input");
  detail::require_defined(b_in, "modrelu", "bias");
  detail::require_same_dtype(z_in, b_in, "modrelu");
  require(z_in.dim() >= 1 && b_in.dim() == 1 && b_in.size(0) == z_in.size(-1), "modrelu",
          "bias ", b_in.describe(), " must be [H] for input ", z_in.describe());
  const Tensor z = z_in.contiguous(), b = b_in.contiguous();
  const std::int64_t cols = z.size(-1), rows = detail::leading_rows(z);
  Tensor y = Tensor::empty(z.shape(), z.dtype());
  dispatch_dtype(z.dtype(), [&](auto t) {
    using T = decltype(t);
    kernels::modrelu_forward(z.data<T>(), b.data<T>(), y.data<T>(), usize(rows), usize(cols));
  });
  if (should_record({&z_in, &b_in})) {
    const Tensor z_saved = z.detach(), b_saved = b.detach();
    record_node(y, "modrelu", {z_in, b_in},
                [z_saved, b_saved, rows, cols](const Tensor& g_in, const NeedsGrad& needs) {
                  const Tensor g = g_in.contiguous();
                  Tensor dz = Tensor::empty(z_saved.shape(), z_saved.dtype());
                  Tensor db = needs[1] ? Tensor::zeros(b_saved.shape(), b_saved.dtype()) : Tensor();
                  dispatch_dtype(g.dtype(), [&](auto t) {
                    using T = decltype(t);
                    kernels::modrelu_backward(z_saved.data<T>(), b_saved.data<T>(), g.data<T>(),
                                              dz.data<T>(), db.defined() ? db.data<T>() : nullptr,
                                              usize(rows), usize(cols));
                  });
                  return std::vector<Tensor>{needs[0] ? dz : Tensor(), db};
                });
  }
  return y;
}

}  // namespace crt
