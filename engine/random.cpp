// Counter-based random numbers (see random.hpp).
#include "engine/random.hpp"

#include <cmath>

namespace crt {

double Generator::normal() {
  const double u1 = 1.0 - uniform();  // (0, 1]
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

namespace {
template <class T, class Fn>
Tensor fill_random(const Shape& shape, DType dtype, Fn&& value_at) {
  Tensor t = Tensor::empty(shape, dtype);
  T* p = t.data<T>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = T(value_at(std::uint64_t(i)));
  return t;
}
}  // namespace

Tensor uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype) {
  const std::uint64_t key = gen.next_u64();
  auto value = [&](std::uint64_t i) {
    return low + (high - low) * Generator::to_unit(Generator::hash(key, i));
  };
  return dtype == DType::f32 ? fill_random<float>(shape, dtype, value)
                             : fill_random<double>(shape, dtype, value);
}

Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen, DType dtype) {
  const std::uint64_t key = gen.next_u64();
  auto value = [&](std::uint64_t i) {
    const double u1 = 1.0 - Generator::to_unit(Generator::hash(key, 2 * i));
    const double u2 = Generator::to_unit(Generator::hash(key, 2 * i + 1));
    return mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  };
  return dtype == DType::f32 ? fill_random<float>(shape, dtype, value)
                             : fill_random<double>(shape, dtype, value);
}

}  // namespace crt
