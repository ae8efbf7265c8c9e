// The xsimd arch tag of the ISA this translation unit is compiled for. Included ONLY by the
// per-ISA kernel sources (kernels/*_simd.cpp), which Meson builds once per ISA with that ISA's
// -m flags and -DCRT_KERNEL_ISA_<NAME>; see Note [ISA objects] in kernels/isa.hpp.
#pragma once

#include <xsimd/xsimd.hpp>

#include "kernels/isa.hpp"

#if defined(CRT_KERNEL_ISA_AVX512)
#include <immintrin.h>
#endif

namespace crt::kernels {

#if defined(CRT_KERNEL_ISA_AVX512)
using arch_t = xsimd::avx512bw;
#elif defined(CRT_KERNEL_ISA_AVX2)
using arch_t = xsimd::fma3<xsimd::avx2>;
#elif defined(CRT_KERNEL_ISA_SSE2)
using arch_t = xsimd::sse2;
#elif defined(CRT_KERNEL_ISA_NEON64)
using arch_t = xsimd::neon64;
#else
#error "kernels/arch.hpp: compile per-ISA sources with -DCRT_KERNEL_ISA_<NAME> (see kernels/meson.build)"
#endif

static_assert(arch_t::supported(), "the compiler flags do not enable this translation unit's ISA");
static_assert(isa_list::contains<arch_t>(), "arch_t is missing from isa_list");

// a * b + c as one fused multiply-add where the ISA has one. xsimd 8.1 has no AVX-512 fma
// kernel (it falls back to a * b + c, which -std=c++20 does not contract), hence the intrinsic.
template <class Arch>
inline xsimd::batch<float, Arch> madd(const xsimd::batch<float, Arch>& a,
                                      const xsimd::batch<float, Arch>& b,
                                      const xsimd::batch<float, Arch>& c) {
#if defined(CRT_KERNEL_ISA_AVX512)
  if constexpr (std::is_same_v<Arch, xsimd::avx512bw>) return _mm512_fmadd_ps(a, b, c);
#endif
  return xsimd::fma(a, b, c);
}

}  // namespace crt::kernels
