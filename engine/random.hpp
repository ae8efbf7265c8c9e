// Seeded random numbers. Generator is counter-based (splitmix64 over seed + counter), so a
// stream of draws depends only on the seed and how many draws came before, never on thread
// count; element i of a random tensor is a pure function of (key, i).
#pragma once

#include <cstdint>

#include "engine/tensor.hpp"
#include "kernels/kernels.hpp"

namespace crt {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) : seed_(seed) {}
  std::uint64_t seed() const { return seed_; }
  std::uint64_t counter() const { return counter_; }
  // Restores a saved position (checkpoints store seed and counter).
  void set_state(std::uint64_t seed, std::uint64_t counter) {
    seed_ = seed;
    counter_ = counter;
  }
  std::uint64_t next_u64() { return hash(seed_, counter_++); }
  double uniform() { return to_unit(next_u64()); }  // [0, 1)
  double normal();                                   // standard normal (Box-Muller)

  // kernels::counter_hash (splitmix64's finaliser over a mix of key and index).
  static std::uint64_t hash(std::uint64_t key, std::uint64_t index) {
    return kernels::counter_hash(key, index);
  }
  static double to_unit(std::uint64_t bits) { return double(bits >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t seed_;
  std::uint64_t counter_ = 0;
};

// New contiguous tensors filled from gen (one key drawn per call).
Tensor uniform(const Shape& shape, double low, double high, Generator& gen,
               DType dtype = DType::f32);
Tensor normal(const Shape& shape, double mean, double stddev, Generator& gen,
              DType dtype = DType::f32);

}  // namespace crt
