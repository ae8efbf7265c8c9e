// The segment-level language model shared by the three kinds the paper compares:
//   CRT (Mucllari et al. 2025, paper.md §2): a memory vector prepended as position 0, a
//     memory GRU/NCGRU reading the segment's final-layer outputs token by token, and a
//     position GRU/NCGRU over the embeddings in place of positional encoding;
//   a segment-limited Transformer (absolute positions, no memory);
//   Transformer-XL (Dai et al. 2019): cached hidden states of the previous segment as extra
//     keys/values and relative positions with the u and v biases.
// What a stream carries between segments lives in StreamState, so any number of independent
// streams can share one model.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <memory>
#include <vector>

#include "crt/config.hpp"
#include "crt/layers.hpp"
#include "crt/output_layer.hpp"

namespace crt::model {

// Per-stream state carried from one segment to the next.
struct StreamState {
  std::int64_t batch = 0;
  Tensor memory;               // CRT: [B, d]; undefined before the first segment
  // CRT training only: the last segment's memory-RNN inputs [B, T, d] and starting memory
  // [B, d], detached. The next training forward replays that memory update with a graph, so
  // that even one-segment truncated BPTT trains the memory RNN (see LanguageModel::forward).
  Tensor memory_inputs, memory_before;
  Tensor position_state;       // CRT with pos_rnn_carry: [B, d]
  std::vector<Tensor> cache;   // Transformer-XL: per layer, [B, <= mem_len, d]
  // Cuts the autograd graph (truncated BPTT); O(1) per tensor.
  void detach();
  // Named tensors for checkpoints ("state.memory", "state.cache.3", ...).
  NamedTensors named() const;
  // Bytes held (the per-stream memory the model carries between segments).
  std::int64_t bytes() const;
};

// Incremental decoding of a batch of streams (inference only): the StreamState after the last
// completed segment plus what the current segment has built so far, so that each new token
// costs its own projections, attention over at most mem_len + seg_len + 1 keys, and its
// feed-forward, instead of a forward over the whole pending segment.
struct DecodeState {
  StreamState stream;            // memory, cache and position state after the last full segment
  std::int64_t filled = 0;       // tokens of the current segment fed so far
  std::vector<KvCache> kv;       // per layer: keys and values of the segment (and XL cache)
  std::vector<Tensor> layer_inputs;  // Transformer-XL: per layer, [B, filled, d] entering it
  Tensor outputs;                // CRT memory RNN: final-layer outputs [B, filled, d]
  Tensor position_h;             // position RNN state after the last token fed [B, d]
  std::vector<Tensor> rel_keys;  // Transformer-XL: per layer, relative_keys of the sinusoids
  // Bytes held: the carried state plus the current segment's keys, values and outputs.
  std::int64_t bytes() const;
  // What a suspended stream needs to continue exactly (rel_keys, derived from the model, are
  // left out): tensors "state.*" and "segment.*", and the metadata "decode.batch" and
  // "decode.filled". LanguageModel::restore_decode_state reads them back.
  NamedTensors named() const;
  std::map<std::string, std::string> metadata() const;
};

class LanguageModel {
 public:
  // dtype f64 exists for gradient checks of whole models; f32 is the working type.
  explicit LanguageModel(const ModelConfig& config, std::uint64_t seed = 1111,
                         DType dtype = DType::f32);
  DType dtype() const { return embedding_.dtype(); }

  const ModelConfig& config() const { return config_; }
  StreamState initial_state(std::int64_t batch) const;

  // ids: [B, T] row-major (T <= seg_len for CRT's memory semantics; any T for the others).
  // Returns the final hidden states [B, T, d] and advances `state` past this segment
  // (memory or cache updated; the graph through them is kept until state.detach()).
  Tensor forward(const std::vector<std::int32_t>& ids, std::int64_t batch, StreamState& state,
                 const ForwardContext& ctx) const;
  // Incremental decoding. ids: [B, n] row-major, any n >= 1 (segments complete along the way,
  // advancing the memory or cache exactly where forward() over whole segments would). Returns
  // the final hidden states [B, n, d], equal to forward()'s for the same positions up to
  // rounding. Runs without a graph.
  DecodeState decode_state(std::int64_t batch) const;
  Tensor decode(const std::vector<std::int32_t>& ids, std::int64_t batch, DecodeState& state) const;
  // A DecodeState from DecodeState::named() and metadata(); every tensor's shape, dtype and
  // values are checked against this model (an error names the tensor), unknown names refused.
  DecodeState restore_decode_state(const NamedTensors& tensors, const std::map<std::string, std::string>& meta) const;

  // hidden: [B, T, d]; targets: B*T ids -> mean negative log-likelihood
  Tensor loss(const Tensor& hidden, const std::vector<std::int32_t>& targets) const;
  // hidden: [B, T, d] -> log-probabilities [B, T, V]
  Tensor log_probs(const Tensor& hidden) const;

  // Trainable parameters (each tensor once; a tied weight appears under the embedding).
  const NamedTensors& parameters() const { return parameters_; }
  // Non-trainable state that checkpoints must carry (NCGRU matrices and their optimiser).
  NamedTensors buffers() const;
  // Every tensor that backward gives a gradient to: the parameters and the NCGRU's U_c (trained
  // through its own A-update after the step). Global-norm clipping scales all of them.
  std::vector<Tensor> gradient_tensors() const;
  // Numbers in gradient_tensors(): an NCGRU's U_c counts as its d x d entries, as the paper's
  // (12 + 8L) d^2 counts each RNN's recurrent matrices (paper.md 5.1).
  std::int64_t parameter_count() const;
  // Hooks around an optimiser step (the NCGRU's orthogonal update).
  void before_step();
  void after_step(double lr);
  Generator& dropout_generator() const { return dropout_gen_; }
  // Orthogonality error of the NCGRU matrices (0 without NCGRU).
  double orthogonality_error() const;

 private:
  Tensor embed(const std::vector<std::int32_t>& ids, std::int64_t batch, std::int64_t t,
               StreamState& state, const ForwardContext& ctx) const;
  // decode() within one segment: ids: [B, n] with n <= seg_len - state.filled.
  Tensor decode_within_segment(const std::vector<std::int32_t>& ids, std::int64_t batch,
                               DecodeState& state) const;
  void begin_decode_segment(DecodeState& state) const;
  void end_decode_segment(DecodeState& state) const;

  ModelConfig config_;
  Tensor embedding_;        // [V, d]
  Tensor position_table_;   // sinusoidal [max, d] (not trained) or learned [seg_len, d]
  std::vector<TransformerBlock> blocks_;
  RelativeBiases rel_biases_;
  std::unique_ptr<RecurrentCell> position_rnn_;
  std::unique_ptr<RecurrentCell> memory_rnn_;
  OutputLayer output_;
  NamedTensors parameters_;
  mutable Generator dropout_gen_;
};

std::unique_ptr<RecurrentCell> make_cell(const ModelConfig& config, Generator& gen);

}  // namespace crt::model
