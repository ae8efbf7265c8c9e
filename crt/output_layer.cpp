// Full and adaptive softmax output layers (see output_layer.hpp).
#include "crt/output_layer.hpp"

#include "engine/error.hpp"

namespace crt::model {

OutputLayer::OutputLayer(const Tensor& weight, std::vector<std::int64_t> cutoffs)
    : weight_(weight), bias_(param_constant({weight.size(0)}, 0.0)), cutoffs_(std::move(cutoffs)) {
  if (!cutoffs_.empty()) {
    const auto clusters = std::int64_t(cutoffs_.size());
    cluster_weight_ = param_constant({clusters, weight.size(1)}, 0.0);
    cluster_bias_ = param_constant({clusters}, 0.0);
    bounds_ = cutoffs_;
    bounds_.push_back(weight.size(0));
  }
}

void OutputLayer::collect(const std::string& prefix, NamedTensors& out, bool include_weight) const {
  if (include_weight) out.emplace_back(prefix + ".weight", weight_);
  out.emplace_back(prefix + ".bias", bias_);
  if (adaptive()) {
    out.emplace_back(prefix + ".cluster_weight", cluster_weight_);
    out.emplace_back(prefix + ".cluster_bias", cluster_bias_);
  }
}

Tensor OutputLayer::head_logits(const Tensor& hidden) const {
  const std::int64_t shortlist = cutoffs_.front();
  const Tensor w = concat({weight_.narrow(0, 0, shortlist), cluster_weight_}, 0);
  const Tensor b = concat({bias_.narrow(0, 0, shortlist), cluster_bias_}, 0);
  return linear(hidden, w, b);
}

Tensor OutputLayer::loss(const Tensor& hidden, const std::vector<std::int32_t>& targets) const {
  require(hidden.dim() == 2 && hidden.size(0) == std::int64_t(targets.size()), "OutputLayer::loss",
          "hidden ", hidden.describe(), " needs one target per row, got ", targets.size());
  const std::int64_t vocab = weight_.size(0);
  for (std::size_t i = 0; i < targets.size(); ++i)
    require(targets[i] >= 0 && targets[i] < vocab, "OutputLayer::loss", "target ", targets[i],
            " at position ", i, " is outside the vocabulary [0, ", vocab, ")");
  if (!adaptive()) return cross_entropy(linear(hidden, weight_, bias_), targets);

  // Head: shortlist words are their own class; a tail word's class is its cluster's logit.
  const std::int64_t shortlist = cutoffs_.front();
  const auto n = std::int64_t(targets.size());
  std::vector<std::int32_t> head_targets(targets.size());
  std::vector<std::vector<std::int32_t>> rows(cutoffs_.size()), local(cutoffs_.size());
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const std::int64_t t = targets[i];
    if (t < shortlist) {
      head_targets[i] = std::int32_t(t);
      continue;
    }
    std::size_t c = 0;
    while (t >= bounds_[c + 1]) ++c;
    head_targets[i] = std::int32_t(shortlist + std::int64_t(c));
    rows[c].push_back(std::int32_t(i));
    local[c].push_back(std::int32_t(t - bounds_[c]));
  }
  Tensor total = mul_scalar(cross_entropy(head_logits(hidden), head_targets), double(n));
  for (std::size_t c = 0; c < cutoffs_.size(); ++c) {
    if (rows[c].empty()) continue;
    const auto count = std::int64_t(rows[c].size());
    const Tensor h = embedding(hidden, rows[c], {count});  // gathers the cluster's rows
    const std::int64_t lo = bounds_[c], size = bounds_[c + 1] - bounds_[c];
    const Tensor logits = linear(h, weight_.narrow(0, lo, size), bias_.narrow(0, lo, size));
    total = add(total, mul_scalar(cross_entropy(logits, local[c]), double(count)));
  }
  return mul_scalar(total, 1.0 / double(n));
}

Tensor OutputLayer::log_probs(const Tensor& hidden) const {
  if (!adaptive()) return log_softmax(linear(hidden, weight_, bias_), -1);
  const std::int64_t shortlist = cutoffs_.front();
  const Tensor head = log_softmax(head_logits(hidden), -1);
  std::vector<Tensor> parts{head.narrow(1, 0, shortlist)};
  for (std::size_t c = 0; c < cutoffs_.size(); ++c) {
    const std::int64_t lo = bounds_[c], size = bounds_[c + 1] - bounds_[c];
    const Tensor tail = log_softmax(linear(hidden, weight_.narrow(0, lo, size), bias_.narrow(0, lo, size)), -1);
    parts.push_back(add(tail, head.narrow(1, shortlist + std::int64_t(c), 1)));
  }
  return concat(parts, 1);
}

}  // namespace crt::model
