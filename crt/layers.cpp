// Building blocks of the language models (see layers.hpp).
#include "crt/layers.hpp"

#include <cmath>
#include <limits>

#include "engine/autograd.hpp"
#include "engine/error.hpp"

namespace crt::model {

Tensor apply_dropout(const Tensor& x, double p, const ForwardContext& ctx) {
  if (!ctx.training || p <= 0.0) return x;
  require(ctx.dropout_gen != nullptr, "dropout", "training with dropout needs a generator");
  return dropout(x, p, true, *ctx.dropout_gen);
}

Tensor param_normal(const Shape& shape, double std, Generator& gen) {
  Tensor t = normal(shape, 0.0, std, gen);
  t.set_requires_grad(true);
  return t;
}

Tensor param_uniform(const Shape& shape, double bound, Generator& gen) {
  Tensor t = uniform(shape, -bound, bound, gen);
  t.set_requires_grad(true);
  return t;
}

Tensor param_constant(const Shape& shape, double value) {
  Tensor t = Tensor::full(shape, value);
  t.set_requires_grad(true);
  return t;
}

// ---- Linear, LayerNorm, FeedForward ----------------------------------------------------

Linear::Linear(std::int64_t in, std::int64_t out, bool with_bias, double std, Generator& gen)
    : weight(param_normal({out, in}, std, gen)),
      bias(with_bias ? param_constant({out}, 0.0) : Tensor()) {}

void Linear::collect(const std::string& prefix, NamedTensors& out) const {
  out.emplace_back(prefix + ".weight", weight);
  if (bias.defined()) out.emplace_back(prefix + ".bias", bias);
}

LayerNorm::LayerNorm(std::int64_t d) : gamma(param_constant({d}, 1.0)), beta(param_constant({d}, 0.0)) {}

void LayerNorm::collect(const std::string& prefix, NamedTensors& out) const {
  out.emplace_back(prefix + ".weight", gamma);
  out.emplace_back(prefix + ".bias", beta);
}

FeedForward::FeedForward(std::int64_t d_model, std::int64_t d_inner, double std, Generator& gen)
    : fc1(d_model, d_inner, true, std, gen), fc2(d_inner, d_model, true, std, gen) {}

Tensor FeedForward::operator()(const Tensor& x, double p, const ForwardContext& ctx) const {
  Tensor h = apply_dropout(relu(fc1(x)), p, ctx);
  return apply_dropout(fc2(h), p, ctx);
}

void FeedForward::collect(const std::string& prefix, NamedTensors& out) const {
  fc1.collect(prefix + ".fc1", out);
  fc2.collect(prefix + ".fc2", out);
}

// ---- attention -------------------------------------------------------------------------

SelfAttention::SelfAttention(std::int64_t d_model, std::int64_t heads, std::int64_t dh,
                             bool relative, double std, Generator& gen)
    : n_head(heads),
      d_head(dh),
      qkv(d_model, 3 * heads * dh, false, std, gen),
      out(heads * dh, d_model, false, std, gen),
      r_net(relative ? Linear(d_model, heads * dh, false, std, gen) : Linear()) {}

void SelfAttention::collect(const std::string& prefix, NamedTensors& out_params) const {
  qkv.collect(prefix + ".qkv", out_params);
  out.collect(prefix + ".out", out_params);
  if (r_net.weight.defined()) r_net.collect(prefix + ".r_net", out_params);
}

namespace {

// [B, T, heads * dh] -> [B, heads, T, dh] (a view)
Tensor split_heads(const Tensor& x, std::int64_t heads, std::int64_t dh) {
  return x.reshape({x.size(0), x.size(1), heads, dh}).permute({0, 2, 1, 3});
}

// Attention composed of separate ops, used when attention probabilities need dropout
// (the fused op has none): softmax(q k^T * scale + bias + causal mask) v.
Tensor composed_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& bias,
                          double scale, double dropatt, const ForwardContext& ctx) {
  const std::int64_t tq = q.size(2), tk = k.size(2), prefix = tk - tq;
  Tensor scores = mul_scalar(matmul(q, k, false, true), scale);
  if (bias.defined()) scores = add(scores, bias);
  Tensor mask = Tensor::zeros({tq, tk}, q.dtype());
  for (std::int64_t i = 0; i < tq; ++i)
    for (std::int64_t j = i + prefix + 1; j < tk; ++j)
      mask.set({i, j}, -std::numeric_limits<double>::infinity());
  Tensor p = apply_dropout(softmax(add(scores, mask), -1), dropatt, ctx);
  return matmul(p, v);
}

}  // namespace

Tensor SelfAttention::operator()(const Tensor& x, const Tensor& prefix, const Tensor& pos_emb,
                                 const RelativeBiases* biases, double dropatt,
                                 const ForwardContext& ctx) const {
  const std::int64_t batch = x.size(0), t = x.size(1), width = n_head * d_head;
  const double scale = 1.0 / std::sqrt(double(d_head));
  Tensor q, k, v;
  if (!prefix.defined()) {
    const Tensor h = qkv(x);  // [B, T, 3 * width]
    q = split_heads(h.narrow(2, 0, width), n_head, d_head);
    k = split_heads(h.narrow(2, width, width), n_head, d_head);
    v = split_heads(h.narrow(2, 2 * width, width), n_head, d_head);
  } else {
    // Queries only for the new positions; keys and values over prefix + new.
    q = split_heads(linear(x, qkv.weight.narrow(0, 0, width)), n_head, d_head);
    const Tensor kv = linear(concat({prefix, x}, 1), qkv.weight.narrow(0, width, 2 * width));
    k = split_heads(kv.narrow(2, 0, width), n_head, d_head);
    v = split_heads(kv.narrow(2, width, width), n_head, d_head);
  }
  const std::int64_t tk = k.size(2);
  Tensor o;
  if (r_net.weight.defined()) {
    require(pos_emb.defined() && pos_emb.size(0) == tk && biases != nullptr, "SelfAttention",
            "relative attention needs ", tk, " position embeddings and the u/v biases");
    // r: [heads, Tk, dh], one row per relative distance 0..Tk-1
    const Tensor r = r_net(pos_emb).reshape({tk, n_head, d_head}).permute({1, 0, 2});
    const Tensor uq = add(q, biases->r_w_bias.reshape({n_head, 1, d_head}));
    const Tensor vq = add(q, biases->r_r_bias.reshape({n_head, 1, d_head}));
    // scores by distance [B, heads, T, Tk] -> by key position (TXL's _rel_shift)
    const Tensor by_distance = matmul(vq, r.unsqueeze(0).expand({batch, n_head, tk, d_head}), false, true);
    const Tensor bd = mul_scalar(rel_shift(by_distance, tk - t, tk), scale);
    o = dropatt > 0 && ctx.training ? composed_attention(uq, k, v, bd, scale, dropatt, ctx)
                                    : attention(uq, k, v, true, bd, scale);
  } else {
    o = dropatt > 0 && ctx.training ? composed_attention(q, k, v, Tensor(), scale, dropatt, ctx)
                                    : attention(q, k, v, true, Tensor(), scale);
  }
  return out(o.permute({0, 2, 1, 3}).reshape({batch, t, width}));
}

std::int64_t KvCache::bytes() const {
  std::int64_t b = 0;
  for (const Tensor* t : {&keys, &values})
    if (t->defined()) b += t->numel() * std::int64_t(dtype_size(t->dtype()));
  return b;
}

Tensor SelfAttention::relative_keys(const Tensor& pos_table) const {
  require(r_net.weight.defined(), "SelfAttention::relative_keys", "this attention is not relative");
  return r_net(pos_table).reshape({pos_table.size(0), n_head, d_head}).permute({1, 0, 2}).contiguous();
}

KvCache SelfAttention::prefix_kv(const Tensor& prefix) const {
  const std::int64_t width = n_head * d_head;
  const Tensor kv = linear(prefix, qkv.weight.narrow(0, width, 2 * width));
  return {split_heads(kv.narrow(2, 0, width), n_head, d_head).contiguous(),
          split_heads(kv.narrow(2, width, width), n_head, d_head).contiguous()};
}

Tensor SelfAttention::step(const Tensor& x, KvCache& kv, const Tensor& rel_keys,
                           const RelativeBiases* biases) const {
  const std::int64_t batch = x.size(0), n = x.size(1), width = n_head * d_head;
  const double scale = 1.0 / std::sqrt(double(d_head));
  const Tensor h = qkv(x);  // [B, n, 3 * width]
  const Tensor q = split_heads(h.narrow(2, 0, width), n_head, d_head);
  const Tensor k = split_heads(h.narrow(2, width, width), n_head, d_head);
  const Tensor v = split_heads(h.narrow(2, 2 * width, width), n_head, d_head);
  kv.keys = kv.keys.defined() ? concat({kv.keys, k}, 2) : k.contiguous();
  kv.values = kv.values.defined() ? concat({kv.values, v}, 2) : v.contiguous();
  const std::int64_t tk = kv.keys.size(2);
  Tensor o;
  if (r_net.weight.defined()) {
    require(rel_keys.defined() && rel_keys.size(1) >= tk && biases != nullptr, "SelfAttention::step",
            "relative attention needs keys for ", tk, " distances and the u/v biases");
    const Tensor r = rel_keys.narrow(1, 0, tk);
    const Tensor uq = add(q, biases->r_w_bias.reshape({n_head, 1, d_head}));
    const Tensor vq = add(q, biases->r_r_bias.reshape({n_head, 1, d_head}));
    const Tensor by_distance = matmul(vq, r.unsqueeze(0).expand({batch, n_head, tk, d_head}), false, true);
    const Tensor bd = mul_scalar(rel_shift(by_distance, tk - n, tk), scale);
    o = attention(uq, kv.keys, kv.values, true, bd, scale);
  } else {
    o = attention(q, kv.keys, kv.values, true, Tensor(), scale);
  }
  return out(o.permute({0, 2, 1, 3}).reshape({batch, n, width}));
}

TransformerBlock::TransformerBlock(std::int64_t d_model, std::int64_t n_head, std::int64_t d_head,
                                   std::int64_t d_inner, bool relative, bool pre, double std,
                                   Generator& gen)
    : attn(d_model, n_head, d_head, relative, std, gen),
      ln_attn(d_model),
      ln_ff(d_model),
      ff(d_model, d_inner, std, gen),
      pre_ln(pre) {}

Tensor TransformerBlock::operator()(const Tensor& x, const Tensor& prefix, const Tensor& pos_emb,
                                    const RelativeBiases* biases, double p, double dropatt,
                                    const ForwardContext& ctx) const {
  if (pre_ln) {
    const Tensor a = attn(ln_attn(x), prefix.defined() ? ln_attn(prefix) : Tensor(), pos_emb,
                          biases, dropatt, ctx);
    const Tensor h = add(x, apply_dropout(a, p, ctx));
    return add(h, ff(ln_ff(h), p, ctx));
  }
  const Tensor a = attn(x, prefix, pos_emb, biases, dropatt, ctx);
  const Tensor h = ln_attn(add(x, apply_dropout(a, p, ctx)));
  return ln_ff(add(h, ff(h, p, ctx)));
}

Tensor TransformerBlock::step(const Tensor& x, KvCache& kv, const Tensor& rel_keys,
                              const RelativeBiases* biases) const {
  const ForwardContext inference;
  if (pre_ln) {
    const Tensor h = add(x, attn.step(ln_attn(x), kv, rel_keys, biases));
    return add(h, ff(ln_ff(h), 0.0, inference));
  }
  const Tensor h = ln_attn(add(x, attn.step(x, kv, rel_keys, biases)));
  return ln_ff(add(h, ff(h, 0.0, inference)));
}

KvCache TransformerBlock::prefix_kv(const Tensor& prefix) const {
  return attn.prefix_kv(pre_ln ? ln_attn(prefix) : prefix);
}

void TransformerBlock::collect(const std::string& prefix, NamedTensors& out) const {
  attn.collect(prefix + ".attn", out);
  ln_attn.collect(prefix + ".ln_attn", out);
  ff.collect(prefix + ".ff", out);
  ln_ff.collect(prefix + ".ln_ff", out);
}

Tensor sinusoid_table(std::int64_t n, std::int64_t d, DType dtype) {
  Tensor t = Tensor::zeros({n, d}, DType::f64);
  double* p = t.data<double>();
  const std::int64_t half = d / 2;
  for (std::int64_t i = 0; i < half; ++i) {
    const double inv_freq = 1.0 / std::pow(10000.0, double(2 * i) / double(d));
    for (std::int64_t pos = 0; pos < n; ++pos) {
      p[pos * d + i] = std::sin(double(pos) * inv_freq);
      p[pos * d + half + i] = std::cos(double(pos) * inv_freq);
    }
  }
  return dtype == DType::f64 ? t : t.to(dtype);
}

// ---- recurrent cells -------------------------------------------------------------------

Tensor RecurrentCell::unroll(std::int64_t steps, const Tensor& h0,
                             const std::function<Tensor(std::int64_t, const Tensor&)>& next) {
  std::vector<Tensor> states;
  states.reserve(std::size_t(steps));
  Tensor h = h0;
  for (std::int64_t t = 0; t < steps; ++t) {
    h = next(t, h);
    states.push_back(h);
  }
  return stack(states, 1);
}

Tensor RecurrentCell::sequence(const Tensor& x, const Tensor& h0) const {
  return unroll(x.size(1), h0, [&](std::int64_t t, const Tensor& h) {
    return step(x.narrow(1, t, 1).squeeze(1), h);
  });
}

void RecurrentCell::collect_buffers(const std::string&, NamedTensors&) const {}
void RecurrentCell::after_step(double) {}
void RecurrentCell::before_step() {}

GruCell::GruCell(std::int64_t input, std::int64_t hidden, Generator& gen) : hidden_(hidden) {
  const double bound = 1.0 / std::sqrt(double(hidden));
  w_ih = param_uniform({3 * hidden, input}, bound, gen);
  w_hh = param_uniform({3 * hidden, hidden}, bound, gen);
  b_ih = param_uniform({3 * hidden}, bound, gen);
  b_hh = param_uniform({3 * hidden}, bound, gen);
}

Tensor GruCell::step(const Tensor& x, const Tensor& h) const {
  return gru_cell(x, h, w_ih, w_hh, b_ih, b_hh);
}

Tensor GruCell::sequence(const Tensor& x, const Tensor& h0) const {
  return gru_sequence(x, h0, w_ih, w_hh, b_ih, b_hh);
}

void GruCell::collect(const std::string& prefix, NamedTensors& out) const {
  out.emplace_back(prefix + ".w_ih", w_ih);
  out.emplace_back(prefix + ".w_hh", w_hh);
  out.emplace_back(prefix + ".b_ih", b_ih);
  out.emplace_back(prefix + ".b_hh", b_hh);
}

}  // namespace crt::model
