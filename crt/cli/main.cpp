// The `crt` command-line tool: train, eval, generate and info, written on the public API
// (crt/api.hpp). Bad arguments print a usage error and exit with status 2.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "crt/api.hpp"
#include "crt/cli/options.hpp"
#include "datasets/corpus.hpp"
#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "engine/json.hpp"

namespace {

// Ctrl-C (SIGINT) and SIGTERM during training: the first asks the loop to finish its step and
// save; a second leaves at once.
std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal.exchange(sig) != 0) std::_Exit(128 + sig);
}

// Installs on_stop_signal for SIGINT and SIGTERM for its lifetime, then restores the defaults.
class StopSignals {
 public:
  StopSignals() {
    g_stop_signal.store(0);
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
  }
  ~StopSignals() {
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
};

using crt::model::ModelConfig;

using crt::cli::OptionSpec;
using crt::cli::UsageError;
using Args = crt::cli::Options;

// Flag ranges: far beyond any real run, small enough that products of them stay in 64 bits.
constexpr std::int64_t kMaxThreads = 1024;
constexpr std::int64_t kMaxWidth = crt::model::ModelConfig::kMaxWidth;
constexpr std::int64_t kMaxLayers = crt::model::ModelConfig::kMaxLayers;
constexpr std::int64_t kMaxSegment = crt::model::ModelConfig::kMaxSegment;
constexpr std::int64_t kMaxBatch = 1 << 20;
constexpr std::int64_t kMaxCount = std::int64_t(1) << 40;  // steps, tokens, seeds, intervals
constexpr double kMaxEpochs = 1e6;

std::string human_count(double v) {
  char buf[32];
  if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

std::string human_duration(double seconds) {
  const auto s = std::int64_t(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  else std::snprintf(buf, sizeof buf, "%llds", (long long)s);
  return buf;
}

// The corpus named by --data, or else by the checkpoint's metadata, or else PTB.
std::string corpus_name(const Args& a, const crt::Model* model) {
  if (a.has("data")) return a.str("data");
  if (model) {
    auto it = model->metadata().find("data.corpus");
    if (it != model->metadata().end()) return it->second;
  }
  return "ptb";
}

crt::data::Corpus load_data(const Args& a, const std::string& name) {
  const std::filesystem::path dir = crt::data::resolve_data_dir(a.str("data-dir"));
  const auto t0 = std::chrono::steady_clock::now();
  crt::data::Corpus c = crt::data::load_corpus(name, dir);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cerr << "data: " << name << " from " << dir.string() << ": vocabulary " << c.vocab.size()
            << ", train/valid/test " << c.train.size() << " / " << c.valid.size() << " / "
            << c.test.size() << " tokens (" << std::fixed << std::setprecision(2) << secs << " s)\n";
  std::cerr.unsetf(std::ios::fixed);
  if (!c.checksums_verified)
    std::cerr << "data: note: corpus " << name << " in " << dir.string() << " has no SHA256SUMS; its files are used unverified\n";
  return c;
}

std::vector<OptionSpec> data_options() {
  return {{"data", "NAME", "corpus: ptb, wikitext-2 or tinyshakespeare", "ptb"},
          {"data-dir", "DIR", "data directory (else $CRT_DATA_DIR, else ../shared/datasets)", ""},
          {"threads", "N", "worker threads (0: all cores)", "0"}};
}

void apply_threads(const Args& a) {
  const std::int64_t n = a.integer("threads", 0, kMaxThreads);
  if (n < 0) throw UsageError("option '--threads' must be >= 0");
  crt::set_thread_count(int(n));
}

// A JSON-lines or CSV metrics writer (by extension). JSON goes through the project's writer
// (a non-finite number is written as null); every write is checked, so a full disk or a
// bad path ends the run with an error naming the file instead of losing lines silently.
class MetricsWriter {
 public:
  explicit MetricsWriter(const std::string& path) : path_(path) {
    if (path.empty()) return;
    if (auto parent = std::filesystem::path(path).parent_path(); !parent.empty())
      std::filesystem::create_directories(parent);
    out_.open(path);
    if (!out_) throw crt::Error("crt train: cannot open metrics file '" + path + "'");
    csv_ = std::filesystem::path(path).extension() == ".csv";
    if (csv_) out_ << "kind,step,loss,perplexity,lr,grad_norm,tokens_per_s,elapsed_s\n";
    check();
  }
  void write(const char* kind, std::int64_t step, double loss, double lr, double grad_norm,
             double tokens_per_s, double elapsed) {
    if (!out_.is_open()) return;
    if (csv_) {
      out_ << kind << ',' << step << ',' << loss << ',' << std::exp(loss) << ',' << lr << ','
           << grad_norm << ',' << tokens_per_s << ',' << elapsed << '\n';
    } else {
      using crt::json::Value;
      auto number = [](double v) { return std::isfinite(v) ? Value::number(v) : Value(); };
      Value o = Value::object();
      o.add("kind", Value::string(kind));
      o.add("step", Value::integer(std::uint64_t(step)));
      o.add("loss", number(loss));
      o.add("perplexity", number(std::exp(loss)));
      o.add("lr", number(lr));
      o.add("grad_norm", number(grad_norm));
      o.add("tokens_per_s", number(tokens_per_s));
      o.add("elapsed_s", number(elapsed));
      out_ << crt::json::write(o) << '\n';
    }
    out_.flush();
    check();
  }

 private:
  void check() {
    if (!out_) throw crt::Error("crt train: cannot write metrics file '" + path_ + "' (disk full or not writable)");
  }
  std::string path_;
  std::ofstream out_;
  bool csv_ = false;
};

// Fails before any training when the checkpoint cannot be written where --out says: an empty
// path, a directory, or a folder where no file can be created.
void check_output_path(const std::string& out) {
  namespace fs = std::filesystem;
  if (out.empty()) throw UsageError("--out must not be empty");
  std::error_code ec;
  if (fs::is_directory(out, ec)) throw UsageError("--out '" + out + "' is a directory; give a file path");
  fs::path parent = fs::path(out).parent_path();
  if (parent.empty()) parent = ".";
  fs::create_directories(parent, ec);
  if (ec) throw crt::Error("crt train: cannot create the folder of --out '" + out + "': " + ec.message());
  const fs::path probe = parent / (".crt-write-probe." + std::to_string(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    throw crt::Error("crt train: cannot write in the folder of --out '" + out + "': " + std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

// Fails before building the model when one training step's activations cannot fit: a rough
// upper estimate of what the forward keeps for the backward (per token and layer: the
// block's inputs, projections, attention and feed-forward activations; per segment: the
// attention probabilities; and the output layer's logits and their gradient).
void check_step_memory(const ModelConfig& c, std::int64_t batch, std::int64_t bptt, std::int64_t eval_batch) {
  const double d = double(c.d_model), f = double(c.d_inner), w = double(c.n_head * c.d_head);
  const double s = double(c.seg_len) + 1, k = s + double(c.memory == crt::model::MemoryKind::cache ? c.mem_len : 0);
  const double tokens = double(batch) * double(bptt) * s;
  const double per_layer = tokens * (12 * d + 4 * w + 3 * f) + double(batch) * double(bptt) * double(c.n_head) * s * k;
  const double output = tokens * double(c.vocab_size) * 2;
  const double train_bytes = 4.0 * (double(c.n_layer) * per_layer + output);
  const double eval_bytes = 4.0 * double(eval_batch) * s * (double(c.vocab_size) + 16 * d);
  const double limit = crt::model::memory_limit_bytes();
  const double need = std::max(train_bytes, eval_bytes) + c.model_bytes_estimate() * 4;  // weights, grads, Adam
  if (need > limit)
    throw crt::Error("crt train: a step of batch " + std::to_string(batch) + " x seg_len " +
                     std::to_string(c.seg_len) + " x bptt " + std::to_string(bptt) + " (eval batch " +
                     std::to_string(eval_batch) + ") would need about " + crt::model::human_bytes(need) +
                     " (activations, weights, gradients and optimiser state), more than the " +
                     crt::model::human_bytes(limit) + " of memory here");
}

// ---- train -----------------------------------------------------------------------------

// A perplexity for progress lines: two decimals, or three significant digits in exponent form
// once it is too large to read (a run that diverged), never a 100-digit number.
std::string ppl_text(double ppl) {
  char buf[48];
  std::snprintf(buf, sizeof buf, std::isfinite(ppl) && ppl < 1e6 ? "%.2f" : "%.3g", ppl);
  return buf;
}

// The model a `crt train` command line describes, for a corpus of `vocab` words.
ModelConfig model_config(const Args& a, std::int64_t vocab) {
  ModelConfig c = crt::model::preset(crt::model::parse_model_kind(a.str("model")), a.integer("layers", 1, kMaxLayers),
                                     a.integer("d-model", 1, kMaxWidth), a.integer("heads", 1, kMaxWidth), a.integer("d-inner", 1, kMaxWidth),
                                     vocab);
  if (a.has("d-head")) c.d_head = a.integer("d-head", 1, kMaxWidth);
  c.seg_len = a.integer("seg-len", 1, kMaxSegment);
  c.mem_len = a.has("mem-len") ? a.integer("mem-len", 1, kMaxSegment) : c.seg_len;
  c.rnn_cell = crt::model::parse_rnn_cell(a.str("cell"));
  if (a.has("position")) c.position = crt::model::parse_position(a.str("position"));
  if (a.has("no-memory")) c.memory = crt::model::MemoryKind::none;
  c.pos_rnn_residual = a.has("pos-rnn-residual");
  c.pre_ln = a.has("pre-ln");
  c.tie_embeddings = !a.has("untied");
  c.dropout = a.real("dropout", 0, 0.95);
  c.emb_dropout = a.real("emb-dropout", 0, 0.95);
  c.dropatt = a.real("dropatt", 0, 0.95);
  if (a.has("adaptive")) {
    const std::string list = a.str("adaptive");
    std::stringstream ss(list);
    std::string item;
    while (std::getline(ss, item, ',')) {
      std::size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (item.empty() || used != item.size())
        throw UsageError("option '--adaptive' needs comma-separated integers, got '" + list + "'");
      c.adaptive_cutoffs.push_back(v);
    }
    if (c.adaptive_cutoffs.empty() || list.back() == ',')
      throw UsageError("option '--adaptive' needs comma-separated integers, got '" + list + "'");
  }
  c.validate();

  return c;
}

// The training schedule a `crt train` command line describes (steps from --steps or --epochs).
crt::model::TrainOptions train_options(const Args& a, const ModelConfig& c, const crt::data::Corpus& corpus) {
  crt::model::TrainOptions o;
  o.batch = a.integer("batch", 1, kMaxBatch);
  o.bptt_segments = a.has("bptt") ? a.integer("bptt", 1, 1024) : crt::model::default_bptt_segments(c);
  if (o.batch < 1 || o.bptt_segments < 1) throw UsageError("--batch and --bptt must be >= 1");
  if (a.has("steps")) {
    o.steps = a.integer("steps", 1, kMaxCount);
  } else {
    const std::int64_t columns = std::int64_t(corpus.train.size()) / o.batch;
    const double segments = std::ceil(double(columns - 1) / double(c.seg_len));
    o.steps = std::max<std::int64_t>(1, std::int64_t(a.real("epochs", 1e-9, kMaxEpochs) * segments / double(o.bptt_segments)));
  }
  o.lr = a.real("lr", 1e-12, 10);
  o.warmup = a.integer("warmup", 0, kMaxCount);
  o.min_lr = a.real("min-lr", 0, 10);
  o.weight_decay = a.real("weight-decay", 0, 1);
  o.clip = a.real("clip", 0, 1e9);
  o.validate();
  return o;
}

// The training loop of `crt train`: steps with progress lines, periodic validation and
// checkpoints, Ctrl-C handling, the final checkpoint and evaluation. Returns the exit status.
int run_training(const Args& a, crt::Model& model, crt::model::Trainer& trainer, const crt::data::Corpus& corpus,
                 const crt::model::TrainOptions& o, MetricsWriter& metrics, std::int64_t eval_segments) {
  const std::string out = a.str("out");
  const std::int64_t log_every = std::max<std::int64_t>(1, a.integer("log-every", 1, kMaxCount));
  const std::int64_t eval_every = a.integer("eval-every", 0, kMaxCount), save_every = a.integer("save-every", 0, kMaxCount);
  const auto start = std::chrono::steady_clock::now();
  double window_loss = 0, window_tokens = 0, window_secs = 0;
  std::int64_t window_steps = 0, done_here = 0;
  const std::int64_t first = trainer.steps_done();
  std::optional<StopSignals> stop_signals(std::in_place);
  while (trainer.steps_done() < o.steps) {
    if (const int sig = g_stop_signal.load(); sig != 0) {
      trainer.save(out);  // atomic, as every save: an interrupted save leaves the old file
      std::fprintf(stderr, "%s: saved at step %lld of %lld: resume with crt train --resume %s "
                   "(and the same flags)\n", sig == SIGINT ? "interrupted" : "terminated",
                   (long long)trainer.steps_done(), (long long)o.steps, out.c_str());
      return 128 + sig;
    }
    const crt::model::StepStats s = trainer.step();
    ++done_here;
    window_loss += s.loss;
    window_tokens += double(s.tokens);
    window_secs += s.seconds;
    ++window_steps;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    metrics.write("train", s.step, s.loss, s.lr, s.grad_norm, double(s.tokens) / s.seconds, elapsed);
    if (s.step % log_every == 0 || s.step == o.steps) {
      const double mean = window_loss / double(window_steps);
      const double eta = elapsed / double(done_here) * double(o.steps - s.step);
      std::fprintf(stderr, "step %lld/%lld | loss %.4f | ppl %s | lr %.3g | grad %.3f | %s tok/s | eta %s\n",
                   (long long)s.step, (long long)o.steps, mean, ppl_text(std::exp(mean)).c_str(), s.lr, s.grad_norm,
                   human_count(window_tokens / window_secs).c_str(), human_duration(eta).c_str());
      window_loss = window_tokens = window_secs = 0;
      window_steps = 0;
    }
    if (eval_every > 0 && s.step % eval_every == 0 && s.step < o.steps) {
      const auto r = crt::model::evaluate(model.language_model(), corpus.valid, a.integer("eval-batch", 1, kMaxBatch),
                                          eval_segments);
      std::fprintf(stderr, "  valid: loss %.4f | ppl %.2f (%lld tokens, %.1f s)\n", r.nll, r.perplexity,
                   (long long)r.tokens, r.seconds);
      metrics.write("valid", s.step, r.nll, s.lr, 0, double(r.tokens) / r.seconds, elapsed);
    }
    if (save_every > 0 && s.step % save_every == 0 && s.step < o.steps) {
      try {
        trainer.save(out);
      } catch (const std::exception& e) {  // a failed periodic save must not end the run
        std::fprintf(stderr, "warning: checkpoint not saved at step %lld: %s (training goes on; the next save tries again)\n",
                     (long long)s.step, e.what());
      }
    }
  }
  trainer.save(out);
  stop_signals.reset();  // the work is saved: a signal during the final evaluation ends it at once
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "trained %lld steps in %s; checkpoint: %s\n", (long long)(o.steps - first),
               human_duration(total).c_str(), out.c_str());
  if (!a.has("no-final-eval")) {
    for (const auto& [name, tokens] : {std::pair<const char*, const std::vector<std::int32_t>*>{"valid", &corpus.valid},
                                       {"test", &corpus.test}}) {
      const auto r = crt::model::evaluate(model.language_model(), *tokens, a.integer("eval-batch", 1, kMaxBatch));
      std::printf("%s perplexity %.2f (loss %.4f, %lld tokens, %.1f s)\n", name, r.perplexity, r.nll,
                  (long long)r.tokens, r.seconds);
      metrics.write(name, o.steps, r.nll, 0, 0, double(r.tokens) / r.seconds, total);
    }
  }
  return 0;
}

// Every option of `crt train`: the data, the model, the schedule, checkpoints and logging.
std::vector<OptionSpec> train_option_specs() {
  std::vector<OptionSpec> specs = data_options();
  const std::vector<OptionSpec> more = {
      {"model", "KIND", "crt, transformer or xl", "crt"},
      {"cell", "CELL", "CRT recurrent cell: gru or ncgru", "gru"},
      {"layers", "N", "Transformer layers", "3"},
      {"d-model", "N", "model width", "256"},
      {"heads", "N", "attention heads", "8"},
      {"d-head", "N", "width per head (default d-model / heads)", ""},
      {"d-inner", "N", "feed-forward width", "1024"},
      {"seg-len", "N", "tokens per segment", "35"},
      {"mem-len", "N", "Transformer-XL cache length (default seg-len)", ""},
      {"position", "P", "override positions: sinusoidal, learned, relative, rnn, none", ""},
      {"no-memory", "", "CRT ablation: no memory token (paper Table 8)", ""},
      {"pos-rnn-residual", "", "CRT: layer input = emb + RNN(emb)", ""},
      {"pre-ln", "", "pre-LayerNorm blocks (default post-LN as in Transformer-XL)", ""},
      {"untied", "", "separate output weight (default tied to the embedding)", ""},
      {"adaptive", "CUTOFFS", "adaptive softmax cutoffs, e.g. 20000,40000,200000", ""},
      {"dropout", "P", "residual / feed-forward dropout", "0.1"},
      {"emb-dropout", "P", "embedding dropout", "0.1"},
      {"dropatt", "P", "attention-probability dropout", "0"},
      {"batch", "N", "batch columns", "16"},
      {"bptt", "K",
       "segments per step (truncated BPTT depth): CRT's loss on segment k reaches the k - 1 segments "
       "before it through the memory; Transformer segments are independent, the XL cache is never "
       "differentiated (default: 2 with a CRT memory, else 1)", ""},
      {"steps", "N", "optimiser steps (default: one epoch)", ""},
      {"epochs", "E", "epochs (used when --steps is not given)", "1"},
      {"lr", "LR", "peak learning rate (AdamW)", "0.00025"},
      {"warmup", "N", "linear warm-up steps, then cosine decay", "0"},
      {"min-lr", "LR", "learning rate at the end of the cosine", "0"},
      {"weight-decay", "W", "decoupled weight decay", "0"},
      {"clip", "C", "global gradient-norm clip (0: off)", "0.25"},
      {"seed", "S", "initialisation and dropout seed", "1111"},
      {"out", "PATH", "checkpoint to write", "out/model.safetensors"},
      {"save-every", "N", "also checkpoint every N steps (0: only at the end)", "0"},
      {"resume", "PATH", "continue exactly from a training checkpoint", ""},
      {"metrics", "PATH", "write metrics as JSON lines (.jsonl) or CSV (.csv)", ""},
      {"log-every", "N", "progress line every N steps", "10"},
      {"eval-every", "N", "validation perplexity every N steps (0: only at the end)", "0"},
      {"eval-segments", "N", "segments per periodic validation (0: all)", "0"},
      {"eval-batch", "N", "evaluation batch columns", "10"},
      {"no-final-eval", "", "skip the final validation and test evaluation", ""},
      {"check-finite", "", "check every op's output and gradient and name the first that is not "
                           "finite (slow: for replaying a diverged run from its checkpoint)", ""},
  };
  specs.insert(specs.end(), more.begin(), more.end());
  return specs;
}

int cmd_train(int argc, char** argv) {
  const std::vector<OptionSpec> specs = train_option_specs();
  Args a("crt train", "Train a CRT, Transformer or Transformer-XL language model.", specs);
  a.parse(argc, argv, 2);
  if (a.help()) {
    std::cout << a.usage();
    return 0;
  }
  apply_threads(a);
  crt::set_check_finite(a.has("check-finite"));
  const crt::data::Corpus corpus = load_data(a, corpus_name(a, nullptr));

  const ModelConfig c = model_config(a, std::int64_t(corpus.vocab.size()));
  const crt::model::TrainOptions o = train_options(a, c, corpus);

  // Every flag is read (and range-checked) before the model is built, used or not.
  const std::int64_t eval_segments = a.integer("eval-segments", 0, kMaxCount);
  check_output_path(a.str("out"));
  check_step_memory(c, o.batch, o.bptt_segments, a.integer("eval-batch", 1, kMaxBatch));
  crt::Model model = crt::Model::create(c, std::uint64_t(a.integer("seed", 0, kMaxCount)));
  std::cerr << "model: " << c.summary() << "\n"
            << "parameters: " << model.parameter_count() << " ("
            << human_count(double(model.parameter_count())) << ")\n"
            << "training: " << o.steps << " steps of " << o.batch << " x " << c.seg_len << " x "
            << o.bptt_segments << " tokens, AdamW lr " << o.lr << ", warm-up " << o.warmup
            << " then cosine, clip " << o.clip << ", " << crt::thread_count() << " threads, "
            << crt::active_isa() << "\n";
  std::unique_ptr<crt::model::Trainer> trainer = model.trainer(corpus.train, o);
  if (a.has("resume")) {
    trainer->load(a.str("resume"));
    std::cerr << "resumed from " << a.str("resume") << " at step " << trainer->steps_done() << "\n";
  }
  MetricsWriter metrics(a.str("metrics"));
  // The corpus name travels with the checkpoint, so eval and generate find the vocabulary.
  trainer->set_metadata({{"data.corpus", corpus_name(a, nullptr)}});

  return run_training(a, model, *trainer, corpus, o, metrics, eval_segments);
}

// ---- eval and generate ------------------------------------------------------------------

// The model of --checkpoint and the corpus it was trained on (--data, else the checkpoint's
// metadata), checked to share one vocabulary.
std::pair<crt::Model, crt::data::Corpus> load_checkpoint_and_corpus(const Args& a) {
  crt::Model model = crt::Model::load(a.str("checkpoint"));
  crt::data::Corpus corpus = load_data(a, corpus_name(a, &model));
  if (model.config().vocab_size != std::int64_t(corpus.vocab.size()))
    throw crt::Error("checkpoint vocabulary " + std::to_string(model.config().vocab_size) +
                     " does not match the corpus (" + std::to_string(corpus.vocab.size()) + ")");
  return {std::move(model), std::move(corpus)};
}

// ---- eval ------------------------------------------------------------------------------

int cmd_eval(int argc, char** argv) {
  std::vector<OptionSpec> specs = data_options();
  specs.push_back({"checkpoint", "PATH", "model checkpoint (required)", ""});
  specs.push_back({"split", "SPLIT", "valid or test", "test"});
  specs.push_back({"batch", "N", "batch columns", "10"});
  specs.push_back({"segments", "N", "stop after N segments (0: the whole split)", "0"});
  Args a("crt eval", "Perplexity of a checkpoint on a split, carrying memory or cache across it.", specs);
  a.parse(argc, argv, 2);
  if (a.help()) {
    std::cout << a.usage();
    return 0;
  }
  if (!a.has("checkpoint")) throw UsageError("--checkpoint is required");
  const std::string split = a.str("split");
  if (split != "valid" && split != "test") throw UsageError("--split must be valid or test, got '" + split + "'");
  apply_threads(a);
  const auto [model, corpus] = load_checkpoint_and_corpus(a);
  const auto r = crt::model::evaluate(model.language_model(), split == "valid" ? corpus.valid : corpus.test,
                                      a.integer("batch", 1, kMaxBatch), a.integer("segments", 0, kMaxCount));
  std::printf("%s perplexity %.2f (loss %.4f, %lld tokens, %.1f s, %.0f tokens/s)\n", split.c_str(),
              r.perplexity, r.nll, (long long)r.tokens, r.seconds, double(r.tokens) / r.seconds);
  return 0;
}

// ---- generate --------------------------------------------------------------------------

int cmd_generate(int argc, char** argv) {
  std::vector<OptionSpec> specs = data_options();
  specs.push_back({"checkpoint", "PATH", "model checkpoint (required)", ""});
  specs.push_back({"prompt", "TEXT", "text to start from (words, or characters for tinyshakespeare)", ""});
  specs.push_back({"tokens", "N", "tokens to generate", "100"});
  specs.push_back({"temperature", "T", "sampling temperature", "1.0"});
  specs.push_back({"top-k", "K", "sample among the K most likely tokens (0: all)", "0"});
  specs.push_back({"seed", "S", "sampling seed", "1"});
  Args a("crt generate",
         "Sample text; the CRT memory carries across segments, so length is unbounded at constant memory.",
         specs);
  a.parse(argc, argv, 2);
  if (a.help()) {
    std::cout << a.usage();
    return 0;
  }
  if (!a.has("checkpoint")) throw UsageError("--checkpoint is required");
  apply_threads(a);
  const auto [model, corpus] = load_checkpoint_and_corpus(a);
  const bool chars = corpus.level == crt::data::TokenLevel::character;
  std::vector<std::int32_t> prompt;
  const std::string text = a.str("prompt");
  if (chars) {
    for (unsigned char ch : text) {
      const auto id = corpus.vocab.find(std::string(1, char(ch)));
      if (!id) throw UsageError("prompt character '" + std::string(1, char(ch)) + "' is not in the vocabulary");
      prompt.push_back(*id);
    }
  } else {
    std::istringstream words(text);
    std::string w;
    while (words >> w) {
      auto id = corpus.vocab.find(w);
      if (!id) id = corpus.vocab.find("<unk>");
      if (!id) throw UsageError("prompt word '" + w + "' is not in the vocabulary");
      prompt.push_back(*id);
    }
  }
  if (prompt.empty()) prompt.push_back(corpus.vocab.id_of(chars ? "\n" : "<eos>"));
  crt::Stream stream = model.open_stream();
  stream.feed(prompt);
  crt::Generator gen(std::uint64_t(a.integer("seed", 0, kMaxCount)));
  const std::int64_t n = a.integer("tokens", 0, kMaxCount);
  if (n < 0) throw UsageError("--tokens must be >= 0");
  std::cout << text;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t t = stream.sample(gen, a.real("temperature", 1e-6, 1e6), int(a.integer("top-k", 0, std::int64_t(1) << 30)));
    const std::string& s = corpus.vocab.word_of(t);
    if (chars) std::cout << s;
    else std::cout << (s == "<eos>" ? std::string("\n") : " " + s);
    std::cout.flush();
  }
  std::cout << "\n";
  std::cerr << "generated " << n << " tokens; stream state " << stream.state_bytes() << " bytes\n";
  return 0;
}

// ---- info ------------------------------------------------------------------------------

int cmd_info(int argc, char** argv) {
  Args a("crt info", "Version, instruction set and threads.", {{"threads", "N", "worker threads (0: all cores)", "0"}});
  a.parse(argc, argv, 2);
  if (a.help()) {
    std::cout << a.usage();
    return 0;
  }
  apply_threads(a);
  std::printf("crt %s\nisa: %s\nthreads: %d\n", crt::version(), crt::active_isa(), crt::thread_count());
  return 0;
}

const char* kUsage =
    "usage: crt <command> [options]\n"
    "commands:\n"
    "  train      train a CRT, Transformer or Transformer-XL language model\n"
    "  eval       perplexity of a checkpoint on a split\n"
    "  generate   sample text from a checkpoint\n"
    "  info       version, instruction set, threads\n"
    "`crt <command> --help` describes each command's options.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << kUsage;
    return 0;
  }
  try {
    if (cmd == "train") return cmd_train(argc, argv);
    if (cmd == "eval") return cmd_eval(argc, argv);
    if (cmd == "generate") return cmd_generate(argc, argv);
    if (cmd == "info") return cmd_info(argc, argv);
    std::cerr << "crt: unknown command '" << cmd << "'\n" << kUsage;
    return 2;
  } catch (const UsageError& e) {
    std::cerr << "crt " << cmd << ": " << e.what() << "\n(see `crt " << cmd << " --help`)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "crt " << cmd << ": error: " << e.what() << "\n";
    return 1;
  }
}
