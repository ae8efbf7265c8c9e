// gru_sequence: a GRU run over T steps as one autograd node (PyTorch nn.GRU convention, gates
// r, z, n). The input projections of all steps are one GEMM and only h W_hh^T runs step by
// step; backward is one pass back through time with each weight gradient one GEMM over all steps.
#include <algorithm>
#include <utility>

#include "engine/flops.hpp"
#include "engine/ops.hpp"
#include "engine/ops/gru_common.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "kernels/kernels.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::gemm_tiled;
using detail::project;
using detail::usize;

namespace {

constexpr const char* kOp = "gru_sequence";

// Layout note: internally everything is time-major. Row t * B + b of the [T * B, .] buffers
// belongs to step t, batch entry b, so one step is a contiguous [B, .] block that the gate
// kernels and the per-step GEMM take as is, and the hidden state entering step t (states
// rows t * B .. t * B + B - 1, states[0] = h0) lines up with that step's gate rows.

// The recurrent product of one step, [B, 3H] x [3H, H] or its transpose, sits on the
// sequential critical path: it is tiled over threads like any product (gemm_tiles keeps it on
// one thread below 2^20 FLOPs a thread, and batch 1 takes unit_split_step instead), which
// shortens the sequential path at batch 16. Both per-step products below pass threads = true.

void check_args(const Tensor& x, const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                const Tensor& b_ih, const Tensor& b_hh) {
  detail::require_defined(x, kOp, "input x");
  detail::require_defined(h0, kOp, "initial state h0");
  detail::require_defined(w_ih, kOp, "weight w_ih");
  detail::require_defined(w_hh, kOp, "weight w_hh");
  require(x.dim() == 3, kOp, "x ", x.describe(), " should be [B, T, I]");
  require(h0.dim() == 2, kOp, "h0 ", h0.describe(), " should be [B, H]");
  const std::int64_t batch = x.size(0), steps = x.size(1), in = x.size(2), hidden = h0.size(1);
  require(steps >= 1, kOp, "x ", x.describe(), " has no time steps; expected [B, T, I] with T >= 1");
  require(h0.size(0) == batch, kOp, "h0 ", h0.describe(), " should be [B, H] = [", batch, ", ",
          hidden, "] to match x ", x.describe());
  detail::require_gru_weights(kOp, x, h0, w_ih, w_hh, b_ih, b_hh, in, hidden);
}

// Detached, contiguous data of an input (undefined stays undefined).
Tensor data_of(const Tensor& t) { return t.defined() ? t.detach().contiguous() : Tensor(); }

// What the backward pass reads, all detached and contiguous (time-major, see above).
struct Saved {
  std::int64_t batch, steps, in, hidden;
  Tensor x_tm;     // [T * B, I]       only when w_ih needs a gradient
  Tensor w_ih;     // [3H, I]          only when x needs a gradient
  Tensor w_hh;     // [3H, H]
  Tensor gi;       // [T * B, 3H]      x W_ih^T + b_ih of every step
  Tensor gh;       // [T * B, 3H]      h W_hh^T + b_hh of every step
  Tensor states;   // [(T + 1) * B, H] h0, then the state after each step
};

// One reverse pass through time. Returns {dx, dh0, dW_ih, dW_hh, db_ih, db_hh} (undefined
// where not needed). grad: [B, T, H], the gradient of every output state.
template <class T>
std::vector<Tensor> backward_through_time(const Saved& s, const Tensor& grad,
                                          const NeedsGrad& needs) {
  const std::int64_t B = s.batch, steps = s.steps, I = s.in, H = s.hidden, g3 = 3 * H;
  const DType dtype = grad.dtype();
  const Tensor g_tm = grad.transpose(0, 1).contiguous();  // [T, B, H]
  const Tensor d_gi = Tensor::empty({steps * B, g3}, dtype);
  const Tensor d_gh = Tensor::empty({steps * B, g3}, dtype);
  // carry: the gradient reaching the state that enters the current step from later steps
  // (the recurrent path); dh_out: its total, carry + the step's own output gradient.
  Tensor carry = Tensor::zeros({B, H}, dtype);
  const Tensor dh_out = Tensor::empty({B, H}, dtype);
  const T* gp = g_tm.data<T>();
  const T* gi = s.gi.data<T>();
  const T* gh = s.gh.data<T>();
  const T* hs = s.states.data<T>();
  T* dgi = d_gi.data<T>();
  T* dgh = d_gh.data<T>();
  T* cp = carry.data<T>();
  T* dp = dh_out.data<T>();
  for (std::int64_t t = steps - 1; t >= 0; --t) {
    const std::int64_t gate_row = t * B * g3, state_row = t * B * H;
    kernels::binary(kernels::BinaryOp::add, gp + state_row, cp, dp, usize(B * H));
    // carry = z * dh_out (the direct path to the previous state) ...
    kernels::gru_gates_backward(gi + gate_row, gh + gate_row, hs + state_row, dp, dgi + gate_row,
                                dgh + gate_row, cp, usize(B), usize(H));
    // ... + d_gh W_hh (the recurrent path); skipped for h0 when nothing asks for dh0.
    if (t > 0 || needs[1])
      gemm_tiled<T>(false, false, B, H, g3, dgh + gate_row, g3, s.w_hh.data<T>(), H, T(1), cp, H,
                    true);
  }
  Tensor dx, dh0, dw_ih, dw_hh, db_ih, db_hh;
  if (needs[0]) {  // dx = d_gi W_ih, all steps at once, back to [B, T, I]
    const Tensor dx_tm = Tensor::empty({steps, B, I}, dtype);
    gemm_tiled<T>(false, false, steps * B, I, g3, dgi, g3, s.w_ih.data<T>(), I, T(0),
                  dx_tm.data<T>(), I, true);
    dx = dx_tm.transpose(0, 1).contiguous();
  }
  if (needs[1]) dh0 = carry;
  if (needs[2]) {  // dW_ih = sum_t d_gi_t^T x_t = d_gi^T x over all T * B rows
    dw_ih = Tensor::empty({g3, I}, dtype);
    gemm_tiled<T>(true, false, g3, I, steps * B, dgi, g3, s.x_tm.data<T>(), I, T(0),
                  dw_ih.data<T>(), I, true);
  }
  if (needs[3]) {  // dW_hh = d_gh^T h_prev, h_prev being states rows 0 .. T * B - 1
    dw_hh = Tensor::empty({g3, H}, dtype);
    gemm_tiled<T>(true, false, g3, H, steps * B, dgh, g3, hs, H, T(0), dw_hh.data<T>(), H, true);
  }
  if (needs[4]) {
    db_ih = Tensor::empty({g3}, dtype);
    kernels::sum_cols(dgi, db_ih.data<T>(), usize(steps * B), usize(g3), false);
  }
  if (needs[5]) {
    db_hh = Tensor::empty({g3}, dtype);
    kernels::sum_cols(dgh, db_hh.data<T>(), usize(steps * B), usize(g3), false);
  }
  return {dx, dh0, dw_ih, dw_hh, db_ih, db_hh};
}

}  // namespace

// x: [B, T, I], h0: [B, H], w_ih: [3H, I], w_hh: [3H, H], b_ih, b_hh: [3H] or undefined
// -> [B, T, H]. Saved for backward: gi and gh of every step (recomputing gh would repeat the
// sequential per-step GEMM, the expensive part at small batch; saving them costs the same
// 2 T B 3H values that T gru_cell nodes hold), the states h0..h_T, and x / W_ih only when a
// gradient reads them.
Tensor gru_sequence(const Tensor& x, const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                    const Tensor& b_ih, const Tensor& b_hh) {
  check_args(x, h0, w_ih, w_hh, b_ih, b_hh);
  const bool record = should_record({&x, &h0, &w_ih, &w_hh, &b_ih, &b_hh});
  Saved s{x.size(0), x.size(1), x.size(2), h0.size(1), {}, {}, {}, {}, {}, {}};
  const std::int64_t B = s.batch, steps = s.steps, H = s.hidden, g3 = 3 * H;
  const DType dtype = x.dtype();
  const Tensor x_tm = x.detach().transpose(0, 1).contiguous();  // [T, B, I]
  const Tensor wih_d = data_of(w_ih), bih_d = data_of(b_ih), bhh_d = data_of(b_hh);
  s.w_hh = data_of(w_hh);
  s.gi = Tensor::empty({steps * B, g3}, dtype);
  // Without a graph one step's gh is all that is ever needed at a time.
  s.gh = Tensor::empty({(record ? steps : 1) * B, g3}, dtype);
  s.states = Tensor::empty({(steps + 1) * B, H}, dtype);
  s.states.narrow(0, 0, B).copy_(h0.detach());
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* gi = s.gi.data<T>();
    T* hs = s.states.data<T>();
    Tensor wih_t;  // inference: the cached transpose
    project<T>(x_tm.data<T>(), steps * B, s.in, wih_d.data<T>(),
               detail::cached_weight_t<T>(w_ih, steps * B, wih_t), bih_d, gi, g3, true);
    // Weight-bound batch-1 steps: split by hidden units (at 2+ threads), and in inference
    // reading W_hh from cached GEMV panels (on any thread count, so results stay the same).
    Tensor hh_panels;
    const auto whh = detail::gate_weights<T>(w_hh, s.w_hh, B, hh_panels);
    if (whh.packed || detail::use_unit_split(B)) {
      const T* bhh = bhh_d.defined() ? bhh_d.template data<T>() : nullptr;
      for (std::int64_t t = 0; t < steps; ++t)
        detail::unit_split_step<T>({nullptr, {}, nullptr, gi + t * B * g3}, hs + t * B * H, whh,
                                   bhh, nullptr, record ? s.gh.data<T>() + t * B * g3 : nullptr,
                                   hs + (t + 1) * B * H, H, true);
      return;
    }
    // W_hh^T [H, 3H] made once for all steps: the per-step product then reads it in place
    // instead of transposing W_hh into packed panels at every step. (Up to 4 rows the product
    // runs as dot products over W_hh as stored, which need no copy.)
    const bool transpose_once = B > 4;
    const Tensor whh_t = transpose_once ? s.w_hh.transpose(0, 1).contiguous() : Tensor();
    for (std::int64_t t = 0; t < steps; ++t) {
      T* gh = s.gh.data<T>() + (record ? t * B * g3 : 0);
      const T* h = hs + t * B * H;
      project<T>(h, B, H, s.w_hh.data<T>(), transpose_once ? whh_t.data<T>() : nullptr, bhh_d,
                 gh, g3, true);
      kernels::gru_gates_forward(gi + t * B * g3, gh, h, hs + (t + 1) * B * H, usize(B),
                                 usize(H));
    }
  });
  Tensor out = Tensor::empty({B, steps, H}, dtype);
  out.copy_(s.states.narrow(0, B, steps * B).view({steps, B, H}).transpose(0, 1));

  if (record) {
    if (w_ih.requires_grad()) s.x_tm = x_tm.view({steps * B, s.in});
    if (x.requires_grad()) s.w_ih = wih_d;
    record_node(out, kOp, {x, h0, w_ih, w_hh, b_ih, b_hh},
                [s = std::move(s)](const Tensor& grad, const NeedsGrad& needs) {
                  return dispatch_dtype(grad.dtype(), [&](auto tag) {
                    return backward_through_time<decltype(tag)>(s, grad, needs);
                  });
                });
  }
  return out;
}

}  // namespace crt
