// Named benchmark shapes and models, and the Zipf token stream (see configs.hpp).
#include "bench/suite/configs.hpp"

#include <algorithm>

#include "engine/error.hpp"
#include "engine/random.hpp"

namespace crt::bench {

const std::vector<BenchConfig>& all_configs() {
  static const std::vector<BenchConfig> configs = [] {
    std::vector<BenchConfig> c;
    c.push_back({"small", 3, 256, 8, 32, 1024, 10000, {}, "d 256, 3 layers, 8x32 heads, FFN 1024, 10k full softmax"});
    c.push_back({"paper-3", 3, 410, 10, 41, 2100, 10000, {}, "PTB 3 layers: d 410, 10x41 heads, FFN 2100, 10k full softmax"});
    c.push_back({"paper-16", 16, 410, 10, 41, 2100, 10000, {}, "PTB 16 layers: d 410, 10x41 heads, FFN 2100, 10k full softmax"});
    c.push_back({"wt103-16", 16, 410, 10, 41, 2100, 267735, {20000, 40000, 200000},
                 "WikiText-103 16 layers: d 410, 10x41, FFN 2100, 267,735 vocab, adaptive softmax"});
    return c;
  }();
  return configs;
}

const std::vector<BenchModel>& all_models() {
  using model::ModelKind;
  using model::RnnCell;
  static const std::vector<BenchModel> models = {
      {"transformer", ModelKind::transformer, RnnCell::gru},
      {"xl", ModelKind::transformer_xl, RnnCell::gru},
      {"crt-gru", ModelKind::crt, RnnCell::gru},
      {"crt-ncgru", ModelKind::crt, RnnCell::ncgru},
  };
  return models;
}

namespace {
template <class T>
const T& find_named(const std::vector<T>& items, const std::string& name, const char* what) {
  std::string known;
  for (const T& item : items) {
    if (item.name == name) return item;
    known += (known.empty() ? "" : ", ") + item.name;
  }
  throw Error(format_error("crt-bench", "unknown ", what, " '", name, "' (known: ", known, ")"));
}
}  // namespace

const BenchConfig& find_config(const std::string& name) {
  return find_named(all_configs(), name, "configuration");
}
const BenchModel& find_model(const std::string& name) { return find_named(all_models(), name, "model"); }

model::ModelConfig make_config(const BenchConfig& b, const BenchModel& m, std::int64_t seg) {
  model::ModelConfig c = model::preset(m.kind, b.layers, b.d_model, b.n_head, b.d_inner, b.vocab);
  c.d_head = b.d_head;
  c.rnn_cell = m.cell;
  c.adaptive_cutoffs = b.cutoffs;
  c.seg_len = seg;
  c.mem_len = seg;
  c.validate();
  return c;
}

std::vector<std::int32_t> zipf_tokens(std::int64_t n, std::int64_t vocab, std::uint64_t seed) {
  require(n >= 0 && vocab >= 1, "zipf_tokens", "need n >= 0 and vocab >= 1, got ", n, ", ", vocab);
  std::vector<double> cdf(static_cast<std::size_t>(vocab));
  double total = 0;
  for (std::int64_t r = 0; r < vocab; ++r) {
    total += 1.0 / double(r + 1);
    cdf[std::size_t(r)] = total;
  }
  Generator gen(seed);
  std::vector<std::int32_t> out(static_cast<std::size_t>(n));
  for (auto& t : out) {
    const double u = gen.uniform() * total;
    const auto it = std::upper_bound(cdf.begin(), cdf.end(), u);
    t = std::int32_t(std::min<std::ptrdiff_t>(it - cdf.begin(), vocab - 1));
  }
  return out;
}

}  // namespace crt::bench
