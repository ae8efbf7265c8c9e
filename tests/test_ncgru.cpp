// NcgruCell: initialisation, forward against the equations (plain loops and a hand-computed
// modReLU example), gradient checks in double, the skew gradient of A against finite
// differences, orthogonality of U_c over training (Neumann and exact inverse), checkpoint
// completeness of the buffers, gauss_jordan_inverse, and error messages.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "crt/ncgru.hpp"
#include "engine/linalg.hpp"
#include "engine/optim.hpp"
#include "engine/parallel.hpp"
#include "tests/gradcheck.hpp"

using namespace crt;
using crt::testing::expect_error;
using crt::testing::max_abs_diff;
using crt::gauss_jordan_inverse;
using crt::model::NamedTensors;
using crt::model::NcgruCell;
using crt::testing::gradcheck;
using crt::testing::rand_input;

namespace {

double max_abs(const Tensor& a) {
  double worst = 0;
  for (double v : a.to_vector()) worst = std::max(worst, std::abs(v));
  return worst;
}

// Largest |A_ij + A_ji| (0 for an exactly skew-symmetric matrix).
double skew_defect(const Tensor& a) {
  const std::int64_t n = a.size(0);
  double worst = 0;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) worst = std::max(worst, std::abs(a.at({i, j}) + a.at({j, i})));
  return worst;
}

// I + A (f64)
Tensor identity_plus(const Tensor& a) {
  Tensor m = a.to(DType::f64);
  for (std::int64_t i = 0; i < m.size(0); ++i) m.set({i, i}, m.at({i, i}) + 1.0);
  return m;
}

void assign(Tensor& dst, const Tensor& src) {
  NoGradGuard ng;
  dst.copy_(src);
}

// One training update: mean squared error of the whole state sequence against a random
// target, ordinary optimiser on the trainable parameters, then the cell's A-update.
double train_update(NcgruCell& cell, Optimizer& opt, Generator& data, double a_lr,
                    std::int64_t batch = 4, std::int64_t steps = 5) {
  const DType dt = cell.w_x.dtype();
  cell.before_step();
  opt.zero_grad();
  const Tensor x = uniform({batch, steps, cell.w_x.size(1)}, -1.0, 1.0, data, dt);
  const Tensor h0 = uniform({batch, cell.hidden_size()}, -0.5, 0.5, data, dt);
  const Tensor target = uniform({batch, steps, cell.hidden_size()}, -1.0, 1.0, data, dt);
  const Tensor loss = mean(square(sub(cell.sequence(x, h0), target)));
  loss.backward();
  opt.step();
  cell.after_step(a_lr);
  return loss.item();
}

std::vector<Tensor> trainable_tensors(const NcgruCell& cell) {
  NamedTensors named;
  cell.collect("cell", named);
  std::vector<Tensor> out;
  for (auto& [name, t] : named) out.push_back(t);
  return out;
}

}  // namespace

// ---- construction ------------------------------------------------------------------------

TEST_CASE("NcgruCell: initialisation follows the reference code and U_c is orthogonal") {
  for (const std::int64_t hidden : {7, 20}) {
    CAPTURE(hidden);
    Generator gen(11);
    const NcgruCell cell(5, hidden, -1, 2, 100, gen);
    CHECK(cell.hidden_size() == hidden);
    CHECK(cell.w_x.shape() == Shape{3 * hidden, 5});
    CHECK(cell.b_x.shape() == Shape{3 * hidden});
    CHECK(cell.u_ru.shape() == Shape{2 * hidden, hidden});
    CHECK(cell.b_c.shape() == Shape{hidden});
    CHECK(cell.u_c.shape() == Shape{hidden, hidden});
    CHECK(cell.u_c.requires_grad());
    CHECK(cell.u_c.dtype() == DType::f32);
    CHECK(cell.a.dtype() == DType::f64);

    // D: hidden / 10 entries -1, the rest +1.
    CHECK(cell.negative_entries() == hidden / 10);
    const std::vector<double> signs = cell.d.to_vector();
    CHECK(std::count(signs.begin(), signs.end(), -1.0) == hidden / 10);
    CHECK(std::count(signs.begin(), signs.end(), 1.0) == hidden - hidden / 10);

    // A: 2x2 blocks [[0, s], [-s, 0]] with s in (-1, 0]; zero elsewhere (last row/col for odd H).
    CHECK(skew_defect(cell.a) == 0.0);
    for (std::int64_t i = 0; i < hidden; ++i)
      for (std::int64_t j = 0; j < hidden; ++j) {
        const double v = cell.a.at({i, j});
        const bool in_block = (i / 2 == j / 2) && i != j && i / 2 < hidden / 2;
        if (!in_block) CHECK(v == 0.0);
        else if (i % 2 == 0) CHECK((v <= 0.0 && v > -1.0));
      }

    // Init ranges: gates U(±1/sqrt(H)), W_c U(±0.01), the c-part of b_x and b_c zero.
    const double bound = 1.0 / std::sqrt(double(hidden));
    CHECK(max_abs(cell.w_x.narrow(0, 0, 2 * hidden)) <= bound);
    CHECK(max_abs(cell.w_x.narrow(0, 0, 2 * hidden)) > 0.01);
    CHECK(max_abs(cell.w_x.narrow(0, 2 * hidden, hidden)) <= 0.01);
    CHECK(max_abs(cell.u_ru) <= bound);
    CHECK(max_abs(cell.b_x.narrow(0, 0, 2 * hidden)) <= bound);
    CHECK(max_abs(cell.b_x.narrow(0, 2 * hidden, hidden)) == 0.0);
    CHECK(max_abs(cell.b_c) == 0.0);

    // U_c = (I+A)^{-1}(I-A)D: orthogonal, and (I+A) U_c = (I-A) D.
    CHECK(cell.orthogonality_error() < 1e-6);
    Tensor rhs = Tensor::zeros({hidden, hidden}, DType::f64);
    for (std::int64_t i = 0; i < hidden; ++i)
      for (std::int64_t j = 0; j < hidden; ++j)
        rhs.set({i, j}, ((i == j ? 1.0 : 0.0) - cell.a.at({i, j})) * signs[std::size_t(j)]);
    CHECK(max_abs_diff(matmul(identity_plus(cell.a), cell.u_c.to(DType::f64)), rhs) < 1e-6);
    CHECK(cell.a_step.item() == 0.0);
  }
  // f64 cell: orthogonal to rounding.
  Generator gen(3);
  const NcgruCell cell64(4, 16, 3, 2, 100, gen, DType::f64);
  CHECK(cell64.orthogonality_error() < 1e-13);
  CHECK(cell64.u_c.dtype() == DType::f64);
  const std::vector<double> signs = cell64.d.to_vector();
  CHECK(std::count(signs.begin(), signs.end(), -1.0) == 3);
}

TEST_CASE("NcgruCell: the same seed gives the same cell; names of parameters and buffers") {
  Generator g1(5), g2(5);
  const NcgruCell a(3, 8, 2, 2, 10, g1), b(3, 8, 2, 2, 10, g2);
  CHECK(a.w_x.to_vector() == b.w_x.to_vector());
  CHECK(a.a.to_vector() == b.a.to_vector());
  CHECK(a.d.to_vector() == b.d.to_vector());
  NamedTensors params, buffers;
  a.collect("mem", params);
  a.collect_buffers("mem", buffers);
  std::vector<std::string> pn, bn;
  for (auto& [n, t] : params) {
    pn.push_back(n);
    CHECK(t.requires_grad());
    CHECK(t.is_leaf());
  }
  for (auto& [n, t] : buffers) bn.push_back(n);
  CHECK(pn == std::vector<std::string>{"mem.w_x", "mem.b_x", "mem.u_ru", "mem.b_c"});
  CHECK(bn == std::vector<std::string>{"mem.a", "mem.a_inverse", "mem.u_c", "mem.d", "mem.a_adam_m",
                                       "mem.a_adam_v", "mem.a_step"});
  // The buffers are the cell's live tensors, and U_c is not among the trainables.
  CHECK(buffers[2].second.shares_storage_with(a.u_c));
  for (auto& [n, t] : params) CHECK_FALSE(t.shares_storage_with(a.u_c));
}

TEST_CASE("NcgruCell: constructor and step reject bad arguments") {
  Generator gen(1);
  expect_error([&] { NcgruCell(3, 8, -1, 0, 10, gen); }, {"NcgruCell", "neumann_order", "0"});
  expect_error([&] { NcgruCell(3, 8, -1, 4, 10, gen); }, {"NcgruCell", "neumann_order", "4"});
  expect_error([&] { NcgruCell(3, 8, -1, 2, 0, gen); }, {"NcgruCell", "exact_every", "0"});
  expect_error([&] { NcgruCell(3, 8, 9, 2, 10, gen); }, {"NcgruCell", "negative_entries", "9"});
  expect_error([&] { NcgruCell(3, 8, -2, 2, 10, gen); }, {"NcgruCell", "negative_entries", "-2"});
  expect_error([&] { NcgruCell(0, 8, -1, 2, 10, gen); }, {"NcgruCell", "input", "0"});

  NcgruCell cell(3, 4, 1, 2, 10, gen);
  const Tensor x = Tensor::zeros({2, 3}), h = Tensor::zeros({2, 4});
  expect_error([&] { cell.step(Tensor::zeros({2, 5}), h); },
               {"NcgruCell::step", "f32[2, 5]", "[B, 3]"});
  expect_error([&] { cell.step(x, Tensor::zeros({3, 4})); }, {"NcgruCell::step", "f32[3, 4]"});
  expect_error([&] { cell.step(x, Tensor::zeros({2, 4, 1})); }, {"NcgruCell::step", "[B, 4]"});
  expect_error([&] { cell.step(x.to(DType::f64), h); }, {"NcgruCell::step", "f64[2, 3]", "f32"});
  expect_error([&] { cell.step(Tensor(), h); }, {"NcgruCell::step", "defined"});
  expect_error([&] { cell.after_step(-1.0); }, {"NcgruCell::after_step", "learning rate"});
  expect_error([&] { cell.after_step(std::nan("")); }, {"NcgruCell::after_step", "learning rate"});
}

// ---- forward -----------------------------------------------------------------------------

TEST_CASE("NcgruCell: step matches the NCGRU equations computed with plain loops (f64)") {
  Generator gen(21);
  const std::int64_t in = 3, hid = 5, batch = 2;
  NcgruCell cell(in, hid, 2, 2, 100, gen, DType::f64);
  // Non-trivial biases everywhere and a non-block A.
  assign(cell.b_x, uniform({3 * hid}, -0.5, 0.5, gen, DType::f64));
  assign(cell.b_c, uniform({hid}, -0.4, 0.2, gen, DType::f64));
  {
    NoGradGuard ng;
    const Tensor r = uniform({hid, hid}, -0.6, 0.6, gen, DType::f64);
    cell.a.copy_(sub(r, r.transpose(0, 1)));
  }
  cell.refresh_exact();
  CHECK(cell.orthogonality_error() < 1e-13);
  const Tensor x = uniform({batch, in}, -1.0, 1.0, gen, DType::f64);
  const Tensor h = uniform({batch, hid}, -1.0, 1.0, gen, DType::f64);
  const Tensor out = cell.step(x, h);
  REQUIRE(out.shape() == Shape{batch, hid});

  auto sigma = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  const Tensor &wx = cell.w_x, &bx = cell.b_x, &uru = cell.u_ru, &uc = cell.u_c, &bc = cell.b_c;
  for (std::int64_t b = 0; b < batch; ++b) {
    std::vector<double> r(std::size_t(hid), 0.0);
    for (std::int64_t k = 0; k < hid; ++k) {
      double pre = bx.at({k});
      for (std::int64_t i = 0; i < in; ++i) pre += wx.at({k, i}) * x.at({b, i});
      for (std::int64_t j = 0; j < hid; ++j) pre += uru.at({k, j}) * h.at({b, j});
      r[std::size_t(k)] = sigma(pre);
    }
    for (std::int64_t k = 0; k < hid; ++k) {
      double pre_u = bx.at({hid + k}), z = bx.at({2 * hid + k});
      for (std::int64_t i = 0; i < in; ++i) {
        pre_u += wx.at({hid + k, i}) * x.at({b, i});
        z += wx.at({2 * hid + k, i}) * x.at({b, i});
      }
      for (std::int64_t j = 0; j < hid; ++j) {
        pre_u += uru.at({hid + k, j}) * h.at({b, j});
        z += uc.at({k, j}) * r[std::size_t(j)] * h.at({b, j});
      }
      const double u = sigma(pre_u);
      const double sign = z > 0 ? 1.0 : (z < 0 ? -1.0 : 0.0);
      const double c = sign * std::max(std::abs(z) + bc.at({k}), 0.0);
      const double expected = u * h.at({b, k}) + (1.0 - u) * c;
      CHECK(out.at({b, k}) == doctest::Approx(expected).epsilon(1e-12));
    }
  }
}

TEST_CASE("NcgruCell: modReLU candidate on a hand-computed example") {
  // H = 3, I = 1, gates zeroed so r = u = σ(0) = 1/2; A = 0 and D = diag(1, -1, 1) so U_c = D.
  // W_c = [0.5, -0.25, 0.1], x = 2, h = [1, 0.4, -2], b_c = [-0.5, -1, 0.25]:
  //   z = W_c x + U_c (r ⊙ h) = [1 + 0.5, -0.5 - 0.2, 0.2 - 1] = [1.5, -0.7, -0.8]
  //   c = sign(z) relu(|z| + b_c) = [1.0, -0 (|z| + b < 0), -1.05]
  //   h' = h / 2 + c / 2 = [1.0, 0.2, -1.525]
  Generator gen(2);
  NcgruCell cell(1, 3, 1, 2, 100, gen, DType::f64);
  {
    NoGradGuard ng;
    cell.w_x.fill_(0.0);
    cell.w_x.set({6, 0}, 0.5);
    cell.w_x.set({7, 0}, -0.25);
    cell.w_x.set({8, 0}, 0.1);
    cell.b_x.fill_(0.0);
    cell.u_ru.fill_(0.0);
    cell.b_c.copy_(Tensor::from_vector(std::vector<double>{-0.5, -1.0, 0.25}, {3}));
    cell.a.fill_(0.0);
    cell.d.copy_(Tensor::from_vector(std::vector<double>{1.0, -1.0, 1.0}, {3}));
  }
  cell.refresh_exact();
  CHECK(max_abs_diff(cell.u_c, Tensor::from_vector(std::vector<double>{1, 0, 0, 0, -1, 0, 0, 0, 1},
                                                   {3, 3})) == 0.0);
  const Tensor x = Tensor::from_vector(std::vector<double>{2.0}, {1, 1});
  const Tensor h = Tensor::from_vector(std::vector<double>{1.0, 0.4, -2.0}, {1, 3});
  const Tensor out = cell.step(x, h);
  const std::vector<double> expected{1.0, 0.2, -1.525};
  for (std::int64_t k = 0; k < 3; ++k) {
    CHECK(out.at({0, k}) == doctest::Approx(expected[std::size_t(k)]).epsilon(1e-14));
    // candidate recovered from h' = h/2 + c/2
    const double c = 2 * out.at({0, k}) - h.at({0, k});
    CHECK(c == doctest::Approx(std::vector<double>{1.0, 0.0, -1.05}[std::size_t(k)]).epsilon(1e-14));
  }
}

// ---- gradients ---------------------------------------------------------------------------

TEST_CASE("NcgruCell: gradcheck of step w.r.t. x, h, every trainable parameter and U_c (f64)") {
  Generator gen(31);
  const std::int64_t in = 3, hid = 6, batch = 2;
  NcgruCell cell(in, hid, 1, 2, 100, gen, DType::f64);
  assign(cell.b_x, uniform({3 * hid}, -0.5, 0.5, gen, DType::f64));
  assign(cell.b_c, uniform({hid}, -0.3, 0.3, gen, DType::f64));
  assign(cell.w_x, uniform({3 * hid, in}, -0.8, 0.8, gen, DType::f64));

  SUBCASE("contiguous inputs") {
    const Tensor x = rand_input({batch, in}, gen), h = rand_input({batch, hid}, gen);
    CHECK(gradcheck([&](const std::vector<Tensor>& v) { return cell.step(v[0], v[1]); },
                    {x, h, cell.w_x, cell.b_x, cell.u_ru, cell.b_c, cell.u_c}) <= 1.0);
  }
  SUBCASE("transposed (non-contiguous) x and h, over a short sequence") {
    const Tensor xt = rand_input({in, batch}, gen), ht = rand_input({hid, batch}, gen);
    auto f = [&](const std::vector<Tensor>& v) {
      Tensor state = v[1].transpose(0, 1);
      for (int t = 0; t < 3; ++t) state = cell.step(v[0].transpose(0, 1), state);
      return state;
    };
    CHECK(gradcheck(f, {xt, ht, cell.w_x, cell.u_ru, cell.u_c}) <= 1.0);
  }
}

TEST_CASE("NcgruCell: skew gradient ∇A = V^T - V matches finite differences of L(U_c(A)) (f64)") {
  // U = (I+A)^{-1}(I-A)D gives dU = -(I+A)^{-1} dA (U + D), so for a loss L(U) with
  // G = ∂L/∂U: dL = <-(I+A)^{-T} G (U + D)^T, dA> = <-V, dA>, V = (I+A)^{-T} G (D + U^T).
  // Along the skew direction dA = ε (E_ij - E_ji): dL/dε = V_ji - V_ij = ∇A_ij, i.e.
  // dL/dε = <∇A, E_ij - E_ji> / 2 (the factor 1/2 because ∇A is itself skew).
  Generator gen(41);
  const std::int64_t in = 3, hid = 4, batch = 2;
  NcgruCell cell(in, hid, 1, 2, 100, gen, DType::f64);
  assign(cell.b_c, Tensor::full({hid}, -0.05, DType::f64));
  const Tensor x = uniform({batch, in}, -1.0, 1.0, gen, DType::f64);
  const Tensor h = uniform({batch, hid}, -1.0, 1.0, gen, DType::f64);
  const Tensor weight = uniform({batch, hid}, -1.0, 1.0, gen, DType::f64);
  // Two steps, so U_c enters twice (the gradient accumulates over time).
  auto loss = [&] { return sum(mul(cell.step(x, cell.step(x, h)), weight)); };

  cell.before_step();
  loss().backward();
  const Tensor grad_a = cell.skew_gradient();
  REQUIRE(grad_a.defined());
  CHECK(skew_defect(grad_a) == 0.0);

  const double eps = 1e-6;
  const Tensor a0 = cell.a.clone();
  int compared = 0;
  for (std::int64_t i = 0; i < hid; ++i)
    for (std::int64_t j = i + 1; j < hid; ++j) {
      auto loss_at = [&](double step) {
        NoGradGuard ng;
        cell.a.copy_(a0);
        cell.a.set({i, j}, a0.at({i, j}) + step);
        cell.a.set({j, i}, a0.at({j, i}) - step);
        cell.refresh_exact();
        return loss().item();
      };
      const double numeric = (loss_at(eps) - loss_at(-eps)) / (2 * eps);
      const double analytic = 0.5 * (grad_a.at({i, j}) - grad_a.at({j, i}));
      CAPTURE(i);
      CAPTURE(j);
      CHECK(std::abs(analytic - numeric) <= 1e-8 + 1e-6 * std::abs(numeric));
      CHECK(std::abs(numeric) > 1e-6);  // the direction actually matters
      ++compared;
    }
  CHECK(compared == hid * (hid - 1) / 2);
}

TEST_CASE("NcgruCell: after_step descends the loss on a fixed batch (A-only updates)") {
  Generator gen(51);
  NcgruCell cell(4, 8, 1, 2, 5, gen, DType::f64);
  const Tensor x = uniform({3, 4}, -1.0, 1.0, gen, DType::f64);
  const Tensor h = uniform({3, 8}, -1.0, 1.0, gen, DType::f64);
  const Tensor target = uniform({3, 8}, -1.0, 1.0, gen, DType::f64);
  auto loss = [&] { return mean(square(sub(cell.step(x, cell.step(x, h)), target))); };
  double first = 0, last = 0;
  for (int k = 0; k < 30; ++k) {
    cell.before_step();
    const Tensor l = loss();
    l.backward();
    if (k == 0) first = l.item();
    last = l.item();
    cell.after_step(1e-2);
  }
  CHECK(last < first);
  CHECK(cell.a_step.item() == 30.0);
  CHECK(cell.orthogonality_error() < 1e-10);
}

// ---- the A-update over training ----------------------------------------------------------

TEST_CASE("NcgruCell: U_c stays orthogonal over 100 training updates") {
  struct Setting {
    int order;
    std::int64_t exact_every;
    double orth_tol;
  };
  for (const Setting s : {Setting{2, 1000, 1e-4}, Setting{3, 1000, 1e-4}, Setting{1, 1000, 1e-3},
                          Setting{2, 1, 1e-5}, Setting{2, 30, 1e-4}}) {
    CAPTURE(s.order);
    CAPTURE(s.exact_every);
    Generator gen(61), data(62);
    NcgruCell cell(6, 24, -1, s.order, s.exact_every, gen);
    const std::vector<double> d0 = cell.d.to_vector();
    Adam opt(trainable_tensors(cell), {.lr = 1e-3});
    const std::vector<double> a0 = cell.a.to_vector();
    for (int k = 0; k < 100; ++k) train_update(cell, opt, data, 1e-3);
    CHECK(cell.a_step.item() == 100.0);
    CHECK(cell.a.to_vector() != a0);  // A moved
    CHECK(skew_defect(cell.a) == 0.0);
    CHECK(cell.d.to_vector() == d0);
    const double orth = cell.orthogonality_error();
    INFO("orthogonality error ", orth);
    CHECK(orth < s.orth_tol);
    // The maintained inverse stays close to the exact one.
    const Tensor exact = gauss_jordan_inverse(identity_plus(cell.a));
    const double inv_err = max_abs_diff(cell.a_inverse, exact);
    INFO("|inverse - exact| ", inv_err);
    CHECK(inv_err < s.orth_tol);
    if (s.exact_every == 1) CHECK(inv_err == 0.0);
    // The update leaves no gradient behind.
    CHECK_FALSE(cell.u_c.grad().defined());
  }
}

TEST_CASE("NcgruCell: the exact inverse is recomputed every exact_every updates") {
  Generator gen(71), data(72);
  NcgruCell cell(3, 10, 1, 1, 3, gen);
  SGD opt(trainable_tensors(cell), {.lr = 0.05});
  for (int k = 1; k <= 6; ++k) {
    train_update(cell, opt, data, 2e-2);
    const Tensor exact = gauss_jordan_inverse(identity_plus(cell.a));
    CAPTURE(k);
    if (k % 3 == 0) CHECK(max_abs_diff(cell.a_inverse, exact) == 0.0);
    else CHECK(max_abs_diff(cell.a_inverse, exact) > 0.0);  // first-order Neumann, not exact
  }
}

TEST_CASE("NcgruCell: before_step clears U_c's gradient; after_step without one is a no-op") {
  Generator gen(81);
  NcgruCell cell(2, 4, 1, 2, 10, gen);
  const Tensor x = uniform({1, 2}, -1.0, 1.0, gen), h = uniform({1, 4}, -1.0, 1.0, gen);
  sum(cell.step(x, h)).backward();
  REQUIRE(cell.u_c.grad().defined());
  cell.before_step();
  CHECK_FALSE(cell.u_c.grad().defined());
  const std::vector<double> a0 = cell.a.to_vector(), u0 = cell.u_c.to_vector();
  cell.after_step(0.1);
  CHECK(cell.a.to_vector() == a0);
  CHECK(cell.u_c.to_vector() == u0);
  CHECK(cell.a_step.item() == 0.0);
  CHECK_FALSE(cell.skew_gradient().defined());

  // A non-finite gradient is refused and leaves every piece of state as it was.
  cell.u_c.set_grad(Tensor::full({4, 4}, std::nan("")));
  expect_error([&] { cell.after_step(0.1); }, {"NcgruCell::after_step", "non-finite", "f32[4, 4]"});
  CHECK(cell.a.to_vector() == a0);
  CHECK(cell.u_c.to_vector() == u0);
  CHECK(cell.a_step.item() == 0.0);
}

TEST_CASE("NcgruCell: parameters + buffers restore training bit-exactly") {
  Generator g1(91), g2(92);  // different seeds: every piece of state must come from the copy
  NcgruCell first(5, 12, 2, 2, 4, g1), second(5, 12, 2, 2, 4, g2);
  REQUIRE(first.d.to_vector() != second.d.to_vector());
  Generator data1(93);
  SGD opt1(trainable_tensors(first), {.lr = 0.05});
  for (int k = 0; k < 6; ++k) train_update(first, opt1, data1, 5e-3);

  // "Checkpoint": copy every trainable and buffer tensor into the other cell.
  NamedTensors src, dst;
  first.collect("c", src);
  first.collect_buffers("c", src);
  second.collect("c", dst);
  second.collect_buffers("c", dst);
  REQUIRE(src.size() == dst.size());
  for (std::size_t i = 0; i < src.size(); ++i) {
    REQUIRE(src[i].first == dst[i].first);
    assign(dst[i].second, src[i].second);
  }
  Generator data2 = data1;
  SGD opt2(trainable_tensors(second), {.lr = 0.05});
  // 6 more updates (crossing exact refreshes at 8 and 12), same data in both.
  for (int k = 0; k < 6; ++k) {
    const double l1 = train_update(first, opt1, data1, 5e-3);
    const double l2 = train_update(second, opt2, data2, 5e-3);
    CHECK(l1 == l2);
  }
  NamedTensors after1, after2;
  first.collect("c", after1);
  first.collect_buffers("c", after1);
  second.collect("c", after2);
  second.collect_buffers("c", after2);
  for (std::size_t i = 0; i < after1.size(); ++i) {
    CAPTURE(after1[i].first);
    CHECK(after1[i].second.to_vector() == after2[i].second.to_vector());
  }
  CHECK(first.a_step.item() == 12.0);
}

// ---- gauss_jordan_inverse ----------------------------------------------------------------

TEST_CASE("gauss_jordan_inverse: inverts random and pivot-needing matrices; rejects bad input") {
  Generator gen(101);
  for (const std::int64_t n : {1, 2, 7, 40}) {
    CAPTURE(n);
    const Tensor m = uniform({n, n}, -1.0, 1.0, gen, DType::f64);
    const Tensor inv = gauss_jordan_inverse(m);
    CHECK(inv.dtype() == DType::f64);
    Tensor eye = Tensor::zeros({n, n}, DType::f64);
    for (std::int64_t i = 0; i < n; ++i) eye.set({i, i}, 1.0);
    CHECK(max_abs_diff(matmul(m, inv), eye) < 1e-10);
    CHECK(max_abs_diff(matmul(inv, m), eye) < 1e-10);
  }
  // Zero leading pivot: needs a row swap. [[0, 1], [2, 3]]^{-1} = [[-1.5, 0.5], [1, 0]].
  const Tensor p = Tensor::from_vector(std::vector<float>{0, 1, 2, 3}, {2, 2});
  CHECK(max_abs_diff(gauss_jordan_inverse(p),
                     Tensor::from_vector(std::vector<double>{-1.5, 0.5, 1, 0}, {2, 2})) < 1e-15);
  // Non-contiguous input (a transpose): inverse of the transpose.
  const Tensor q = uniform({5, 5}, -1.0, 1.0, gen, DType::f64);
  CHECK(max_abs_diff(gauss_jordan_inverse(q.transpose(0, 1)),
                     gauss_jordan_inverse(q).transpose(0, 1)) < 1e-12);

  expect_error([] { gauss_jordan_inverse(Tensor::zeros({2, 3})); },
               {"gauss_jordan_inverse", "square", "f32[2, 3]"});
  expect_error([] { gauss_jordan_inverse(Tensor::zeros({4})); },
               {"gauss_jordan_inverse", "square"});
  expect_error(
      [] {
        gauss_jordan_inverse(
            Tensor::from_vector(std::vector<double>{1, 2, 2, 4}, {2, 2}));
      },
      {"gauss_jordan_inverse", "singular"});
  expect_error([] { gauss_jordan_inverse(Tensor::zeros({3, 3})); },
               {"gauss_jordan_inverse", "singular"});
  expect_error(
      [] {
        gauss_jordan_inverse(
            Tensor::from_vector(std::vector<double>{1, std::nan(""), 0, 1}, {2, 2}));
      },
      {"gauss_jordan_inverse", "non-finite"});
  expect_error([] { gauss_jordan_inverse(Tensor()); },
               {"gauss_jordan_inverse", "undefined"});
}

TEST_CASE("matmul_f64 equals the f64 matmul op, for any layout, at any thread count") {
  struct ThreadCountReset {
    ~ThreadCountReset() { set_num_threads(0); }
  } reset;
  Generator gen(131);
  for (const auto& shape : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{1, 1, 1}, {3, 5, 7},
                            {33, 17, 65}, {70, 150, 150}}) {
    const std::int64_t rows = std::get<0>(shape), depth = std::get<1>(shape), cols = std::get<2>(shape);
    CAPTURE(rows);
    CAPTURE(depth);
    CAPTURE(cols);
    const Tensor a = uniform({rows, depth}, -1.0, 1.0, gen, DType::f64);
    const Tensor bt = uniform({cols, depth}, -1.0, 1.0, gen, DType::f64);
    const Tensor b = bt.transpose(0, 1);  // not contiguous
    const Tensor want = matmul(a, b);
    set_num_threads(1);
    const Tensor one = matmul_f64(a, b);
    set_num_threads(0);
    const Tensor many = matmul_f64(a, b);
    CHECK(one.dtype() == DType::f64);
    CHECK(max_abs_diff(one, want) < 1e-12);
    CHECK(one.to_vector() == many.to_vector());
    CHECK(max_abs_diff(matmul_f64(a.to(DType::f32), b), matmul(a.to(DType::f32).to(DType::f64), b)) < 1e-12);
  }
  expect_error([] { matmul_f64(Tensor::zeros({2, 3}), Tensor::zeros({2, 3})); },
               {"matmul_f64", "f32[2, 3]"});
}

TEST_CASE("NcgruCell: inverse and A-update do not depend on the thread count") {
  struct ThreadCountReset {
    ~ThreadCountReset() { set_num_threads(0); }
  } reset;
  auto run = [](int threads) {
    set_num_threads(threads);
    Generator gen(111), data(112);
    NcgruCell cell(4, 150, -1, 2, 2, gen);  // large enough for parallel elimination chunks
    SGD opt(trainable_tensors(cell), {.lr = 0.05});
    for (int k = 0; k < 3; ++k) train_update(cell, opt, data, 1e-3, 2, 2);  // Neumann + exact
    return std::vector<std::vector<double>>{cell.a_inverse.to_vector(), cell.u_c.to_vector(),
                                            cell.w_x.to_vector()};
  };
  const auto one = run(1), many = run(0);
  CHECK(one == many);
}
