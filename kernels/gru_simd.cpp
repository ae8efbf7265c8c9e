// GRU cell gate math (PyTorch convention, gate order r, z, n), forward and backward, compiled
// once per ISA (Note [ISA objects] in isa.hpp). Vectorised along the hidden units of each row.
#include <cstddef>

#include "kernels/simd_kernels.hpp"
#include "kernels/simd_util.hpp"

namespace crt::kernels::simd {
namespace {

// Runs step(j, left) over j = 0, W, 2W, ... < hidden with left = min(W, hidden - j).
template <class Arch, class Step>
inline void over_units(size_t hidden, Step step) {
  constexpr size_t W = kLanes<Arch>;
  size_t j = 0;
  for (; j + W <= hidden; j += W) step(j, W);
  if (j < hidden) step(j, hidden - j);
}

template <class Arch>
inline Vec<Arch> load_part(const float* p, size_t left) {
  return left == kLanes<Arch> ? Vec<Arch>::load_unaligned(p) : load_first<Arch>(p, left);
}

template <class Arch>
inline void store_part(const Vec<Arch>& v, float* p, size_t left) {
  if (left == kLanes<Arch>)
    v.store_unaligned(p);
  else
    store_first<Arch>(v, p, left);
}

}  // namespace

template <class Arch>
void gru_gates_forward(const float* gi, const float* gh, const float* h, float* h_out,
                       size_t batch, size_t hidden) {
  using V = Vec<Arch>;
  const size_t H = hidden;
  for (size_t b = 0; b < batch; ++b) {
    const float* gib = gi + b * 3 * H;
    const float* ghb = gh + b * 3 * H;
    const float* hb = h + b * H;
    float* ob = h_out + b * H;
    over_units<Arch>(H, [&](size_t j, size_t left) {
      const auto ld = [left](const float* p) { return load_part<Arch>(p, left); };
      const V r = sigmoid<Arch>(ld(gib + j) + ld(ghb + j));
      const V z = sigmoid<Arch>(ld(gib + H + j) + ld(ghb + H + j));
      const V n = xsimd::tanh(fma<Arch>(r, ld(ghb + 2 * H + j), ld(gib + 2 * H + j)));
      store_part<Arch>(fma<Arch>(z, ld(hb + j) - n, n), ob + j, left);  // (1 - z) n + z h
    });
  }
}

template <class Arch>
void gru_gates_backward(const float* gi, const float* gh, const float* h, const float* dh_out,
                        float* d_gi, float* d_gh, float* dh, size_t batch, size_t hidden) {
  using V = Vec<Arch>;
  const V one(1.0f);
  const size_t H = hidden;
  for (size_t b = 0; b < batch; ++b) {
    const float* gib = gi + b * 3 * H;
    const float* ghb = gh + b * 3 * H;
    float* dgib = d_gi + b * 3 * H;
    float* dghb = d_gh + b * 3 * H;
    over_units<Arch>(H, [&](size_t j, size_t left) {
      const auto ld = [left](const float* p) { return load_part<Arch>(p, left); };
      const auto st = [left](V v, float* p) { store_part<Arch>(v, p, left); };
      const V r = sigmoid<Arch>(ld(gib + j) + ld(ghb + j));
      const V z = sigmoid<Arch>(ld(gib + H + j) + ld(ghb + H + j));
      const V gh_n = ld(ghb + 2 * H + j);
      const V n = xsimd::tanh(fma<Arch>(r, gh_n, ld(gib + 2 * H + j)));
      const V g = ld(dh_out + b * H + j);
      const V dn_pre = g * (one - z) * (one - n * n);
      const V dz_pre = g * (ld(h + b * H + j) - n) * z * (one - z);
      const V dr_pre = dn_pre * gh_n * r * (one - r);
      st(dr_pre, dgib + j);
      st(dr_pre, dghb + j);
      st(dz_pre, dgib + H + j);
      st(dz_pre, dghb + H + j);
      st(dn_pre, dgib + 2 * H + j);
      st(dn_pre * r, dghb + 2 * H + j);
      st(g * z, dh + b * H + j);
    });
  }
}

template void gru_gates_forward<arch_t>(const float*, const float*, const float*, float*, size_t,
                                        size_t);
template void gru_gates_backward<arch_t>(const float*, const float*, const float*, const float*,
                                         float*, float*, float*, size_t, size_t);

}  // namespace crt::kernels::simd
