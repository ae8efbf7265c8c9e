// concat joins tensors along an existing axis; stack joins them along a new one (unsqueeze
// each, then concat). Backward hands each input its slice of the gradient.
#include "engine/ops.hpp"
#include "engine/ops/op_util.hpp"

namespace crt {

namespace {

// Every input defined, of one dtype and rank, with equal extents everywhere except
// `skip_axis` (-1: every axis must match).
void check_inputs(const std::vector<Tensor>& xs, int skip_axis, const char* op) {
  const Tensor& first = xs.front();
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    require(x.defined(), op, "input ", i, " is an undefined tensor");
    require(x.dtype() == first.dtype(), op, "dtype mismatch: input ", i, " is ", x.describe(),
            " but input 0 is ", first.describe());
    require(x.dim() == first.dim(), op, "rank mismatch: input ", i, " has shape ", x.shape(),
            " but input 0 has shape ", first.shape());
    for (int a = 0; a < x.dim(); ++a)
      require(a == skip_axis || x.shape()[a] == first.shape()[a], op, "shape mismatch: input ",
              i, " has shape ", x.shape(), " but input 0 has shape ", first.shape(),
              skip_axis >= 0 ? " (they may differ only on the concat axis)" : "",
              " (axis ", a, ")");
  }
}

}  // namespace

// xs: k tensors [..., n_i, ...] (n_i on `axis`) -> [..., sum n_i, ...]
Tensor concat(const std::vector<Tensor>& xs, int axis_in) {
  const char* op = "concat";
  require(!xs.empty(), op, "needs at least one input tensor");
  require(xs.front().defined(), op, "input 0 is an undefined tensor");
  require(xs.front().dim() >= 1, op, "inputs must have rank >= 1, got ", xs.front().describe());
  const int axis = detail::normalize_axis(axis_in, xs.front().dim(), op);
  check_inputs(xs, axis, op);

  Shape out_shape = xs.front().shape();
  out_shape[axis] = 0;
  for (const Tensor& x : xs) out_shape[axis] += x.shape()[axis];
  Tensor y = Tensor::empty(out_shape, xs.front().dtype());
  std::vector<std::int64_t> starts;
  {
    NoGradGuard ng;
    std::int64_t start = 0;
    for (const Tensor& x : xs) {
      starts.push_back(start);
      const std::int64_t n = x.shape()[axis];
      if (n > 0) y.narrow(axis, start, n).copy_(x);
      start += n;
    }
  }

  if (should_record(xs)) {
    std::vector<std::int64_t> lengths;
    for (const Tensor& x : xs) lengths.push_back(x.shape()[axis]);
    record_node(y, op, xs, [axis, starts, lengths](const Tensor& g, const NeedsGrad& needs) {
      std::vector<Tensor> grads(starts.size());
      for (std::size_t i = 0; i < starts.size(); ++i)
        if (needs[i]) grads[i] = g.narrow(axis, starts[i], lengths[i]);
      return grads;
    });
  }
  return y;
}

// xs: k tensors of one shape S -> S with a new axis of extent k at `axis`
Tensor stack(const std::vector<Tensor>& xs, int axis_in) {
  const char* op = "stack";
  require(!xs.empty(), op, "needs at least one input tensor");
  require(xs.front().defined(), op, "input 0 is an undefined tensor");
  const int axis = detail::normalize_axis(axis_in, xs.front().dim() + 1, op);
  check_inputs(xs, -1, op);
  std::vector<Tensor> expanded;
  expanded.reserve(xs.size());
  for (const Tensor& x : xs) expanded.push_back(x.unsqueeze(axis));
  return concat(expanded, axis);
}

}  // namespace crt
