// Scalar reference kernels, templated on the element type (float and double are
// instantiated). They define what every SIMD variant must compute: kernel tests compare
// each ISA against the double instantiation, and the engine's double path runs on them.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.hpp"

namespace crt::kernels::ref {

template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, T alpha,
          const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c,
          std::size_t ldc);
template <class T>
void binary(BinaryOp op, const T* a, const T* b, T* y, std::size_t n);
template <class T>
void binary_scalar_right(BinaryOp op, const T* a, T b, T* y, std::size_t n);
template <class T>
void binary_scalar_left(BinaryOp op, T a, const T* b, T* y, std::size_t n);
template <class T>
void unary(UnaryOp op, const T* x, T* y, std::size_t n);
template <class T>
void unary_backward(UnaryOp op, const T* x, const T* y, const T* dy, T* dx, std::size_t n);
template <class T>
void axpy(T alpha, const T* x, T* y, std::size_t n);
template <class T>
double sum_squares(const T* x, std::size_t n);
template <class T>
void dropout_apply(const T* x, T* y, std::size_t n, std::uint64_t key, std::uint64_t index0,
                   std::uint64_t threshold, T scale);
template <class T>
void sum_rows(const T* x, T* y, std::size_t rows, std::size_t cols);
template <class T>
void sum_cols(const T* x, T* y, std::size_t rows, std::size_t cols, bool accumulate);
template <class T>
void softmax_rows(const T* x, T* y, std::size_t rows, std::size_t cols);
template <class T>
void softmax_backward_rows(const T* y, const T* dy, T* dx, std::size_t rows, std::size_t cols);
template <class T>
void log_softmax_rows(const T* x, T* y, std::size_t rows, std::size_t cols);
template <class T>
void log_softmax_backward_rows(const T* y, const T* dy, T* dx, std::size_t rows,
                               std::size_t cols);
template <class T>
void cross_entropy_forward(const T* logits, const std::int32_t* targets, T* loss, T* lse,
                           std::size_t rows, std::size_t cols, std::int32_t ignore_index);
template <class T>
void cross_entropy_backward(const T* logits, const T* lse, const std::int32_t* targets,
                            const T* row_scale, T* dlogits, std::size_t rows, std::size_t cols,
                            std::int32_t ignore_index);
template <class T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                       std::size_t rows, std::size_t cols, T eps);
template <class T>
void layernorm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy,
                        T* dx, T* dgamma, T* dbeta, std::size_t rows, std::size_t cols);
template <class T>
void gemv_pack(const T* w, std::size_t ldw, std::size_t n, std::size_t k, std::size_t panel,
               T* packed);
template <class T>
void gemv_packed(const T* a, const T* packed, std::size_t n, std::size_t k, std::size_t panel,
                 T beta, T* c);
template <class T>
void gru_gates_forward(const T* gi, const T* gh, const T* h, T* h_out, std::size_t batch,
                       std::size_t hidden);
template <class T>
void gru_gates_backward(const T* gi, const T* gh, const T* h, const T* dh_out, T* d_gi, T* d_gh,
                        T* dh, std::size_t batch, std::size_t hidden);
template <class T>
void attention_forward(const T* q, const T* k, const T* v, const T* bias, T* out, T* lse,
                       AttentionShape s, T scale);
template <class T>
void attention_backward(const T* q, const T* k, const T* v, const T* bias, const T* out,
                        const T* lse, const T* dout, T* dq, T* dk, T* dv, T* dbias,
                        AttentionShape s, T scale);
template <class T>
void modrelu_forward(const T* z, const T* b, T* y, std::size_t rows, std::size_t cols);
template <class T>
void modrelu_backward(const T* z, const T* b, const T* dy, T* dz, T* db, std::size_t rows,
                      std::size_t cols);
template <class T>
void adam_update(T* param, const T* grad, T* m, T* v, std::size_t n, const AdamStep& s);

}  // namespace crt::kernels::ref
