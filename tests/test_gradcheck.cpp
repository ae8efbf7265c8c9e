// Finite-difference gradient checks, in double, for every differentiable op.
#include "tests/gradcheck.hpp"

using namespace crt;
using crt::testing::gradcheck;
using crt::testing::rand_input;

TEST_CASE("gradcheck: binary ops with broadcasting") {
  Generator gen(1);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{2, 3, 4}, {3, 1}}, {{1, 4}, {5, 1}}, {{}, {2, 3}}};
  for (const auto& shapes : cases) {
    const Shape& sa = shapes.first;  // named references: CAPTURE's lambda cannot name bindings
    const Shape& sb = shapes.second;
    CAPTURE(sa);
    CAPTURE(sb);
    Tensor a = rand_input(sa, gen), b = rand_input(sb, gen, 0.5, 1.5);
    CHECK(gradcheck([](const auto& x) { return add(x[0], x[1]); }, {a, b}) <= 1.0);
    CHECK(gradcheck([](const auto& x) { return sub(x[0], x[1]); }, {a, b}) <= 1.0);
    CHECK(gradcheck([](const auto& x) { return mul(x[0], x[1]); }, {a, b}) <= 1.0);
    CHECK(gradcheck([](const auto& x) { return div(x[0], x[1]); }, {a, b}) <= 1.0);
  }
}

TEST_CASE("gradcheck: scalar ops") {
  Generator gen(2);
  Tensor a = rand_input({3, 5}, gen, 0.5, 2.0);
  CHECK(gradcheck([](const auto& x) { return add_scalar(x[0], 0.7); }, {a}) <= 1.0);
  CHECK(gradcheck([](const auto& x) { return mul_scalar(x[0], -1.3); }, {a}) <= 1.0);
  CHECK(gradcheck([](const auto& x) { return rsub_scalar(2.0, x[0]); }, {a}) <= 1.0);
  CHECK(gradcheck([](const auto& x) { return rdiv_scalar(2.0, x[0]); }, {a}) <= 1.0);
  CHECK(gradcheck([](const auto& x) { return pow_scalar(x[0], 2.5); }, {a}) <= 1.0);
}

TEST_CASE("gradcheck: unary ops") {
  Generator gen(3);
  Tensor a = rand_input({4, 7}, gen, -2.0, 2.0);
  Tensor pos = rand_input({4, 7}, gen, 0.5, 2.0);
  // relu's kink at 0 is avoided: uniform draws never land within eps of it here.
  for (auto f : {&neg, &exp, &square, &relu, &gelu, &tanh, &sigmoid}) {
    CHECK(gradcheck([f](const auto& x) { return f(x[0]); }, {a}) <= 1.0);
  }
  CHECK(gradcheck([](const auto& x) { return log(x[0]); }, {pos}) <= 1.0);
  CHECK(gradcheck([](const auto& x) { return sqrt(x[0]); }, {pos}) <= 1.0);
}

TEST_CASE("gradcheck: matmul, all transpositions, batched and shared operands") {
  Generator gen(4);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      CAPTURE(ta);
      CAPTURE(tb);
      const Shape sa = ta ? Shape{4, 3} : Shape{3, 4};
      const Shape sb = tb ? Shape{5, 4} : Shape{4, 5};
      Tensor a = rand_input(sa, gen), b = rand_input(sb, gen);
      auto mm = [ta, tb](const auto& x) { return matmul(x[0], x[1], ta, tb); };
      CHECK(gradcheck(mm, {a, b}) <= 1.0);
      // batched both
      Tensor ab = rand_input(ta ? Shape{2, 4, 3} : Shape{2, 3, 4}, gen);
      Tensor bb = rand_input(tb ? Shape{2, 5, 4} : Shape{2, 4, 5}, gen);
      CHECK(gradcheck(mm, {ab, bb}) <= 1.0);
      // shared 2-D right operand (a linear layer over a batch), and shared left operand
      CHECK(gradcheck(mm, {ab, b}) <= 1.0);
      CHECK(gradcheck(mm, {a, bb}) <= 1.0);
    }
}

TEST_CASE("gradcheck: matmul on non-contiguous views") {
  Generator gen(5);
  Tensor a = rand_input({4, 6}, gen), b = rand_input({2, 5, 4}, gen);
  // a^T is a column-major view; b permuted is a strided batch.
  CHECK(gradcheck([](const auto& x) { return matmul(x[0].transpose(0, 1), x[1].transpose(1, 2).transpose(0, 1).contiguous().transpose(0, 1)); }, {a, b}) <= 1.0);
  CHECK(gradcheck([](const auto& x) { return matmul(x[1].slice(2, 0, 4, 2), x[0].slice(0, 1, 3)); }, {a, b}) <= 1.0);
}

TEST_CASE("gradcheck: linear") {
  Generator gen(6);
  Tensor x = rand_input({2, 3, 4}, gen), w = rand_input({5, 4}, gen), bias = rand_input({5}, gen);
  CHECK(gradcheck([](const auto& v) { return linear(v[0], v[1], v[2]); }, {x, w, bias}) <= 1.0);
}

TEST_CASE("gradcheck: sum and mean over axes") {
  Generator gen(7);
  Tensor x = rand_input({2, 3, 4}, gen);
  for (std::vector<int> axes : std::vector<std::vector<int>>{{0}, {1}, {2}, {0, 2}, {-1}, {0, 1}}) {
    for (bool keep : {false, true}) {
      CHECK(gradcheck([&](const auto& v) { return sum(v[0], axes, keep); }, {x}) <= 1.0);
      CHECK(gradcheck([&](const auto& v) { return mean(v[0], axes, keep); }, {x}) <= 1.0);
    }
  }
  CHECK(gradcheck([](const auto& v) { return sum(v[0]); }, {x}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { return mean(v[0].transpose(0, 2)); }, {x}) <= 1.0);
}

TEST_CASE("gradcheck: views (reshape, permute, slice, narrow, expand, squeeze)") {
  Generator gen(8);
  Tensor x = rand_input({2, 3, 4}, gen);
  CHECK(gradcheck([](const auto& v) { return v[0].reshape({4, -1}); }, {x}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { return v[0].permute({2, 0, 1}).reshape({-1}); }, {x}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { return v[0].slice(2, 1, 4, 2); }, {x}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { return v[0].narrow(1, 1, 2); }, {x}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { return v[0].slice(0, 0, 1).squeeze(0).unsqueeze(1).expand({3, 5, 4}); }, {x}) <= 1.0);
}

TEST_CASE("gradcheck: rel_shift (Transformer-XL relative positions)") {
  Generator gen(9);
  Tensor x = rand_input({2, 3, 4, 6}, gen);  // [B, H, Tq=4, K=6 distances]
  CHECK(gradcheck([](const auto& v) { return rel_shift(v[0], 2, 6); }, {x}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { return rel_shift(v[0].transpose(0, 1), 0, 4); }, {x}) <= 1.0);
  // forward: y[i, j] = x[i, i + offset - j]
  Tensor y = rel_shift(x.detach(), 2, 6);
  for (std::int64_t i = 0; i < 4; ++i)
    for (std::int64_t j = 0; j < 6; ++j) {
      const std::int64_t d = i + 2 - j;
      CHECK(y.at({1, 2, i, j}) == (d >= 0 && d < 6 ? x.at({1, 2, i, d}) : 0.0));
    }
}

TEST_CASE("gradcheck: modrelu") {
  Generator gen(10);
  Tensor z = rand_input({3, 5}, gen, -2.0, 2.0);
  Tensor b = rand_input({5}, gen, -0.5, 0.5);
  CHECK(gradcheck([](const auto& v) { return modrelu(v[0], v[1]); }, {z, b}) <= 1.0);
  CHECK(gradcheck([](const auto& v) { return modrelu(v[0].transpose(0, 1).transpose(0, 1), v[1]); }, {z, b}) <= 1.0);
  Tensor y = modrelu(z.detach(), b.detach());
  for (std::int64_t r = 0; r < 3; ++r)
    for (std::int64_t c = 0; c < 5; ++c) {
      const double v = z.at({r, c}), m = std::abs(v) + b.at({c});
      CHECK(y.at({r, c}) == doctest::Approx(m > 0 ? (v > 0 ? m : -m) : 0.0));
    }
}

// The backward pass adds a slice's gradient into its input's gradient in place once that has
// begun, and accumulates repeated uses in place when it owns the buffer alone: checked where
// slices of one intermediate cover it several times over (the recurrences' pattern: a step
// reads one time slice of a precomputed projection), where one slice view is used twice, and
// where a gradient reaches two inputs as the same tensor (add(y, y)), and where several ops
// add to one gradient in turn.
TEST_CASE("gradcheck: many slices of one intermediate, repeated uses, shared gradients") {
  Generator gen(61);
  Tensor x = rand_input({3, 5, 4}, gen);
  const Tensor w = rand_input({3, 4}, gen);
  CHECK(gradcheck(
            [&](const auto& v) {
              const Tensor y = mul(v[0], v[0]);  // an intermediate: its gradient is a slot
              Tensor out = sum(y.narrow(1, 0, 2));
              for (std::int64_t t = 0; t < 5; ++t)
                out = add(out, sum(mul(y.narrow(1, t, 1).squeeze(1), w)));
              const Tensor part = y.narrow(2, 1, 2);
              out = add(out, sum(mul(part, part)));  // one view used twice
              const Tensor both = add(y, y);           // the same gradient to both inputs
              out = add(out, sum(mul(both.narrow(0, 1, 2), both.narrow(0, 0, 2))));
              // y's gradient from two more ops, each adding into the buffer the pass owns
              out = add(out, sum(mul(y, v[0])));
              return add(out, sum(exp(y)));
            },
            {x}) <= 1.0);
}
