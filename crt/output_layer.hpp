// The language model's output layer: full softmax, or the adaptive softmax of Grave et al.
// (Transformer-XL's variant with div_val 1: a head over the shortlist plus one logit per
// tail cluster, and one tail softmax per cluster). The weight may be tied to the input
// embedding; the bias [V] is always the layer's own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "crt/layers.hpp"

namespace crt::model {

class OutputLayer {
 public:
  OutputLayer() = default;
  // weight: [V, d] (the tied embedding, or a fresh parameter); cutoffs: empty for a full softmax.
  OutputLayer(const Tensor& weight, std::vector<std::int64_t> cutoffs);

  // hidden: [N, d]; targets: N ids. Mean negative log-likelihood (a scalar).
  Tensor loss(const Tensor& hidden, const std::vector<std::int32_t>& targets) const;
  // hidden: [N, d] -> log-probabilities [N, V]
  Tensor log_probs(const Tensor& hidden) const;
  // The output layer's own parameters (not the tied weight).
  void collect(const std::string& prefix, NamedTensors& out, bool include_weight) const;
  std::int64_t vocab_size() const { return weight_.size(0); }
  bool adaptive() const { return !cutoffs_.empty(); }

 private:
  Tensor head_logits(const Tensor& hidden) const;  // [N, shortlist + clusters]
  Tensor weight_;          // [V, d]
  Tensor bias_;            // [V]
  Tensor cluster_weight_;  // [clusters, d]
  Tensor cluster_bias_;    // [clusters]
  std::vector<std::int64_t> cutoffs_;  // user cutoffs; cluster i covers [bounds_[i], bounds_[i+1])
  std::vector<std::int64_t> bounds_;   // cutoffs plus V
};

}  // namespace crt::model
