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
#include <cmath>

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
  s.memory_in = c.memory == MemoryKind::rnn ? s.stream.memory : Tensor();
  if (s.memory_in.defined()) {
    // The memory token at position 0: its outputs are not predictions, but every later
    // position of the segment attends to its keys and values in each layer.
    Tensor z = s.memory_in.unsqueeze(1);
    for (std::size_t l = 0; l < blocks_.size(); ++l) z = blocks_[l].step(z, s.kv[l], Tensor(), &rel_biases_);
  }
}

void LanguageModel::end_decode_segment(DecodeState& s) const {
  const ModelConfig& c = config_;
  const std::int64_t batch = s.stream.batch;
  if (c.memory == MemoryKind::rnn) {
    const Tensor h0 = s.memory_in.defined() ? s.memory_in : Tensor::zeros({batch, c.d_model}, dtype());
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
  s.memory_in = Tensor();
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

}  // namespace crt::model
