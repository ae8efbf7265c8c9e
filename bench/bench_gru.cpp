// GRU latency through the engine's fused ops, the shapes of CRT's memory and position RNNs:
//   gru_cell/crt/<d>/<batch>/<threads>            one nn.GRUCell-style step, inference
//   gru_seq/crt/<d>/<batch>/<steps>/<threads>     a whole segment's GRU, inference
//   gru_seq_train/crt/<d>/<batch>/<steps>/<threads>  the same forward + backward
// bench/gru_compare.sh runs these beside PyTorch (nn.GRUCell, nn.GRU) and prints the ratios.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/bench_main.hpp"
#include "engine/engine.hpp"
#include "kernels/dispatch.hpp"

namespace {

crt::Tensor uniform(const crt::Shape& shape, std::uint64_t seed, double scale) {
  crt::Generator gen(seed);
  std::int64_t count = 1;
  for (std::int64_t s : shape) count *= s;
  std::vector<float> v(static_cast<std::size_t>(count));
  for (float& x : v) x = float((gen.uniform() * 2.0 - 1.0) * scale);
  return crt::Tensor::from_vector(v, shape);
}

struct Gru {
  crt::Tensor w_ih, w_hh, b_ih, b_hh;  // [3d, d], [3d, d], [3d], [3d]
  explicit Gru(std::int64_t d) {
    const double s = 1.0 / std::sqrt(double(d));  // nn.GRU's initialisation range
    w_ih = uniform({3 * d, d}, 11, s);
    w_hh = uniform({3 * d, d}, 12, s);
    b_ih = uniform({3 * d}, 13, s);
    b_hh = uniform({3 * d}, 14, s);
    // Parameters, as in a model (inference then runs under NoGradGuard).
    for (crt::Tensor* t : {&w_ih, &w_hh, &b_ih, &b_hh}) t->set_requires_grad(true);
  }
};

void bench_cell(benchmark::State& state, std::int64_t d, std::int64_t batch, int threads) {
  crt::set_num_threads(threads);
  const Gru g(d);
  const crt::Tensor x = uniform({batch, d}, 1, 1.0), h = uniform({batch, d}, 2, 1.0);
  crt::NoGradGuard no_grad;
  for (auto _ : state) {
    crt::Tensor y = crt::gru_cell(x, h, g.w_ih, g.w_hh, g.b_ih, g.b_hh);
    benchmark::DoNotOptimize(y.data<float>());
  }
  state.SetLabel(crt::kernels::active_kernels().name);
}

void bench_seq(benchmark::State& state, std::int64_t d, std::int64_t batch, std::int64_t steps,
               int threads, bool train) {
  crt::set_num_threads(threads);
  Gru g(d);
  crt::Tensor x = uniform({batch, steps, d}, 1, 1.0), h0 = uniform({batch, d}, 2, 1.0);
  if (train) x.set_requires_grad(true);
  for (auto _ : state) {
    if (train) {
      // The same loss as the PyTorch side: the sum of all states plus the last one.
      crt::Tensor out = crt::gru_sequence(x, h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh);
      crt::Tensor last = out.narrow(1, steps - 1, 1);
      crt::Tensor loss = crt::add(crt::sum(out), crt::sum(last));
      loss.backward();
      for (crt::Tensor* t : {&x, &g.w_ih, &g.w_hh, &g.b_ih, &g.b_hh}) t->zero_grad();
    } else {
      crt::NoGradGuard no_grad;
      crt::Tensor out = crt::gru_sequence(x, h0, g.w_ih, g.w_hh, g.b_ih, g.b_hh);
      benchmark::DoNotOptimize(out.data<float>());
    }
  }
  state.SetLabel(crt::kernels::active_kernels().name);
}

void register_all() {
  for (int threads : {1, 2})
    for (std::int64_t d : {256, 410}) {
      for (std::int64_t batch : {1, 16}) {
        const std::string shape = std::to_string(d) + "/" + std::to_string(batch) + "/";
        const std::string t = "/" + std::to_string(threads);
        benchmark::RegisterBenchmark(("gru_cell/crt/" + shape + std::to_string(threads)).c_str(),
                                     bench_cell, d, batch, threads)
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
        for (std::int64_t steps : {17, 35, 70}) {
          benchmark::RegisterBenchmark(("gru_seq/crt/" + shape + std::to_string(steps) + t).c_str(),
                                       bench_seq, d, batch, steps, threads, false)
              ->Unit(benchmark::kMicrosecond)
              ->UseRealTime();
          benchmark::RegisterBenchmark(
              ("gru_seq_train/crt/" + shape + std::to_string(steps) + t).c_str(), bench_seq, d,
              batch, steps, threads, true)
              ->Unit(benchmark::kMicrosecond)
              ->UseRealTime();
        }
      }
    }
}

}  // namespace

int main(int argc, char** argv) { return crt::bench::run_benchmarks(argc, argv, register_all); }
