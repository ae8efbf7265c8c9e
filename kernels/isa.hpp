// The per-ISA kernel variants: the list of ISAs compiled in and the kernel functors, whose call
// operator is a template on the xsimd arch tag. Declared here, defined and explicitly
// instantiated only in the per-ISA sources (kernels/*_simd.cpp). Dispatch and tests include this.
#pragma once

#include <cstddef>

#include <xsimd/xsimd.hpp>

// Note [ISA objects]
// Every kernels/*_simd.cpp is compiled once per ISA into its own static library, with that
// ISA's -m flags (kernels/meson.build); nothing else gets -m flags. Code in those sources is
// either a template on the arch tag (so each ISA's copy has its own mangled name) or has
// internal linkage: a weak (COMDAT) function emitted by two ISA objects would be merged by the
// linker into ONE copy, possibly the AVX-512 one, which baseline callers would then run. The
// ISA libraries are built with optimisation on even in debug builds so helpers inline, the
// baseline (sse2) library comes first in the link, and kernels/check_isa_objects.sh (a Meson
// test) fails on any stray weak symbol and checks each library's register width.
// In baseline translation units the arch tags are complete but xsimd::batch<float, avx2> is
// not: outside the ISA sources, take lane counts from Arch::alignment() / sizeof(float).

namespace crt::kernels {

#if defined(__x86_64__)
// Sorted by descending Arch::version(), as xsimd requires.
using isa_list = xsimd::arch_list<xsimd::avx512bw, xsimd::fma3<xsimd::avx2>, xsimd::sse2>;
#elif defined(__aarch64__)
using isa_list = xsimd::arch_list<xsimd::neon64>;
#else
#error "crt kernels: unsupported target (x86-64 and AArch64 only)"
#endif

// C[m,n] = alpha * op(A) op(B) + beta * C with the semantics of kernels::gemm (kernels.hpp).
struct Gemm {
  template <class Arch>
  void operator()(Arch, bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                  float alpha, const float* a, std::size_t lda, const float* b, std::size_t ldb,
                  float beta, float* c, std::size_t ldc) const;
};

// Register-tile shape of the GEMM microkernel, for tests that probe the edges.
struct GemmTile {
  std::size_t mr, nr, kc;
};
struct GemmTileOf {
  template <class Arch>
  GemmTile operator()(Arch) const;
};

}  // namespace crt::kernels
