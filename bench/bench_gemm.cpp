// GEMM throughput: gemm/<impl>/<M>/<N>/<K>/<threads> for crt (the engine's threaded matmul on
// f32 tensors) and OpenBLAS (cblas_sgemm), and gemm_isa/<isa>/<M>/<N>/<K>: each runnable ISA
// variant of the kernel, single-threaded. Counter GFLOPS = 2*M*N*K per second / 1e9.
// Run one impl per process (--benchmark_filter); bench/gemm_compare.sh does that and pairs them.
// At one thread GFLOPS is an iteration-invariant rate over the thread's CPU time (the least
// disturbed by other load on a shared machine); with more threads it is computed from the
// wall-clock time of the timing loop (UseRealTime() would append "/real_time" to the names).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "bench/bench_main.hpp"
#include "engine/engine.hpp"
#include "kernels/dispatch.hpp"

#if defined(CRT_BENCH_OPENBLAS)
#include <cblas.h>
#endif

namespace {

struct Shape3 {
  std::int64_t m, n, k;
};

std::vector<Shape3> shapes() {
  const std::int64_t ms[] = {16, 64, 128, 512, 2048};
  const std::int64_t kn[][2] = {{256, 1024}, {1024, 256}, {256, 256},
                                {512, 512},  {256, 10000}, {10000, 256}};
  std::vector<Shape3> out;
  for (const auto& [k, n] : kn)
    for (std::int64_t m : ms) out.push_back({m, n, k});
  return out;
}

using Clock = std::chrono::steady_clock;

double gflop(const Shape3& s) { return 2.0 * double(s.m) * double(s.n) * double(s.k) * 1e-9; }

// GFLOPS counter; `start` is when the timing loop began (used with more than one thread).
void set_gflops(benchmark::State& state, const Shape3& s, int threads, Clock::time_point start) {
  if (threads == 1) {
    state.counters["GFLOPS"] =
        benchmark::Counter(gflop(s), benchmark::Counter::kIsIterationInvariantRate);
  } else {
    const double wall = std::chrono::duration<double>(Clock::now() - start).count();
    state.counters["GFLOPS"] = benchmark::Counter(gflop(s) * double(state.iterations()) / wall);
  }
}

std::vector<float> filled(std::int64_t count, std::uint64_t seed) {
  crt::Generator gen(seed);
  std::vector<float> v(static_cast<std::size_t>(count));
  for (float& x : v) x = float(gen.uniform() * 2.0 - 1.0);
  return v;
}

// y = a b through the engine, threads split the output (engine/ops/matmul.cpp).
void bench_crt(benchmark::State& state, Shape3 s, int threads) {
  crt::set_num_threads(threads);
  const crt::Tensor a = crt::Tensor::from_vector(filled(s.m * s.k, 1), {s.m, s.k});
  const crt::Tensor b = crt::Tensor::from_vector(filled(s.k * s.n, 2), {s.k, s.n});
  crt::NoGradGuard no_grad;
  const auto start = Clock::now();
  for (auto _ : state) {
    crt::Tensor y = crt::matmul(a, b);
    benchmark::DoNotOptimize(y.data<float>());
  }
  set_gflops(state, s, threads, start);
  state.SetLabel(crt::kernels::active_kernels().name);
}

// One ISA variant of kernels::gemm, called directly on one thread.
void bench_isa(benchmark::State& state, Shape3 s, const crt::kernels::KernelTable* isa) {
  const std::vector<float> a = filled(s.m * s.k, 1), b = filled(s.k * s.n, 2);
  std::vector<float> c(static_cast<std::size_t>(s.m * s.n));
  const auto m = std::size_t(s.m), n = std::size_t(s.n), k = std::size_t(s.k);
  const auto start = Clock::now();
  for (auto _ : state) {
    isa->gemm(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, s, 1, start);
}

#if defined(CRT_BENCH_OPENBLAS)
void bench_openblas(benchmark::State& state, Shape3 s, int threads) {
  openblas_set_num_threads(threads);
  const std::vector<float> a = filled(s.m * s.k, 1), b = filled(s.k * s.n, 2);
  std::vector<float> c(static_cast<std::size_t>(s.m * s.n));
  const auto m = int(s.m), n = int(s.n), k = int(s.k);
  const auto start = Clock::now();
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a.data(), k, b.data(),
                n, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, s, threads, start);
  state.SetLabel(openblas_get_corename());
}
#endif

std::string shape_name(const Shape3& s) {
  return std::to_string(s.m) + "/" + std::to_string(s.n) + "/" + std::to_string(s.k);
}

void register_all() {
  for (int threads : {1, 2})
    for (const Shape3& s : shapes()) {
      const std::string tail = shape_name(s) + "/" + std::to_string(threads);
      benchmark::RegisterBenchmark(("gemm/crt/" + tail).c_str(), bench_crt, s, threads)
          ->Unit(benchmark::kMicrosecond);
#if defined(CRT_BENCH_OPENBLAS)
      benchmark::RegisterBenchmark(("gemm/openblas/" + tail).c_str(), bench_openblas, s, threads)
          ->Unit(benchmark::kMicrosecond);
#endif
    }
  for (const crt::kernels::KernelTable& isa : crt::kernels::isa_tables()) {
    if (!isa.runnable) continue;
    for (const Shape3& s : shapes())
      benchmark::RegisterBenchmark(("gemm_isa/" + std::string(isa.cap_name) + "/" + shape_name(s)).c_str(),
                                   bench_isa, s, &isa)
          ->Unit(benchmark::kMicrosecond);
  }
}

}  // namespace

int main(int argc, char** argv) { return crt::bench::run_benchmarks(argc, argv, register_all); }
