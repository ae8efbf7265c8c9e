// Fused single-head attention, forward and backward, compiled once per ISA (Note [ISA objects]
// in isa.hpp). Queries go in tiles of kRows, keys in blocks of kKeyBlock: scores are vectorised
// over keys against K^T, the forward keeps a streaming (online) softmax across key blocks, and
// the backward recomputes P from the saved logsumexp. Workspace: the thread's scratch buffer.
#include <cmath>
#include <cstddef>

#include "kernels/scratch.hpp"
#include "kernels/simd_kernels.hpp"
#include "kernels/simd_util.hpp"

namespace crt::kernels::simd {
namespace {

constexpr size_t kRows = 4;        // queries per tile
constexpr size_t kKeyBlock = 128;  // keys per block (a multiple of every lane count)

constexpr size_t round_up(size_t a, size_t b) { return (a + b - 1) / b * b; }

// Keys query i may see: with causal, j <= i + (tk - tq) (the first tk - tq keys are a prefix).
inline size_t visible_keys(const AttentionShape& s, size_t i) {
  return s.causal ? (i + 1 + (s.tk - s.tq) < s.tk ? i + 1 + (s.tk - s.tq) : s.tk) : s.tk;
}

// Carves 64-byte-aligned float arrays out of one scratch buffer.
struct Carver {
  float* base;
  size_t used = 0;
  float* take(size_t n) {
    float* p = base + used;
    used += round_up(n, 16);
    return p;
  }
};

// dst[c * ldd + j] = src[j * d + c] for j < rows, c < d; zeros for rows <= j < ldd. Gathers W
// rows at a time on AVX2 and AVX-512, scalar code elsewhere and for the last rows.
template <class Arch>
void transpose_rows(const float* src, size_t rows, size_t d, float* dst, size_t ldd) {
  size_t j0 = 0;
#if defined(CRT_KERNEL_ISA_AVX512)
  if constexpr (std::is_same_v<Arch, xsimd::avx512bw>) {
    const __m512i offsets = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(int(d)));
    for (; j0 + 16 <= rows; j0 += 16)
      for (size_t c = 0; c < d; ++c)
        _mm512_storeu_ps(dst + c * ldd + j0, _mm512_i32gather_ps(offsets, src + j0 * d + c, 4));
  }
#elif defined(CRT_KERNEL_ISA_AVX2)
  if constexpr (std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>>) {
    const __m256i offsets =
        _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(int(d)));
    for (; j0 + 8 <= rows; j0 += 8)
      for (size_t c = 0; c < d; ++c)
        _mm256_storeu_ps(dst + c * ldd + j0, _mm256_i32gather_ps(src + j0 * d + c, offsets, 4));
  }
#endif
  for (size_t c = 0; c < d; ++c) {
    float* out = dst + c * ldd;
    for (size_t j = j0; j < rows; ++j) out[j] = src[j * d + c];
    for (size_t j = rows; j < ldd; ++j) out[j] = 0.0f;
  }
}

// dst[j * ldd + c] = src[j * d + c] for j < rows, c < d; zeros for d <= c < ldd (ldd: a
// multiple of W, dst aligned).
template <class Arch>
void pad_rows(const float* src, size_t rows, size_t d, float* dst, size_t ldd) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  for (size_t j = 0; j < rows; ++j) {
    size_t c = 0;
    for (; c + W <= d; c += W) V::load_unaligned(src + j * d + c).store_aligned(dst + j * ldd + c);
    for (; c < ldd; c += W)
      load_first<Arch>(src + j * d + c, c < d ? d - c : 0).store_aligned(dst + j * ldd + c);
  }
}

// Rows with their vectors padded to a whole number of lanes: the input itself when d is
// already a multiple of W, else a zero-padded copy in scratch.
struct PaddedRows {
  const float* data;
  size_t ld;
};

template <class Arch>
PaddedRows padded(const float* src, size_t rows, size_t d, Carver& scratch) {
  const size_t dp = round_up(d, kLanes<Arch>);
  if (dp == d) return {src, d};
  float* dst = scratch.take(rows * dp);
  pad_rows<Arch>(src, rows, d, dst, dp);
  return {dst, dp};
}

// s[r * lds + v*W + l] = sum_c a[r * lda + c] * bt[c * ldb + v*W + l] for r < R, v < nvec:
// R rows of A (broadcast) against column vectors of B^T, two vectors at a time.
template <class Arch, size_t R>
void dots_tile(const float* a, size_t lda, const float* bt, size_t ldb, size_t d, size_t nvec,
               float* s, size_t lds) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  size_t v = 0;
  for (; v + 2 <= nvec; v += 2) {
    V acc[R][2];
    for (size_t r = 0; r < R; ++r) acc[r][0] = acc[r][1] = V(0.0f);
    const float* col = bt + v * W;
    for (size_t c = 0; c < d; ++c) {
      const V b0 = V::load_unaligned(col + c * ldb), b1 = V::load_unaligned(col + c * ldb + W);
      for (size_t r = 0; r < R; ++r) {
        const V av(a[r * lda + c]);
        acc[r][0] = fma<Arch>(av, b0, acc[r][0]);
        acc[r][1] = fma<Arch>(av, b1, acc[r][1]);
      }
    }
    for (size_t r = 0; r < R; ++r) {
      acc[r][0].store_unaligned(s + r * lds + v * W);
      acc[r][1].store_unaligned(s + r * lds + v * W + W);
    }
  }
  if (v < nvec) {
    V acc[R];
    for (size_t r = 0; r < R; ++r) acc[r] = V(0.0f);
    const float* col = bt + v * W;
    for (size_t c = 0; c < d; ++c) {
      const V b0 = V::load_unaligned(col + c * ldb);
      for (size_t r = 0; r < R; ++r) acc[r] = fma<Arch>(V(a[r * lda + c]), b0, acc[r]);
    }
    for (size_t r = 0; r < R; ++r) acc[r].store_unaligned(s + r * lds + v * W);
  }
}

template <class Arch>
void dots(size_t rows, const float* a, size_t lda, const float* bt, size_t ldb, size_t d,
          size_t nvec, float* s, size_t lds) {
  switch (rows) {
    case 1: return dots_tile<Arch, 1>(a, lda, bt, ldb, d, nvec, s, lds);
    case 2: return dots_tile<Arch, 2>(a, lda, bt, ldb, d, nvec, s, lds);
    case 3: return dots_tile<Arch, 3>(a, lda, bt, ldb, d, nvec, s, lds);
    default: return dots_tile<Arch, kRows>(a, lda, bt, ldb, d, nvec, s, lds);
  }
}

// acc[r * lda + :dp] += sum_{j < nkeys} w[r * ldw + j] * b[j * ldb + :dp] for r < R: the
// weighted sum of rows of B, two vectors of the row at a time held in registers.
template <class Arch, size_t R>
void weighted_rows_tile(const float* w, size_t ldw, const float* b, size_t ldb, size_t nkeys,
                        size_t dp, float* acc, size_t lda) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  size_t u = 0;
  for (; u + 2 * W <= dp; u += 2 * W) {
    V a[R][2];
    for (size_t r = 0; r < R; ++r) {
      a[r][0] = V::load_aligned(acc + r * lda + u);
      a[r][1] = V::load_aligned(acc + r * lda + u + W);
    }
    for (size_t j = 0; j < nkeys; ++j) {
      const V b0 = V::load_unaligned(b + j * ldb + u), b1 = V::load_unaligned(b + j * ldb + u + W);
      for (size_t r = 0; r < R; ++r) {
        const V wv(w[r * ldw + j]);
        a[r][0] = fma<Arch>(wv, b0, a[r][0]);
        a[r][1] = fma<Arch>(wv, b1, a[r][1]);
      }
    }
    for (size_t r = 0; r < R; ++r) {
      a[r][0].store_aligned(acc + r * lda + u);
      a[r][1].store_aligned(acc + r * lda + u + W);
    }
  }
  if (u < dp) {
    V a[R];
    for (size_t r = 0; r < R; ++r) a[r] = V::load_aligned(acc + r * lda + u);
    for (size_t j = 0; j < nkeys; ++j) {
      const V b0 = V::load_unaligned(b + j * ldb + u);
      for (size_t r = 0; r < R; ++r) a[r] = fma<Arch>(V(w[r * ldw + j]), b0, a[r]);
    }
    for (size_t r = 0; r < R; ++r) a[r].store_aligned(acc + r * lda + u);
  }
}

template <class Arch>
void weighted_rows(size_t rows, const float* w, size_t ldw, const float* b, size_t ldb,
                   size_t nkeys, size_t dp, float* acc, size_t lda) {
  switch (rows) {
    case 1: return weighted_rows_tile<Arch, 1>(w, ldw, b, ldb, nkeys, dp, acc, lda);
    case 2: return weighted_rows_tile<Arch, 2>(w, ldw, b, ldb, nkeys, dp, acc, lda);
    case 3: return weighted_rows_tile<Arch, 3>(w, ldw, b, ldb, nkeys, dp, acc, lda);
    default: return weighted_rows_tile<Arch, kRows>(w, ldw, b, ldb, nkeys, dp, acc, lda);
  }
}

// Row i's scores for the key vectors v*W.. of a block starting at key j0, in place:
// s = s * scale + bias[i, j]; keys at or past `visible` become -inf.
template <class Arch>
Vec<Arch> scaled_scores(const float* s, size_t idx, size_t j0, size_t visible, size_t tk,
                        const float* bias_row, const Vec<Arch>& scale, const Vec<Arch>& iota) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  V x = V::load_aligned(s + idx) * scale;
  const size_t j = j0 + idx;
  if (bias_row) {
    const size_t in_row = tk - j;  // j < visible <= tk
    x += in_row >= W ? V::load_unaligned(bias_row + j) : load_first<Arch>(bias_row + j, in_row);
  }
  if (j + W > visible) {
    const float seen = float(visible > j ? visible - j : 0);  // lanes still visible
    x = xsimd::select(iota < V(seen), x, V(-kInf));
  }
  return x;
}

// Stores dst[0, count) = v's first lanes (count <= W).
template <class Arch>
inline void store_count(const Vec<Arch>& v, float* dst, size_t count) {
  if (count >= kLanes<Arch>)
    v.store_unaligned(dst);
  else
    store_first<Arch>(v, dst, count);
}

}  // namespace

template <class Arch>
void attention_forward(const float* q, const float* k, const float* v, const float* bias,
                       float* out, float* lse, AttentionShape s, float scale) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  const size_t d = s.d, tk = s.tk, tkp = round_up(tk, W), dp = round_up(d, W);
  const bool pad_v = dp != d;
  Carver scratch{thread_scratch(ScratchSlot::gemm_a,  // no GEMM runs inside this kernel
                                d * tkp + (pad_v ? tk * dp : 0) + kRows * dp + 64)};
  float* kt = scratch.take(d * tkp);  // K^T: [d, tkp]
  transpose_rows<Arch>(k, tk, d, kt, tkp);
  const PaddedRows vp = padded<Arch>(v, tk, d, scratch);  // V: [tk, dp]
  float* acc = scratch.take(kRows * dp);                   // unnormalised outputs: [kRows, dp]
  alignas(64) float sbuf[kRows * kKeyBlock];               // scores, then probabilities

  alignas(64) float lane_index[W];
  for (size_t l = 0; l < W; ++l) lane_index[l] = float(l);
  const V iota = V::load_aligned(lane_index), vscale(scale);

  for (size_t i0 = 0; i0 < s.tq; i0 += kRows) {
    const size_t rows = s.tq - i0 < kRows ? s.tq - i0 : kRows;
    size_t nk[kRows] = {};
    float m[kRows] = {}, l[kRows] = {};
    for (size_t r = 0; r < rows; ++r) {
      nk[r] = visible_keys(s, i0 + r);  // non-decreasing in r
      m[r] = -kInf;
      l[r] = 0.0f;
      for (size_t c = 0; c < dp; ++c) acc[r * dp + c] = 0.0f;
    }
    const size_t nk_min = nk[0], nk_max = nk[rows - 1];
    for (size_t j0 = 0; j0 < nk_max; j0 += kKeyBlock) {
      const size_t jb = nk_max - j0 < kKeyBlock ? nk_max - j0 : kKeyBlock;
      const size_t nvec = (jb + W - 1) / W;
      dots<Arch>(rows, q + i0 * d, d, kt + j0, tkp, d, nvec, sbuf, kKeyBlock);
      for (size_t r = 0; r < rows; ++r) {
        if (j0 >= nk[r]) continue;  // no visible key in this block
        float* pr = sbuf + r * kKeyBlock;
        const float* bias_row = bias ? bias + (i0 + r) * tk : nullptr;
        V bm(-kInf);
        for (size_t idx = 0; idx < nvec * W; idx += W) {
          const V x = scaled_scores<Arch>(pr, idx, j0, nk[r], tk, bias_row, vscale, iota);
          x.store_aligned(pr + idx);
          bm = xsimd::max(bm, x);
        }
        const float block_max = hmax<Arch>(bm);
        const float m_new = block_max > m[r] ? block_max : m[r];
        // Every visible score so far is -inf: shift by 0 so that exp gives 0, not NaN.
        const float shift = m_new == -kInf ? 0.0f : m_new;
        if (m_new > m[r] && m[r] != -kInf) {  // rescale what was accumulated at the old max
          const float alpha = std::exp(m[r] - m_new);
          const V va(alpha);
          l[r] *= alpha;
          for (size_t c = 0; c < dp; c += W)
            (V::load_aligned(acc + r * dp + c) * va).store_aligned(acc + r * dp + c);
        }
        m[r] = m_new;
        const V vs(shift);
        V sum(0.0f);
        for (size_t idx = 0; idx < nvec * W; idx += W) {
          const V p = simd::exp<Arch>(V::load_aligned(pr + idx) - vs);
          p.store_aligned(pr + idx);
          sum += p;
        }
        l[r] += hsum<Arch>(sum);
      }
      // out += P V: keys every row of the tile sees, then each row's extra keys (causal).
      const size_t full_end = nk_min < j0 + jb ? nk_min : j0 + jb;
      if (full_end > j0)
        weighted_rows<Arch>(rows, sbuf, kKeyBlock, vp.data + j0 * vp.ld, vp.ld, full_end - j0,
                            dp, acc, dp);
      for (size_t r = 1; r < rows; ++r) {
        const size_t lo = full_end > j0 ? full_end : j0;
        const size_t hi = nk[r] < j0 + jb ? nk[r] : j0 + jb;
        if (hi > lo)
          weighted_rows<Arch>(1, sbuf + r * kKeyBlock + (lo - j0), kKeyBlock,
                              vp.data + lo * vp.ld, vp.ld, hi - lo, dp, acc + r * dp, dp);
      }
    }
    for (size_t r = 0; r < rows; ++r) {
      const size_t i = i0 + r;
      float* o = out + i * d;
      if (nk[r] == 0) {  // no keys: zeros, as the reference
        for (size_t c = 0; c < d; ++c) o[c] = 0.0f;
        lse[i] = -kInf;
        continue;
      }
      const V inv(1.0f / l[r]);
      for (size_t c = 0; c < d; c += W)
        store_count<Arch>(V::load_aligned(acc + r * dp + c) * inv, o + c, d - c);
      lse[i] = m[r] + std::log(l[r]);
    }
  }
}

template <class Arch>
void attention_backward(const float* q, const float* k, const float* v, const float* bias,
                        const float* out, const float* lse, const float* dout, float* dq,
                        float* dk, float* dv, float* dbias, AttentionShape s, float scale) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>;
  const size_t d = s.d, tk = s.tk, tkp = round_up(tk, W), dp = round_up(d, W);
  const bool pad_k = dp != d;
  Carver scratch{thread_scratch(ScratchSlot::gemm_a,  // no GEMM runs inside this kernel
                                2 * d * tkp + (pad_k ? tk * dp : 0) + 2 * tk * dp +
                                    3 * kRows * dp + 128)};
  float* kt = scratch.take(d * tkp);  // K^T: [d, tkp]
  float* vt = scratch.take(d * tkp);  // V^T: [d, tkp]
  transpose_rows<Arch>(k, tk, d, kt, tkp);
  transpose_rows<Arch>(v, tk, d, vt, tkp);
  const PaddedRows kp = padded<Arch>(k, tk, d, scratch);  // K: [tk, dp]
  float* dk_acc = scratch.take(tk * dp);                   // sum_i ds_ij q_i: [tk, dp]
  float* dv_acc = scratch.take(tk * dp);                   // sum_i p_ij dout_i: [tk, dp]
  float* q_tile = scratch.take(kRows * dp);                // the tile's q rows: [kRows, dp]
  float* g_tile = scratch.take(kRows * dp);                // the tile's dout rows: [kRows, dp]
  float* dq_acc = scratch.take(kRows * dp);                // sum_j ds_ij k_j: [kRows, dp]
  for (size_t c = 0; c < tk * dp; ++c) dk_acc[c] = dv_acc[c] = 0.0f;
  alignas(64) float pbuf[kRows * kKeyBlock];   // P for the block
  alignas(64) float dsbuf[kRows * kKeyBlock];  // dP, then dS = P (dP - delta)

  alignas(64) float lane_index[W];
  for (size_t l = 0; l < W; ++l) lane_index[l] = float(l);
  const V iota = V::load_aligned(lane_index), vscale(scale), zero(0.0f);

  for (size_t i0 = 0; i0 < s.tq; i0 += kRows) {
    const size_t rows = s.tq - i0 < kRows ? s.tq - i0 : kRows;
    size_t nk[kRows] = {};
    float delta[kRows] = {};  // dout_i . out_i = sum_j p_ij dp_ij
    for (size_t r = 0; r < rows; ++r) {
      const size_t i = i0 + r;
      nk[r] = visible_keys(s, i);
      delta[r] = row_dot<Arch>(dout + i * d, out + i * d, d);
      for (size_t c = 0; c < dp; ++c) dq_acc[r * dp + c] = 0.0f;
    }
    pad_rows<Arch>(q + i0 * d, rows, d, q_tile, dp);
    pad_rows<Arch>(dout + i0 * d, rows, d, g_tile, dp);
    const size_t nk_min = nk[0], nk_max = nk[rows - 1];
    for (size_t j0 = 0; j0 < nk_max; j0 += kKeyBlock) {
      const size_t jb = nk_max - j0 < kKeyBlock ? nk_max - j0 : kKeyBlock;
      const size_t nvec = (jb + W - 1) / W;
      dots<Arch>(rows, q + i0 * d, d, kt + j0, tkp, d, nvec, pbuf, kKeyBlock);
      dots<Arch>(rows, dout + i0 * d, d, vt + j0, tkp, d, nvec, dsbuf, kKeyBlock);
      for (size_t r = 0; r < rows; ++r) {
        const size_t i = i0 + r;
        float* pr = pbuf + r * kKeyBlock;
        float* dsr = dsbuf + r * kKeyBlock;
        const float* bias_row = bias ? bias + i * tk : nullptr;
        const V vl(lse[i]), vd(delta[r]);
        for (size_t idx = 0; idx < nvec * W; idx += W) {
          // Masked keys: scores -inf, so p = 0; ds is forced to 0 as well.
          const V x = scaled_scores<Arch>(pr, idx, j0, nk[r], tk, bias_row, vscale, iota);
          const V p = simd::exp<Arch>(x - vl);
          const V ds = xsimd::select(x == V(-kInf), zero, p * (V::load_aligned(dsr + idx) - vd));
          p.store_aligned(pr + idx);
          ds.store_aligned(dsr + idx);
          if (dbias) store_count<Arch>(ds, dbias + i * tk + j0 + idx, jb - idx);
        }
      }
      // dq += dS K, dk += dS^T Q, dv += P^T dOut: keys every row sees, then each row's extras.
      const size_t full_end = nk_min < j0 + jb ? nk_min : j0 + jb;
      const auto keys_of_rows = [&](size_t r0, size_t nr, size_t lo, size_t hi) {
        weighted_rows<Arch>(nr, dsbuf + r0 * kKeyBlock + (lo - j0), kKeyBlock,
                            kp.data + lo * kp.ld, kp.ld, hi - lo, dp, dq_acc + r0 * dp, dp);
        for (size_t j = lo; j < hi; ++j) {
          float* dkj = dk_acc + j * dp;
          float* dvj = dv_acc + j * dp;
          for (size_t c = 0; c < dp; c += W) {
            V a = V::load_aligned(dkj + c), b = V::load_aligned(dvj + c);
            for (size_t r = r0; r < r0 + nr; ++r) {
              const size_t at = r * kKeyBlock + j - j0;
              a = fma<Arch>(V(dsbuf[at]), V::load_aligned(q_tile + r * dp + c), a);
              b = fma<Arch>(V(pbuf[at]), V::load_aligned(g_tile + r * dp + c), b);
            }
            a.store_aligned(dkj + c);
            b.store_aligned(dvj + c);
          }
        }
      };
      if (full_end > j0) keys_of_rows(0, rows, j0, full_end);
      for (size_t r = 1; r < rows; ++r) {
        const size_t lo = full_end > j0 ? full_end : j0;
        const size_t hi = nk[r] < j0 + jb ? nk[r] : j0 + jb;
        if (hi > lo) keys_of_rows(r, 1, lo, hi);
      }
    }
    for (size_t r = 0; r < rows; ++r) {
      const size_t i = i0 + r;
      for (size_t c = 0; c < d; c += W)
        store_count<Arch>(V::load_aligned(dq_acc + r * dp + c) * vscale, dq + i * d + c, d - c);
      if (dbias)  // keys no row of the tile sees
        for (size_t j = nk_max; j < tk; ++j) dbias[i * tk + j] = 0.0f;
    }
  }
  for (size_t j = 0; j < tk; ++j)
    for (size_t c = 0; c < d; c += W) {
      store_count<Arch>(V::load_aligned(dk_acc + j * dp + c) * vscale, dk + j * d + c, d - c);
      store_count<Arch>(V::load_aligned(dv_acc + j * dp + c), dv + j * d + c, d - c);
    }
}

template void attention_forward<arch_t>(const float*, const float*, const float*, const float*,
                                        float*, float*, AttentionShape, float);
template void attention_backward<arch_t>(const float*, const float*, const float*, const float*,
                                         const float*, const float*, const float*, float*, float*,
                                         float*, float*, AttentionShape, float);

}  // namespace crt::kernels::simd
