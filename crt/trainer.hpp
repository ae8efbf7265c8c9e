// Training and evaluation of a LanguageModel on a token stream: AdamW, warm-up + cosine
// schedule, global-norm clipping, truncated BPTT over k segments (CRT's memory keeps its
// graph for k segments, then is detached), checkpoints that resume bit for bit, and
// perplexity evaluation that carries the memory or cache across the whole stream.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "crt/model.hpp"
#include "datasets/batch_stream.hpp"
#include "engine/optim.hpp"
#include "engine/schedule.hpp"

namespace crt::model {

struct TrainOptions {
  std::int64_t steps = 1000;       // optimiser steps in the whole run (sets the cosine length)
  std::int64_t batch = 16;
  // Segments per optimiser step (truncated BPTT depth). CRT's memory keeps its graph across
  // them, so the loss of segment k reaches the k - 1 segments before it through the memory
  // (and, through the replayed memory update, one more); the Transformer's segments are
  // independent, and Transformer-XL's cache is never differentiated. 0: the model's default,
  // default_bptt_segments().
  std::int64_t bptt_segments = 0;
  double lr = 2.5e-4;
  std::int64_t warmup = 0;
  double min_lr = 0.0;
  double weight_decay = 0.0;
  double clip = 0.25;  // global gradient norm; 0 disables
  void validate() const;
  std::map<std::string, std::string> to_metadata() const;
};

struct StepStats {
  std::int64_t step = 0;  // steps completed, this one included
  double loss = 0;        // mean NLL over the step's tokens
  double lr = 0;
  double grad_norm = 0;
  std::int64_t tokens = 0;
  double seconds = 0;
};

// The BPTT depth a model trains with unless told otherwise: 2 for CRT (the paper trains "by
// passing gradients through the memory vector to the previous segments", paper.md 2.6, so at
// least one segment boundary is crossed), 1 for the Transformer and Transformer-XL.
std::int64_t default_bptt_segments(const ModelConfig& config);

class Trainer {
 public:
  Trainer(LanguageModel& model, std::vector<std::int32_t> train_tokens, const TrainOptions& options);

  StepStats step();
  std::int64_t steps_done() const { return optimizer_->step_count(); }
  const TrainOptions& options() const { return options_; }
  LanguageModel& model() { return model_; }

  // Model, optimiser state, stream position and carried state, dropout generator: all that
  // a resumed run needs to continue exactly.
  void save(const std::string& path) const;
  // Refuses a checkpoint of another model configuration or training setup.
  void load(const std::string& path);
  // Extra metadata written into every checkpoint this trainer saves (e.g. the corpus name).
  void set_metadata(std::map<std::string, std::string> metadata) { metadata_ = std::move(metadata); }

 private:
  // The name of the first parameter (or NCGRU U_c) whose gradient holds a NaN or infinity.
  std::string first_nonfinite_gradient() const;

  LanguageModel& model_;
  TrainOptions options_;
  data::BatchStream stream_;
  StreamState state_;
  std::unique_ptr<AdamW> optimizer_;
  WarmupCosineLR schedule_;
  std::vector<Tensor> params_;   // what AdamW updates
  std::vector<Tensor> clipped_;  // what global-norm clipping scales (params_ and NCGRU U_c)
  data::Segment segment_;
  std::map<std::string, std::string> metadata_;
};

struct EvalResult {
  double nll = 0;  // mean negative log-likelihood per token (nats)
  double perplexity = 0;
  std::int64_t tokens = 0;
  double seconds = 0;
};

// Perplexity over `tokens` in `batch` columns, segment by segment, carrying the memory/cache
// across the whole stream (no dropout, no graph). max_segments > 0 stops early.
EvalResult evaluate(const LanguageModel& model, const std::vector<std::int32_t>& tokens,
                    std::int64_t batch, std::int64_t max_segments = 0);

}  // namespace crt::model
