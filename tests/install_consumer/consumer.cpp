// A program outside the source tree that uses the installed crt engine through pkg-config:
//   c++ -std=c++20 consumer.cpp $(pkg-config --cflags --libs crt-engine)
// It checks one gradient against its closed form and prints it; exits non-zero if wrong.
#include <cmath>
#include <cstdio>

#include "engine/engine.hpp"

int main() {
  // a: [2, 3], b: [3, 2]; loss = sum(a @ b), so dloss/da[i][k] = sum_j b[k][j].
  crt::Tensor a = crt::Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  crt::Tensor b = crt::Tensor::from_vector(std::vector<float>{0.5f, -1, 2, 0.25f, -3, 1}, {3, 2});
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  crt::Tensor loss = crt::sum(crt::matmul(a, b));
  loss.backward();

  const std::vector<double> grad_a = a.grad().to_vector();
  const double expected_row[3] = {-0.5, 2.25, -2.0};
  bool ok = grad_a.size() == 6;
  for (std::size_t i = 0; ok && i < 6; ++i) ok = std::fabs(grad_a[i] - expected_row[i % 3]) < 1e-6;

  std::printf("loss %.4f grad_a[0] %.4f %.4f %.4f %s\n", loss.item(), grad_a.at(0), grad_a.at(1),
              grad_a.at(2), ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
