// Layer normalisation over contiguous rows, forward and backward, compiled once per ISA (Note
// [ISA objects] in isa.hpp). Two-pass mean and variance as in the reference; gamma and beta
// may be null (identity affine), chosen outside the loops.
#include <cmath>
#include <cstddef>

#include "kernels/simd_kernels.hpp"
#include "kernels/simd_util.hpp"

namespace crt::kernels::simd {
namespace {

// sum of (x[i] - mu)^2 for i < n.
template <class Arch>
float centred_square_sum(const float* x, float mu, size_t n) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  const V vm(mu);
  V s0(0.0f), s1(0.0f);
  size_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const V d0 = V::load_unaligned(x + i) - vm, d1 = V::load_unaligned(x + i + W) - vm;
    s0 = fma<Arch>(d0, d0, s0);
    s1 = fma<Arch>(d1, d1, s1);
  }
  for (; i + W <= n; i += W) {
    const V d = V::load_unaligned(x + i) - vm;
    s0 = fma<Arch>(d, d, s0);
  }
  if (i < n) {
    const V d = load_first<Arch>(x + i, n - i, mu) - vm;  // padding lanes give 0
    s1 = fma<Arch>(d, d, s1);
  }
  return hsum<Arch>(s0 + s1);
}

template <class Arch, bool HasGamma, bool HasBeta>
void layernorm_rows(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                    float* rstd, size_t rows, size_t cols, float eps) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    const float mu = row_sum<Arch>(xr, cols) / float(cols);
    const float var = centred_square_sum<Arch>(xr, mu, cols) / float(cols);
    const float rs = 1.0f / std::sqrt(var + eps);
    mean[r] = mu;
    rstd[r] = rs;
    const V vm(mu), vr(rs);
    // xhat * gamma + beta for the columns c .. c + W (partial: `left` < W columns)
    const auto out = [&](size_t c, V xv, size_t left) {
      V o = (xv - vm) * vr;
      if constexpr (HasGamma)
        o = o * (left == W ? V::load_unaligned(gamma + c) : load_first<Arch>(gamma + c, left));
      if constexpr (HasBeta)
        o = o + (left == W ? V::load_unaligned(beta + c) : load_first<Arch>(beta + c, left));
      return o;
    };
    size_t c = 0;
    for (; c + W <= cols; c += W) out(c, V::load_unaligned(xr + c), W).store_unaligned(yr + c);
    if (c < cols) {
      const size_t left = cols - c;
      store_first<Arch>(out(c, load_first<Arch>(xr + c, left), left), yr + c, left);
    }
  }
}

// dxhat = dy * gamma; dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat));
// dgamma += dy * xhat, dbeta += dy (each when non-null).
template <class Arch, bool HasGamma, bool HasDGamma, bool HasDBeta>
void layernorm_backward_rows(const float* x, const float* gamma, const float* mean,
                             const float* rstd, const float* dy, float* dx, float* dgamma,
                             float* dbeta, size_t rows, size_t cols) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  const auto load = [](const float* p, size_t left) {
    return left == W ? V::load_unaligned(p) : load_first<Arch>(p, left);
  };
  const auto store = [](V v, float* p, size_t left) {
    if (left == W)
      v.store_unaligned(p);
    else
      store_first<Arch>(v, p, left);
  };
  const V inv_n(1.0f / float(cols));
  for (size_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float* gr = dy + r * cols;
    const V vm(mean[r]), vr(rstd[r]);
    V s_dxhat(0.0f), s_dxhat_xhat(0.0f);
    for (size_t c = 0; c < cols; c += W) {
      const size_t left = cols - c < W ? cols - c : W;
      const V g = load(gr + c, left), xhat = (load(xr + c, left) - vm) * vr;
      const V dxhat = HasGamma ? g * load(gamma + c, left) : g;
      s_dxhat += dxhat;
      s_dxhat_xhat = fma<Arch>(dxhat, xhat, s_dxhat_xhat);
      if constexpr (HasDGamma) store(fma<Arch>(g, xhat, load(dgamma + c, left)), dgamma + c, left);
      if constexpr (HasDBeta) store(load(dbeta + c, left) + g, dbeta + c, left);
    }
    const V mean_dxhat = V(hsum<Arch>(s_dxhat)) * inv_n;
    const V mean_dxhat_xhat = V(hsum<Arch>(s_dxhat_xhat)) * inv_n;
    float* dxr = dx + r * cols;
    for (size_t c = 0; c < cols; c += W) {
      const size_t left = cols - c < W ? cols - c : W;
      const V g = load(gr + c, left), xhat = (load(xr + c, left) - vm) * vr;
      const V dxhat = HasGamma ? g * load(gamma + c, left) : g;
      store(vr * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat), dxr + c, left);
    }
  }
}

}  // namespace

template <class Arch>
void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y,
                       float* mean, float* rstd, size_t rows, size_t cols, float eps) {
  if (gamma && beta)
    layernorm_rows<Arch, true, true>(x, gamma, beta, y, mean, rstd, rows, cols, eps);
  else if (gamma)
    layernorm_rows<Arch, true, false>(x, gamma, beta, y, mean, rstd, rows, cols, eps);
  else if (beta)
    layernorm_rows<Arch, false, true>(x, gamma, beta, y, mean, rstd, rows, cols, eps);
  else
    layernorm_rows<Arch, false, false>(x, gamma, beta, y, mean, rstd, rows, cols, eps);
}

template <class Arch>
void layernorm_backward(const float* x, const float* gamma, const float* mean, const float* rstd,
                        const float* dy, float* dx, float* dgamma, float* dbeta, size_t rows,
                        size_t cols) {
  const auto run = [&](auto has_gamma, auto has_dgamma, auto has_dbeta) {
    layernorm_backward_rows<Arch, decltype(has_gamma)::value, decltype(has_dgamma)::value,
                            decltype(has_dbeta)::value>(x, gamma, mean, rstd, dy, dx, dgamma,
                                                        dbeta, rows, cols);
  };
  using yes = std::true_type;
  using no = std::false_type;
  const auto with_dbeta = [&](auto g, auto dg) {
    if (dbeta)
      run(g, dg, yes{});
    else
      run(g, dg, no{});
  };
  const auto with_dgamma = [&](auto g) {
    if (dgamma)
      with_dbeta(g, yes{});
    else
      with_dbeta(g, no{});
  };
  if (gamma)
    with_dgamma(yes{});
  else
    with_dgamma(no{});
}

template void layernorm_forward<arch_t>(const float*, const float*, const float*, float*, float*,
                                        float*, size_t, size_t, float);
template void layernorm_backward<arch_t>(const float*, const float*, const float*, const float*,
                                         const float*, float*, float*, float*, size_t, size_t);

}  // namespace crt::kernels::simd
