// The differentiable ops. Each lives in engine/ops/<name>.cpp with its forward and backward
// together; every one accepts non-contiguous inputs, checks its arguments (throwing
// crt::Error naming the op and shapes), and runs its math through kernels/.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "engine/tensor.hpp"

namespace crt {

class Generator;

// ---- element-wise arithmetic with NumPy broadcasting (ops/binary.cpp) --------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
// scalar forms (ops/scalar.cpp): y = a op s, or s op a for rsub/rdiv
Tensor add_scalar(const Tensor& a, double s);
Tensor mul_scalar(const Tensor& a, double s);
Tensor rsub_scalar(double s, const Tensor& a);  // s - a
Tensor rdiv_scalar(double s, const Tensor& a);  // s / a
Tensor pow_scalar(const Tensor& a, double exponent);
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, double s) { return add_scalar(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return add_scalar(a, -s); }
inline Tensor operator*(const Tensor& a, double s) { return mul_scalar(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return mul_scalar(a, 1.0 / s); }
inline Tensor operator*(double s, const Tensor& a) { return mul_scalar(a, s); }
inline Tensor operator-(double s, const Tensor& a) { return rsub_scalar(s, a); }
// Shape that a and b broadcast to; throws naming `op` when they do not.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Sums `g` down to `shape` over broadcast axes (the gradient of a broadcast).
Tensor sum_to(const Tensor& g, const Shape& shape);

// ---- unary activations (ops/unary.cpp) -------------------------------------------------
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor square(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);  // exact erf form
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
inline Tensor operator-(const Tensor& x) { return neg(x); }

// ---- matrix products (ops/matmul.cpp) ---------------------------------------------------
// a: [..., M, K] (or [..., K, M] with trans_a), b: [..., K, N] (or [..., N, K] with trans_b)
// -> [..., M, N]. Batch axes must match, or one operand is 2-D and is shared by every batch.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// x: [..., in], weight: [out, in], bias: [out] or undefined -> [..., out]
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- reductions (ops/reduce.cpp) --------------------------------------------------------
Tensor sum(const Tensor& x, const std::vector<int>& axes, bool keepdim = false);
Tensor sum(const Tensor& x);  // all elements -> scalar (rank 0)
Tensor mean(const Tensor& x, const std::vector<int>& axes, bool keepdim = false);
Tensor mean(const Tensor& x);

// ---- shape ops (ops/concat.cpp; views are methods of Tensor) ----------------------------
Tensor concat(const std::vector<Tensor>& xs, int axis);
Tensor stack(const std::vector<Tensor>& xs, int axis);

// ---- lookups (ops/embedding.cpp) --------------------------------------------------------
// weight: [V, C]; ids: any shape S with values in [0, V) -> [S..., C]. Backward scatter-adds.
Tensor embedding(const Tensor& weight, const std::vector<std::int32_t>& ids, const Shape& ids_shape);

// ---- softmax family (ops/softmax.cpp, ops/cross_entropy.cpp) ----------------------------
Tensor softmax(const Tensor& x, int axis = -1);
Tensor log_softmax(const Tensor& x, int axis = -1);
// logits: [N, V] (or [..., V] flattened), targets: N ids in [0, V) or ignore_index.
// Returns the mean loss over non-ignored targets (a scalar); 0 when every target is ignored.
Tensor cross_entropy(const Tensor& logits, const std::vector<std::int32_t>& targets,
                     std::int32_t ignore_index = -100);

// ---- normalisation and regularisation (ops/layernorm.cpp, ops/dropout.cpp) --------------
// x: [..., C]; gamma, beta: [C] or undefined
Tensor layernorm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps = 1e-5);
// Zeroes each element with probability p and scales the rest by 1/(1-p). Identity when
// !training or p == 0. The mask depends only on the generator's state and the element index.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

// ---- recurrent cell (ops/gru_cell.cpp) --------------------------------------------------
// PyTorch nn.GRUCell convention, gates r, z, n stacked in that order.
// x: [B, I], h: [B, H], w_ih: [3H, I], w_hh: [3H, H], b_ih, b_hh: [3H] (or undefined)
// -> h': [B, H]
Tensor gru_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                const Tensor& b_ih, const Tensor& b_hh);
// The same GRU over T steps as one node (ops/gru_sequence.cpp): the input projections of all
// steps run as one GEMM, only h W_hh^T step by step. x: [B, T, I] (T >= 1), h0: [B, H],
// weights and biases as for gru_cell -> all states [B, T, H] (the last state is out[:, T-1]).
Tensor gru_sequence(const Tensor& x, const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                    const Tensor& b_ih, const Tensor& b_hh);

// ---- attention (ops/attention.cpp) ------------------------------------------------------
// q: [B, heads, Tq, D], k, v: [B, heads, Tk, D] with Tk >= Tq when causal: the first Tk - Tq
// keys are a prefix (memory, cache) every query sees; query i also sees keys up to itself.
// bias: additive scores broadcastable to [B, heads, Tq, Tk] (e.g. [heads, Tq, Tk]) or undefined.
// scale defaults to 1/sqrt(D). -> [B, heads, Tq, D]
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal = true,
                 const Tensor& bias = Tensor(), std::optional<double> scale = std::nullopt);

// ---- relative positions (ops/rel_shift.cpp) ---------------------------------------------
// Transformer-XL's relative shift. x: [..., Tq, K] holds scores by relative distance d
// (column d = distance d); returns [..., Tq, tk] by key position j with
// y[..., i, j] = x[..., i, i + offset - j] where 0 <= i + offset - j < K, else 0.
// offset is the number of prefix (cached) keys.
Tensor rel_shift(const Tensor& x, std::int64_t offset, std::int64_t tk);

// ---- modReLU (ops/modrelu.cpp) ----------------------------------------------------------
// y = sign(z) * relu(|z| + b): z: [..., H], b: [H]. NCGRU's candidate activation.
Tensor modrelu(const Tensor& z, const Tensor& b);

}  // namespace crt
