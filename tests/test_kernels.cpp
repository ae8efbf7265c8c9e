// Kernel tests: every SIMD variant this CPU can run (not only the dispatched one) against the
// scalar reference computed in double, at sizes around the lane width and the register tiles;
// and the run-time ISA choice with its CRT_MAX_ISA cap.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/dispatch.hpp"
#include "kernels/kernels.hpp"
#include "kernels/reference.hpp"

namespace {

using crt::kernels::KernelTable;
using std::size_t;

std::vector<const KernelTable*> runnable_isas() {
  std::vector<const KernelTable*> out;
  for (const KernelTable& t : crt::kernels::isa_tables())
    if (t.runnable) out.push_back(&t);
  return out;
}

// Sizes around v: v - 1, v, v + 1 (those >= 1).
void add_around(std::set<size_t>& s, size_t v) {
  if (v > 1) s.insert(v - 1);
  s.insert(v);
  s.insert(v + 1);
}

struct GemmCase {
  bool ta, tb;
  size_t m, n, k;
  float alpha, beta;
  size_t pad;  // extra elements per row of A, B and C beyond the extent
};

std::string describe(const KernelTable& t, const GemmCase& g) {
  return std::string(t.name) + " ta=" + std::to_string(g.ta) + " tb=" + std::to_string(g.tb) +
         " m=" + std::to_string(g.m) + " n=" + std::to_string(g.n) + " k=" + std::to_string(g.k) +
         " alpha=" + std::to_string(g.alpha) + " beta=" + std::to_string(g.beta) +
         " pad=" + std::to_string(g.pad);
}

// Runs one product on `t` and compares with ref::gemm<double> on the same (upcast) inputs.
// Tolerance: relative to sum_p |alpha a b| + |beta c| per element, scaled by the depth (FMA
// contraction and summation order differ between ISAs). Also checks that C's padding is
// untouched and that beta == 0 ignores the NaNs C starts with. Returns false on a mismatch.
bool check_gemm(const KernelTable& t, const GemmCase& g, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const size_t a_rows = g.ta ? g.k : g.m, a_cols = g.ta ? g.m : g.k;
  const size_t b_rows = g.tb ? g.n : g.k, b_cols = g.tb ? g.k : g.n;
  const size_t lda = a_cols + g.pad, ldb = b_cols + g.pad, ldc = g.n + g.pad;
  std::vector<float> a(a_rows * lda), b(b_rows * ldb);
  for (float& x : a) x = dist(rng);
  for (float& x : b) x = dist(rng);
  const float sentinel = 12345.0f;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> c(g.m * ldc, sentinel);
  for (size_t i = 0; i < g.m; ++i)
    for (size_t j = 0; j < g.n; ++j) c[i * ldc + j] = g.beta == 0.0f ? nan : dist(rng);

  // Reference and magnitude in double. beta == 0 must not read C: give the reference zeros.
  std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end());
  std::vector<double> absa(a.size()), absb(b.size());
  for (size_t i = 0; i < a.size(); ++i) absa[i] = std::fabs(ad[i]);
  for (size_t i = 0; i < b.size(); ++i) absb[i] = std::fabs(bd[i]);
  std::vector<double> want(g.m * g.n), scale(g.m * g.n);
  for (size_t i = 0; i < g.m; ++i)
    for (size_t j = 0; j < g.n; ++j) {
      const double c0 = g.beta == 0.0f ? 0.0 : double(c[i * ldc + j]);
      want[i * g.n + j] = c0;
      scale[i * g.n + j] = std::fabs(double(g.beta) * c0);
    }
  crt::kernels::ref::gemm<double>(g.ta, g.tb, g.m, g.n, g.k, g.alpha, ad.data(), lda, bd.data(),
                                  ldb, g.beta, want.data(), g.n);
  std::vector<double> mag(g.m * g.n);
  crt::kernels::ref::gemm<double>(g.ta, g.tb, g.m, g.n, g.k, std::fabs(double(g.alpha)),
                                  absa.data(), lda, absb.data(), ldb, 0.0, mag.data(), g.n);

  t.gemm(g.ta, g.tb, g.m, g.n, g.k, g.alpha, a.data(), lda, b.data(), ldb, g.beta, c.data(), ldc);

  const double eps = std::numeric_limits<float>::epsilon();
  for (size_t i = 0; i < g.m; ++i) {
    for (size_t j = 0; j < ldc; ++j) {
      const float got = c[i * ldc + j];
      if (j >= g.n) {
        if (got != sentinel) {
          FAIL_CHECK(describe(t, g), ": padding of C overwritten at row ", i, " col ", j);
          return false;
        }
        continue;
      }
      const double w = want[i * g.n + j];
      const double tol = 4.0 * eps * (double(g.k) + 2.0) * (mag[i * g.n + j] + scale[i * g.n + j]) +
                         1e-30;
      if (!(std::fabs(double(got) - w) <= tol)) {
        FAIL_CHECK(describe(t, g), ": C[", i, ",", j, "] = ", got, ", want ", w, " (tol ", tol,
                   ")");
        return false;
      }
    }
  }
  return true;
}

const bool kTrans[2] = {false, true};

}  // namespace

TEST_CASE("kernels: ISA tables") {
  const auto tables = crt::kernels::isa_tables();
  REQUIRE(!tables.empty());
  CHECK(tables.back().runnable);  // the baseline always runs
  for (size_t i = 0; i < tables.size(); ++i) {
    const KernelTable& t = tables[i];
    CAPTURE(t.name);
    CHECK((t.gemm != nullptr));
    CHECK((t.gemv_packed != nullptr));
    CHECK((t.gemm_f64_accumulate != nullptr));
    CHECK(t.lanes >= 4);
    if (i > 0) CHECK(tables[i - 1].version > t.version);  // most capable first
    CHECK(crt::kernels::find_isa(t.cap_name) == &t);
    CHECK(crt::kernels::find_isa(t.name) == &t);
    if (t.runnable) {
      CHECK(t.gemm_mr >= 1);
      CHECK(t.gemm_nr % t.lanes == 0);
      CHECK(t.gemm_kc >= 16);
    }
  }
  CHECK(crt::kernels::find_isa("not-an-isa") == nullptr);
}

TEST_CASE("kernels: select_isa caps the choice") {
  const auto tables = crt::kernels::isa_tables();
  const KernelTable& best = crt::kernels::select_isa("");
  CHECK(best.runnable);
  for (const KernelTable& t : tables)
    if (t.runnable) CHECK(t.version <= best.version);
  for (const KernelTable& t : tables) {
    CAPTURE(t.cap_name);
    const KernelTable& got = crt::kernels::select_isa(t.cap_name);
    CHECK(got.runnable);
    CHECK(got.version <= t.version);
    if (t.runnable) CHECK(&got == &t);
  }
  CHECK_THROWS_AS(crt::kernels::select_isa("avx9000"), std::runtime_error);
  try {
    crt::kernels::select_isa("avx9000");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("avx9000") != std::string::npos);
  }
}

// Run by the next test in a child process with CRT_MAX_ISA set; also passes without it.
TEST_CASE("kernels: the active ISA honours CRT_MAX_ISA") {
  const KernelTable& active = crt::kernels::active_kernels();
  CHECK(std::string(crt::kernels::active_isa()) == active.name);
  const char* cap = std::getenv("CRT_MAX_ISA");
  if (cap != nullptr && crt::kernels::find_isa(cap) != nullptr)
    CHECK(&active == &crt::kernels::select_isa(cap));
  else
    CHECK(&active == &crt::kernels::select_isa(""));  // no cap, or an unknown one: ignored
}

TEST_CASE("kernels: CRT_MAX_ISA in a child process") {
  // The test binary re-runs itself; skipped where it cannot (e.g. an emulator without binfmt).
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  if (ec || std::system(("'" + self + "' --version >/dev/null 2>&1").c_str()) != 0) {
    MESSAGE("cannot re-run the test binary; skipped");
    return;
  }
  std::vector<std::string> caps;
  for (const KernelTable& t : crt::kernels::isa_tables()) caps.push_back(t.cap_name);
  caps.push_back("avx9000");  // unknown: reported on stderr and ignored
  for (const std::string& cap : caps) {
    CAPTURE(cap);
    const std::string cmd = "CRT_MAX_ISA=" + cap + " '" + self + "'" +
                            " -tc='kernels: the active ISA honours CRT_MAX_ISA' >/dev/null 2>&1";
    CHECK(std::system(cmd.c_str()) == 0);
  }
}

TEST_CASE("kernels: gemm shapes around lanes and tiles, all transpositions") {
  std::mt19937 rng(7);
  for (const KernelTable* t : runnable_isas()) {
    const size_t W = t->lanes, MR = t->gemm_mr, NR = t->gemm_nr;
    std::set<size_t> ms{1, 2, 3, 4, 5, 3 * MR + 2}, ns{1, 2 * NR + W + 3}, ks{1, 2, 37};
    add_around(ms, MR);
    add_around(ms, 2 * MR);  // two row panels: the first packs B for the second
    add_around(ns, W);
    add_around(ns, NR);
    add_around(ns, 2 * W);  // the unpacked A B^T path for a few rows covers up to W rows of B
    add_around(ks, W);
    size_t failures = 0, i = 0;
    for (bool ta : kTrans)
      for (bool tb : kTrans)
        for (size_t m : ms)
          for (size_t n : ns)
            for (size_t k : ks) {
              // Alternate alpha/beta and padding so that every shape meets some of each.
              const float alphas[3] = {1.0f, -0.75f, 1.0f}, betas[3] = {0.0f, 1.0f, 0.5f};
              const GemmCase g{ta, tb, m, n, k, alphas[i % 3], betas[(i / 3) % 3], (i % 2) * 3};
              ++i;
              const bool ok = check_gemm(*t, g, rng);
              CHECK(ok);
              if (!ok && ++failures > 5) return;
            }
  }
}

TEST_CASE("kernels: gemm depth blocks and large K") {
  std::mt19937 rng(11);
  for (const KernelTable* t : runnable_isas()) {
    const size_t KC = t->gemm_kc, MR = t->gemm_mr, NR = t->gemm_nr;
    const size_t ks[] = {KC - 1, KC, KC + 1, 2 * KC + 5, 1000};
    const size_t ms[] = {1, MR + 1, 5 * MR + 3};
    const size_t ns[] = {NR + 1, 3 * NR - 1};
    size_t i = 0;
    for (bool ta : kTrans)
      for (bool tb : kTrans)
        for (size_t k : ks)
          for (size_t m : ms)
            for (size_t n : ns) {
              const float alphas[3] = {1.0f, 1.0f, 0.7f}, betas[3] = {0.0f, 1.0f, -1.3f};
              const GemmCase g{ta, tb, m, n, k, alphas[i % 3], betas[i % 3], 1 + i % 2};
              ++i;
              const bool ok = check_gemm(*t, g, rng);
              CHECK(ok);
              if (!ok) return;
            }
  }
}

TEST_CASE("kernels: gemm across several column blocks (N beyond the NC block)") {
  // Every ISA's column block is at most 4096 wide; an N past it with a partial last panel
  // exercises the block loop and the packing of B into its buffer (sized one block).
  std::mt19937 rng(29);
  for (const KernelTable* t : runnable_isas()) {
    const size_t MR = t->gemm_mr, NR = t->gemm_nr, n = 4096 + NR + 5;
    for (bool ta : kTrans)
      for (bool tb : kTrans)
        for (size_t m : {size_t(5), 2 * MR + 1}) {  // one row panel (B in place) and three
          const GemmCase g{ta, tb, m, n, 40, 1.0f, 0.5f, 0};
          CHECK(check_gemm(*t, g, rng));
        }
  }
}

TEST_CASE("kernels: gemm row-vector products (M = 1) across wide N") {
  std::mt19937 rng(19);
  for (const KernelTable* t : runnable_isas()) {
    const size_t W = t->lanes, NR = t->gemm_nr;
    std::set<size_t> ns{16 * W + NR + 5};
    add_around(ns, 8 * W);  // the row-vector path streams B in 8-vector column strips
    add_around(ns, W);      // with B^T: tiles of W rows of B, then single rows
    add_around(ns, 2 * W);
    // Depths: below a vector, around one, an odd number of vectors (the two-vector k-loop
    // leaves one), and past one depth block.
    const size_t ks[] = {1, 7, W - 1, W, W + 3, 2 * W, 3 * W, 3 * W + 1, t->gemm_kc + 5};
    size_t i = 0;
    for (bool ta : kTrans)
      for (bool tb : kTrans)
        for (size_t n : ns)
          for (size_t k : ks) {
            const float alphas[3] = {1.0f, 0.5f, -1.0f}, betas[3] = {0.0f, 1.0f, 0.25f};
            CHECK(check_gemm(*t, {ta, tb, 1, n, k, alphas[i % 3], betas[(i / 3) % 3], i % 2}, rng));
            ++i;
          }
  }
}

TEST_CASE("kernels: A B^T at one row gives each output the same bits whatever rows surround it") {
  // gru_cell and gru_sequence split a GEMV's rows over threads by hidden units and rely on it.
  std::mt19937 rng(23);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (const KernelTable* t : runnable_isas()) {
    const size_t W = t->lanes;
    for (size_t k : {size_t(7), 3 * W + 1, size_t(256)}) {
      const size_t n = 7 * W + 5;
      std::vector<float> a(k), b(n * k), whole(n), parts(n);
      for (float& v : a) v = dist(rng);
      for (float& v : b) v = dist(rng);
      t->gemm(false, true, 1, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, whole.data(), n);
      for (size_t lo : {size_t(0), W + 3, 4 * W + 1}) {  // [0, W+3), [W+3, 4W+1), [4W+1, n)
        const size_t hi = lo == 0 ? W + 3 : (lo == W + 3 ? 4 * W + 1 : n);
        t->gemm(false, true, 1, hi - lo, k, 1.0f, a.data(), k, b.data() + lo * k, k, 0.0f,
                parts.data() + lo, hi - lo);
      }
      CAPTURE(t->name);
      CAPTURE(k);
      CHECK(whole == parts);
    }
  }
}

TEST_CASE("kernels: gemv_packed against the double reference, sizes around the panel width") {
  // W [n, k] packed in panels of the ISA's lane count; c = W a + beta c. Rows past n are the
  // packing's zero padding and must not be written (c has a sentinel beyond n).
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const double eps = std::numeric_limits<float>::epsilon();
  for (const KernelTable* t : runnable_isas()) {
    const size_t W = t->lanes;
    std::set<size_t> ns{1, 3 * W + 5}, ks{1, 3, 4, 5, 4 * W + 3, 256};
    add_around(ns, W);
    for (size_t n : ns)
      for (size_t k : ks)
        for (float beta : {0.0f, 1.0f, 0.5f}) {
          CAPTURE(t->name);
          CAPTURE(n);
          CAPTURE(k);
          CAPTURE(beta);
          const size_t ldw = k + 2;  // rows of W not contiguous
          std::vector<float> w(n * ldw), a(k), c(n + W, 777.0f);
          for (float& x : w) x = dist(rng);
          for (float& x : a) x = dist(rng);
          for (size_t j = 0; j < n; ++j) c[j] = beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : dist(rng);
          std::vector<float> packed(crt::kernels::gemv_packed_size(n, k, W));
          crt::kernels::ref::gemv_pack<float>(w.data(), ldw, n, k, W, packed.data());
          std::vector<double> want(n), mag(n);
          for (size_t j = 0; j < n; ++j) {
            double dot = 0.0, m = 0.0;
            for (size_t p = 0; p < k; ++p) {
              dot += double(a[p]) * double(w[j * ldw + p]);
              m += std::fabs(double(a[p]) * double(w[j * ldw + p]));
            }
            want[j] = dot + (beta == 0.0f ? 0.0 : double(beta) * double(c[j]));
            mag[j] = m + std::fabs(beta == 0.0f ? 0.0 : double(beta) * double(c[j]));
          }
          t->gemv_packed(a.data(), packed.data(), n, k, beta, c.data());
          bool ok = true;
          for (size_t j = 0; j < n; ++j)
            ok = ok && std::fabs(double(c[j]) - want[j]) <= 4.0 * eps * (double(k) + 2.0) * mag[j] + 1e-30;
          for (size_t j = n; j < n + W; ++j) ok = ok && c[j] == 777.0f;
          CHECK(ok);
        }
  }
}

TEST_CASE("kernels: gemm_f64_accumulate against the double reference, sizes around the width") {
  std::mt19937 rng(37);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (const KernelTable* t : runnable_isas()) {
    const size_t W = t->lanes / 2;  // doubles per vector
    std::set<size_t> ns{1, 5 * W + 3};
    add_around(ns, W);
    add_around(ns, 2 * W);
    for (size_t m : {1, 3, 4, 5, 9})
      for (size_t n : ns)
        for (size_t k : {1, 7, 33}) {
          CAPTURE(t->name);
          CAPTURE(m);
          CAPTURE(n);
          CAPTURE(k);
          std::vector<double> a(m * k), b(k * n), c(m * n);
          for (double& x : a) x = dist(rng);
          for (double& x : b) x = dist(rng);
          for (double& x : c) x = dist(rng);
          std::vector<double> want = c;
          crt::kernels::ref::gemm<double>(false, false, m, n, k, 1.0, a.data(), k, b.data(), n,
                                          1.0, want.data(), n);
          t->gemm_f64_accumulate(a.data(), b.data(), c.data(), m, n, k);
          double worst = 0.0;
          for (size_t i = 0; i < m * n; ++i) worst = std::max(worst, std::fabs(c[i] - want[i]));
          CHECK(worst <= 1e-14 * double(k + 1));
        }
  }
}

TEST_CASE("kernels: gemm alpha and beta in {0, 1, other}") {
  std::mt19937 rng(13);
  const float values[3] = {0.0f, 1.0f, -2.5f};
  for (const KernelTable* t : runnable_isas())
    for (bool ta : kTrans)
      for (bool tb : kTrans)
        for (float alpha : values)
          for (float beta : values)
            for (size_t m : {size_t(1), t->gemm_mr + 3})
              CHECK(check_gemm(*t, {ta, tb, m, t->gemm_nr + 5, 41, alpha, beta, 2}, rng));
}

TEST_CASE("kernels: gemm blocks larger than the cache blocks") {
  std::mt19937 rng(17);
  for (const KernelTable* t : runnable_isas())
    for (bool ta : kTrans)
      for (bool tb : kTrans) {
        CHECK(check_gemm(*t, {ta, tb, 263, 70, 300, 1.0f, 0.0f, 1}, rng));     // rows > MC
        CHECK(check_gemm(*t, {ta, tb, 7, 4200, 20, 0.5f, 1.0f, 0}, rng));      // columns > NC
        CHECK(check_gemm(*t, {ta, tb, 263, 70, 5, 1.0f, 0.5f, 0}, rng));  // rows > MC, k < a tick
      }
}

TEST_CASE("kernels: gemm packs the next depth block of B behind the arithmetic") {
  // Many row panels and several depth blocks (the last one shorter): each depth block's
  // microkernels pack the next one's B into a second buffer (B's rows contiguous), spread over
  // the row blocks, more than one of them here (300 rows is past every ISA's row block), with a
  // partial last column panel packed ahead. Transposed B takes the fetch-only path.
  std::mt19937 rng(37);
  for (const KernelTable* t : runnable_isas()) {
    const size_t KC = t->gemm_kc, NR = t->gemm_nr;
    for (bool ta : kTrans)
      for (bool tb : kTrans) {
        CHECK(check_gemm(*t, {ta, tb, 300, 2 * NR + 5, 3 * KC + 7, 1.0f, 0.0f, 0}, rng));
        CHECK(check_gemm(*t, {ta, tb, 300, 2 * NR, 3 * KC + 7, -0.5f, 1.5f, 2}, rng));
      }
  }
}

// The engine cuts a product into output tiles by thread count (engine/ops/gemm_tiles.hpp) and
// relies on this: an element's bits do not depend on the tile it is computed in, as long as
// the tile has more than 4 rows (fewer rows times B^T, or one row, take other paths). Checked
// on sub-blocks at unaligned offsets and sizes, against the whole product, with depth blocks.
TEST_CASE("kernels: gemm results do not depend on the tile an element falls in") {
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (const KernelTable* t : runnable_isas()) {
    const size_t MR = t->gemm_mr, NR = t->gemm_nr, W = t->lanes;
    const size_t m = 4 * MR + 7, n = 3 * NR + W + 5, k = 2 * t->gemm_kc + 9;
    for (bool ta : kTrans)
      for (bool tb : kTrans)
        for (float beta : {0.0f, 0.5f}) {
          CAPTURE(t->name);
          CAPTURE(ta);
          CAPTURE(tb);
          CAPTURE(beta);
          const size_t lda = ta ? m : k, ldb = tb ? k : n;
          std::vector<float> a(m * k), b(k * n), c0(m * n);
          for (float& x : a) x = dist(rng);
          for (float& x : b) x = dist(rng);
          for (float& x : c0) x = dist(rng);
          std::vector<float> whole = c0;
          t->gemm(ta, tb, m, n, k, 0.75f, a.data(), lda, b.data(), ldb, beta, whole.data(), n);
          // Row ranges of 5 or more rows at aligned and unaligned starts; any column ranges.
          const size_t row_cuts[][2] = {{0, 5}, {3, MR + 2}, {MR, 3 * MR}, {2 * MR + 1, m}};
          const size_t col_cuts[][2] = {{0, 1}, {1, W + 2}, {W - 1, NR + 3}, {NR, n}, {0, n}};
          for (const auto& rows : row_cuts)
            for (const auto& cols : col_cuts) {
              const size_t i0 = rows[0], mi = rows[1] - rows[0];
              const size_t j0 = cols[0], nj = cols[1] - cols[0];
              std::vector<float> c = c0;
              const float* at = ta ? a.data() + i0 : a.data() + i0 * lda;
              const float* bt = tb ? b.data() + j0 * ldb : b.data() + j0;
              t->gemm(ta, tb, mi, nj, k, 0.75f, at, lda, bt, ldb, beta, c.data() + i0 * n + j0, n);
              size_t differ = 0;
              for (size_t i = i0; i < i0 + mi; ++i)
                differ += std::memcmp(&c[i * n + j0], &whole[i * n + j0], nj * sizeof(float)) != 0;
              CAPTURE(i0);
              CAPTURE(mi);
              CAPTURE(j0);
              CAPTURE(nj);
              CHECK(differ == 0);
            }
        }
  }
}

TEST_CASE("kernels: gemm with beta = 0 ignores NaN in C, k = 0 scales C") {
  for (const KernelTable* t : runnable_isas()) {
    CAPTURE(t->name);
    const size_t m = t->gemm_mr + 1, n = t->gemm_nr + 3, k = 5;
    std::vector<float> a(m * k, 1.0f), b(k * n, 2.0f);
    std::vector<float> c(m * n, std::numeric_limits<float>::quiet_NaN());
    t->gemm(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    bool all_ten = true;
    for (float x : c) all_ten = all_ten && x == 10.0f;
    CHECK(all_ten);
    // k == 0: C = beta * C, and beta == 0 writes zeros over NaN.
    t->gemm(false, false, m, n, 0, 1.0f, a.data(), 1, b.data(), n, 0.5f, c.data(), n);
    bool all_five = true;
    for (float x : c) all_five = all_five && x == 5.0f;
    CHECK(all_five);
    std::fill(c.begin(), c.end(), std::numeric_limits<float>::quiet_NaN());
    t->gemm(true, true, m, n, 0, 1.0f, a.data(), m, b.data(), 1, 0.0f, c.data(), n);
    bool all_zero = true;
    for (float x : c) all_zero = all_zero && x == 0.0f;
    CHECK(all_zero);
  }
}

TEST_CASE("kernels: dispatched float gemm matches the reference") {
  const size_t m = 19, n = 37, k = 23;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> a(m * k), b(n * k), c(m * n);
  for (float& x : a) x = dist(rng);
  for (float& x : b) x = dist(rng);
  crt::kernels::gemm(false, true, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f, c.data(), n);
  std::vector<double> ad(a.begin(), a.end()), bd(b.begin(), b.end()), want(m * n);
  crt::kernels::gemm(false, true, m, n, k, 1.0, ad.data(), k, bd.data(), k, 0.0, want.data(), n);
  double worst = 0;
  for (size_t i = 0; i < m * n; ++i) worst = std::max(worst, std::fabs(double(c[i]) - want[i]));
  CHECK(worst < 1e-5);
}

// ==============================================================================================
// SIMD kernels other than GEMM. Every runnable ISA table against ref::X<double> on the same
// (upcast) float inputs, at sizes around that ISA's lane count W and at model sizes, with
// adversarial inputs. A check passes when |got - want| <= tol per element (NaN matches NaN and
// an infinity the same infinity); the tolerance of each kernel is stated next to its test, in
// units of eps = FLT_EPSILON. "depth" = n / W + 2 W + 8 bounds the number of roundings any term
// meets in a W-lane blocked sum of n floats (lane accumulators, then the horizontal add), so
// depth * eps * sum|terms| is a worst-case bound for such a sum. Kernels made only of IEEE
// operations in the reference's order are compared bit for bit with ref::X<float>.
// ==============================================================================================

namespace {

using crt::kernels::AttentionShape;
using crt::kernels::BinaryOp;
using crt::kernels::UnaryOp;
namespace ref = crt::kernels::ref;

constexpr double kEps = std::numeric_limits<float>::epsilon();
constexpr double kFltMin = std::numeric_limits<float>::min();
constexpr float kInfF = std::numeric_limits<float>::infinity();

std::vector<double> upcast(const std::vector<float>& v) { return {v.begin(), v.end()}; }

std::vector<float> downcast(const std::vector<double>& v) { return {v.begin(), v.end()}; }

std::vector<float> uniform(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

double depth(size_t n, size_t lanes) {
  return double(n) / double(lanes) + 2.0 * double(lanes) + 8.0;
}

// 1, W - 1, W, W + 1, 3W + 5, 16W + 3 (past the 4-accumulator loops), then `extra`.
std::vector<size_t> sizes_for(size_t lanes, std::initializer_list<size_t> extra) {
  std::set<size_t> s{1, lanes - 1, lanes, lanes + 1, 3 * lanes + 5, 16 * lanes + 3};
  s.insert(extra.begin(), extra.end());
  return {s.begin(), s.end()};
}

std::string label(const KernelTable& t, const std::string& what) {
  return std::string(t.name) + " " + what;
}

// |got[i] - want[i]| <= tol(i) for i < n; NaN matches NaN, an infinity the same infinity (or a
// want that rounds to it in float). Reports the first mismatch.
template <class Tol>
bool all_close(const std::string& what, const float* got, const double* want, size_t n, Tol tol) {
  for (size_t i = 0; i < n; ++i) {
    const double g = got[i], w = want[i];
    bool ok;
    if (std::isnan(w) || std::isnan(g))
      ok = std::isnan(w) && std::isnan(g);
    else if (std::isinf(w) || std::isinf(g))  // want beyond FLT_MAX must give inf
      ok = g == w || float(w) == float(g);
    else
      ok = std::fabs(g - w) <= tol(i);
    if (!ok) {
      FAIL_CHECK(what, ": element ", i, " = ", g, ", want ", w, " (tol ", tol(i), ")");
      return false;
    }
  }
  return true;
}

// got == want bit for bit (any NaN matches any NaN).
bool all_equal(const std::string& what, const float* got, const float* want, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (got[i] == want[i] && std::signbit(got[i]) == std::signbit(want[i])) continue;
    if (std::isnan(got[i]) && std::isnan(want[i])) continue;
    FAIL_CHECK(what, ": element ", i, " = ", got[i], ", want exactly ", want[i]);
    return false;
  }
  return true;
}

const BinaryOp kBinaryOps[] = {BinaryOp::add, BinaryOp::sub, BinaryOp::mul, BinaryOp::div};
const UnaryOp kUnaryOps[] = {UnaryOp::neg,  UnaryOp::exp,     UnaryOp::log,
                             UnaryOp::relu, UnaryOp::gelu,    UnaryOp::tanh,
                             UnaryOp::sigmoid, UnaryOp::sqrt, UnaryOp::square};

const char* unary_name(UnaryOp op) {
  const char* names[] = {"neg", "exp", "log", "relu", "gelu", "tanh", "sigmoid", "sqrt", "square"};
  return names[static_cast<int>(op)];
}

// Inputs for the unary ops: ordinary values, then large magnitudes, zeros and tiny values.
std::vector<float> unary_inputs(std::mt19937& rng, size_t n, UnaryOp op) {
  std::vector<float> x = uniform(rng, n, -6.0f, 6.0f);
  const float specials[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 1.0f,   -1.0f,  20.0f,  -20.0f,
                            87.0f, -87.0f, 89.0f, -89.0f, 100.0f, -100.0f, 1e3f, -1e3f,
                            9.5f, -9.5f,  15.0f, -15.0f, 1.0000001f, 0.9999999f};
  for (size_t i = 0; i < n; i += 3) x[i] = specials[(i / 3) % std::size(specials)];
  if (op == UnaryOp::log || op == UnaryOp::sqrt)  // mostly in the domain; 0 and -1 stay
    for (size_t i = 0; i < n; ++i)
      if (x[i] < 0.0f && i % 7 != 0) x[i] = -x[i];
  return x;
}

}  // namespace

// Add, sub, mul and div are correctly rounded IEEE operations: every ISA must give the
// reference's float results bit for bit (inf and NaN from division by zero included).
TEST_CASE("simd kernels: binary ops, all ISAs, bit-exact") {
  std::mt19937 rng(101);
  for (const KernelTable* t : runnable_isas())
    for (size_t n : sizes_for(t->lanes, {1000})) {
      std::vector<float> a = uniform(rng, n, -10.0f, 10.0f), b = uniform(rng, n, -10.0f, 10.0f);
      b[n / 2] = 0.0f;
      const float s = -2.75f;
      for (BinaryOp op : kBinaryOps) {
        const std::string what = label(*t, "binary op " + std::to_string(int(op)) + " n=" +
                                               std::to_string(n));
        std::vector<float> got(n), want(n);
        t->binary(op, a.data(), b.data(), got.data(), n);
        ref::binary<float>(op, a.data(), b.data(), want.data(), n);
        CHECK(all_equal(what, got.data(), want.data(), n));
        t->binary_scalar_right(op, a.data(), s, got.data(), n);
        ref::binary_scalar_right<float>(op, a.data(), s, want.data(), n);
        CHECK(all_equal(what + " scalar right", got.data(), want.data(), n));
        t->binary_scalar_left(op, s, b.data(), got.data(), n);
        ref::binary_scalar_left<float>(op, s, b.data(), want.data(), n);
        CHECK(all_equal(what + " scalar left", got.data(), want.data(), n));
        // In place (y aliases a), as the engine's in-place ops do.
        std::vector<float> inplace = a;
        t->binary(op, inplace.data(), b.data(), inplace.data(), n);
        ref::binary<float>(op, a.data(), b.data(), want.data(), n);
        CHECK(all_equal(what + " in place", inplace.data(), want.data(), n));
      }
    }
}

// Tolerances (want = the double reference on the float input x), each plus FLT_MIN absolute:
// results in the subnormal range carry no relative accuracy (and exp flushes below -87.3).
//   neg, relu, sqrt, square: bit-exact with ref<float> (exact or correctly rounded operations);
//   exp, tanh, log: 4 eps relative (xsimd's float kernels are within about 2 ulp);
//   sigmoid: 8 eps relative (exp, an add and a divide);
//   gelu: eps (8 + 2 x^2) relative: in the left tail Phi(x) = erfc(-x/sqrt2)/2 has relative
//     sensitivity ~x^2 to the rounding of the float argument x/sqrt2; plus 2^-52 |x|, the
//     double reference's own error, as it forms 1 + erf(x/sqrt2) (0 below x = -8.3).
constexpr double kRefCancel = 2.220446049250313e-16;  // 2^-52

double unary_tol(UnaryOp op, double x, double want) {
  const double a = std::fabs(want);
  switch (op) {
    case UnaryOp::exp:
    case UnaryOp::tanh:
    case UnaryOp::log: return 4 * kEps * a + kFltMin;
    case UnaryOp::sigmoid: return 8 * kEps * a + kFltMin;
    case UnaryOp::gelu: return kEps * (8 + 2 * x * x) * a + kRefCancel * std::fabs(x) + kFltMin;
    default: return 0.0;
  }
}

// Backward tolerances (dx = dy f'(x), y = f(x) the float forward result given to both), each
// plus |dy| FLT_MIN absolute (subnormal y):
//   neg, exp, relu: bit-exact with ref<float>;
//   log (dy / x vs the reference's dy * (1/x)), sqrt, square: 3 eps relative;
//   tanh: 1 - y^2 is rounded after y^2: 3 eps |dy| (1 + y^2) absolute;
//   sigmoid: 4 eps |dy| (|y| + y^2) absolute;
//   gelu: Phi(x) + x phi(x): eps (16 + 2 x^2) |dy| (Phi + |x| phi), plus 2^-52 |dy| for the
//     reference's cancellation in 1 + erf.
double unary_backward_tol(UnaryOp op, double x, double y, double dy, double want) {
  const double a = std::fabs(want), g = std::fabs(dy);
  switch (op) {
    case UnaryOp::log:
    case UnaryOp::sqrt:
    case UnaryOp::square: return 3 * kEps * a + g * kFltMin;
    case UnaryOp::tanh: return 3 * kEps * g * (1 + y * y) + g * kFltMin;
    case UnaryOp::sigmoid: return 4 * kEps * g * (std::fabs(y) + y * y) + g * kFltMin;
    case UnaryOp::gelu: {
      const double cdf = 0.5 * std::erfc(-x * 0.70710678118654752440);
      const double pdf = 0.39894228040143267794 * std::exp(-0.5 * x * x);
      return kEps * (16 + 2 * x * x) * g * (cdf + std::fabs(x) * pdf) + g * (kRefCancel + kFltMin);
    }
    default: return 0.0;
  }
}

bool unary_exact(UnaryOp op) {
  return op == UnaryOp::neg || op == UnaryOp::relu || op == UnaryOp::sqrt ||
         op == UnaryOp::square;
}

bool unary_backward_exact(UnaryOp op) {
  return op == UnaryOp::neg || op == UnaryOp::exp || op == UnaryOp::relu;
}

// The derivatives of exp, tanh, sigmoid and sqrt read only y; the others only x.
bool backward_reads_y(UnaryOp op) {
  return op == UnaryOp::exp || op == UnaryOp::tanh || op == UnaryOp::sigmoid ||
         op == UnaryOp::sqrt;
}

TEST_CASE("simd kernels: unary ops and their derivatives, all ISAs") {
  std::mt19937 rng(103);
  for (const KernelTable* t : runnable_isas())
    for (size_t n : sizes_for(t->lanes, {1000}))
      for (UnaryOp op : kUnaryOps) {
        const std::string what = label(*t, std::string(unary_name(op)) + " n=" + std::to_string(n));
        const std::vector<float> x = unary_inputs(rng, n, op);
        const std::vector<double> xd = upcast(x);
        std::vector<float> y(n), yf(n);
        std::vector<double> want(n);
        t->unary(op, x.data(), y.data(), n);
        ref::unary<double>(op, xd.data(), want.data(), n);
        if (unary_exact(op)) {
          ref::unary<float>(op, x.data(), yf.data(), n);
          CHECK(all_equal(what, y.data(), yf.data(), n));
        } else {
          CHECK(all_close(what, y.data(), want.data(), n,
                          [&](size_t i) { return unary_tol(op, xd[i], want[i]); }));
        }

        // Backward, with y = f(x) rounded to float given to both and the other input null.
        const std::vector<float> yin = downcast(want);
        const std::vector<float> dy = uniform(rng, n, -2.0f, 2.0f);
        const std::vector<double> yind = upcast(yin), dyd = upcast(dy);
        const bool reads_y = backward_reads_y(op);
        std::vector<float> dx(n, 12345.0f), dxf(n);
        std::vector<double> dwant(n);
        t->unary_backward(op, reads_y ? nullptr : x.data(), reads_y ? yin.data() : nullptr,
                          dy.data(), dx.data(), n);
        ref::unary_backward<double>(op, reads_y ? nullptr : xd.data(),
                                    reads_y ? yind.data() : nullptr, dyd.data(), dwant.data(), n);
        if (unary_backward_exact(op)) {
          ref::unary_backward<float>(op, reads_y ? nullptr : x.data(),
                                     reads_y ? yin.data() : nullptr, dy.data(), dxf.data(), n);
          CHECK(all_equal(what + " backward", dx.data(), dxf.data(), n));
        } else {
          CHECK(all_close(what + " backward", dx.data(), dwant.data(), n, [&](size_t i) {
            return unary_backward_tol(op, xd[i], yind[i], dyd[i], dwant[i]);
          }));
        }
      }
}

// dropout_apply: integer hashing and one IEEE product per element, so bit for bit with
// ref::dropout_apply<float>; also against the rule itself (kept iff to_unit(hash) >= p), at
// indices that carry across 2^32 and 2^64, with zeros, infinities and NaN in x.
TEST_CASE("simd kernels: dropout_apply, all ISAs, bit for bit") {
  std::mt19937 rng(109);
  const float inf = std::numeric_limits<float>::infinity();
  for (const KernelTable* t : runnable_isas())
    for (size_t n : sizes_for(t->lanes, {255, 256, 257, 1000, 4099}))
      for (std::uint64_t index0 : {std::uint64_t(0), std::uint64_t(7), (std::uint64_t(1) << 32) - 3,
                                   ~std::uint64_t(0) - 5})
        for (double p : {0.0, 0.1, 0.5, 0.97}) {
          std::vector<float> x = uniform(rng, n, -4.0f, 4.0f);
          if (n > 3) {
            x[0] = 0.0f;
            x[1] = -inf;
            x[2] = std::numeric_limits<float>::quiet_NaN();
          }
          const auto threshold = std::uint64_t(std::ceil(std::ldexp(p, 53)));
          const float scale = float(1.0 / (1.0 - p));
          const std::uint64_t key = rng();
          std::vector<float> got(n), want(n);
          t->dropout_apply(x.data(), got.data(), n, key, index0, threshold, scale);
          ref::dropout_apply<float>(x.data(), want.data(), n, key, index0, threshold, scale);
          size_t differ = 0, wrong_rule = 0;
          for (size_t i = 0; i < n; ++i) {
            differ += std::memcmp(&got[i], &want[i], sizeof(float)) != 0;
            const std::uint64_t h = crt::kernels::counter_hash(key, index0 + i);
            const bool keep = double(h >> 11) * 0x1.0p-53 >= p;
            const float rule = x[i] * (keep ? scale : 0.0f);
            wrong_rule += std::memcmp(&got[i], &rule, sizeof(float)) != 0;
          }
          CAPTURE(t->name);
          CAPTURE(n);
          CAPTURE(index0);
          CAPTURE(p);
          CHECK(differ == 0);
          CHECK(wrong_rule == 0);
        }
}

// axpy: y + alpha x with or without FMA: 2 eps (|y| + |alpha x|). sum_squares accumulates the
// exact float squares in double: 1e-12 relative. sum_rows: depth eps sum|x|.
TEST_CASE("simd kernels: axpy, sum_squares, sum_rows, all ISAs") {
  std::mt19937 rng(107);
  for (const KernelTable* t : runnable_isas()) {
    for (size_t n : sizes_for(t->lanes, {1000, 100003}))
      for (float alpha : {1.0f, -0.5f, 3.0f}) {
        const std::vector<float> x = uniform(rng, n, -4.0f, 4.0f);
        const std::vector<float> y0 = uniform(rng, n, -4.0f, 4.0f);
        std::vector<float> y = y0;
        t->axpy(alpha, x.data(), y.data(), n);
        std::vector<double> want = upcast(y0);
        const std::vector<double> xd = upcast(x);
        ref::axpy<double>(alpha, xd.data(), want.data(), n);
        CHECK(all_close(label(*t, "axpy n=" + std::to_string(n)), y.data(), want.data(), n,
                        [&](size_t i) {
                          return 2 * kEps * (std::fabs(double(y0[i])) + std::fabs(alpha * xd[i]));
                        }));
      }
    for (size_t n : sizes_for(t->lanes, {1000, 100003})) {
      const std::vector<float> x = uniform(rng, n, -30.0f, 30.0f);
      const std::vector<double> xd = upcast(x);
      const double got = t->sum_squares(x.data(), n), want = ref::sum_squares<double>(xd.data(), n);
      CAPTURE(t->name);
      CAPTURE(n);
      CHECK(std::fabs(got - want) <= 1e-12 * want);
    }
    for (size_t cols : sizes_for(t->lanes, {1000, 33278})) {
      const size_t rows = 3;
      const std::vector<float> x = uniform(rng, rows * cols, -5.0f, 5.0f);
      const std::vector<double> xd = upcast(x);
      std::vector<float> y(rows);
      std::vector<double> want(rows);
      t->sum_rows(x.data(), y.data(), rows, cols);
      ref::sum_rows<double>(xd.data(), want.data(), rows, cols);
      CHECK(all_close(label(*t, "sum_rows cols=" + std::to_string(cols)), y.data(), want.data(),
                      rows, [&](size_t r) {
                        double mag = 0;
                        for (size_t c = 0; c < cols; ++c) mag += std::fabs(xd[r * cols + c]);
                        return depth(cols, t->lanes) * kEps * mag;
                      }));
    }
  }
}

// sum_cols sums each column in row order from y (accumulate) or 0, as the reference does:
// bit-exact with ref<float>.
TEST_CASE("simd kernels: sum_cols, all ISAs, bit-exact") {
  std::mt19937 rng(109);
  for (const KernelTable* t : runnable_isas())
    for (size_t cols : sizes_for(t->lanes, {1230}))
      for (size_t rows : {size_t(1), size_t(2), size_t(7), size_t(33)})
        for (bool accumulate : {false, true}) {
          const std::vector<float> x = uniform(rng, rows * cols, -3.0f, 3.0f);
          const std::vector<float> y0 = uniform(rng, cols, -1.0f, 1.0f);
          std::vector<float> got = y0, want = y0;
          t->sum_cols(x.data(), got.data(), rows, cols, accumulate);
          ref::sum_cols<float>(x.data(), want.data(), rows, cols, accumulate);
          CHECK(all_equal(label(*t, "sum_cols rows=" + std::to_string(rows) + " cols=" +
                                        std::to_string(cols) + " acc=" +
                                        std::to_string(accumulate)),
                          got.data(), want.data(), cols));
        }
}

// modReLU is |z| + b, a comparison and a sign, and its bias gradient a row-order sum of +-dy:
// bit-exact with ref<float>, with db null or accumulated.
TEST_CASE("simd kernels: modrelu forward and backward, all ISAs, bit-exact") {
  std::mt19937 rng(113);
  for (const KernelTable* t : runnable_isas())
    for (size_t cols : sizes_for(t->lanes, {256, 410}))
      for (size_t rows : {size_t(1), size_t(16)}) {
        const std::string what =
            label(*t, "modrelu rows=" + std::to_string(rows) + " cols=" + std::to_string(cols));
        std::vector<float> z = uniform(rng, rows * cols, -2.0f, 2.0f);
        for (size_t i = 0; i < z.size(); i += 5) z[i] = 0.0f;  // sign(0) = 0
        const std::vector<float> b = uniform(rng, cols, -1.0f, 1.0f);
        const std::vector<float> dy = uniform(rng, rows * cols, -1.0f, 1.0f);
        std::vector<float> y(rows * cols), yf(rows * cols);
        t->modrelu_forward(z.data(), b.data(), y.data(), rows, cols);
        ref::modrelu_forward<float>(z.data(), b.data(), yf.data(), rows, cols);
        CHECK(all_equal(what, y.data(), yf.data(), rows * cols));
        const std::vector<float> db0 = uniform(rng, cols, -1.0f, 1.0f);
        std::vector<float> dz(rows * cols), dzf(rows * cols), db = db0, dbf = db0;
        t->modrelu_backward(z.data(), b.data(), dy.data(), dz.data(), db.data(), rows, cols);
        ref::modrelu_backward<float>(z.data(), b.data(), dy.data(), dzf.data(), dbf.data(), rows,
                                     cols);
        CHECK(all_equal(what + " dz", dz.data(), dzf.data(), rows * cols));
        CHECK(all_equal(what + " db", db.data(), dbf.data(), cols));
        std::fill(dz.begin(), dz.end(), 7.0f);
        t->modrelu_backward(z.data(), b.data(), dy.data(), dz.data(), nullptr, rows, cols);
        CHECK(all_equal(what + " dz without db", dz.data(), dzf.data(), rows * cols));
      }
}

namespace {

// Logit rows of one kind: 0 ordinary, 1 all in [90, 100], 2 in [-1000, 1000], 3 adversarial:
// a row of one repeated value, a row of -1000s, a row with some -inf entries, a row of -inf.
std::vector<float> logit_rows(std::mt19937& rng, int kind, size_t rows, size_t cols) {
  switch (kind) {
    case 0: return uniform(rng, rows * cols, -5.0f, 5.0f);
    case 1: return uniform(rng, rows * cols, 90.0f, 100.0f);
    case 2: return uniform(rng, rows * cols, -1000.0f, 1000.0f);
    default: {
      std::vector<float> x = uniform(rng, rows * cols, -3.0f, 3.0f);
      for (size_t r = 0; r < rows; ++r)
        for (size_t c = 0; c < cols; ++c) {
          float& v = x[r * cols + c];
          switch (r % 4) {
            case 0: v = 7.25f; break;
            case 1: v = -1000.0f; break;
            case 2: v = c % 5 == 1 ? -kInfF : v; break;
            default: v = -kInfF; break;
          }
        }
      return x;
    }
  }
}

struct RowsCase {
  size_t rows, cols;
  int kind;
};

std::vector<RowsCase> softmax_cases(size_t lanes) {
  std::vector<RowsCase> out;
  for (size_t cols : sizes_for(lanes, {4095, 4096, 4097, 10000, 33278}))
    for (int kind = 0; kind < 4; ++kind)
      out.push_back({kind == 3 ? size_t(4) : size_t(3), cols, kind});
  return out;
}

std::string describe(const KernelTable& t, const char* kernel, const RowsCase& c) {
  return label(t, std::string(kernel) + " rows=" + std::to_string(c.rows) + " cols=" +
                      std::to_string(c.cols) + " kind=" + std::to_string(c.kind));
}

}  // namespace

// softmax: eps (depth + 16) relative (a blocked sum of exps, exp's few ulp, one divide) plus
// FLT_MIN absolute (exp flushes below exp(-87.3)). Backward dx = y (dy - sum y dy), y the
// float softmax: eps (depth + 8) |y| (|dy| + sum|y dy|) + FLT_MIN.
TEST_CASE("simd kernels: softmax rows and backward, all ISAs, adversarial logits") {
  std::mt19937 rng(127);
  for (const KernelTable* t : runnable_isas())
    for (const RowsCase& c : softmax_cases(t->lanes)) {
      const size_t n = c.rows * c.cols;
      const double dep = depth(c.cols, t->lanes);
      const std::vector<float> x = logit_rows(rng, c.kind, c.rows, c.cols);
      const std::vector<double> xd = upcast(x);
      std::vector<float> y(n);
      std::vector<double> want(n);
      t->softmax_rows(x.data(), y.data(), c.rows, c.cols);
      ref::softmax_rows<double>(xd.data(), want.data(), c.rows, c.cols);
      CHECK(all_close(describe(*t, "softmax", c), y.data(), want.data(), n,
                      [&](size_t i) { return kEps * (dep + 16) * std::fabs(want[i]) + kFltMin; }));

      const std::vector<float> yin = downcast(want), dy = uniform(rng, n, -1.0f, 1.0f);
      const std::vector<double> yd = upcast(yin), dyd = upcast(dy);
      std::vector<float> dx(n);
      std::vector<double> dwant(n);
      t->softmax_backward_rows(yin.data(), dy.data(), dx.data(), c.rows, c.cols);
      ref::softmax_backward_rows<double>(yd.data(), dyd.data(), dwant.data(), c.rows, c.cols);
      std::vector<double> row_mag(c.rows, 0.0);  // sum |y dy| per row
      for (size_t i = 0; i < n; ++i) row_mag[i / c.cols] += std::fabs(yd[i] * dyd[i]);
      CHECK(all_close(describe(*t, "softmax backward", c), dx.data(), dwant.data(), n,
                      [&](size_t i) {
                        return kEps * (dep + 8) * std::fabs(yd[i]) *
                                   (std::fabs(dyd[i]) + row_mag[i / c.cols]) +
                               kFltMin;
                      }));
      // In place (dx over dy, as an autograd buffer may be): the row's output overlaps an
      // input, so whole-vector stores that recompute elements are not allowed; same bits.
      std::vector<float> in_place = dy;
      t->softmax_backward_rows(yin.data(), in_place.data(), in_place.data(), c.rows, c.cols);
      CHECK_MESSAGE(std::memcmp(in_place.data(), dx.data(), n * sizeof(float)) == 0,
                    describe(*t, "softmax backward in place", c));
    }
}

// log_softmax y = x - lse: eps (depth + 16 + |x| + |lse|) absolute (the blocked sum's relative
// error becomes an absolute error of lse; then x - lse is rounded). Backward dx = dy - exp(y)
// sum(dy): eps (depth + 8) (|dy| + exp(y) sum|dy|) + FLT_MIN.
TEST_CASE("simd kernels: log_softmax rows and backward, all ISAs, adversarial logits") {
  std::mt19937 rng(131);
  for (const KernelTable* t : runnable_isas())
    for (const RowsCase& c : softmax_cases(t->lanes)) {
      const size_t n = c.rows * c.cols;
      const double dep = depth(c.cols, t->lanes);
      const std::vector<float> x = logit_rows(rng, c.kind, c.rows, c.cols);
      const std::vector<double> xd = upcast(x);
      std::vector<float> y(n);
      std::vector<double> want(n);
      t->log_softmax_rows(x.data(), y.data(), c.rows, c.cols);
      ref::log_softmax_rows<double>(xd.data(), want.data(), c.rows, c.cols);
      CHECK(all_close(describe(*t, "log_softmax", c), y.data(), want.data(), n, [&](size_t i) {
        const double lse = xd[i] - want[i];
        return kEps * (dep + 16 + std::fabs(xd[i]) + std::fabs(lse));
      }));

      const std::vector<float> yin = downcast(want), dy = uniform(rng, n, -1.0f, 1.0f);
      const std::vector<double> yd = upcast(yin), dyd = upcast(dy);
      std::vector<float> dx(n);
      std::vector<double> dwant(n);
      t->log_softmax_backward_rows(yin.data(), dy.data(), dx.data(), c.rows, c.cols);
      ref::log_softmax_backward_rows<double>(yd.data(), dyd.data(), dwant.data(), c.rows, c.cols);
      std::vector<double> row_abs(c.rows, 0.0);  // sum |dy| per row
      for (size_t i = 0; i < n; ++i) row_abs[i / c.cols] += std::fabs(dyd[i]);
      CHECK(all_close(describe(*t, "log_softmax backward", c), dx.data(), dwant.data(), n,
                      [&](size_t i) {
                        return kEps * (dep + 8) *
                                   (std::fabs(dyd[i]) + std::exp(yd[i]) * row_abs[i / c.cols]) +
                               kFltMin;
                      }));
    }
}

// Cross-entropy over vocabularies up to 267735 columns, with ignored rows.
//   forward: lse and loss within eps (depth + 16 + 2 |lse| + |x_target|) absolute;
//   backward dlogits = s (exp(x - lse) - [c == t]), lse the float forward value given to both:
//     |s| eps ((|x| + |lse| + 8) exp(x - lse) + 2 [c == t]) + |s| FLT_MIN; ignored rows all 0.
TEST_CASE("simd kernels: cross-entropy forward and backward, all ISAs, ignore_index rows") {
  std::mt19937 rng(137);
  const std::int32_t ignore = -100;
  for (const KernelTable* t : runnable_isas()) {
    std::vector<RowsCase> cases = softmax_cases(t->lanes);
    cases.push_back({2, 267735, 0});
    cases.push_back({2, 267735, 2});
    for (const RowsCase& c : cases) {
      const size_t n = c.rows * c.cols;
      const double dep = depth(c.cols, t->lanes);
      const std::vector<float> x = logit_rows(rng, c.kind, c.rows, c.cols);
      const std::vector<double> xd = upcast(x);
      std::vector<std::int32_t> targets(c.rows);
      std::uniform_int_distribution<std::int32_t> pick(0, std::int32_t(c.cols) - 1);
      for (size_t r = 0; r < c.rows; ++r) targets[r] = r % 3 == 1 ? ignore : pick(rng);
      std::vector<float> loss(c.rows), lse(c.rows);
      std::vector<double> loss_want(c.rows), lse_want(c.rows);
      t->cross_entropy_forward(x.data(), targets.data(), loss.data(), lse.data(), c.rows, c.cols,
                               ignore);
      ref::cross_entropy_forward<double>(xd.data(), targets.data(), loss_want.data(),
                                         lse_want.data(), c.rows, c.cols, ignore);
      const auto fwd_tol = [&](size_t r) {
        const double xt =
            targets[r] == ignore ? 0.0 : std::fabs(xd[r * c.cols + size_t(targets[r])]);
        return kEps * (dep + 16 + 2 * std::fabs(lse_want[r]) + xt);
      };
      CHECK(all_close(describe(*t, "cross-entropy lse", c), lse.data(), lse_want.data(), c.rows,
                      fwd_tol));
      CHECK(all_close(describe(*t, "cross-entropy loss", c), loss.data(), loss_want.data(),
                      c.rows, fwd_tol));

      const std::vector<float> lse_in = downcast(lse_want);
      const std::vector<float> scale = uniform(rng, c.rows, 0.1f, 2.0f);
      const std::vector<double> lse_d = upcast(lse_in), scale_d = upcast(scale);
      std::vector<float> dx(n, 12345.0f);
      std::vector<double> dwant(n);
      t->cross_entropy_backward(x.data(), lse_in.data(), targets.data(), scale.data(), dx.data(),
                                c.rows, c.cols, ignore);
      ref::cross_entropy_backward<double>(xd.data(), lse_d.data(), targets.data(), scale_d.data(),
                                          dwant.data(), c.rows, c.cols, ignore);
      CHECK(all_close(describe(*t, "cross-entropy backward", c), dx.data(), dwant.data(), n,
                      [&](size_t i) {
                        const size_t r = i / c.cols, col = i % c.cols;
                        if (targets[r] == ignore) return 0.0;
                        const double p = std::exp(xd[i] - lse_d[r]);
                        const double hit = col == size_t(targets[r]) ? 2.0 : 0.0;
                        const double shift = p > 0 ? std::fabs(xd[i]) + std::fabs(lse_d[r]) : 0.0;
                        return std::fabs(scale_d[r]) *
                               (kEps * ((shift + 8) * p + hit) + kFltMin);
                      }));
    }
  }
}

// Layer norm over rows of ordinary values, one repeated value (variance 0) and values offset
// by 1000 (two-pass variance), with and without gamma / beta. Let dmu = depth eps mean|x| bound
// the error of the blocked mean. Forward: mean within dmu + eps |mean|; rstd relative
// eps (depth + 8) + dmu^2 / (2 (var + eps_ln)); y within |g| (rstd (dmu + 2 eps |x - mean|) +
// |xhat| rstd_tol) + 2 eps (|xhat g| + |b|). Backward (mean, rstd given as floats to both):
// dx within 2 eps rstd (4 |dxhat| + (depth + 4) (mean|dxhat| + |xhat| mean|dxhat xhat|));
// dgamma, dbeta within 8 eps (|initial| + sum_r |dy xhat|, resp. |dy|).
TEST_CASE("simd kernels: layernorm forward and backward, all ISAs") {
  std::mt19937 rng(139);
  const float ln_eps = 1e-5f;
  for (const KernelTable* t : runnable_isas())
    for (size_t cols : sizes_for(t->lanes, {256, 410, 1000}))
      for (int affine = 0; affine < 4; ++affine) {
        const bool has_gamma = affine & 1, has_beta = affine & 2;
        const size_t rows = 3, n = rows * cols;
        const double dep = depth(cols, t->lanes);
        std::vector<float> x = uniform(rng, n, -2.0f, 2.0f);
        for (size_t c = 0; c < cols; ++c) {
          x[cols + c] = 3.3f;                  // variance 0
          x[2 * cols + c] = 1000.0f + x[2 * cols + c];  // large mean
        }
        const std::vector<float> gamma = uniform(rng, cols, 0.5f, 1.5f),
                                 beta = uniform(rng, cols, -1.0f, 1.0f);
        const float* gp = has_gamma ? gamma.data() : nullptr;
        const float* bp = has_beta ? beta.data() : nullptr;
        const std::vector<double> xd = upcast(x), gd = upcast(gamma), bd = upcast(beta);
        std::vector<float> y(n), mean(rows), rstd(rows);
        std::vector<double> yw(n), mean_w(rows), rstd_w(rows);
        t->layernorm_forward(x.data(), gp, bp, y.data(), mean.data(), rstd.data(), rows, cols,
                             ln_eps);
        ref::layernorm_forward<double>(xd.data(), has_gamma ? gd.data() : nullptr,
                                       has_beta ? bd.data() : nullptr, yw.data(), mean_w.data(),
                                       rstd_w.data(), rows, cols, ln_eps);
        const std::string what = label(*t, "layernorm cols=" + std::to_string(cols) +
                                               " gamma=" + std::to_string(has_gamma) +
                                               " beta=" + std::to_string(has_beta));
        std::vector<double> dmu(rows), rstd_rel(rows);
        for (size_t r = 0; r < rows; ++r) {
          double mean_abs = 0;
          for (size_t c = 0; c < cols; ++c) mean_abs += std::fabs(xd[r * cols + c]) / double(cols);
          dmu[r] = dep * kEps * mean_abs;
          const double var = 1.0 / (rstd_w[r] * rstd_w[r]) - double(ln_eps);
          rstd_rel[r] = kEps * (dep + 8) + dmu[r] * dmu[r] / (2 * (std::max(var, 0.0) + ln_eps));
        }
        CHECK(all_close(what + " mean", mean.data(), mean_w.data(), rows,
                        [&](size_t r) { return dmu[r] + kEps * std::fabs(mean_w[r]); }));
        CHECK(all_close(what + " rstd", rstd.data(), rstd_w.data(), rows,
                        [&](size_t r) { return rstd_rel[r] * rstd_w[r]; }));
        CHECK(all_close(what + " y", y.data(), yw.data(), n, [&](size_t i) {
          const size_t r = i / cols, c = i % cols;
          const double g = has_gamma ? std::fabs(gd[c]) : 1.0;
          const double b = has_beta ? std::fabs(bd[c]) : 0.0;
          const double centred = std::fabs(xd[i] - mean_w[r]), xhat = centred * rstd_w[r];
          return g * (rstd_w[r] * (dmu[r] + 2 * kEps * centred) + xhat * rstd_rel[r]) +
                 2 * kEps * (xhat * g + b) + 1e-30;
        }));

        // Backward from the forward statistics rounded to float.
        const std::vector<float> mean_in = downcast(mean_w), rstd_in = downcast(rstd_w);
        const std::vector<double> mean_d = upcast(mean_in), rstd_d = upcast(rstd_in);
        const std::vector<float> dy = uniform(rng, n, -1.0f, 1.0f);
        const std::vector<double> dyd = upcast(dy);
        const std::vector<float> dg0 = uniform(rng, cols, -1.0f, 1.0f),
                                 db0 = uniform(rng, cols, -1.0f, 1.0f);
        for (int grads = 0; grads < 2; ++grads) {  // dgamma, dbeta accumulated, or both null
          std::vector<float> dx(n), dg = dg0, db = db0;
          std::vector<double> dxw(n), dgw = upcast(dg0), dbw = upcast(db0);
          t->layernorm_backward(x.data(), gp, mean_in.data(), rstd_in.data(), dy.data(),
                                dx.data(), grads ? dg.data() : nullptr,
                                grads ? db.data() : nullptr, rows, cols);
          ref::layernorm_backward<double>(xd.data(), has_gamma ? gd.data() : nullptr,
                                          mean_d.data(), rstd_d.data(), dyd.data(), dxw.data(),
                                          grads ? dgw.data() : nullptr,
                                          grads ? dbw.data() : nullptr, rows, cols);
          std::vector<double> xhat(n), dxhat(n), m1(rows, 0.0), m2(rows, 0.0);
          for (size_t i = 0; i < n; ++i) {
            const size_t r = i / cols, c = i % cols;
            xhat[i] = (xd[i] - mean_d[r]) * rstd_d[r];
            dxhat[i] = dyd[i] * (has_gamma ? gd[c] : 1.0);
            m1[r] += std::fabs(dxhat[i]) / double(cols);
            m2[r] += std::fabs(dxhat[i] * xhat[i]) / double(cols);
          }
          CHECK(all_close(what + " dx", dx.data(), dxw.data(), n, [&](size_t i) {
            const size_t r = i / cols;
            return 2 * kEps * rstd_d[r] *
                   (4 * std::fabs(dxhat[i]) + (dep + 4) * (m1[r] + std::fabs(xhat[i]) * m2[r]));
          }));
          if (grads) {
            CHECK(all_close(what + " dgamma", dg.data(), dgw.data(), cols, [&](size_t c) {
              double mag = std::fabs(double(dg0[c]));
              for (size_t r = 0; r < rows; ++r)
                mag += std::fabs(dyd[r * cols + c] * xhat[r * cols + c]);
              return 8 * kEps * mag;
            }));
            CHECK(all_close(what + " dbeta", db.data(), dbw.data(), cols, [&](size_t c) {
              double mag = std::fabs(double(db0[c]));
              for (size_t r = 0; r < rows; ++r) mag += std::fabs(dyd[r * cols + c]);
              return 8 * kEps * mag;
            }));
          }
        }
      }
}

// GRU gates, forward and backward, ordinary and saturating inputs. Tolerance per unit:
// 4 eps (1 + a)^2 (1 + |dh_out|), a = the largest of the unit's |gate inputs| and |h|: each
// pre-activation is a rounded sum (error eps a), which reaches an output through gate
// derivatives bounded by 1 and at most one more factor bounded by a (gh_n or h - n).
TEST_CASE("simd kernels: GRU gates forward and backward, all ISAs") {
  std::mt19937 rng(149);
  for (const KernelTable* t : runnable_isas())
    for (size_t hidden : sizes_for(t->lanes, {256, 410}))
      for (size_t batch : {size_t(1), size_t(3)})
        for (float range : {3.0f, 40.0f}) {
          const size_t H = hidden, g3 = 3 * H;
          const std::vector<float> gi = uniform(rng, batch * g3, -range, range),
                                   gh = uniform(rng, batch * g3, -range, range),
                                   h = uniform(rng, batch * H, -1.0f, 1.0f),
                                   dh_out = uniform(rng, batch * H, -1.0f, 1.0f);
          const std::vector<double> gid = upcast(gi), ghd = upcast(gh), hd = upcast(h),
                                    dhd = upcast(dh_out);
          const std::string what = label(*t, "gru H=" + std::to_string(H) + " batch=" +
                                                 std::to_string(batch) + " range=" +
                                                 std::to_string(range));
          // Tolerance for unit j of row b, given the wanted value.
          const auto tol = [&](size_t b, size_t j) {
            double a = std::fabs(hd[b * H + j]);
            for (size_t g = 0; g < 3; ++g)
              a = std::max(
                  {a, std::fabs(gid[b * g3 + g * H + j]), std::fabs(ghd[b * g3 + g * H + j])});
            return 4 * kEps * (1 + a) * (1 + a) * (1 + std::fabs(dhd[b * H + j]));
          };
          std::vector<float> h_out(batch * H);
          std::vector<double> h_want(batch * H);
          t->gru_gates_forward(gi.data(), gh.data(), h.data(), h_out.data(), batch, H);
          ref::gru_gates_forward<double>(gid.data(), ghd.data(), hd.data(), h_want.data(), batch,
                                         H);
          CHECK(all_close(what + " h'", h_out.data(), h_want.data(), batch * H,
                          [&](size_t i) { return tol(i / H, i % H); }));

          std::vector<float> dgi(batch * g3), dgh(batch * g3), dh(batch * H);
          std::vector<double> dgi_w(batch * g3), dgh_w(batch * g3), dh_w(batch * H);
          t->gru_gates_backward(gi.data(), gh.data(), h.data(), dh_out.data(), dgi.data(),
                                dgh.data(), dh.data(), batch, H);
          ref::gru_gates_backward<double>(gid.data(), ghd.data(), hd.data(), dhd.data(),
                                          dgi_w.data(), dgh_w.data(), dh_w.data(), batch, H);
          const auto gate_tol = [&](size_t i) { return tol(i / g3, i % H); };
          CHECK(all_close(what + " d_gi", dgi.data(), dgi_w.data(), batch * g3, gate_tol));
          CHECK(all_close(what + " d_gh", dgh.data(), dgh_w.data(), batch * g3, gate_tol));
          CHECK(all_close(what + " dh", dh.data(), dh_w.data(), batch * H,
                          [&](size_t i) { return tol(i / H, i % H); }));
        }
}

namespace {

struct AttentionCase {
  size_t tq, tk, d;
  bool causal;
  int bias;         // 0 none, 1 random in [-2, 2], 2 a ramp along the keys with some -inf
  float magnitude;  // q, k, v drawn from [-magnitude, magnitude]
  float scale;      // 0: 1 / sqrt(d)
};

std::string describe(const KernelTable& t, const AttentionCase& c) {
  return std::string(t.name) + " attention tq=" + std::to_string(c.tq) + " tk=" +
         std::to_string(c.tk) + " d=" + std::to_string(c.d) + " causal=" +
         std::to_string(c.causal) + " bias=" + std::to_string(c.bias) + " magnitude=" +
         std::to_string(c.magnitude);
}

std::vector<AttentionCase> attention_cases(size_t lanes) {
  std::vector<AttentionCase> out;
  std::set<size_t> ds{1, lanes - 1, lanes, lanes + 1, 32, 41};
  const size_t shapes[][3] = {  // tq, tk, causal
      {1, 1, 1},  {1, 9, 1},   {3, 3, 1},   {5, 12, 1}, {17, 34, 1},
      {4, 4, 1},  {7, 7, 0},   {6, 21, 0},  {1, 5, 0},  {9, 1, 0}};
  int i = 0;
  for (size_t d : ds)
    for (const auto& s : shapes) {
      out.push_back({s[0], s[1], d, s[2] != 0, i % 3, 1.0f, 0.0f});
      ++i;
    }
  // Segments longer than a key block (online softmax across blocks; the ramp bias raises the
  // running maximum block after block), decoding one query against a long cache, and large
  // scores.
  out.push_back({150, 300, 41, true, 2, 1.0f, 0.0f});
  out.push_back({150, 150, 32, true, 0, 1.0f, 0.0f});
  out.push_back({70, 140, 41, false, 1, 1.0f, 0.0f});
  out.push_back({1, 300, 41, true, 2, 1.0f, 0.0f});
  out.push_back({35, 70, 41, true, 1, 1.0f, 0.0f});
  out.push_back({17, 34, 41, true, 2, 4.0f, 1.0f});
  out.push_back({16, 200, 32, false, 0, 3.0f, 1.0f});
  return out;
}

}  // namespace

// Attention forward and backward against ref<double>. With s_ij the score, sabs_ij =
// |scale| sum_c |q_ic k_jc| + |bias_ij| bounds it and its rounding error is within
// (d + 4) eps sabs_ij; p_ij = exp(s_ij - lse_i) then has relative error
// eps e_ij, e_ij = (d + 4) sabs_ij + 2 |lse_i| + 16 (the shift by the running max included).
//   out_ic: eps sum_j p_ij (|v_jc| + |out_ic|) (e_ij + nk_i) (nk_i: the sequential P V sum);
//   lse_i: eps (max_j e_ij + nk_i / W + 2W + 16 + |lse_i|).
// Backward (out, lse: the forward's, rounded to float, given to both), with dp_ij = dout_i . v_j
// and delta_i = dout_i . out_i: ds_ij = p_ij (dp_ij - delta_i) is within eps E_ij,
// E_ij = p_ij (e_ij |dp_ij - delta_i| + (d + 4) sum_c (|dout_ic v_jc| + |dout_ic out_ic|)); then
//   dq_ic: 2 eps |scale| sum_j (E_ij + (nk_i + 8) |ds_ij|) |k_jc|,
//   dk_jc: 2 eps |scale| sum_i (E_ij + (tq + 8) |ds_ij|) |q_ic|,
//   dv_jc: 2 eps sum_i p_ij (e_ij + tq) |dout_ic|,   dbias_ij: 2 eps (E_ij + 8 |ds_ij|);
// all plus 1e-30. Masked keys (causal, -inf bias) contribute nothing.
TEST_CASE("simd kernels: attention forward and backward, all ISAs, causal with prefix keys") {
  std::mt19937 rng(151);
  for (const KernelTable* t : runnable_isas())
    for (const AttentionCase& c : attention_cases(t->lanes)) {
      const std::string what = describe(*t, c);
      const size_t tq = c.tq, tk = c.tk, d = c.d;
      const AttentionShape shape{tq, tk, d, c.causal};
      const float scale = c.scale != 0.0f ? c.scale : 1.0f / std::sqrt(float(d));
      const std::vector<float> q = uniform(rng, tq * d, -c.magnitude, c.magnitude),
                               k = uniform(rng, tk * d, -c.magnitude, c.magnitude),
                               v = uniform(rng, tk * d, -c.magnitude, c.magnitude);
      std::vector<float> bias;
      if (c.bias == 1) bias = uniform(rng, tq * tk, -2.0f, 2.0f);
      if (c.bias == 2) {
        bias = uniform(rng, tq * tk, -0.5f, 0.5f);
        for (size_t i = 0; i < tq; ++i)
          for (size_t j = 0; j < tk; ++j) {
            bias[i * tk + j] += 0.05f * float(j);
            if (j % 7 == 3) bias[i * tk + j] = -kInfF;
          }
      }
      const float* bp = bias.empty() ? nullptr : bias.data();
      const std::vector<double> qd = upcast(q), kd = upcast(k), vd = upcast(v), bd = upcast(bias);
      const double* bdp = bias.empty() ? nullptr : bd.data();

      std::vector<float> out(tq * d), lse(tq);
      std::vector<double> out_w(tq * d), lse_w(tq);
      t->attention_forward(q.data(), k.data(), v.data(), bp, out.data(), lse.data(), shape, scale);
      ref::attention_forward<double>(qd.data(), kd.data(), vd.data(), bdp, out_w.data(),
                                     lse_w.data(), shape, scale);

      // Per (i, j): visibility, p (from the given lse), e_ij, and the score bound.
      const auto visible = [&](size_t i) {
        return c.causal ? std::min(tk, i + 1 + (tk - tq)) : tk;
      };
      const auto sabs = [&](size_t i, size_t j) {
        double s = 0;
        for (size_t x = 0; x < d; ++x) s += std::fabs(qd[i * d + x] * kd[j * d + x]);
        return std::fabs(double(scale)) * s + (bdp ? std::fabs(bdp[i * tk + j]) : 0.0);
      };
      const auto score = [&](size_t i, size_t j) {
        double s = 0;
        for (size_t x = 0; x < d; ++x) s += qd[i * d + x] * kd[j * d + x];
        return s * scale + (bdp ? bdp[i * tk + j] : 0.0);
      };
      std::vector<double> p(tq * tk, 0.0), e(tq * tk, 0.0);
      for (size_t i = 0; i < tq; ++i)
        for (size_t j = 0; j < visible(i); ++j) {
          p[i * tk + j] = std::exp(score(i, j) - lse_w[i]);
          if (p[i * tk + j] > 0)
            e[i * tk + j] = double(d + 4) * sabs(i, j) + 2 * std::fabs(lse_w[i]) + 16;
        }
      CHECK(all_close(what + " out", out.data(), out_w.data(), tq * d, [&](size_t at) {
        const size_t i = at / d, x = at % d;
        double tol = 1e-30;
        for (size_t j = 0; j < visible(i); ++j)
          if (p[i * tk + j] > 0)
            tol += kEps * p[i * tk + j] * (std::fabs(vd[j * d + x]) + std::fabs(out_w[at])) *
                   (e[i * tk + j] + double(visible(i)));
        return tol;
      }));
      CHECK(all_close(what + " lse", lse.data(), lse_w.data(), tq, [&](size_t i) {
        double e_max = 0;
        for (size_t j = 0; j < visible(i); ++j) e_max = std::max(e_max, e[i * tk + j]);
        return kEps * (e_max + depth(visible(i), t->lanes) + 16 + std::fabs(lse_w[i]));
      }));

      // Backward.
      const std::vector<float> out_in = downcast(out_w), lse_in = downcast(lse_w);
      const std::vector<float> dout = uniform(rng, tq * d, -1.0f, 1.0f);
      const std::vector<double> out_d = upcast(out_in), lse_d = upcast(lse_in), dod = upcast(dout);
      for (bool with_dbias : {false, true}) {
        std::vector<float> dq(tq * d, 1.0f), dk(tk * d, 1.0f), dv(tk * d, 1.0f),
            dbias(tq * tk, 1.0f);
        std::vector<double> dq_w(tq * d), dk_w(tk * d), dv_w(tk * d), dbias_w(tq * tk);
        t->attention_backward(q.data(), k.data(), v.data(), bp, out_in.data(), lse_in.data(),
                              dout.data(), dq.data(), dk.data(), dv.data(),
                              with_dbias ? dbias.data() : nullptr, shape, scale);
        ref::attention_backward<double>(qd.data(), kd.data(), vd.data(), bdp, out_d.data(),
                                        lse_d.data(), dod.data(), dq_w.data(), dk_w.data(),
                                        dv_w.data(), dbias_w.data(), shape, scale);
        // p, ds and E from the given (float) out and lse.
        std::vector<double> pb(tq * tk, 0.0), ds(tq * tk, 0.0), big_e(tq * tk, 0.0);
        for (size_t i = 0; i < tq; ++i) {
          double delta = 0, oabs = 0;
          for (size_t x = 0; x < d; ++x) {
            delta += dod[i * d + x] * out_d[i * d + x];
            oabs += std::fabs(dod[i * d + x] * out_d[i * d + x]);
          }
          for (size_t j = 0; j < visible(i); ++j) {
            const double pij = std::exp(score(i, j) - lse_d[i]);
            if (!(pij > 0)) continue;
            double dp = 0, gabs = 0;
            for (size_t x = 0; x < d; ++x) {
              dp += dod[i * d + x] * vd[j * d + x];
              gabs += std::fabs(dod[i * d + x] * vd[j * d + x]);
            }
            const size_t at = i * tk + j;
            pb[at] = pij;
            ds[at] = pij * (dp - delta);
            big_e[at] = pij * (e[at] * std::fabs(dp - delta) + double(d + 4) * (gabs + oabs));
          }
        }
        const double sc = std::fabs(double(scale));
        CHECK(all_close(what + " dq", dq.data(), dq_w.data(), tq * d, [&](size_t at) {
          const size_t i = at / d, x = at % d;
          double tol = 1e-30;
          for (size_t j = 0; j < visible(i); ++j)
            tol += 2 * kEps * sc *
                   (big_e[i * tk + j] + double(visible(i) + 8) * std::fabs(ds[i * tk + j])) *
                   std::fabs(kd[j * d + x]);
          return tol;
        }));
        CHECK(all_close(what + " dk", dk.data(), dk_w.data(), tk * d, [&](size_t at) {
          const size_t j = at / d, x = at % d;
          double tol = 1e-30;
          for (size_t i = 0; i < tq; ++i)
            tol += 2 * kEps * sc *
                   (big_e[i * tk + j] + double(tq + 8) * std::fabs(ds[i * tk + j])) *
                   std::fabs(qd[i * d + x]);
          return tol;
        }));
        CHECK(all_close(what + " dv", dv.data(), dv_w.data(), tk * d, [&](size_t at) {
          const size_t j = at / d, x = at % d;
          double tol = 1e-30;
          for (size_t i = 0; i < tq; ++i)
            tol += 2 * kEps * pb[i * tk + j] * (e[i * tk + j] + double(tq)) *
                   std::fabs(dod[i * d + x]);
          return tol;
        }));
        if (with_dbias)
          CHECK(all_close(what + " dbias", dbias.data(), dbias_w.data(), tq * tk, [&](size_t at) {
            return 2 * kEps * (big_e[at] + 8 * std::fabs(ds[at])) + 1e-30;
          }));
      }
    }
}

// Adam and AdamW against ref<double> (AdamStep's fields are floats, shared by both):
// m within 4 eps (b1 |m0| + (1 - b1) |g|), v within 4 eps (b2 v0 + (1 - b2) g^2), with g the
// gradient plus wd p for L2; param within 4 eps |p| (1 + lr wd) + 16 eps lr |update|.
TEST_CASE("simd kernels: adam update, all ISAs") {
  std::mt19937 rng(157);
  for (const KernelTable* t : runnable_isas())
    for (size_t n : sizes_for(t->lanes, {1000}))
      for (bool decoupled : {false, true}) {
        crt::kernels::AdamStep s{};
        s.lr = 1e-3f;
        s.beta1 = 0.9f;
        s.beta2 = 0.999f;
        s.eps = 1e-8f;
        s.weight_decay = 0.01f;
        s.bc1 = 1.0f - std::pow(0.9f, 3.0f);
        s.bc2 = 1.0f - std::pow(0.999f, 3.0f);
        s.decoupled = decoupled;
        std::vector<float> p = uniform(rng, n, -1.0f, 1.0f), g = uniform(rng, n, -1.0f, 1.0f),
                           m = uniform(rng, n, -0.1f, 0.1f), v = uniform(rng, n, 0.0f, 0.01f);
        g[0] = 0.0f;  // with m = v = 0: update 0 / (0 + eps)
        m[0] = 0.0f;
        v[0] = 0.0f;
        std::vector<double> pw = upcast(p), gw = upcast(g), mw = upcast(m), vw = upcast(v);
        const std::vector<double> p0 = pw, m0 = mw, v0 = vw;
        t->adam_update(p.data(), g.data(), m.data(), v.data(), n, s);
        ref::adam_update<double>(pw.data(), gw.data(), mw.data(), vw.data(), n, s);
        const std::string what = label(*t, "adam n=" + std::to_string(n) + " decoupled=" +
                                               std::to_string(decoupled));
        const double b1 = s.beta1, b2 = s.beta2, lr = s.lr, wd = s.weight_decay;
        const auto grad = [&](size_t i) { return gw[i] + (decoupled ? 0.0 : wd * p0[i]); };
        CHECK(all_close(what + " m", m.data(), mw.data(), n, [&](size_t i) {
          return 4 * kEps * (b1 * std::fabs(m0[i]) + (1 - b1) * std::fabs(grad(i))) + 1e-30;
        }));
        CHECK(all_close(what + " v", v.data(), vw.data(), n, [&](size_t i) {
          return 4 * kEps * (b2 * v0[i] + (1 - b2) * grad(i) * grad(i)) + 1e-30;
        }));
        CHECK(all_close(what + " param", p.data(), pw.data(), n, [&](size_t i) {
          const double update =
              (mw[i] / double(s.bc1)) / (std::sqrt(vw[i] / double(s.bc2)) + double(s.eps));
          return 4 * kEps * std::fabs(p0[i]) * (1 + lr * wd) + 16 * kEps * lr * std::fabs(update);
        }));
      }
}

// The float entry points run the active ISA's table (kernels.cpp routes them there).
TEST_CASE("simd kernels: float entry points use the active ISA") {
  const KernelTable& active = crt::kernels::active_kernels();
  std::mt19937 rng(163);
  const size_t rows = 5, cols = 3 * active.lanes + 5;
  const std::vector<float> x = uniform(rng, rows * cols, -5.0f, 5.0f);
  std::vector<float> a(rows * cols), b(rows * cols);
  crt::kernels::softmax_rows(x.data(), a.data(), rows, cols);
  active.softmax_rows(x.data(), b.data(), rows, cols);
  CHECK(all_equal("softmax_rows entry point", a.data(), b.data(), rows * cols));
  crt::kernels::unary(UnaryOp::gelu, x.data(), a.data(), rows * cols);
  active.unary(UnaryOp::gelu, x.data(), b.data(), rows * cols);
  CHECK(all_equal("gelu entry point", a.data(), b.data(), rows * cols));
  for (const KernelTable& t : crt::kernels::isa_tables()) {  // every table is filled in
    CAPTURE(t.name);
    CHECK((t.binary && t.binary_scalar_right && t.binary_scalar_left && t.unary &&
           t.unary_backward && t.axpy && t.sum_squares && t.sum_rows && t.sum_cols &&
           t.softmax_rows && t.softmax_backward_rows && t.log_softmax_rows &&
           t.log_softmax_backward_rows && t.cross_entropy_forward && t.cross_entropy_backward &&
           t.layernorm_forward && t.layernorm_backward && t.gru_gates_forward &&
           t.gru_gates_backward && t.attention_forward && t.attention_backward &&
           t.modrelu_forward && t.modrelu_backward && t.adam_update));
  }
}
