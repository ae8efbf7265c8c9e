// The suite's results: one Record per (impl, model, configuration, segment length, threads,
// mode), one FlopRow per (model, configuration, segment length); their JSON and CSV forms, and
// latency statistics over repetitions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/json.hpp"

namespace crt::bench {

// Median and spread of repeated timings, in milliseconds.
struct LatencyStats {
  double median = 0, min = 0, max = 0, p25 = 0, p75 = 0;
  std::int64_t reps = 0;
};
LatencyStats latency_stats(std::vector<double> ms);

struct Record {
  std::string impl = "crt";  // crt or pytorch
  std::string model, config, mode;  // mode: infer or train
  std::int64_t layers = 0, d_model = 0, vocab = 0, seg_len = 0, batch = 0, threads = 0;
  bool adaptive = false;
  std::int64_t bptt_segments = 1;  // segments per training step
  std::int64_t cached = 0;         // Transformer-XL cache length the timed segments attend to
  // FLOPs of one segment (infer) or one training step (train); -1: not measured.
  std::int64_t flops_closed_form = -1, flops_counted = -1;
  std::int64_t flops_uncounted = 0;  // per training step, outside the tally: the NCGRU A-update
  LatencyStats latency;              // per segment (infer) or per step (train)
  double tokens_per_s = 0, gflops_per_s = 0;
  std::int64_t param_count = 0, param_bytes = 0;
  std::int64_t peak_rss_bytes = 0;     // getrusage high-water mark, reset before this run
  std::int64_t engine_peak_bytes = -1; // engine allocation high-water mark (crt only)
  std::int64_t state_bytes = 0;        // per-stream state carried between segments
  std::string note;
};

struct FlopRow {
  std::string model, config;
  std::int64_t layers = 0, d_model = 0, vocab = 0, seg_len = 0, train_batch = 0;
  std::int64_t bptt_segments = 1;  // segments per training step
  // Forward at batch 1 with the output layer's loss: the stream's first segment (XL cache
  // empty) and its second (steady state, cache full). -1: not tallied.
  std::int64_t fwd_first_closed = 0, fwd_first_counted = -1;
  std::int64_t fwd_closed = 0, fwd_counted = -1;
  // Training step at train_batch (bptt_segments segments) in steady state.
  std::int64_t train_closed = 0, train_counted = -1;
  std::int64_t train_uncounted = 0;  // NCGRU A-update per step (not in the tally)
  double paper = -1;                 // paper.md 5.2 value (WordPTB figures); -1: none
};

json::Value to_json(const Record& r);
json::Value to_json(const FlopRow& r);
// Reads a record written by to_json (or by bench/pytorch_reference.py); throws crt::Error.
Record record_from_json(const json::Value& v);

std::string csv_header_records();
std::string to_csv(const Record& r);
std::string csv_header_flops();
std::string to_csv(const FlopRow& r);

// "12.3 M", "4.56 G" style numbers for tables.
std::string human(double value);
std::string human_bytes(double bytes);

}  // namespace crt::bench
