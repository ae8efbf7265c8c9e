// gru_sequence: the fused T-step GRU against a loop of gru_cell steps (forward, gradients and
// FLOP count), finite-difference gradient checks in double (non-contiguous inputs included),
// thread-count independence, the no-grad path and error messages.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/flops.hpp"
#include "engine/parallel.hpp"
#include "tests/gradcheck.hpp"

using namespace crt;
using crt::testing::expect_error;
using crt::testing::max_abs_diff;
using crt::testing::ThreadCountReset;
using crt::testing::gradcheck;
using crt::testing::rand_input;

namespace {

// The reference: T gru_cell steps, states stacked. x: [B, T, I], h0: [B, H] -> [B, T, H]
Tensor gru_loop(const Tensor& x, const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                const Tensor& b_ih, const Tensor& b_hh) {
  std::vector<Tensor> states;
  Tensor h = h0;
  for (std::int64_t t = 0; t < x.size(1); ++t) {
    h = gru_cell(x.narrow(1, t, 1).squeeze(1), h, w_ih, w_hh, b_ih, b_hh);
    states.push_back(h);
  }
  return stack(states, 1);
}

struct SeqInputs {
  Tensor x, h0, w_ih, w_hh, b_ih, b_hh;
  std::vector<Tensor*> all() { return {&x, &h0, &w_ih, &w_hh, &b_ih, &b_hh}; }
};

SeqInputs seq_inputs(std::int64_t batch, std::int64_t steps, std::int64_t in,
                     std::int64_t hidden, bool biases, Generator& gen, DType dtype) {
  auto make = [&](const Shape& s) { return uniform(s, -1.0, 1.0, gen, dtype); };
  SeqInputs g{make({batch, steps, in}), make({batch, hidden}), make({3 * hidden, in}),
              make({3 * hidden, hidden}), Tensor(), Tensor()};
  if (biases) {
    g.b_ih = make({3 * hidden});
    g.b_hh = make({3 * hidden});
  }
  return g;
}

Tensor run_seq(const SeqInputs& g) { return gru_sequence(g.x, g.h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh); }
Tensor run_loop(const SeqInputs& g) { return gru_loop(g.x, g.h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh); }

}  // namespace

TEST_CASE("gru_sequence forward equals a loop of gru_cell steps") {
  Generator gen(21);
  for (DType dtype : {DType::f64, DType::f32})
    for (bool biases : {true, false})
      for (std::int64_t batch : {1, 3})
        for (std::int64_t steps : {1, 4}) {
          CAPTURE(dtype_name(dtype));
          CAPTURE(biases);
          CAPTURE(batch);
          CAPTURE(steps);
          const SeqInputs g = seq_inputs(batch, steps, 5, 4, biases, gen, dtype);
          const Tensor got = run_seq(g);
          CHECK(got.shape() == Shape{batch, steps, 4});
          CHECK(got.dtype() == dtype);
          CHECK(max_abs_diff(got, run_loop(g)) <= (dtype == DType::f64 ? 1e-14 : 1e-6));
        }
  // A size that the kernels block and the input GEMM tiles (T * B = 64 rows). The SIMD GEMM
  // may sum a 64-row product in another order than 4-row ones, so f32 agrees to rounding
  // accumulated over 16 steps (states are tanh-bounded, |h| < 1).
  const SeqInputs big = seq_inputs(4, 16, 48, 40, true, gen, DType::f32);
  CHECK(max_abs_diff(run_seq(big), run_loop(big)) <= 2e-5);
}

TEST_CASE("gru_sequence is one node and its gradients equal the gru_cell loop's") {
  Generator gen(22);
  const std::int64_t batch = 2, steps = 5, in = 3, hidden = 4;
  SeqInputs a = seq_inputs(batch, steps, in, hidden, true, gen, DType::f64);
  SeqInputs b = a;
  for (Tensor* t : a.all()) t->set_requires_grad(true);
  for (Tensor* t : b.all()) *t = t->detach().clone().set_requires_grad(true);
  const Tensor ya = run_seq(a), yb = run_loop(b);
  REQUIRE(ya.grad_fn() != nullptr);
  CHECK(std::string(ya.grad_fn()->name) == "gru_sequence");
  CHECK(ya.grad_fn()->edges.size() == 6);
  // Weight every output differently, and the last state extra (as the memory RNN uses it).
  const Tensor w = uniform({batch, steps, hidden}, -1.0, 1.0, gen, DType::f64);
  auto loss = [&](const Tensor& y) {
    return add(sum(mul(y, w)), sum(square(y.narrow(1, steps - 1, 1))));
  };
  loss(ya).backward();
  loss(yb).backward();
  const std::vector<Tensor*> ga = a.all(), gb = b.all();
  for (std::size_t i = 0; i < ga.size(); ++i) {
    CAPTURE(i);
    REQUIRE(ga[i]->grad().defined());
    CHECK(max_abs_diff(ga[i]->grad(), gb[i]->grad()) < 1e-13);
  }
}

TEST_CASE("gradcheck: gru_sequence, all six inputs, T in {1, 3, 7}, B in {1, 2}") {
  Generator gen(23);
  const std::int64_t in = 3, hidden = 4;
  for (std::int64_t steps : {1, 3, 7})
    for (std::int64_t batch : {1, 2}) {
      CAPTURE(steps);
      CAPTURE(batch);
      const std::vector<Tensor> inputs = {
          rand_input({batch, steps, in}, gen), rand_input({batch, hidden}, gen),
          rand_input({3 * hidden, in}, gen),   rand_input({3 * hidden, hidden}, gen),
          rand_input({3 * hidden}, gen),       rand_input({3 * hidden}, gen)};
      auto f = [](const std::vector<Tensor>& t) {
        return gru_sequence(t[0], t[1], t[2], t[3], t[4], t[5]);
      };
      CHECK(gradcheck(f, inputs) <= 1.0);
    }
}

TEST_CASE("gradcheck: gru_sequence without biases, and with only some inputs needing grad") {
  Generator gen(24);
  const std::int64_t batch = 2, steps = 3, in = 3, hidden = 2;
  std::vector<Tensor> inputs = {rand_input({batch, steps, in}, gen), rand_input({batch, hidden}, gen),
                                rand_input({3 * hidden, in}, gen),
                                rand_input({3 * hidden, hidden}, gen)};
  auto f = [](const std::vector<Tensor>& t) {
    return gru_sequence(t[0], t[1], t[2], t[3], Tensor(), Tensor());
  };
  CHECK(gradcheck(f, inputs) <= 1.0);
  // Only w_hh and x: h0 and w_ih are plain data (dh0 and dW_ih are never formed).
  inputs[1].set_requires_grad(false);
  inputs[2].set_requires_grad(false);
  CHECK(gradcheck(f, inputs) <= 1.0);
  CHECK_FALSE(inputs[1].grad().defined());
  CHECK_FALSE(inputs[2].grad().defined());
}

TEST_CASE("gradcheck: gru_sequence with non-contiguous x, h0 and w_ih") {
  Generator gen(25);
  const std::int64_t batch = 2, steps = 4, in = 3, hidden = 3;
  // x is stored [T, B, I] and transposed; h0 is every other column of [B, 2H]; w_ih stored
  // [I, 3H] and transposed.
  const std::vector<Tensor> inputs = {
      rand_input({steps, batch, in}, gen), rand_input({batch, 2 * hidden}, gen),
      rand_input({in, 3 * hidden}, gen),   rand_input({3 * hidden, hidden}, gen),
      rand_input({3 * hidden}, gen),       rand_input({3 * hidden}, gen)};
  auto view_args = [](const std::vector<Tensor>& t) {
    return std::vector<Tensor>{t[0].transpose(0, 1), t[1].slice(1, 0, t[1].size(1), 2),
                               t[2].transpose(0, 1)};
  };
  auto f = [&](const std::vector<Tensor>& t) {
    const std::vector<Tensor> v = view_args(t);
    REQUIRE_FALSE(v[0].is_contiguous());
    REQUIRE_FALSE(v[1].is_contiguous());
    return gru_sequence(v[0], v[1], v[2], t[3], t[4], t[5]);
  };
  CHECK(gradcheck(f, inputs) <= 1.0);
  const std::vector<Tensor> v = view_args(inputs);
  CHECK(max_abs_diff(gru_sequence(v[0], v[1], v[2], inputs[3], inputs[4], inputs[5]),
                     gru_sequence(v[0].contiguous(), v[1].contiguous(), v[2].contiguous(),
                                  inputs[3], inputs[4], inputs[5])) == 0.0);
}

TEST_CASE("gru_sequence counts the FLOPs of T gru_cell steps") {
  Generator gen(26);
  const std::int64_t batch = 2, steps = 5, in = 6, hidden = 4;
  // wants: which of x, h0, w_ih, w_hh, b_ih, b_hh need grad.
  for (const std::vector<bool>& wants :
       {std::vector<bool>{true, true, true, true, true, true},
        std::vector<bool>{false, false, true, false, false, false},
        std::vector<bool>{true, false, false, false, false, true},
        std::vector<bool>{false, true, false, false, false, false}}) {
    SeqInputs a = seq_inputs(batch, steps, in, hidden, true, gen, DType::f32);
    std::vector<Tensor*> all = a.all();
    for (std::size_t i = 0; i < all.size(); ++i) all[i]->set_requires_grad(wants[i]);
    reset_flop_count();
    const Tensor y_seq = run_seq(a);
    const std::int64_t fwd_seq = flop_count();
    reset_flop_count();
    const Tensor y_loop = run_loop(a);
    const std::int64_t fwd_loop = flop_count();
    CHECK(fwd_seq == steps * 2 * batch * 3 * hidden * (in + hidden));
    CHECK(fwd_seq == fwd_loop);
    reset_flop_count();
    sum(y_seq).backward();
    const std::int64_t bwd_seq = flop_count();
    reset_flop_count();
    sum(y_loop).backward();
    CHECK(bwd_seq == flop_count());
  }
  // Everything needs grad: backward is twice the forward, as for gru_cell.
  SeqInputs a = seq_inputs(batch, steps, in, hidden, true, gen, DType::f32);
  for (Tensor* t : a.all()) t->set_requires_grad(true);
  const Tensor y = run_seq(a);
  reset_flop_count();
  sum(y).backward();
  CHECK(flop_count() == 2 * steps * 2 * batch * 3 * hidden * (in + hidden));
}

TEST_CASE("gru_sequence results do not depend on the thread count") {
  ThreadCountReset reset;
  Generator gen(27);
  // Large enough that the all-steps GEMMs (input projection, dx, dW_ih, dW_hh) are tiled.
  // Batch 1 splits each step by hidden units at 2 threads (a different path from 1 thread's),
  // hidden 200 leaves a partial block and rows that are not a whole vector tile.
  for (const auto& shape : {std::pair<std::int64_t, std::int64_t>{16, 64}, {16, 256},
                            {1, 200}, {1, 256}}) {
    const std::int64_t batch = shape.first, hidden = shape.second;  // CAPTURE cannot name bindings
    CAPTURE(batch);
    CAPTURE(hidden);
    SeqInputs g = seq_inputs(batch, 6, 96, hidden, true, gen, DType::f32);
    for (Tensor* t : g.all()) t->set_requires_grad(true);
    auto run = [&](int threads) {
      set_num_threads(threads);
      for (Tensor* t : g.all()) t->zero_grad();
      const Tensor y = run_seq(g);
      sum(mul(y, y)).backward();
      std::vector<std::vector<float>> r = {y.to_float_vector()};
      for (Tensor* t : g.all()) r.push_back(t->grad().to_float_vector());
      return r;
    };
    CHECK(run(1) == run(2));
  }
}

TEST_CASE("gru_sequence without a graph gives the same states and records nothing") {
  Generator gen(28);
  SeqInputs g = seq_inputs(3, 6, 4, 5, true, gen, DType::f64);
  g.w_hh.set_requires_grad(true);
  const Tensor with_graph = run_seq(g);
  REQUIRE(with_graph.grad_fn() != nullptr);
  Tensor without;
  {
    NoGradGuard no_grad;
    without = run_seq(g);
  }
  CHECK(without.grad_fn() == nullptr);
  CHECK_FALSE(without.requires_grad());
  CHECK(max_abs_diff(with_graph, without) == 0.0);
}

TEST_CASE("gru_sequence error messages") {
  Generator gen(29);
  const SeqInputs g = seq_inputs(2, 3, 5, 4, true, gen, DType::f32);
  expect_error([&] { gru_sequence(g.x, g.h0, g.w_ih, Tensor::zeros({12, 5}), g.b_ih, g.b_hh); },
               {"gru_sequence: w_hh f32[12, 5] should be [3H, H] = [12, 4]"});
  expect_error([&] { gru_sequence(g.x, g.h0, Tensor::zeros({12, 4}), g.w_hh, g.b_ih, g.b_hh); },
               {"gru_sequence: w_ih f32[12, 4] should be [3H, I] = [12, 5]"});
  expect_error([&] { gru_sequence(g.x, g.h0, g.w_ih, g.w_hh, Tensor::zeros({4}), g.b_hh); },
               {"gru_sequence: b_ih f32[4] should be [3H] = [12]"});
  expect_error([&] { gru_sequence(g.x, g.h0, g.w_ih, g.w_hh, g.b_ih, Tensor::zeros({1, 12})); },
               {"gru_sequence: b_hh f32[1, 12] should be [3H] = [12]"});
  expect_error([&] { gru_sequence(g.x, Tensor::zeros({3, 4}), g.w_ih, g.w_hh, g.b_ih, g.b_hh); },
               {"gru_sequence", "h0 f32[3, 4]", "[2, 4]", "x f32[2, 3, 5]"});
  expect_error([&] { gru_sequence(Tensor::zeros({2, 5}), g.h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh); },
               {"gru_sequence", "x f32[2, 5]", "[B, T, I]"});
  expect_error([&] { gru_sequence(Tensor::zeros({2, 0, 5}), g.h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh); },
               {"gru_sequence", "x f32[2, 0, 5]", "no time steps", "T >= 1"});
  expect_error([&] { gru_sequence(g.x, Tensor::zeros({2, 4, 1}), g.w_ih, g.w_hh, g.b_ih, g.b_hh); },
               {"gru_sequence", "h0 f32[2, 4, 1]", "[B, H]"});
  expect_error([&] { gru_sequence(g.x, g.h0.to(DType::f64), g.w_ih, g.w_hh, g.b_ih, g.b_hh); },
               {"gru_sequence", "dtype mismatch", "f32[2, 3, 5]", "f64[2, 4]"});
  expect_error([&] { gru_sequence(g.x, g.h0, g.w_ih, g.w_hh, g.b_ih.to(DType::f64), g.b_hh); },
               {"gru_sequence", "dtype mismatch", "f64[12]"});
  expect_error([&] { gru_sequence(g.x, Tensor(), g.w_ih, g.w_hh, g.b_ih, g.b_hh); },
               {"gru_sequence", "undefined"});
  expect_error([&] { gru_sequence(Tensor(), g.h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh); },
               {"gru_sequence", "input x", "undefined"});
}
