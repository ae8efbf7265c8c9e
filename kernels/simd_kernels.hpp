// The per-ISA float kernels other than GEMM: function templates on the xsimd arch tag with the
// signatures and semantics of the float overloads in kernels.hpp. Declared here, defined and
// explicitly instantiated for each ISA only in kernels/*_simd.cpp (Note [ISA objects] in
// isa.hpp); dispatch.cpp takes their addresses into each ISA's KernelTable.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernels.hpp"

namespace crt::kernels::simd {

using std::size_t;

// elementwise_simd.cpp
template <class Arch>
void binary(BinaryOp op, const float* a, const float* b, float* y, size_t n);
template <class Arch>
void binary_scalar_right(BinaryOp op, const float* a, float b, float* y, size_t n);
template <class Arch>
void binary_scalar_left(BinaryOp op, float a, const float* b, float* y, size_t n);
template <class Arch>
void unary(UnaryOp op, const float* x, float* y, size_t n);
template <class Arch>
void unary_backward(UnaryOp op, const float* x, const float* y, const float* dy, float* dx,
                    size_t n);
template <class Arch>
void axpy(float alpha, const float* x, float* y, size_t n);
template <class Arch>
void dropout_apply(const float* x, float* y, size_t n, std::uint64_t key, std::uint64_t index0,
                   std::uint64_t threshold, float scale);
template <class Arch>
double sum_squares(const float* x, size_t n);
template <class Arch>
void sum_rows(const float* x, float* y, size_t rows, size_t cols);
template <class Arch>
void sum_cols(const float* x, float* y, size_t rows, size_t cols, bool accumulate);
template <class Arch>
void modrelu_forward(const float* z, const float* b, float* y, size_t rows, size_t cols);
template <class Arch>
void modrelu_backward(const float* z, const float* b, const float* dy, float* dz, float* db,
                      size_t rows, size_t cols);

// softmax_simd.cpp
template <class Arch>
void softmax_rows(const float* x, float* y, size_t rows, size_t cols);
template <class Arch>
void softmax_backward_rows(const float* y, const float* dy, float* dx, size_t rows, size_t cols);
template <class Arch>
void log_softmax_rows(const float* x, float* y, size_t rows, size_t cols);
template <class Arch>
void log_softmax_backward_rows(const float* y, const float* dy, float* dx, size_t rows,
                               size_t cols);
template <class Arch>
void cross_entropy_forward(const float* logits, const std::int32_t* targets, float* loss,
                           float* lse, size_t rows, size_t cols, std::int32_t ignore_index);
template <class Arch>
void cross_entropy_backward(const float* logits, const float* lse, const std::int32_t* targets,
                            const float* row_scale, float* dlogits, size_t rows, size_t cols,
                            std::int32_t ignore_index);

// norm_simd.cpp
template <class Arch>
void layernorm_forward(const float* x, const float* gamma, const float* beta, float* y,
                       float* mean, float* rstd, size_t rows, size_t cols, float eps);
template <class Arch>
void layernorm_backward(const float* x, const float* gamma, const float* mean, const float* rstd,
                        const float* dy, float* dx, float* dgamma, float* dbeta, size_t rows,
                        size_t cols);

// gemm_f64_simd.cpp
template <class Arch>
void gemm_f64_accumulate(const double* a, const double* b, double* c, size_t m, size_t n,
                         size_t k);

// gemv_simd.cpp: the panel width is kLanes<Arch>
template <class Arch>
void gemv_packed(const float* a, const float* packed, size_t n, size_t k, float beta, float* c);

// gru_simd.cpp
template <class Arch>
void gru_gates_forward(const float* gi, const float* gh, const float* h, float* h_out,
                       size_t batch, size_t hidden);
template <class Arch>
void gru_gates_backward(const float* gi, const float* gh, const float* h, const float* dh_out,
                        float* d_gi, float* d_gh, float* dh, size_t batch, size_t hidden);

// attention_simd.cpp
template <class Arch>
void attention_forward(const float* q, const float* k, const float* v, const float* bias,
                       float* out, float* lse, AttentionShape s, float scale);
template <class Arch>
void attention_backward(const float* q, const float* k, const float* v, const float* bias,
                        const float* out, const float* lse, const float* dout, float* dq,
                        float* dk, float* dv, float* dbias, AttentionShape s, float scale);

// optim_simd.cpp
template <class Arch>
void adam_update(float* param, const float* grad, float* m, float* v, size_t n,
                 const AdamStep& s);

}  // namespace crt::kernels::simd
