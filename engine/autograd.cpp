// Node recording and the backward pass (see autograd.hpp).
#include "engine/autograd.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

#include "engine/ops.hpp"
#include "engine/parallel.hpp"
#include "kernels/kernels.hpp"

namespace crt {

namespace {
thread_local bool t_grad_enabled = true;
std::atomic<std::uint64_t> g_sequence{0};
std::atomic<bool> g_check_finite{false};

// Throws naming `what` when `t` holds a NaN or an infinity (the first one, in row-major order).
void require_all_finite(const Tensor& t, const std::string& what) {
  const Tensor c = t.contiguous();
  const auto first_bad = [&](const auto* p) -> std::int64_t {
    for (std::int64_t i = 0; i < c.numel(); ++i)
      if (!std::isfinite(p[i])) return i;
    return -1;
  };
  const std::int64_t bad = c.dtype() == DType::f32 ? first_bad(c.data<float>()) : first_bad(c.data<double>());
  if (bad < 0) return;
  const double v = c.dtype() == DType::f32 ? double(c.data<float>()[bad]) : c.data<double>()[bad];
  throw Error(format_error("check_finite", what, " ", c.describe(), " has its first non-finite value (", v,
                           ") at element ", bad, ", the first one while checking is on"));
}
}  // namespace

void set_check_finite(bool on) { g_check_finite.store(on); }
bool check_finite_enabled() { return g_check_finite.load(std::memory_order_relaxed); }

bool grad_enabled() { return t_grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = previous_; }

bool should_record(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool should_record(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record_node(Tensor& out, const char* name, const std::vector<Tensor>& inputs,
                 BackwardFn backward) {
  if (check_finite_enabled()) require_all_finite(out, std::string("the output of op '") + name + "'");
  auto node = std::make_shared<Node>(Node{name, g_sequence.fetch_add(1), {}, NeedsGrad({}),
                                          std::move(backward), false, {}});
  std::vector<bool> needs;
  node->edges.reserve(inputs.size());
  for (const Tensor& in : inputs) {
    Edge e;
    const bool wants = in.defined() && in.requires_grad();
    if (wants) {
      if (in.grad_fn()) e.producer = in.grad_fn();
      else e.leaf = in.impl_ptr();
      e.shape = in.shape();
    }
    needs.push_back(wants);
    node->edges.push_back(std::move(e));
  }
  node->needs = NeedsGrad(std::move(needs));
  out.impl().grad_fn = std::move(node);
  out.impl().requires_grad = true;
}

Node* recorded_node(const Tensor& out) {
  return out.defined() ? out.impl().grad_fn.get() : nullptr;
}

namespace {

// True when `t` is the only handle on its storage (no other tensor or view can see it), so the
// backward pass may add into it in place.
bool exclusively_owned(const Tensor& t) {
  return t.impl_ptr().use_count() == 1 && t.impl().storage.use_count() == 1 &&
         t.is_contiguous();
}

// acc += g elementwise (same shape and dtype; acc contiguous), in fixed chunks over threads:
// the same sums as add(acc, g), without a new buffer.
void add_in_place(const Tensor& acc, const Tensor& g_in) {
  const Tensor g = g_in.contiguous();
  constexpr std::int64_t kGrain = 1 << 15;
  parallel_for(0, acc.numel(), kGrain, [&](std::int64_t lo, std::int64_t hi) {
    const auto n = std::size_t(hi - lo);
    if (acc.dtype() == DType::f32)
      kernels::axpy(1.0f, g.data<float>() + lo, acc.data<float>() + lo, n);
    else
      kernels::axpy(1.0, g.data<double>() + lo, acc.data<double>() + lo, n);
  });
  acc.bump_version();  // an in-place writer, like copy_
}

// Adds g into a leaf's gradient buffer, which the leaf owns (never aliases g).
void accumulate_leaf(TensorImpl& leaf, const Tensor& g) {
  if (!leaf.grad) {
    Tensor owned = Tensor::empty(g.shape(), g.dtype());
    owned.copy_(g);
    leaf.grad = owned.impl_ptr();
    return;
  }
  add_in_place(Tensor(leaf.grad), g);
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& seed_in, bool retain_graph) {
  require(root.requires_grad(), "backward",
          "tensor ", root.describe(), " does not require grad (no input of the ops that made "
          "it requires grad, or it was made under NoGradGuard)");
  Tensor seed = seed_in;
  if (!seed.defined()) {
    require(root.numel() == 1, "backward", "output ", root.describe(),
            " is not a scalar; pass a seed gradient of the same shape");
    seed = Tensor::ones(root.shape(), root.dtype());
  }
  require(seed.shape() == root.shape() && seed.dtype() == root.dtype(), "backward",
          "seed gradient ", seed.describe(), " does not match output ", root.describe());

  NoGradGuard no_grad;  // backward closures compute with plain ops
  if (!root.grad_fn()) {
    accumulate_leaf(root.impl(), seed);
    return;
  }

  // Collect the reachable nodes, then run them newest first (reverse recording order).
  std::vector<Node*> order;
  std::unordered_set<Node*> seen;
  std::vector<Node*> stack{root.grad_fn().get()};
  seen.insert(stack.back());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    order.push_back(n);
    for (const Edge& e : n->edges)
      if (e.producer && seen.insert(e.producer.get()).second) stack.push_back(e.producer.get());
  }
  std::sort(order.begin(), order.end(),
            [](const Node* a, const Node* b) { return a->sequence > b->sequence; });

  std::unordered_map<Node*, Tensor> grads;
  grads[root.grad_fn().get()] = seed;
  for (Node* node : order) {
    auto it = grads.find(node);
    if (it == grads.end()) continue;
    const Tensor g = std::move(it->second);
    grads.erase(it);
    require(!node->released, "backward",
            "backward through a graph whose saved tensors were already freed (op '",
            node->name, "'); call backward(seed, /*retain_graph=*/true) the first time to "
            "run it twice");
    // A slice of a tensor whose gradient has begun: add the slice's part in place.
    if (node->add_into && node->edges.size() == 1 && node->edges[0].producer) {
      const auto slot = grads.find(node->edges[0].producer.get());
      if (slot != grads.end() && exclusively_owned(slot->second) &&
          slot->second.dtype() == g.dtype()) {
        node->add_into(g, slot->second);
        if (!retain_graph) {
          node->backward = nullptr;
          node->add_into = nullptr;
          node->released = true;
        }
        continue;
      }
    }
    std::vector<Tensor> input_grads = node->backward(g, node->needs);
    require(input_grads.size() == node->edges.size(), "backward", "op '", node->name,
            "' returned ", input_grads.size(), " gradients for ", node->edges.size(),
            " inputs");
    for (std::size_t i = 0; i < node->edges.size(); ++i) {
      const Edge& e = node->edges[i];
      const Tensor& gi = input_grads[i];
      if (!gi.defined() || (!e.producer && !e.leaf)) continue;
      require(gi.shape() == e.shape, "backward", "op '", node->name, "' produced a gradient ",
              gi.describe(), " for input ", i, " of shape ", e.shape);
      if (check_finite_enabled())
        require_all_finite(gi, "the gradient op '" + std::string(node->name) + "' returned for its input " +
                                   std::to_string(i));
      if (e.producer) {
        auto [slot, inserted] = grads.try_emplace(e.producer.get(), gi);
        if (!inserted) {
          if (exclusively_owned(slot->second) && slot->second.dtype() == gi.dtype())
            add_in_place(slot->second, gi);
          else
            slot->second = add(slot->second, gi);
        }
      } else {
        accumulate_leaf(*e.leaf, gi);
      }
    }
    if (!retain_graph) {
      node->backward = nullptr;  // frees saved tensors
      node->add_into = nullptr;
      node->released = true;
    }
  }
}

}  // namespace crt
