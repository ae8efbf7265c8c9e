// The segment-level language model (see model.hpp). Forward pass per segment, following
// paper.md §2.5 for CRT:
//   E = dropout(Embed(x) * sqrt(d));  H = PosRNN(E, h0 = 0)      (or E + positions)
//   Z = Layers([m_prev ; H]);  Y = Z[1..n];  m_next = MemRNN(Y_1..Y_n, h0 = m_prev)
#include "crt/model.hpp"

#include <cmath>
#include <unordered_set>

#include "crt/ncgru.hpp"
#include "engine/autograd.hpp"
#include "engine/error.hpp"

namespace crt::model {

namespace {
constexpr const char* kOp = "LanguageModel";
}

std::unique_ptr<RecurrentCell> make_cell(const ModelConfig& c, Generator& gen) {
  if (c.rnn_cell == RnnCell::gru) return std::make_unique<GruCell>(c.d_model, c.d_model, gen);
  return std::make_unique<NcgruCell>(c.d_model, c.d_model, c.ncgru_negative_entries,
                                     int(c.ncgru_neumann_order), c.ncgru_exact_every, gen);
}

void StreamState::detach() {
  if (memory.defined()) memory = memory.detach();
  if (memory_inputs.defined()) memory_inputs = memory_inputs.detach();
  if (memory_before.defined()) memory_before = memory_before.detach();
  if (position_state.defined()) position_state = position_state.detach();
  for (Tensor& t : cache)
    if (t.defined()) t = t.detach();
}

NamedTensors StreamState::named() const {
  NamedTensors out;
  if (memory.defined()) out.emplace_back("state.memory", memory);
  if (memory_inputs.defined()) out.emplace_back("state.memory_inputs", memory_inputs);
  if (memory_before.defined()) out.emplace_back("state.memory_before", memory_before);
  if (position_state.defined()) out.emplace_back("state.position", position_state);
  for (std::size_t i = 0; i < cache.size(); ++i)
    if (cache[i].defined()) out.emplace_back("state.cache." + std::to_string(i), cache[i]);
  return out;
}

std::int64_t StreamState::bytes() const {
  std::int64_t b = 0;
  for (const auto& [name, t] : named()) b += t.numel() * std::int64_t(dtype_size(t.dtype()));
  return b;
}

LanguageModel::LanguageModel(const ModelConfig& config, std::uint64_t seed, DType dtype)
    : config_(config), dropout_gen_(seed ^ 0x5DEECE66Dull) {
  config_.validate();
  const ModelConfig& c = config_;
  Generator gen(seed);
  const bool relative = c.position == PositionEncoding::relative;
  embedding_ = param_normal({c.vocab_size, c.d_model}, c.init_std, gen);
  parameters_.emplace_back("embedding.weight", embedding_);
  if (c.position == PositionEncoding::learned) {
    position_table_ = param_normal({c.seg_len, c.d_model}, c.init_std, gen);
    parameters_.emplace_back("position.weight", position_table_);
  } else if (c.position == PositionEncoding::sinusoidal) {
    position_table_ = sinusoid_table(c.seg_len, c.d_model);
  }
  if (relative) {
    // Sinusoids by relative distance, for up to mem_len cached plus seg_len new positions.
    position_table_ = sinusoid_table(c.mem_len + c.seg_len, c.d_model);
    rel_biases_.r_w_bias = param_normal({c.n_head, c.d_head}, c.init_std, gen);
    rel_biases_.r_r_bias = param_normal({c.n_head, c.d_head}, c.init_std, gen);
    parameters_.emplace_back("r_w_bias", rel_biases_.r_w_bias);
    parameters_.emplace_back("r_r_bias", rel_biases_.r_r_bias);
  }
  if (c.position == PositionEncoding::rnn) {
    position_rnn_ = make_cell(c, gen);
    position_rnn_->collect("position_rnn", parameters_);
  }
  blocks_.reserve(std::size_t(c.n_layer));
  for (std::int64_t l = 0; l < c.n_layer; ++l) {
    blocks_.emplace_back(c.d_model, c.n_head, c.d_head, c.d_inner, relative, c.pre_ln, c.init_std, gen);
    blocks_.back().collect("layers." + std::to_string(l), parameters_);
  }
  if (c.memory == MemoryKind::rnn) {
    memory_rnn_ = make_cell(c, gen);
    memory_rnn_->collect("memory_rnn", parameters_);
  }
  const Tensor out_weight = c.tie_embeddings ? embedding_ : param_normal({c.vocab_size, c.d_model}, c.init_std, gen);
  output_ = OutputLayer(out_weight, c.adaptive_cutoffs);
  output_.collect("output", parameters_, !c.tie_embeddings);
  if (dtype != DType::f32) {
    // Re-type every tensor the model owns in place, so that all handles to it follow.
    auto convert = [dtype](const Tensor& t) {
      if (!t.defined() || t.dtype() == dtype) return;
      const Tensor c2 = t.to(dtype);
      TensorImpl& impl = t.impl();
      impl.storage = c2.impl().storage;
      impl.offset = 0;
      impl.strides = c2.strides();
      impl.dtype = dtype;
    };
    for (const auto& [name, t] : parameters_) convert(t);
    for (const auto& [name, t] : buffers()) convert(t);
    convert(position_table_);
  }
}

StreamState LanguageModel::initial_state(std::int64_t batch) const {
  require(batch >= 1, kOp, "batch must be >= 1, got ", batch);
  StreamState s;
  s.batch = batch;
  // CRT's memory stays undefined until a segment has made one: the first segment carries no
  // memory token (see forward).
  if (config_.position == PositionEncoding::rnn && config_.pos_rnn_carry)
    s.position_state = Tensor::zeros({batch, config_.d_model}, dtype());
  if (config_.memory == MemoryKind::cache) s.cache.resize(std::size_t(config_.n_layer));
  return s;
}

Tensor LanguageModel::embed(const std::vector<std::int32_t>& ids, std::int64_t batch,
                            std::int64_t t, StreamState& state, const ForwardContext& ctx) const {
  const ModelConfig& c = config_;
  for (std::size_t i = 0; i < ids.size(); ++i)
    require(ids[i] >= 0 && ids[i] < c.vocab_size, kOp, "token id ", ids[i], " at position ", i,
            " is outside the vocabulary [0, ", c.vocab_size, ")");
  Tensor e = mul_scalar(embedding(embedding_, ids, {batch, t}), std::sqrt(double(c.d_model)));
  e = apply_dropout(e, c.emb_dropout, ctx);
  switch (c.position) {
    case PositionEncoding::sinusoidal:
    case PositionEncoding::learned:
      require(t <= position_table_.size(0), kOp, "segment of ", t,
              " tokens exceeds the absolute position table (seg_len ", c.seg_len, ")");
      return add(e, position_table_.narrow(0, 0, t));
    case PositionEncoding::rnn: {
      const Tensor h0 = c.pos_rnn_carry ? state.position_state : Tensor::zeros({batch, c.d_model}, dtype());
      const Tensor h = position_rnn_->sequence(e, h0);
      if (c.pos_rnn_carry) state.position_state = h.narrow(1, t - 1, 1).squeeze(1);
      return c.pos_rnn_residual ? add(e, h) : h;
    }
    case PositionEncoding::relative:
    case PositionEncoding::none:
      return e;
  }
  return e;
}

Tensor LanguageModel::forward(const std::vector<std::int32_t>& ids, std::int64_t batch,
                              StreamState& state, const ForwardContext& ctx) const {
  const ModelConfig& c = config_;
  require(batch >= 1 && !ids.empty() && std::int64_t(ids.size()) % batch == 0, kOp, "got ",
          ids.size(), " token ids for batch ", batch, "; expected batch * T with T >= 1");
  require(state.batch == batch, kOp, "stream state is for batch ", state.batch,
          " but the segment has batch ", batch);
  const std::int64_t t = std::int64_t(ids.size()) / batch;
  Tensor z = embed(ids, batch, t, state, ctx);
  const bool rnn_memory = c.memory == MemoryKind::rnn;
  Tensor memory_in = state.memory;
  if (rnn_memory && grad_enabled() && memory_in.defined() && !memory_in.requires_grad() &&
      state.memory_inputs.defined()) {
    // The memory arrives cut from the graph (truncated BPTT). Replaying the update that made
    // it, from its detached inputs, gives the memory RNN a gradient from this segment's loss
    // (one memory update back, no further). The replay runs with the weights of this step,
    // which the last optimiser step changed, so its value differs from the memory the stream
    // carried: the forward value stays the carried memory, and only the gradient path goes
    // through the replay (replay - replay.detach() is exactly zero and has the replay's
    // gradient).
    const Tensor states = memory_rnn_->sequence(state.memory_inputs, state.memory_before);
    const Tensor replay = states.narrow(1, states.size(1) - 1, 1).squeeze(1);
    memory_in = add(memory_in, sub(replay, replay.detach()));
  }
  // The memory token at position 0. A stream's first segment has no memory yet and runs
  // without one: a zero token there would reach every post-LN LayerNorm with zero variance,
  // which scales its gradient by 1 / sqrt(eps) per layer (first-step gradient norms in the
  // thousands, against about 1 for the other models).
  const bool memory_token = rnn_memory && memory_in.defined();
  if (memory_token) z = concat({memory_in.unsqueeze(1), z}, 1);

  const bool cache = c.memory == MemoryKind::cache;
  Tensor pos_emb;
  if (c.position == PositionEncoding::relative) {
    const std::int64_t prefix = cache && state.cache[0].defined() ? state.cache[0].size(1) : 0;
    const std::int64_t k = prefix + t;
    const Tensor table = k <= position_table_.size(0) ? position_table_.narrow(0, 0, k)
                                                      : sinusoid_table(k, c.d_model, dtype());
    pos_emb = apply_dropout(table, c.dropout, ctx);
  }
  std::vector<Tensor> layer_inputs;
  for (std::size_t l = 0; l < blocks_.size(); ++l) {
    const Tensor prefix = cache ? state.cache[l] : Tensor();
    if (cache) layer_inputs.push_back(z);
    z = blocks_[l](z, prefix, pos_emb, &rel_biases_, c.dropout, c.dropatt, ctx);
  }
  if (cache) {
    // New cache: the last mem_len hidden states entering each layer (TXL _update_mems),
    // always cut from the graph.
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      const Tensor x = layer_inputs[l].detach();
      const Tensor all = state.cache[l].defined() ? concat({state.cache[l], x}, 1) : x;
      const std::int64_t keep = std::min<std::int64_t>(c.mem_len, all.size(1));
      state.cache[l] = all.narrow(1, all.size(1) - keep, keep).contiguous();
    }
  }
  Tensor y = memory_token ? z.narrow(1, 1, t) : z;
  if (rnn_memory) {
    // The memory RNN reads the segment's final-layer outputs token by token, starting from
    // the previous memory (zeros on the first segment); its last state is the next memory
    // (kept in the graph for BPTT).
    const Tensor h0 = memory_token ? memory_in : Tensor::zeros({batch, c.d_model}, dtype());
    const Tensor states = memory_rnn_->sequence(y, h0);
    state.memory = states.narrow(1, t - 1, 1).squeeze(1);
    if (grad_enabled()) {
      state.memory_inputs = y.detach();
      state.memory_before = h0.detach();
    } else {
      state.memory_inputs = Tensor();
      state.memory_before = Tensor();
    }
  }
  return apply_dropout(y, c.dropout, ctx);
}

Tensor LanguageModel::loss(const Tensor& hidden, const std::vector<std::int32_t>& targets) const {
  return output_.loss(hidden.reshape({-1, config_.d_model}), targets);
}

Tensor LanguageModel::log_probs(const Tensor& hidden) const {
  const Tensor lp = output_.log_probs(hidden.reshape({-1, config_.d_model}));
  return lp.reshape({hidden.size(0), hidden.size(1), config_.vocab_size});
}

NamedTensors LanguageModel::buffers() const {
  NamedTensors out;
  if (position_rnn_) position_rnn_->collect_buffers("position_rnn", out);
  if (memory_rnn_) memory_rnn_->collect_buffers("memory_rnn", out);
  return out;
}

std::vector<Tensor> LanguageModel::gradient_tensors() const {
  std::vector<Tensor> out;
  for (const auto& [name, t] : parameters_) out.push_back(t);
  for (const auto& [name, t] : buffers())
    if (t.requires_grad()) out.push_back(t);
  return out;
}

std::int64_t LanguageModel::parameter_count() const {
  std::int64_t n = 0;
  for (const Tensor& t : gradient_tensors()) n += t.numel();
  return n;
}

void LanguageModel::before_step() {
  if (position_rnn_) position_rnn_->before_step();
  if (memory_rnn_) memory_rnn_->before_step();
}

void LanguageModel::after_step(double lr) {
  if (position_rnn_) position_rnn_->after_step(lr);
  if (memory_rnn_) memory_rnn_->after_step(lr);
}

double LanguageModel::orthogonality_error() const {
  double e = 0;
  for (const RecurrentCell* cell : {position_rnn_.get(), memory_rnn_.get()})
    if (const auto* nc = dynamic_cast<const NcgruCell*>(cell)) e = std::max(e, nc->orthogonality_error());
  return e;
}

}  // namespace crt::model
