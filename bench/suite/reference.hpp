// The PyTorch reference (bench/pytorch_reference.py) timed in the same run, point by point right
// after crt: one long-lived Python process per thread count (started with OMP/OpenBLAS/MKL thread
// variables at that count) reads one grid point per line on stdin and answers with its records
// as one JSON line. Both read the same token files (written here).
#pragma once

#include <sys/types.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bench/suite/records.hpp"
#include "bench/suite/runner.hpp"

namespace crt::bench {

// True when `python` can import torch.
bool torch_available(const std::string& python);

struct ReferencePoint {
  const BenchConfig* config;
  const BenchModel* model;
  std::int64_t seg;
  bool infer, train;
};

class Reference {
 public:
  // Writes the token files for all points under work_dir and starts one process per thread
  // count. Throws crt::Error when a process cannot be started.
  Reference(const std::string& python, const std::string& script, const std::vector<int>& threads,
            const RunOptions& options, const std::vector<ReferencePoint>& points,
            const std::string& work_dir);
  ~Reference();
  Reference(const Reference&) = delete;
  Reference& operator=(const Reference&) = delete;

  // The point's records at every thread count (impl "pytorch"). An error the script reports is
  // printed and skips that point; a worker that died is reported once and gives no records
  // from then on.
  std::vector<Record> run(const ReferencePoint& point);

 private:
  struct Process {
    int threads = 0;
    pid_t pid = -1;
    std::FILE* to = nullptr;    // its stdin
    std::FILE* from = nullptr;  // its stdout
    bool failed = false;
  };
  void start(Process& p, const std::string& python, const std::string& script);
  void stop(Process& p);

  RunOptions options_;
  std::int64_t thread_runs_;
  std::map<std::int64_t, std::string> token_files_;  // by vocabulary size
  std::vector<Process> processes_;
};

}  // namespace crt::bench
