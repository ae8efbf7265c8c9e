// train_demo: a one-block, character-level Compact Recurrent Transformer trained on Tiny
// Shakespeare. A causal attention block reads each segment together with a memory vector (one
// extra key/value in front of the segment); a GRU then reads the block's outputs token by token
// into the next memory. Learned positions stand in for the paper's position RNN.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "crt/cli/options.hpp"
#include "datasets/batch_stream.hpp"
#include "datasets/corpus.hpp"
#include "engine/engine.hpp"
#include "kernels/kernels.hpp"

namespace {

using crt::Shape;
using crt::Tensor;

struct Options {
  std::string data_dir;  // empty: --data-dir, else $CRT_DATA_DIR, else ../shared/datasets
  int steps = 2500;
  double max_seconds = 60.0;  // training stops at whichever of steps / max_seconds comes first
  int batch = 16;
  int seq = 32;               // segment length T
  int bptt = 2;               // segments per update (gradients flow through the memory)
  int dim = 64;               // model width C
  int heads = 4;
  double lr = 1e-2;
  int threads = 0;            // 0: oneTBB's default
  int log_every = 50;
  int sample_chars = 200;
  std::uint64_t seed = 1;
};

// Flag ranges: far beyond a demo's sizes, small enough that products of them stay in range.
constexpr std::int64_t kMaxSize = 1 << 16;
constexpr std::int64_t kMaxSteps = std::int64_t(1) << 30;

// The demo's flags, through the project's option parser; returns nullopt after --help.
std::optional<Options> parse_options(int argc, char** argv) {
  const Options d;
  crt::cli::Options a("train_demo",
                      "Trains a one-block character-level CRT on Tiny Shakespeare and prints step, loss and "
                      "tokens/s.\nThe data folder holds tinyshakespeare/input.txt; default: $CRT_DATA_DIR, then "
                      "../shared/datasets.",
                      {{"data-dir", "DIR", "data folder", ""},
                       {"steps", "N", "optimiser steps", std::to_string(d.steps)},
                       {"max-seconds", "S", "stop training after S seconds", "60"},
                       {"batch", "B", "batch columns", std::to_string(d.batch)},
                       {"seq", "T", "segment length", std::to_string(d.seq)},
                       {"bptt", "K", "segments per update (gradients through the memory)", std::to_string(d.bptt)},
                       {"dim", "C", "model width (a multiple of --heads)", std::to_string(d.dim)},
                       {"heads", "H", "attention heads", std::to_string(d.heads)},
                       {"lr", "LR", "peak learning rate", "0.01"},
                       {"threads", "N", "worker threads (0: all cores)", "0"},
                       {"log-every", "N", "progress line every N steps", std::to_string(d.log_every)},
                       {"sample-chars", "N", "characters sampled at the end", std::to_string(d.sample_chars)},
                       {"seed", "S", "initialisation and sampling seed", std::to_string(d.seed)}});
  a.parse(argc, argv);
  if (a.help()) {
    std::printf("%s", a.usage().c_str());
    return std::nullopt;
  }
  Options o;
  o.data_dir = a.str("data-dir");
  o.steps = int(a.integer("steps", 0, kMaxSteps));
  o.max_seconds = a.real("max-seconds", 0, 1e9);
  o.batch = int(a.integer("batch", 1, kMaxSize));
  o.seq = int(a.integer("seq", 1, kMaxSize));
  o.bptt = int(a.integer("bptt", 1, kMaxSize));
  o.heads = int(a.integer("heads", 1, kMaxSize));
  o.dim = int(a.integer("dim", 1, kMaxSize));
  if (o.dim % o.heads != 0)
    throw crt::cli::UsageError("option '--dim' must be a multiple of --heads (" + std::to_string(o.heads) +
                               "), got " + std::to_string(o.dim));
  o.lr = a.real("lr", 1e-12, 10);
  o.threads = int(a.integer("threads", 0, 1024));
  o.log_every = int(a.integer("log-every", 1, kMaxSteps));
  o.sample_chars = int(a.integer("sample-chars", 0, kMaxSize));
  o.seed = std::uint64_t(a.integer("seed", 0, std::int64_t(1) << 62));
  return o;
}

Tensor parameter(Tensor t) {
  t.set_requires_grad(true);
  return t;
}

// One pre-norm transformer block whose attention also sees the memory, a GRU memory update,
// and a character head.
class TinyCrt {
 public:
  TinyCrt(std::int64_t vocab, std::int64_t seq, std::int64_t dim, std::int64_t heads,
          crt::Generator& gen)
      : vocab_(vocab), dim_(dim), heads_(heads) {
    auto weight = [&](std::int64_t out, std::int64_t in) {
      return parameter(crt::uniform({out, in}, -1.0 / std::sqrt(double(in)),
                                    1.0 / std::sqrt(double(in)), gen));
    };
    tok_emb_ = parameter(crt::normal({vocab, dim}, 0.0, 0.5, gen));
    pos_emb_ = parameter(crt::normal({seq, dim}, 0.0, 0.1, gen));
    ln1_g_ = parameter(Tensor::ones({dim}));
    ln1_b_ = parameter(Tensor::zeros({dim}));
    w_q_ = weight(dim, dim);
    w_k_ = weight(dim, dim);
    w_v_ = weight(dim, dim);
    w_o_ = weight(dim, dim);
    ln2_g_ = parameter(Tensor::ones({dim}));
    ln2_b_ = parameter(Tensor::zeros({dim}));
    w_up_ = weight(4 * dim, dim);
    b_up_ = parameter(Tensor::zeros({4 * dim}));
    w_down_ = weight(dim, 4 * dim);
    b_down_ = parameter(Tensor::zeros({dim}));
    lnf_g_ = parameter(Tensor::ones({dim}));
    lnf_b_ = parameter(Tensor::zeros({dim}));
    w_head_ = weight(vocab, dim);
    b_head_ = parameter(Tensor::zeros({vocab}));
    w_ih_ = weight(3 * dim, dim);
    w_hh_ = weight(3 * dim, dim);
    b_ih_ = parameter(Tensor::zeros({3 * dim}));
    b_hh_ = parameter(Tensor::zeros({3 * dim}));
  }

  std::vector<Tensor> parameters() const {
    return {tok_emb_, pos_emb_, ln1_g_, ln1_b_, w_q_,   w_k_,    w_v_,  w_o_,
            ln2_g_,   ln2_b_,   w_up_,  b_up_,  w_down_, b_down_, lnf_g_, lnf_b_,
            w_head_,  b_head_,  w_ih_,  w_hh_,  b_ih_,  b_hh_};
  }

  Tensor initial_memory(std::int64_t batch) const { return Tensor::zeros({batch, dim_}); }

  struct Output {
    Tensor logits;  // [B, T, V]
    Tensor memory;  // [B, C], the memory for the next segment
  };

  // ids: [batch, len] row-major; memory: [B, C]
  Output forward(const std::vector<std::int32_t>& ids, std::int64_t batch, std::int64_t len,
                 const Tensor& memory) const {
    const std::int64_t head_dim = dim_ / heads_;
    Tensor x = crt::embedding(tok_emb_, ids, {batch, len}) + pos_emb_.narrow(0, 0, len);
    Tensor h = crt::layernorm(x, ln1_g_, ln1_b_);
    // The memory is one more key/value, in front of the segment, that every query sees.
    Tensor kv_in = crt::concat({memory.unsqueeze(1), h}, 1);  // [B, 1 + T, C]
    auto split_heads = [&](const Tensor& t) {                 // [B, L, C] -> [B, H, L, D]
      return t.reshape({batch, t.size(1), heads_, head_dim}).transpose(1, 2);
    };
    Tensor att = crt::attention(split_heads(crt::linear(h, w_q_)),
                                split_heads(crt::linear(kv_in, w_k_)),
                                split_heads(crt::linear(kv_in, w_v_)), /*causal=*/true);
    x = x + crt::linear(att.transpose(1, 2).reshape({batch, len, dim_}), w_o_);
    Tensor up = crt::gelu(crt::linear(crt::layernorm(x, ln2_g_, ln2_b_), w_up_, b_up_));
    x = x + crt::linear(up, w_down_, b_down_);
    Output out;
    out.logits = crt::linear(crt::layernorm(x, lnf_g_, lnf_b_), w_head_, b_head_);
    // Memory write: a GRU reads the block's outputs token by token, starting from the memory.
    out.memory = memory;
    for (std::int64_t t = 0; t < len; ++t)
      out.memory = crt::gru_cell(x.narrow(1, t, 1).squeeze(1), out.memory, w_ih_, w_hh_, b_ih_,
                                 b_hh_);
    return out;
  }

  std::int64_t vocab() const { return vocab_; }

 private:
  std::int64_t vocab_, dim_, heads_;
  Tensor tok_emb_, pos_emb_, ln1_g_, ln1_b_, w_q_, w_k_, w_v_, w_o_, ln2_g_, ln2_b_, w_up_,
      b_up_, w_down_, b_down_, lnf_g_, lnf_b_, w_head_, b_head_, w_ih_, w_hh_, b_ih_, b_hh_;
};

Tensor segment_loss(const TinyCrt& model, const crt::data::Segment& seg, Tensor& memory) {
  TinyCrt::Output out = model.forward(seg.inputs, seg.batch, seg.len, memory);
  memory = out.memory;
  return crt::cross_entropy(out.logits.reshape({std::int64_t(seg.batch) * seg.len, model.vocab()}),
                            seg.targets);
}

// Mean loss over up to `max_segments` segments of `tokens`, memory carried along.
double evaluate(const TinyCrt& model, const std::vector<std::int32_t>& tokens, int batch, int seq,
                int max_segments) {
  crt::NoGradGuard no_grad;
  crt::data::BatchStream stream(tokens, batch);
  Tensor memory = model.initial_memory(batch);
  double total = 0;
  std::int64_t count = 0;
  for (int i = 0; i < max_segments && !stream.done(); ++i) {
    crt::data::Segment seg = stream.next(seq);
    total += segment_loss(model, seg, memory).item() * seg.len;
    count += seg.len;
  }
  return total / double(count);
}

// Samples `n` characters after `prompt`, segment by segment: within a segment the model sees
// the characters so far; a full segment is folded into the memory and a new one starts.
std::string sample(const TinyCrt& model, const crt::data::Vocabulary& vocab,
                   const std::vector<std::int32_t>& prompt, int seq, int n, crt::Generator& gen) {
  crt::NoGradGuard no_grad;
  Tensor memory = model.initial_memory(1);
  std::vector<std::int32_t> window;
  std::string text;
  auto push = [&](std::int32_t id) {
    if (std::int64_t(window.size()) == seq) {  // fold the full segment into the memory
      memory = model.forward(window, 1, seq, memory).memory;
      window.clear();
    }
    window.push_back(id);
  };
  for (std::int32_t id : prompt) push(id);
  for (int i = 0; i < n; ++i) {
    const std::int64_t len = std::int64_t(window.size());
    Tensor logits = model.forward(window, 1, len, memory).logits.narrow(1, len - 1, 1);
    std::vector<double> probs = crt::softmax(logits.reshape({model.vocab()})).to_vector();
    double u = gen.uniform();
    std::int32_t next = std::int32_t(probs.size()) - 1;
    for (std::size_t v = 0; v < probs.size(); ++v) {
      if ((u -= probs[v]) < 0) {
        next = std::int32_t(v);
        break;
      }
    }
    text += vocab.word_of(next);
    push(next);
  }
  return text;
}

int run(const Options& o) {
  if (o.threads > 0) crt::set_num_threads(o.threads);
  const std::filesystem::path data_dir = crt::data::resolve_data_dir(o.data_dir);
  const crt::data::Corpus corpus = crt::data::load_corpus("tinyshakespeare", data_dir);
  std::printf("crt train_demo: Tiny Shakespeare from %s: %zu train / %zu valid characters, "
              "vocabulary %zu\n",
              data_dir.string().c_str(), corpus.train.size(), corpus.valid.size(),
              corpus.vocab.size());

  crt::Generator gen(o.seed);
  TinyCrt model(std::int64_t(corpus.vocab.size()), o.seq, o.dim, o.heads, gen);
  std::int64_t n_params = 0;
  for (const Tensor& p : model.parameters()) n_params += p.numel();
  std::printf("model: 1 block, width %d, %d heads, segment %d, memory 1 x %d (GRU), %lld "
              "parameters; batch %d, %d segments per update; AdamW lr %g; kernels %s, %d threads\n",
              o.dim, o.heads, o.seq, o.dim, static_cast<long long>(n_params), o.batch, o.bptt,
              o.lr, crt::kernels::active_isa(), crt::num_threads());

  crt::AdamOptions adam;
  adam.lr = o.lr;
  adam.weight_decay = 0.01;
  crt::AdamW optimizer(model.parameters(), adam);
  const crt::WarmupCosineLR schedule(o.lr, 20, std::max(o.steps, 21), o.lr / 10);

  crt::data::BatchStream stream(corpus.train, o.batch);
  Tensor memory = model.initial_memory(o.batch);
  std::printf("%6s %9s %10s %8s\n", "step", "loss", "tokens/s", "time");
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  auto interval_start = start;
  double interval_loss = 0;
  std::int64_t interval_tokens = 0, interval_steps = 0;
  int step = 0;
  for (; step < o.steps; ++step) {
    if (std::chrono::duration<double>(clock::now() - start).count() > o.max_seconds) break;
    Tensor loss;
    int segments = 0;
    for (; segments < o.bptt; ++segments) {
      if (stream.done()) {  // a new pass over the text starts with an empty memory
        stream.reset();
        memory = model.initial_memory(o.batch);
      }
      crt::data::Segment seg = stream.next(o.seq);
      Tensor l = segment_loss(model, seg, memory);
      loss = loss.defined() ? loss + l : l;
      interval_tokens += std::int64_t(seg.batch) * seg.len;
    }
    loss = loss / double(segments);
    optimizer.set_lr(schedule.lr_at(optimizer.step_count()));
    optimizer.zero_grad();
    loss.backward();
    crt::clip_grad_norm(optimizer.params(), 1.0);
    optimizer.step();
    memory = memory.detach();  // truncated backpropagation through time

    interval_loss += loss.item();
    ++interval_steps;
    if ((step + 1) % o.log_every == 0 || step == 0) {
      const auto now = clock::now();
      const double seconds = std::chrono::duration<double>(now - interval_start).count();
      std::printf("%6d %9.4f %10.0f %7.1fs\n", step + 1, interval_loss / double(interval_steps),
                  double(interval_tokens) / seconds,
                  std::chrono::duration<double>(now - start).count());
      std::fflush(stdout);
      interval_start = now;
      interval_loss = 0;
      interval_tokens = interval_steps = 0;
    }
  }
  const double train_seconds = std::chrono::duration<double>(clock::now() - start).count();
  const double valid_loss = evaluate(model, corpus.valid, o.batch, o.seq, 40);
  std::printf("trained %d steps in %.1fs; validation loss %.4f (%.3f bits/char)\n", step,
              train_seconds, valid_loss, valid_loss / std::log(2.0));
  if (o.sample_chars > 0) {
    const std::vector<std::int32_t> prompt(corpus.valid.begin(), corpus.valid.begin() + o.seq);
    std::printf("sample, after the prompt \"%s\":\n%s\n",
                corpus.vocab.decode(prompt, "").c_str(),
                sample(model, corpus.vocab, prompt, o.seq, o.sample_chars, gen).c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::optional<Options> options = parse_options(argc, argv);
    return options ? run(*options) : 0;
  } catch (const crt::cli::UsageError& e) {
    std::fprintf(stderr, "train_demo: %s (see train_demo --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_demo: %s\n", e.what());
    return 1;
  }
}
