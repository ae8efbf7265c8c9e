// The kernel interface: single-threaded functions on raw, contiguous pointers.
// The engine calls only these. float overloads go to the best ISA variant chosen at run
// time (see dispatch.cpp); double overloads go to the scalar reference (reference.hpp),
// which is what gradient checks and kernel tests compare against.
#pragma once

#include <cstddef>
#include <cstdint>

namespace crt::kernels {

enum class BinaryOp : std::uint8_t { add, sub, mul, div };
enum class UnaryOp : std::uint8_t { neg, exp, log, relu, gelu, tanh, sigmoid, sqrt, square };

// ---- GEMM -------------------------------------------------------------------------------
// C[m,n] = alpha * sum_k op(A)[m,k] * op(B)[k,n] + beta * C[m,n]
// op(A) = A ([m,k], row stride lda) or A^T (A stored [k,m], row stride lda); same for B.
// beta == 0 overwrites C (NaNs in C are not propagated); beta == 1 accumulates.
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc);
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, double alpha,
          const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta,
          double* c, std::size_t ldc);

// ---- element-wise -----------------------------------------------------------------------
// y[i] = a[i] op b[i]
void binary(BinaryOp op, const float* a, const float* b, float* y, std::size_t n);
void binary(BinaryOp op, const double* a, const double* b, double* y, std::size_t n);
// y[i] = a[i] op b   (scalar on the right)
void binary_scalar_right(BinaryOp op, const float* a, float b, float* y, std::size_t n);
void binary_scalar_right(BinaryOp op, const double* a, double b, double* y, std::size_t n);
// y[i] = a op b[i]   (scalar on the left)
void binary_scalar_left(BinaryOp op, float a, const float* b, float* y, std::size_t n);
void binary_scalar_left(BinaryOp op, double a, const double* b, double* y, std::size_t n);
// y[i] = f(x[i]); gelu is the exact (erf) form.
void unary(UnaryOp op, const float* x, float* y, std::size_t n);
void unary(UnaryOp op, const double* x, double* y, std::size_t n);
// dx[i] = dy[i] * f'(x[i]). The derivatives of exp, tanh, sigmoid and sqrt read only y = f(x)
// (x may be null); the others read only x (y may be null).
void unary_backward(UnaryOp op, const float* x, const float* y, const float* dy, float* dx,
                    std::size_t n);
void unary_backward(UnaryOp op, const double* x, const double* y, const double* dy, double* dx,
                    std::size_t n);
// y[i] += alpha * x[i]
void axpy(float alpha, const float* x, float* y, std::size_t n);
void axpy(double alpha, const double* x, double* y, std::size_t n);
// sum of x[i]^2, accumulated in double
double sum_squares(const float* x, std::size_t n);
double sum_squares(const double* x, std::size_t n);

// The counter-based hash behind the engine's random numbers (Generator) and dropout:
// splitmix64's finaliser over a mix of key and index, a pure function of the two.
// The constants are named for the vector form of it in the dropout kernel.
namespace counter_hash_constants {
inline constexpr std::uint64_t kKey = 0x9E3779B97F4A7C15ull, kIndex = 0xD1B54A32D192ED03ull,
                               kOffset = 0x632BE59BD9B4E019ull, kMix1 = 0xBF58476D1CE4E5B9ull,
                               kMix2 = 0x94D049BB133111EBull;
}  // namespace counter_hash_constants
constexpr std::uint64_t counter_hash(std::uint64_t key, std::uint64_t index) {
  using namespace counter_hash_constants;
  std::uint64_t z = key * kKey + index * kIndex + kOffset;
  z = (z ^ (z >> 30)) * kMix1;
  z = (z ^ (z >> 27)) * kMix2;
  return z ^ (z >> 31);
}
// Inverted dropout of element i = index0 + j:
// y[j] = x[j] * ((counter_hash(key, i) >> 11) >= threshold ? scale : 0).
void dropout_apply(const float* x, float* y, std::size_t n, std::uint64_t key,
                   std::uint64_t index0, std::uint64_t threshold, float scale);
void dropout_apply(const double* x, double* y, std::size_t n, std::uint64_t key,
                   std::uint64_t index0, std::uint64_t threshold, double scale);

// ---- reductions -------------------------------------------------------------------------
// y[r] = sum_c x[r, c]            x: [rows, cols]
void sum_rows(const float* x, float* y, std::size_t rows, std::size_t cols);
void sum_rows(const double* x, double* y, std::size_t rows, std::size_t cols);
// y[c] (+)= sum_r x[r, c]         x: [rows, cols]; accumulate adds into y
void sum_cols(const float* x, float* y, std::size_t rows, std::size_t cols, bool accumulate);
void sum_cols(const double* x, double* y, std::size_t rows, std::size_t cols, bool accumulate);

// ---- softmax family (over the last axis; rows contiguous) -------------------------------
// y: [rows, cols] = softmax(x)
void softmax_rows(const float* x, float* y, std::size_t rows, std::size_t cols);
void softmax_rows(const double* x, double* y, std::size_t rows, std::size_t cols);
// dx = y * (dy - sum(dy * y))
void softmax_backward_rows(const float* y, const float* dy, float* dx, std::size_t rows,
                           std::size_t cols);
void softmax_backward_rows(const double* y, const double* dy, double* dx, std::size_t rows,
                           std::size_t cols);
// y = x - logsumexp(x)
void log_softmax_rows(const float* x, float* y, std::size_t rows, std::size_t cols);
void log_softmax_rows(const double* x, double* y, std::size_t rows, std::size_t cols);
// dx = dy - exp(y) * sum(dy)
void log_softmax_backward_rows(const float* y, const float* dy, float* dx, std::size_t rows,
                               std::size_t cols);
void log_softmax_backward_rows(const double* y, const double* dy, double* dx,
                               std::size_t rows, std::size_t cols);
// Fused cross-entropy over logits: loss[r] = logsumexp(x[r,:]) - x[r, target[r]], lse[r] saved.
// Rows whose target equals ignore_index get loss 0 (lse still written).
void cross_entropy_forward(const float* logits, const std::int32_t* targets, float* loss,
                           float* lse, std::size_t rows, std::size_t cols,
                           std::int32_t ignore_index);
void cross_entropy_forward(const double* logits, const std::int32_t* targets, double* loss,
                           double* lse, std::size_t rows, std::size_t cols,
                           std::int32_t ignore_index);
// dlogits[r,:] = scale[r] * (softmax(x[r,:]) - onehot(target[r])); ignored rows get zeros.
void cross_entropy_backward(const float* logits, const float* lse, const std::int32_t* targets,
                            const float* row_scale, float* dlogits, std::size_t rows,
                            std::size_t cols, std::int32_t ignore_index);
void cross_entropy_backward(const double* logits, const double* lse,
                            const std::int32_t* targets, const double* row_scale,
                            double* dlogits, std::size_t rows, std::size_t cols,
                            std::int32_t ignore_index);

// ---- layer normalisation over the last axis ---------------------------------------------
// x, y: [rows, cols]; gamma, beta: [cols] (may be null: identity affine); mean, rstd: [rows]
void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y,
                       float* mean, float* rstd, std::size_t rows, std::size_t cols, float eps);
void layernorm_forward(const double* x, const double* gamma, const double* beta, double* y,
                       double* mean, double* rstd, std::size_t rows, std::size_t cols,
                       double eps);
// dx: [rows, cols] overwritten; dgamma, dbeta: [cols] accumulated (may be null)
void layernorm_backward(const float* x, const float* gamma, const float* mean, const float* rstd,
                        const float* dy, float* dx, float* dgamma, float* dbeta,
                        std::size_t rows, std::size_t cols);
void layernorm_backward(const double* x, const double* gamma, const double* mean,
                        const double* rstd, const double* dy, double* dx, double* dgamma,
                        double* dbeta, std::size_t rows, std::size_t cols);

// ---- double GEMM for training-time double math -----------------------------------------
// C [m, n] += A [m, k] B [k, n], all row-major and contiguous, in double on the active ISA's
// vectors (the NCGRU's orthogonal update runs in double at every optimiser step). Unlike the
// double overloads above, which run the scalar reference, this one is vectorised.
void gemm_f64_accumulate(const double* a, const double* b, double* c, std::size_t m,
                         std::size_t n, std::size_t k);

// ---- GEMV against a packed weight (the batch-1 steps of a recurrence) -------------------
// W [n, k] (rows ldw apart) packed in panels of `panel` rows: panel t holds rows t*panel ..
// t*panel + panel - 1 (zero past n), element (r, p) at t*panel*k + p*panel + r, so that each
// panel is one contiguous stream. Pack once, multiply at every step.
std::size_t gemv_panel_rows();  // the panel width the float kernels use: the active ISA's lanes
std::size_t gemv_packed_size(std::size_t n, std::size_t k, std::size_t panel);  // values
void gemv_pack(const float* w, std::size_t ldw, std::size_t n, std::size_t k, std::size_t panel,
               float* packed);
void gemv_pack(const double* w, std::size_t ldw, std::size_t n, std::size_t k,
               std::size_t panel, double* packed);
// c[j] = dot(a, W[j, :]) + beta * c[j] for j < n (c not read when beta == 0), from a weight
// packed with `panel` rows per panel: for float, panel must be gemv_panel_rows().
void gemv_packed(const float* a, const float* packed, std::size_t n, std::size_t k,
                 std::size_t panel, float beta, float* c);
void gemv_packed(const double* a, const double* packed, std::size_t n, std::size_t k,
                 std::size_t panel, double beta, double* c);

// ---- GRU cell gate math (PyTorch convention, gate order r, z, n) ------------------------
// gi = x W_ih^T + b_ih, gh = h W_hh^T + b_hh, both [batch, 3H]; h, h_out: [batch, H]
//   r = s(gi_r + gh_r), z = s(gi_z + gh_z), n = tanh(gi_n + r * gh_n), h' = (1 - z) n + z h
void gru_gates_forward(const float* gi, const float* gh, const float* h, float* h_out,
                       std::size_t batch, std::size_t hidden);
void gru_gates_forward(const double* gi, const double* gh, const double* h, double* h_out,
                       std::size_t batch, std::size_t hidden);
// From dh_out: d_gi, d_gh: [batch, 3H] overwritten; dh: [batch, H] overwritten with the
// direct path z * dh_out (the W_hh path is added by the caller).
void gru_gates_backward(const float* gi, const float* gh, const float* h, const float* dh_out,
                        float* d_gi, float* d_gh, float* dh, std::size_t batch,
                        std::size_t hidden);
void gru_gates_backward(const double* gi, const double* gh, const double* h,
                        const double* dh_out, double* d_gi, double* d_gh, double* dh,
                        std::size_t batch, std::size_t hidden);

// ---- attention, one head ----------------------------------------------------------------
// q: [tq, d], k, v: [tk, d], bias: [tq, tk] additive (may be null), out: [tq, d], lse: [tq].
// With causal, query i sees keys j <= i + (tk - tq): the first tk - tq keys are a prefix
// (memory / cache) that every query sees.
struct AttentionShape {
  std::size_t tq, tk, d;
  bool causal;
};
void attention_forward(const float* q, const float* k, const float* v, const float* bias,
                       float* out, float* lse, AttentionShape s, float scale);
void attention_forward(const double* q, const double* k, const double* v, const double* bias,
                       double* out, double* lse, AttentionShape s, double scale);
// dq, dk, dv (and dbias when non-null): overwritten.
void attention_backward(const float* q, const float* k, const float* v, const float* bias,
                        const float* out, const float* lse, const float* dout, float* dq,
                        float* dk, float* dv, float* dbias, AttentionShape s, float scale);
void attention_backward(const double* q, const double* k, const double* v, const double* bias,
                        const double* out, const double* lse, const double* dout, double* dq,
                        double* dk, double* dv, double* dbias, AttentionShape s, double scale);

// ---- modReLU (NCGRU candidate activation) ----------------------------------------------
// y[r,c] = sign(z[r,c]) * max(|z[r,c]| + b[c], 0); z, y: [rows, cols], b: [cols]
void modrelu_forward(const float* z, const float* b, float* y, std::size_t rows, std::size_t cols);
void modrelu_forward(const double* z, const double* b, double* y, std::size_t rows,
                     std::size_t cols);
// dz = dy where |z| + b > 0 (else 0); db[c] += sum_r dy * sign(z) where active (db may be null)
void modrelu_backward(const float* z, const float* b, const float* dy, float* dz, float* db,
                      std::size_t rows, std::size_t cols);
void modrelu_backward(const double* z, const double* b, const double* dy, double* dz,
                      double* db, std::size_t rows, std::size_t cols);

// ---- optimiser updates ------------------------------------------------------------------
// Adam / AdamW over n parameters. weight_decay is decoupled (AdamW) when decoupled is true,
// otherwise added to the gradient (Adam with L2). bc1 = 1 - beta1^t, bc2 = 1 - beta2^t.
struct AdamStep {
  float lr, beta1, beta2, eps, weight_decay, bc1, bc2;
  bool decoupled;
};
void adam_update(float* param, const float* grad, float* m, float* v, std::size_t n,
                 const AdamStep& s);
void adam_update(double* param, const double* grad, double* m, double* v, std::size_t n,
                 const AdamStep& s);

// ---- ISA reporting ----------------------------------------------------------------------
// Name of the ISA variant the float kernels run on: xsimd's name for it ("avx512bw",
// "fma3+avx2", "sse2", "arm64+neon").
const char* active_isa();

}  // namespace crt::kernels
