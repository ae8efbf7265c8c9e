// SGD, Adam and AdamW updates over fixed element chunks (results independent of the thread
// count), optimiser state export/import, and global-norm gradient clipping.
#include "engine/optim.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "engine/autograd.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "kernels/kernels.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::usize;
using kernels::BinaryOp;

namespace {

// Elements per parallel chunk of an update or a norm; fixed so results never depend on threads.
constexpr std::int64_t kChunk = 1 << 15;

void require_finite_nonneg(double v, const char* op, const char* what) {
  require(std::isfinite(v) && v >= 0.0, op, what, " must be finite and >= 0, got ", v);
}

void require_unit_interval(double v, const char* op, const char* what) {
  require(v >= 0.0 && v < 1.0, op, what, " must be in [0, 1), got ", v);
}

// Parses "<slot>.<index>"; false when the key does not have that form.
bool parse_slot_key(const std::string& key, std::string& slot, std::size_t& index) {
  const auto dot = key.rfind('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == key.size()) return false;
  std::size_t value = 0;
  for (std::size_t i = dot + 1; i < key.size(); ++i) {
    const char c = key[i];
    if (c < '0' || c > '9') return false;
    if (value > (std::numeric_limits<std::size_t>::max() - 9) / 10) return false;
    value = value * 10 + std::size_t(c - '0');
  }
  slot = key.substr(0, dot);
  index = value;
  return true;
}

}  // namespace

// ---- Optimizer ---------------------------------------------------------------------------

Optimizer::Optimizer(const char* name, std::vector<Tensor> params, double lr,
                     std::vector<std::string> slot_names)
    : name_(name), params_(std::move(params)), lr_(0.0), slot_names_(std::move(slot_names)) {
  require(!params_.empty(), name_, "empty parameter list");
  std::set<const TensorImpl*> seen;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    require(p.defined(), name_, "parameter ", i, " is an undefined tensor");
    require(p.is_leaf() && p.requires_grad(), name_, "parameter ", i, " (", p.describe(),
            ") must be a leaf tensor with requires_grad");
    require(p.is_contiguous(), name_, "parameter ", i, " (", p.describe(),
            ") must be contiguous; optimisers update parameter storage in place");
    require(seen.insert(&p.impl()).second, name_, "parameter ", i, " (", p.describe(),
            ") appears more than once in the parameter list");
  }
  set_lr(lr);
  slots_.assign(params_.size(), std::vector<Tensor>(slot_names_.size()));
}

void Optimizer::set_lr(double lr) { require_finite_nonneg(lr, name_, "learning rate"); lr_ = lr; }

void Optimizer::step() {
  NoGradGuard no_grad;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    require(p.is_contiguous(), name_, "parameter ", i, " (", p.describe(),
            ") must be contiguous; optimisers update parameter storage in place");
    require(g.shape() == p.shape() && g.dtype() == p.dtype(), name_, "gradient ", g.describe(),
            " of parameter ", i, " does not match the parameter ", p.describe());
    update(i, p, g.contiguous(), slots_[i]);
  }
  ++step_;
}

void Optimizer::zero_grad() {
  for (Tensor& p : params_) p.zero_grad();
}

OptimizerState Optimizer::state() const {
  OptimizerState out;
  out.emplace_back("step", Tensor::scalar(double(step_), DType::f64));
  for (std::size_t i = 0; i < params_.size(); ++i)
    for (std::size_t s = 0; s < slot_names_.size(); ++s)
      if (slots_[i][s].defined())
        out.emplace_back(slot_names_[s] + "." + std::to_string(i), slots_[i][s]);
  return out;
}

void Optimizer::load_state(const OptimizerState& state) {
  const char* op = "Optimizer::load_state";
  bool have_step = false;
  std::int64_t step = 0;
  std::vector<std::vector<Tensor>> slots(params_.size(), std::vector<Tensor>(slot_names_.size()));
  for (const auto& [key, value] : state) {
    require(value.defined(), op, name_, " state entry '", key, "' is an undefined tensor");
    if (key == "step") {
      require(!have_step, op, name_, " state has 'step' twice");
      require(value.numel() == 1, op, name_, " state 'step' must hold one value, got ",
              value.describe());
      const double v = value.item();
      require(std::isfinite(v) && v >= 0 && v == std::floor(v) && v < 0x1p62, op, name_,
              " state 'step' must be a non-negative integer, got ", v);
      step = std::int64_t(v);
      have_step = true;
      continue;
    }
    std::string slot;
    std::size_t index = 0;
    require(parse_slot_key(key, slot, index), op, name_, " state has unexpected entry '", key,
            "' (expected 'step' or '<slot>.<parameter index>')");
    const auto it = std::find(slot_names_.begin(), slot_names_.end(), slot);
    require(it != slot_names_.end(), op, name_, " has no state slot '", slot, "' (entry '",
            key, "'); was the state saved by another kind of optimiser?");
    require(index < params_.size(), op, name_, " state entry '", key, "' names parameter ",
            index, " but the optimiser has ", params_.size(), " parameters");
    const Tensor& p = params_[index];
    require(value.shape() == p.shape() && value.dtype() == p.dtype(), op, name_,
            " state entry '", key, "' is ", value.describe(), " but parameter ", index, " is ",
            p.describe());
    Tensor& dst = slots[index][usize(it - slot_names_.begin())];
    require(!dst.defined(), op, name_, " state has entry '", key, "' twice");
    dst = value;
  }
  require(have_step, op, name_, " state lacks the 'step' entry");
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const auto present = std::count_if(slots[i].begin(), slots[i].end(),
                                       [](const Tensor& t) { return t.defined(); });
    if (present == 0 || usize(present) == slot_names_.size()) continue;
    for (std::size_t s = 0; s < slot_names_.size(); ++s)
      require(slots[i][s].defined(), op, name_, " state for parameter ", i, " lacks '",
              slot_names_[s], ".", i, "' while other entries of that parameter are present");
  }
  // Everything is valid: copy into fresh buffers owned by the optimiser.
  NoGradGuard no_grad;
  for (auto& per_param : slots)
    for (Tensor& t : per_param)
      if (t.defined()) {
        Tensor owned = Tensor::empty(t.shape(), t.dtype());
        owned.copy_(t);
        t = owned;
      }
  slots_ = std::move(slots);
  step_ = step;
}

// ---- SGD -----------------------------------------------------------------------------------

namespace {

// One SGD step over [0, n): see SGD in optim.hpp. `buf` is null without momentum; `first`
// means buf holds no history yet.
template <class T>
void sgd_update(T* p, const T* g, T* buf, bool first, std::int64_t n, const SGDOptions& o,
                double lr) {
  const T wd = T(o.weight_decay), mu = T(o.momentum), neg_lr = T(-lr);
  parallel_for(0, n, kChunk, [&](std::int64_t lo, std::int64_t hi) {
    const std::size_t len = usize(hi - lo);
    T* pc = p + lo;
    const T* d = g + lo;
    std::vector<T> tmp;
    if (o.weight_decay != 0.0 || o.nesterov) {
      tmp.assign(d, d + len);
      if (o.weight_decay != 0.0) kernels::axpy(wd, pc, tmp.data(), len);  // d = g + wd p
      d = tmp.data();
    }
    if (buf == nullptr) {
      kernels::axpy(neg_lr, d, pc, len);
      return;
    }
    T* bc = buf + lo;
    if (first) {
      std::copy(d, d + len, bc);
    } else {
      kernels::binary_scalar_right(BinaryOp::mul, bc, mu, bc, len);
      kernels::binary(BinaryOp::add, bc, d, bc, len);
    }
    if (o.nesterov) {
      kernels::axpy(mu, bc, tmp.data(), len);  // d + mu buf
      kernels::axpy(neg_lr, tmp.data(), pc, len);
    } else {
      kernels::axpy(neg_lr, bc, pc, len);
    }
  });
}

}  // namespace

SGD::SGD(std::vector<Tensor> params, const SGDOptions& options)
    : Optimizer("SGD", std::move(params), options.lr,
                options.momentum > 0.0 ? std::vector<std::string>{"momentum"}
                                       : std::vector<std::string>{}),
      options_(options) {
  require_unit_interval(options.momentum, "SGD", "momentum");
  require_finite_nonneg(options.weight_decay, "SGD", "weight_decay");
  require(!options.nesterov || options.momentum > 0.0, "SGD",
          "nesterov needs momentum > 0, got momentum ", options.momentum);
}

void SGD::update(std::size_t, const Tensor& param, const Tensor& grad,
                 std::vector<Tensor>& slots) {
  Tensor buffer;
  bool first = false;
  if (options_.momentum > 0.0) {
    if (!slots[0].defined()) {
      slots[0] = Tensor::empty(param.shape(), param.dtype());
      first = true;
    }
    buffer = slots[0];
  }
  dispatch_dtype(param.dtype(), [&](auto zero) {
    using T = decltype(zero);
    sgd_update<T>(param.data<T>(), grad.data<T>(), buffer.defined() ? buffer.data<T>() : nullptr,
                  first, param.numel(), options_, lr());
  });
  param.bump_version();
}

// ---- Adam / AdamW --------------------------------------------------------------------------

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options)
    : Adam("Adam", std::move(params), options, /*decoupled=*/false) {}

Adam::Adam(const char* name, std::vector<Tensor> params, const AdamOptions& options,
           bool decoupled)
    : Optimizer(name, std::move(params), options.lr, {"m", "v"}),
      options_(options),
      decoupled_(decoupled) {
  require_unit_interval(options.beta1, name, "beta1");
  require_unit_interval(options.beta2, name, "beta2");
  require(std::isfinite(options.eps) && options.eps > 0.0, name, "eps must be finite and > 0, got ",
          options.eps);
  require_finite_nonneg(options.weight_decay, name, "weight_decay");
}

void Adam::update(std::size_t, const Tensor& param, const Tensor& grad,
                  std::vector<Tensor>& slots) {
  for (Tensor& s : slots)
    if (!s.defined()) s = Tensor::zeros(param.shape(), param.dtype());
  const double t = double(step_count() + 1);
  kernels::AdamStep s{};
  s.lr = float(lr());
  s.beta1 = float(options_.beta1);
  s.beta2 = float(options_.beta2);
  s.eps = float(options_.eps);
  s.weight_decay = float(options_.weight_decay);
  // Bias corrections from the single-precision betas the kernel applies.
  s.bc1 = float(1.0 - std::pow(double(s.beta1), t));
  s.bc2 = float(1.0 - std::pow(double(s.beta2), t));
  s.decoupled = decoupled_;
  dispatch_dtype(param.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* m = slots[0].data<T>();
    T* v = slots[1].data<T>();
    parallel_for(0, param.numel(), kChunk, [&](std::int64_t lo, std::int64_t hi) {
      kernels::adam_update(p + lo, g + lo, m + lo, v + lo, usize(hi - lo), s);
    });
  });
  param.bump_version();
}

AdamW::AdamW(std::vector<Tensor> params, const AdamOptions& options)
    : Adam("AdamW", std::move(params), options, /*decoupled=*/true) {}

// ---- gradient clipping ----------------------------------------------------------------------

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  const char* op = "clip_grad_norm";
  require(std::isfinite(max_norm) && max_norm > 0.0, op, "max_norm must be finite and > 0, got ",
          max_norm);
  NoGradGuard no_grad;
  std::vector<Tensor> grads;  // contiguous gradients (copies of non-contiguous ones)
  std::vector<std::size_t> owner;
  double total = 0.0;
  for (std::size_t i = 0; i < params.size(); ++i) {
    require(params[i].defined(), op, "parameter ", i, " is an undefined tensor");
    const Tensor g = params[i].grad();
    if (!g.defined()) continue;
    const Tensor gc = g.contiguous();
    const std::int64_t n = gc.numel();
    std::vector<double> partial(usize((n + kChunk - 1) / kChunk), 0.0);
    dispatch_dtype(gc.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T* gp = gc.data<T>();
      parallel_for(0, n, kChunk, [&](std::int64_t lo, std::int64_t hi) {
        partial[usize(lo / kChunk)] = kernels::sum_squares(gp + lo, usize(hi - lo));
      });
    });
    for (const double s : partial) total += s;  // fixed order
    grads.push_back(gc);
    owner.push_back(i);
  }
  require(std::isfinite(total), op, "gradient norm is NaN/inf (sum of squares ", total,
          "); gradients left unchanged");
  const double norm = std::sqrt(total);
  if (norm <= max_norm) return norm;
  const double scale = max_norm / norm;
  for (std::size_t k = 0; k < grads.size(); ++k) {
    const Tensor& gc = grads[k];
    dispatch_dtype(gc.dtype(), [&](auto zero) {
      using T = decltype(zero);
      T* gp = gc.data<T>();
      parallel_for(0, gc.numel(), kChunk, [&](std::int64_t lo, std::int64_t hi) {
        kernels::binary_scalar_right(BinaryOp::mul, gp + lo, T(scale), gp + lo, usize(hi - lo));
      });
    });
    // A non-contiguous gradient was scaled in a copy: write it back through the view.
    Tensor g = params[owner[k]].grad();
    if (!g.is_contiguous()) g.copy_(gc);
  }
  return norm;
}

}  // namespace crt
