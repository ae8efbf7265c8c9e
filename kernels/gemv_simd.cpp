// GEMV against a weight packed in row panels (kernels.hpp, gemv_pack / gemv_packed), for the
// batch-1 steps of a recurrence: each panel of W rows (W = the vector width) is one contiguous
// stream of k vectors, multiplied by broadcasts of a and summed in four accumulators. Reading
// one stream lets the hardware prefetcher run at the cache's bandwidth; the unpacked dot
// products over W rows at once read W streams. Compiled once per ISA (Note [ISA objects]).
#include <cstddef>

#include "kernels/simd_kernels.hpp"
#include "kernels/simd_util.hpp"

namespace crt::kernels::simd {

template <class Arch>
void gemv_packed(const float* a, const float* packed, size_t n, size_t k, float beta, float* c) {
  using V = Vec<Arch>;
  constexpr size_t W = kLanes<Arch>, U = 4;
  for (size_t row0 = 0; row0 < n; row0 += W) {
    const float* panel = packed + row0 * k;  // panel row0 / W: k vectors of W rows
    V acc[U];
    for (size_t u = 0; u < U; ++u) acc[u] = V(0.0f);
    size_t p = 0;
    for (; p + U <= k; p += U)
      for (size_t u = 0; u < U; ++u)
        acc[u] = madd(V(a[p + u]), V::load_unaligned(panel + (p + u) * W), acc[u]);
    for (; p < k; ++p) acc[0] = madd(V(a[p]), V::load_unaligned(panel + p * W), acc[0]);
    V sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    const size_t rows = n - row0 < W ? n - row0 : W;
    if (rows == W) {
      if (beta != 0.0f) sum = madd(V(beta), V::load_unaligned(c + row0), sum);
      sum.store_unaligned(c + row0);
    } else {
      if (beta != 0.0f) sum = madd(V(beta), load_first<Arch>(c + row0, rows), sum);
      store_first<Arch>(sum, c + row0, rows);
    }
  }
}

template void gemv_packed<arch_t>(const float*, const float*, size_t, size_t, float, float*);

}  // namespace crt::kernels::simd
