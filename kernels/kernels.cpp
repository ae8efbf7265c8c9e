// The kernel entry points declared in kernels.hpp. double always runs the scalar reference;
// float runs the ISA variant chosen once by dispatch (active_kernels()). Built with baseline
// flags.
#include "kernels/kernels.hpp"

#include <stdexcept>
#include <string>

#include "kernels/dispatch.hpp"
#include "kernels/reference.hpp"

namespace crt::kernels {

// Each pair below forwards float and double to the implementation for that type.
void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc) {
  active_kernels().gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void gemm(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, double alpha,
          const double* a, std::size_t lda, const double* b, std::size_t ldb, double beta,
          double* c, std::size_t ldc) {
  ref::gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void binary(BinaryOp op, const float* a, const float* b, float* y, std::size_t n) {
  active_kernels().binary(op, a, b, y, n);
}
void binary(BinaryOp op, const double* a, const double* b, double* y, std::size_t n) {
  ref::binary(op, a, b, y, n);
}
void binary_scalar_right(BinaryOp op, const float* a, float b, float* y, std::size_t n) {
  active_kernels().binary_scalar_right(op, a, b, y, n);
}
void binary_scalar_right(BinaryOp op, const double* a, double b, double* y, std::size_t n) {
  ref::binary_scalar_right(op, a, b, y, n);
}
void binary_scalar_left(BinaryOp op, float a, const float* b, float* y, std::size_t n) {
  active_kernels().binary_scalar_left(op, a, b, y, n);
}
void binary_scalar_left(BinaryOp op, double a, const double* b, double* y, std::size_t n) {
  ref::binary_scalar_left(op, a, b, y, n);
}
void unary(UnaryOp op, const float* x, float* y, std::size_t n) {
  active_kernels().unary(op, x, y, n);
}
void unary(UnaryOp op, const double* x, double* y, std::size_t n) { ref::unary(op, x, y, n); }
void unary_backward(UnaryOp op, const float* x, const float* y, const float* dy, float* dx,
                    std::size_t n) {
  active_kernels().unary_backward(op, x, y, dy, dx, n);
}
void unary_backward(UnaryOp op, const double* x, const double* y, const double* dy, double* dx,
                    std::size_t n) {
  ref::unary_backward(op, x, y, dy, dx, n);
}
void dropout_apply(const float* x, float* y, std::size_t n, std::uint64_t key,
                   std::uint64_t index0, std::uint64_t threshold, float scale) {
  active_kernels().dropout_apply(x, y, n, key, index0, threshold, scale);
}
void dropout_apply(const double* x, double* y, std::size_t n, std::uint64_t key,
                   std::uint64_t index0, std::uint64_t threshold, double scale) {
  ref::dropout_apply(x, y, n, key, index0, threshold, scale);
}
void axpy(float alpha, const float* x, float* y, std::size_t n) {
  active_kernels().axpy(alpha, x, y, n);
}
void axpy(double alpha, const double* x, double* y, std::size_t n) {
  ref::axpy(alpha, x, y, n);
}
double sum_squares(const float* x, std::size_t n) { return active_kernels().sum_squares(x, n); }
double sum_squares(const double* x, std::size_t n) { return ref::sum_squares(x, n); }
void sum_rows(const float* x, float* y, std::size_t rows, std::size_t cols) {
  active_kernels().sum_rows(x, y, rows, cols);
}
void sum_rows(const double* x, double* y, std::size_t rows, std::size_t cols) {
  ref::sum_rows(x, y, rows, cols);
}
void sum_cols(const float* x, float* y, std::size_t rows, std::size_t cols, bool acc) {
  active_kernels().sum_cols(x, y, rows, cols, acc);
}
void sum_cols(const double* x, double* y, std::size_t rows, std::size_t cols, bool acc) {
  ref::sum_cols(x, y, rows, cols, acc);
}
void softmax_rows(const float* x, float* y, std::size_t rows, std::size_t cols) {
  active_kernels().softmax_rows(x, y, rows, cols);
}
void softmax_rows(const double* x, double* y, std::size_t rows, std::size_t cols) {
  ref::softmax_rows(x, y, rows, cols);
}
void softmax_backward_rows(const float* y, const float* dy, float* dx, std::size_t rows,
                           std::size_t cols) {
  active_kernels().softmax_backward_rows(y, dy, dx, rows, cols);
}
void softmax_backward_rows(const double* y, const double* dy, double* dx, std::size_t rows,
                           std::size_t cols) {
  ref::softmax_backward_rows(y, dy, dx, rows, cols);
}
void log_softmax_rows(const float* x, float* y, std::size_t rows, std::size_t cols) {
  active_kernels().log_softmax_rows(x, y, rows, cols);
}
void log_softmax_rows(const double* x, double* y, std::size_t rows, std::size_t cols) {
  ref::log_softmax_rows(x, y, rows, cols);
}
void log_softmax_backward_rows(const float* y, const float* dy, float* dx, std::size_t rows,
                               std::size_t cols) {
  active_kernels().log_softmax_backward_rows(y, dy, dx, rows, cols);
}
void log_softmax_backward_rows(const double* y, const double* dy, double* dx,
                               std::size_t rows, std::size_t cols) {
  ref::log_softmax_backward_rows(y, dy, dx, rows, cols);
}
void cross_entropy_forward(const float* logits, const std::int32_t* t, float* loss, float* lse,
                           std::size_t rows, std::size_t cols, std::int32_t ignore) {
  active_kernels().cross_entropy_forward(logits, t, loss, lse, rows, cols, ignore);
}
void cross_entropy_forward(const double* logits, const std::int32_t* t, double* loss,
                           double* lse, std::size_t rows, std::size_t cols,
                           std::int32_t ignore) {
  ref::cross_entropy_forward(logits, t, loss, lse, rows, cols, ignore);
}
void cross_entropy_backward(const float* logits, const float* lse, const std::int32_t* t,
                            const float* row_scale, float* dlogits, std::size_t rows,
                            std::size_t cols, std::int32_t ignore) {
  active_kernels().cross_entropy_backward(logits, lse, t, row_scale, dlogits, rows, cols,
                                          ignore);
}
void cross_entropy_backward(const double* logits, const double* lse, const std::int32_t* t,
                            const double* row_scale, double* dlogits, std::size_t rows,
                            std::size_t cols, std::int32_t ignore) {
  ref::cross_entropy_backward(logits, lse, t, row_scale, dlogits, rows, cols, ignore);
}
void layernorm_forward(const float* x, const float* g, const float* b, float* y, float* mean,
                       float* rstd, std::size_t rows, std::size_t cols, float eps) {
  active_kernels().layernorm_forward(x, g, b, y, mean, rstd, rows, cols, eps);
}
void layernorm_forward(const double* x, const double* g, const double* b, double* y,
                       double* mean, double* rstd, std::size_t rows, std::size_t cols,
                       double eps) {
  ref::layernorm_forward(x, g, b, y, mean, rstd, rows, cols, eps);
}
void layernorm_backward(const float* x, const float* g, const float* mean, const float* rstd,
                        const float* dy, float* dx, float* dg, float* db, std::size_t rows,
                        std::size_t cols) {
  active_kernels().layernorm_backward(x, g, mean, rstd, dy, dx, dg, db, rows, cols);
}
void layernorm_backward(const double* x, const double* g, const double* mean,
                        const double* rstd, const double* dy, double* dx, double* dg,
                        double* db, std::size_t rows, std::size_t cols) {
  ref::layernorm_backward(x, g, mean, rstd, dy, dx, dg, db, rows, cols);
}
void gru_gates_forward(const float* gi, const float* gh, const float* h, float* h_out,
                       std::size_t batch, std::size_t hidden) {
  active_kernels().gru_gates_forward(gi, gh, h, h_out, batch, hidden);
}
void gru_gates_forward(const double* gi, const double* gh, const double* h, double* h_out,
                       std::size_t batch, std::size_t hidden) {
  ref::gru_gates_forward(gi, gh, h, h_out, batch, hidden);
}
void gru_gates_backward(const float* gi, const float* gh, const float* h, const float* dh_out,
                        float* d_gi, float* d_gh, float* dh, std::size_t batch,
                        std::size_t hidden) {
  active_kernels().gru_gates_backward(gi, gh, h, dh_out, d_gi, d_gh, dh, batch, hidden);
}
void gru_gates_backward(const double* gi, const double* gh, const double* h,
                        const double* dh_out, double* d_gi, double* d_gh, double* dh,
                        std::size_t batch, std::size_t hidden) {
  ref::gru_gates_backward(gi, gh, h, dh_out, d_gi, d_gh, dh, batch, hidden);
}
void attention_forward(const float* q, const float* k, const float* v, const float* bias,
                       float* out, float* lse, AttentionShape s, float scale) {
  active_kernels().attention_forward(q, k, v, bias, out, lse, s, scale);
}
void attention_forward(const double* q, const double* k, const double* v, const double* bias,
                       double* out, double* lse, AttentionShape s, double scale) {
  ref::attention_forward(q, k, v, bias, out, lse, s, scale);
}
void attention_backward(const float* q, const float* k, const float* v, const float* bias,
                        const float* out, const float* lse, const float* dout, float* dq,
                        float* dk, float* dv, float* dbias, AttentionShape s, float scale) {
  active_kernels().attention_backward(q, k, v, bias, out, lse, dout, dq, dk, dv, dbias, s,
                                      scale);
}
void attention_backward(const double* q, const double* k, const double* v, const double* bias,
                        const double* out, const double* lse, const double* dout, double* dq,
                        double* dk, double* dv, double* dbias, AttentionShape s, double scale) {
  ref::attention_backward(q, k, v, bias, out, lse, dout, dq, dk, dv, dbias, s, scale);
}
void modrelu_forward(const float* z, const float* b, float* y, std::size_t rows,
                     std::size_t cols) {
  active_kernels().modrelu_forward(z, b, y, rows, cols);
}
void modrelu_forward(const double* z, const double* b, double* y, std::size_t rows,
                     std::size_t cols) {
  ref::modrelu_forward(z, b, y, rows, cols);
}
void modrelu_backward(const float* z, const float* b, const float* dy, float* dz, float* db,
                      std::size_t rows, std::size_t cols) {
  active_kernels().modrelu_backward(z, b, dy, dz, db, rows, cols);
}
void modrelu_backward(const double* z, const double* b, const double* dy, double* dz,
                      double* db, std::size_t rows, std::size_t cols) {
  ref::modrelu_backward(z, b, dy, dz, db, rows, cols);
}
void adam_update(float* p, const float* g, float* m, float* v, std::size_t n,
                 const AdamStep& s) {
  active_kernels().adam_update(p, g, m, v, n, s);
}
void adam_update(double* p, const double* g, double* m, double* v, std::size_t n,
                 const AdamStep& s) {
  ref::adam_update(p, g, m, v, n, s);
}

const char* active_isa() { return active_kernels().name; }

void gemm_f64_accumulate(const double* a, const double* b, double* c, std::size_t m,
                         std::size_t n, std::size_t k) {
  active_kernels().gemm_f64_accumulate(a, b, c, m, n, k);
}

std::size_t gemv_panel_rows() { return active_kernels().lanes; }

std::size_t gemv_packed_size(std::size_t n, std::size_t k, std::size_t panel) {
  return (n + panel - 1) / panel * panel * k;
}

void gemv_pack(const float* w, std::size_t ldw, std::size_t n, std::size_t k, std::size_t panel,
               float* packed) {
  ref::gemv_pack(w, ldw, n, k, panel, packed);
}
void gemv_pack(const double* w, std::size_t ldw, std::size_t n, std::size_t k,
               std::size_t panel, double* packed) {
  ref::gemv_pack(w, ldw, n, k, panel, packed);
}

void gemv_packed(const float* a, const float* packed, std::size_t n, std::size_t k,
                 std::size_t panel, float beta, float* c) {
  const KernelTable& t = active_kernels();
  if (panel != t.lanes)
    throw std::invalid_argument("kernels::gemv_packed: the weight was packed in panels of " +
                                std::to_string(panel) + " rows, the " + t.cap_name +
                                " kernel reads panels of " + std::to_string(t.lanes));
  t.gemv_packed(a, packed, n, k, beta, c);
}
void gemv_packed(const double* a, const double* packed, std::size_t n, std::size_t k,
                 std::size_t panel, double beta, double* c) {
  ref::gemv_packed(a, packed, n, k, panel, beta, c);
}

}  // namespace crt::kernels
