// Per-thread scratch memory for kernels that need workspace (GEMM packing buffers). Defined in
// a baseline source so that the per-ISA sources allocate nothing themselves (no std containers
// there: see Note [ISA objects] in kernels/isa.hpp).
#pragma once

#include <cstddef>

namespace crt::kernels {

// Distinct buffers that one kernel call may hold at the same time.
enum class ScratchSlot : unsigned { gemm_a = 0, gemm_b = 1, gemm_b_next = 2, count = 3 };

// A 64-byte-aligned buffer of at least `floats` floats owned by the calling thread, valid until
// the same thread asks for the same slot again. Contents are unspecified.
float* thread_scratch(ScratchSlot slot, std::size_t floats);

}  // namespace crt::kernels
