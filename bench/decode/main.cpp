// crt-decode-bench: streaming inference throughput, token by token, in the style of
// llama-bench: prompt processing (segments fed whole) and generation (one token at a time,
// with the log-probabilities over the vocabulary for each), per model kind and segment length,
// beside two references measured in the same run:
//   recompute: the pending segment run again for every token (what a stream without
//     incremental decoding does: a forward over all tokens since the last segment boundary);
//   weight streaming: the bytes of the weights a token reads over the read bandwidth measured
//     here on a buffer of the same size, read again and again as decoding reads the weights
//     (from the last-level cache when they fit, else from memory): at batch 1 every weight is
//     read once per token, so no decoder is faster.
//   crt-decode-bench [--seg 17,35,70] [--models transformer,xl,crt-gru,crt-ncgru]
//                    [--threads 1] [--tokens N] [--reps R] [--json FILE]   (--help lists them)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <iostream>
#include <string>
#include <vector>

#include "crt/api.hpp"
#include "crt/cli/options.hpp"
#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "engine/json.hpp"

namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kTool = "crt-decode-bench";
// The small PTB model of the reproduction (paper.md, 3-layer WordPTB setting).
constexpr std::int64_t kLayers = 3, kDModel = 256, kHeads = 8, kDInner = 1024, kVocab = 10000;
// Bandwidth probes: the passes over a buffer after a first, warming one (best pass counts), and
// a buffer far beyond any last-level cache for the memory figure.
constexpr int kProbeReps = 5;
constexpr std::size_t kMemoryProbeBytes = std::size_t(1) << 29;

struct Options {
  std::vector<std::int64_t> seg;
  std::vector<std::string> models;
  std::vector<std::int64_t> threads;
  std::int64_t tokens = 0;  // generated tokens per repetition; 0: two segments
  std::int64_t reps = 5;
  std::string json;
};

// nullopt after --help.
std::optional<Options> parse(int argc, char** argv) {
  crt::cli::Options a(kTool,
                      "Prompt and generation tokens/s of streaming inference, beside re-running the pending segment "
                      "per token and the weight-streaming bound.",
                      {{"seg", "LIST", "segment lengths", "17,35,70"},
                       {"models", "LIST", "transformer, xl, crt-gru, crt-ncgru", "transformer,xl,crt-gru,crt-ncgru"},
                       {"threads", "LIST", "thread counts", "1"},
                       {"tokens", "N", "generated tokens per repetition (0: two segments)", "0"},
                       {"reps", "R", "repetitions per point", "5"},
                       {"json", "FILE", "also write the results as JSON", ""}});
  a.parse(argc, argv);
  if (a.help()) {
    std::cout << a.usage();
    return std::nullopt;
  }
  Options o;
  o.seg = a.integers("seg", 1, 4096);
  o.models = a.strings("models");
  o.threads = a.integers("threads", 1, 1024);
  o.tokens = a.integer("tokens", 0, 1 << 20);
  o.reps = a.integer("reps", 1, 1000);
  o.json = a.str("json");
  for (const std::string& m : o.models)
    if (m != "transformer" && m != "xl" && m != "crt-gru" && m != "crt-ncgru")
      throw crt::cli::UsageError("option '--models' names an unknown model '" + m + "'");
  return o;
}

crt::model::ModelConfig config_for(const std::string& name, std::int64_t seg) {
  using crt::model::ModelKind;
  const ModelKind kind = name == "transformer" ? ModelKind::transformer
                         : name == "xl"        ? ModelKind::transformer_xl
                                               : ModelKind::crt;
  crt::model::ModelConfig c = crt::model::preset(kind, kLayers, kDModel, kHeads, kDInner, kVocab);
  c.seg_len = seg;
  c.mem_len = seg;
  if (name == "crt-ncgru") c.rnn_cell = crt::model::RnnCell::ncgru;
  return c;
}

// Read bandwidth of one thread over a buffer of `bytes`, read repeatedly, in bytes per second
// (the best of kProbeReps passes after a warming one).
double measure_bandwidth(std::size_t bytes) {
  std::vector<float> buffer((bytes / sizeof(float) + 15) / 16 * 16, 1.0f);
  double best = 0;
  volatile float sink = 0;
  for (int r = 0; r <= kProbeReps; ++r) {
    const auto t0 = Clock::now();
    float acc[16] = {};
    for (std::size_t i = 0; i < buffer.size(); i += 16)
      for (int j = 0; j < 16; ++j) acc[j] += buffer[i + std::size_t(j)];
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    float total = 0;
    for (float a : acc) total += a;
    sink = sink + total;
    if (r > 0) best = std::max(best, double(buffer.size() * sizeof(float)) / s);
  }
  (void)sink;
  return best;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::size_t(q * double(v.size() - 1) + 0.5)];
}

struct Point {
  std::string model;
  std::int64_t seg = 0, threads = 0;
  std::vector<double> prompt, generate, recompute;  // tokens/s per repetition
  double weight_bytes = 0;
};

// Tokens/s of each way of running `count` tokens after a warm-up segment.
Point measure(const std::string& name, std::int64_t seg, std::int64_t threads, const Options& o) {
  namespace cm = crt::model;
  crt::set_thread_count(int(threads));
  const cm::ModelConfig c = config_for(name, seg);
  const cm::LanguageModel m(c, 7);
  crt::NoGradGuard no_grad;
  const std::int64_t count = o.tokens > 0 ? o.tokens : 2 * seg;
  std::vector<std::int32_t> ids(std::size_t(count + 8 * seg));
  crt::Generator gen(3);
  for (auto& id : ids) id = std::int32_t(gen.next_u64() % std::uint64_t(kVocab));
  Point p{name, seg, threads, {}, {}, {}, 0};
  for (const auto& [pname, t] : m.parameters()) p.weight_bytes += double(t.numel()) * 4.0;
  for (std::int64_t rep = 0; rep < o.reps; ++rep) {
    // Prompt: four segments fed whole, the prediction after each (as Stream::feed gives it).
    {
      cm::DecodeState s = m.decode_state(1);
      const auto t0 = Clock::now();
      for (std::int64_t k = 0; k < 4; ++k) {
        const std::vector<std::int32_t> piece(ids.begin() + k * seg, ids.begin() + (k + 1) * seg);
        const crt::Tensor h = m.decode(piece, 1, s);
        (void)m.log_probs(h.narrow(1, seg - 1, 1)).numel();
      }
      p.prompt.push_back(double(4 * seg) / std::chrono::duration<double>(Clock::now() - t0).count());
    }
    // Generation: one token at a time after a one-segment prompt, log-probabilities each time.
    {
      cm::DecodeState s = m.decode_state(1);
      (void)m.decode(std::vector<std::int32_t>(ids.begin(), ids.begin() + seg), 1, s);
      const auto t0 = Clock::now();
      for (std::int64_t i = 0; i < count; ++i) (void)m.log_probs(m.decode({ids[std::size_t(seg + i)]}, 1, s)).numel();
      p.generate.push_back(double(count) / std::chrono::duration<double>(Clock::now() - t0).count());
    }
    // Recompute: the pending segment run again for each token, the state advanced at boundaries.
    {
      cm::StreamState state = m.initial_state(1);
      (void)m.forward(std::vector<std::int32_t>(ids.begin(), ids.begin() + seg), 1, state, {});
      std::vector<std::int32_t> pending;
      const auto t0 = Clock::now();
      for (std::int64_t i = 0; i < count; ++i) {
        pending.push_back(ids[std::size_t(seg + i)]);
        if (std::int64_t(pending.size()) == seg) {
          const crt::Tensor h = m.forward(pending, 1, state, {});
          (void)m.log_probs(h.narrow(1, seg - 1, 1)).numel();
          pending.clear();
        } else {
          cm::StreamState scratch = state;
          const crt::Tensor h = m.forward(pending, 1, scratch, {});
          (void)m.log_probs(h.narrow(1, h.size(1) - 1, 1)).numel();
        }
      }
      p.recompute.push_back(double(count) / std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::optional<Options> parsed = parse(argc, argv);
    if (!parsed) return 0;
    const Options& o = *parsed;
    const double memory_bandwidth = measure_bandwidth(kMemoryProbeBytes);
    std::printf("%s: small PTB model (%lld layers, d_model %lld, d_inner %lld, vocabulary %lld), batch 1, %s\n",
                kTool, (long long)kLayers, (long long)kDModel, (long long)kDInner, (long long)kVocab,
                crt::active_isa());
    std::printf("read bandwidth, one thread: memory %.2f GB/s (%zu MiB buffer); per point on a buffer of "
                "its weights' size\n", memory_bandwidth / 1e9, kMemoryProbeBytes >> 20);
    std::printf("tokens/s: median [quartiles] of %lld repetitions; bound = weight bytes per token / that "
                "bandwidth\n\n", (long long)o.reps);
    std::printf("%-12s %4s %3s | %-22s | %-22s | %-22s | %9s | %8s | %9s | %s\n", "model", "seg", "thr",
                "prompt tok/s", "generate tok/s", "recompute tok/s", "gen/recmp", "MB/token", "bound t/s", "gen/bound");
    crt::json::Value rows = crt::json::Value::array();
    for (const std::int64_t threads : o.threads)
      for (const std::string& name : o.models)
        for (const std::int64_t seg : o.seg) {
          const Point p = measure(name, seg, threads, o);
          const double bandwidth = measure_bandwidth(std::size_t(p.weight_bytes));
          const double gen = median(p.generate), rec = median(p.recompute), bound = bandwidth / p.weight_bytes;
          auto cell = [](const std::vector<double>& v) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "%.0f [%.0f, %.0f]", median(v), quantile(v, 0.25), quantile(v, 0.75));
            return std::string(buf);
          };
          std::printf("%-12s %4lld %3lld | %-22s | %-22s | %-22s | %8.2fx | %8.1f | %9.0f | %8.0f%%\n", name.c_str(),
                      (long long)seg, (long long)threads, cell(p.prompt).c_str(), cell(p.generate).c_str(),
                      cell(p.recompute).c_str(), gen / rec, p.weight_bytes / 1e6, bound, 100.0 * gen / bound);
          std::fflush(stdout);
          crt::json::Value r = crt::json::Value::object();
          r.add("model", crt::json::Value::string(name));
          r.add("seg_len", crt::json::Value::integer(std::uint64_t(seg)));
          r.add("threads", crt::json::Value::integer(std::uint64_t(threads)));
          r.add("prompt_tokens_per_s", crt::json::Value::number(median(p.prompt)));
          r.add("generate_tokens_per_s", crt::json::Value::number(gen));
          r.add("recompute_tokens_per_s", crt::json::Value::number(rec));
          r.add("weight_bytes", crt::json::Value::number(p.weight_bytes));
          r.add("bound_tokens_per_s", crt::json::Value::number(bound));
          r.add("bandwidth_bytes_per_s", crt::json::Value::number(bandwidth));
          rows.push_back(r);
        }
    if (!o.json.empty()) {
      crt::json::Value doc = crt::json::Value::object();
      doc.add("isa", crt::json::Value::string(crt::active_isa()));
      doc.add("memory_bandwidth_bytes_per_s", crt::json::Value::number(memory_bandwidth));
      doc.add("points", rows);
      std::ofstream out(o.json);
      out << crt::json::write(doc) << "\n";
      if (!out) throw crt::Error("cannot write " + o.json);
    }
    return 0;
  } catch (const crt::cli::UsageError& e) {
    std::cerr << kTool << ": " << e.what() << " (see " << kTool << " --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << kTool << ": error: " << e.what() << "\n";
    return 1;
  }
}
