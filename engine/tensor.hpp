// Tensor: a cheap handle to {shared 64-byte-aligned storage, offset, shape, strides in
// elements, dtype} plus autograd state. Views (reshape, transpose, permute, slice, narrow)
// share storage; contiguous() copies only when needed. float32 is the working type; float64
// exists so that gradient checks and kernel references can run in double precision.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/shape.hpp"

namespace crt {

enum class DType : std::uint8_t { f32, f64 };
const char* dtype_name(DType d);
inline std::size_t dtype_size(DType d) { return d == DType::f32 ? 4 : 8; }
template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::f32; }
template <>
constexpr DType dtype_of<double>() { return DType::f64; }

// Raw aligned buffer, shared by every view of it. Tracks the engine-wide allocation
// high-water mark (memory_stats()).
class Storage {
 public:
  explicit Storage(std::size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  // Unique for the life of the process (a freed buffer reused at the same address gets a new
  // id), and a counter of in-place writes: together they say whether data derived from this
  // storage earlier (engine/weight_cache.hpp) is still current.
  std::uint64_t id() const { return id_; }
  std::uint64_t version() const { return version_.load(std::memory_order_acquire); }
  void bump_version() { version_.fetch_add(1, std::memory_order_acq_rel); }

 private:
  void* data_;
  std::size_t bytes_;
  std::uint64_t id_;
  std::atomic<std::uint64_t> version_{0};
};

struct MemoryStats {
  std::int64_t current_bytes;  // bytes held by live storages now
  std::int64_t peak_bytes;     // high-water mark since the last reset_peak_memory()
  std::int64_t allocations;    // storages allocated since start
};
MemoryStats memory_stats();
void reset_peak_memory();
// Freed storage buffers are cached for reuse (bounded at 1 GiB); this returns them to the system
// and drops the inference copies of transposed weights (weight_cache.hpp).
void release_cached_memory();

struct Node;  // autograd graph node (autograd.hpp)
class Tensor;

// A tensor's dtype and shape for messages ("f32[2, 3]"). Holds no heap memory, so building
// one for a check that passes costs nothing; it is formatted only when streamed.
struct TensorDescription {
  bool defined = false;
  DType dtype = DType::f32;
  Shape shape;
  std::string str() const;
  friend std::ostream& operator<<(std::ostream& os, const TensorDescription& d);
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  std::int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;  // in elements
  DType dtype = DType::f32;
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;     // producer; null for leaves and for data
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient of a leaf
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation (contiguous, new storage) ----
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32);
  static Tensor ones(const Shape& shape, DType dtype = DType::f32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32);
  static Tensor scalar(double value, DType dtype = DType::f32);
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape);
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape);
  static Tensor arange(std::int64_t n, DType dtype = DType::f32);

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int dim() const { return impl().shape.rank(); }
  // Extent of an axis; negative axes count from the back.
  std::int64_t size(int axis) const;
  std::int64_t numel() const { return impl().shape.numel(); }
  std::int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  bool is_contiguous() const;
  bool shares_storage_with(const Tensor& other) const;
  TensorDescription describe() const;  // streams as "f32[2, 3]"

  // Typed pointer to the first element (offset applied). Throws on a dtype mismatch.
  // Code that writes through it into a tensor that lives on (a parameter) must call
  // bump_version() afterwards, as the engine's own in-place writers (fill_, copy_, set, the
  // optimisers) do: caches of data derived from a weight check the version.
  template <class T>
  T* data() const;
  std::uint64_t version() const;  // the storage's count of in-place writes
  void bump_version() const;
  // Element at a multi-index (slow; for tests and small reads).
  double at(std::initializer_list<std::int64_t> index) const;
  void set(std::initializer_list<std::int64_t> index, double value);
  double item() const;                        // the single element of a 1-element tensor
  std::vector<double> to_vector() const;      // all elements in row-major order
  std::vector<float> to_float_vector() const;

  // ---- views (share storage; recorded for autograd) ----
  Tensor reshape(const Shape& shape) const;  // one axis may be -1; copies if not viewable
  Tensor view(const Shape& shape) const;     // like reshape, but throws instead of copying
  Tensor transpose(int a, int b) const;
  Tensor permute(const std::vector<int>& order) const;
  Tensor slice(int axis, std::int64_t start, std::int64_t stop, std::int64_t step = 1) const;
  Tensor narrow(int axis, std::int64_t start, std::int64_t length) const;
  Tensor unsqueeze(int axis) const;
  Tensor squeeze(int axis) const;
  Tensor expand(const Shape& shape) const;  // broadcast view (stride 0), read-only use
  Tensor contiguous() const;                 // this when already contiguous, else a copy
  Tensor clone() const;                      // always a contiguous copy (keeps grad graph)
  Tensor to(DType dtype) const;              // conversion copy (not differentiable)

  // ---- in-place data writes (not recorded; refused on tensors that need grad) ----
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& src);  // same shape; src may be any layout or dtype

  // ---- autograd ----
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool on);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const;  // undefined until a backward reached this leaf
  void zero_grad();     // drops the accumulated gradient
  void set_grad(const Tensor& g);
  // Reverse-mode pass from this tensor. A non-scalar output needs an explicit seed.
  // retain_graph keeps the saved tensors so a second backward is possible.
  void backward(const Tensor& seed = Tensor(), bool retain_graph = false) const;
  // Same data, cut from the graph: no grad_fn, no requires_grad. O(1), shares storage.
  Tensor detach() const;
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }

  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// A new tensor viewing `base`'s storage with the given geometry (no autograd edge).
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides,
                 std::int64_t offset);

}  // namespace crt
