// The public C++ API for embedding crt: build or load a model, open any number of independent
// streams (each holding its own CRT memory or Transformer-XL cache), feed tokens, read
// log-probabilities or sample, and train. The `crt` command-line tool is written on this API.
//
//   crt::Model model = crt::Model::load("ptb-crt.safetensors");
//   crt::Stream stream = model.open_stream();
//   std::vector<float> next = stream.feed({12, 7, 431});   // log p(next token)
//   crt::Generator gen(1);
//   std::vector<std::int32_t> text = stream.generate(100, gen, /*temperature=*/0.8);
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crt/config.hpp"
#include "crt/model.hpp"
#include "crt/trainer.hpp"
#include "engine/random.hpp"

namespace crt {

const char* version();
// The ISA the float kernels run on ("avx2+fma", ...) and the worker thread count.
const char* active_isa();
int thread_count();
void set_thread_count(int n);  // 0: the machine's default

class Stream;

class Model {
 public:
  // A freshly initialised model (seeded).
  static Model create(const model::ModelConfig& config, std::uint64_t seed = 1111);
  // A model from a checkpoint written by save() or by training (configuration from its
  // metadata). Throws crt::Error naming the file for a missing, truncated or foreign file.
  static Model load(const std::string& path);
  // Writes the model (atomically) to a safetensors file; `metadata` entries are stored too.
  void save(const std::string& path, const std::map<std::string, std::string>& metadata = {}) const;
  // Metadata of the checkpoint this model was loaded from (empty for a created model).
  const std::map<std::string, std::string>& metadata() const { return *metadata_; }

  const model::ModelConfig& config() const { return model_->config(); }
  std::int64_t parameter_count() const { return model_->parameter_count(); }
  // A new, independent stream (batch 1) starting with empty memory.
  Stream open_stream() const;
  // Trains on a token stream; `on_step` (optional) sees every step's statistics and may
  // return false to stop early. Returns the trainer for evaluation or checkpointing.
  std::unique_ptr<model::Trainer> trainer(std::vector<std::int32_t> tokens,
                                          const model::TrainOptions& options);
  // Perplexity over a token stream (memory/cache carried across it).
  model::EvalResult evaluate(const std::vector<std::int32_t>& tokens, std::int64_t batch = 10) const;

  model::LanguageModel& language_model() { return *model_; }
  const model::LanguageModel& language_model() const { return *model_; }

 private:
  Model(std::shared_ptr<model::LanguageModel> m, std::map<std::string, std::string> meta);
  std::shared_ptr<model::LanguageModel> model_;
  std::shared_ptr<std::map<std::string, std::string>> metadata_;
};

// One sequence being read or written. Tokens are grouped into segments of seg_len; when a
// segment completes, the memory (CRT) or cache (Transformer-XL) advances, so a stream can run
// forever at constant memory. A Transformer without memory sees only the current segment.
// Decoding is incremental: a token costs its own projections and attention over the keys of
// its segment (and cache), not a forward over the whole pending segment.
class Stream {
 public:
  // Feeds tokens and returns the log-probabilities [V] of the token that follows them.
  std::vector<float> feed(std::span<const std::int32_t> tokens);
  std::vector<float> feed(std::initializer_list<std::int32_t> tokens) {
    return feed(std::span<const std::int32_t>(tokens.begin(), tokens.size()));
  }
  // Draws the next token from the current prediction (temperature > 0; top_k 0 = all) and
  // feeds it. The stream must have been fed at least one token.
  std::int32_t sample(Generator& gen, double temperature = 1.0, int top_k = 0);
  std::vector<std::int32_t> generate(std::size_t count, Generator& gen, double temperature = 1.0,
                                     int top_k = 0);
  void reset();
  std::int64_t tokens_seen() const { return seen_; }
  // The stream's whole state (carried memory or cache, the current segment's keys and values,
  // the pending prediction, the token count) as safetensors bytes or a file, written
  // atomically; restoring it into a stream of the same model continues exactly where it was
  // saved. A state of another model or a damaged one is refused naming the field or tensor.
  std::string save_state_bytes() const;
  void restore_state_bytes(std::string_view bytes);
  void save_state(const std::string& path) const;
  void load_state(const std::string& path);
  // Bytes of state: what is carried between segments (memory vector or cache) plus the current
  // segment's keys, values and outputs (at most seg_len positions).
  std::int64_t state_bytes() const;

 private:
  friend class Model;
  explicit Stream(std::shared_ptr<const model::LanguageModel> m);
  std::pair<model::NamedTensors, std::map<std::string, std::string>> state_file() const;
  std::shared_ptr<const model::LanguageModel> model_;
  model::DecodeState state_;
  std::vector<float> next_log_probs_;
  std::int64_t seen_ = 0;
};

}  // namespace crt
