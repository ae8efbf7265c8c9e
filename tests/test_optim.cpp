// Optimisers against hand-computed update formulas, state export/import, gradient clipping,
// learning-rate schedules, an end-to-end learning run and bit-exact determinism of training.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <numbers>
#include <string>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "engine/optim.hpp"
#include "engine/parallel.hpp"
#include "engine/random.hpp"
#include "engine/schedule.hpp"
#include "tests/gradcheck.hpp"

using namespace crt;
using crt::testing::expect_error;

namespace {

Tensor param(const std::vector<double>& values) {
  Tensor t = Tensor::from_vector(values, {std::int64_t(values.size())});
  t.set_requires_grad(true);
  return t;
}

// loss(w) = sum(coeff * (w - target)^2); its gradient 2 coeff (w - target) is computed by hand
// in the reference updates.
struct Quadratic {
  std::vector<double> target{0.5, -1.25, 2.0, 0.0};
  std::vector<double> coeff{1.0, 0.5, 2.0, 3.0};

  Tensor loss(const Tensor& w) const {
    const Tensor t = Tensor::from_vector(target, {4}).to(w.dtype());
    const Tensor c = Tensor::from_vector(coeff, {4}).to(w.dtype());
    return sum(mul(square(sub(w, t)), c));
  }
  std::vector<double> grad(const std::vector<double>& w) const {
    std::vector<double> g(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) g[i] = 2.0 * coeff[i] * (w[i] - target[i]);
    return g;
  }
};

const std::vector<double> kInit{1.0, 0.75, -0.5, 0.25};

// Runs `steps` optimiser steps on the quadratic from kInit and after each one compares the
// parameter with `reference`, which applies one hand-written update to (w, g) in double.
void check_against_reference(Optimizer& opt, const Tensor& w, int steps,
                             const std::function<void(std::vector<double>&,
                                                      const std::vector<double>&, int)>& reference,
                             double tol) {
  const Quadratic q;
  std::vector<double> expected = kInit;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    q.loss(w).backward();
    opt.step();
    reference(expected, q.grad(expected), s + 1);
    const std::vector<double> got = w.to_vector();
    for (std::size_t i = 0; i < got.size(); ++i) {
      CAPTURE(s);
      CAPTURE(i);
      CHECK(std::abs(got[i] - expected[i]) <= tol * std::max(1.0, std::abs(expected[i])));
    }
  }
  CHECK(opt.step_count() == steps);
}

// Adam hyperparameters that single precision represents exactly (the kernel takes floats), so
// f64 parameters can be compared with the double formula to 1e-12.
constexpr double kAdamLr = 0.125, kBeta1 = 0.875, kBeta2 = 0.9375, kEps = 0x1p-20;

std::function<void(std::vector<double>&, const std::vector<double>&, int)> adam_reference(
    double lr, double b1, double b2, double eps, double wd, bool decoupled) {
  auto m = std::make_shared<std::vector<double>>(kInit.size(), 0.0);
  auto v = std::make_shared<std::vector<double>>(kInit.size(), 0.0);
  return [=](std::vector<double>& w, const std::vector<double>& grad, int t) {
    for (std::size_t i = 0; i < w.size(); ++i) {
      double g = grad[i];
      if (!decoupled) g += wd * w[i];
      (*m)[i] = b1 * (*m)[i] + (1 - b1) * g;
      (*v)[i] = b2 * (*v)[i] + (1 - b2) * g * g;
      const double mhat = (*m)[i] / (1 - std::pow(b1, t));
      const double vhat = (*v)[i] / (1 - std::pow(b2, t));
      if (decoupled) w[i] -= lr * wd * w[i];
      w[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
  };
}

bool bit_equal(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](double x, double y) {
           return std::memcmp(&x, &y, sizeof x) == 0;
         });
}

}  // namespace

// ---- SGD ---------------------------------------------------------------------------------

TEST_CASE("SGD: plain and weight-decayed steps match p -= lr * (g + wd p) to 1e-12 (f64)") {
  for (double wd : {0.0, 0.1}) {
    CAPTURE(wd);
    Tensor w = param(kInit);
    SGD opt({w}, {.lr = 0.05, .weight_decay = wd});
    check_against_reference(
        opt, w, 5,
        [wd](std::vector<double>& p, const std::vector<double>& g, int) {
          for (std::size_t i = 0; i < p.size(); ++i) p[i] -= 0.05 * (g[i] + wd * p[i]);
        },
        1e-12);
    CHECK(opt.state().size() == 1);  // only "step": no momentum buffers
  }
}

TEST_CASE("SGD: momentum and Nesterov match the buffer formulas to 1e-12 (f64)") {
  for (bool nesterov : {false, true}) {
    for (double wd : {0.0, 0.05}) {
      CAPTURE(nesterov);
      CAPTURE(wd);
      Tensor w = param(kInit);
      SGD opt({w}, {.lr = 0.03, .momentum = 0.9, .nesterov = nesterov, .weight_decay = wd});
      auto buf = std::make_shared<std::vector<double>>();
      check_against_reference(
          opt, w, 5,
          [=](std::vector<double>& p, const std::vector<double>& g, int t) {
            if (t == 1) buf->assign(p.size(), 0.0);
            for (std::size_t i = 0; i < p.size(); ++i) {
              const double d = g[i] + wd * p[i];
              (*buf)[i] = t == 1 ? d : 0.9 * (*buf)[i] + d;
              p[i] -= 0.03 * (nesterov ? d + 0.9 * (*buf)[i] : (*buf)[i]);
            }
          },
          1e-12);
      const OptimizerState st = opt.state();
      REQUIRE(st.size() == 2);
      CHECK(st[1].first == "momentum.0");
    }
  }
}

TEST_CASE("SGD: momentum differs from plain SGD after the first step, equal on it") {
  const Quadratic q;
  Tensor a = param(kInit), b = param(kInit);
  SGD plain({a}, {.lr = 0.05}), heavy({b}, {.lr = 0.05, .momentum = 0.5});
  for (int s = 0; s < 2; ++s) {
    plain.zero_grad();
    heavy.zero_grad();
    q.loss(a).backward();
    q.loss(b).backward();
    plain.step();
    heavy.step();
    if (s == 0) CHECK(bit_equal(a.to_vector(), b.to_vector()));
  }
  CHECK_FALSE(bit_equal(a.to_vector(), b.to_vector()));
}

// ---- Adam / AdamW ------------------------------------------------------------------------

TEST_CASE("Adam: steps match the bias-corrected formula to 1e-12 (f64)") {
  for (double wd : {0.0, 0.25}) {
    CAPTURE(wd);
    Tensor w = param(kInit);
    Adam opt({w}, {.lr = kAdamLr, .beta1 = kBeta1, .beta2 = kBeta2, .eps = kEps, .weight_decay = wd});
    check_against_reference(opt, w, 4, adam_reference(kAdamLr, kBeta1, kBeta2, kEps, wd, false),
                            1e-12);
  }
}

TEST_CASE("AdamW: steps match the decoupled-decay formula to 1e-12 (f64)") {
  for (double wd : {0.0, 0.25}) {
    CAPTURE(wd);
    Tensor w = param(kInit);
    AdamW opt({w}, {.lr = kAdamLr, .beta1 = kBeta1, .beta2 = kBeta2, .eps = kEps, .weight_decay = wd});
    check_against_reference(opt, w, 4, adam_reference(kAdamLr, kBeta1, kBeta2, kEps, wd, true),
                            1e-12);
  }
}

TEST_CASE("Adam: f32 parameters with default hyperparameters track the double formula") {
  Tensor w = param(kInit).detach().to(DType::f32);
  w.set_requires_grad(true);
  Adam opt({w}, {.lr = 0.01});
  // The reference uses the single-precision betas the kernel applies.
  check_against_reference(opt, w, 6,
                          adam_reference(0.01, double(0.9f), double(0.999f), double(1e-8f), 0.0,
                                         false),
                          1e-5);
}

TEST_CASE("Adam vs AdamW weight decay: L2 goes through the moments, decoupled decay does not") {
  // Zero gradient: AdamW shrinks p by exactly (1 - lr wd) per step (m = v = 0); Adam's L2 term
  // becomes the gradient wd p, whose normalised step is about lr * sign(p).
  const double lr = 0.125, wd = 0.25;
  Tensor a = param(kInit), b = param(kInit), c = param(kInit);
  Adam l2({a}, {.lr = lr, .weight_decay = wd});
  AdamW decoupled({b}, {.lr = lr, .weight_decay = wd});
  Adam none({c}, {.lr = lr});
  std::vector<double> expected = kInit;
  for (int s = 0; s < 3; ++s) {
    for (Tensor* t : {&a, &b, &c}) t->set_grad(Tensor::zeros({4}, DType::f64));
    if (s == 0) {
      l2.step();  // first step: m / sqrt(v) = g / |g| with g = wd p
      const auto av = a.to_vector();
      for (std::size_t i = 0; i < kInit.size(); ++i)
        CHECK(av[i] == doctest::Approx(kInit[i] - lr * (kInit[i] > 0 ? 1 : -1)).epsilon(1e-6));
    }
    decoupled.step();
    none.step();
    for (double& e : expected) e -= lr * wd * e;
  }
  const auto bv = b.to_vector();
  for (std::size_t i = 0; i < kInit.size(); ++i)
    CHECK(bv[i] == doctest::Approx(expected[i]).epsilon(1e-12));
  CHECK(bit_equal(c.to_vector(), kInit));  // no gradient, no decay: unchanged
}

// ---- common optimiser behaviour ------------------------------------------------------------

TEST_CASE("optimisers skip parameters without a gradient and allocate no state for them") {
  const Quadratic q;
  Tensor used = param(kInit), unused = param({1.0, 2.0});
  Adam opt({used, unused}, {.lr = 0.1});
  q.loss(used).backward();
  opt.step();
  CHECK(bit_equal(unused.to_vector(), {1.0, 2.0}));
  CHECK_FALSE(bit_equal(used.to_vector(), kInit));
  const OptimizerState st = opt.state();
  REQUIRE(st.size() == 3);
  CHECK(st[0].first == "step");
  CHECK(st[0].second.item() == 1.0);
  CHECK(st[1].first == "m.0");
  CHECK(st[2].first == "v.0");
  opt.zero_grad();
  CHECK_FALSE(used.grad().defined());
}

TEST_CASE("optimisers update large parameters over several chunks like small ones") {
  // 70000 elements span three update chunks; every element sees the same gradient, so every
  // element must end equal to a one-element run of the same optimiser.
  Tensor big = Tensor::full({70000}, 0.5, DType::f32);
  big.set_requires_grad(true);
  Tensor one = Tensor::full({1}, 0.5, DType::f32);
  one.set_requires_grad(true);
  AdamW opt_big({big}, {.lr = 0.01, .weight_decay = 0.1});
  AdamW opt_one({one}, {.lr = 0.01, .weight_decay = 0.1});
  for (int s = 0; s < 3; ++s) {
    big.set_grad(Tensor::full({70000}, 0.3 - 0.2 * s, DType::f32));
    one.set_grad(Tensor::full({1}, 0.3 - 0.2 * s, DType::f32));
    opt_big.step();
    opt_one.step();
  }
  const float want = one.to_float_vector()[0];
  const std::vector<float> got = big.to_float_vector();
  bool all_equal = true;
  for (float g : got) all_equal = all_equal && g == want;
  CHECK(all_equal);
  CHECK(want != 0.5f);
}

TEST_CASE("optimisers reject bad parameters and hyperparameters with clear errors") {
  Tensor w = param(kInit);
  expect_error([] { SGD({}, {}); }, {"SGD", "empty parameter list"});
  expect_error([] { SGD({Tensor()}, {}); }, {"SGD", "parameter 0", "undefined"});
  expect_error([] { Adam({Tensor::zeros({2})}, {}); }, {"Adam", "parameter 0", "leaf", "requires_grad"});
  expect_error([&] { Adam({mul_scalar(w, 2.0)}, {}); }, {"Adam", "leaf"});
  Tensor strided = Tensor::zeros({3, 4}, DType::f64).transpose(0, 1);
  strided.set_requires_grad(true);
  expect_error([&] { AdamW({w, strided}, {}); },
               {"AdamW", "parameter 1", "f64[4, 3]", "must be contiguous"});
  expect_error([&] { SGD({w, w}, {}); }, {"SGD", "more than once"});
  expect_error([&] { SGD({w}, {.lr = -1.0}); }, {"SGD", "learning rate", "-1"});
  expect_error([&] { SGD({w}, {.momentum = 1.0}); }, {"SGD", "momentum", "[0, 1)"});
  expect_error([&] { SGD({w}, {.nesterov = true}); }, {"SGD", "nesterov needs momentum"});
  expect_error([&] { SGD({w}, {.weight_decay = -0.1}); }, {"SGD", "weight_decay"});
  expect_error([&] { Adam({w}, {.beta1 = 1.0}); }, {"Adam", "beta1"});
  expect_error([&] { AdamW({w}, {.beta2 = -0.5}); }, {"AdamW", "beta2"});
  expect_error([&] { Adam({w}, {.eps = 0.0}); }, {"Adam", "eps", "> 0"});
  Adam opt({w}, {});
  expect_error([&] { opt.set_lr(std::numeric_limits<double>::quiet_NaN()); },
               {"Adam", "learning rate", "finite"});
  opt.set_lr(0.5);
  CHECK(opt.lr() == 0.5);
}

// ---- state export / import -----------------------------------------------------------------

TEST_CASE("optimiser state round-trips: a resumed optimiser continues bit-identically") {
  const Quadratic q;
  for (int kind = 0; kind < 2; ++kind) {
    CAPTURE(kind);
    auto make = [kind](const Tensor& p) -> std::unique_ptr<Optimizer> {
      if (kind == 0) return std::make_unique<AdamW>(std::vector<Tensor>{p}, AdamOptions{.lr = 0.05, .weight_decay = 0.1});
      return std::make_unique<SGD>(std::vector<Tensor>{p}, SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true});
    };
    Tensor a = param(kInit);
    auto opt_a = make(a);
    for (int s = 0; s < 3; ++s) {
      opt_a->zero_grad();
      q.loss(a).backward();
      opt_a->step();
    }
    // Snapshot (state() returns live buffers: copy them as a checkpoint writer would).
    OptimizerState saved;
    for (const auto& [k, t] : opt_a->state()) saved.emplace_back(k, t.clone());
    const std::vector<double> saved_m = saved[1].second.to_vector();
    Tensor b = param(a.to_vector());
    auto opt_b = make(b);
    opt_b->load_state(saved);
    CHECK(opt_b->step_count() == 3);
    for (int s = 0; s < 3; ++s) {
      for (auto [t, o] : {std::pair{&a, opt_a.get()}, std::pair{&b, opt_b.get()}}) {
        o->zero_grad();
        q.loss(*t).backward();
        o->step();
      }
    }
    CHECK(bit_equal(a.to_vector(), b.to_vector()));
    // load_state copied: the saved buffers were not advanced by opt_b's steps.
    CHECK(bit_equal(saved[1].second.to_vector(), saved_m));
  }
}

TEST_CASE("load_state rejects mismatched state with clear errors and changes nothing") {
  Tensor w = param(kInit);
  Adam opt({w}, {});
  const Tensor m = Tensor::zeros({4}, DType::f64), v = Tensor::zeros({4}, DType::f64);
  const Tensor step = Tensor::scalar(2.0, DType::f64);
  expect_error([&] { opt.load_state({{"m.0", m}, {"v.0", v}}); }, {"load_state", "lacks the 'step'"});
  expect_error([&] { opt.load_state({{"step", step}, {"momentum.0", m}}); },
               {"load_state", "no state slot 'momentum'", "another kind of optimiser"});
  expect_error([&] { opt.load_state({{"step", step}, {"m.1", m}, {"v.1", v}}); },
               {"load_state", "'m.1'", "parameter 1", "has 1 parameters"});
  expect_error([&] { opt.load_state({{"step", step}, {"m.0", Tensor::zeros({5}, DType::f64)}, {"v.0", v}}); },
               {"load_state", "'m.0'", "f64[5]", "f64[4]"});
  expect_error([&] { opt.load_state({{"step", step}, {"m.0", Tensor::zeros({4})}, {"v.0", v}}); },
               {"load_state", "'m.0'", "f32[4]", "f64[4]"});
  expect_error([&] { opt.load_state({{"step", step}, {"m.0", m}}); },
               {"load_state", "lacks 'v.0'"});
  expect_error([&] { opt.load_state({{"step", step}, {"m.0", m}, {"m.0", m}, {"v.0", v}}); },
               {"load_state", "'m.0' twice"});
  expect_error([&] { opt.load_state({{"step", step}, {"moments", m}}); },
               {"load_state", "unexpected entry 'moments'"});
  expect_error([&] { opt.load_state({{"step", Tensor::scalar(1.5, DType::f64)}}); },
               {"load_state", "non-negative integer"});
  CHECK(opt.step_count() == 0);
  CHECK(opt.state().size() == 1);
  // A state with "step" only (no parameter has history yet) is valid.
  opt.load_state({{"step", Tensor::scalar(7.0, DType::f64)}});
  CHECK(opt.step_count() == 7);
}

// ---- clip_grad_norm ------------------------------------------------------------------------

TEST_CASE("clip_grad_norm: returns the global norm; no-op below max_norm; scales above it") {
  Tensor a = param({0.0, 0.0}), b = param({0.0}), no_grad = param({1.0});
  const std::vector<Tensor> ps{a, b, no_grad};
  a.set_grad(Tensor::from_vector(std::vector<double>{3.0, 4.0}, {2}));
  b.set_grad(Tensor::from_vector(std::vector<double>{12.0}, {1}));
  CHECK(clip_grad_norm(ps, 26.0) == 13.0);
  CHECK(bit_equal(a.grad().to_vector(), {3.0, 4.0}));
  CHECK(clip_grad_norm(ps, 13.0) == 13.0);  // at the max: unchanged
  CHECK(bit_equal(b.grad().to_vector(), {12.0}));
  CHECK(clip_grad_norm(ps, 6.5) == 13.0);  // returns the norm before clipping
  CHECK(bit_equal(a.grad().to_vector(), {1.5, 2.0}));
  CHECK(bit_equal(b.grad().to_vector(), {6.0}));
  CHECK(clip_grad_norm(ps, 100.0) == doctest::Approx(6.5).epsilon(1e-15));
  CHECK_FALSE(no_grad.grad().defined());
}

TEST_CASE("clip_grad_norm: f32, multi-chunk and non-contiguous gradients") {
  Tensor big = Tensor::zeros({100000});
  big.set_requires_grad(true);
  big.set_grad(Tensor::full({100000}, 0.5f));
  Tensor mat = Tensor::zeros({3, 2});
  mat.set_requires_grad(true);
  const Tensor base = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  mat.set_grad(base.transpose(0, 1));  // a non-contiguous view of base
  const double want = std::sqrt(100000 * 0.25 + 91.0);
  const double norm = clip_grad_norm({big, mat}, 1.0);
  CHECK(norm == doctest::Approx(want).epsilon(1e-12));
  const float scale = float(1.0 / want);
  CHECK(big.grad().to_float_vector()[99999] == doctest::Approx(0.5 * scale).epsilon(1e-6));
  CHECK(mat.grad().at({2, 1}) == doctest::Approx(6.0 * scale).epsilon(1e-6));
  CHECK(base.at({1, 2}) == doctest::Approx(6.0 * scale).epsilon(1e-6));  // scaled in place
  CHECK(clip_grad_norm({big, mat}, 10.0) == doctest::Approx(1.0).epsilon(1e-6));
}

TEST_CASE("clip_grad_norm: NaN/inf gradients and bad max_norm throw, leaving gradients intact") {
  Tensor a = param({0.0, 0.0});
  a.set_grad(Tensor::from_vector(std::vector<double>{1.0, std::nan("")}, {2}));
  expect_error([&] { clip_grad_norm({a}, 1.0); }, {"clip_grad_norm", "gradient norm is NaN/inf"});
  CHECK(a.grad().to_vector()[0] == 1.0);
  a.set_grad(Tensor::from_vector(std::vector<double>{std::numeric_limits<double>::infinity(), 1.0}, {2}));
  expect_error([&] { clip_grad_norm({a}, 1.0); }, {"clip_grad_norm", "gradient norm is NaN/inf"});
  a.set_grad(Tensor::from_vector(std::vector<double>{1.0, 1.0}, {2}));
  expect_error([&] { clip_grad_norm({a}, 0.0); }, {"clip_grad_norm", "max_norm", "> 0"});
  expect_error([&] { clip_grad_norm({a}, std::nan("")); }, {"clip_grad_norm", "max_norm"});
  expect_error([&] { clip_grad_norm({Tensor()}, 1.0); }, {"clip_grad_norm", "parameter 0", "undefined"});
}

// ---- schedules -------------------------------------------------------------------------------

TEST_CASE("schedules: constant and linear warm-up") {
  const ConstantLR constant(3e-4);
  CHECK(constant.lr_at(0) == 3e-4);
  CHECK(constant.lr_at(123456) == 3e-4);
  const WarmupLR warm(1e-3, 100);
  CHECK(warm.lr_at(0) == doctest::Approx(1e-5).epsilon(1e-12));   // first update: base / warmup
  CHECK(warm.lr_at(49) == doctest::Approx(5e-4).epsilon(1e-12));  // half way
  CHECK(warm.lr_at(99) == 1e-3);                                  // end of warm-up
  CHECK(warm.lr_at(100) == 1e-3);
  CHECK(warm.lr_at(1000000) == 1e-3);
  CHECK(WarmupLR(2.0, 0).lr_at(0) == 2.0);  // no warm-up
}

TEST_CASE("schedules: warm-up then cosine decay to the minimum") {
  const double base = 2.5e-4, min_lr = 1e-5;
  const WarmupCosineLR sched(base, 10, 110, min_lr);
  CHECK(sched.lr_at(0) == doctest::Approx(base / 10).epsilon(1e-12));
  CHECK(sched.lr_at(4) == doctest::Approx(base / 2).epsilon(1e-12));
  CHECK(sched.lr_at(9) == base);  // peak at the end of warm-up
  // Cosine over the 100 steps after warm-up: the first runs at the peak, the middle at the mean
  // of base and min, the last just above min, which holds after the run.
  CHECK(sched.lr_at(10) == base);
  CHECK(sched.lr_at(60) == doctest::Approx((base + min_lr) / 2).epsilon(1e-12));
  CHECK(sched.lr_at(109) == doctest::Approx(min_lr + (base - min_lr) * 0.5 * (1 + std::cos(std::numbers::pi * 99 / 100))).epsilon(1e-12));
  CHECK(sched.lr_at(109) > min_lr);
  CHECK(sched.lr_at(110) == min_lr);  // past the end
  CHECK(sched.lr_at(500) == min_lr);
  // Without warm-up it is Transformer-XL's: update s runs at min + (base - min) (1 + cos(pi s / total)) / 2.
  const WarmupCosineLR txl(base, 0, 1000, 0.0);
  CHECK(txl.lr_at(0) == base);
  CHECK(txl.lr_at(999) == doctest::Approx(base * 0.5 * (1 + std::cos(std::numbers::pi * 999 / 1000))).epsilon(1e-12));
  CHECK(txl.lr_at(999) > 0.0);
  double previous = sched.lr_at(10);
  bool decreasing = true;
  for (std::int64_t s = 11; s < 110; ++s) {
    decreasing = decreasing && sched.lr_at(s) < previous;
    previous = sched.lr_at(s);
  }
  CHECK(decreasing);
  const WarmupCosineLR no_warmup(1.0, 0, 4);  // progress 0, 1/4, 2/4, 3/4
  CHECK(no_warmup.lr_at(0) == 1.0);
  CHECK(no_warmup.lr_at(3) == doctest::Approx(0.5 * (1 + std::cos(3 * std::numbers::pi / 4))).epsilon(1e-12));
  CHECK(no_warmup.lr_at(4) == 0.0);
}

TEST_CASE("schedules reject bad arguments") {
  expect_error([] { ConstantLR(-1.0); }, {"ConstantLR", "base learning rate"});
  expect_error([] { ConstantLR(1.0).lr_at(-1); }, {"ConstantLR", "step must be >= 0", "-1"});
  expect_error([] { WarmupLR(1.0, -5); }, {"WarmupLR", "warmup_steps", "-5"});
  expect_error([] { WarmupLR(1.0, 5).lr_at(-2); }, {"WarmupLR", "step must be >= 0"});
  expect_error([] { WarmupCosineLR(1.0, 10, 5); }, {"WarmupCosineLR", "total_steps (5)", "warmup_steps (10)"});
  expect_error([] { WarmupCosineLR(1.0, -1, 5); }, {"WarmupCosineLR", "warmup_steps"});
  expect_error([] { WarmupCosineLR(1.0, 0, 0); }, {"WarmupCosineLR", "total_steps must be > 0"});
  expect_error([] { WarmupCosineLR(1.0, 2, 5, 2.0); }, {"WarmupCosineLR", "min_lr"});
  expect_error([] { WarmupCosineLR(std::nan(""), 2, 5); }, {"WarmupCosineLR", "base learning rate"});
  expect_error([] { WarmupCosineLR(1.0, 2, 5).lr_at(-1); }, {"WarmupCosineLR", "step must be >= 0"});
}

// ---- end-to-end learning and determinism -----------------------------------------------------

namespace {

// (a + b) mod 10 from two embedded digits: embedding -> concat -> linear -> tanh -> linear.
struct DigitSumModel {
  Tensor embed, w1, b1, w2, b2;  // [10, C], [H, 2C], [H], [10, H], [10]

  DigitSumModel(std::uint64_t seed, std::int64_t channels, std::int64_t hidden) {
    Generator gen(seed);
    embed = normal({10, channels}, 0.0, 1.0, gen);
    w1 = normal({hidden, 2 * channels}, 0.0, 1.0 / std::sqrt(2.0 * double(channels)), gen);
    b1 = Tensor::zeros({hidden});
    w2 = normal({10, hidden}, 0.0, 1.0 / std::sqrt(double(hidden)), gen);
    b2 = Tensor::zeros({10});
    for (Tensor* p : {&embed, &w1, &b1, &w2, &b2}) p->set_requires_grad(true);
  }
  std::vector<Tensor> params() const { return {embed, w1, b1, w2, b2}; }
  // ids: n pairs, flattened -> logits [n, 10]
  Tensor logits(const std::vector<std::int32_t>& ids) const {
    const std::int64_t n = std::int64_t(ids.size()) / 2;
    const Tensor x = embedding(embed, ids, {n, 2}).reshape({n, -1});  // [n, 2C]
    return linear(tanh(linear(x, w1, b1)), w2, b2);
  }
};

struct DigitSumData {
  std::vector<std::int32_t> ids, targets;
  DigitSumData() {
    for (std::int32_t a = 0; a < 10; ++a)
      for (std::int32_t b = 0; b < 10; ++b) {
        ids.push_back(a);
        ids.push_back(b);
        targets.push_back((a + b) % 10);
      }
  }
};

// Full-batch AdamW with warm-up + cosine and clipping; returns the last loss.
double train_digit_sum(const DigitSumModel& model, int steps) {
  const DigitSumData data;
  AdamW opt(model.params(), {.lr = 0.02, .weight_decay = 1e-4});
  const WarmupCosineLR sched(0.02, 20, steps, 1e-3);
  double last = 0;
  for (int s = 0; s < steps; ++s) {
    opt.set_lr(sched.lr_at(opt.step_count()));
    opt.zero_grad();
    const Tensor loss = cross_entropy(model.logits(data.ids), data.targets);
    last = loss.item();
    loss.backward();
    clip_grad_norm(model.params(), 5.0);
    opt.step();
  }
  return last;
}

std::vector<std::vector<double>> snapshot(const std::vector<Tensor>& ps) {
  std::vector<std::vector<double>> out;
  for (const Tensor& p : ps) out.push_back(p.to_vector());
  return out;
}

bool bit_equal(const std::vector<std::vector<double>>& a, const std::vector<std::vector<double>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!bit_equal(a[i], b[i])) return false;
  return true;
}

// Restores the default thread count however the test exits.
struct ThreadCountGuard {
  ~ThreadCountGuard() { set_num_threads(0); }
};

// A few training steps of a model large enough that matmuls, the embedding backward, the
// optimiser and the clipping norm all split into several chunks.
std::vector<std::vector<double>> train_wide(std::uint64_t seed, int steps) {
  DigitSumModel model(seed, 96, 512);  // w1: 512 x 192 = 98304 elements (3 update chunks)
  DigitSumData data;
  const DigitSumData once;
  for (int rep = 0; rep < 2; ++rep) {  // 300 examples
    data.ids.insert(data.ids.end(), once.ids.begin(), once.ids.end());
    data.targets.insert(data.targets.end(), once.targets.begin(), once.targets.end());
  }
  Adam opt(model.params(), {.lr = 0.01, .weight_decay = 1e-3});
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    cross_entropy(model.logits(data.ids), data.targets).backward();
    clip_grad_norm(model.params(), 1.0);
    opt.step();
  }
  return snapshot(model.params());
}

}  // namespace

TEST_CASE("end-to-end: (a+b) mod 10 MLP trained with AdamW reaches cross-entropy < 0.05") {
  const auto start = std::chrono::steady_clock::now();
  const DigitSumModel model(2024, 16, 64);
  const DigitSumData data;
  const double initial = cross_entropy(model.logits(data.ids), data.targets).item();
  const double final_loss = train_digit_sum(model, 400);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE("digit-sum loss ", initial, " -> ", final_loss, " in ", seconds, " s");
  CHECK(initial > 2.0);  // about log(10) at initialisation
  CHECK(final_loss < 0.05);
  // Every pair is classified correctly.
  const std::vector<double> logits = model.logits(data.ids).to_vector();
  int correct = 0;
  for (std::size_t r = 0; r < data.targets.size(); ++r) {
    const auto row = logits.begin() + std::ptrdiff_t(r * 10);
    correct += std::max_element(row, row + 10) - row == data.targets[r];
  }
  CHECK(correct == 100);
}

TEST_CASE("determinism: the same seed gives bit-identical parameters after training") {
  const auto first = train_wide(7, 4);
  const auto second = train_wide(7, 4);
  CHECK(bit_equal(first, second));
  CHECK_FALSE(bit_equal(first, train_wide(8, 4)));  // and the seed matters
}

TEST_CASE("determinism: training at 1 and 2 threads gives bit-identical parameters") {
  ThreadCountGuard restore;
  set_num_threads(1);
  const auto one = train_wide(11, 4);
  set_num_threads(2);
  const auto two = train_wide(11, 4);
  CHECK(bit_equal(one, two));
}
