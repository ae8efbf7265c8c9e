// Single-precision GEMM in the BLIS shape, compiled once per ISA (Note [ISA objects] in
// isa.hpp): A is packed into MR-row panels and B into NR-column panels, and an MR x NR
// register-tile microkernel runs over them. Products with very few rows skip packing: dot
// products for A B^T up to 4 rows, a streaming row-vector kernel for A B with one row.
#include <algorithm>
#include <array>
#include <cstddef>
#include <utility>

#include "kernels/arch.hpp"
#include "kernels/scratch.hpp"
#include "kernels/simd_util.hpp"

#if defined(__SSE2__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

namespace crt::kernels {
namespace {

using std::size_t;

// Blocking per ISA: mr x (nv vectors) is the register tile (accumulators plus the nv B vectors
// and a broadcast must fit the register file); kc, mc and nc are the depth, row and column
// blocks that keep a B micro-panel in L1, an A block in L2 and a B block in L3. dot_rows: rows
// of A per tile of the unpacked A B^T path (dot_rows x 4 accumulators, with 16 registers: 2).
// Tuned on an AVX-512 Zen 5 (see the AVX-512 entry; kc from 128 to 384 and mc 120 or 240 made
// no difference there). Check the compiled microkernel for stack traffic after changing it:
// GCC 12 spills a register tile that leaves it too few spare registers, silently.
template <class Arch>
struct GemmTraits;

#if defined(CRT_KERNEL_ISA_AVX512)
// 8 x 48: 24 accumulators, 3 B vectors and one broadcast, all in registers. The 12 x 32 tile
// (also 24 accumulators) makes GCC 12 keep one of its 2 B vectors on the stack, a store and 12
// reloads per k step, which costs about a quarter of the speed.
template <>
struct GemmTraits<xsimd::avx512bw> {
  static constexpr size_t mr = 8, nv = 3, kc = 256, mc = 240, nc = 4080, dot_rows = 4;
};
#elif defined(CRT_KERNEL_ISA_AVX2)
template <>
struct GemmTraits<xsimd::fma3<xsimd::avx2>> {
  static constexpr size_t mr = 6, nv = 2, kc = 256, mc = 144, nc = 4096, dot_rows = 2;
};
#elif defined(CRT_KERNEL_ISA_SSE2)
template <>
struct GemmTraits<xsimd::sse2> {
  static constexpr size_t mr = 6, nv = 2, kc = 256, mc = 144, nc = 4096, dot_rows = 2;
};
#elif defined(CRT_KERNEL_ISA_NEON64)
template <>
struct GemmTraits<xsimd::neon64> {
  static constexpr size_t mr = 8, nv = 3, kc = 256, mc = 128, nc = 3072, dot_rows = 4;
};
#endif

constexpr size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

// ---- transposition used by packing --------------------------------------------------------

// Square block transposes, dst[c * ldd + r] = src[r * lds + c] for r, c < the block size:
// 4 x 4 on every target, 8 x 8 where AVX is enabled and 16 x 16 where AVX-512 is.
inline void transpose4x4(const float* src, size_t lds, float* dst, size_t ldd) {
#if defined(__SSE2__)
  __m128 r0 = _mm_loadu_ps(src), r1 = _mm_loadu_ps(src + lds);
  __m128 r2 = _mm_loadu_ps(src + 2 * lds), r3 = _mm_loadu_ps(src + 3 * lds);
  _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
  _mm_storeu_ps(dst, r0);
  _mm_storeu_ps(dst + ldd, r1);
  _mm_storeu_ps(dst + 2 * ldd, r2);
  _mm_storeu_ps(dst + 3 * ldd, r3);
#elif defined(__ARM_NEON)
  const float32x4x2_t t01 = vtrnq_f32(vld1q_f32(src), vld1q_f32(src + lds));
  const float32x4x2_t t23 = vtrnq_f32(vld1q_f32(src + 2 * lds), vld1q_f32(src + 3 * lds));
  vst1q_f32(dst, vcombine_f32(vget_low_f32(t01.val[0]), vget_low_f32(t23.val[0])));
  vst1q_f32(dst + ldd, vcombine_f32(vget_low_f32(t01.val[1]), vget_low_f32(t23.val[1])));
  vst1q_f32(dst + 2 * ldd, vcombine_f32(vget_high_f32(t01.val[0]), vget_high_f32(t23.val[0])));
  vst1q_f32(dst + 3 * ldd, vcombine_f32(vget_high_f32(t01.val[1]), vget_high_f32(t23.val[1])));
#else
  for (size_t r = 0; r < 4; ++r)
    for (size_t c = 0; c < 4; ++c) dst[c * ldd + r] = src[r * lds + c];
#endif
}

#if defined(__AVX__)
// col[c], lane r = row[r], lane c: an 8 x 8 transpose in registers.
inline void transpose8x8_registers(const __m256 (&row)[8], __m256 (&col)[8]) {
  __m256 t[8], u[8];
  for (size_t i = 0; i < 8; i += 2) {  // interleave row pairs within 128-bit lanes
    t[i] = _mm256_unpacklo_ps(row[i], row[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(row[i], row[i + 1]);
  }
  for (size_t h = 0; h < 8; h += 4) {  // u[h + s], lane q: column 4q + s of rows h .. h+3
    u[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
    u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);
    u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
    u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
  }
  for (size_t s = 0; s < 4; ++s) {
    col[s] = _mm256_permute2f128_ps(u[s], u[4 + s], 0x20);
    col[4 + s] = _mm256_permute2f128_ps(u[s], u[4 + s], 0x31);
  }
}

inline void transpose8x8(const float* src, size_t lds, float* dst, size_t ldd) {
  __m256 row[8], col[8];
  for (size_t i = 0; i < 8; ++i) row[i] = _mm256_loadu_ps(src + i * lds);
  transpose8x8_registers(row, col);
  for (size_t c = 0; c < 8; ++c) _mm256_storeu_ps(dst + c * ldd, col[c]);
}

// The same for `rows` = 5, 6 or 7 rows (dst[c * ldd + r] for r < rows, c < 8): the short row
// panels of packed A (AVX2's 6-row tile; edges), which otherwise took a 4 x 4 transpose and a
// scalar loop for the rest.
inline void transpose_5to7x8(const float* src, size_t lds, size_t rows, float* dst, size_t ldd) {
  __m256 row[8], col[8];
  for (size_t i = 0; i < 8; ++i)
    row[i] = i < rows ? _mm256_loadu_ps(src + i * lds) : _mm256_setzero_ps();
  transpose8x8_registers(row, col);
  for (size_t c = 0; c < 8; ++c) {
    float* d = dst + c * ldd;
    const __m128 high = _mm256_extractf128_ps(col[c], 1);
    _mm_storeu_ps(d, _mm256_castps256_ps128(col[c]));
    if (rows == 5) {
      _mm_store_ss(d + 4, high);
    } else {
      _mm_storel_pi(reinterpret_cast<__m64*>(d + 4), high);
      if (rows == 7) _mm_store_ss(d + 6, _mm_movehl_ps(high, high));
    }
  }
}
#endif

#if defined(__AVX512F__)
inline void transpose16x16(const float* src, size_t lds, float* dst, size_t ldd) {
  __m512 t[16], u[16];
  for (size_t i = 0; i < 16; i += 2) {  // interleave row pairs within 128-bit lanes
    const __m512 a = _mm512_loadu_ps(src + i * lds), b = _mm512_loadu_ps(src + (i + 1) * lds);
    t[i] = _mm512_unpacklo_ps(a, b);
    t[i + 1] = _mm512_unpackhi_ps(a, b);
  }
  for (size_t h = 0; h < 16; h += 4) {  // u[h + s], lane q: column 4q + s of rows h .. h+3
    const __m512d t0 = _mm512_castps_pd(t[h]), t1 = _mm512_castps_pd(t[h + 1]);
    const __m512d t2 = _mm512_castps_pd(t[h + 2]), t3 = _mm512_castps_pd(t[h + 3]);
    u[h] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[h + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[h + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (size_t s = 0; s < 4; ++s) {
    // v: lanes 0, 1 of rows 0-3 and 4-7; w: the same of rows 8-11 and 12-15 (hi: lanes 2, 3)
    const __m512 v_lo = _mm512_shuffle_f32x4(u[s], u[4 + s], 0x44);
    const __m512 v_hi = _mm512_shuffle_f32x4(u[s], u[4 + s], 0xEE);
    const __m512 w_lo = _mm512_shuffle_f32x4(u[8 + s], u[12 + s], 0x44);
    const __m512 w_hi = _mm512_shuffle_f32x4(u[8 + s], u[12 + s], 0xEE);
    _mm512_storeu_ps(dst + s * ldd, _mm512_shuffle_f32x4(v_lo, w_lo, 0x88));
    _mm512_storeu_ps(dst + (4 + s) * ldd, _mm512_shuffle_f32x4(v_lo, w_lo, 0xDD));
    _mm512_storeu_ps(dst + (8 + s) * ldd, _mm512_shuffle_f32x4(v_hi, w_hi, 0x88));
    _mm512_storeu_ps(dst + (12 + s) * ldd, _mm512_shuffle_f32x4(v_hi, w_hi, 0xDD));
  }
}
#endif

// Transposes rows [r, r + Block) of src into dst, Block columns at a time, for c < cols;
// returns the first column left (cols - c < Block).
template <size_t Block>
size_t transpose_strip(const float* src, size_t lds, size_t r, size_t cols, float* dst,
                       size_t ldd) {
  size_t c = 0;
  for (; c + Block <= cols; c += Block) {
    const float* s = src + r * lds + c;
    float* d = dst + c * ldd + r;
    if constexpr (Block == 16) {
#if defined(__AVX512F__)
      transpose16x16(s, lds, d, ldd);
#endif
    } else if constexpr (Block == 8) {
#if defined(__AVX__)
      transpose8x8(s, lds, d, ldd);
#endif
    } else {
      transpose4x4(s, lds, d, ldd);
    }
  }
  return c;
}

#if defined(__AVX512F__)
constexpr size_t kWidestTranspose = 16;
#elif defined(__AVX__)
constexpr size_t kWidestTranspose = 8;
#else
constexpr size_t kWidestTranspose = 4;
#endif

// dst[c * ldd + r] = src[r * lds + c] for r < rows, c < cols: square blocks as wide as the ISA
// has (then narrower ones, then scalar code for what is left).
void transpose_copy(const float* src, size_t lds, size_t rows, size_t cols, float* dst,
                    size_t ldd) {
  size_t r = 0;
  auto finish_rows = [&](size_t r0, size_t r1, size_t c0) {
    for (size_t q = r0; q < r1; ++q)
      for (size_t c = c0; c < cols; ++c) dst[c * ldd + q] = src[q * lds + c];
  };
  if constexpr (kWidestTranspose >= 16)
    for (; r + 16 <= rows; r += 16) finish_rows(r, r + 16, transpose_strip<16>(src, lds, r, cols, dst, ldd));
  if constexpr (kWidestTranspose >= 8)
    for (; r + 8 <= rows; r += 8) finish_rows(r, r + 8, transpose_strip<8>(src, lds, r, cols, dst, ldd));
#if defined(__AVX__)
  if (rows - r > 4) {  // 5 to 7 rows left
    size_t c = 0;
    for (; c + 8 <= cols; c += 8)
      transpose_5to7x8(src + r * lds + c, lds, rows - r, dst + c * ldd + r, ldd);
    finish_rows(r, rows, c);
    return;
  }
#endif
  for (; r + 4 <= rows; r += 4) finish_rows(r, r + 4, transpose_strip<4>(src, lds, r, cols, dst, ldd));
  finish_rows(r, rows, 0);
}

// dst[p * ldd + j] = src[p * lds + j] for p < rows, j < cols; zeros for cols <= j < width.
template <class Arch>
void copy_rows_padded(const float* src, size_t lds, size_t rows, size_t cols, size_t width,
                      float* dst, size_t ldd) {
  using V = xsimd::batch<float, Arch>;
  constexpr size_t W = V::size;
  for (size_t p = 0; p < rows; ++p, src += lds, dst += ldd) {
    size_t j = 0;
    for (; j + W <= cols; j += W) V::load_unaligned(src + j).store_unaligned(dst + j);
    for (; j < cols; ++j) dst[j] = src[j];
    for (; j < width; ++j) dst[j] = 0.0f;
  }
}

// ---- packing ------------------------------------------------------------------------------

// The row panels of an mc-row block: a first panel of min(mc, MR) rows (it may read B in place
// and packs it, for which a tall tile is best), then the remaining rows split into
// ceil(rest / MR) panels of near-equal height (28 rows on a 12-row tile become 12 + 8 + 8, not
// 12 + 12 + 4: short tiles run slower per flop).
struct RowPanels {
  size_t first, count, base, extra;  // after the first: `extra` panels of base + 1 rows, then base
  RowPanels(size_t mc, size_t mr) : first(mc < mr ? mc : mr) {
    const size_t rest = mc - first, tail = ceil_div(rest, mr);
    count = 1 + tail;
    base = tail ? rest / tail : 0;
    extra = tail ? rest % tail : 0;
  }
  size_t start(size_t q) const {
    if (q == 0) return 0;
    const size_t t = q - 1;
    return first + t * base + (t < extra ? t : extra);
  }
  size_t rows(size_t q) const { return q == 0 ? first : base + (q - 1 < extra ? 1 : 0); }
};

// Packs rows [i0, i0 + mc) x depth [p0, p0 + kc) of op(A) into the panels of RowPanels:
// panel q (rows h = rows(q), from row s = start(q)) holds
// dst[s * kc + p * h + r] = op(A)[i0 + s + r, p0 + p].
template <class Arch>
void pack_a(bool trans_a, const float* a, size_t lda, size_t i0, size_t mc, size_t p0, size_t kc,
            float* dst) {
  const RowPanels panels(mc, GemmTraits<Arch>::mr);
  if (trans_a) {  // A is [k, m]: at each depth p the block's rows are one contiguous run
    for (size_t p = 0; p < kc; ++p) {
      const float* src = a + (p0 + p) * lda + i0;
      for (size_t q = 0; q < panels.count; ++q) {
        const size_t s = panels.start(q), h = panels.rows(q);
        float* out = dst + s * kc + p * h;
        for (size_t r = 0; r < h; ++r) out[r] = src[s + r];
      }
    }
    return;
  }
  for (size_t q = 0; q < panels.count; ++q) {
    const size_t s = panels.start(q), h = panels.rows(q);
    transpose_copy(a + (i0 + s) * lda + p0, lda, h, kc, dst + s * kc, h);
  }
}

// Packs depth [p0, p0 + kc) x columns [j0, j0 + nc) of op(B) into panels of NR columns:
// dst[q * NR * kc + p * NR + j] = op(B)[p0 + p, j0 + q * NR + j], zero past column nc.
template <class Arch>
void pack_b(bool trans_b, const float* b, size_t ldb, size_t p0, size_t kc, size_t j0, size_t nc,
            float* dst) {
  constexpr size_t NR = GemmTraits<Arch>::nv * xsimd::batch<float, Arch>::size;
  for (size_t jr = 0; jr < nc; jr += NR, dst += NR * kc) {
    const size_t cols = nc - jr < NR ? nc - jr : NR;
    if (trans_b) {  // B is [n, k]
      transpose_copy(b + (j0 + jr) * ldb + p0, ldb, cols, kc, dst, NR);
      if (cols < NR)
        for (size_t p = 0; p < kc; ++p)
          for (size_t j = cols; j < NR; ++j) dst[p * NR + j] = 0.0f;
    } else {
      copy_rows_padded<Arch>(b + p0 * ldb + j0 + jr, ldb, kc, cols, NR, dst, NR);
    }
  }
}

// ---- packing behind the arithmetic --------------------------------------------------------
//
// Deep products (K in the thousands, or operands beyond the caches) read every block of A and B
// from memory once. Left to the hardware prefetchers, which do not follow the column walks of
// packing, each block's operands kept the core waiting between two blocks of arithmetic; and
// B, packed by the first row panel's microkernels as they read it in place, ran that panel at
// about half speed. So the microkernels of each block do, every kTickSteps k steps (a tick), a
// little of the next block's work: they fetch its A and B into L2 a few lines at a time and,
// where B's rows are contiguous and there are ticks enough, pack the next depth block's B into
// a second buffer a fixed distance behind the fetch, so that every row panel of that block
// reads packed B. Both pay on deep products (K in the thousands) and are neutral elsewhere.

constexpr size_t kTickSteps = 16;  // k steps per tick
constexpr size_t kFetchLinesPerTick = kTickSteps / 2;  // at most one line per two k steps

// Background work is spread over the ticks it has with a quarter of them to spare: `work`
// units fit in `ticks` at `per_tick` each, and the rate that spreads them so.
constexpr bool fits_with_margin(size_t work, size_t ticks, size_t per_tick) {
  return 4 * ticks * per_tick >= 5 * work;
}
constexpr size_t per_tick_with_margin(size_t work, size_t ticks) {
  return ceil_div(5 * work, 4 * ticks);
}

// The cache lines of one region of an operand (`rows` rows of `row_floats` floats, `stride`
// floats apart), issued as L2 prefetches row by row, a few lines per tick.
class LineStream {
 public:
  LineStream() = default;
  LineStream(const float* base, size_t rows, size_t row_floats, size_t stride)
      : base_(base), rows_(rows), lines_per_row_(ceil_div(row_floats, kLineFloats)),
        stride_(stride) {}
  // Issues the next `count` lines (counted on past the end, see rows_ready).
  [[gnu::always_inline]] void next_lines(size_t count) {
    for (size_t i = 0; i < count && row_ < rows_; ++i) {
      __builtin_prefetch(base_ + row_ * stride_ + line_ * kLineFloats, 0, 2);
      if (++line_ == lines_per_row_) {
        line_ = 0;
        ++row_;
      }
    }
    ticked_lines_ += count;
  }
  // Rows whose last line was issued at least `lag_lines` lines' worth of ticks ago.
  size_t rows_ready(size_t lag_lines) const {
    if (ticked_lines_ < lag_lines) return 0;
    const size_t rows = (ticked_lines_ - lag_lines) / lines_per_row_;
    return rows < rows_ ? rows : rows_;
  }
  size_t lines() const { return rows_ * lines_per_row_; }
  bool done() const { return row_ == rows_; }

 private:
  static constexpr size_t kLineFloats = 16;  // a 64-byte line
  const float* base_ = nullptr;
  size_t rows_ = 0, lines_per_row_ = 1, stride_ = 0, row_ = 0, line_ = 0, ticked_lines_ = 0;
};

// Packs the full NR-column micro-panels of a depth block of B (rows contiguous, ldb apart), one
// panel row (NR floats) per step, in the layout of pack_b: dst[q * NR * kc + p * NR + j] =
// B[p, q * NR + j].
template <class Arch>
class BPanelCopy {
 public:
  using V = xsimd::batch<float, Arch>;
  static constexpr size_t NR = GemmTraits<Arch>::nv * V::size;
  BPanelCopy() = default;
  BPanelCopy(const float* b, size_t ldb, size_t kc, size_t panels, float* dst)
      : b_(b), ldb_(ldb), kc_(kc), panels_(panels), dst_(dst) {}
  size_t steps() const { return kc_ * panels_; }
  // Up to `count` steps, of rows below `rows_ready`.
  [[gnu::always_inline]] void next(size_t count, size_t rows_ready) {
    for (; count > 0 && p_ < rows_ready && p_ < kc_; --count) {
      const float* src = b_ + p_ * ldb_ + q_ * NR;
      float* out = dst_ + q_ * NR * kc_ + p_ * NR;
      for (size_t v = 0; v < GemmTraits<Arch>::nv; ++v)
        V::load_unaligned(src + v * V::size).store_aligned(out + v * V::size);
      if (++q_ == panels_) {
        q_ = 0;
        ++p_;
      }
    }
  }

 private:
  const float* b_ = nullptr;
  size_t ldb_ = 0, kc_ = 0, panels_ = 0, p_ = 0, q_ = 0;
  float* dst_ = nullptr;
};

// The next depth block of B: its lines fetched and, when `packs`, its full micro-panels packed
// kLag lines behind the fetch.
template <class Arch>
struct NextDepthB {
  LineStream lines;
  BPanelCopy<Arch> copy;
  bool packs = false;
  size_t lines_per_tick = 0, copies_per_tick = 0;
  static constexpr size_t kLag = 128;  // lines: more than a memory latency's worth of ticks

  [[gnu::always_inline]] void tick() {
    lines.next_lines(lines_per_tick);
    if (packs) copy.next(copies_per_tick, lines.rows_ready(kLag));
  }
  void finish() {  // what the ticks did not reach
    if (packs) copy.next(copy.steps(), ~size_t{0});
  }
};

// What the microkernels of one (depth, row) block do every tick besides their arithmetic.
template <class Arch>
struct BlockBackground {
  LineStream a_lines;                           // the next (depth, row) block's A
  size_t a_lines_per_tick = 0;
  NextDepthB<Arch>* b = nullptr;               // the next depth block's B
  [[gnu::always_inline]] void tick() {
    a_lines.next_lines(a_lines_per_tick);
    // B's lines alone (not packed here) follow A's, at the same rate.
    if (b != nullptr && (b->packs || a_lines.done())) b->tick();
  }
};

// ---- microkernel ---------------------------------------------------------------------------

// Writes C[r, 0:cols] = alpha * acc[r] + beta * C[r, 0:cols] (C is not read when beta == 0).
template <class Arch, size_t Rows, size_t NV>
inline void store_tile(const xsimd::batch<float, Arch> (&acc)[Rows][NV], float* c, size_t ldc,
                       size_t cols, float alpha, float beta) {
  using V = xsimd::batch<float, Arch>;
  constexpr size_t W = V::size;
  const V va(alpha), vb(beta);
  if (cols == NV * W) {
    for (size_t r = 0; r < Rows; ++r) {
      float* row = c + r * ldc;
      for (size_t v = 0; v < NV; ++v) {
        V x = va * acc[r][v];
        if (beta != 0.0f) x = madd(vb, V::load_unaligned(row + v * W), x);
        x.store_unaligned(row + v * W);
      }
    }
    return;
  }
  // Edge tile: the same vector arithmetic through a buffer, so edges round like the interior.
  for (size_t r = 0; r < Rows; ++r) {
    float* row = c + r * ldc;
    alignas(64) float buf[NV * W] = {};
    if (beta != 0.0f)
      for (size_t j = 0; j < cols; ++j) buf[j] = row[j];
    for (size_t v = 0; v < NV; ++v) {
      V x = va * acc[r][v];
      if (beta != 0.0f) x = madd(vb, V::load_aligned(buf + v * W), x);
      x.store_aligned(buf + v * W);
    }
    for (size_t j = 0; j < cols; ++j) row[j] = buf[j];
  }
}

// Scalar math: for p < kc: acc[r][j] += A[r, p] * B[p, j]; then C = alpha * acc + beta * C.
// A[r, p] = ap[p * a_step + r] (a packed panel), B[p, v*W + l] = bp[p * b_step + v*W + l]
// (a packed panel, or B itself when its rows are contiguous). Rows <= MR, cols <= NV * W.
// With CopyB, the B rows read are also written to b_copy[p * NV * W + j]: B is packed by the
// first micro-tile that reads it, for the micro-tiles below it to reuse. InPlace (B read where
// it lies, rows ldb apart, each in its own page when B is wide): the rows of the micro-panel
// two to the right are prefetched, as the hardware prefetchers do not follow such a column
// walk; this doubled AVX2 throughput on 16 x 10000 x 256 with B in DRAM and costs little when
// B is in cache.
template <class Arch, size_t Rows, size_t NV, bool CopyB = false, bool InPlace = CopyB>
void micro_tile(size_t kc, const float* ap, size_t a_step, const float* bp, size_t b_step,
                float* b_copy, float* c, size_t ldc, size_t cols, float alpha, float beta,
                BlockBackground<Arch>* background) {
  using V = xsimd::batch<float, Arch>;
  constexpr size_t W = V::size;
  for (size_t r = 0; r < Rows; ++r) {  // C is needed at the end: start fetching its lines now
    __builtin_prefetch(c + r * ldc, 1);
    __builtin_prefetch(c + r * ldc + NV * W - 1, 1);
  }
  V acc[Rows][NV];
  for (size_t r = 0; r < Rows; ++r)
    for (size_t v = 0; v < NV; ++v) acc[r][v] = V(0.0f);
  for (size_t p = 0; p < kc; ++p) {
    V bv[NV];
    if constexpr (InPlace)  // the same rows of the micro-panel two to the right (see above)
      for (size_t l = 0; l < NV * W; l += 16) __builtin_prefetch(bp + 2 * NV * W + l);
    for (size_t v = 0; v < NV; ++v) bv[v] = V::load_unaligned(bp + v * W);
    if constexpr (CopyB) {
      for (size_t v = 0; v < NV; ++v) bv[v].store_aligned(b_copy + v * W);
      b_copy += NV * W;
    }
    for (size_t r = 0; r < Rows; ++r) {
      const V av(ap[r]);
      for (size_t v = 0; v < NV; ++v) acc[r][v] = madd(av, bv[v], acc[r][v]);
    }
    ap += a_step;
    bp += b_step;
    if (background != nullptr && p % kTickSteps == 0) background->tick();
  }
  store_tile<Arch, Rows, NV>(acc, c, ldc, cols, alpha, beta);
}

template <class Arch>
using TileFn = void (*)(size_t, const float*, size_t, const float*, size_t, float*, float*, size_t,
                        size_t, float, float, BlockBackground<Arch>*);

template <class Arch, size_t NV, bool CopyB, size_t... R>
constexpr auto tile_row(std::index_sequence<R...>) {
  return std::array<TileFn<Arch>, sizeof...(R)>{&micro_tile<Arch, R + 1, NV, CopyB>...};
}
template <class Arch, size_t NV, size_t... R>
constexpr auto tile_row_in_place(std::index_sequence<R...>) {
  return std::array<TileFn<Arch>, sizeof...(R)>{&micro_tile<Arch, R + 1, NV, false, true>...};
}

template <class Arch, size_t... V>
constexpr auto tile_grid(std::index_sequence<V...>) {
  constexpr size_t MR = GemmTraits<Arch>::mr;
  return std::array<std::array<TileFn<Arch>, MR>, sizeof...(V)>{
      tile_row<Arch, V + 1, false>(std::make_index_sequence<MR>{})...};
}

// The microkernel for a tile of `rows` x `cols` (rows <= MR, cols <= NR).
template <class Arch>
TileFn<Arch> tile_kernel(size_t rows, size_t cols) {
  using T = GemmTraits<Arch>;
  static constexpr auto grid = tile_grid<Arch>(std::make_index_sequence<T::nv>{});
  constexpr size_t W = xsimd::batch<float, Arch>::size;
  return grid[ceil_div(cols, W) - 1][rows - 1];
}

// The microkernel for a full-width tile of `rows` that reads B in place.
template <class Arch>
TileFn<Arch> in_place_tile_kernel(size_t rows) {
  using T = GemmTraits<Arch>;
  static constexpr auto row = tile_row_in_place<Arch, T::nv>(std::make_index_sequence<T::mr>{});
  return row[rows - 1];
}

// The microkernel for a full-width tile of `rows` that also packs the B rows it reads.
template <class Arch>
TileFn<Arch> copying_tile_kernel(size_t rows) {
  using T = GemmTraits<Arch>;
  static constexpr auto row = tile_row<Arch, T::nv, true>(std::make_index_sequence<T::mr>{});
  return row[rows - 1];
}

// ---- whole products ------------------------------------------------------------------------

// C = beta * C (beta == 0 writes zeros): the k == 0 product.
void scale_c(size_t m, size_t n, float beta, float* c, size_t ldc) {
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
}

// Splits `total` into equal blocks of at most `max_block`.
constexpr size_t balanced_block(size_t total, size_t max_block) {
  return ceil_div(total, ceil_div(total, max_block));
}

// Row panels up to which every one reads B in place rather than the first packing it for the
// others: reading a micro-panel of B again from L1 or L2 costs less than copying it on the
// way, for a few readers (measured faster up to 8 panels on AVX-512 and AVX2).
constexpr size_t kInPlacePanels = 8;

// The five BLIS loops: column blocks (jc) of B, depth blocks (pc), row blocks (ic) of A, then
// NR-column micro-panels (jr) and MR-row micro-panels (ir). A is packed at the start of each
// block. The microkernels of each block fetch the next block's A and B into L2 behind their
// arithmetic, and pack the next depth block's B too where its rows are contiguous (!tb) and at
// least 16 row panels read it (BlockBackground). B with contiguous rows not packed that way
// (the first depth block of each column block, or few row panels) is read in place by the
// first row panel, which packs it on the way (micro_tile<..., CopyB>) for the row panels below
// (up to kInPlacePanels row panels all read it in place instead); transposed B is packed at
// the start of each depth block.
template <class Arch>
void gemm_blocked(bool ta, bool tb, size_t m, size_t n, size_t k, float alpha, const float* a,
                  size_t lda, const float* b, size_t ldb, float beta, float* c, size_t ldc) {
  using T = GemmTraits<Arch>;
  constexpr size_t MR = T::mr, NR = T::nv * xsimd::batch<float, Arch>::size;
  constexpr size_t KC = T::kc, MC = T::mc, NC = T::nc;
  // Whole micro-panels per block: the packed buffers are sized mc x kc and nc x kc, and a
  // partial panel inside a block would be packed (zero-padded) past their end.
  static_assert(NC % NR == 0 && MC % MR == 0, "GEMM blocks must hold whole register tiles");
  const size_t kc_max = balanced_block(k, KC);
  const size_t mc_max = m < MC ? ceil_div(m, MR) * MR : MC;
  const size_t nc_max = n < NC ? ceil_div(n, NR) * NR : NC;
  const bool in_place = !tb;
  float* a_pack = thread_scratch(ScratchSlot::gemm_a, mc_max * kc_max);
  float* b_pack = thread_scratch(ScratchSlot::gemm_b, nc_max * kc_max);
  // Packing B behind pays where many row panels read it (with few, packing it in the first
  // one costs less).
  const bool pack_b_behind = in_place && m >= 16 * MR && k > kc_max;
  float* b_next =
      pack_b_behind ? thread_scratch(ScratchSlot::gemm_b_next, nc_max * kc_max) : nullptr;
  const auto depth = [&](size_t pc) { return k - pc < kc_max ? k - pc : kc_max; };
  const auto rows_of = [&](size_t ic) { return m - ic < MC ? m - ic : MC; };
  // Ticks (see BlockBackground) in row block ic.
  const auto block_ticks = [&](size_t ic, size_t nc, size_t kc) {
    return RowPanels(rows_of(ic), MR).count * ceil_div(nc, NR) * (kc / kTickSteps);
  };

  for (size_t jc = 0; jc < n; jc += NC) {
    const size_t nc = n - jc < NC ? n - jc : NC;
    const size_t nc_full = in_place ? nc / NR * NR : 0;  // micro-panels B can be read in place
    bool b_packed = false;  // this depth block's full micro-panels are in b_pack already
    for (size_t pc = 0; pc < k; pc += kc_max) {
      const size_t kc = depth(pc);
      const float beta_block = pc == 0 ? beta : 1.0f;  // later depth blocks accumulate
      if (nc_full < nc)
        pack_b<Arch>(tb, b, ldb, pc, kc, jc + nc_full, nc - nc_full, b_pack + nc_full * kc);
      // The next depth block's B, fetched and packed during the last row blocks of this one
      // whose ticks can fetch it at no more than one line per two k steps (as A's), with a
      // quarter of them to spare. Where all of them cannot (few rows: B is read by few row
      // panels), it is fetched at that rate as far as it goes, and its first row panel packs it.
      const size_t npc = pc + kc_max;
      NextDepthB<Arch> next_b;
      size_t b_from_ic = m;
      if (npc < k) {
        const size_t nkc = depth(npc);
        next_b.lines = tb ? LineStream(b + jc * ldb + npc, nc, nkc, ldb)
                          : LineStream(b + npc * ldb + jc, nkc, nc, ldb);
        const size_t need = next_b.lines.lines() + next_b.kLag;
        size_t ticks = 0;
        for (size_t ic = (m - 1) / MC * MC;; ic -= MC) {
          ticks += block_ticks(ic, nc, kc);
          b_from_ic = ic;
          if (fits_with_margin(need, ticks, kFetchLinesPerTick) || ic == 0) break;
        }
        next_b.packs = pack_b_behind && fits_with_margin(need, ticks, kFetchLinesPerTick);
        next_b.lines_per_tick = kFetchLinesPerTick;
        if (next_b.packs) {
          next_b.copy = BPanelCopy<Arch>(b + npc * ldb + jc, ldb, nkc, nc_full / NR, b_next);
          next_b.lines_per_tick = per_tick_with_margin(need, ticks);
          next_b.copies_per_tick = per_tick_with_margin(next_b.copy.steps(), ticks);
        }
      }
      for (size_t ic = 0; ic < m; ic += MC) {
        const size_t mc = rows_of(ic);
        const RowPanels panels(mc, MR);
        pack_a<Arch>(ta, a, lda, ic, mc, pc, kc, a_pack);
        BlockBackground<Arch> background;
        // The next block of A (the next row block, or the first of the next depth block),
        // fetched into L2 at one line per two k steps; where B is packed behind (many rows), at
        // the rate that reaches its end with a quarter of the block's ticks to spare. There L2
        // holds two packed B blocks, the next B's lines, this A block and C's rows besides, and
        // A fetched early is evicted before use; spread out, it pays on many rows (shapes of
        // few rows take the plain rate).
        const bool last_ic = ic + MC >= m;
        const size_t apc = last_ic ? npc : pc, aic = last_ic ? 0 : ic + MC;
        if (apc < k) {
          const size_t akc = depth(apc), amc = rows_of(aic);
          background.a_lines = ta ? LineStream(a + apc * lda + aic, akc, amc, lda)
                                  : LineStream(a + aic * lda + apc, amc, akc, lda);
          const size_t ticks = block_ticks(ic, nc, kc);  // 0 when kc < kTickSteps
          background.a_lines_per_tick = kFetchLinesPerTick;
          if (pack_b_behind && ticks > 0)
            background.a_lines_per_tick = std::min(
                kFetchLinesPerTick, per_tick_with_margin(background.a_lines.lines(), ticks));
        }
        if (ic >= b_from_ic) background.b = &next_b;
        for (size_t jr = 0; jr < nc; jr += NR) {
          const size_t cols = nc - jr < NR ? nc - jr : NR;
          float* b_panel = b_pack + jr * kc;
          size_t q = 0;
          if (ic == 0 && jr < nc_full && !b_packed) {  // the first panel reads B in place
            const float* b_src = b + pc * ldb + jc + jr;
            const size_t h = panels.rows(0);
            if (panels.count <= kInPlacePanels) {  // B read in place by every row panel
              for (; q < panels.count; ++q) {
                const size_t s0 = panels.start(q), hq = panels.rows(q);
                in_place_tile_kernel<Arch>(hq)(kc, a_pack + s0 * kc, hq, b_src, ldb, nullptr,
                                               c + (ic + s0) * ldc + jc + jr, ldc, NR, alpha,
                                               beta_block, &background);
              }
              continue;
            }
            copying_tile_kernel<Arch>(h)(kc, a_pack, h, b_src, ldb, b_panel, c + jc + jr, ldc,
                                         NR, alpha, beta_block, &background);
            q = 1;
          }
          for (; q < panels.count; ++q) {
            const size_t s0 = panels.start(q), h = panels.rows(q);
            float* ct = c + (ic + s0) * ldc + jc + jr;
            tile_kernel<Arch>(h, cols)(kc, a_pack + s0 * kc, h, b_panel, NR, nullptr, ct, ldc,
                                       cols, alpha, beta_block, &background);
          }
        }
      }
      b_packed = next_b.packs;
      if (b_packed) {
        next_b.finish();
        std::swap(b_pack, b_next);
      }
    }
  }
}

// out[q] = the sum of the lanes of v[q], for q < W (W vectors of W lanes): a transposing add.
// xsimd 8.1's haddp does this, except on AVX-512, where it returns lanes 2-5 and 10-13 out of
// order; there, the same tree with intrinsics.
template <class Arch>
void lane_sums(const xsimd::batch<float, Arch>* v, float* out) {
#if defined(CRT_KERNEL_ISA_AVX512)
  if constexpr (std::is_same_v<Arch, xsimd::avx512bw>) {
    __m512 quads[4];  // quads[g], 128-bit lane l: lane-l partial sums of v[4g .. 4g+3]
    for (size_t g = 0; g < 4; ++g) {
      __m512 pair[2];
      for (size_t h = 0; h < 2; ++h) {
        const __m512 a = v[4 * g + 2 * h], b = v[4 * g + 2 * h + 1];
        pair[h] = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
      }
      const __m512d p0 = _mm512_castps_pd(pair[0]), p1 = _mm512_castps_pd(pair[1]);
      quads[g] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(p0, p1)),
                               _mm512_castpd_ps(_mm512_unpackhi_pd(p0, p1)));
    }
    const auto fold = [](__m512 x, __m512 y) {  // [x.L0+x.L1, x.L2+x.L3, y.L0+y.L1, y.L2+y.L3]
      return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xDD));
    };
    _mm512_storeu_ps(out, fold(fold(quads[0], quads[1]), fold(quads[2], quads[3])));
    return;
  }
#endif
  xsimd::haddp(v).store_unaligned(out);
}

// Scalar math: C[i, j] = alpha * dot(A[i, :], B[j, :]) + beta * C[i, j] for i < RA, j < RB,
// with A stored [m, k] and B stored [n, k] (both rows contiguous); lanes are summed at the end.
template <class Arch, size_t RA, size_t RB>
void dot_tile(size_t k, float alpha, const float* a, size_t lda, const float* b, size_t ldb,
              float beta, float* c, size_t ldc) {
  using V = xsimd::batch<float, Arch>;
  constexpr size_t W = V::size;
  V acc[RA][RB];
  for (size_t i = 0; i < RA; ++i)
    for (size_t j = 0; j < RB; ++j) acc[i][j] = V(0.0f);
  size_t p = 0;
  for (; p + W <= k; p += W) {
    V av[RA];
    for (size_t i = 0; i < RA; ++i) av[i] = V::load_unaligned(a + i * lda + p);
    for (size_t j = 0; j < RB; ++j) {
      const V bv = V::load_unaligned(b + j * ldb + p);
      for (size_t i = 0; i < RA; ++i) acc[i][j] = madd(av[i], bv, acc[i][j]);
    }
  }
  // Lane sums: W accumulators at a time through one transposing add where they fill vectors.
  alignas(64) float dots[RA * RB];
  if constexpr ((RA * RB) % W == 0) {
    const V* flat = &acc[0][0];
    for (size_t g = 0; g < RA * RB; g += W) lane_sums<Arch>(flat + g, dots + g);
  } else {
    for (size_t i = 0; i < RA; ++i)
      for (size_t j = 0; j < RB; ++j) dots[i * RB + j] = xsimd::hadd(acc[i][j]);
  }
  for (size_t i = 0; i < RA; ++i)
    for (size_t j = 0; j < RB; ++j) {
      float dot = dots[i * RB + j];
      for (size_t r = p; r < k; ++r) dot += a[i * lda + r] * b[j * ldb + r];
      float& out = c[i * ldc + j];
      out = beta == 0.0f ? alpha * dot : alpha * dot + beta * out;
    }
}

// One row of A against W rows of B (a GEMV tile; B stored [n, k]): C[0, j] = alpha *
// dot(a, B[j, :]) + beta * C[0, j] for j < W. The k-loop takes Unroll vectors of a at a time
// and walks down the W rows with one pointer, so no register holds more than one row address
// (W row pointers, one per accumulator, spilled on AVX-512), and one lane_sums adds all W.
template <class Arch>
void dot_tile_row(size_t k, float alpha, const float* a, const float* b, size_t ldb, float beta,
                  float* c) {
  using V = xsimd::batch<float, Arch>;
  constexpr size_t W = V::size;
  V acc[W];
  // Four rows at a time, each read front to back (four neighbouring sequential streams, which
  // the hardware prefetcher follows; the W rows are one contiguous stretch when ldb == k), two
  // accumulators per row so that eight independent FMA chains hide the FMA latency.
  const size_t kw = k / W * W;
  for (size_t j = 0; j < W; j += 4) {
    const float* row = b + j * ldb;
    V even[4], odd[4];
    for (size_t r = 0; r < 4; ++r) even[r] = odd[r] = V(0.0f);
    size_t p = 0;
    for (; p + 2 * W <= kw; p += 2 * W) {
      const V a0 = V::load_unaligned(a + p), a1 = V::load_unaligned(a + p + W);
      for (size_t r = 0; r < 4; ++r) {
        __builtin_prefetch(row + (r + W) * ldb + p, 0, 3);
        __builtin_prefetch(row + (r + W) * ldb + p + W, 0, 3);
        even[r] = madd(a0, V::load_unaligned(row + r * ldb + p), even[r]);
        odd[r] = madd(a1, V::load_unaligned(row + r * ldb + p + W), odd[r]);
      }
    }
    if (p < kw) {
      const V a0 = V::load_unaligned(a + p);
      for (size_t r = 0; r < 4; ++r) even[r] = madd(a0, V::load_unaligned(row + r * ldb + p), even[r]);
    }
    if (kw < k) {  // the last k - kw < W columns: masked loads, no scalar loop
      const V at = simd::load_first<Arch>(a + kw, k - kw);
      for (size_t r = 0; r < 4; ++r)
        odd[r] = madd(at, simd::load_first<Arch>(row + r * ldb + kw, k - kw), odd[r]);
    }
    for (size_t r = 0; r < 4; ++r) acc[j + r] = even[r] + odd[r];
  }
  alignas(64) float dots[W];
  lane_sums<Arch>(acc, dots);
  for (size_t j = 0; j < W; ++j)
    c[j] = beta == 0.0f ? alpha * dots[j] : alpha * dots[j] + beta * c[j];
}

// A few rows of C against B^T (A stored [m, k], B stored [n, k]): dot products along the
// contiguous rows of both, RA rows of A by RB rows of B at a time, with no packing.
template <class Arch, size_t RA>
void dot_rows(size_t n, size_t k, float alpha, const float* a, size_t lda, const float* b,
              size_t ldb, float beta, float* c, size_t ldc) {
  // RA x RB accumulators, W of them where possible so that one lane_sums adds them all; at
  // most 8 rows of B at a time (more parallel streams of B ran slower).
  constexpr size_t W = xsimd::batch<float, Arch>::size;
  constexpr size_t RB = RA == 3 || W / RA < 4 ? 4 : (W / RA < 8 ? W / RA : 8);
  size_t j = 0;
  if constexpr (RA == 1) {
    for (; j + W <= n; j += W) dot_tile_row<Arch>(k, alpha, a, b + j * ldb, ldb, beta, c + j);
    // The last rows go through the same tile, zero-padded: every output is then computed the
    // same way wherever its row falls, so splitting B's rows over calls (gru_cell's unit
    // blocks) cannot change a bit.
    if (j < n) {
      const size_t rows = n - j;
      float* tile = thread_scratch(ScratchSlot::gemm_b, W * k);
      alignas(64) float out[W] = {};
      for (size_t r = 0; r < W; ++r)
        for (size_t p = 0; p < k; ++p) tile[r * k + p] = r < rows ? b[(j + r) * ldb + p] : 0.0f;
      for (size_t r = 0; r < rows; ++r) out[r] = c[j + r];
      dot_tile_row<Arch>(k, alpha, a, tile, k, beta, out);
      for (size_t r = 0; r < rows; ++r) c[j + r] = out[r];
    }
    return;
  }
  for (; j + RB <= n; j += RB)
    dot_tile<Arch, RA, RB>(k, alpha, a, lda, b + j * ldb, ldb, beta, c + j, ldc);
  for (; j < n; ++j) dot_tile<Arch, RA, 1>(k, alpha, a, lda, b + j * ldb, ldb, beta, c + j, ldc);
}

// C = alpha * A B^T + beta * C for m <= kDotRows rows, A rows contiguous.
constexpr size_t kDotRows = 4;
template <class Arch>
void gemm_dots(size_t m, size_t n, size_t k, float alpha, const float* a, size_t lda,
               const float* b, size_t ldb, float beta, float* c, size_t ldc) {
  constexpr size_t RA = GemmTraits<Arch>::dot_rows;
  static_assert(RA == 2 || RA == 4);
  for (size_t i = 0; i < m; i += RA) {
    const float* ai = a + i * lda;
    float* ci = c + i * ldc;
    switch (m - i < RA ? m - i : RA) {
      case 1: dot_rows<Arch, 1>(n, k, alpha, ai, lda, b, ldb, beta, ci, ldc); break;
      case 2: dot_rows<Arch, 2>(n, k, alpha, ai, lda, b, ldb, beta, ci, ldc); break;
      case 3:  // only reached when RA == 4 (the 1 keeps RA == 2 from instantiating 3 rows)
        dot_rows<Arch, (RA > 2 ? 3 : 1)>(n, k, alpha, ai, lda, b, ldb, beta, ci, ldc);
        break;
      default: dot_rows<Arch, RA>(n, k, alpha, ai, lda, b, ldb, beta, ci, ldc); break;
    }
  }
}

// One row of C against B stored [k, n] (rows contiguous): a 1 x 8W tile streams B row by row
// with eight independent accumulators; columns past the last whole tile go through the
// blocked path. A[0, p] = a[p * a_step].
template <class Arch>
void gemv_cols(size_t n, size_t k, float alpha, const float* a, size_t a_step, const float* b,
               size_t ldb, float beta, float* c) {
  constexpr size_t NV = 8, span = NV * xsimd::batch<float, Arch>::size;
  size_t j = 0;
  for (; j + span <= n; j += span)
    micro_tile<Arch, 1, NV>(k, a, a_step, b + j, ldb, nullptr, c + j, 0, span, alpha, beta,
                            nullptr);
  if (j < n) {
    const bool ta = a_step != 1;  // a_step is the row stride of A stored [k, 1]
    gemm_blocked<Arch>(ta, false, 1, n - j, k, alpha, a, ta ? a_step : k, b + j, ldb, beta,
                       c + j, n - j);
  }
}

}  // namespace

template <class Arch>
void Gemm::operator()(Arch, bool ta, bool tb, size_t m, size_t n, size_t k, float alpha,
                      const float* a, size_t lda, const float* b, size_t ldb, float beta, float* c,
                      size_t ldc) const {
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_c(m, n, beta, c, ldc);
  if (tb && m <= kDotRows) {  // a few rows times B^T: dot products, B is not packed
    const float* rows = a;
    size_t ld = lda;
    if (ta) {  // A is [k, m]: gather its columns into rows
      float* tmp = thread_scratch(ScratchSlot::gemm_a, m * k);
      for (size_t p = 0; p < k; ++p)
        for (size_t i = 0; i < m; ++i) tmp[i * k + p] = a[p * lda + i];
      rows = tmp;
      ld = k;
    }
    return gemm_dots<Arch>(m, n, k, alpha, rows, ld, b, ldb, beta, c, ldc);
  }
  if (m == 1) return gemv_cols<Arch>(n, k, alpha, a, ta ? lda : 1, b, ldb, beta, c);
  gemm_blocked<Arch>(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <class Arch>
GemmTile GemmTileOf::operator()(Arch) const {
  using T = GemmTraits<Arch>;
  return {T::mr, T::nv * xsimd::batch<float, Arch>::size, T::kc};
}

template void Gemm::operator()<arch_t>(arch_t, bool, bool, size_t, size_t, size_t, float,
                                       const float*, size_t, const float*, size_t, float, float*,
                                       size_t) const;
template GemmTile GemmTileOf::operator()<arch_t>(arch_t) const;

}  // namespace crt::kernels
