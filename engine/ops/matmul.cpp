// Matrix products: matmul (2-D and batched, either operand transposed, a 2-D operand shared
// across the other's batch) and linear. Threads split the output into fixed tiles; each
// tile is one single-threaded kernels::gemm call.
#include <algorithm>

#include "engine/flops.hpp"
#include "engine/ops.hpp"
#include "engine/weight_cache.hpp"
#include "engine/ops/gemm_tiles.hpp"
#include "engine/ops/op_util.hpp"
#include "engine/parallel.hpp"
#include "engine/strided.hpp"
#include "kernels/kernels.hpp"

namespace crt {
using detail::dispatch_dtype;
using detail::gemm_tiles;
using detail::usize;

namespace {

// A matrix operand as the kernel sees it: base tensor (possibly copied to make its rows or
// columns unit-stride), leading dimension and the effective transposition flag.
struct MatrixView {
  Tensor t;
  std::int64_t ld;
  bool trans;
};

// rows x cols is the stored (untransposed) matrix of the last two axes.
MatrixView as_matrix(const Tensor& x, bool trans) {
  const int r = x.dim();
  const std::int64_t rows = x.shape()[r - 2], cols = x.shape()[r - 1];
  const std::int64_t s_row = x.strides()[r - 2], s_col = x.strides()[r - 1];
  if ((s_col == 1 || cols == 1) && s_row >= std::max<std::int64_t>(1, cols))
    return {x, s_row, trans};
  if ((s_row == 1 || rows == 1) && s_col >= std::max<std::int64_t>(1, rows))
    return {x, s_col, !trans};  // column-major storage: the transpose is row-major
  const Tensor c = x.contiguous();
  return {c, cols, trans};
}

Shape batch_shape(const Tensor& x) {
  Shape s = x.shape();
  s.erase(s.rank() - 1);
  s.erase(s.rank() - 1);
  return s;
}

// True when the batch axes and the row axis of a row-major matrix view collapse into one
// axis of stride ld (so the whole batch is one tall matrix).
bool batch_collapses(const MatrixView& v) {
  const Tensor& x = v.t;
  const int r = x.dim();
  std::int64_t expect = v.ld * x.shape()[r - 2];
  for (int i = r - 3; i >= 0; --i) {
    if (x.shape()[i] != 1 && x.strides()[i] != expect) return false;
    expect *= x.shape()[i];
  }
  return true;
}

// Inference (gradients off) with a parameter stored [n, k] and used as B^T, against a few
// rows of A (one short segment): the GEMM would transpose the whole weight into its packed
// panels at every call, costing about as much as the product itself; a cached row-major
// [k, n] copy is read in place instead (weight_cache.hpp decides when).
bool use_weight_cache(const Tensor& a, const Tensor& b, bool tb, std::int64_t k) {
  return tb && k > 0 && b.dim() == 2 && use_weight_cache_rows(a.numel() / k, b);
}

// y = row w^T + beta y for one contiguous row [k] and a parameter w [n, k], read through its
// cached GEMV panels (weight_cache.hpp): one contiguous stream per panel of rows.
void gemv_with_panels(const Tensor& row, const Tensor& w, double beta, const Tensor& y) {
  const std::size_t panel = gemv_panel_for(w.dtype());
  const Tensor packed = cached_gemv_panels(w, 1, panel);
  dispatch_dtype(row.dtype(), [&](auto tag) {
    using T = decltype(tag);
    kernels::gemv_packed(row.data<T>(), packed.data<T>(), usize(w.size(0)), usize(w.size(1)),
                         panel, T(beta), y.data<T>());
  });
}

Tensor matmul_forward(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const char* op = "matmul";
  detail::require_defined(a, op, "left operand");
  detail::require_defined(b, op, "right operand");
  detail::require_same_dtype(a, b, op);
  require(a.dim() >= 2 && b.dim() >= 2, op, "operands need rank >= 2, got ", a.describe(),
          " and ", b.describe());
  const std::int64_t m = ta ? a.size(-1) : a.size(-2), k = ta ? a.size(-2) : a.size(-1);
  const std::int64_t kb = tb ? b.size(-1) : b.size(-2), n = tb ? b.size(-2) : b.size(-1);
  require(k == kb, op, "inner dimensions differ: a ", a.describe(), (ta ? " (transposed)" : ""),
          " has K=", k, ", b ", b.describe(), (tb ? " (transposed)" : ""), " has K=", kb);
  const Shape ba = batch_shape(a), bb = batch_shape(b);
  Shape batch;
  if (ba == bb || b.dim() == 2) batch = ba;
  else if (a.dim() == 2) batch = bb;
  else
    throw Error(format_error(op, "batch axes ", ba, " and ", bb, " of ", a.describe(), " and ",
                             b.describe(), " differ; they must match or one operand be 2-D"));
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor y = Tensor::empty(out_shape, a.dtype());
  const std::int64_t nbatch = batch.numel();
  count_flops(2 * nbatch * m * n * k);
  if (y.numel() == 0) return y;
  if (k == 0) {
    y.fill_(0.0);
    return y;
  }
  if (tb && !ta && b.dim() == 2 && use_gemv_panels(a.numel() / k, b)) {
    gemv_with_panels(a.contiguous(), b, 0.0, y);  // one row against a parameter
    return y;
  }
  const bool cached = use_weight_cache(a, b, tb, k);
  const MatrixView va = as_matrix(a, ta);
  const MatrixView vb = cached ? MatrixView{cached_transpose(b), n, false} : as_matrix(b, tb);
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* yp = y.data<T>();
    // Shared 2-D weight and a batch that folds into rows: one tall product.
    if (b.dim() == 2 && !va.trans && batch_collapses(va)) {
      gemm_tiles<T>(false, vb.trans, nbatch * m, n, k, va.t.template data<T>(), va.ld,
                    vb.t.template data<T>(), vb.ld, yp, n);
      return;
    }
    std::vector<std::int64_t> a_off, b_off;
    const int ra = va.t.dim(), rb = vb.t.dim();
    if (a.dim() == 2) a_off.assign(usize(nbatch), 0);
    else for_each_outer(va.t.shape(), va.t.strides(), ra - 2, [&](std::int64_t o) { a_off.push_back(o); });
    if (b.dim() == 2) b_off.assign(usize(nbatch), 0);
    else for_each_outer(vb.t.shape(), vb.t.strides(), rb - 2, [&](std::int64_t o) { b_off.push_back(o); });
    const T* ap = va.t.template data<T>();
    const T* bp = vb.t.template data<T>();
    const bool per_batch_threads = nbatch > 1 && 2 * m * n * k < (1 << 22);
    if (per_batch_threads) {
      parallel_for(0, nbatch, 1, [&](std::int64_t lo, std::int64_t hi) {
        for (std::int64_t i = lo; i < hi; ++i)
          kernels::gemm(va.trans, vb.trans, usize(m), usize(n), usize(k), T(1),
                        ap + a_off[usize(i)], usize(va.ld), bp + b_off[usize(i)], usize(vb.ld),
                        T(0), yp + i * m * n, usize(n));
      });
    } else {
      for (std::int64_t i = 0; i < nbatch; ++i)
        gemm_tiles<T>(va.trans, vb.trans, m, n, k, ap + a_off[usize(i)], va.ld,
                      bp + b_off[usize(i)], vb.ld, yp + i * m * n, n);
    }
  });
  return y;
}

// The stored-operand matrix op(x) as a contiguous [rows of op(x), cols] tensor collapsed over
// the batch: used for the gradient of a shared 2-D operand.
Tensor flatten_op(const Tensor& x, bool trans) {
  const Tensor m = trans ? x.transpose(-1, -2) : x;
  return m.reshape({-1, m.size(-1)});
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  Tensor y = matmul_forward(a, b, ta, tb);
  if (should_record({&a, &b})) {
    const Tensor a_saved = b.requires_grad() ? a.detach() : Tensor();
    const Tensor b_saved = a.requires_grad() ? b.detach() : Tensor();
    const bool a_shared = a.dim() == 2 && b.dim() > 2;
    const bool b_shared = b.dim() == 2 && a.dim() > 2;
    const Shape sa = a.shape();
    record_node(y, "matmul", {a, b}, [=](const Tensor& g, const NeedsGrad& needs) {
      Tensor ga, gb;
      if (needs[0]) {
        // d op(A) = G op(B)^T
        ga = ta ? matmul(b_saved, g, tb, true) : matmul(g, b_saved, false, !tb);
        if (a_shared) ga = sum_to(ga, sa);
      }
      if (needs[1]) {
        if (b_shared) {
          const Tensor a2 = flatten_op(a_saved, ta), g2 = g.reshape({-1, g.size(-1)});
          gb = tb ? matmul(g2, a2, true, false) : matmul(a2, g2, true, false);
        } else {
          // d op(B) = op(A)^T G
          gb = tb ? matmul(g, a_saved, true, ta) : matmul(a_saved, g, !ta, false);
        }
      }
      return std::vector<Tensor>{ga, gb};
    });
  }
  return y;
}

// linear without a graph: the bias is written into the output first and the product
// accumulates onto it (one pass over the output instead of a product and then an add), with
// the weight read through the inference cache where that pays (use_weight_cache).
static Tensor linear_no_grad(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const std::int64_t k = weight.size(1), n = weight.size(0);
  const Tensor x2 = x.contiguous();  // [..., K] -> rows of K
  const std::int64_t rows = k == 0 ? 0 : x2.numel() / k;
  Shape out_shape = x.shape();
  out_shape[x.dim() - 1] = n;
  Tensor y = Tensor::empty(out_shape, x.dtype());
  count_flops(2 * rows * n * k);
  if (y.numel() == 0) return y;
  if (bias.defined()) {
    y.view({rows, n}).copy_(bias.detach().unsqueeze(0).expand({rows, n}));
  } else {
    y.fill_(0.0);
  }
  if (k == 0) return y;
  if (use_gemv_panels(rows, weight)) {  // one row (a batch-1 step)
    gemv_with_panels(x2, weight, 1.0, y);
    return y;
  }
  const bool cached = use_weight_cache_rows(rows, weight);
  const MatrixView vb = cached ? MatrixView{cached_transpose(weight), n, false}
                               : as_matrix(weight, true);
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    gemm_tiles<T>(false, vb.trans, rows, n, k, x2.data<T>(), k, vb.t.template data<T>(), vb.ld,
                  y.data<T>(), n, T(1));
  });
  return y;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  detail::require_defined(x, "linear", "input");
  detail::require_defined(weight, "linear", "weight");
  require(weight.dim() == 2, "linear", "weight must be [out, in], got ", weight.describe());
  require(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear", "input ", x.describe(),
          " has ", (x.dim() ? x.size(-1) : 0), " features but weight ", weight.describe(),
          " expects ", weight.size(1));
  if (bias.defined())
    require(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear", "bias ",
            bias.describe(), " does not match weight ", weight.describe());
  if (!should_record({&x, &weight, &bias})) return linear_no_grad(x, weight, bias);
  const Tensor x2 = x.dim() == 1 ? x.unsqueeze(0) : x;
  Tensor y = matmul(x2, weight, false, true);
  if (bias.defined()) y = add(y, bias);
  return x.dim() == 1 ? y.squeeze(0) : y;
}

}  // namespace crt
