// Dense linear algebra in double, outside autograd, for algorithms that need more than the
// differentiable ops: the NCGRU's orthogonal update (the inverse of I + A and its products).
// Threaded over fixed chunks of rows, so results do not depend on the thread count.
#pragma once

#include "engine/tensor.hpp"

namespace crt {

// a: [m, k], b: [k, n] (f32 or f64, any layout) -> f64 [m, n], computed in double with the
// blocked f64 kernel (the f64 matmul op runs the unblocked scalar reference, meant for checks).
Tensor matmul_f64(const Tensor& a, const Tensor& b);

// Inverse of a square matrix m: [n, n] (f32 or f64) by Gauss-Jordan elimination with partial
// pivoting, computed in double. -> f64 [n, n]. Throws crt::Error on a singular matrix or one
// with non-finite entries.
Tensor gauss_jordan_inverse(const Tensor& m);

}  // namespace crt
