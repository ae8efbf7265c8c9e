// Builds one KernelTable per ISA variant in isa_list and picks the one the float kernels use
// (see dispatch.hpp). Baseline flags: this file only takes addresses of the per-ISA
// instantiations and never touches xsimd::batch.
#include "kernels/dispatch.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/isa.hpp"
#include "kernels/simd_kernels.hpp"

namespace crt::kernels {
namespace {

// The CRT_MAX_ISA spelling of each arch tag.
template <class Arch>
constexpr const char* cap_name_of() {
#if defined(__x86_64__)
  if constexpr (std::is_same_v<Arch, xsimd::avx512bw>) return "avx512";
  if constexpr (std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>>) return "avx2";
  if constexpr (std::is_same_v<Arch, xsimd::sse2>) return "sse2";
#elif defined(__aarch64__)
  if constexpr (std::is_same_v<Arch, xsimd::neon64>) return "neon64";
#endif
  return Arch::name();
}

// xsimd 8.1 reads cpuid only; the compiler's feature test also checks that the OS saves the
// wider registers (XCR0), so a variant must pass both.
template <class Arch>
bool cpu_runs() {
  if (Arch::version() > xsimd::available_architectures().best) return false;
#if defined(__x86_64__)
  if constexpr (std::is_same_v<Arch, xsimd::avx512bw>)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
  if constexpr (std::is_same_v<Arch, xsimd::fma3<xsimd::avx2>>)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return true;
}

// Baseline-compiled entry point that calls the explicit instantiation in Arch's library.
template <class Arch>
void gemm_entry(bool ta, bool tb, std::size_t m, std::size_t n, std::size_t k, float alpha,
                const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta,
                float* c, std::size_t ldc) {
  Gemm{}(Arch{}, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// The explicit instantiations of kernels/simd_kernels.hpp in Arch's library (taking their
// addresses runs no code built for Arch).
template <class Arch>
void fill_simd_kernels(KernelTable& t) {
  t.binary = &simd::binary<Arch>;
  t.binary_scalar_right = &simd::binary_scalar_right<Arch>;
  t.binary_scalar_left = &simd::binary_scalar_left<Arch>;
  t.unary = &simd::unary<Arch>;
  t.unary_backward = &simd::unary_backward<Arch>;
  t.axpy = &simd::axpy<Arch>;
  t.dropout_apply = &simd::dropout_apply<Arch>;
  t.sum_squares = &simd::sum_squares<Arch>;
  t.sum_rows = &simd::sum_rows<Arch>;
  t.sum_cols = &simd::sum_cols<Arch>;
  t.softmax_rows = &simd::softmax_rows<Arch>;
  t.softmax_backward_rows = &simd::softmax_backward_rows<Arch>;
  t.log_softmax_rows = &simd::log_softmax_rows<Arch>;
  t.log_softmax_backward_rows = &simd::log_softmax_backward_rows<Arch>;
  t.cross_entropy_forward = &simd::cross_entropy_forward<Arch>;
  t.cross_entropy_backward = &simd::cross_entropy_backward<Arch>;
  t.layernorm_forward = &simd::layernorm_forward<Arch>;
  t.layernorm_backward = &simd::layernorm_backward<Arch>;
  t.gemv_packed = &simd::gemv_packed<Arch>;
  t.gemm_f64_accumulate = &simd::gemm_f64_accumulate<Arch>;
  t.gru_gates_forward = &simd::gru_gates_forward<Arch>;
  t.gru_gates_backward = &simd::gru_gates_backward<Arch>;
  t.attention_forward = &simd::attention_forward<Arch>;
  t.attention_backward = &simd::attention_backward<Arch>;
  t.modrelu_forward = &simd::modrelu_forward<Arch>;
  t.modrelu_backward = &simd::modrelu_backward<Arch>;
  t.adam_update = &simd::adam_update<Arch>;
}

template <class Arch>
KernelTable make_table() {
  KernelTable t{};
  t.name = Arch::name();
  t.cap_name = cap_name_of<Arch>();
  t.version = Arch::version();
  t.runnable = cpu_runs<Arch>();
  t.lanes = Arch::alignment() / sizeof(float);
  if (t.runnable) {  // the query runs code built for Arch: only where the CPU has it
    const GemmTile tile = GemmTileOf{}(Arch{});
    t.gemm_mr = tile.mr;
    t.gemm_nr = tile.nr;
    t.gemm_kc = tile.kc;
  }
  t.gemm = &gemm_entry<Arch>;
  fill_simd_kernels<Arch>(t);
  return t;
}

template <class... Archs>
auto make_tables(xsimd::arch_list<Archs...>) {
  return std::array<KernelTable, sizeof...(Archs)>{make_table<Archs>()...};
}

const auto& tables() {
  static const auto all = make_tables(isa_list{});
  return all;
}

}  // namespace

std::span<const KernelTable> isa_tables() { return {tables().data(), tables().size()}; }

const KernelTable* find_isa(std::string_view name) {
  for (const KernelTable& t : tables())
    if (name == t.cap_name || name == t.name) return &t;
  return nullptr;
}

const KernelTable& select_isa(std::string_view max_isa) {
  unsigned cap = ~0u;
  if (!max_isa.empty()) {
    const KernelTable* named = find_isa(max_isa);
    if (named == nullptr) {
      std::string known;
      for (const KernelTable& t : tables()) known += std::string(known.empty() ? "" : ", ") + t.cap_name;
      throw std::runtime_error("CRT_MAX_ISA=" + std::string(max_isa) +
                               " names no ISA compiled for this target (known: " + known + ")");
    }
    cap = named->version;
  }
  for (const KernelTable& t : tables())
    if (t.runnable && t.version <= cap) return t;
  return tables().back();  // the baseline always runs
}

const KernelTable& active_kernels() {
  static const KernelTable& chosen = []() -> const KernelTable& {
    const char* env = std::getenv("CRT_MAX_ISA");
    try {
      return select_isa(env != nullptr ? env : "");
    } catch (const std::runtime_error& e) {
      std::fprintf(stderr, "crt: %s; ignoring it\n", e.what());
      return select_isa("");
    }
  }();
  return chosen;
}

}  // namespace crt::kernels
