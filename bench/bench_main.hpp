// The main() of the Google Benchmark programs in bench/: registers (benchmarks built at run
// time, from shapes and the runnable ISAs), then the library's usual flags and run.
#pragma once

#include <benchmark/benchmark.h>

namespace crt::bench {

template <class Register>
int run_benchmarks(int argc, char** argv, Register register_all) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace crt::bench
