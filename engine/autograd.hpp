// Reverse-mode autograd, define-by-run. Each differentiable op that runs while grad mode is
// on and sees an input that requires grad records a Node: its name, a sequence number
// (recording order is a topological order), edges to the inputs' producers or leaves, and a
// backward closure that holds only what it needs. backward() runs the reachable nodes in
// reverse recording order. detach() is the explicit cut used for truncated BPTT.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.hpp"

namespace crt {

// Which inputs of a node want a gradient; backward closures skip the others.
class NeedsGrad {
 public:
  explicit NeedsGrad(std::vector<bool> flags) : flags_(std::move(flags)) {}
  bool operator[](std::size_t i) const { return i < flags_.size() && flags_[i]; }

 private:
  std::vector<bool> flags_;
};

// Returns one gradient per input (undefined where not needed), each shaped like its input.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out, const NeedsGrad&)>;

struct Edge {
  std::shared_ptr<Node> producer;  // non-leaf input: the node that made it
  std::shared_ptr<TensorImpl> leaf;  // leaf input that requires grad
  Shape shape;                       // the input's shape (checked against its gradient)
};

struct Node {
  const char* name;
  std::uint64_t sequence;
  std::vector<Edge> edges;
  NeedsGrad needs;
  BackwardFn backward;
  bool released = false;  // saved tensors freed by a backward without retain_graph
  // Optional, for ops whose input gradient is zero outside a part of the input (slice): adds
  // that part, from the output gradient, into `acc`, the input's gradient accumulated so far
  // (contiguous, of the input's shape, owned by the backward pass alone), in place. The backward
  // pass then skips building a full-size gradient of zeros and adding all of it.
  std::function<void(const Tensor& grad_out, const Tensor& acc)> add_into;
};

// Grad mode (thread-local). NoGradGuard turns recording off for a scope.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Finite-value checking, off by default (process-wide). While on, every op that records a node
// scans its output, and the backward pass scans every gradient an op returns: the first
// non-finite value throws crt::Error naming the op, the tensor and the element, so a run that
// diverged can be replayed from its last checkpoint to find where. Costs a pass over every
// activation and gradient.
void set_check_finite(bool on);
bool check_finite_enabled();

// True when an op over these inputs must record a node.
bool should_record(std::initializer_list<const Tensor*> inputs);
bool should_record(const std::vector<Tensor>& inputs);

// Attaches a node to `out` (which must be freshly created by the op). Inputs may include
// undefined tensors (optional arguments); they get no edge.
// The node of `out`, if record_node made one (for attaching Node::add_into).
Node* recorded_node(const Tensor& out);
void record_node(Tensor& out, const char* name, const std::vector<Tensor>& inputs,
                 BackwardFn backward);

// Runs backward from `root` with seed gradient `seed` (same shape as root).
void run_backward(const Tensor& root, const Tensor& seed, bool retain_graph);

}  // namespace crt
