// Model configuration for the three language models the paper compares (CRT, a segment
// Transformer, Transformer-XL): one struct, presets per kind, validation, and a string map
// form stored in checkpoint metadata.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace crt::model {

enum class ModelKind { transformer, transformer_xl, crt };
// How token positions enter the model.
//   sinusoidal / learned: absolute embeddings added to the token embeddings;
//   relative: Transformer-XL relative attention (r_net, u and v biases);
//   rnn: CRT's recurrent position encoding (a GRU/NCGRU over the segment's embeddings);
//   none: no positional signal.
enum class PositionEncoding { sinusoidal, learned, relative, rnn, none };
// What a stream carries from one segment to the next.
//   none: nothing; cache: Transformer-XL's cached hidden states (mem_len per layer);
//   rnn: CRT's single memory vector, prepended as position 0 and updated by a GRU/NCGRU.
enum class MemoryKind { none, cache, rnn };
enum class RnnCell { gru, ncgru };

struct ModelConfig {
  ModelKind kind = ModelKind::crt;
  std::int64_t vocab_size = 10000;
  std::int64_t n_layer = 3;
  std::int64_t d_model = 256;
  std::int64_t n_head = 8;
  std::int64_t d_head = 32;    // n_head * d_head is the attention width (TXL: 10 x 41 at 410)
  std::int64_t d_inner = 1024;  // feed-forward width
  std::int64_t seg_len = 35;    // tokens per segment
  std::int64_t mem_len = 35;    // Transformer-XL cache length (cache memory only)
  PositionEncoding position = PositionEncoding::rnn;
  MemoryKind memory = MemoryKind::rnn;
  RnnCell rnn_cell = RnnCell::gru;
  bool pos_rnn_residual = false;  // CRT: Transformer input = emb + RNN(emb) instead of RNN(emb)
  bool pos_rnn_carry = false;     // CRT: position RNN state carried across segments
  bool pre_ln = false;            // post-LN as in Transformer-XL by default
  bool tie_embeddings = true;     // output layer weight = input embedding
  std::vector<std::int64_t> adaptive_cutoffs;  // empty: full softmax
  double dropout = 0.1;       // residual and feed-forward dropout
  double dropatt = 0.0;       // attention-probability dropout (not supported: must be 0)
  double emb_dropout = 0.1;   // dropout on the (scaled) embeddings
  double init_std = 0.02;     // normal init of weights (TXL)
  // NCGRU: number of -1 entries in D, Neumann order, exact inverse every k updates.
  std::int64_t ncgru_negative_entries = -1;  // -1: 10% of d_model
  std::int64_t ncgru_neumann_order = 2;
  std::int64_t ncgru_exact_every = 100;

  // Throws crt::Error naming the first inconsistent field, or a model whose weights would
  // not fit in this machine's memory.
  void validate() const;
  // Bytes of the weights and position tables (f32), from the widths alone.
  double model_bytes_estimate() const;
  // Range limits of the shape fields (far above any model this engine trains; they keep
  // products of fields inside 64-bit integers).
  static constexpr std::int64_t kMaxLayers = 4096;
  static constexpr std::int64_t kMaxWidth = 1 << 20;
  static constexpr std::int64_t kMaxSegment = 1 << 20;
  // Checkpoint metadata form ("crt.<field>" -> value) and back. from_metadata throws on a
  // missing or malformed field, naming it.
  std::map<std::string, std::string> to_metadata() const;
  static ModelConfig from_metadata(const std::map<std::string, std::string>& meta);
  // Human-readable one-line summary.
  std::string summary() const;
  bool operator==(const ModelConfig&) const = default;
};

// The machine's physical memory in bytes (the limit for size checks before allocating).
double memory_limit_bytes();
// "1.5 GiB" / "300 MiB".
std::string human_bytes(double bytes);

// Presets: kind-specific defaults (position, memory) over the given widths.
ModelConfig preset(ModelKind kind, std::int64_t n_layer = 3, std::int64_t d_model = 256,
                   std::int64_t n_head = 8, std::int64_t d_inner = 1024,
                   std::int64_t vocab_size = 10000);
// Transformer-XL "base" WikiText-103 shapes (paper.md §2.1): 16 layers, d_model 410,
// 10 heads x 41, d_inner 2100, vocabulary 267,735, adaptive softmax cutoffs
// [20000, 40000, 200000], tied.
ModelConfig wt103_base(ModelKind kind);

const char* to_string(ModelKind k);
const char* to_string(PositionEncoding p);
const char* to_string(MemoryKind m);
const char* to_string(RnnCell c);
ModelKind parse_model_kind(const std::string& s);
PositionEncoding parse_position(const std::string& s);
MemoryKind parse_memory(const std::string& s);
RnnCell parse_rnn_cell(const std::string& s);

}  // namespace crt::model
