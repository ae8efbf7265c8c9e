// Training loop, checkpoints and evaluation (see trainer.hpp).
#include "crt/trainer.hpp"

#include <chrono>
#include <limits>
#include <set>
#include <cmath>
#include <sstream>

#include "crt/checkpoint.hpp"
#include "engine/autograd.hpp"
#include "engine/error.hpp"

namespace crt::model {

namespace {

constexpr const char* kOp = "Trainer";

std::string format_double(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

std::uint64_t parse_u64(const std::map<std::string, std::string>& meta, const std::string& key,
                        const std::string& path) {
  auto it = meta.find(key);
  require(it != meta.end(), kOp, "'", path, "' lacks training metadata '", key,
          "' (a model-only checkpoint cannot resume training)");
  try {
    std::size_t used = 0;
    const unsigned long long v = std::stoull(it->second, &used);
    require(used == it->second.size(), kOp, "'", path, "': metadata '", key, "' = '", it->second,
            "' is not an unsigned integer");
    return std::uint64_t(v);
  } catch (const std::logic_error&) {
    throw Error(format_error(kOp, "'", path, "': metadata '", key, "' = '", it->second,
                             "' is not an unsigned integer"));
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void TrainOptions::validate() const {
  require(steps >= 1, kOp, "steps must be >= 1, got ", steps);
  require(batch >= 1, kOp, "batch must be >= 1, got ", batch);
  require(bptt_segments >= 0, kOp, "bptt_segments must be >= 1 (or 0 for the model's default), got ",
          bptt_segments);
  require(std::isfinite(lr) && lr > 0, kOp, "lr must be positive, got ", lr);
  require(warmup >= 0 && warmup <= steps, kOp, "warmup must be in [0, steps], got ", warmup);
  require(min_lr >= 0 && min_lr <= lr, kOp, "min_lr must be in [0, lr], got ", min_lr);
  require(weight_decay >= 0 && weight_decay <= 1, kOp, "weight_decay must be in [0, 1], got ", weight_decay);
  require(std::isfinite(clip) && clip >= 0, kOp, "clip must be finite and >= 0 (0 disables), got ", clip);
}

std::map<std::string, std::string> TrainOptions::to_metadata() const {
  return {{"train.steps", std::to_string(steps)},
          {"train.batch", std::to_string(batch)},
          {"train.bptt_segments", std::to_string(bptt_segments)},
          {"train.lr", format_double(lr)},
          {"train.warmup", std::to_string(warmup)},
          {"train.min_lr", format_double(min_lr)},
          {"train.weight_decay", format_double(weight_decay)},
          {"train.clip", format_double(clip)}};
}

std::int64_t default_bptt_segments(const ModelConfig& config) {
  return config.memory == MemoryKind::rnn ? 2 : 1;
}

namespace {
TrainOptions resolved(const TrainOptions& options, const ModelConfig& config) {
  options.validate();
  TrainOptions o = options;
  if (o.bptt_segments == 0) o.bptt_segments = default_bptt_segments(config);
  return o;
}
}  // namespace

Trainer::Trainer(LanguageModel& model, std::vector<std::int32_t> train_tokens,
                 const TrainOptions& options)
    : model_(model),
      options_(resolved(options, model.config())),
      stream_(std::move(train_tokens), int(options.batch)),
      state_(model.initial_state(options.batch)),
      schedule_(options.lr, options.warmup, options.steps, options.min_lr) {
  for (const auto& [name, t] : model_.parameters()) params_.push_back(t);
  clipped_ = model_.gradient_tensors();
  AdamOptions adam;
  adam.lr = options.lr;
  adam.weight_decay = options.weight_decay;
  optimizer_ = std::make_unique<AdamW>(params_, adam);
}

StepStats Trainer::step() {
  const auto t0 = std::chrono::steady_clock::now();
  const ModelConfig& cfg = model_.config();
  ForwardContext ctx{true, &model_.dropout_generator()};
  optimizer_->zero_grad();
  model_.before_step();
  Tensor total;
  std::int64_t tokens = 0;
  for (std::int64_t s = 0; s < options_.bptt_segments; ++s) {
    if (stream_.done()) {  // epoch boundary: start the stream and its memory afresh
      stream_.reset();
      state_ = model_.initial_state(options_.batch);
    }
    stream_.next_into(int(cfg.seg_len), segment_);
    const Tensor hidden = model_.forward(segment_.inputs, options_.batch, state_, ctx);
    const std::int64_t n = std::int64_t(segment_.targets.size());
    const Tensor seg_loss = mul_scalar(model_.loss(hidden, segment_.targets), double(n));
    total = total.defined() ? add(total, seg_loss) : seg_loss;
    tokens += n;
  }
  const Tensor loss = mul_scalar(total, 1.0 / double(tokens));
  loss.backward();
  state_.detach();  // truncated BPTT: nothing flows back past this step's segments
  StepStats stats;
  stats.loss = loss.item();
  require(std::isfinite(stats.loss), kOp, "loss is ", stats.loss, " at step ",
          optimizer_->step_count() + 1, "; stopping before the parameters are changed (with finite-value checking on, "
          "crt train --check-finite, the op that first produced a non-finite value is named)");
  // The global norm is computed (and checked finite) even when clipping is off.
  try {
    stats.grad_norm = clip_grad_norm(clipped_, options_.clip > 0 ? options_.clip
                                                                  : std::numeric_limits<double>::max());
  } catch (const Error&) {
    throw Error(format_error(kOp, "a gradient is non-finite at step ", optimizer_->step_count() + 1,
                             " (loss ", stats.loss, "): first in '", first_nonfinite_gradient(),
                             "'; stopping before the parameters are changed"));
  }
  stats.lr = schedule_.lr_at(optimizer_->step_count());
  optimizer_->set_lr(stats.lr);
  optimizer_->step();
  model_.after_step(stats.lr);
  stats.step = optimizer_->step_count();
  stats.tokens = tokens;
  stats.seconds = seconds_since(t0);
  return stats;
}

std::string Trainer::first_nonfinite_gradient() const {
  for (const auto& [name, t] : model_.parameters())
    if (t.grad().defined())
      for (double v : t.grad().to_vector())
        if (!std::isfinite(v)) return name;
  for (const auto& [name, t] : model_.buffers())
    if (t.requires_grad() && t.grad().defined())
      for (double v : t.grad().to_vector())
        if (!std::isfinite(v)) return name;
  return "(none found)";
}

void Trainer::save(const std::string& path) const {
  NamedTensors extra;
  for (const auto& [name, t] : optimizer_->state()) extra.emplace_back("optim." + name, t);
  for (const auto& [name, t] : state_.named()) extra.emplace_back(name, t);
  std::map<std::string, std::string> meta = options_.to_metadata();
  for (const auto& [k, v] : metadata_) meta[k] = v;
  meta["trainer.step"] = std::to_string(optimizer_->step_count());
  meta["trainer.stream_position"] = std::to_string(stream_.position());
  meta["trainer.dropout_seed"] = std::to_string(model_.dropout_generator().seed());
  meta["trainer.dropout_counter"] = std::to_string(model_.dropout_generator().counter());
  save_checkpoint(path, model_, extra, meta);
}

void Trainer::load(const std::string& path) {
  const SafetensorsFile file = read_checkpoint(path);
  // The training setup must match too: a different batch or schedule would not "continue".
  for (const auto& [key, value] : options_.to_metadata()) {
    auto it = file.metadata.find(key);
    require(it != file.metadata.end(), kOp, "'", path, "' lacks training metadata '", key,
            "' (a model-only checkpoint cannot resume training)");
    require(it->second == value, kOp, "'", path, "' was trained with ", key, " = ", it->second,
            " but this run has ", value);
  }
  const std::uint64_t position = parse_u64(file.metadata, "trainer.stream_position", path);
  const std::uint64_t seed = parse_u64(file.metadata, "trainer.dropout_seed", path);
  const std::uint64_t counter = parse_u64(file.metadata, "trainer.dropout_counter", path);
  require(position < stream_.column_length(), kOp, "'", path, "': stream position ", position,
          " is beyond this training stream (column length ", stream_.column_length(), ")");
  OptimizerState optim;
  for (const auto& [name, t] : file.tensors)
    if (name.rfind("optim.", 0) == 0) optim.emplace_back(name.substr(6), t);
  StreamState state = model_.initial_state(options_.batch);
  for (auto& [name, t] : state.named()) {
    require(file.contains(name), kOp, "'", path, "' lacks stream state '", name, "'");
    assign_tensor(t, file.get(name), name, path);
  }
  // Optional parts: the CRT memory (none before the first segment) and the update to replay,
  // and the XL cache (empty at first).
  if (file.contains("state.memory")) {
    state.memory = Tensor::zeros({options_.batch, model_.config().d_model}, model_.dtype());
    assign_tensor(state.memory, file.get("state.memory"), "state.memory", path);
  }
  std::set<std::string> known = {"state.memory", "state.memory_inputs", "state.memory_before", "state.position"};
  for (std::size_t l = 0; l < state.cache.size(); ++l) known.insert("state.cache." + std::to_string(l));
  for (const auto& [name, t] : file.tensors)
    require(name.rfind("state.", 0) != 0 || known.count(name), kOp, "'", path, "' has stream state '",
            name, "' that this model does not have (", model_.config().n_layer, " layers, memory ",
            to_string(model_.config().memory), ")");
  auto optional_state = [&](const std::string& name, Tensor& dst) {
    if (!file.contains(name)) return;
    const Tensor& src = file.get(name);
    require(src.dim() >= 1 && src.size(0) == options_.batch && src.dtype() == model_.dtype(), kOp, "'",
            path, "': stream state '", name, "' has shape ", src.shape(), " and dtype ",
            dtype_name(src.dtype()), "; this run needs batch ", options_.batch, " in ",
            dtype_name(model_.dtype()));
    require_finite(src, name, path);
    dst = src.contiguous();
  };
  optional_state("state.memory_inputs", state.memory_inputs);
  optional_state("state.memory_before", state.memory_before);
  for (std::size_t l = 0; l < state.cache.size(); ++l)
    optional_state("state.cache." + std::to_string(l), state.cache[l]);
  const std::uint64_t step = parse_u64(file.metadata, "trainer.step", path);
  for (const auto& [name, t] : optim)
    if (name == "step")
      require(t.numel() == 1 && t.to_vector()[0] == double(step), kOp, "'", path,
              "': its optimiser state 'optim.step' disagrees with its metadata 'trainer.step' = ", step,
              " (the file was edited or mixed from two checkpoints)");
  load_model_tensors(file, model_);  // checks the configuration before touching anything
  optimizer_->load_state(optim);
  stream_.seek(position);
  state_ = std::move(state);
  model_.dropout_generator().set_state(seed, counter);
}

EvalResult evaluate(const LanguageModel& model, const std::vector<std::int32_t>& tokens,
                    std::int64_t batch, std::int64_t max_segments) {
  const auto t0 = std::chrono::steady_clock::now();
  NoGradGuard no_grad;
  data::BatchStream stream(tokens, int(batch));
  StreamState state = model.initial_state(batch);
  const ForwardContext ctx{false, nullptr};
  double nll_sum = 0;
  std::int64_t count = 0, segments = 0;
  data::Segment seg;
  while (!stream.done() && (max_segments <= 0 || segments < max_segments)) {
    stream.next_into(int(model.config().seg_len), seg);
    const Tensor hidden = model.forward(seg.inputs, batch, state, ctx);
    const auto n = std::int64_t(seg.targets.size());
    nll_sum += model.loss(hidden, seg.targets).item() * double(n);
    count += n;
    ++segments;
  }
  EvalResult r;
  r.tokens = count;
  r.nll = count ? nll_sum / double(count) : 0.0;
  r.perplexity = std::exp(r.nll);
  r.seconds = seconds_since(t0);
  return r;
}

}  // namespace crt::model
