// The public API (see api.hpp).
#include "crt/api.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>

#include "crt/checkpoint.hpp"
#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "engine/parallel.hpp"
#include "engine/safetensors.hpp"
#include "kernels/kernels.hpp"

#ifndef CRT_VERSION
#define CRT_VERSION "unknown"
#endif

namespace crt {

const char* version() { return CRT_VERSION; }
const char* active_isa() { return kernels::active_isa(); }
int thread_count() { return num_threads(); }
void set_thread_count(int n) { set_num_threads(n); }

Model::Model(std::shared_ptr<model::LanguageModel> m, std::map<std::string, std::string> meta)
    : model_(std::move(m)),
      metadata_(std::make_shared<std::map<std::string, std::string>>(std::move(meta))) {}

Model Model::create(const model::ModelConfig& config, std::uint64_t seed) {
  return Model(std::make_shared<model::LanguageModel>(config, seed), {});
}

Model Model::load(const std::string& path) {
  const SafetensorsFile file = model::read_checkpoint(path);
  auto m = std::make_shared<model::LanguageModel>(model::checkpoint_config(file));
  model::load_model_tensors(file, *m);
  return Model(std::move(m), file.metadata);
}

void Model::save(const std::string& path, const std::map<std::string, std::string>& metadata) const {
  model::save_checkpoint(path, *model_, {}, metadata);
}

Stream Model::open_stream() const { return Stream(model_); }

std::unique_ptr<model::Trainer> Model::trainer(std::vector<std::int32_t> tokens,
                                               const model::TrainOptions& options) {
  return std::make_unique<model::Trainer>(*model_, std::move(tokens), options);
}

model::EvalResult Model::evaluate(const std::vector<std::int32_t>& tokens, std::int64_t batch) const {
  return model::evaluate(*model_, tokens, batch);
}

// ---- Stream ----------------------------------------------------------------------------

Stream::Stream(std::shared_ptr<const model::LanguageModel> m)
    : model_(std::move(m)), state_(model_->decode_state(1)) {}

std::vector<float> Stream::feed(std::span<const std::int32_t> tokens) {
  require(!tokens.empty(), "Stream::feed", "no tokens given");
  const std::int64_t vocab = model_->config().vocab_size;
  for (std::size_t i = 0; i < tokens.size(); ++i)
    require(tokens[i] >= 0 && tokens[i] < vocab, "Stream::feed", "token ", tokens[i],
            " at position ", i, " is outside the vocabulary [0, ", vocab, ")");
  NoGradGuard no_grad;
  const Tensor hidden = model_->decode(std::vector<std::int32_t>(tokens.begin(), tokens.end()), 1, state_);
  next_log_probs_ = model_->log_probs(hidden.narrow(1, hidden.size(1) - 1, 1)).to_float_vector();
  seen_ += std::int64_t(tokens.size());
  return next_log_probs_;
}

std::int32_t Stream::sample(Generator& gen, double temperature, int top_k) {
  require(!next_log_probs_.empty(), "Stream::sample", "feed at least one token first");
  require(temperature > 0 && std::isfinite(temperature), "Stream::sample",
          "temperature must be positive, got ", temperature);
  require(top_k >= 0, "Stream::sample", "top_k must be >= 0, got ", top_k);
  const std::vector<float>& lp = next_log_probs_;
  std::vector<std::int32_t> order(lp.size());
  std::iota(order.begin(), order.end(), 0);
  std::size_t keep = lp.size();
  if (top_k > 0 && std::size_t(top_k) < lp.size()) {
    keep = std::size_t(top_k);
    std::partial_sort(order.begin(), order.begin() + long(keep), order.end(),
                      [&](std::int32_t a, std::int32_t b) { return lp[std::size_t(a)] > lp[std::size_t(b)]; });
  }
  double top = -INFINITY;
  for (std::size_t i = 0; i < keep; ++i) top = std::max(top, double(lp[std::size_t(order[i])]));
  std::vector<double> weight(keep);
  double total = 0;
  for (std::size_t i = 0; i < keep; ++i)
    total += weight[i] = std::exp((double(lp[std::size_t(order[i])]) - top) / temperature);
  double u = gen.uniform() * total;
  std::size_t pick = keep - 1;
  for (std::size_t i = 0; i < keep; ++i) {
    if (u < weight[i]) {
      pick = i;
      break;
    }
    u -= weight[i];
  }
  const std::int32_t token = order[pick];
  feed({token});
  return token;
}

std::vector<std::int32_t> Stream::generate(std::size_t count, Generator& gen, double temperature,
                                           int top_k) {
  std::vector<std::int32_t> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) out.push_back(sample(gen, temperature, top_k));
  return out;
}

void Stream::reset() {
  state_ = model_->decode_state(1);
  next_log_probs_.clear();
  seen_ = 0;
}

std::int64_t Stream::state_bytes() const { return state_.bytes(); }

namespace {
constexpr const char* kNextLogProbs = "stream.next_log_probs";
constexpr const char* kSeen = "stream.seen";
}  // namespace

// The tensors and metadata of a stream's state file.
std::pair<model::NamedTensors, std::map<std::string, std::string>> Stream::state_file() const {
  model::NamedTensors tensors = state_.named();
  if (!next_log_probs_.empty())
    tensors.emplace_back(kNextLogProbs, Tensor::from_vector(next_log_probs_, {std::int64_t(next_log_probs_.size())}));
  std::map<std::string, std::string> meta = model_->config().to_metadata();
  for (const auto& [k, v] : state_.metadata()) meta[k] = v;
  meta[kSeen] = std::to_string(seen_);
  return {std::move(tensors), std::move(meta)};
}

std::string Stream::save_state_bytes() const {
  const auto [tensors, meta] = state_file();
  return safetensors_bytes(tensors, meta);
}

void Stream::save_state(const std::string& path) const {
  const auto [tensors, meta] = state_file();
  save_safetensors(path, tensors, meta);
}

namespace {
// Restores a stream from a parsed state file: the configuration must be this model's.
void restore_stream(const model::LanguageModel& m, const SafetensorsFile& file, model::DecodeState& state,
                    std::vector<float>& next_log_probs, std::int64_t& seen) {
  const char* op = "Stream::restore_state";
  for (const auto& [key, value] : m.config().to_metadata()) {
    const auto it = file.metadata.find(key);
    require(it != file.metadata.end() && it->second == value, op, "'", file.path, "' is the state of another model: ",
            key, " is ", it == file.metadata.end() ? std::string("absent") : "'" + it->second + "'",
            ", this model has '", value, "'");
  }
  const auto seen_it = file.metadata.find(kSeen);
  require(seen_it != file.metadata.end(), op, "'", file.path, "' lacks the metadata '", kSeen, "'");
  std::int64_t tokens = -1;
  const auto [end, ec] = std::from_chars(seen_it->second.data(), seen_it->second.data() + seen_it->second.size(), tokens);
  require(ec == std::errc() && end == seen_it->second.data() + seen_it->second.size() && tokens >= 0, op, "'",
          file.path, "': metadata '", kSeen, "' is not a token count: '", seen_it->second, "'");
  model::NamedTensors tensors;
  std::vector<float> lp;
  for (const auto& [name, t] : file.tensors) {
    if (name == kNextLogProbs) {
      require(t.dim() == 1 && t.size(0) == m.config().vocab_size && t.dtype() == DType::f32, op, "'", file.path,
              "': tensor '", name, "' is ", t.describe(), ", expected f32[", m.config().vocab_size, "]");
      lp = t.to_float_vector();
    } else {
      tensors.emplace_back(name, t);
    }
  }
  require(lp.empty() == (tokens == 0), op, "'", file.path, "': a stream that has read ", tokens,
          " tokens must ", tokens == 0 ? "not " : "", "hold the prediction '", kNextLogProbs, "'");
  model::DecodeState restored = m.restore_decode_state(tensors, file.metadata);
  require(restored.stream.batch == 1, op, "'", file.path, "' is the state of a batch of ", restored.stream.batch,
          " streams, not of one");
  state = std::move(restored);
  next_log_probs = std::move(lp);
  seen = tokens;
}
}  // namespace

void Stream::restore_state_bytes(std::string_view bytes) {
  restore_stream(*model_, parse_safetensors_bytes(bytes, "stream state"), state_, next_log_probs_, seen_);
}

void Stream::load_state(const std::string& path) {
  restore_stream(*model_, load_safetensors(path), state_, next_log_probs_, seen_);
}

}  // namespace crt
