// Closed-form FLOP counts (see flops.hpp for the derivation and the convention).
#include "crt/flops.hpp"

#include "engine/error.hpp"

namespace crt::model {

namespace {

constexpr const char* kOp = "flops";

// The shapes one segment's layers see.
struct LayerShape {
  std::int64_t b, s, k, d, w, f;  // batch, queries, keys, d_model, attention width, d_inner
  std::int64_t pairs;             // (query, key) pairs the attention scores per head
};

LayerShape layer_shape(const ModelConfig& c, const SegmentWork& seg) {
  require(seg.batch >= 1 && seg.tokens >= 1 && seg.cached >= 0, kOp,
          "segment needs batch >= 1, tokens >= 1 and cached >= 0, got batch ", seg.batch,
          ", tokens ", seg.tokens, ", cached ", seg.cached);
  require(c.memory == MemoryKind::cache || seg.cached == 0, kOp, "only a Transformer-XL cache ",
          "gives cached positions, got ", seg.cached, " for memory '", to_string(c.memory), "'");
  LayerShape l{};
  l.b = seg.batch;
  l.s = seg.tokens + (c.memory == MemoryKind::rnn && seg.memory_token ? 1 : 0);
  l.k = seg.cached + l.s;
  l.d = c.d_model;
  l.w = c.n_head * c.d_head;
  l.f = c.d_inner;
  const bool all_pairs = seg.training && c.dropatt > 0;  // the unfused path scores every pair
  l.pairs = all_pairs ? l.s * l.k : l.s * seg.cached + l.s * (l.s + 1) / 2;
  return l;
}

// One recurrent step's forward products (both cells: 12 B d^2 for input = hidden = d).
std::int64_t rnn_step_forward(std::int64_t b, std::int64_t d) { return 2 * b * 3 * d * d * 2; }

// One recurrent step's backward products; h_grad: the incoming state needs a gradient.
std::int64_t rnn_step_backward(RnnCell cell, std::int64_t b, std::int64_t d, bool h_grad) {
  const std::int64_t unit = 2 * b * d * d;  // one d x d product over the batch
  if (cell == RnnCell::gru) return unit * (3 + 3 + 3) + (h_grad ? unit * 3 : 0);
  return unit * (3 + 3 + 2 + 1 + 1) + (h_grad ? unit * 2 : 0);
}

// A segment's T recurrent steps, backward; the first step's state needs a gradient only when
// first_h_grad.
std::int64_t rnn_backward(RnnCell cell, std::int64_t b, std::int64_t d, std::int64_t steps,
                          bool first_h_grad) {
  return rnn_step_backward(cell, b, d, first_h_grad) +
         (steps - 1) * rnn_step_backward(cell, b, d, true);
}

std::int64_t output_forward(const ModelConfig& c, const SegmentWork& seg) {
  const std::int64_t rows = seg.batch * seg.tokens, d = c.d_model, v = c.vocab_size;
  const OutputWork& out = seg.output;
  if (out.kind == OutputWork::Kind::none) return 0;
  if (c.adaptive_cutoffs.empty()) return 2 * rows * v * d;
  const auto clusters = std::int64_t(c.adaptive_cutoffs.size());
  const std::int64_t shortlist = c.adaptive_cutoffs.front();
  if (out.kind == OutputWork::Kind::log_probs) return 2 * rows * (v + clusters) * d;
  require(std::int64_t(out.tail_rows.size()) == clusters, kOp, "adaptive softmax with ",
          clusters, " tail clusters needs that many tail row counts, got ", out.tail_rows.size());
  std::int64_t flops = 2 * rows * (shortlist + clusters) * d;
  for (std::size_t i = 0; i < out.tail_rows.size(); ++i) {
    const std::int64_t lo = c.adaptive_cutoffs[i];
    const std::int64_t hi = i + 1 < c.adaptive_cutoffs.size() ? c.adaptive_cutoffs[i + 1] : v;
    require(out.tail_rows[i] >= 0 && out.tail_rows[i] <= rows, kOp, "tail ", i, " row count ",
            out.tail_rows[i], " is outside [0, ", rows, "]");
    flops += 2 * out.tail_rows[i] * (hi - lo) * d;
  }
  return flops;
}

}  // namespace

std::int64_t FlopCount::total() const {
  return position_rnn + projections + attention + feed_forward + memory_rnn + output;
}

FlopCount& FlopCount::operator+=(const FlopCount& o) {
  position_rnn += o.position_rnn;
  projections += o.projections;
  attention += o.attention;
  feed_forward += o.feed_forward;
  memory_rnn += o.memory_rnn;
  output += o.output;
  return *this;
}

std::vector<std::int64_t> tail_rows(const ModelConfig& c, const std::vector<std::int32_t>& targets) {
  std::vector<std::int64_t> rows(c.adaptive_cutoffs.size(), 0);
  for (const std::int32_t t : targets) {
    require(t >= 0 && t < c.vocab_size, kOp, "target ", t, " is outside the vocabulary [0, ",
            c.vocab_size, ")");
    for (std::size_t i = c.adaptive_cutoffs.size(); i-- > 0;)
      if (t >= c.adaptive_cutoffs[i]) {
        ++rows[i];
        break;
      }
  }
  return rows;
}

FlopCount forward_flops(const ModelConfig& c, const SegmentWork& seg) {
  const LayerShape l = layer_shape(c, seg);
  const bool relative = c.position == PositionEncoding::relative;
  FlopCount f;
  const std::int64_t per_layer_proj = 2 * l.b * l.s * l.d * l.w          // q
                                      + 2 * l.b * l.k * l.d * 2 * l.w     // k, v
                                      + 2 * l.b * l.s * l.w * l.d         // output projection
                                      + (relative ? 2 * l.k * l.d * l.w : 0);  // r_net
  const std::int64_t per_layer_attn =
      4 * l.b * l.w * l.pairs + (relative ? 2 * l.b * l.s * l.k * l.w : 0);
  f.projections = c.n_layer * per_layer_proj;
  f.attention = c.n_layer * per_layer_attn;
  f.feed_forward = c.n_layer * 4 * l.b * l.s * l.d * l.f;
  if (c.position == PositionEncoding::rnn)
    f.position_rnn = seg.tokens * rnn_step_forward(l.b, l.d);
  if (c.memory == MemoryKind::rnn) f.memory_rnn = seg.tokens * rnn_step_forward(l.b, l.d);
  f.output = output_forward(c, seg);
  return f;
}

FlopCount backward_flops(const ModelConfig& c, const SegmentWork& seg, const GradientFlow& flow) {
  const FlopCount fwd = forward_flops(c, seg);
  const LayerShape l = layer_shape(c, seg);
  FlopCount b;
  // r_net's input (the sinusoids) needs no gradient: only its weight's product runs.
  const std::int64_t r_net =
      c.position == PositionEncoding::relative ? c.n_layer * 2 * l.k * l.d * l.w : 0;
  b.projections = 2 * fwd.projections - r_net;
  b.attention = 2 * fwd.attention;
  b.feed_forward = 2 * fwd.feed_forward;
  b.output = 2 * fwd.output;
  if (c.position == PositionEncoding::rnn)
    b.position_rnn = rnn_backward(c.rnn_cell, l.b, l.d, seg.tokens,
                                  c.pos_rnn_carry && flow.position_in_has_grad);
  if (c.memory == MemoryKind::rnn && flow.memory_out_used)
    b.memory_rnn = rnn_backward(c.rnn_cell, l.b, l.d, seg.tokens, flow.memory_in_has_grad);
  return b;
}

FlopCount train_step_flops(const ModelConfig& c, const std::vector<SegmentWork>& segments,
                           std::int64_t replay_tokens) {
  require(!segments.empty(), kOp, "a training step needs at least one segment");
  require(replay_tokens >= 0, kOp, "replay_tokens must be >= 0, got ", replay_tokens);
  FlopCount total;
  const bool replay = c.memory == MemoryKind::rnn && replay_tokens > 0;
  if (replay) {
    // The replayed memory update: forward, and backward from the first segment's use of its
    // output (its own inputs are detached, so no gradient for the starting memory).
    const std::int64_t b = segments.front().batch, d = c.d_model;
    total.memory_rnn += replay_tokens * rnn_step_forward(b, d);
    // Its inputs are detached too, so the input-gradient product (3 d x d per step, both
    // cells) does not run.
    total.memory_rnn += rnn_backward(c.rnn_cell, b, d, replay_tokens, false) -
                        replay_tokens * 3 * (2 * b * d * d);
  }
  for (std::size_t i = 0; i < segments.size(); ++i) {
    SegmentWork seg = segments[i];
    seg.training = true;
    GradientFlow flow;
    flow.memory_out_used = i + 1 < segments.size();
    flow.memory_in_has_grad = i > 0 || replay;
    flow.position_in_has_grad = i > 0;
    total += forward_flops(c, seg);
    total += backward_flops(c, seg, flow);
  }
  return total;
}

std::int64_t ncgru_update_flops(std::int64_t hidden, int neumann_order, bool exact_refresh) {
  require(hidden >= 1 && neumann_order >= 1 && neumann_order <= 3, kOp,
          "ncgru_update_flops needs hidden >= 1 and order 1..3, got ", hidden, ", ", neumann_order);
  const std::int64_t h = hidden, cube = h * h * h;
  const std::int64_t skew = 2 * cube;
  const std::int64_t refresh = exact_refresh ? (h - 1) * (h * h + h * (h + 1) / 2)
                                             : (1 + std::int64_t(neumann_order)) * cube;
  return 2 * (skew + refresh);
}

}  // namespace crt::model
