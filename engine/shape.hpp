// Shape: a small fixed-capacity list of extents (rank <= kMaxRank), also used for strides.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <vector>

#include "engine/error.hpp"

namespace crt {

inline constexpr int kMaxRank = 6;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) { assign(dims.begin(), dims.end()); }
  explicit Shape(const std::vector<std::int64_t>& dims) { assign(dims.begin(), dims.end()); }

  int rank() const { return rank_; }
  std::int64_t operator[](int i) const { return dims_[static_cast<std::size_t>(i)]; }
  std::int64_t& operator[](int i) { return dims_[static_cast<std::size_t>(i)]; }
  // Axis from the back: back(1) is the last extent.
  std::int64_t back(int from_end = 1) const { return dims_[std::size_t(rank_ - from_end)]; }
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[std::size_t(i)];
    return n;
  }
  void push_back(std::int64_t d) {
    require(rank_ < kMaxRank, "Shape", "rank above the maximum of ", kMaxRank);
    dims_[std::size_t(rank_++)] = d;
  }
  void erase(int axis) {
    for (int i = axis; i + 1 < rank_; ++i) dims_[std::size_t(i)] = dims_[std::size_t(i + 1)];
    --rank_;
  }
  void insert(int axis, std::int64_t d) {
    require(rank_ < kMaxRank, "Shape", "rank above the maximum of ", kMaxRank);
    for (int i = rank_; i > axis; --i) dims_[std::size_t(i)] = dims_[std::size_t(i - 1)];
    dims_[std::size_t(axis)] = d;
    ++rank_;
  }
  std::vector<std::int64_t> to_vector() const {
    return std::vector<std::int64_t>(dims_.begin(), dims_.begin() + rank_);
  }
  const std::int64_t* begin() const { return dims_.data(); }
  const std::int64_t* end() const { return dims_.data() + rank_; }

  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.dims_[std::size_t(i)] != b.dims_[std::size_t(i)]) return false;
    return true;
  }
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) {
    os << '[';
    for (int i = 0; i < s.rank_; ++i) os << (i ? ", " : "") << s.dims_[std::size_t(i)];
    return os << ']';
  }

 private:
  template <class It>
  void assign(It first, It last) {
    for (; first != last; ++first) push_back(*first);
  }
  std::array<std::int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

// Row-major (C-order) strides for a shape.
inline Shape contiguous_strides(const Shape& shape) {
  Shape strides = shape;
  std::int64_t s = 1;
  for (int i = shape.rank() - 1; i >= 0; --i) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

}  // namespace crt
