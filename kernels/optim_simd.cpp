// Optimiser updates (Adam / AdamW), compiled once per ISA (Note [ISA objects] in isa.hpp).
// Same operation order as the reference; the tail runs the vector code on a partial vector.
#include <cstddef>

#include "kernels/simd_kernels.hpp"
#include "kernels/simd_util.hpp"

namespace crt::kernels::simd {
namespace {

template <class Arch, bool Decoupled>
void adam_rows(float* param, const float* grad, float* m, float* v, size_t n, const AdamStep& s) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  const V b1(s.beta1), b2(s.beta2), one_b1(1.0f - s.beta1), one_b2(1.0f - s.beta2);
  const V lr(s.lr), eps(s.eps), wd(s.weight_decay), bc1(s.bc1), bc2(s.bc2);
  const V lr_wd(s.lr * s.weight_decay);
  const auto step = [&](V p, V g, V& mv, V& vv) {
    if constexpr (!Decoupled) g = fma<Arch>(wd, p, g);
    mv = fma<Arch>(b1, mv, one_b1 * g);
    vv = fma<Arch>(b2, vv, one_b2 * g * g);
    const V update = divide<Arch>(divide<Arch>(mv, bc1),
                                  square_root<Arch>(divide<Arch>(vv, bc2)) + eps);
    if constexpr (Decoupled) p = p - lr_wd * p;
    return p - lr * update;
  };
  size_t i = 0;
  for (; i + W <= n; i += W) {
    V mv = V::load_unaligned(m + i), vv = V::load_unaligned(v + i);
    const V p = step(V::load_unaligned(param + i), V::load_unaligned(grad + i), mv, vv);
    p.store_unaligned(param + i);
    mv.store_unaligned(m + i);
    vv.store_unaligned(v + i);
  }
  if (i < n) {
    const size_t left = n - i;
    V mv = load_first<Arch>(m + i, left), vv = load_first<Arch>(v + i, left, 1.0f);
    const V p = step(load_first<Arch>(param + i, left), load_first<Arch>(grad + i, left), mv, vv);
    store_first<Arch>(p, param + i, left);
    store_first<Arch>(mv, m + i, left);
    store_first<Arch>(vv, v + i, left);
  }
}

}  // namespace

template <class Arch>
void adam_update(float* param, const float* grad, float* m, float* v, size_t n,
                 const AdamStep& s) {
  if (s.decoupled)
    adam_rows<Arch, true>(param, grad, m, v, n, s);
  else
    adam_rows<Arch, false>(param, grad, m, v, n, s);
}

template void adam_update<arch_t>(float*, const float*, float*, float*, size_t, const AdamStep&);

}  // namespace crt::kernels::simd
