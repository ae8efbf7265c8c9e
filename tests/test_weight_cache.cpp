// The inference cache of transposed weights (engine/weight_cache.hpp): used only with
// gradients off, for parameters against a few rows, equal to the uncached product, and never
// stale after an in-place write (copy_, fill_, set, an optimiser step) or for another view.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "engine/optim.hpp"
#include "engine/random.hpp"
#include "engine/weight_cache.hpp"
#include "tests/gradcheck.hpp"

using namespace crt;
using crt::testing::max_abs_diff;

namespace {

struct Layer {
  Tensor x, w, b;  // x: [17, 64], w: [300, 64] (a parameter), b: [300]
};

Layer make_layer(std::uint64_t seed) {
  Generator gen(seed);
  Layer l{uniform({17, 64}, -1.0, 1.0, gen), uniform({300, 64}, -1.0, 1.0, gen),
          uniform({300}, -1.0, 1.0, gen)};
  l.w.set_requires_grad(true);
  return l;
}

// x W^T + b without the cache: the same product with gradients on (the cache is not used
// when recording), detached.
Tensor uncached(const Layer& l) { return linear(l.x, l.w, l.b).detach(); }

}  // namespace

TEST_CASE("weight cache: inference reuses one copy and equals the uncached product") {
  clear_weight_cache();
  const Layer l = make_layer(1);
  const Tensor want = uncached(l);
  CHECK(weight_cache_stats().entries == 0);  // recording: not used
  NoGradGuard no_grad;
  const Tensor first = linear(l.x, l.w, l.b);
  const Tensor second = linear(l.x, l.w, l.b);
  const WeightCacheStats s = weight_cache_stats();
  CHECK(s.entries == 1);
  CHECK(s.misses == 1);
  CHECK(s.hits == 1);
  CHECK(s.bytes == 300 * 64 * 4);
  CHECK(max_abs_diff(first, want) < 1e-5);
  CHECK(max_abs_diff(first, second) == 0.0);
}

TEST_CASE("weight cache: not used for a few rows, tall inputs, or tensors that are not parameters") {
  clear_weight_cache();
  Layer l = make_layer(2);
  NoGradGuard no_grad;
  Generator gen(3);
  linear(uniform({4, 64}, -1.0, 1.0, gen), l.w, l.b);     // 4 rows: dot products
  linear(uniform({1024, 64}, -1.0, 1.0, gen), l.w, l.b);  // tall: packing amortised
  linear(l.x, l.w.detach(), l.b);                          // not a parameter
  CHECK(weight_cache_stats().entries == 0);
}

TEST_CASE("weight cache: every in-place write makes the next product use the new values") {
  clear_weight_cache();
  Layer l = make_layer(4);
  Generator gen(5);
  const Tensor other = uniform({300, 64}, -1.0, 1.0, gen);
  auto check_fresh = [&](const char* what) {
    CAPTURE(what);
    Tensor cached_result;
    {
      NoGradGuard no_grad;
      cached_result = linear(l.x, l.w, l.b);
    }
    CHECK(max_abs_diff(cached_result, uncached(l)) < 1e-5);
  };
  check_fresh("initial");
  {
    NoGradGuard no_grad;
    l.w.copy_(other);
  }
  check_fresh("copy_");
  {
    NoGradGuard no_grad;
    l.w.fill_(0.25);
  }
  check_fresh("fill_");
  {
    NoGradGuard no_grad;
    l.w.set({7, 3}, -4.0);
  }
  check_fresh("set");
  // An optimiser step writes through raw pointers and bumps the version.
  {
    NoGradGuard no_grad;
    l.w.copy_(other);
  }
  sum(linear(l.x, l.w, l.b)).backward();
  AdamW opt({l.w}, AdamOptions{});
  opt.step();
  check_fresh("AdamW step");
  l.w.zero_grad();
  SGD sgd({l.w}, SGDOptions{});
  sum(linear(l.x, l.w, l.b)).backward();
  sgd.step();
  check_fresh("SGD step");
}

TEST_CASE("weight cache: views of one storage get their own copies") {
  clear_weight_cache();
  const Layer l = make_layer(6);
  const Tensor top = l.w.narrow(0, 0, 280), bottom = l.w.narrow(0, 20, 280);
  REQUIRE(top.requires_grad());
  NoGradGuard no_grad;
  const Tensor y_top = linear(l.x, top, Tensor()), y_bottom = linear(l.x, bottom, Tensor());
  CHECK(max_abs_diff(y_top, matmul(l.x, top.contiguous().transpose(0, 1))) < 1e-5);
  CHECK(max_abs_diff(y_bottom, matmul(l.x, bottom.contiguous().transpose(0, 1))) < 1e-5);
  CHECK(weight_cache_stats().entries == 2);
  clear_weight_cache();
  CHECK(weight_cache_stats().entries == 0);
  CHECK(weight_cache_stats().bytes == 0);
}

TEST_CASE("weight cache: an entry goes when its weight goes (no reuse of a dead storage's copy)") {
  clear_weight_cache();
  Tensor y_old;
  {
    const Layer l = make_layer(7);
    NoGradGuard no_grad;
    y_old = linear(l.x, l.w, l.b);
  }
  // A new weight likely reuses the freed buffer (the engine caches buffers): a fresh id.
  const Layer l2 = make_layer(8);
  const Tensor want = uncached(l2);
  NoGradGuard no_grad;
  CHECK(max_abs_diff(linear(l2.x, l2.w, l2.b), want) < 1e-5);
  // The dead weight's copy was dropped when the new one was made.
  CHECK(weight_cache_stats().entries == 1);
  CHECK(weight_cache_stats().bytes == 300 * 64 * 4);
}

namespace {

struct Gru {
  Tensor w_ih, w_hh, b_ih, b_hh;  // [3H, I], [3H, H], [3H], [3H], parameters
};

Gru make_gru(std::int64_t in, std::int64_t hidden, std::uint64_t seed) {
  Generator gen(seed);
  const double s = 1.0 / std::sqrt(double(hidden));
  Gru g{uniform({3 * hidden, in}, -s, s, gen), uniform({3 * hidden, hidden}, -s, s, gen),
        uniform({3 * hidden}, -s, s, gen), uniform({3 * hidden}, -s, s, gen)};
  for (Tensor* t : {&g.w_ih, &g.w_hh, &g.b_ih, &g.b_hh}) t->set_requires_grad(true);
  return g;
}

}  // namespace

TEST_CASE("weight cache: batch-1 GRU inference reads GEMV panels; same bits at 1 and 2 threads") {
  // Hidden 200: each gate's panels end in zero padding, and the unit blocks (64) end short.
  crt::testing::ThreadCountReset reset;
  clear_weight_cache();
  Gru g = make_gru(96, 200, 9);
  Generator gen(10);
  const Tensor x = uniform({1, 96}, -1.0, 1.0, gen), h = uniform({1, 200}, -1.0, 1.0, gen);
  const Tensor xs = uniform({1, 7, 96}, -1.0, 1.0, gen);
  // With gradients on, nothing is cached: the reference values.
  const Tensor cell_want = gru_cell(x, h, g.w_ih, g.w_hh, g.b_ih, g.b_hh).detach();
  const Tensor seq_want = gru_sequence(xs, h, g.w_ih, g.w_hh, g.b_ih, g.b_hh).detach();
  CHECK(weight_cache_stats().entries == 0);
  NoGradGuard no_grad;
  std::vector<Tensor> cell, seq;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    cell.push_back(gru_cell(x, h, g.w_ih, g.w_hh, g.b_ih, g.b_hh));
    seq.push_back(gru_sequence(xs, h, g.w_ih, g.w_hh, g.b_ih, g.b_hh));
  }
  // The panels of w_ih and of w_hh (the steps), and w_ih's transpose (the sequence's input
  // projection over its 7 rows).
  CHECK(weight_cache_stats().entries == 3);
  CHECK(max_abs_diff(cell[0], cell[1]) == 0.0);
  CHECK(max_abs_diff(seq[0], seq[1]) == 0.0);
  CHECK(max_abs_diff(cell[0], cell_want) < 1e-5);
  CHECK(max_abs_diff(seq[0], seq_want) < 1e-5);
  // A new w_hh: the panels are made again.
  g.w_hh.copy_(uniform({600, 200}, -0.05, 0.05, gen));
  const Tensor after = gru_cell(x, h, g.w_ih, g.w_hh, g.b_ih, g.b_hh);
  // The same step without the cache (weights that are not parameters).
  const Tensor after_want = gru_cell(x, h, g.w_ih.detach(), g.w_hh.detach(), g.b_ih, g.b_hh);
  CHECK(max_abs_diff(after, after_want) < 1e-5);
  CHECK(max_abs_diff(after, cell[0]) > 1e-3);
}

TEST_CASE("weight cache: one row against a parameter reads its GEMV panels (linear and matmul)") {
  clear_weight_cache();
  const Layer l = make_layer(11);
  const Tensor row = l.x.narrow(0, 3, 1);  // [1, 64]
  const Tensor want_linear = linear(row, l.w, l.b).detach();
  const Tensor want_matmul = matmul(row, l.w, false, true).detach();
  NoGradGuard no_grad;
  CHECK(max_abs_diff(linear(row, l.w, l.b), want_linear) < 1e-5);
  CHECK(max_abs_diff(matmul(row, l.w, false, true), want_matmul) < 1e-5);
  CHECK(max_abs_diff(linear(row.squeeze(0), l.w, l.b), want_linear.squeeze(0)) < 1e-5);
  const WeightCacheStats s = weight_cache_stats();
  CHECK(s.entries == 1);  // one set of panels, shared by the three calls
  CHECK(s.misses == 1);
  CHECK(s.hits == 2);
}
