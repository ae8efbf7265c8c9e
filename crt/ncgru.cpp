// NCGRU cell (see ncgru.hpp): forward composed from engine ops; the A-update of the scaled
// Cayley transform (skew gradient, Adam, Neumann/exact inverse refresh) in double.
#include "crt/ncgru.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numbers>
#include <utility>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "engine/linalg.hpp"

namespace crt::model {

namespace {

constexpr double kAdamBeta1 = 0.9, kAdamBeta2 = 0.999, kAdamEps = 1e-8;

// A skew-symmetric block-diagonal [H, H] (f64): 2x2 blocks [[0, s], [-s, 0]] with
// s = -sqrt((1 - cos θ) / (1 + cos θ)), θ ~ U(0, π/2); for odd H the last row/column is 0.
Tensor initial_skew(std::int64_t hidden, Generator& gen) {
  Tensor a = Tensor::zeros({hidden, hidden}, DType::f64);
  const std::int64_t blocks = hidden / 2;
  const std::vector<double> theta =
      uniform({blocks}, 0.0, std::numbers::pi / 2, gen, DType::f64).to_vector();
  double* p = a.data<double>();
  for (std::int64_t k = 0; k < blocks; ++k) {
    const double c = std::cos(theta[std::size_t(k)]);
    const double s = -std::sqrt((1.0 - c) / (1.0 + c));
    const std::int64_t i = 2 * k;
    p[i * hidden + i + 1] = s;
    p[(i + 1) * hidden + i] = -s;
  }
  return a;
}

// D as a vector [H] with `negatives` entries -1 at positions drawn from gen (partial
// Fisher-Yates), the rest +1.
Tensor initial_signs(std::int64_t hidden, std::int64_t negatives, Generator& gen, DType dtype) {
  std::vector<std::int64_t> order(std::size_t(hidden), 0);
  for (std::int64_t i = 0; i < hidden; ++i) order[std::size_t(i)] = i;
  Tensor d = Tensor::ones({hidden}, dtype);
  for (std::int64_t i = 0; i < negatives; ++i) {
    const auto span = std::uint64_t(hidden - i);
    const std::int64_t j = i + std::int64_t(gen.next_u64() % span);
    std::swap(order[std::size_t(i)], order[std::size_t(j)]);
    d.set({order[std::size_t(i)]}, -1.0);
  }
  return d;
}

// I + A for a square f64 matrix a.
Tensor identity_plus(const Tensor& a) {
  Tensor m = a.contiguous().clone();
  const std::int64_t n = m.size(0);
  double* p = m.data<double>();
  for (std::int64_t i = 0; i < n; ++i) p[i * n + i] += 1.0;
  return m;
}

// Contiguous f64 copy of a 2-D tensor's transpose.
Tensor transposed(const Tensor& a) { return a.transpose(0, 1).contiguous(); }

}  // namespace

NcgruCell::NcgruCell(std::int64_t input, std::int64_t hidden, std::int64_t negative_entries,
                     int neumann_order, std::int64_t exact_every, Generator& gen, DType dtype)
    : input_(input),
      hidden_(hidden),
      negative_entries_(negative_entries < 0 ? hidden / 10 : negative_entries),
      neumann_order_(neumann_order),
      exact_every_(exact_every) {
  const char* op = "NcgruCell";
  require(input >= 1 && hidden >= 1, op, "input and hidden sizes must be >= 1, got input ",
          input, ", hidden ", hidden);
  require(negative_entries >= -1 && negative_entries_ <= hidden, op,
          "negative_entries must be -1 (10% of hidden) or in [0, ", hidden, "], got ",
          negative_entries);
  require(neumann_order >= 1 && neumann_order <= 3, op, "neumann_order must be 1, 2 or 3, got ",
          neumann_order);
  require(exact_every >= 1, op, "exact_every must be >= 1, got ", exact_every);

  NoGradGuard no_grad;
  const double gate_bound = 1.0 / std::sqrt(double(hidden));
  const Tensor w_gates = uniform({2 * hidden, input}, -gate_bound, gate_bound, gen, dtype);
  const Tensor w_cand = uniform({hidden, input}, -0.01, 0.01, gen, dtype);
  w_x = concat({w_gates, w_cand}, 0);
  u_ru = uniform({2 * hidden, hidden}, -gate_bound, gate_bound, gen, dtype);
  const Tensor b_gates = uniform({2 * hidden}, -gate_bound, gate_bound, gen, dtype);
  b_x = concat({b_gates, Tensor::zeros({hidden}, dtype)}, 0);
  b_c = Tensor::zeros({hidden}, dtype);
  for (Tensor* p : {&w_x, &b_x, &u_ru, &b_c}) p->set_requires_grad(true);

  a = initial_skew(hidden, gen);
  d = initial_signs(hidden, negative_entries_, gen, dtype);
  a_inverse = gauss_jordan_inverse(identity_plus(a));
  adam_m = Tensor::zeros({hidden, hidden}, DType::f64);
  adam_v = Tensor::zeros({hidden, hidden}, DType::f64);
  a_step = Tensor::scalar(0.0, DType::f64);
  u_c = Tensor::zeros({hidden, hidden}, dtype);
  u_c.set_requires_grad(true);
  rewrite_u_c();
}

Tensor NcgruCell::step(const Tensor& x, const Tensor& h) const {
  const char* op = "NcgruCell::step";
  require(x.defined() && h.defined(), op, "input and state must be defined tensors");
  require(x.dim() == 2 && x.size(1) == input_ && h.dim() == 2 && h.size(1) == hidden_ &&
              x.size(0) == h.size(0),
          op, "expected x [B, ", input_, "] and h [B, ", hidden_, "], got x ", x.describe(),
          " and h ", h.describe());
  require(x.dtype() == w_x.dtype() && h.dtype() == w_x.dtype(), op, "x ", x.describe(), " and h ",
          h.describe(), " must have the cell's dtype ", dtype_name(w_x.dtype()));
  return step_from_projection(linear(x, w_x, b_x), h, Tensor(), Tensor());
}

Tensor NcgruCell::sequence(const Tensor& x, const Tensor& h0) const {
  const char* op = "NcgruCell::sequence";
  require(x.defined() && h0.defined(), op, "input and initial state must be defined tensors");
  require(x.dim() == 3 && x.size(1) >= 1 && x.size(2) == input_ && h0.dim() == 2 &&
              h0.size(1) == hidden_ && x.size(0) == h0.size(0),
          op, "expected x [B, T >= 1, ", input_, "] and h0 [B, ", hidden_, "], got x ",
          x.describe(), " and h0 ", h0.describe());
  require(x.dtype() == w_x.dtype() && h0.dtype() == w_x.dtype(), op, "x ", x.describe(),
          " and h0 ", h0.describe(), " must have the cell's dtype ", dtype_name(w_x.dtype()));
  const Tensor gx = linear(x, w_x, b_x);  // [B, T, 3H], all steps at once
  // The recurrent weights transposed once for all steps (a recorded copy, so their gradients
  // flow back): each step's product then reads them in place instead of transposing them
  // into packed panels at every step. Up to 4 rows the products run as dot products over the
  // weights as stored, which need no copy.
  const bool copy_once = x.size(0) > 4;
  const Tensor u_ru_t = copy_once ? u_ru.transpose(0, 1).contiguous() : Tensor();
  const Tensor u_c_t = copy_once ? u_c.transpose(0, 1).contiguous() : Tensor();
  return unroll(x.size(1), h0, [&](std::int64_t t, const Tensor& h) {
    return step_from_projection(gx.narrow(1, t, 1).squeeze(1), h, u_ru_t, u_c_t);
  });
}

Tensor NcgruCell::step_from_projection(const Tensor& gx, const Tensor& h, const Tensor& u_ru_t,
                                       const Tensor& u_c_t) const {
  const std::int64_t hid = hidden_;
  // gx: [B, 3H]: r, u, c parts of x W_x^T + b_x
  // [B, 2H]: r, u parts (the parameters themselves unless transposed copies are given: at a
  // few rows the products read them as stored, in inference through their GEMV panels)
  const Tensor gh = u_ru_t.defined() ? matmul(h, u_ru_t) : matmul(h, u_ru, false, true);
  const Tensor ru = sigmoid(add(gx.narrow(1, 0, 2 * hid), gh));  // [B, 2H]
  const Tensor r = ru.narrow(1, 0, hid), u = ru.narrow(1, hid, hid);
  const Tensor z = add(gx.narrow(1, 2 * hid, hid), u_c_t.defined() ? matmul(mul(r, h), u_c_t) : matmul(mul(r, h), u_c, false, true));
  const Tensor c = modrelu(z, b_c);  // [B, H]
  // u h + (1 - u) c = c + u (h - c)
  return add(c, mul(u, sub(h, c)));
}

void NcgruCell::collect(const std::string& prefix, NamedTensors& out) const {
  out.emplace_back(prefix + ".w_x", w_x);
  out.emplace_back(prefix + ".b_x", b_x);
  out.emplace_back(prefix + ".u_ru", u_ru);
  out.emplace_back(prefix + ".b_c", b_c);
}

void NcgruCell::collect_buffers(const std::string& prefix, NamedTensors& out) const {
  out.emplace_back(prefix + ".a", a);
  out.emplace_back(prefix + ".a_inverse", a_inverse);
  out.emplace_back(prefix + ".u_c", u_c);
  out.emplace_back(prefix + ".d", d);
  out.emplace_back(prefix + ".a_adam_m", adam_m);
  out.emplace_back(prefix + ".a_adam_v", adam_v);
  out.emplace_back(prefix + ".a_step", a_step);
}

void NcgruCell::before_step() { u_c.zero_grad(); }

void NcgruCell::rewrite_u_c() {
  NoGradGuard no_grad;
  const std::int64_t n = hidden_;
  // B (I - A) D with B = (I+A)^{-1}: since I - A = 2I - (I + A), B (I - A) = 2B - I (exact
  // for the exact inverse; within the Neumann error otherwise), which saves a product.
  Tensor u = a_inverse.clone();
  double* p = u.data<double>();
  const std::vector<double> signs = d.to_vector();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      p[i * n + j] = (2.0 * p[i * n + j] - (i == j ? 1.0 : 0.0)) * signs[std::size_t(j)];
  u_c.copy_(u);
  u_c.zero_grad();
}

void NcgruCell::refresh_exact() {
  NoGradGuard no_grad;
  a_inverse.copy_(gauss_jordan_inverse(identity_plus(a)));
  rewrite_u_c();
}

Tensor NcgruCell::skew_gradient() const {
  const Tensor g_in = u_c.grad();
  if (!g_in.defined()) return Tensor();
  NoGradGuard no_grad;
  const std::int64_t n = hidden_;
  const Tensor g = g_in.to(DType::f64);
  const std::vector<double> uc = u_c.to_vector(), signs = d.to_vector();
  // W = D + U_c^T
  Tensor w = Tensor::empty({n, n}, DType::f64);
  double* wp = w.data<double>();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      wp[i * n + j] = uc[std::size_t(j * n + i)] + (i == j ? signs[std::size_t(i)] : 0.0);
  const Tensor v = matmul_f64(transposed(a_inverse), matmul_f64(g, w));  // (I+A)^{-T} G W
  Tensor grad = Tensor::empty({n, n}, DType::f64);
  const double* vp = v.data<double>();
  double* gp = grad.data<double>();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) gp[i * n + j] = vp[j * n + i] - vp[i * n + j];
  return grad;
}

void NcgruCell::after_step(double lr) {
  require(std::isfinite(lr) && lr >= 0.0, "NcgruCell::after_step",
          "learning rate must be finite and >= 0, got ", lr);
  const Tensor grad = skew_gradient();
  if (!grad.defined()) return;
  NoGradGuard no_grad;
  const std::int64_t n = hidden_, count = n * n;
  const double* g = grad.data<double>();
  for (std::int64_t e = 0; e < count; ++e)
    require(std::isfinite(g[e]), "NcgruCell::after_step", "the gradient of U_c ",
            u_c.describe(), " has non-finite entries; A is left unchanged");
  const double t = a_step.item() + 1.0;
  const Tensor a_old = a.clone();

  // Adam on A (elementwise; a skew gradient gives skew moments m and a symmetric v).
  const double bc1 = 1.0 - std::pow(kAdamBeta1, t), bc2 = 1.0 - std::pow(kAdamBeta2, t);
  double* m = adam_m.data<double>();
  double* v = adam_v.data<double>();
  double* ap = a.data<double>();
  for (std::int64_t e = 0; e < count; ++e) {
    m[e] = kAdamBeta1 * m[e] + (1.0 - kAdamBeta1) * g[e];
    v[e] = kAdamBeta2 * v[e] + (1.0 - kAdamBeta2) * g[e] * g[e];
    ap[e] -= lr * (m[e] / bc1) / (std::sqrt(v[e] / bc2) + kAdamEps);
  }
  // Keep A exactly skew: A = (A - A^T) / 2.
  for (std::int64_t i = 0; i < n; ++i) {
    ap[i * n + i] = 0.0;
    for (std::int64_t j = i + 1; j < n; ++j) {
      const double s = 0.5 * (ap[i * n + j] - ap[j * n + i]);
      ap[i * n + j] = s;
      ap[j * n + i] = -s;
    }
  }
  a.bump_version();
  a_step.fill_(t);

  const auto updates = std::int64_t(t);
  if (updates % exact_every_ == 0) {
    a_inverse.copy_(gauss_jordan_inverse(identity_plus(a)));
  } else {
    // (I + A_new)^{-1} = (I + B ΔA)^{-1} B ≈ (I + X + X^2 [+ X^3]) B with X = -B ΔA,
    // B = (I + A_old)^{-1}.
    const Tensor x = neg(matmul_f64(a_inverse, sub(a, a_old)));
    Tensor term = a_inverse, sum_terms = a_inverse;
    for (int k = 0; k < neumann_order_; ++k) {
      term = matmul_f64(x, term);
      sum_terms = add(sum_terms, term);
    }
    a_inverse.copy_(sum_terms);
  }
  rewrite_u_c();
}

double NcgruCell::orthogonality_error() const {
  NoGradGuard no_grad;
  const std::int64_t n = hidden_;
  const Tensor u = u_c.to(DType::f64);
  const std::vector<double> gram = matmul_f64(transposed(u), u).to_vector();
  double worst = 0.0;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      worst = std::max(worst, std::abs(gram[std::size_t(i * n + j)] - (i == j ? 1.0 : 0.0)));
  return worst;
}

}  // namespace crt::model
