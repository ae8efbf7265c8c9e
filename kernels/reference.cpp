// Scalar reference kernels (see reference.hpp). Written for clarity, not speed: each is the
// textbook formula, so that the SIMD variants and the engine's double path have a ground truth.
// Built with baseline flags only.
#include "kernels/reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace crt::kernels::ref {
namespace {

template <class T>
T apply_binary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
  }
  return T(0);
}

template <class T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

template <class T>
T apply_unary(UnaryOp op, T x) {
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return std::exp(x);
    case UnaryOp::log: return std::log(x);
    case UnaryOp::relu: return x > T(0) ? x : T(0);
    case UnaryOp::gelu: return T(0.5) * x * (T(1) + std::erf(x * T(kInvSqrt2)));
    case UnaryOp::tanh: return std::tanh(x);
    case UnaryOp::sigmoid: return sigmoid(x);
    case UnaryOp::sqrt: return std::sqrt(x);
    case UnaryOp::square: return x * x;
  }
  return T(0);
}

// f'(x), given x and y = f(x)
template <class T>
T unary_derivative(UnaryOp op, T x, T y) {
  switch (op) {
    case UnaryOp::neg: return T(-1);
    case UnaryOp::exp: return y;
    case UnaryOp::log: return T(1) / x;
    case UnaryOp::relu: return x > T(0) ? T(1) : T(0);
    case UnaryOp::gelu: {
      const T cdf = T(0.5) * (T(1) + std::erf(x * T(kInvSqrt2)));
      const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
      return cdf + x * pdf;
    }
    case UnaryOp::tanh: return T(1) - y * y;
    case UnaryOp::sigmoid: return y * (T(1) - y);
    case UnaryOp::sqrt: return T(0.5) / y;
    case UnaryOp::square: return T(2) * x;
  }
  return T(0);
}

template <class T>
T row_max(const T* x, std::size_t n) {
  T m = -std::numeric_limits<T>::infinity();
  for (std::size_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

template <class T>
T row_logsumexp(const T* x, std::size_t n) {
  const T m = row_max(x, n);
  if (m == -std::numeric_limits<T>::infinity()) return m;
  T s = 0;
  for (std::size_t i = 0; i < n; ++i) s += std::exp(x[i] - m);
  return m + std::log(s);
}

}  // namespace

template <class T>
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, T alpha,
          const T* a, std::size_t lda, const T* b, std::size_t ldb, T beta, T* c,
          std::size_t ldc) {
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      T acc = 0;
      for (std::size_t p = 0; p < k; ++p) {
        const T av = trans_a ? a[p * lda + i] : a[i * lda + p];
        const T bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        acc += av * bv;
      }
      T& out = c[i * ldc + j];
      out = beta == T(0) ? alpha * acc : alpha * acc + beta * out;
    }
  }
}

template <class T>
void binary(BinaryOp op, const T* a, const T* b, T* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = apply_binary(op, a[i], b[i]);
}

template <class T>
void binary_scalar_right(BinaryOp op, const T* a, T b, T* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = apply_binary(op, a[i], b);
}

template <class T>
void binary_scalar_left(BinaryOp op, T a, const T* b, T* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = apply_binary(op, a, b[i]);
}

template <class T>
void unary(UnaryOp op, const T* x, T* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = apply_unary(op, x[i]);
}

template <class T>
void unary_backward(UnaryOp op, const T* x, const T* y, const T* dy, T* dx, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    dx[i] = dy[i] * unary_derivative(op, x ? x[i] : T(0), y ? y[i] : T(0));
}

template <class T>
void axpy(T alpha, const T* x, T* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <class T>
void dropout_apply(const T* x, T* y, std::size_t n, std::uint64_t key, std::uint64_t index0,
                   std::uint64_t threshold, T scale) {
  for (std::size_t j = 0; j < n; ++j)
    y[j] = x[j] * ((counter_hash(key, index0 + j) >> 11) >= threshold ? scale : T(0));
}

template <class T>
double sum_squares(const T* x, std::size_t n) {
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) s += double(x[i]) * double(x[i]);
  return s;
}

template <class T>
void sum_rows(const T* x, T* y, std::size_t rows, std::size_t cols) {
  for (std::size_t r = 0; r < rows; ++r) {
    T s = 0;
    for (std::size_t c = 0; c < cols; ++c) s += x[r * cols + c];
    y[r] = s;
  }
}

template <class T>
void sum_cols(const T* x, T* y, std::size_t rows, std::size_t cols, bool accumulate) {
  if (!accumulate) std::fill(y, y + cols, T(0));
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) y[c] += x[r * cols + c];
}

template <class T>
void softmax_rows(const T* x, T* y, std::size_t rows, std::size_t cols) {
  for (std::size_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    const T m = row_max(xr, cols);
    T s = 0;
    for (std::size_t c = 0; c < cols; ++c) s += (yr[c] = std::exp(xr[c] - m));
    const T inv = T(1) / s;
    for (std::size_t c = 0; c < cols; ++c) yr[c] *= inv;
  }
}

template <class T>
void softmax_backward_rows(const T* y, const T* dy, T* dx, std::size_t rows, std::size_t cols) {
  for (std::size_t r = 0; r < rows; ++r) {
    const T* yr = y + r * cols;
    const T* dyr = dy + r * cols;
    T dot = 0;
    for (std::size_t c = 0; c < cols; ++c) dot += yr[c] * dyr[c];
    for (std::size_t c = 0; c < cols; ++c) dx[r * cols + c] = yr[c] * (dyr[c] - dot);
  }
}

template <class T>
void log_softmax_rows(const T* x, T* y, std::size_t rows, std::size_t cols) {
  for (std::size_t r = 0; r < rows; ++r) {
    const T lse = row_logsumexp(x + r * cols, cols);
    for (std::size_t c = 0; c < cols; ++c) y[r * cols + c] = x[r * cols + c] - lse;
  }
}

template <class T>
void log_softmax_backward_rows(const T* y, const T* dy, T* dx, std::size_t rows,
                               std::size_t cols) {
  for (std::size_t r = 0; r < rows; ++r) {
    T s = 0;
    for (std::size_t c = 0; c < cols; ++c) s += dy[r * cols + c];
    for (std::size_t c = 0; c < cols; ++c)
      dx[r * cols + c] = dy[r * cols + c] - std::exp(y[r * cols + c]) * s;
  }
}

template <class T>
void cross_entropy_forward(const T* logits, const std::int32_t* targets, T* loss, T* lse,
                           std::size_t rows, std::size_t cols, std::int32_t ignore_index) {
  for (std::size_t r = 0; r < rows; ++r) {
    const T* xr = logits + r * cols;
    lse[r] = row_logsumexp(xr, cols);
    loss[r] = targets[r] == ignore_index ? T(0) : lse[r] - xr[targets[r]];
  }
}

template <class T>
void cross_entropy_backward(const T* logits, const T* lse, const std::int32_t* targets,
                            const T* row_scale, T* dlogits, std::size_t rows, std::size_t cols,
                            std::int32_t ignore_index) {
  for (std::size_t r = 0; r < rows; ++r) {
    T* dr = dlogits + r * cols;
    if (targets[r] == ignore_index) {
      std::fill(dr, dr + cols, T(0));
      continue;
    }
    const T* xr = logits + r * cols;
    for (std::size_t c = 0; c < cols; ++c) dr[c] = row_scale[r] * std::exp(xr[c] - lse[r]);
    dr[targets[r]] -= row_scale[r];
  }
}

template <class T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd,
                       std::size_t rows, std::size_t cols, T eps) {
  for (std::size_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T mu = 0;
    for (std::size_t c = 0; c < cols; ++c) mu += xr[c];
    mu /= T(cols);
    T var = 0;
    for (std::size_t c = 0; c < cols; ++c) var += (xr[c] - mu) * (xr[c] - mu);
    var /= T(cols);
    const T rs = T(1) / std::sqrt(var + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (std::size_t c = 0; c < cols; ++c) {
      const T xhat = (xr[c] - mu) * rs;
      y[r * cols + c] = xhat * (gamma ? gamma[c] : T(1)) + (beta ? beta[c] : T(0));
    }
  }
}

template <class T>
void layernorm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy,
                        T* dx, T* dgamma, T* dbeta, std::size_t rows, std::size_t cols) {
  for (std::size_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    // dxhat = dy * gamma; dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    T sum_dxhat = 0, sum_dxhat_xhat = 0;
    for (std::size_t c = 0; c < cols; ++c) {
      const T xhat = (xr[c] - mean[r]) * rstd[r];
      const T dxhat = dyr[c] * (gamma ? gamma[c] : T(1));
      sum_dxhat += dxhat;
      sum_dxhat_xhat += dxhat * xhat;
      if (dgamma) dgamma[c] += dyr[c] * xhat;
      if (dbeta) dbeta[c] += dyr[c];
    }
    const T inv_n = T(1) / T(cols);
    for (std::size_t c = 0; c < cols; ++c) {
      const T xhat = (xr[c] - mean[r]) * rstd[r];
      const T dxhat = dyr[c] * (gamma ? gamma[c] : T(1));
      dx[r * cols + c] =
          rstd[r] * (dxhat - sum_dxhat * inv_n - xhat * sum_dxhat_xhat * inv_n);
    }
  }
}

template <class T>
void gemv_pack(const T* w, std::size_t ldw, std::size_t n, std::size_t k, std::size_t panel,
               T* packed) {
  for (std::size_t row0 = 0; row0 < n; row0 += panel)
    for (std::size_t p = 0; p < k; ++p)
      for (std::size_t r = 0; r < panel; ++r)
        packed[row0 * k + p * panel + r] = row0 + r < n ? w[(row0 + r) * ldw + p] : T(0);
}

template <class T>
void gemv_packed(const T* a, const T* packed, std::size_t n, std::size_t k, std::size_t panel,
                 T beta, T* c) {
  for (std::size_t j = 0; j < n; ++j) {
    const T* row = packed + (j / panel) * panel * k + j % panel;
    T dot = T(0);
    for (std::size_t p = 0; p < k; ++p) dot += a[p] * row[p * panel];
    c[j] = beta == T(0) ? dot : dot + beta * c[j];
  }
}

template <class T>
void gru_gates_forward(const T* gi, const T* gh, const T* h, T* h_out, std::size_t batch,
                       std::size_t hidden) {
  const std::size_t H = hidden;
  for (std::size_t b = 0; b < batch; ++b) {
    const T* gib = gi + b * 3 * H;
    const T* ghb = gh + b * 3 * H;
    for (std::size_t j = 0; j < H; ++j) {
      const T r = sigmoid(gib[j] + ghb[j]);
      const T z = sigmoid(gib[H + j] + ghb[H + j]);
      const T n = std::tanh(gib[2 * H + j] + r * ghb[2 * H + j]);
      h_out[b * H + j] = (T(1) - z) * n + z * h[b * H + j];
    }
  }
}

template <class T>
void gru_gates_backward(const T* gi, const T* gh, const T* h, const T* dh_out, T* d_gi, T* d_gh,
                        T* dh, std::size_t batch, std::size_t hidden) {
  const std::size_t H = hidden;
  for (std::size_t b = 0; b < batch; ++b) {
    const T* gib = gi + b * 3 * H;
    const T* ghb = gh + b * 3 * H;
    T* dgib = d_gi + b * 3 * H;
    T* dghb = d_gh + b * 3 * H;
    for (std::size_t j = 0; j < H; ++j) {
      const T r = sigmoid(gib[j] + ghb[j]);
      const T z = sigmoid(gib[H + j] + ghb[H + j]);
      const T n = std::tanh(gib[2 * H + j] + r * ghb[2 * H + j]);
      const T g = dh_out[b * H + j];
      const T dn_pre = g * (T(1) - z) * (T(1) - n * n);
      const T dz_pre = g * (h[b * H + j] - n) * z * (T(1) - z);
      const T dr_pre = dn_pre * ghb[2 * H + j] * r * (T(1) - r);
      dgib[j] = dr_pre;
      dghb[j] = dr_pre;
      dgib[H + j] = dz_pre;
      dghb[H + j] = dz_pre;
      dgib[2 * H + j] = dn_pre;
      dghb[2 * H + j] = dn_pre * r;
      dh[b * H + j] = g * z;
    }
  }
}

namespace {
// Number of keys query i may see.
inline std::size_t visible_keys(const AttentionShape& s, std::size_t i) {
  return s.causal ? std::min(s.tk, i + 1 + (s.tk - s.tq)) : s.tk;
}
}  // namespace

template <class T>
void attention_forward(const T* q, const T* k, const T* v, const T* bias, T* out, T* lse,
                       AttentionShape s, T scale) {
  std::vector<T> p(s.tk);
  for (std::size_t i = 0; i < s.tq; ++i) {
    const std::size_t nk = visible_keys(s, i);
    for (std::size_t j = 0; j < nk; ++j) {
      T dot = 0;
      for (std::size_t c = 0; c < s.d; ++c) dot += q[i * s.d + c] * k[j * s.d + c];
      p[j] = dot * scale + (bias ? bias[i * s.tk + j] : T(0));
    }
    const T l = row_logsumexp(p.data(), nk);
    lse[i] = l;
    for (std::size_t c = 0; c < s.d; ++c) out[i * s.d + c] = 0;
    for (std::size_t j = 0; j < nk; ++j) {
      const T w = std::exp(p[j] - l);
      for (std::size_t c = 0; c < s.d; ++c) out[i * s.d + c] += w * v[j * s.d + c];
    }
  }
}

template <class T>
void attention_backward(const T* q, const T* k, const T* v, const T* bias, const T* out,
                        const T* lse, const T* dout, T* dq, T* dk, T* dv, T* dbias,
                        AttentionShape s, T scale) {
  std::fill(dq, dq + s.tq * s.d, T(0));
  std::fill(dk, dk + s.tk * s.d, T(0));
  std::fill(dv, dv + s.tk * s.d, T(0));
  if (dbias) std::fill(dbias, dbias + s.tq * s.tk, T(0));
  for (std::size_t i = 0; i < s.tq; ++i) {
    const std::size_t nk = visible_keys(s, i);
    // delta_i = sum_c dout[i,c] * out[i,c] = sum_j p_ij dp_ij
    T delta = 0;
    for (std::size_t c = 0; c < s.d; ++c) delta += dout[i * s.d + c] * out[i * s.d + c];
    for (std::size_t j = 0; j < nk; ++j) {
      T dot = 0;
      for (std::size_t c = 0; c < s.d; ++c) dot += q[i * s.d + c] * k[j * s.d + c];
      const T pij = std::exp(dot * scale + (bias ? bias[i * s.tk + j] : T(0)) - lse[i]);
      T dp = 0;
      for (std::size_t c = 0; c < s.d; ++c) dp += dout[i * s.d + c] * v[j * s.d + c];
      const T ds = pij * (dp - delta);
      if (dbias) dbias[i * s.tk + j] = ds;
      for (std::size_t c = 0; c < s.d; ++c) {
        dv[j * s.d + c] += pij * dout[i * s.d + c];
        dq[i * s.d + c] += ds * scale * k[j * s.d + c];
        dk[j * s.d + c] += ds * scale * q[i * s.d + c];
      }
    }
  }
}

template <class T>
void modrelu_forward(const T* z, const T* b, T* y, std::size_t rows, std::size_t cols) {
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) {
      const T v = z[r * cols + c];
      const T mag = std::abs(v) + b[c];
      y[r * cols + c] = mag > T(0) ? (v > T(0) ? mag : v < T(0) ? -mag : T(0)) : T(0);
    }
}

template <class T>
void modrelu_backward(const T* z, const T* b, const T* dy, T* dz, T* db, std::size_t rows,
                      std::size_t cols) {
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) {
      const T v = z[r * cols + c];
      const bool active = std::abs(v) + b[c] > T(0);
      const T g = dy[r * cols + c];
      dz[r * cols + c] = active ? g : T(0);
      if (db && active) db[c] += v > T(0) ? g : v < T(0) ? -g : T(0);
    }
}

template <class T>
void adam_update(T* param, const T* grad, T* m, T* v, std::size_t n, const AdamStep& s) {
  const T b1 = T(s.beta1), b2 = T(s.beta2), lr = T(s.lr), eps = T(s.eps), wd = T(s.weight_decay);
  const T bc1 = T(s.bc1), bc2 = T(s.bc2);
  for (std::size_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (!s.decoupled) g += wd * param[i];
    m[i] = b1 * m[i] + (T(1) - b1) * g;
    v[i] = b2 * v[i] + (T(1) - b2) * g * g;
    const T update = (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
    if (s.decoupled) param[i] -= lr * wd * param[i];
    param[i] -= lr * update;
  }
}

// Explicit instantiations for the two element types the engine supports.
#define CRT_REF_INSTANTIATE(T)                                                                 \
  template void gemm<T>(bool, bool, std::size_t, std::size_t, std::size_t, T, const T*,         \
                        std::size_t, const T*, std::size_t, T, T*, std::size_t);                \
  template void binary<T>(BinaryOp, const T*, const T*, T*, std::size_t);                       \
  template void binary_scalar_right<T>(BinaryOp, const T*, T, T*, std::size_t);                 \
  template void binary_scalar_left<T>(BinaryOp, T, const T*, T*, std::size_t);                  \
  template void unary<T>(UnaryOp, const T*, T*, std::size_t);                                   \
  template void unary_backward<T>(UnaryOp, const T*, const T*, const T*, T*, std::size_t);      \
  template void axpy<T>(T, const T*, T*, std::size_t);                                          \
  template double sum_squares<T>(const T*, std::size_t);                                        \
  template void dropout_apply<T>(const T*, T*, std::size_t, std::uint64_t, std::uint64_t,       \
                                 std::uint64_t, T);                                             \
  template void sum_rows<T>(const T*, T*, std::size_t, std::size_t);                            \
  template void sum_cols<T>(const T*, T*, std::size_t, std::size_t, bool);                      \
  template void softmax_rows<T>(const T*, T*, std::size_t, std::size_t);                        \
  template void softmax_backward_rows<T>(const T*, const T*, T*, std::size_t, std::size_t);     \
  template void log_softmax_rows<T>(const T*, T*, std::size_t, std::size_t);                    \
  template void log_softmax_backward_rows<T>(const T*, const T*, T*, std::size_t, std::size_t); \
  template void cross_entropy_forward<T>(const T*, const std::int32_t*, T*, T*, std::size_t,    \
                                         std::size_t, std::int32_t);                            \
  template void cross_entropy_backward<T>(const T*, const T*, const std::int32_t*, const T*,    \
                                          T*, std::size_t, std::size_t, std::int32_t);          \
  template void layernorm_forward<T>(const T*, const T*, const T*, T*, T*, T*, std::size_t,     \
                                     std::size_t, T);                                           \
  template void layernorm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, \
                                      T*, std::size_t, std::size_t);                            \
  template void gemv_pack<T>(const T*, std::size_t, std::size_t, std::size_t, std::size_t, T*); \
  template void gemv_packed<T>(const T*, const T*, std::size_t, std::size_t, std::size_t, T,    \
                               T*);                                                             \
  template void gru_gates_forward<T>(const T*, const T*, const T*, T*, std::size_t,             \
                                     std::size_t);                                              \
  template void gru_gates_backward<T>(const T*, const T*, const T*, const T*, T*, T*, T*,       \
                                      std::size_t, std::size_t);                                \
  template void attention_forward<T>(const T*, const T*, const T*, const T*, T*, T*,            \
                                     AttentionShape, T);                                        \
  template void attention_backward<T>(const T*, const T*, const T*, const T*, const T*,         \
                                      const T*, const T*, T*, T*, T*, T*, AttentionShape, T);   \
  template void modrelu_forward<T>(const T*, const T*, T*, std::size_t, std::size_t);           \
  template void modrelu_backward<T>(const T*, const T*, const T*, T*, T*, std::size_t,          \
                                    std::size_t);                                               \
  template void adam_update<T>(T*, const T*, T*, T*, std::size_t, const AdamStep&);

CRT_REF_INSTANTIATE(float)
CRT_REF_INSTANTIATE(double)
#undef CRT_REF_INSTANTIATE

}  // namespace crt::kernels::ref
