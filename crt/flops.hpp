// Closed-form FLOP counts of the three language models (CRT, segment Transformer,
// Transformer-XL), forward per segment and training step, equal by construction to what the
// engine tallies (engine/flops.hpp) for the same run. Derivation in the block below.
#pragma once

#include <cstdint>
#include <vector>

#include "crt/config.hpp"

namespace crt::model {

// ---------------------------------------------------------------------------------------------
// Convention: a multiply-add is 2 FLOPs. Counted are the products the engine counts: matmul
// (and linear), the fused attention over the VISIBLE query/key pairs only, and the two products
// of each fused GRU step. Element-wise ops, softmax, layer norm, embedding, dropout,
// cross-entropy, the optimiser, gradient clipping and the NCGRU's A-update (run in double
// outside the engine's ops; see ncgru_update_flops) count nothing.
//
// Symbols: B batch, T tokens in the segment, d = d_model, W = n_head * d_head (attention
// width), h = n_head, F = d_inner, L = n_layer, V = vocab, P = cached positions (Transformer-XL;
// 0 on a stream's first segment, min(mem_len, tokens seen) afterwards).
// S = T + 1 for CRT (the memory token at position 0; S = T on a stream's first segment, which
// has no memory yet), S = T otherwise; K = P + S keys.
// pairs = S * P + S (S + 1) / 2   (causal: query i sees the P cached keys and keys 0..i).
//
// Forward, per layer:
//   q, k, v projections       2 B S d W + 2 B K d 2W          (= 2 B S d 3W when P = 0)
//   Transformer-XL relative:  r_net 2 K d W (shared over the batch), position scores
//                             (q + v) r^T 2 B S K W
//   attention (fused)         4 B W pairs                      (QK^T and PV, visible pairs)
//   output projection         2 B S W d
//   feed-forward              4 B S d F
// CRT, per token: position RNN 12 B d^2 and memory RNN 12 B d^2 (GRU: x W_ih^T 6 B d^2 and
//   h W_hh^T 6 B d^2; NCGRU: x W_x^T 6 B d^2, h [U_r; U_u]^T 4 B d^2, (r*h) U_c^T 2 B d^2:
//   the same 12 B d^2, the U_c product included).
// Output layer on N = B T rows: full softmax 2 N V d; adaptive softmax (cutoffs c_0 < ... ,
//   n_c tail clusters of sizes s_i): loss 2 N (c_0 + n_c) d + sum_i 2 R_i s_i d, where R_i is
//   the number of rows whose target lies in tail i (a tail with no target is skipped);
//   log_probs 2 N (V + n_c) d (every row through every tail).
//
// Backward (training step): every product above whose operands need gradients runs again once
// per needed operand (the matmul backward issues dA and dB, each a product of the forward's
// size; the fused attention backward counts four products, twice its forward):
//   layers and output layer: 2 x forward, except r_net: 1 x (the sinusoids need no gradient);
//   GRU step: dx, dW_ih, dW_hh 18 B d^2, plus dh 6 B d^2 when h needs a gradient;
//   NCGRU step: dx, dW_x, dU_ru, d(r*h), dU_c 20 B d^2, plus dh 4 B d^2 when h needs one.
//   h needs a gradient from step 1 on; at step 0 only when it was made in this step (the
//   incoming memory of a later BPTT segment, or a carried position state).
//   The memory RNN's backward runs only when its output (the new memory) feeds a later segment
//   of the same step: with one segment per step (bptt_segments = 1) it never runs.
// Training step = sum over its segments of forward + backward.
//
// Worked example (the Transformer, L = 2, d = W = 16, h = 2, F = 24, V = 23, B = 1, T = 5):
//   per layer 7680 (qkv) + 960 (attention, 15 pairs) + 2560 (out) + 7680 (FF) = 18880;
//   forward 2 x 18880 + 3680 (output) = 41440 FLOPs; training step 3 x 41440 = 124320.
// ---------------------------------------------------------------------------------------------

// What the output layer computes for a segment's N = batch * tokens rows.
struct OutputWork {
  enum class Kind { none, loss, log_probs };
  Kind kind = Kind::loss;
  // Adaptive softmax loss only: rows whose target lies in each tail cluster (one entry per
  // cutoff); see tail_rows(). Ignored for a full softmax and for log_probs.
  std::vector<std::int64_t> tail_rows;
};

// Rows per tail cluster of a segment's targets (empty for a full softmax).
std::vector<std::int64_t> tail_rows(const ModelConfig& config,
                                    const std::vector<std::int32_t>& targets);

// One segment as LanguageModel::forward runs it, followed by the output layer.
struct SegmentWork {
  std::int64_t batch = 1;
  std::int64_t tokens = 1;   // T
  std::int64_t cached = 0;   // Transformer-XL: cached positions attended to
  bool memory_token = true;  // CRT: the memory token is prepended (not on a stream's first segment)
  bool training = false;     // with dropatt > 0, training uses the unfused (all-pairs) attention
  OutputWork output;
};

// Which gradients a segment's backward computes, from its place in the training step.
struct GradientFlow {
  bool memory_out_used = false;     // CRT: the new memory feeds a later segment of this step
  bool memory_in_has_grad = false;  // CRT: the incoming memory was made in this step
  bool position_in_has_grad = false;  // CRT with pos_rnn_carry: likewise the position state
};

// FLOPs by part of the model.
struct FlopCount {
  std::int64_t position_rnn = 0;  // CRT's position RNN
  std::int64_t projections = 0;   // q, k, v, output projections and Transformer-XL's r_net
  std::int64_t attention = 0;     // scores and weighted sums (+ Transformer-XL position scores)
  std::int64_t feed_forward = 0;
  std::int64_t memory_rnn = 0;    // CRT's memory RNN
  std::int64_t output = 0;        // softmax layer
  std::int64_t total() const;
  FlopCount& operator+=(const FlopCount& other);
};

// One forward pass over a segment (forward + the output layer).
FlopCount forward_flops(const ModelConfig& config, const SegmentWork& segment);
// What the backward pass of a training step adds for that segment.
FlopCount backward_flops(const ModelConfig& config, const SegmentWork& segment,
                         const GradientFlow& flow);
// A training step (Trainer::step) over consecutive segments of one stream: forward and backward
// of each. For CRT, every step but a stream's first replays the previous segment's memory
// update with a graph (LanguageModel::forward): `replay_tokens` is that segment's length
// (0: no replay, the first step), costing one memory-RNN forward and backward over it.
// Throws crt::Error on no segments.
FlopCount train_step_flops(const ModelConfig& config, const std::vector<SegmentWork>& segments,
                           std::int64_t replay_tokens = 0);

// The NCGRU A-update of one cell after an optimiser step (in double, outside the engine's
// tally): the skew gradient (I+A)^{-T} G (D + U_c^T) is 2 products of H^3 multiply-adds; a
// Neumann refresh of order k is 1 + k more; an exact refresh is a Gauss-Jordan inversion,
// (H - 1)(H^2 + H(H+1)/2) multiply-adds. Returns FLOPs (2 per multiply-add).
std::int64_t ncgru_update_flops(std::int64_t hidden, int neumann_order, bool exact_refresh);

}  // namespace crt::model
