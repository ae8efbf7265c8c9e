// NCGRU (Neumann-Cayley orthogonal GRU, paper.md §3): a GRU whose candidate uses an orthogonal
// recurrent matrix U_c = (I + A)^{-1} (I - A) D (scaled Cayley transform, A skew-symmetric)
// and modReLU. A is trained by its own Adam rule in after_step(); the inverse is refreshed
// with a Neumann series and recomputed exactly every `exact_every` updates.
#pragma once

#include <cstdint>
#include <string>

#include "crt/layers.hpp"

namespace crt::model {


// r = σ(x W_r^T + h U_r^T + b_r), u = σ(x W_u^T + h U_u^T + b_u),
// c = modReLU(x W_c^T + b_xc + (r ⊙ h) U_c^T, b_c), h' = u ⊙ h + (1 - u) ⊙ c.
//
// Trainable (collect): w_x = [W_r; W_u; W_c] [3H, I], b_x = [b_r; b_u; b_xc] [3H], u_ru =
// [U_r; U_u] [2H, H], b_c [H] (the modReLU bias). The c-part b_xc of b_x starts at 0 and is
// trained like the rest: it is the bias of the input projection inside modReLU (the reference
// code has none; a trained one only adds a degree of freedom). Init (reference char-PTB code):
// W_r, W_u, U_r, U_u, b_r, b_u ~ U(±1/sqrt(H)), W_c ~ U(±0.01), b_xc = b_c = 0.
//
// u_c [H, H] requires grad (backward accumulates ∂L/∂U_c) but is not trainable: after_step()
// turns its gradient into a skew gradient for A, updates A with Adam and rewrites u_c in place.
// All state of that rule lives in the tensors of collect_buffers() (A, its inverse, the Adam
// moments and the step counter in f64 whatever the cell's dtype; u_c and d in the cell's
// dtype), so restoring them with copy_ continues training bit-exactly.
class NcgruCell : public RecurrentCell {
 public:
  // negative_entries: number of -1 entries of D (-1: hidden / 10), placed at random positions
  // drawn from gen; neumann_order: 1..3; exact_every >= 1: exact inverse every that many
  // A-updates. dtype: f32 for training, f64 for gradient checks.
  NcgruCell(std::int64_t input, std::int64_t hidden, std::int64_t negative_entries,
            int neumann_order, std::int64_t exact_every, Generator& gen,
            DType dtype = DType::f32);

  // x: [B, I], h: [B, H] -> [B, H]
  Tensor step(const Tensor& x, const Tensor& h) const override;
  // x: [B, T, I], h0: [B, H] -> all states [B, T, H]; the input projections of all T steps run
  // as one product, only the recurrent part step by step.
  Tensor sequence(const Tensor& x, const Tensor& h0) const override;
  // prefix.w_x, prefix.b_x, prefix.u_ru, prefix.b_c
  void collect(const std::string& prefix, NamedTensors& trainable) const override;
  // prefix.a, prefix.a_inverse, prefix.u_c, prefix.d, prefix.a_adam_m, prefix.a_adam_v,
  // prefix.a_step (live tensors; a checkpoint loader copies into them)
  void collect_buffers(const std::string& prefix, NamedTensors& buffers) const override;
  // One A-update from u_c's gradient (no-op when it has none) with learning rate lr:
  // ∇A = V^T - V with V = (I+A)^{-T} G (D + U_c^T); Adam on A; inverse refresh; u_c rewritten
  // and its gradient cleared. Throws crt::Error (changing nothing) on a non-finite gradient.
  void after_step(double lr) override;
  // Clears u_c's gradient.
  void before_step() override;
  std::int64_t hidden_size() const override { return hidden_; }

  // max |(U_c^T U_c - I)_ij|
  double orthogonality_error() const;
  // The skew gradient ∇A (f64 [H, H]) from u_c's current gradient (undefined if it has none).
  // Along a skew direction E_ij - E_ji, dL/dε = ∇A_ij = <∇A, E_ij - E_ji> / 2.
  Tensor skew_gradient() const;
  // Recomputes (I + A)^{-1} exactly from a and rewrites u_c = (I+A)^{-1} (I - A) D; clears
  // u_c's gradient. Does not advance the step counter.
  void refresh_exact();

  std::int64_t negative_entries() const { return negative_entries_; }
  int neumann_order() const { return neumann_order_; }
  std::int64_t exact_every() const { return exact_every_; }

  // trainable
  Tensor w_x, b_x, u_ru, b_c;  // [3H, I], [3H], [2H, H], [H]
  // orthogonal recurrent matrix (requires grad, not trainable)
  Tensor u_c;  // [H, H]
  // buffers of the A-rule
  Tensor a;          // f64 [H, H], skew-symmetric
  Tensor a_inverse;  // f64 [H, H], (I + A)^{-1} (exact or Neumann-refreshed)
  Tensor d;          // [H], entries ±1 (fixed)
  Tensor adam_m, adam_v;  // f64 [H, H]
  Tensor a_step;          // f64 scalar: A-updates done so far

 private:
  // One step from its input projection gx = x W_x^T + b_x ([B, 3H]) and h [B, H]; u_ru_t =
  // U_ru^T [H, 2H] and u_c_t = U_c^T [H, H] as contiguous copies, or undefined to read the
  // parameters as stored.
  Tensor step_from_projection(const Tensor& gx, const Tensor& h, const Tensor& u_ru_t,
                              const Tensor& u_c_t) const;

  // u_c <- a_inverse (I - A) D, computed as (2 a_inverse - I) D; gradient cleared.
  void rewrite_u_c();

  std::int64_t input_, hidden_, negative_entries_;
  int neumann_order_;
  std::int64_t exact_every_;
};

}  // namespace crt::model
