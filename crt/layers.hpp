// Building blocks of the language models: linear, layer norm, feed-forward, multi-head
// self-attention (standard, with an optional prefix of extra keys, or Transformer-XL
// relative), the Transformer block (post-LN as in Transformer-XL, pre-LN as an option), and
// recurrent cells (GRU and NCGRU) behind one interface. Plain structs that own parameters.
#pragma once

#include <memory>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/ops.hpp"
#include "engine/random.hpp"
#include "engine/tensor.hpp"

namespace crt::model {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Training-time context threaded through forward passes.
struct ForwardContext {
  bool training = false;
  Generator* dropout_gen = nullptr;  // required when training with dropout > 0
};

Tensor apply_dropout(const Tensor& x, double p, const ForwardContext& ctx);

// New trainable parameter: normal(0, std) or zeros/ones/uniform.
Tensor param_normal(const Shape& shape, double std, Generator& gen);
Tensor param_uniform(const Shape& shape, double bound, Generator& gen);
Tensor param_constant(const Shape& shape, double value);

struct Linear {
  Tensor weight;  // [out, in]
  Tensor bias;    // [out] or undefined
  Linear() = default;
  Linear(std::int64_t in, std::int64_t out, bool with_bias, double std, Generator& gen);
  Tensor operator()(const Tensor& x) const { return linear(x, weight, bias); }  // [..., in] -> [..., out]
  void collect(const std::string& prefix, NamedTensors& out) const;
};

struct LayerNorm {
  Tensor gamma, beta;  // [d]
  LayerNorm() = default;
  explicit LayerNorm(std::int64_t d);
  Tensor operator()(const Tensor& x) const { return layernorm(x, gamma, beta, 1e-5); }
  void collect(const std::string& prefix, NamedTensors& out) const;
};

// relu(x W1^T + b1) W2^T + b2, with dropout after the activation and after W2 (TXL).
struct FeedForward {
  Linear fc1, fc2;
  FeedForward() = default;
  FeedForward(std::int64_t d_model, std::int64_t d_inner, double std, Generator& gen);
  Tensor operator()(const Tensor& x, double dropout, const ForwardContext& ctx) const;
  void collect(const std::string& prefix, NamedTensors& out) const;
};

// Shared u and v biases of Transformer-XL relative attention (untied across layers, as in
// TXL's default untie_r = False: one pair for the whole model).
struct RelativeBiases {
  Tensor r_w_bias;  // u: [heads, d_head]
  Tensor r_r_bias;  // v: [heads, d_head]
};

// Keys and values of the positions one layer has seen so far in the current segment (and, for
// Transformer-XL, of its cache), for decoding a few tokens at a time.
struct KvCache {
  Tensor keys, values;  // [B, heads, P, d_head]; undefined while P = 0
  std::int64_t positions() const { return keys.defined() ? keys.size(2) : 0; }
  std::int64_t bytes() const;
};

// Multi-head causal self-attention without biases (TXL's qkv_net and o_net).
struct SelfAttention {
  std::int64_t n_head = 0, d_head = 0;
  Linear qkv;    // [3 * heads * d_head, d_model]
  Linear out;    // [d_model, heads * d_head]
  Linear r_net;  // relative only: [heads * d_head, d_model]
  SelfAttention() = default;
  SelfAttention(std::int64_t d_model, std::int64_t n_head, std::int64_t d_head, bool relative,
                double std, Generator& gen);
  // x: [B, T, d]; prefix: [B, P, d] hidden states whose keys and values every query sees
  // (Transformer-XL cache) or undefined. Causal over the T positions. -> [B, T, d]
  // pos_emb: [P + T, d] sinusoids by distance 0..P+T-1 (relative only); biases likewise.
  Tensor operator()(const Tensor& x, const Tensor& prefix, const Tensor& pos_emb,
                    const RelativeBiases* biases, double dropatt,
                    const ForwardContext& ctx) const;
  // Incremental form (inference): x: [B, n, d] continues the positions in `kv`, whose keys and
  // values it appends; causal among the n. The same values as operator() over all positions
  // at once, up to rounding. rel_keys: relative only, relative_keys(pos_table).
  Tensor step(const Tensor& x, KvCache& kv, const Tensor& rel_keys, const RelativeBiases* biases) const;
  // Keys and values of prefix: [B, P, d] (a Transformer-XL cache) as a KvCache to step from.
  KvCache prefix_kv(const Tensor& prefix) const;
  // Relative only: r_net over the sinusoids by distance, [heads, K, d_head] for the K rows of
  // pos_table: [K, d] (the same for every token, so computed once per stream).
  Tensor relative_keys(const Tensor& pos_table) const;
  void collect(const std::string& prefix, NamedTensors& out) const;
};

struct TransformerBlock {
  SelfAttention attn;
  LayerNorm ln_attn, ln_ff;
  FeedForward ff;
  bool pre_ln = false;
  TransformerBlock() = default;
  TransformerBlock(std::int64_t d_model, std::int64_t n_head, std::int64_t d_head,
                   std::int64_t d_inner, bool relative, bool pre_ln, double std, Generator& gen);
  // x: [B, T, d], prefix: [B, P, d] or undefined -> [B, T, d]
  Tensor operator()(const Tensor& x, const Tensor& prefix, const Tensor& pos_emb,
                    const RelativeBiases* biases, double dropout, double dropatt,
                    const ForwardContext& ctx) const;
  // Incremental form (inference, no dropout): x: [B, n, d] -> [B, n, d]; see SelfAttention::step.
  Tensor step(const Tensor& x, KvCache& kv, const Tensor& rel_keys, const RelativeBiases* biases) const;
  // The KvCache of a Transformer-XL cache prefix: [B, P, d] (layer-normed first with pre-LN).
  KvCache prefix_kv(const Tensor& prefix) const;
  void collect(const std::string& prefix, NamedTensors& out) const;
};

// Sinusoidal embedding of positions 0..n-1 (TXL layout: sin half then cos half). -> [n, d]
Tensor sinusoid_table(std::int64_t n, std::int64_t d, DType dtype = DType::f32);

// A recurrent cell h' = cell(x, h) with hidden size == its state size.
class RecurrentCell {
 public:
  virtual ~RecurrentCell() = default;
  // x: [B, I], h: [B, H] -> [B, H]
  virtual Tensor step(const Tensor& x, const Tensor& h) const = 0;
  // Runs the cell over x: [B, T, I] from h0: [B, H]; returns all states [B, T, H].
  virtual Tensor sequence(const Tensor& x, const Tensor& h0) const;
  virtual void collect(const std::string& prefix, NamedTensors& trainable) const = 0;
  // State that is not trained by the ordinary optimiser but must be checkpointed.
  virtual void collect_buffers(const std::string& prefix, NamedTensors& buffers) const;
  // Called once per optimiser step, after backward and after the ordinary optimiser update
  // (the NCGRU updates its orthogonal matrix here). lr: the current learning rate.
  virtual void after_step(double lr);
  // Called before each forward of a training step (the NCGRU re-arms U_c's gradient).
  virtual void before_step();
  virtual std::int64_t hidden_size() const = 0;

 protected:
  // Runs next(t, h) for t = 0 .. steps-1 from h0 and stacks the states: [B, steps, H].
  static Tensor unroll(std::int64_t steps, const Tensor& h0,
                       const std::function<Tensor(std::int64_t, const Tensor&)>& next);
};

// PyTorch nn.GRUCell convention; gates r, z, n.
class GruCell : public RecurrentCell {
 public:
  GruCell(std::int64_t input, std::int64_t hidden, Generator& gen);
  Tensor step(const Tensor& x, const Tensor& h) const override;
  // One fused gru_sequence node: the input projections of all T steps as one GEMM.
  Tensor sequence(const Tensor& x, const Tensor& h0) const override;
  void collect(const std::string& prefix, NamedTensors& trainable) const override;
  std::int64_t hidden_size() const override { return hidden_; }

  Tensor w_ih, w_hh, b_ih, b_hh;  // [3H, I], [3H, H], [3H], [3H]

 private:
  std::int64_t hidden_;
};

}  // namespace crt::model
