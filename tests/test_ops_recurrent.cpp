// The fused recurrent-transformer ops: gru_cell and attention. Forward results against the
// same math composed from plain engine ops, gradient checks in double (non-contiguous inputs
// included), causality, FLOP accounting, thread-count independence and error messages.
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

// ---- gru_cell reference, composed from plain ops -----------------------------------------
// r = s(x W_ir^T + b_ir + h W_hr^T + b_hr), z likewise, n = tanh(x W_in^T + b_in + r (h W_hn^T
// + b_hn)), h' = (1 - z) n + z h, with the gate blocks of W and b stacked r, z, n.
Tensor gru_reference(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih, const Tensor& b_hh) {
  const std::int64_t hidden = h.size(1);
  auto gate = [&](const Tensor& in, const Tensor& w, const Tensor& b, int block) {
    Tensor y = matmul(in, w.narrow(0, block * hidden, hidden), false, true);
    return b.defined() ? add(y, b.narrow(0, block * hidden, hidden)) : y;
  };
  const Tensor r = sigmoid(gate(x, w_ih, b_ih, 0) + gate(h, w_hh, b_hh, 0));
  const Tensor z = sigmoid(gate(x, w_ih, b_ih, 1) + gate(h, w_hh, b_hh, 1));
  const Tensor n = tanh(gate(x, w_ih, b_ih, 2) + r * gate(h, w_hh, b_hh, 2));
  return rsub_scalar(1.0, z) * n + z * h;
}

// ---- attention reference, composed from plain ops ----------------------------------------
// softmax(q k^T * scale + bias + mask) v, the mask adding -1e30 where key j is hidden from
// query i (j > i + tk - tq). Softmax written out with exp / sum / div (inputs are small, so
// no max subtraction is needed).
Tensor attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                           const Tensor& bias, double scale) {
  const std::int64_t tq = q.size(2), tk = k.size(2);
  Tensor scores = mul_scalar(matmul(q, k, false, true), scale);
  if (bias.defined()) scores = add(scores, bias);
  if (causal) {
    Tensor mask = Tensor::zeros({tq, tk}, q.dtype());
    for (std::int64_t i = 0; i < tq; ++i)
      for (std::int64_t j = i + (tk - tq) + 1; j < tk; ++j) mask.set({i, j}, -1e30);
    scores = add(scores, mask);
  }
  const Tensor e = exp(scores);
  const Tensor p = div(e, sum(e, {-1}, /*keepdim=*/true));
  return matmul(p, v);
}

struct GruInputs {
  Tensor x, h, w_ih, w_hh, b_ih, b_hh;
};

GruInputs gru_inputs(std::int64_t batch, std::int64_t in, std::int64_t hidden, bool biases,
                     Generator& gen, DType dtype) {
  auto make = [&](const Shape& s) { return uniform(s, -1.0, 1.0, gen, dtype); };
  GruInputs g{make({batch, in}), make({batch, hidden}), make({3 * hidden, in}),
              make({3 * hidden, hidden}), Tensor(), Tensor()};
  if (biases) {
    g.b_ih = make({3 * hidden});
    g.b_hh = make({3 * hidden});
  }
  return g;
}

}  // namespace

// ============================== gru_cell ==================================================

TEST_CASE("gru_cell forward matches the GRU formula (gate order r, z, n)") {
  Generator gen(11);
  for (DType dtype : {DType::f64, DType::f32})
    for (bool biases : {true, false})
      // Batches up to 4 take the unit-blocked path (blocks of 64 units, so hidden 70 spans
      // two), larger ones the per-product path.
      for (std::int64_t batch : {1, 3, 4, 5})
        for (std::int64_t hidden : {4, 70}) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(biases);
        CAPTURE(batch);
        CAPTURE(hidden);
        const GruInputs g = gru_inputs(batch, 5, hidden, biases, gen, dtype);
        const Tensor got = gru_cell(g.x, g.h, g.w_ih, g.w_hh, g.b_ih, g.b_hh);
        const Tensor want = gru_reference(g.x, g.h, g.w_ih, g.w_hh, g.b_ih, g.b_hh);
        CHECK(got.shape() == Shape{batch, hidden});
        CHECK(got.dtype() == dtype);
        CHECK(max_abs_diff(got, want) < (dtype == DType::f64 ? 1e-13 : 1e-5));
      }
}

TEST_CASE("gru_cell forward: a hand-computed one-unit step") {
  // B = 1, I = 1, H = 1. With W_ih = [0, 0, 1], W_hh = [0, 0, 2], biases b_ih = [0, ln 3, 0],
  // b_hh = [0, 0, 0.5]: r = s(0) = 1/2, z = s(ln 3) = 3/4, n = tanh(x + r (2h + 0.5)).
  const double x = 0.3, h = -0.4;
  const Tensor out = gru_cell(Tensor::full({1, 1}, x, DType::f64),
                              Tensor::full({1, 1}, h, DType::f64),
                              Tensor::from_vector(std::vector<double>{0, 0, 1}, {3, 1}),
                              Tensor::from_vector(std::vector<double>{0, 0, 2}, {3, 1}),
                              Tensor::from_vector(std::vector<double>{0, std::log(3.0), 0}, {3}),
                              Tensor::from_vector(std::vector<double>{0, 0, 0.5}, {3}));
  const double n = std::tanh(x + 0.5 * (2 * h + 0.5));
  CHECK(out.item() == doctest::Approx(0.25 * n + 0.75 * h).epsilon(1e-14));
}

TEST_CASE("gradcheck: gru_cell, all six inputs, with and without biases, B=1, 3 and 6") {
  Generator gen(12);
  const std::int64_t in = 5, hidden = 4;
  for (bool biases : {true, false})
    for (std::int64_t batch : {1, 3, 6}) {
      CAPTURE(biases);
      CAPTURE(batch);
      std::vector<Tensor> inputs = {rand_input({batch, in}, gen), rand_input({batch, hidden}, gen),
                                    rand_input({3 * hidden, in}, gen),
                                    rand_input({3 * hidden, hidden}, gen)};
      if (biases) {
        inputs.push_back(rand_input({3 * hidden}, gen));
        inputs.push_back(rand_input({3 * hidden}, gen));
      }
      auto f = [biases](const std::vector<Tensor>& t) {
        return gru_cell(t[0], t[1], t[2], t[3], biases ? t[4] : Tensor(),
                        biases ? t[5] : Tensor());
      };
      CHECK(gradcheck(f, inputs) <= 1.0);
    }
}

TEST_CASE("gradcheck: gru_cell with non-contiguous x, h and w_ih") {
  Generator gen(13);
  const std::int64_t batch = 3, in = 6, hidden = 3;
  // x is stored [I, B] and transposed; h is every other column of [B, 2H]; w_ih stored [I, 3H].
  std::vector<Tensor> inputs = {
      rand_input({in, batch}, gen),         rand_input({batch, 2 * hidden}, gen),
      rand_input({in, 3 * hidden}, gen),    rand_input({3 * hidden, hidden}, gen),
      rand_input({3 * hidden}, gen),        rand_input({3 * hidden}, gen)};
  auto f = [](const std::vector<Tensor>& t) {
    const Tensor x = t[0].transpose(0, 1), h = t[1].slice(1, 0, t[1].size(1), 2);
    const Tensor w_ih = t[2].transpose(0, 1);
    REQUIRE_FALSE(x.is_contiguous());
    REQUIRE_FALSE(h.is_contiguous());
    return gru_cell(x, h, w_ih, t[3], t[4], t[5]);
  };
  CHECK(gradcheck(f, inputs) <= 1.0);
  // Same values through contiguous copies give the same result.
  const Tensor x = inputs[0].transpose(0, 1), h = inputs[1].slice(1, 0, 2 * hidden, 2);
  const Tensor w_ih = inputs[2].transpose(0, 1);
  CHECK(max_abs_diff(gru_cell(x, h, w_ih, inputs[3], inputs[4], inputs[5]),
                     gru_cell(x.contiguous(), h.contiguous(), w_ih.contiguous(), inputs[3],
                              inputs[4], inputs[5])) == 0.0);
}

TEST_CASE("gru_cell at batch 1 and 16 gives the same bits at 1 and 2 threads") {
  // Large enough that the step is split over threads (by hidden units at batch 1, by output
  // tiles at batch 16); the partition does not depend on the thread count.
  ThreadCountReset reset;
  Generator gen(15);
  for (std::int64_t batch : {1, 16}) {
    CAPTURE(batch);
    const GruInputs g = gru_inputs(batch, 256, 200, true, gen, DType::f32);
    set_num_threads(1);
    const Tensor one = gru_cell(g.x, g.h, g.w_ih, g.w_hh, g.b_ih, g.b_hh);
    set_num_threads(2);
    const Tensor two = gru_cell(g.x, g.h, g.w_ih, g.w_hh, g.b_ih, g.b_hh);
    CHECK(max_abs_diff(one, two) == 0.0);
    CHECK(max_abs_diff(one, gru_reference(g.x, g.h, g.w_ih, g.w_hh, g.b_ih, g.b_hh)) < 1e-5);
  }
}

TEST_CASE("gru_cell is one node, fills only the gradients asked for, and counts FLOPs") {
  Generator gen(14);
  const std::int64_t batch = 2, in = 5, hidden = 4;
  GruInputs g = gru_inputs(batch, in, hidden, true, gen, DType::f64);
  g.w_ih.set_requires_grad(true);
  g.b_hh.set_requires_grad(true);
  reset_flop_count();
  const Tensor y = gru_cell(g.x, g.h, g.w_ih, g.w_hh, g.b_ih, g.b_hh);
  const std::int64_t fwd = 2 * batch * 3 * hidden * (in + hidden);
  CHECK(flop_count() == fwd);
  REQUIRE(y.grad_fn() != nullptr);
  CHECK(std::string(y.grad_fn()->name) == "gru_cell");
  CHECK(y.grad_fn()->edges.size() == 6);
  sum(y).backward();
  // Backward ran only dW_ih = d_gi^T x (and the column sum for db_hh).
  CHECK(flop_count() == fwd + 2 * 3 * hidden * in * batch);
  CHECK(g.w_ih.grad().defined());
  CHECK(g.b_hh.grad().defined());
  CHECK_FALSE(g.x.grad().defined());
  CHECK_FALSE(g.h.grad().defined());
  // Against the composed reference's gradients.
  Tensor w_ih2 = g.w_ih.detach().clone().set_requires_grad(true);
  Tensor b_hh2 = g.b_hh.detach().clone().set_requires_grad(true);
  sum(gru_reference(g.x, g.h, w_ih2, g.w_hh, g.b_ih, b_hh2)).backward();
  CHECK(max_abs_diff(g.w_ih.grad(), w_ih2.grad()) < 1e-13);
  CHECK(max_abs_diff(g.b_hh.grad(), b_hh2.grad()) < 1e-13);
  // All inputs: backward is twice the forward.
  GruInputs a = gru_inputs(batch, in, hidden, true, gen, DType::f32);
  for (Tensor* t : {&a.x, &a.h, &a.w_ih, &a.w_hh, &a.b_ih, &a.b_hh}) t->set_requires_grad(true);
  const Tensor ya = gru_cell(a.x, a.h, a.w_ih, a.w_hh, a.b_ih, a.b_hh);
  reset_flop_count();
  sum(ya).backward();
  CHECK(flop_count() == 2 * fwd);
}

TEST_CASE("gru_cell results do not depend on the thread count") {
  ThreadCountReset reset;
  Generator gen(15);
  GruInputs g = gru_inputs(8, 96, 128, true, gen, DType::f32);  // large enough to tile
  for (Tensor* t : {&g.x, &g.h, &g.w_ih, &g.w_hh, &g.b_ih, &g.b_hh}) t->set_requires_grad(true);
  auto run = [&](int threads) {
    set_num_threads(threads);
    for (Tensor* t : {&g.x, &g.h, &g.w_ih, &g.w_hh, &g.b_ih, &g.b_hh}) t->zero_grad();
    const Tensor y = gru_cell(g.x, g.h, g.w_ih, g.w_hh, g.b_ih, g.b_hh);
    sum(mul(y, y)).backward();
    std::vector<std::vector<float>> r = {y.to_float_vector()};
    for (Tensor* t : {&g.x, &g.h, &g.w_ih, &g.w_hh, &g.b_ih, &g.b_hh})
      r.push_back(t->grad().to_float_vector());
    return r;
  };
  CHECK(run(1) == run(2));
  // float32 stays close to the double-precision reference.
  const Tensor y32 = gru_cell(g.x, g.h, g.w_ih, g.w_hh, g.b_ih, g.b_hh);
  const Tensor y64 = gru_cell(g.x.to(DType::f64), g.h.to(DType::f64), g.w_ih.to(DType::f64),
                              g.w_hh.to(DType::f64), g.b_ih.to(DType::f64), g.b_hh.to(DType::f64));
  CHECK(max_abs_diff(y32, y64) < 1e-4);
}

TEST_CASE("gru_cell error messages") {
  Generator gen(16);
  const GruInputs g = gru_inputs(2, 5, 4, true, gen, DType::f32);
  expect_error([&] { gru_cell(g.x, g.h, g.w_ih, Tensor::zeros({12, 5}), g.b_ih, g.b_hh); },
               {"gru_cell: w_hh f32[12, 5] should be [3H, H] = [12, 4]"});
  expect_error([&] { gru_cell(g.x, g.h, Tensor::zeros({12, 4}), g.w_hh, g.b_ih, g.b_hh); },
               {"gru_cell: w_ih f32[12, 4] should be [3H, I] = [12, 5]"});
  expect_error([&] { gru_cell(g.x, g.h, g.w_ih, g.w_hh, Tensor::zeros({4}), g.b_hh); },
               {"gru_cell: b_ih f32[4] should be [3H] = [12]"});
  expect_error([&] { gru_cell(g.x, g.h, g.w_ih, g.w_hh, g.b_ih, Tensor::zeros({1, 12})); },
               {"gru_cell: b_hh f32[1, 12] should be [3H] = [12]"});
  expect_error([&] { gru_cell(g.x, Tensor::zeros({3, 4}), g.w_ih, g.w_hh, g.b_ih, g.b_hh); },
               {"gru_cell", "h f32[3, 4]", "[2, 4]", "x f32[2, 5]"});
  expect_error([&] { gru_cell(Tensor::zeros({5}), g.h, g.w_ih, g.w_hh, g.b_ih, g.b_hh); },
               {"gru_cell", "x f32[5]", "[B, I]"});
  expect_error([&] { gru_cell(g.x, Tensor::zeros({2, 4, 1}), g.w_ih, g.w_hh, g.b_ih, g.b_hh); },
               {"gru_cell", "h f32[2, 4, 1]", "[B, H]"});
  expect_error([&] { gru_cell(g.x, g.h.to(DType::f64), g.w_ih, g.w_hh, g.b_ih, g.b_hh); },
               {"gru_cell", "dtype mismatch", "f32[2, 5]", "f64[2, 4]"});
  expect_error([&] { gru_cell(g.x, g.h, g.w_ih, g.w_hh, g.b_ih.to(DType::f64), g.b_hh); },
               {"gru_cell", "dtype mismatch", "f64[12]"});
  expect_error([&] { gru_cell(g.x, Tensor(), g.w_ih, g.w_hh, g.b_ih, g.b_hh); },
               {"gru_cell", "undefined"});
}

// ============================== attention =================================================

namespace {

struct AttnCase {
  std::int64_t batch, heads, tq, tk, d;
  bool causal;
};

// Cases: causal and not, Tq == Tk and Tk > Tq (a key prefix), D not a multiple of 8.
const std::vector<AttnCase> kAttnCases = {
    {2, 2, 4, 4, 5, true}, {2, 2, 3, 6, 5, true}, {1, 3, 4, 4, 3, false}, {2, 2, 3, 5, 7, false},
    {1, 1, 1, 4, 2, true}};

}  // namespace

TEST_CASE("attention forward matches softmax(q k^T scale + bias + mask) v") {
  Generator gen(21);
  for (DType dtype : {DType::f64, DType::f32})
    for (const AttnCase& c : kAttnCases) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(c.tq);
      CAPTURE(c.tk);
      CAPTURE(c.causal);
      const Tensor q = uniform({c.batch, c.heads, c.tq, c.d}, -1, 1, gen, dtype);
      const Tensor k = uniform({c.batch, c.heads, c.tk, c.d}, -1, 1, gen, dtype);
      const Tensor v = uniform({c.batch, c.heads, c.tk, c.d}, -1, 1, gen, dtype);
      const double tol = dtype == DType::f64 ? 1e-13 : 1e-5;
      const double scale = 1.0 / std::sqrt(double(c.d));
      const Tensor out = attention(q, k, v, c.causal);
      CHECK(out.shape() == Shape{c.batch, c.heads, c.tq, c.d});
      CHECK(max_abs_diff(out, attention_reference(q, k, v, c.causal, Tensor(), scale)) < tol);
      // Biases of several broadcastable shapes, and an explicit scale.
      for (const Shape& bs : {Shape{c.heads, c.tq, c.tk}, Shape{c.tq, c.tk}, Shape{1, c.tk},
                              Shape{c.batch, 1, c.tq, c.tk}}) {
        CAPTURE(bs);
        const Tensor bias = uniform(bs, -1, 1, gen, dtype);
        CHECK(max_abs_diff(attention(q, k, v, c.causal, bias, 0.7),
                           attention_reference(q, k, v, c.causal, bias, 0.7)) < tol);
      }
    }
}

TEST_CASE("gradcheck: attention, causal and not, prefix keys, bias with grad, permuted q") {
  Generator gen(22);
  for (const AttnCase& c : kAttnCases) {
    CAPTURE(c.tq);
    CAPTURE(c.tk);
    CAPTURE(c.causal);
    CAPTURE(c.d);
    // q stored [B, Tq, heads, D] (the layout after a projection) and permuted to
    // [B, heads, Tq, D]; k and v contiguous; bias [heads, Tq, Tk] broadcast over the batch.
    std::vector<Tensor> inputs = {rand_input({c.batch, c.tq, c.heads, c.d}, gen),
                                  rand_input({c.batch, c.heads, c.tk, c.d}, gen),
                                  rand_input({c.batch, c.heads, c.tk, c.d}, gen),
                                  rand_input({c.heads, c.tq, c.tk}, gen)};
    const bool causal = c.causal;
    auto f = [causal](const std::vector<Tensor>& t) {
      const Tensor q = t[0].permute({0, 2, 1, 3});
      return attention(q, t[1], t[2], causal, t[3]);
    };
    CHECK(gradcheck(f, inputs) <= 1.0);
    // Without a bias, and with a [Tq, Tk] bias that needs no grad.
    inputs.pop_back();
    auto f_nobias = [causal](const std::vector<Tensor>& t) {
      return attention(t[0].permute({0, 2, 1, 3}), t[1], t[2], causal);
    };
    CHECK(gradcheck(f_nobias, inputs) <= 1.0);
    const Tensor fixed_bias = uniform({c.tq, c.tk}, -1, 1, gen, DType::f64);
    auto f_fixed = [causal, fixed_bias](const std::vector<Tensor>& t) {
      return attention(t[0].permute({0, 2, 1, 3}), t[1], t[2], causal, fixed_bias, 0.6);
    };
    CHECK(gradcheck(f_fixed, inputs) <= 1.0);
  }
}

TEST_CASE("gradcheck: attention with non-contiguous k and v and a [1, Tk] key bias") {
  Generator gen(23);
  const std::int64_t batch = 2, heads = 2, tq = 3, tk = 5, d = 3;
  // k and v come from one [B, Tk, heads, 2D] tensor: permuted halves.
  std::vector<Tensor> inputs = {rand_input({batch, heads, tq, d}, gen),
                                rand_input({batch, tk, heads, 2 * d}, gen),
                                rand_input({1, tk}, gen)};
  for (bool causal : {true, false}) {
    CAPTURE(causal);
    auto f = [causal, d](const std::vector<Tensor>& t) {
      const Tensor kv = t[1].permute({0, 2, 1, 3});
      return attention(t[0], kv.narrow(3, 0, d), kv.narrow(3, d, d), causal, t[2]);
    };
    CHECK(gradcheck(f, inputs) <= 1.0);
  }
}

TEST_CASE("attention gradients match the composed reference") {
  Generator gen(24);
  const AttnCase c{2, 3, 3, 5, 5, true};
  auto leaf = [&](const Shape& s) { return rand_input(s, gen); };
  Tensor q = leaf({c.batch, c.heads, c.tq, c.d}), k = leaf({c.batch, c.heads, c.tk, c.d});
  Tensor v = leaf({c.batch, c.heads, c.tk, c.d}), bias = leaf({c.heads, c.tq, c.tk});
  const Tensor w = uniform({c.batch, c.heads, c.tq, c.d}, -1, 1, gen, DType::f64);
  sum(mul(attention(q, k, v, true, bias), w)).backward();
  std::vector<Tensor> fused = {q.grad(), k.grad(), v.grad(), bias.grad()};
  for (Tensor* t : {&q, &k, &v, &bias}) t->zero_grad();
  sum(mul(attention_reference(q, k, v, true, bias, 1.0 / std::sqrt(5.0)), w)).backward();
  const std::vector<Tensor> composed = {q.grad(), k.grad(), v.grad(), bias.grad()};
  for (std::size_t i = 0; i < fused.size(); ++i) {
    CAPTURE(i);
    CHECK(max_abs_diff(fused[i], composed[i]) < 1e-12);
  }
}

TEST_CASE("attention is causal: a key at position j never changes earlier query rows") {
  Generator gen(25);
  const std::int64_t batch = 1, heads = 2, tq = 5, tk = 7, d = 4, prefix = tk - tq;
  const Tensor q = uniform({batch, heads, tq, d}, -1, 1, gen);
  const Tensor k = uniform({batch, heads, tk, d}, -1, 1, gen);
  const Tensor v = uniform({batch, heads, tk, d}, -1, 1, gen);
  const Tensor base = attention(q, k, v, true);
  for (std::int64_t j = 0; j < tk; ++j) {
    CAPTURE(j);
    Tensor k2 = k.clone(), v2 = v.clone();
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t c = 0; c < d; ++c) {
        k2.set({0, h, j, c}, k.at({0, h, j, c}) + 0.5);
        v2.set({0, h, j, c}, v.at({0, h, j, c}) - 0.75);
      }
    const Tensor changed = attention(q, k2, v2, true);
    for (std::int64_t i = 0; i < tq; ++i) {
      CAPTURE(i);
      const bool sees = j <= i + prefix;  // prefix keys are seen by every query
      const double diff = max_abs_diff(changed.narrow(2, i, 1), base.narrow(2, i, 1));
      if (sees) CHECK(diff > 1e-4);
      else CHECK(diff == 0.0);
    }
  }
}

TEST_CASE("attention FLOP count covers only the visible keys") {
  Generator gen(26);
  const std::int64_t batch = 2, heads = 3, tq = 4, tk = 6, d = 5;
  Tensor q = rand_input({batch, heads, tq, d}, gen), k = rand_input({batch, heads, tk, d}, gen);
  Tensor v = rand_input({batch, heads, tk, d}, gen);
  // Causal: query i sees the tk - tq = 2 prefix keys plus i + 1 keys: 3 + 4 + 5 + 6.
  std::int64_t visible = 0;
  for (std::int64_t i = 0; i < tq; ++i) visible += (tk - tq) + i + 1;
  CHECK(visible == 18);
  reset_flop_count();
  const Tensor y = attention(q, k, v, true);
  const std::int64_t fwd = batch * heads * visible * 2 * 2 * d;
  CHECK(flop_count() == fwd);
  sum(y).backward();
  CHECK(flop_count() == 3 * fwd);  // backward counted as twice the forward
  reset_flop_count();
  (void)attention(q.detach(), k.detach(), v.detach(), false);
  CHECK(flop_count() == batch * heads * tq * tk * 2 * 2 * d);
}

TEST_CASE("attention results do not depend on the thread count") {
  ThreadCountReset reset;
  Generator gen(27);
  Tensor q = uniform({3, 4, 8, 16}, -1, 1, gen).set_requires_grad(true);
  Tensor k = uniform({3, 4, 10, 16}, -1, 1, gen).set_requires_grad(true);
  Tensor v = uniform({3, 4, 10, 16}, -1, 1, gen).set_requires_grad(true);
  Tensor bias = uniform({4, 8, 10}, -1, 1, gen).set_requires_grad(true);
  auto run = [&](int threads) {
    set_num_threads(threads);
    for (Tensor* t : {&q, &k, &v, &bias}) t->zero_grad();
    const Tensor y = attention(q, k, v, true, bias);
    sum(mul(y, y)).backward();
    std::vector<std::vector<float>> r = {y.to_float_vector()};
    for (Tensor* t : {&q, &k, &v, &bias}) r.push_back(t->grad().to_float_vector());
    return r;
  };
  CHECK(run(1) == run(2));
}

TEST_CASE("attention error messages") {
  const Tensor q = Tensor::zeros({2, 3, 4, 5}), k = Tensor::zeros({2, 3, 6, 5});
  expect_error([&] { attention(Tensor::zeros({3, 4, 5}), k, k); },
               {"attention", "q f32[3, 4, 5]", "[B, heads, Tq, D]"});
  expect_error([&] { attention(q, Tensor::zeros({2, 3, 6, 4}), k); },
               {"attention", "k f32[2, 3, 6, 4]", "[2, 3, Tk, 5]", "q f32[2, 3, 4, 5]"});
  expect_error([&] { attention(q, Tensor::zeros({2, 2, 6, 5}), Tensor::zeros({2, 2, 6, 5})); },
               {"attention", "k f32[2, 2, 6, 5]"});
  expect_error([&] { attention(q, k, Tensor::zeros({2, 3, 5, 5})); },
               {"attention", "v f32[2, 3, 5, 5]", "shape of k f32[2, 3, 6, 5]"});
  expect_error([&] { attention(q, Tensor::zeros({2, 3, 3, 5}), Tensor::zeros({2, 3, 3, 5})); },
               {"attention", "causal", "Tk >= Tq", "f32[2, 3, 4, 5]", "f32[2, 3, 3, 5]"});
  // Tk < Tq is fine without the causal mask.
  CHECK(attention(q, Tensor::zeros({2, 3, 3, 5}), Tensor::zeros({2, 3, 3, 5}), false).shape() ==
        q.shape());
  expect_error([&] { attention(q, k, k, true, Tensor::zeros({3, 4, 5})); },
               {"attention", "bias f32[3, 4, 5]", "not broadcastable", "[2, 3, 4, 6]"});
  expect_error([&] { attention(q, k, k, true, Tensor::zeros({1, 2, 3, 4, 6})); },
               {"attention", "bias f32[1, 2, 3, 4, 6]"});
  expect_error([&] { attention(q, k.to(DType::f64), k); },
               {"attention", "dtype mismatch", "f32[2, 3, 4, 5]", "f64[2, 3, 6, 5]"});
  expect_error([&] { attention(q, k, k, true, Tensor::zeros({4, 6}, DType::f64)); },
               {"attention", "dtype mismatch", "f64[4, 6]"});
  expect_error([&] { attention(q, Tensor(), k); }, {"attention", "undefined"});
  expect_error([&] { attention(q, k, k, true, Tensor(), std::nan("")); },
               {"attention", "scale"});
}
