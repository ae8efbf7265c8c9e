// Incremental decoding (see LanguageModel::decode in model.hpp): the forward of model.cpp
// taken a few tokens at a time. Per segment:
//   begin: each layer's keys and values start from the Transformer-XL cache (or empty); a CRT
//          memory, when the stream has one, is run through the layers as position 0;
//   tokens: embedding, position (table row, or one position-RNN step per token from the last
//          state), then each layer's step over the new tokens only;
//   end (seg_len tokens fed): the memory RNN reads the segment's final-layer outputs from the
//          memory the segment started with, and the XL cache keeps the last mem_len inputs of
//          each layer, as forward() does for a whole segment.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

#include "crt/model.hpp"
#include "engine/autograd.hpp"
#include "engine/error.hpp"

namespace crt::model {

namespace {
constexpr const char* kOp = "LanguageModel::decode";

Tensor append(const Tensor& all, const Tensor& more, int axis) {
  return all.defined() ? concat({all, more}, axis) : more.contiguous();
}
}  // namespace

std::int64_t DecodeState::bytes() const {
  std::int64_t b = stream.bytes();
  auto add = [&](const Tensor& t) {
    if (t.defined()) b += t.numel() * std::int64_t(dtype_size(t.dtype()));
  };
  for (const KvCache& c : kv) b += c.bytes();
  for (const Tensor& t : layer_inputs) add(t);
  add(outputs);
  add(position_h);
  for (const Tensor& t : rel_keys) add(t);
  return b;
}

DecodeState LanguageModel::decode_state(std::int64_t batch) const {
  DecodeState s;
  s.stream = initial_state(batch);
  if (config_.position == PositionEncoding::relative) {
    NoGradGuard no_grad;
    for (const TransformerBlock& b : blocks_) s.rel_keys.push_back(b.attn.relative_keys(position_table_));
  }
  return s;
}

void LanguageModel::begin_decode_segment(DecodeState& s) const {
  const ModelConfig& c = config_;
  const std::int64_t batch = s.stream.batch;
  s.kv.assign(blocks_.size(), KvCache{});
  s.layer_inputs.assign(c.memory == MemoryKind::cache ? blocks_.size() : 0, Tensor());
  s.outputs = Tensor();
  if (c.memory == MemoryKind::cache)
    for (std::size_t l = 0; l < blocks_.size(); ++l)
      if (s.stream.cache[l].defined()) s.kv[l] = blocks_[l].prefix_kv(s.stream.cache[l]);
  if (c.position == PositionEncoding::rnn)
    s.position_h = c.pos_rnn_carry ? s.stream.position_state : Tensor::zeros({batch, c.d_model}, dtype());
  // The memory this segment starts from stays in s.stream.memory until the segment ends.
  if (c.memory == MemoryKind::rnn && s.stream.memory.defined()) {
    // The memory token at position 0: its outputs are not predictions, but every later
    // position of the segment attends to its keys and values in each layer.
    Tensor z = s.stream.memory.unsqueeze(1);
    for (std::size_t l = 0; l < blocks_.size(); ++l) z = blocks_[l].step(z, s.kv[l], Tensor(), &rel_biases_);
  }
}

void LanguageModel::end_decode_segment(DecodeState& s) const {
  const ModelConfig& c = config_;
  const std::int64_t batch = s.stream.batch;
  if (c.memory == MemoryKind::rnn) {
    const Tensor h0 = s.stream.memory.defined() ? s.stream.memory : Tensor::zeros({batch, c.d_model}, dtype());
    const Tensor states = memory_rnn_->sequence(s.outputs, h0);
    s.stream.memory = states.narrow(1, states.size(1) - 1, 1).squeeze(1).contiguous();
  }
  if (c.memory == MemoryKind::cache) {
    for (std::size_t l = 0; l < blocks_.size(); ++l) {
      const Tensor& old = s.stream.cache[l];
      const Tensor all = old.defined() ? concat({old, s.layer_inputs[l]}, 1) : s.layer_inputs[l];
      const std::int64_t keep = std::min<std::int64_t>(c.mem_len, all.size(1));
      s.stream.cache[l] = all.narrow(1, all.size(1) - keep, keep).contiguous();
    }
  }
  if (c.position == PositionEncoding::rnn && c.pos_rnn_carry) s.stream.position_state = s.position_h;
  s.filled = 0;
  s.kv.clear();
  s.layer_inputs.clear();
  s.outputs = Tensor();
  s.position_h = Tensor();
}

Tensor LanguageModel::decode_within_segment(const std::vector<std::int32_t>& ids, std::int64_t batch,
                                            DecodeState& s) const {
  const ModelConfig& c = config_;
  const std::int64_t n = std::int64_t(ids.size()) / batch;
  if (s.filled == 0) begin_decode_segment(s);
  for (std::size_t i = 0; i < ids.size(); ++i)
    require(ids[i] >= 0 && ids[i] < c.vocab_size, kOp, "token id ", ids[i], " at position ", i,
            " is outside the vocabulary [0, ", c.vocab_size, ")");
  const Tensor e = mul_scalar(embedding(embedding_, ids, {batch, n}), std::sqrt(double(c.d_model)));
  Tensor z = e;
  switch (c.position) {
    case PositionEncoding::sinusoidal:
    case PositionEncoding::learned:
      z = add(e, position_table_.narrow(0, s.filled, n));
      break;
    case PositionEncoding::rnn: {
      const Tensor h = position_rnn_->sequence(e, s.position_h);
      s.position_h = h.narrow(1, n - 1, 1).squeeze(1).contiguous();
      z = c.pos_rnn_residual ? add(e, h) : h;
      break;
    }
    case PositionEncoding::relative:
    case PositionEncoding::none:
      break;
  }
  const bool cache = c.memory == MemoryKind::cache;
  for (std::size_t l = 0; l < blocks_.size(); ++l) {
    if (cache) s.layer_inputs[l] = append(s.layer_inputs[l], z, 1);
    z = blocks_[l].step(z, s.kv[l], s.rel_keys.empty() ? Tensor() : s.rel_keys[l], &rel_biases_);
  }
  if (c.memory == MemoryKind::rnn) s.outputs = append(s.outputs, z, 1);
  s.filled += n;
  if (s.filled == c.seg_len) end_decode_segment(s);
  return z;
}

Tensor LanguageModel::decode(const std::vector<std::int32_t>& ids, std::int64_t batch, DecodeState& s) const {
  const ModelConfig& c = config_;
  require(batch >= 1 && !ids.empty() && std::int64_t(ids.size()) % batch == 0, kOp, "got ", ids.size(),
          " token ids for batch ", batch, "; expected batch * n with n >= 1");
  require(s.stream.batch == batch, kOp, "decode state is for batch ", s.stream.batch, " but the tokens have batch ",
          batch);
  NoGradGuard no_grad;
  const std::int64_t n = std::int64_t(ids.size()) / batch;
  std::vector<Tensor> pieces;
  for (std::int64_t begin = 0; begin < n;) {
    const std::int64_t take = std::min(n - begin, c.seg_len - s.filled);
    std::vector<std::int32_t> chunk(std::size_t(batch * take));
    for (std::int64_t b = 0; b < batch; ++b)
      std::copy_n(ids.begin() + long(b * n + begin), take, chunk.begin() + long(b * take));
    pieces.push_back(decode_within_segment(chunk, batch, s));
    begin += take;
  }
  return pieces.size() == 1 ? pieces.front() : concat(pieces, 1);
}

NamedTensors DecodeState::named() const {
  NamedTensors out = stream.named();
  for (std::size_t l = 0; l < kv.size(); ++l) {
    if (kv[l].keys.defined()) out.emplace_back("segment.kv." + std::to_string(l) + ".keys", kv[l].keys);
    if (kv[l].values.defined()) out.emplace_back("segment.kv." + std::to_string(l) + ".values", kv[l].values);
  }
  for (std::size_t l = 0; l < layer_inputs.size(); ++l)
    if (layer_inputs[l].defined()) out.emplace_back("segment.layer_inputs." + std::to_string(l), layer_inputs[l]);
  if (outputs.defined()) out.emplace_back("segment.outputs", outputs);
  if (position_h.defined()) out.emplace_back("segment.position", position_h);
  return out;
}

std::map<std::string, std::string> DecodeState::metadata() const {
  return {{"decode.batch", std::to_string(stream.batch)}, {"decode.filled", std::to_string(filled)}};
}

namespace {

constexpr const char* kRestoreOp = "LanguageModel::restore_decode_state";

std::int64_t meta_count(const std::map<std::string, std::string>& meta, const std::string& key, std::int64_t lo,
                        std::int64_t hi) {
  const auto it = meta.find(key);
  require(it != meta.end(), kRestoreOp, "the stream state lacks its metadata '", key, "'");
  std::int64_t v = 0;
  const std::string& text = it->second;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  require(ec == std::errc() && end == text.data() + text.size() && v >= lo && v <= hi, kRestoreOp, "metadata '", key,
          "' must be an integer in [", lo, ", ", hi, "], got '", text, "'");
  return v;
}

}  // namespace

DecodeState LanguageModel::restore_decode_state(const NamedTensors& tensors,
                                                const std::map<std::string, std::string>& meta) const {
  const ModelConfig& c = config_;
  const auto layers = std::size_t(c.n_layer);
  const std::int64_t batch = meta_count(meta, "decode.batch", 1, std::int64_t(1) << 20);
  DecodeState s = decode_state(batch);
  s.filled = meta_count(meta, "decode.filled", 0, c.seg_len - 1);
  std::map<std::string, Tensor> by_name;
  for (const auto& [name, t] : tensors) {
    require(t.defined() && t.dtype() == dtype(), kRestoreOp, "tensor '", name, "' is ", t.describe(),
            ", expected the model's dtype");
    for (double v : t.to_vector())
      require(std::isfinite(v), kRestoreOp, "tensor '", name, "' has a non-finite value");
    require(by_name.emplace(name, t.contiguous()).second, kRestoreOp, "tensor '", name, "' appears twice");
  }
  // Takes the named tensor out of by_name, checking its shape; undefined when absent.
  auto take = [&](const std::string& name, const Shape& shape) -> Tensor {
    const auto it = by_name.find(name);
    if (it == by_name.end()) return Tensor();
    require(it->second.shape() == shape, kRestoreOp, "tensor '", name, "' has shape ", it->second.shape(),
            ", expected ", shape, " for this model and batch ", batch);
    Tensor t = it->second;
    by_name.erase(it);
    return t;
  };
  auto need = [&](const std::string& name, const Shape& shape) {
    Tensor t = take(name, shape);
    require(t.defined(), kRestoreOp, "the stream state lacks tensor '", name, "'");
    return t;
  };
  const std::int64_t d = c.d_model;
  if (c.memory == MemoryKind::rnn) s.stream.memory = take("state.memory", {batch, d});
  if (c.position == PositionEncoding::rnn && c.pos_rnn_carry) s.stream.position_state = need("state.position", {batch, d});
  if (c.memory == MemoryKind::cache) {
    for (std::size_t l = 0; l < layers; ++l) {
      const std::string name = "state.cache." + std::to_string(l);
      const auto it = by_name.find(name);
      if (it == by_name.end()) continue;
      const std::int64_t len = it->second.dim() == 3 ? it->second.size(1) : -1;
      require(len >= 1 && len <= c.mem_len, kRestoreOp, "tensor '", name, "' has shape ", it->second.shape(),
              ", expected [", batch, ", 1..", c.mem_len, ", ", d, "]");
      s.stream.cache[l] = take(name, {batch, len, d});
    }
  }
  if (s.filled > 0) {
    if (c.memory == MemoryKind::rnn) {
      s.outputs = need("segment.outputs", {batch, s.filled, d});
    }
    if (c.position == PositionEncoding::rnn) s.position_h = need("segment.position", {batch, d});
    if (c.memory == MemoryKind::cache) s.layer_inputs.assign(layers, Tensor());
    s.kv.assign(layers, KvCache{});
    for (std::size_t l = 0; l < layers; ++l) {
      const std::int64_t cached = c.memory == MemoryKind::cache && s.stream.cache[l].defined() ? s.stream.cache[l].size(1) : 0;
      const std::int64_t positions = cached + (s.stream.memory.defined() ? 1 : 0) + s.filled;
      const std::string kv = "segment.kv." + std::to_string(l);
      s.kv[l].keys = need(kv + ".keys", {batch, c.n_head, positions, c.d_head});
      s.kv[l].values = need(kv + ".values", {batch, c.n_head, positions, c.d_head});
      if (c.memory == MemoryKind::cache)
        s.layer_inputs[l] = need("segment.layer_inputs." + std::to_string(l), {batch, s.filled, d});
    }
  }
  require(by_name.empty(), kRestoreOp, "tensor '", by_name.empty() ? std::string() : by_name.begin()->first,
          "' is not part of this model's stream state (filled ", s.filled, ")");
  return s;
}

}  // namespace crt::model
