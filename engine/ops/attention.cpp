// attention: fused scaled-dot-product attention over [B, heads, T, D], recorded as one node.
// Each (batch, head) pair is one single-threaded kernels::attention_forward / _backward call;
// threads split the B*heads pairs in fixed chunks. Optional causal mask with a key prefix.
#include <cmath>

#include "engine/flops.hpp"
#include "engine/ops.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "kernels/kernels.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::usize;

namespace {

constexpr const char* kOp = "attention";

// Query/key pairs the kernel actually scores in one head: every pair without causal; with
// causal (tk >= tq), query i sees the tk - tq prefix keys plus keys up to itself.
std::int64_t visible_pairs(std::int64_t tq, std::int64_t tk, bool causal) {
  return causal ? tq * (tk - tq) + tq * (tq + 1) / 2 : tq * tk;
}

// FLOP convention (2 per multiply-add, visible pairs only): forward is QK^T plus PV, i.e.
// 2 * 2 * D per visible pair; backward counts its four products of that size (dP = dO V^T,
// dV = P^T dO, dQ = dS K, dK = dS^T Q), i.e. twice the forward; the kernel's recomputation
// of the scores is not counted.
std::int64_t forward_flops(std::int64_t heads, std::int64_t pairs, std::int64_t d) {
  return heads * pairs * 2 * 2 * d;
}

// The bias as the kernel reads it: contiguous [Bb, Hb, Tq, Tk] with Bb in {1, B} and
// Hb in {1, heads}, plus the per-(batch, head) element offset into it.
struct BiasLayout {
  Tensor data;  // detached, contiguous, rank 4
  std::int64_t batch_stride = 0, head_stride = 0;
  std::int64_t offset(std::int64_t b, std::int64_t h) const {
    return b * batch_stride + h * head_stride;
  }
};

BiasLayout layout_bias(const Tensor& bias, const Shape& scores) {
  Shape own = bias.shape();
  while (own.rank() < 4) own.insert(0, 1);
  const Shape expanded{own[0], own[1], scores[2], scores[3]};
  BiasLayout out;
  out.data = bias.detach().reshape(own).expand(expanded).contiguous();
  const std::int64_t plane = scores[2] * scores[3];
  out.batch_stride = own[0] == 1 ? 0 : own[1] * plane;
  out.head_stride = own[1] == 1 ? 0 : plane;
  return out;
}

void check_args(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                const Tensor& bias, std::optional<double> scale) {
  detail::require_defined(q, kOp, "query q");
  detail::require_defined(k, kOp, "key k");
  detail::require_defined(v, kOp, "value v");
  require(q.dim() == 4, kOp, "q ", q.describe(), " should be [B, heads, Tq, D]");
  require(k.dim() == 4, kOp, "k ", k.describe(), " should be [B, heads, Tk, D]");
  const std::int64_t batch = q.size(0), heads = q.size(1), tq = q.size(2), d = q.size(3);
  const std::int64_t tk = k.size(2);
  require(k.size(0) == batch && k.size(1) == heads && k.size(3) == d, kOp, "k ", k.describe(),
          " should be [B, heads, Tk, D] = [", batch, ", ", heads, ", Tk, ", d, "] to match q ",
          q.describe());
  require(v.shape() == k.shape(), kOp, "v ", v.describe(), " should have the shape of k ",
          k.describe());
  detail::require_same_dtype(q, k, kOp);
  detail::require_same_dtype(q, v, kOp);
  require(d >= 1, kOp, "head size D must be >= 1, got q ", q.describe());
  require(tk >= 1 || tq == 0, kOp, "no keys to attend to: k ", k.describe());
  require(!causal || tk >= tq, kOp, "causal attention needs Tk >= Tq (keys beyond the queries "
          "are a prefix), got q ", q.describe(), " and k ", k.describe());
  if (scale) require(std::isfinite(*scale), kOp, "scale must be finite, got ", *scale);
  if (bias.defined()) {
    detail::require_same_dtype(q, bias, kOp);
    const Shape scores{batch, heads, tq, tk};
    bool ok = bias.dim() <= 4;
    for (int i = 1; ok && i <= bias.dim(); ++i)
      ok = bias.shape().back(i) == 1 || bias.shape().back(i) == scores.back(i);
    require(ok, kOp, "bias ", bias.describe(),
            " is not broadcastable to the scores [B, heads, Tq, Tk] = ", scores);
  }
}

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal,
                 const Tensor& bias, std::optional<double> scale) {
  check_args(q, k, v, causal, bias, scale);
  const std::int64_t batch = q.size(0), heads = q.size(1), tq = q.size(2), d = q.size(3);
  const std::int64_t tk = k.size(2), pairs = batch * heads;
  const double sc = scale ? *scale : 1.0 / std::sqrt(double(d));
  const kernels::AttentionShape shape{usize(tq), usize(tk), usize(d), causal};
  // q_d: [B, heads, Tq, D], k_d, v_d: [B, heads, Tk, D], all contiguous
  const Tensor q_d = q.detach().contiguous(), k_d = k.detach().contiguous(),
               v_d = v.detach().contiguous();
  const BiasLayout bias_l =
      bias.defined() ? layout_bias(bias, {batch, heads, tq, tk}) : BiasLayout{};
  Tensor out = Tensor::empty({batch, heads, tq, d}, q.dtype());
  const Tensor lse = Tensor::empty({batch, heads, tq}, q.dtype());  // [B, heads, Tq]
  count_flops(forward_flops(pairs, visible_pairs(tq, tk, causal), d));
  dispatch_dtype(q.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* bias_p = bias_l.data.defined() ? bias_l.data.template data<T>() : nullptr;
    parallel_for(0, pairs, 1, [&](std::int64_t lo, std::int64_t hi) {
      for (std::int64_t p = lo; p < hi; ++p) {
        const T* bp = bias_p ? bias_p + bias_l.offset(p / heads, p % heads) : nullptr;
        kernels::attention_forward(q_d.data<T>() + p * tq * d, k_d.data<T>() + p * tk * d,
                                   v_d.data<T>() + p * tk * d, bp, out.data<T>() + p * tq * d,
                                   lse.data<T>() + p * tq, shape, T(sc));
      }
    });
  });

  if (should_record({&q, &k, &v, &bias})) {
    const Tensor out_d = out.detach();
    const Shape bias_shape = bias.defined() ? bias.shape() : Shape{};
    record_node(out, kOp, {q, k, v, bias}, [=](const Tensor& grad, const NeedsGrad& needs) {
      const Tensor g = grad.contiguous();  // [B, heads, Tq, D]
      Tensor dq = Tensor::empty(q_d.shape(), g.dtype());
      Tensor dk = Tensor::empty(k_d.shape(), g.dtype());
      Tensor dv = Tensor::empty(v_d.shape(), g.dtype());
      // Per-head bias gradients, summed back to the bias's shape below (fixed order).
      Tensor dscores = needs[3] ? Tensor::empty({batch, heads, tq, tk}, g.dtype()) : Tensor();
      count_flops(2 * forward_flops(pairs, visible_pairs(tq, tk, causal), d));
      dispatch_dtype(g.dtype(), [&](auto tag) {
        using T = decltype(tag);
        const T* bias_p = bias_l.data.defined() ? bias_l.data.template data<T>() : nullptr;
        T* ds_p = dscores.defined() ? dscores.data<T>() : nullptr;
        parallel_for(0, pairs, 1, [&](std::int64_t lo, std::int64_t hi) {
          for (std::int64_t p = lo; p < hi; ++p) {
            const T* bp = bias_p ? bias_p + bias_l.offset(p / heads, p % heads) : nullptr;
            const std::int64_t qo = p * tq * d, ko = p * tk * d;
            kernels::attention_backward(q_d.data<T>() + qo, k_d.data<T>() + ko,
                                        v_d.data<T>() + ko, bp, out_d.data<T>() + qo,
                                        lse.data<T>() + p * tq, g.data<T>() + qo,
                                        dq.data<T>() + qo, dk.data<T>() + ko, dv.data<T>() + ko,
                                        ds_p ? ds_p + p * tq * tk : nullptr, shape, T(sc));
          }
        });
      });
      const Tensor dbias = needs[3] ? sum_to(dscores, bias_shape) : Tensor();
      return std::vector<Tensor>{needs[0] ? dq : Tensor(), needs[1] ? dk : Tensor(),
                                 needs[2] ? dv : Tensor(), dbias};
    });
  }
  return out;
}

}  // namespace crt
