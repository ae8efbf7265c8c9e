// gru_cell: one fused GRU step (PyTorch nn.GRUCell convention, gates r, z, n) recorded as a
// single node. Both input products run as kernels::gemm calls on contiguous data, the gate
// math as kernels::gru_gates_forward / _backward; nothing inside records sub-ops.
#include <algorithm>

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

constexpr const char* kOp = "gru_cell";

void check_args(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                const Tensor& b_ih, const Tensor& b_hh) {
  detail::require_defined(x, kOp, "input x");
  detail::require_defined(h, kOp, "hidden state h");
  detail::require_defined(w_ih, kOp, "weight w_ih");
  detail::require_defined(w_hh, kOp, "weight w_hh");
  require(x.dim() == 2, kOp, "x ", x.describe(), " should be [B, I]");
  require(h.dim() == 2, kOp, "h ", h.describe(), " should be [B, H]");
  const std::int64_t batch = x.size(0), in = x.size(1), hidden = h.size(1);
  require(h.size(0) == batch, kOp, "h ", h.describe(), " should be [B, H] = [", batch, ", ",
          hidden, "] to match x ", x.describe());
  detail::require_gru_weights(kOp, x, h, w_ih, w_hh, b_ih, b_hh, in, hidden);
}

// Detached, contiguous data of an input (undefined stays undefined).
Tensor data_of(const Tensor& t) { return t.defined() ? t.detach().contiguous() : Tensor(); }

}  // namespace

Tensor gru_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                const Tensor& b_ih, const Tensor& b_hh) {
  check_args(x, h, w_ih, w_hh, b_ih, b_hh);
  const std::int64_t batch = x.size(0), in = x.size(1), hidden = h.size(1);
  // x_d: [B, I], h_d: [B, H], wih_d: [3H, I], whh_d: [3H, H]
  const Tensor x_d = data_of(x), h_d = data_of(h), wih_d = data_of(w_ih), whh_d = data_of(w_hh);
  const Tensor gi = Tensor::empty({batch, 3 * hidden}, x.dtype());  // x W_ih^T + b_ih
  const Tensor gh = Tensor::empty({batch, 3 * hidden}, x.dtype());  // h W_hh^T + b_hh
  Tensor h_out = Tensor::empty({batch, hidden}, x.dtype());
  const bool record = should_record({&x, &h, &w_ih, &w_hh, &b_ih, &b_hh});
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // Inference at batch 1 reads both weights from cached GEMV panels (gate_weights), in
    // unit blocks on any thread count; else the unit split pays at 2+ threads only.
    Tensor ih_panels, hh_panels;
    const auto wih = detail::gate_weights<T>(w_ih, wih_d, batch, ih_panels);
    const auto whh = detail::gate_weights<T>(w_hh, whh_d, batch, hh_panels);
    if (whh.packed || detail::use_unit_split(batch)) {
      const Tensor bih_d = data_of(b_ih), bhh_d = data_of(b_hh);
      detail::unit_split_step<T>({x_d.data<T>(), wih, bih_d.defined() ? bih_d.data<T>() : nullptr,
                                  nullptr},
                                 h_d.data<T>(), whh, bhh_d.defined() ? bhh_d.data<T>() : nullptr,
                                 record ? gi.data<T>() : nullptr, record ? gh.data<T>() : nullptr,
                                 h_out.data<T>(), hidden, true);
      return;
    }
    Tensor wih_t, whh_t;  // inference: the cached transposes
    project<T>(x_d.data<T>(), batch, in, wih_d.data<T>(),
               detail::cached_weight_t<T>(w_ih, batch, wih_t), data_of(b_ih), gi.data<T>(),
               3 * hidden, true);
    project<T>(h_d.data<T>(), batch, hidden, whh_d.data<T>(),
               detail::cached_weight_t<T>(w_hh, batch, whh_t), data_of(b_hh), gh.data<T>(),
               3 * hidden, true);
    kernels::gru_gates_forward(gi.data<T>(), gh.data<T>(), h_d.data<T>(), h_out.data<T>(),
                               usize(batch), usize(hidden));
  });

  if (record) {
    // Saved (detached): h and the gate pre-activations gi, gh always; x and the weights only
    // when a gradient reads them (x for dW_ih, W_ih for dx, W_hh for dh).
    const Tensor x_saved = w_ih.requires_grad() ? x_d : Tensor();
    const Tensor wih_saved = x.requires_grad() ? wih_d : Tensor();
    const Tensor whh_saved = h.requires_grad() ? whh_d : Tensor();
    record_node(h_out, kOp, {x, h, w_ih, w_hh, b_ih, b_hh},
                [=](const Tensor& grad, const NeedsGrad& needs) {
                  const std::int64_t g3 = 3 * hidden;
                  const Tensor g = grad.contiguous();  // [B, H]
                  const Tensor d_gi = Tensor::empty({batch, g3}, g.dtype());
                  const Tensor d_gh = Tensor::empty({batch, g3}, g.dtype());
                  Tensor dh = Tensor::empty({batch, hidden}, g.dtype());
                  Tensor dx, dw_ih, dw_hh, db_ih, db_hh;
                  dispatch_dtype(g.dtype(), [&](auto tag) {
                    using T = decltype(tag);
                    kernels::gru_gates_backward(gi.data<T>(), gh.data<T>(), h_d.data<T>(),
                                                g.data<T>(), d_gi.data<T>(), d_gh.data<T>(),
                                                dh.data<T>(), usize(batch), usize(hidden));
                    if (needs[0]) {  // dx = d_gi W_ih
                      dx = Tensor::empty({batch, in}, g.dtype());
                      gemm_tiled<T>(false, false, batch, in, g3, d_gi.data<T>(), g3,
                                       wih_saved.data<T>(), in, T(0), dx.data<T>(), in, true);
                    }
                    if (needs[1])  // dh = z * dh' + d_gh W_hh
                      gemm_tiled<T>(false, false, batch, hidden, g3, d_gh.data<T>(), g3,
                                       whh_saved.data<T>(), hidden, T(1), dh.data<T>(), hidden, true);
                    if (needs[2]) {  // dW_ih = d_gi^T x
                      dw_ih = Tensor::empty({g3, in}, g.dtype());
                      gemm_tiled<T>(true, false, g3, in, batch, d_gi.data<T>(), g3,
                                       x_saved.data<T>(), in, T(0), dw_ih.data<T>(), in, true);
                    }
                    if (needs[3]) {  // dW_hh = d_gh^T h
                      dw_hh = Tensor::empty({g3, hidden}, g.dtype());
                      gemm_tiled<T>(true, false, g3, hidden, batch, d_gh.data<T>(), g3,
                                       h_d.data<T>(), hidden, T(0), dw_hh.data<T>(), hidden, true);
                    }
                    if (needs[4]) {
                      db_ih = Tensor::empty({g3}, g.dtype());
                      kernels::sum_cols(d_gi.data<T>(), db_ih.data<T>(), usize(batch), usize(g3),
                                        false);
                    }
                    if (needs[5]) {
                      db_hh = Tensor::empty({g3}, g.dtype());
                      kernels::sum_cols(d_gh.data<T>(), db_hh.data<T>(), usize(batch), usize(g3),
                                        false);
                    }
                  });
                  return std::vector<Tensor>{dx, needs[1] ? dh : Tensor(), dw_ih, dw_hh, db_ih,
                                             db_hh};
                });
  }
  return h_out;
}

}  // namespace crt
