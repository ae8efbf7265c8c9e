// Optimisers (SGD with momentum/Nesterov, Adam, AdamW) updating leaf parameters in place from
// their accumulated gradients, their exportable state for checkpoints, and global-norm
// gradient clipping.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.hpp"

namespace crt {

// Named optimiser state as exported for checkpoints: "step" (f64 scalar) plus per-parameter
// buffers "<slot>.<index>" shaped like parameter <index> (e.g. "m.3", "v.3", "momentum.0").
using OptimizerState = std::vector<std::pair<std::string, Tensor>>;

// Base class: owns the parameter list, the learning rate (set by a schedule), the step counter
// and per-parameter state buffers ("slots"), which are allocated on a parameter's first update.
// Parameters must be distinct, contiguous leaf tensors that require grad; a parameter without
// a gradient is skipped by step(). Updates run under NoGradGuard on the parameter storage.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient; then the step counter advances.
  void step();
  // Drops every parameter's gradient (the next backward allocates fresh buffers).
  void zero_grad();

  const std::vector<Tensor>& params() const { return params_; }
  double lr() const { return lr_; }
  void set_lr(double lr);  // finite, >= 0
  std::int64_t step_count() const { return step_; }
  const char* name() const { return name_; }

  // The live state buffers (not copies: copy them if they must outlive the next step()).
  OptimizerState state() const;
  // Replaces the whole state from a state() export of an optimiser of the same kind over
  // parameters of the same shapes and dtypes. Validates everything before changing anything.
  void load_state(const OptimizerState& state);

 protected:
  Optimizer(const char* name, std::vector<Tensor> params, double lr,
            std::vector<std::string> slot_names);
  // Updates parameter `index` (contiguous) from its contiguous gradient. `slots` holds this
  // parameter's state buffers, one per slot name, undefined until the update allocates them.
  // step_count() is the number of completed steps before this one.
  virtual void update(std::size_t index, const Tensor& param, const Tensor& grad,
                      std::vector<Tensor>& slots) = 0;

 private:
  const char* name_;
  std::vector<Tensor> params_;
  double lr_;
  std::int64_t step_ = 0;
  std::vector<std::string> slot_names_;
  std::vector<std::vector<Tensor>> slots_;  // [param][slot]
};

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;      // in [0, 1)
  bool nesterov = false;      // needs momentum > 0
  double weight_decay = 0.0;  // L2 term added to the gradient
};

// d = g + wd * p; with momentum: buf = d on the first update, then buf = momentum * buf + d,
// and d = buf (or d + momentum * buf with Nesterov); p -= lr * d. State slot: "momentum".
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SGDOptions& options = {});
  const SGDOptions& options() const { return options_; }

 protected:
  void update(std::size_t index, const Tensor& param, const Tensor& grad,
              std::vector<Tensor>& slots) override;

 private:
  SGDOptions options_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;         // in [0, 1)
  double beta2 = 0.999;       // in [0, 1)
  double eps = 1e-8;          // > 0
  double weight_decay = 0.0;  // Adam: L2 added to the gradient; AdamW: decoupled
};

// Adam with bias correction at t = step_count() + 1 (one counter for all parameters):
// m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2, p -= lr * (m / bc1) / (sqrt(v / bc2) + eps).
// Plain Adam adds weight_decay * p to g. State slots: "m", "v".
// The update runs in kernels::adam_update, whose hyperparameters are single precision (also
// for f64 parameters).
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& options = {});
  const AdamOptions& options() const { return options_; }

 protected:
  Adam(const char* name, std::vector<Tensor> params, const AdamOptions& options, bool decoupled);
  void update(std::size_t index, const Tensor& param, const Tensor& grad,
              std::vector<Tensor>& slots) override;

 private:
  AdamOptions options_;
  bool decoupled_;
};

// AdamW: Adam whose weight decay is decoupled: p -= lr * wd * p, then the Adam step with the
// raw gradient.
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, const AdamOptions& options = {});
};

// Global L2 norm of all gradients (parameters without one are skipped), accumulated in
// double in parameter order. When it exceeds max_norm (> 0), every gradient is scaled in place
// by max_norm / norm. Returns the norm before clipping. Throws crt::Error on a NaN/inf norm,
// leaving the gradients untouched.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace crt
