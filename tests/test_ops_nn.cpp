// Neural-network ops: softmax / log_softmax, cross_entropy, layernorm, dropout, embedding,
// concat / stack. Forward values against hand computations, gradient checks in double
// (including non-contiguous inputs and edge cases), determinism, and error messages.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "engine/parallel.hpp"
#include "engine/random.hpp"
#include "tests/gradcheck.hpp"

using namespace crt;
using crt::testing::expect_error;
using crt::testing::gradcheck;
using crt::testing::rand_input;

namespace {

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(std::abs(got[i] - want[i]) <= tol * (1.0 + std::abs(want[i])));
  }
}

bool all_finite(const Tensor& t) {
  for (double v : t.to_vector())
    if (!std::isfinite(v)) return false;
  return true;
}

// Runs fn once with one thread and once with the default count, restoring the default.
template <class Fn>
std::pair<std::vector<double>, std::vector<double>> one_vs_many_threads(Fn&& fn) {
  set_num_threads(1);
  std::vector<double> single = fn();
  set_num_threads(0);
  std::vector<double> many = fn();
  return {single, many};
}

}  // namespace

// ---- softmax / log_softmax --------------------------------------------------------------

TEST_CASE("softmax: hand-computed rows that sum to 1") {
  const Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3, 0, 0, 0}, {2, 3});
  const Tensor y = softmax(x);
  const double s = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  check_close(y.to_vector(),
              {std::exp(1.0) / s, std::exp(2.0) / s, std::exp(3.0) / s, 1 / 3.0, 1 / 3.0, 1 / 3.0},
              1e-14);
  const Tensor ls = log_softmax(x);
  check_close(ls.to_vector(),
              {1 - std::log(s), 2 - std::log(s), 3 - std::log(s), -std::log(3.0),
               -std::log(3.0), -std::log(3.0)},
              1e-14);
  // f32 rows sum to 1 as well
  Generator gen(11);
  const Tensor xf = uniform({5, 37}, -4, 4, gen);
  for (double v : sum(softmax(xf), {1}).to_vector()) CHECK(v == doctest::Approx(1.0).epsilon(1e-5));
}

TEST_CASE("softmax: any axis equals moving that axis last") {
  Generator gen(12);
  const Tensor x = uniform({2, 3, 4}, -2, 2, gen, DType::f64);
  for (int axis : {0, 1, -1}) {
    CAPTURE(axis);
    const Tensor moved = x.transpose(axis, -1);
    const Tensor want = softmax(moved.contiguous(), -1).transpose(axis, -1);
    const Tensor y = softmax(x, axis);
    CHECK(y.shape() == x.shape());
    check_close(y.to_vector(), want.to_vector(), 1e-14);
    for (double v : sum(y, {axis}).to_vector()) CHECK(v == doctest::Approx(1.0).epsilon(1e-12));
    const Tensor lwant = log_softmax(moved.contiguous(), -1).transpose(axis, -1);
    check_close(log_softmax(x, axis).to_vector(), lwant.to_vector(), 1e-14);
  }
  // a non-contiguous input gives the same values as its contiguous copy
  const Tensor xt = x.transpose(0, 2);
  CHECK(softmax(xt, 1).to_vector() == softmax(xt.contiguous(), 1).to_vector());
}

TEST_CASE("softmax: large-magnitude logits do not overflow") {
  for (DType dt : {DType::f32, DType::f64}) {
    const std::string dtype = dtype_name(dt);
    CAPTURE(dtype);
    const Tensor big = Tensor::from_vector(std::vector<double>{1000, 1001, 1002, -1000, -1001, -1002}, {2, 3}).to(dt);
    const Tensor small = Tensor::from_vector(std::vector<double>{0, 1, 2, 0, -1, -2}, {2, 3}).to(dt);
    const Tensor y = softmax(big), ly = log_softmax(big);
    CHECK(all_finite(y));
    CHECK(all_finite(ly));
    check_close(y.to_vector(), softmax(small).to_vector(), 1e-6);
    // x - logsumexp(x) near |x| = 1000 carries the rounding of 1000 in f32 (ulp 6e-5)
    check_close(ly.to_vector(), log_softmax(small).to_vector(), dt == DType::f32 ? 1e-4 : 1e-12);
  }
}

TEST_CASE("softmax: f32 agrees with f64 over several row chunks") {
  Generator gen(13);
  const Tensor x = uniform({300, 150}, -5, 5, gen, DType::f64);
  check_close(softmax(x.to(DType::f32)).to_vector(), softmax(x).to_vector(), 1e-6);
  check_close(log_softmax(x.to(DType::f32)).to_vector(), log_softmax(x).to_vector(), 1e-5);
}

TEST_CASE("gradcheck: softmax and log_softmax over last, middle and first axes") {
  Generator gen(14);
  Tensor x = rand_input({2, 3, 4}, gen, -2, 2);
  for (int axis : {-1, 1, 0}) {
    CAPTURE(axis);
    CHECK(gradcheck([axis](const auto& v) { return softmax(v[0], axis); }, {x}) <= 1.0);
    CHECK(gradcheck([axis](const auto& v) { return log_softmax(v[0], axis); }, {x}) <= 1.0);
  }
}

TEST_CASE("gradcheck: softmax on non-contiguous inputs and large logits") {
  Generator gen(15);
  Tensor x = rand_input({4, 3, 5}, gen, -2, 2);
  CHECK(gradcheck([](const auto& v) { return softmax(v[0].transpose(0, 2), -1); }, {x}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { return log_softmax(v[0].transpose(0, 2), 1); }, {x}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { return softmax(v[0].slice(2, 0, 5, 2), -1); }, {x}) <= 1.0);
  // exp(800) overflows double: only a max-subtracted implementation gets these right
  Tensor big = rand_input({3, 6}, gen, 800, 803);
  CHECK(gradcheck([](const auto& v) { return softmax(v[0]); }, {big}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { return log_softmax(v[0]); }, {big}) <= 1.0);
  Tensor neg_big = rand_input({3, 6}, gen, -803, -800);
  CHECK(gradcheck([](const auto& v) { return log_softmax(v[0], 0); }, {neg_big}) <= 1.0);
}

TEST_CASE("softmax: errors") {
  const Tensor x = Tensor::zeros({2, 3});
  expect_error([&] { (void)softmax(x, 2); }, {"softmax", "axis 2", "rank 2"});
  expect_error([&] { (void)log_softmax(x, -3); }, {"log_softmax", "axis -3"});
  expect_error([&] { (void)softmax(Tensor::scalar(1.0)); }, {"softmax", "rank >= 1", "f32[]"});
}

// ---- cross_entropy ----------------------------------------------------------------------

TEST_CASE("cross_entropy: equals the mean of -log_softmax[target] over kept rows") {
  // hand case: uniform logits over 2 classes -> log 2
  const Tensor two = Tensor::zeros({1, 2}, DType::f64);
  const Tensor l2 = cross_entropy(two, {1});
  CHECK(l2.dim() == 0);
  CHECK(l2.item() == doctest::Approx(std::log(2.0)).epsilon(1e-14));

  Generator gen(21);
  const Tensor logits = uniform({5, 7}, -3, 3, gen, DType::f64);
  const std::vector<std::int32_t> targets = {3, -100, 0, 6, -100};
  const std::vector<double> lsm = log_softmax(logits).to_vector();
  const double want = -(lsm[0 * 7 + 3] + lsm[2 * 7 + 0] + lsm[3 * 7 + 6]) / 3.0;
  CHECK(cross_entropy(logits, targets).item() == doctest::Approx(want).epsilon(1e-13));
  // a custom ignore_index
  const std::vector<std::int32_t> t2 = {3, 1, 0, 6, 2};
  const double want2 = -(lsm[0 * 7 + 3] + lsm[2 * 7 + 0] + lsm[3 * 7 + 6] + lsm[4 * 7 + 2]) / 4.0;
  CHECK(cross_entropy(logits, t2, 1).item() == doctest::Approx(want2).epsilon(1e-13));
  // f32 agrees, and [..., V] is flattened to rows
  CHECK(cross_entropy(logits.to(DType::f32), targets).item() == doctest::Approx(want).epsilon(1e-5));
  const Tensor l3 = logits.slice(0, 0, 4).reshape({2, 2, 7});
  const double want3 = -(lsm[0 * 7 + 3] + lsm[2 * 7 + 0] + lsm[3 * 7 + 6]) / 3.0;
  CHECK(cross_entropy(l3, {3, -100, 0, 6}).item() == doctest::Approx(want3).epsilon(1e-13));
}

TEST_CASE("cross_entropy: many rows (several chunks) match log_softmax and its gradient") {
  Generator gen(25);
  const std::int64_t rows = 600, classes = 90;
  Tensor logits = rand_input({rows, classes}, gen, -3, 3);
  std::vector<std::int32_t> targets(static_cast<std::size_t>(rows));
  for (std::size_t r = 0; r < targets.size(); ++r)
    targets[r] = r % 7 == 3 ? -100 : std::int32_t((r * 13) % std::size_t(classes));
  const std::vector<double> lsm = log_softmax(logits.detach()).to_vector();
  double total = 0;
  std::int64_t kept = 0;
  for (std::size_t r = 0; r < targets.size(); ++r) {
    if (targets[r] == -100) continue;
    total -= lsm[r * std::size_t(classes) + std::size_t(targets[r])];
    ++kept;
  }
  const Tensor loss = cross_entropy(logits, targets);
  CHECK(loss.item() == doctest::Approx(total / double(kept)).epsilon(1e-12));
  loss.backward();
  const std::vector<double> g = logits.grad().to_vector();
  for (std::size_t r = 0; r < targets.size(); r += 37) {
    for (std::size_t c = 0; c < std::size_t(classes); ++c) {
      const std::size_t i = r * std::size_t(classes) + c;
      const double want = targets[r] == -100
                              ? 0.0
                              : (std::exp(lsm[i]) - (std::int32_t(c) == targets[r])) / double(kept);
      CHECK(g[i] == doctest::Approx(want).epsilon(1e-12));
    }
  }
}

TEST_CASE("cross_entropy: large logits stay finite") {
  const Tensor logits = Tensor::from_vector(std::vector<double>{1000, 0, -1000, 500, 501, 502}, {2, 3}).to(DType::f32);
  const Tensor loss = cross_entropy(logits, {1, 2});
  CHECK(std::isfinite(loss.item()));
  // row 0: lse = 1000, loss = 1000; row 1: log_softmax of {0,1,2}[2]
  const double row1 = std::log(std::exp(-2.0) + std::exp(-1.0) + 1.0);
  CHECK(loss.item() == doctest::Approx((1000.0 + row1) / 2).epsilon(1e-6));
}

TEST_CASE("cross_entropy: every target ignored gives loss 0 and gradient 0") {
  Generator gen(22);
  Tensor logits = rand_input({3, 4}, gen);
  const Tensor loss = cross_entropy(logits, {-100, -100, -100});
  CHECK(loss.item() == 0.0);
  loss.backward();
  REQUIRE(logits.grad().defined());
  for (double v : logits.grad().to_vector()) CHECK(v == 0.0);
}

TEST_CASE("gradcheck: cross_entropy with ignored rows, [..., V] and non-contiguous logits") {
  Generator gen(23);
  Tensor logits = rand_input({6, 5}, gen, -2, 2);
  const std::vector<std::int32_t> targets = {0, 4, -100, 2, -100, 1};
  CHECK(gradcheck([&](const auto& v) { return cross_entropy(v[0], targets); }, {logits}) <= 1.0);
  CHECK(gradcheck([&](const auto& v) { return cross_entropy(v[0].reshape({2, 3, 5}), targets); }, {logits}) <= 1.0);
  // transposed [5, 6] -> [6, 5] view
  Tensor lt = rand_input({5, 6}, gen, -2, 2);
  CHECK(gradcheck([&](const auto& v) { return cross_entropy(v[0].transpose(0, 1), targets); }, {lt}) <= 1.0);
  // a scaled loss: the gradient follows the upstream scalar
  CHECK(gradcheck([&](const auto& v) { return mul_scalar(cross_entropy(v[0], targets), 3.5); }, {logits}) <= 1.0);
  Tensor big = rand_input({3, 4}, gen, 700, 705);
  CHECK(gradcheck([](const auto& v) { return cross_entropy(v[0], {1, 3, 0}); }, {big}) <= 1.0);
}

TEST_CASE("cross_entropy: gradient is (softmax - onehot) / kept rows") {
  Generator gen(24);
  Tensor logits = rand_input({3, 4}, gen);
  cross_entropy(logits, {2, -100, 0}).backward();
  const std::vector<double> p = softmax(logits.detach()).to_vector();
  std::vector<double> want(12, 0.0);
  for (int c = 0; c < 4; ++c) {
    want[std::size_t(c)] = (p[std::size_t(c)] - (c == 2)) / 2;
    want[std::size_t(8 + c)] = (p[std::size_t(8 + c)] - (c == 0)) / 2;
  }
  check_close(logits.grad().to_vector(), want, 1e-14);
}

TEST_CASE("cross_entropy: errors") {
  const Tensor logits = Tensor::zeros({3, 5});
  expect_error([&] { (void)cross_entropy(logits, {0, 1}); }, {"cross_entropy", "3 rows", "2 targets", "f32[3, 5]"});
  expect_error([&] { (void)cross_entropy(logits, {0, 7, 1}); }, {"cross_entropy", "row 1", "is 7", "V = 5"});
  expect_error([&] { (void)cross_entropy(logits, {0, 1, -1}); }, {"cross_entropy", "row 2", "is -1", "V = 5"});
  expect_error([&] { (void)cross_entropy(logits, {0, 1, 5}, -5); }, {"row 2", "is 5"});
  expect_error([&] { (void)cross_entropy(Tensor::scalar(1.0), {0}); }, {"cross_entropy", "rank >= 1", "f32[]"});
}

// ---- layernorm --------------------------------------------------------------------------

TEST_CASE("layernorm: hand-computed values with and without affine") {
  const Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, -1, -1, 1, 1}, {2, 4});
  const double eps = 1e-5;
  // row 0: mean 2.5, var 1.25; row 1: mean 0, var 1
  const double r0 = 1 / std::sqrt(1.25 + eps), r1 = 1 / std::sqrt(1.0 + eps);
  const std::vector<double> xhat = {-1.5 * r0, -0.5 * r0, 0.5 * r0, 1.5 * r0, -r1, -r1, r1, r1};
  check_close(layernorm(x, Tensor(), Tensor(), eps).to_vector(), xhat, 1e-14);
  const Tensor gamma = Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {4});
  const Tensor beta = Tensor::from_vector(std::vector<double>{0.5, 0, -0.5, 1}, {4});
  std::vector<double> affine(8);
  for (std::size_t i = 0; i < 8; ++i) affine[i] = xhat[i] * double(i % 4 + 1) + beta.to_vector()[i % 4];
  check_close(layernorm(x, gamma, beta, eps).to_vector(), affine, 1e-14);
  // f32, normalized rows have mean 0 and variance 1
  Generator gen(31);
  const Tensor xf = uniform({3, 2, 64}, -3, 5, gen);
  const Tensor y = layernorm(xf, Tensor(), Tensor());
  CHECK(y.shape() == xf.shape());
  for (double m : mean(y, {-1}).to_vector()) CHECK(std::abs(m) < 1e-5);
  for (double v : mean(square(y), {-1}).to_vector()) CHECK(v == doctest::Approx(1.0).epsilon(1e-4));
}

TEST_CASE("gradcheck: layernorm with and without gamma / beta") {
  Generator gen(32);
  Tensor x = rand_input({3, 2, 5}, gen, -2, 2);
  Tensor gamma = rand_input({5}, gen, 0.5, 1.5), beta = rand_input({5}, gen);
  CHECK(gradcheck([](const auto& v) { return layernorm(v[0], v[1], v[2]); }, {x, gamma, beta}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { return layernorm(v[0], Tensor(), Tensor()); }, {x}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { return layernorm(v[0], v[1], Tensor()); }, {x, gamma}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { return layernorm(v[0], Tensor(), v[1]); }, {x, beta}) <= 1.0);
  // only the affine parameters require grad
  Tensor x_const = uniform({4, 5}, -1, 1, gen, DType::f64);
  CHECK(gradcheck([&](const auto& v) { return layernorm(x_const, v[0], v[1]); }, {gamma, beta}) <= 1.0);
}

TEST_CASE("gradcheck: layernorm on non-contiguous inputs and many rows") {
  Generator gen(33);
  Tensor x = rand_input({6, 4, 3}, gen, -2, 2);
  Tensor gamma = rand_input({6}, gen, 0.5, 1.5), beta = rand_input({6}, gen);
  CHECK(gradcheck([](const auto& v) { return layernorm(v[0].permute({1, 2, 0}), v[1], v[2]); }, {x, gamma, beta}) <= 1.0);
  Tensor g_wide = rand_input({24}, gen, 0.5, 1.5);  // every other element: a strided gamma
  CHECK(gradcheck([](const auto& v) { return layernorm(v[0].reshape({6, 12}), v[1].slice(0, 0, 24, 2), Tensor()); },
                  {x, g_wide}) <= 1.0);
  // several row chunks (chunk = 32768 / C rows): gamma and beta gradients summed over chunks
  Tensor tall = rand_input({1100, 40}, gen, -2, 2);
  Tensor gamma40 = rand_input({40}, gen, 0.5, 1.5), beta40 = rand_input({40}, gen);
  crt::testing::GradCheckOptions opt;
  opt.max_elements_per_input = 60;
  CHECK(gradcheck([](const auto& v) { return layernorm(v[0], v[1], v[2]); }, {tall, gamma40, beta40}, opt) <= 1.0);
}

TEST_CASE("layernorm: gamma / beta gradients are identical at any thread count") {
  Generator gen(34);
  const Tensor x = uniform({3000, 48}, -2, 2, gen);
  const Tensor seed = uniform({3000, 48}, -1, 1, gen);
  auto run = [&] {
    Tensor gamma = Tensor::ones({48}).set_requires_grad(true);
    Tensor beta = Tensor::zeros({48}).set_requires_grad(true);
    layernorm(x, gamma, beta).backward(seed);
    std::vector<double> out = gamma.grad().to_vector();
    for (double v : beta.grad().to_vector()) out.push_back(v);
    return out;
  };
  const auto [single, many] = one_vs_many_threads(run);
  CHECK(single == many);
  // every row (across the forward chunks) is normalised
  const Tensor y = layernorm(x, Tensor(), Tensor());
  for (double m : mean(y, {-1}).to_vector()) CHECK(std::abs(m) < 1e-5);
  for (double v : mean(square(y), {-1}).to_vector()) CHECK(v == doctest::Approx(1.0).epsilon(1e-4));
  // and they match the plain formulas dbeta = sum(dy), dgamma = sum(dy * xhat)
  const Tensor xhat = layernorm(x, Tensor(), Tensor());
  const std::vector<double> dgamma = sum(mul(seed, xhat), {0}).to_vector();
  const std::vector<double> dbeta = sum(seed, {0}).to_vector();
  for (std::size_t c = 0; c < 48; ++c) {
    CHECK(single[c] == doctest::Approx(dgamma[c]).epsilon(1e-3));
    CHECK(single[48 + c] == doctest::Approx(dbeta[c]).epsilon(1e-3));
  }
}

TEST_CASE("layernorm: errors") {
  const Tensor x = Tensor::zeros({2, 4});
  expect_error([&] { (void)layernorm(x, Tensor::ones({3}), Tensor()); }, {"layernorm", "gamma", "f32[3]", "C = 4", "f32[2, 4]"});
  expect_error([&] { (void)layernorm(x, Tensor(), Tensor::ones({4, 1})); }, {"layernorm", "beta", "f32[4, 1]"});
  expect_error([&] { (void)layernorm(x, Tensor::ones({4}, DType::f64), Tensor()); }, {"layernorm", "dtype", "f64[4]"});
  expect_error([&] { (void)layernorm(Tensor::scalar(1.0), Tensor(), Tensor()); }, {"layernorm", "rank >= 1"});
  expect_error([&] { (void)layernorm(x, Tensor(), Tensor(), -1.0); }, {"layernorm", "eps"});
}

// ---- dropout ----------------------------------------------------------------------------

TEST_CASE("dropout: identity when not training or p == 0") {
  Generator gen(41);
  const Tensor x = uniform({4, 5}, -1, 1, gen);
  const std::uint64_t before = gen.counter();
  const Tensor eval = dropout(x, 0.5, false, gen);
  const Tensor zero_p = dropout(x, 0.0, true, gen);
  CHECK(eval.impl_ptr() == x.impl_ptr());
  CHECK(zero_p.impl_ptr() == x.impl_ptr());
  CHECK(gen.counter() == before);  // no key drawn
}

TEST_CASE("dropout: mask rule, keep rate, scaling and reproducibility") {
  const double p = 0.3;
  Generator data_gen(42);
  const Tensor x = uniform({100, 200}, 1, 2, data_gen);  // never 0, so zeros mark drops
  Generator gen(7);
  const Tensor y = dropout(x, p, true, gen);
  CHECK(gen.counter() == 1);  // one key per call
  const std::uint64_t key = Generator(7).next_u64();
  const std::vector<float> xv = x.to_float_vector(), yv = y.to_float_vector();
  std::int64_t kept = 0;
  for (std::size_t i = 0; i < xv.size(); ++i) {
    const bool keep = Generator::to_unit(Generator::hash(key, i)) >= p;
    if (keep) {
      ++kept;
      CHECK(yv[i] == doctest::Approx(xv[i] / (1 - p)).epsilon(1e-6));
    } else {
      CHECK(yv[i] == 0.0f);
    }
  }
  const double rate = double(kept) / double(xv.size());
  CHECK(rate == doctest::Approx(1 - p).epsilon(0.02));
  // the same seed gives the same mask; the next call on a generator gives a different one
  Generator again(7);
  CHECK(dropout(x, p, true, again).to_float_vector() == yv);
  CHECK(dropout(x, p, true, again).to_float_vector() != yv);
  // a non-contiguous input is masked by logical (row-major) index
  const Tensor xt = x.transpose(0, 1);
  Generator g1(9), g2(9);
  CHECK(dropout(xt, p, true, g1).to_float_vector() == dropout(xt.contiguous(), p, true, g2).to_float_vector());
}

TEST_CASE("dropout: backward applies the forward mask") {
  const double p = 0.4;
  Generator gen(43);
  Tensor x = uniform({6, 7}, 1, 2, gen, DType::f64);
  x.set_requires_grad(true);
  const Tensor w = uniform({6, 7}, -1, 1, gen, DType::f64);
  Generator drop_gen(5);
  const Tensor y = dropout(x, p, true, drop_gen);
  sum(mul(y, w)).backward();
  const std::vector<double> xv = x.detach().to_vector(), yv = y.detach().to_vector(),
                            wv = w.to_vector(), gv = x.grad().to_vector();
  for (std::size_t i = 0; i < xv.size(); ++i) {
    const double mask = yv[i] / xv[i];  // 0 or 1/(1-p)
    CHECK(gv[i] == doctest::Approx(wv[i] * mask).epsilon(1e-12));
  }
}

TEST_CASE("gradcheck: dropout with a fixed generator") {
  Generator gen(44);
  Tensor x = rand_input({5, 8}, gen);
  // a fresh generator of the same seed in every evaluation: the same mask each time
  CHECK(gradcheck([](const auto& v) { Generator g(3); return dropout(v[0], 0.25, true, g); }, {x}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { Generator g(3); return dropout(v[0].transpose(0, 1), 0.6, true, g); }, {x}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { Generator g(3); return dropout(v[0], 0.25, false, g); }, {x}) <= 1.0);
}

TEST_CASE("dropout: errors") {
  Generator gen(45);
  const Tensor x = Tensor::zeros({2, 3});
  expect_error([&] { (void)dropout(x, 1.0, true, gen); }, {"dropout", "[0, 1)", "got 1", "f32[2, 3]"});
  expect_error([&] { (void)dropout(x, -0.1, true, gen); }, {"dropout", "[0, 1)", "-0.1"});
  expect_error([&] { (void)dropout(x, std::numeric_limits<double>::quiet_NaN(), true, gen); }, {"dropout", "[0, 1)"});
  expect_error([&] { (void)dropout(x, 1.5, false, gen); }, {"dropout", "1.5"});
}

// ---- embedding --------------------------------------------------------------------------

TEST_CASE("embedding: rows equal weight rows") {
  Generator gen(51);
  const Tensor weight = uniform({6, 4}, -1, 1, gen);
  const std::vector<std::int32_t> ids = {5, 0, 2, 2, 5, 1};
  const Tensor y = embedding(weight, ids, {2, 3});
  CHECK(y.shape() == Shape{2, 3, 4});
  for (std::int64_t i = 0; i < 6; ++i)
    for (std::int64_t c = 0; c < 4; ++c)
      CHECK(y.at({i / 3, i % 3, c}) == weight.at({ids[std::size_t(i)], c}));
  // non-contiguous weight, and a rank-0 ids shape (one id -> [C])
  const Tensor wt = uniform({4, 6}, -1, 1, gen, DType::f64).transpose(0, 1);
  const Tensor one = embedding(wt, {3}, Shape{});
  CHECK(one.shape() == Shape{4});
  for (std::int64_t c = 0; c < 4; ++c) CHECK(one.at({c}) == wt.at({3, c}));
}

TEST_CASE("embedding: backward sums repeated ids") {
  Tensor weight = Tensor::zeros({5, 3}, DType::f64).set_requires_grad(true);
  sum(embedding(weight, {1, 3, 1, 1, 0}, {5})).backward();
  const std::vector<double> counts = {1, 3, 0, 1, 0};
  const std::vector<double> g = weight.grad().to_vector();
  for (std::size_t v = 0; v < 5; ++v)
    for (std::size_t c = 0; c < 3; ++c) CHECK(g[v * 3 + c] == counts[v]);
}

TEST_CASE("gradcheck: embedding with repeated ids") {
  Generator gen(52);
  Tensor weight = rand_input({7, 5}, gen);
  const std::vector<std::int32_t> ids = {6, 2, 2, 0, 6, 6};
  CHECK(gradcheck([&](const auto& v) { return embedding(v[0], ids, {2, 3}); }, {weight}) <= 1.0);
  Tensor wt = rand_input({5, 7}, gen);
  CHECK(gradcheck([&](const auto& v) { return embedding(v[0].transpose(0, 1), ids, {6}); }, {wt}) <= 1.0);
}

TEST_CASE("embedding: wide rows scatter identically at any thread count") {
  Generator gen(53);
  const Tensor weight = uniform({50, 700}, -1, 1, gen);
  std::vector<std::int32_t> ids(400);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = std::int32_t((i * 7) % 50);
  const Tensor seed = uniform({20, 20, 700}, -1, 1, gen);
  auto run = [&] {
    Tensor w = weight.detach().clone().set_requires_grad(true);
    embedding(w, ids, {20, 20}).backward(seed);
    return w.grad().to_vector();
  };
  const auto [single, many] = one_vs_many_threads(run);
  CHECK(single == many);
}

TEST_CASE("embedding: errors") {
  const Tensor weight = Tensor::zeros({4, 3});
  expect_error([&] { (void)embedding(weight, {0, 1, 2}, {2, 2}); }, {"embedding", "3 ids", "[2, 2]"});
  expect_error([&] { (void)embedding(weight, {0, 4}, {2}); }, {"embedding", "position 1", "is 4", "V = 4"});
  expect_error([&] { (void)embedding(weight, {-2, 0}, {2}); }, {"embedding", "position 0", "is -2", "V = 4"});
  expect_error([&] { (void)embedding(Tensor::zeros({4}), {0}, {1}); }, {"embedding", "2-D", "f32[4]"});
  expect_error([&] { (void)embedding(Tensor::zeros({2, 2, 2}), {0}, {1}); }, {"embedding", "f32[2, 2, 2]"});
}

// ---- concat / stack ---------------------------------------------------------------------

TEST_CASE("concat and stack: values") {
  const Tensor a = Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2});
  const Tensor b = Tensor::from_vector(std::vector<double>{5, 6}, {1, 2});
  const Tensor c = Tensor::from_vector(std::vector<double>{7, 8}, {2, 1});
  CHECK(concat({a, b}, 0).to_vector() == std::vector<double>{1, 2, 3, 4, 5, 6});
  CHECK(concat({a, c, a}, -1).to_vector() == std::vector<double>{1, 2, 7, 1, 2, 3, 4, 8, 3, 4});
  CHECK(concat({a, c, a}, -1).shape() == Shape{2, 5});
  CHECK(concat({a.transpose(0, 1), c}, 1).to_vector() == std::vector<double>{1, 3, 7, 2, 4, 8});
  const Tensor s0 = stack({a, a.transpose(0, 1)}, 0);
  CHECK(s0.shape() == Shape{2, 2, 2});
  CHECK(s0.to_vector() == std::vector<double>{1, 2, 3, 4, 1, 3, 2, 4});
  const Tensor s_last = stack({a, a.transpose(0, 1)}, -1);
  CHECK(s_last.shape() == Shape{2, 2, 2});
  CHECK(s_last.to_vector() == std::vector<double>{1, 1, 2, 3, 3, 2, 4, 4});
}

TEST_CASE("gradcheck: concat and stack of 3 inputs across axes 0 and -1") {
  Generator gen(61);
  Tensor a = rand_input({2, 3, 4}, gen), b = rand_input({1, 3, 4}, gen), c = rand_input({3, 3, 4}, gen);
  CHECK(gradcheck([](const auto& v) { return concat({v[0], v[1], v[2]}, 0); }, {a, b, c}) <= 1.0);
  Tensor d = rand_input({2, 3, 1}, gen), e = rand_input({2, 3, 5}, gen);
  CHECK(gradcheck([](const auto& v) { return concat({v[0], v[1], v[2]}, -1); }, {a, d, e}) <= 1.0);
  // the same input twice, and a non-contiguous one
  Tensor f = rand_input({4, 3, 2}, gen);
  CHECK(gradcheck([](const auto& v) { return concat({v[0], v[1].transpose(0, 2), v[0]}, -1); }, {a, f}) <= 1.0);
  Tensor p = rand_input({2, 3}, gen), q = rand_input({2, 3}, gen), r = rand_input({3, 2}, gen);
  for (int axis : {0, -1, 1}) {
    CAPTURE(axis);
    CHECK(gradcheck([axis](const auto& v) { return stack({v[0], v[1], v[2].transpose(0, 1)}, axis); }, {p, q, r}) <= 1.0);
  }
  // only some inputs require grad
  Tensor fixed = uniform({2, 3}, -1, 1, gen, DType::f64);
  CHECK(gradcheck([&](const auto& v) { return stack({fixed, v[0], fixed}, 1); }, {p}) <= 1.0);
}

TEST_CASE("concat and stack: errors") {
  const Tensor a = Tensor::zeros({2, 3});
  expect_error([&] { (void)concat({}, 0); }, {"concat", "at least one"});
  expect_error([&] { (void)stack({}, 0); }, {"stack", "at least one"});
  expect_error([&] { (void)concat({a, a, Tensor::zeros({3, 3})}, 1); }, {"concat", "input 2", "[3, 3]", "[2, 3]"});
  expect_error([&] { (void)concat({a, Tensor::zeros({2, 3, 1})}, 0); }, {"concat", "rank", "input 1", "[2, 3, 1]", "[2, 3]"});
  expect_error([&] { (void)concat({a, Tensor::zeros({2, 3}, DType::f64)}, 0); }, {"concat", "dtype", "input 1", "f64[2, 3]"});
  expect_error([&] { (void)concat({a, a}, 2); }, {"concat", "axis 2"});
  expect_error([&] { (void)stack({a, Tensor::zeros({2, 4})}, 0); }, {"stack", "input 1", "[2, 4]", "[2, 3]"});
  expect_error([&] { (void)stack({a, a}, 3); }, {"stack", "axis 3"});
}
