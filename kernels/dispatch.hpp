// Run-time ISA selection: one table of function pointers per ISA variant compiled in, and the
// table the float kernels use, chosen once per process (the best ISA this CPU runs, capped by
// the environment variable CRT_MAX_ISA = sse2 | avx2 | avx512 | neon64). Built with baseline
// flags. Tests and benchmarks use the tables to run every variant, not only the chosen one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "kernels/kernels.hpp"

namespace crt::kernels {

using GemmFn = void (*)(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                        float alpha, const float* a, std::size_t lda, const float* b,
                        std::size_t ldb, float beta, float* c, std::size_t ldc);

// One ISA variant of the kernels.
struct KernelTable {
  const char* name;      // xsimd's Arch::name(): "avx512bw", "fma3+avx2", "sse2", "arm64+neon"
  const char* cap_name;  // its CRT_MAX_ISA spelling: "avx512", "avx2", "sse2", "neon64"
  unsigned version;      // xsimd's Arch::version(): higher is more capable
  bool runnable;         // this CPU supports it
  std::size_t lanes;     // floats per vector register
  std::size_t gemm_mr, gemm_nr, gemm_kc;  // GEMM register tile and depth block
  GemmFn gemm;
  // The other float kernels, with the signatures and semantics of kernels.hpp.
  void (*binary)(BinaryOp op, const float* a, const float* b, float* y, std::size_t n);
  void (*binary_scalar_right)(BinaryOp op, const float* a, float b, float* y, std::size_t n);
  void (*binary_scalar_left)(BinaryOp op, float a, const float* b, float* y, std::size_t n);
  void (*unary)(UnaryOp op, const float* x, float* y, std::size_t n);
  void (*unary_backward)(UnaryOp op, const float* x, const float* y, const float* dy, float* dx,
                         std::size_t n);
  void (*axpy)(float alpha, const float* x, float* y, std::size_t n);
  void (*dropout_apply)(const float* x, float* y, std::size_t n, std::uint64_t key,
                        std::uint64_t index0, std::uint64_t threshold, float scale);
  double (*sum_squares)(const float* x, std::size_t n);
  void (*sum_rows)(const float* x, float* y, std::size_t rows, std::size_t cols);
  void (*sum_cols)(const float* x, float* y, std::size_t rows, std::size_t cols, bool accumulate);
  void (*softmax_rows)(const float* x, float* y, std::size_t rows, std::size_t cols);
  void (*softmax_backward_rows)(const float* y, const float* dy, float* dx, std::size_t rows,
                                std::size_t cols);
  void (*log_softmax_rows)(const float* x, float* y, std::size_t rows, std::size_t cols);
  void (*log_softmax_backward_rows)(const float* y, const float* dy, float* dx,
                                    std::size_t rows, std::size_t cols);
  void (*cross_entropy_forward)(const float* logits, const std::int32_t* targets, float* loss,
                                float* lse, std::size_t rows, std::size_t cols,
                                std::int32_t ignore_index);
  void (*cross_entropy_backward)(const float* logits, const float* lse,
                                 const std::int32_t* targets, const float* row_scale,
                                 float* dlogits, std::size_t rows, std::size_t cols,
                                 std::int32_t ignore_index);
  void (*layernorm_forward)(const float* x, const float* gamma, const float* beta, float* y,
                            float* mean, float* rstd, std::size_t rows, std::size_t cols,
                            float eps);
  void (*layernorm_backward)(const float* x, const float* gamma, const float* mean,
                             const float* rstd, const float* dy, float* dx, float* dgamma,
                             float* dbeta, std::size_t rows, std::size_t cols);
  // C [m, n] += A [m, k] B [k, n] in double (kernels.hpp, gemm_f64_accumulate)
  void (*gemm_f64_accumulate)(const double* a, const double* b, double* c, std::size_t m,
                              std::size_t n, std::size_t k);
  // W [n, k] packed by gemv_pack with panel = lanes: c = W a + beta c (kernels.hpp)
  void (*gemv_packed)(const float* a, const float* packed, std::size_t n, std::size_t k,
                      float beta, float* c);
  void (*gru_gates_forward)(const float* gi, const float* gh, const float* h, float* h_out,
                            std::size_t batch, std::size_t hidden);
  void (*gru_gates_backward)(const float* gi, const float* gh, const float* h,
                             const float* dh_out, float* d_gi, float* d_gh, float* dh,
                             std::size_t batch, std::size_t hidden);
  void (*attention_forward)(const float* q, const float* k, const float* v, const float* bias,
                            float* out, float* lse, AttentionShape s, float scale);
  void (*attention_backward)(const float* q, const float* k, const float* v, const float* bias,
                             const float* out, const float* lse, const float* dout, float* dq,
                             float* dk, float* dv, float* dbias, AttentionShape s, float scale);
  void (*modrelu_forward)(const float* z, const float* b, float* y, std::size_t rows,
                          std::size_t cols);
  void (*modrelu_backward)(const float* z, const float* b, const float* dy, float* dz,
                           float* db, std::size_t rows, std::size_t cols);
  void (*adam_update)(float* param, const float* grad, float* m, float* v, std::size_t n,
                      const AdamStep& s);
};

// Every variant compiled into this build, most capable first (runnable or not).
std::span<const KernelTable> isa_tables();

// The variant named `name` (a cap name or xsimd name), or null.
const KernelTable* find_isa(std::string_view name);

// The best runnable variant not above the cap `max_isa` (a cap name; empty = no cap). Throws
// std::runtime_error on a name that is not compiled in for this target.
const KernelTable& select_isa(std::string_view max_isa);

// The variant the float kernels run on: select_isa($CRT_MAX_ISA), computed on first use. An
// unknown CRT_MAX_ISA is reported on stderr and ignored.
const KernelTable& active_kernels();

}  // namespace crt::kernels
