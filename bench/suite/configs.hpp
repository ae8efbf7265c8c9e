// The benchmark grid's building blocks: the named shapes (small, the paper's 3- and 16-layer
// PTB shapes, the 16-layer WikiText-103 shape), the four models, and a deterministic Zipf token
// stream that stands in for text (ids ranked by frequency, as in a frequency-sorted vocabulary).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "crt/config.hpp"

namespace crt::bench {

struct BenchConfig {
  std::string name;
  std::int64_t layers = 3, d_model = 256, n_head = 8, d_head = 32, d_inner = 1024;
  std::int64_t vocab = 10000;
  std::vector<std::int64_t> cutoffs;  // adaptive softmax; empty: full softmax
  std::string description;
};

struct BenchModel {
  std::string name;  // transformer, xl, crt-gru, crt-ncgru
  model::ModelKind kind = model::ModelKind::crt;
  model::RnnCell cell = model::RnnCell::gru;
};

const std::vector<BenchConfig>& all_configs();
const std::vector<BenchModel>& all_models();
// Throws crt::Error listing the known names.
const BenchConfig& find_config(const std::string& name);
const BenchModel& find_model(const std::string& name);

// The model configuration for one grid point: seg_len = mem_len = seg (the paper's
// "memory = segment length" Transformer-XL), default dropouts (0.1) for training.
model::ModelConfig make_config(const BenchConfig& config, const BenchModel& bench_model,
                               std::int64_t seg);

// n token ids drawn from a Zipf(1) law over [0, vocab) with a fixed seed: the same stream for
// every model and for the PyTorch reference (written to a file for it).
std::vector<std::int32_t> zipf_tokens(std::int64_t n, std::int64_t vocab, std::uint64_t seed);

}  // namespace crt::bench
