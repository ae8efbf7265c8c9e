// Measurement of one grid point (configuration, model, segment length) with crt: streaming
// inference at batch 1 and training steps, at each thread count, with the FLOP tally, latency
// statistics and memory; and the FLOP table's closed forms (tallied where asked).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/suite/configs.hpp"
#include "bench/suite/records.hpp"

namespace crt::bench {

struct RunOptions {
  // Inference: warm-up segments (>= 2: the FLOP tallies are taken on segments 0 and 1), then
  // timed segments, each timed on its own, the stream's memory or cache carried across.
  std::int64_t infer_warmup = 3, infer_reps = 15;
  // Training: warm-up steps (>= 2, tallies on steps 0 and 1), then timed steps.
  std::int64_t train_warmup = 2, train_reps = 4;
  std::int64_t train_batch = 16;
  std::int64_t bptt = 1;  // segments per training step
  // A run stops timing early once its timed repetitions (at least 3) took this long.
  double max_run_seconds = 10;
  std::uint64_t token_seed = 2025;
};

// The token streams both implementations read. Inference: one stream, segment i reads inputs
// [i T, i T + T) and the next tokens as targets. Training: train_tokens(...) cut into
// train_batch columns (data::BatchStream).
std::int64_t infer_token_count(std::int64_t seg, const RunOptions& o);
std::int64_t train_token_count(std::int64_t seg, const RunOptions& o, std::int64_t thread_runs);

// Closed-form FLOPs of the grid point: forward at batch 1 on the stream's first and second
// (steady) segment, training step at train_batch in steady state (step 1).
FlopRow flop_row(const BenchConfig& config, const BenchModel& model, std::int64_t seg,
                 const RunOptions& o, std::int64_t thread_runs);
// The engine's forward tallies of the same two segments, for rows of one (config, model).
void tally_forward(const BenchConfig& config, const BenchModel& model, const RunOptions& o,
                   const std::vector<FlopRow*>& rows);

// Timed runs at each thread count; fills `flops`' counted values from the runs' tallies.
std::vector<Record> run_point(const BenchConfig& config, const BenchModel& model, std::int64_t seg,
                              const std::vector<int>& threads, bool infer, bool train,
                              const RunOptions& o, FlopRow& flops);

// Peak resident memory since the last reset_peaks() (getrusage), in bytes.
std::int64_t peak_rss_bytes();
// Returns freed memory (the engine's buffer cache, malloc's free pages) to the system, then resets the resident-memory high-water mark
// (/proc/self/clear_refs) and the engine's allocation high-water mark. False when the
// resident one could not be reset (peaks then cover the whole process so far).
bool reset_peaks();

}  // namespace crt::bench
