// Tensor basics: creation, view semantics (writes through views, sharing), contiguous(),
// autograd mechanics (accumulation, detach, no_grad, freed graphs) and error messages.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "engine/random.hpp"
#include "tests/gradcheck.hpp"

using namespace crt;
using crt::testing::expect_error;

TEST_CASE("storage is 64-byte aligned and views share it") {
  Tensor t = Tensor::arange(24).reshape({2, 3, 4});
  CHECK(reinterpret_cast<std::uintptr_t>(t.data<float>()) % 64 == 0);
  Tensor v = t.transpose(0, 2);
  CHECK(v.shares_storage_with(t));
  CHECK(v.shape() == Shape{4, 3, 2});
  CHECK_FALSE(v.is_contiguous());
  CHECK(v.at({3, 2, 1}) == t.at({1, 2, 3}));
  Tensor s = t.slice(2, 1, 4, 2);  // columns 1 and 3
  CHECK(s.shape() == Shape{2, 3, 2});
  CHECK(s.at({1, 2, 1}) == 23.0);
  CHECK(t.narrow(1, 1, 1).at({0, 0, 0}) == 4.0);
}

TEST_CASE("writes through views reach the base tensor") {
  Tensor t = Tensor::zeros({3, 4});
  t.transpose(0, 1).slice(0, 1, 2).fill_(7.0);  // column 1 of t
  for (std::int64_t r = 0; r < 3; ++r) {
    CHECK(t.at({r, 1}) == 7.0);
    CHECK(t.at({r, 0}) == 0.0);
  }
  t.narrow(0, 2, 1).copy_(Tensor::full({1, 4}, 3.0));
  CHECK(t.at({2, 3}) == 3.0);
  Tensor flat = t.view({12});
  flat.set({0}, 5.0);
  CHECK(t.at({0, 0}) == 5.0);
}

TEST_CASE("contiguous copies only when needed; reshape views when possible") {
  Tensor t = Tensor::arange(12).reshape({3, 4});
  CHECK(t.contiguous().shares_storage_with(t));
  Tensor tt = t.transpose(0, 1);
  Tensor c = tt.contiguous();
  CHECK_FALSE(c.shares_storage_with(t));
  CHECK(c.is_contiguous());
  CHECK(c.to_vector() == std::vector<double>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11});
  CHECK(t.reshape({2, 6}).shares_storage_with(t));
  CHECK_FALSE(tt.reshape({12}).shares_storage_with(t));  // needs a copy
  expect_error([&] { (void)tt.view({12}); }, {"Tensor::view", "[4, 3]", "reshape"});
}

TEST_CASE("non-contiguous inputs give the same results as contiguous ones") {
  Generator gen(3);
  Tensor a = uniform({4, 6}, -1, 1, gen);
  Tensor at = a.transpose(0, 1);
  Tensor atc = at.contiguous();
  CHECK(add(at, at).to_vector() == add(atc, atc).to_vector());
  CHECK(exp(at).to_vector() == exp(atc).to_vector());
  CHECK(sum(at, {1}).to_vector() == sum(atc, {1}).to_vector());
  CHECK(matmul(at, a).to_vector() == matmul(atc, a).to_vector());
}

TEST_CASE("gradients accumulate across backward calls and zero_grad clears them") {
  Tensor w = Tensor::full({3}, 2.0).set_requires_grad(true);
  sum(mul(w, w)).backward();
  CHECK(w.grad().to_vector() == std::vector<double>{4, 4, 4});
  sum(mul(w, w)).backward();
  CHECK(w.grad().to_vector() == std::vector<double>{8, 8, 8});
  w.zero_grad();
  CHECK_FALSE(w.grad().defined());
}

TEST_CASE("a tensor used twice gets the sum of both gradient paths") {
  Tensor x = Tensor::full({2}, 3.0).set_requires_grad(true);
  Tensor y = add(mul(x, x), x);  // dy/dx = 2x + 1
  sum(y).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{7, 7});
}

TEST_CASE("detach cuts the graph, shares storage and costs no copy") {
  Tensor x = Tensor::full({2}, 1.0).set_requires_grad(true);
  Tensor h = mul_scalar(x, 3.0);
  Tensor d = h.detach();
  CHECK(d.shares_storage_with(h));
  CHECK_FALSE(d.requires_grad());
  CHECK(d.grad_fn() == nullptr);
  Tensor y = add(mul(d, x), h);  // only x's direct paths remain: d(y)/dx = d + 3
  sum(y).backward();
  CHECK(x.grad().to_vector() == std::vector<double>{6, 6});
}

TEST_CASE("no_grad scopes record nothing") {
  Tensor x = Tensor::ones({2}).set_requires_grad(true);
  Tensor y;
  {
    NoGradGuard ng;
    CHECK_FALSE(grad_enabled());
    y = mul(x, x);
  }
  CHECK(grad_enabled());
  CHECK_FALSE(y.requires_grad());
  expect_error([&] { sum(y).backward(); }, {"backward", "does not require grad"});
}

TEST_CASE("backward through a freed graph is refused; retain_graph allows it") {
  Tensor x = Tensor::ones({2}).set_requires_grad(true);
  Tensor y = sum(exp(x));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  CHECK(x.grad().at({0}) == doctest::Approx(2 * std::exp(1.0)));
  expect_error([&] { y.backward(); }, {"backward", "freed", "retain_graph"});
}

TEST_CASE("error messages name the op, the shapes and what was expected") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  expect_error([&] { (void)add(a, b); }, {"add", "[2, 3]", "[4, 5]", "broadcast"});
  expect_error([&] { (void)matmul(a, b); }, {"matmul", "inner dimensions", "K=3", "K=4"});
  expect_error([&] { (void)matmul(Tensor::zeros({2, 2, 3}), Tensor::zeros({3, 3, 4})); },
               {"matmul", "batch axes", "[2]", "[3]"});
  expect_error([&] { (void)add(a, Tensor::zeros({2, 3}, DType::f64)); }, {"add", "dtype", "f32[2, 3]", "f64[2, 3]"});
  expect_error([&] { (void)a.reshape({4, 2}); }, {"reshape", "[2, 3]", "[4, 2]"});
  expect_error([&] { (void)a.at({2, 0}); }, {"Tensor::at", "index 2", "axis 0"});
  expect_error([&] { (void)a.slice(1, 2, 1); }, {"slice", "axis 1"});
  expect_error([&] { (void)a.transpose(0, 2); }, {"axis 2", "rank 2"});
  expect_error([&] { (void)sum(a, {0, 0}); }, {"sum", "twice"});
  expect_error([&] { (void)linear(a, Tensor::zeros({4, 5})); }, {"linear", "3 features", "expects 5"});
  expect_error([&] { (void)a.data<double>(); }, {"f64", "f32[2, 3]"});
  expect_error([&] { (void)Tensor::from_vector(std::vector<float>{1, 2}, {3}); }, {"from_vector", "2 values", "[3]"});
  Tensor p = Tensor::ones({2}).set_requires_grad(true);
  expect_error([&] { p.fill_(0.0); }, {"fill_", "requires grad"});
  expect_error([&] { (void)sum(mul(p, p)).grad_fn(); Tensor q = mul(p, p); q.backward(); }, {"backward", "not a scalar"});
  expect_error([&] { Tensor u; (void)u.shape(); }, {"undefined"});
}

TEST_CASE("seeded generators are reproducible bit for bit") {
  Generator g1(42), g2(42), g3(43);
  Tensor a = normal({64}, 0, 1, g1), b = normal({64}, 0, 1, g2), c = normal({64}, 0, 1, g3);
  CHECK(a.to_vector() == b.to_vector());
  CHECK(a.to_vector() != c.to_vector());
  CHECK(uniform({8}, 0, 1, g1).to_vector() == uniform({8}, 0, 1, g2).to_vector());
}

TEST_CASE("matmul gives the same bits at 1 to 4 threads (the output tiling follows the count)") {
  struct ThreadCountReset {
    ~ThreadCountReset() { set_num_threads(0); }
  } reset;
  Generator gen(41);
  // [m, k] x [k, n], also with either operand transposed (a view): rows from 1 (the row-vector
  // and few-row paths) to several register tiles, a deep product and a wide one, all large
  // enough to be cut into tiles at 2 to 4 threads; 64 x 64 x 9000 and 120 x 300 x 1500 are
  // computed as two half-depth products (splits_depth), each half cut into tiles at 4 threads.
  const std::int64_t shapes[][3] = {{1, 9000, 1000}, {3, 5000, 1000}, {4, 2600, 2000},
                                    {5, 1000, 2000}, {37, 256, 410},  {128, 1024, 256},
                                    {130, 97, 2100}, {64, 64, 9000},  {120, 300, 1500},
                                    {256, 256, 256}};
  for (const auto& s : shapes) {
    const std::int64_t m = s[0], n = s[1], k = s[2];
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    const Tensor a = uniform({m, k}, -1, 1, gen), b = uniform({k, n}, -1, 1, gen);
    const Tensor a_t = uniform({k, m}, -1, 1, gen), b_t = uniform({n, k}, -1, 1, gen);
    std::vector<std::vector<double>> first;
    for (int threads : {1, 2, 3, 4}) {
      set_num_threads(threads);
      const std::vector<std::vector<double>> got = {
          matmul(a, b).to_vector(), matmul(a_t, b, true, false).to_vector(),
          matmul(a, b_t, false, true).to_vector(), matmul(a_t.transpose(0, 1), b).to_vector()};
      if (first.empty()) first = got;
      for (std::size_t i = 0; i < got.size(); ++i) {
        CAPTURE(threads);
        CAPTURE(i);
        CHECK(got[i] == first[i]);
      }
    }
  }
}

TEST_CASE("finite-value checking names the first op whose output or gradient is not finite") {
  struct CheckOn {  // the mode is process-wide: leave it off whatever happens
    CheckOn() { set_check_finite(true); }
    ~CheckOn() { set_check_finite(false); }
  };
  Tensor x = Tensor::full({2, 3}, 1.0).set_requires_grad(true);
  {
    CheckOn on;
    // exp(100) overflows float: the forward stops at exp, not at a later op.
    Tensor big = mul_scalar(x, 100.0);
    expect_error([&] { (void)sum(exp(big)); }, {"check_finite", "op 'exp'", "f32[2, 3]", "element 0"});
    // sqrt(0) is finite but its gradient 1 / (2 sqrt(0)) is not: the backward names sqrt.
    Tensor zero = mul_scalar(x, 0.0);
    Tensor y = sum(sqrt(zero));
    CHECK(std::isfinite(y.item()));
    expect_error([&] { y.backward(); }, {"check_finite", "gradient op 'sqrt' returned", "input 0"});
  }
  // Off (the default), the same computation passes its infinities on without a word.
  CHECK(!check_finite_enabled());
  CHECK(std::isinf(sum(exp(mul_scalar(x, 100.0))).item()));
}
