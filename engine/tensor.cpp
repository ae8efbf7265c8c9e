// Tensor storage, creation, element access, views and their gradients.
#include "engine/tensor.hpp"
#include "engine/weight_cache.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <mutex>
#include <numeric>
#include <unordered_map>
#include <sstream>

#include "engine/autograd.hpp"
#include "engine/ops.hpp"
#include "engine/strided.hpp"

namespace crt {

// ---- storage ---------------------------------------------------------------------------

namespace {
std::atomic<std::int64_t> g_current_bytes{0};
std::atomic<std::int64_t> g_peak_bytes{0};
std::atomic<std::int64_t> g_allocations{0};
constexpr std::size_t kAlignment = 64;

// Freed buffers are kept for reuse, keyed by their rounded size: a training step allocates
// the same shapes every time, and returning them to the system costs page faults on every
// step (large blocks are mmap'ed). The cache is bounded; anything beyond goes back to free().
class BufferCache {
 public:
  static constexpr std::size_t kMaxCachedBytes = std::size_t(1) << 30;
  void* take(std::size_t rounded) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(rounded);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    cached_bytes_ -= rounded;
    return p;
  }
  void give(void* p, std::size_t rounded) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_bytes_ + rounded <= kMaxCachedBytes) {
        free_[rounded].push_back(p);
        cached_bytes_ += rounded;
        return;
      }
    }
    std::free(p);
  }
  void release_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [size, list] : free_)
      for (void* p : list) std::free(p);
    free_.clear();
    cached_bytes_ = 0;
  }
  std::size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_bytes_;
  }
  ~BufferCache() { release_all(); }

 private:
  std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::size_t cached_bytes_ = 0;
};

BufferCache& buffer_cache() {
  static BufferCache* cache = new BufferCache();  // never destroyed: storages may outlive statics
  return *cache;
}

std::size_t rounded_size(std::size_t bytes) {
  // 64-byte granularity up to 4 KiB, then 4 KiB pages: few distinct keys, little waste.
  const std::size_t unit = bytes <= 4096 ? kAlignment : 4096;
  return std::max<std::size_t>(kAlignment, (bytes + unit - 1) / unit * unit);
}
}  // namespace

namespace {
std::atomic<std::uint64_t> g_next_storage_id{1};
}  // namespace

Storage::Storage(std::size_t bytes)
    : bytes_(bytes), id_(g_next_storage_id.fetch_add(1, std::memory_order_relaxed)) {
  const std::size_t rounded = rounded_size(bytes);
  data_ = buffer_cache().take(rounded);
  if (!data_) data_ = std::aligned_alloc(kAlignment, rounded);
  if (!data_) throw std::bad_alloc();
  const std::int64_t now = g_current_bytes.fetch_add(std::int64_t(bytes)) + std::int64_t(bytes);
  std::int64_t peak = g_peak_bytes.load();
  while (now > peak && !g_peak_bytes.compare_exchange_weak(peak, now)) {
  }
  g_allocations.fetch_add(1);
}

Storage::~Storage() {
  buffer_cache().give(data_, rounded_size(bytes_));
  g_current_bytes.fetch_sub(std::int64_t(bytes_));
}

void release_cached_memory() {
  clear_weight_cache();
  buffer_cache().release_all();
}

MemoryStats memory_stats() {
  return {g_current_bytes.load(), g_peak_bytes.load(), g_allocations.load()};
}
void reset_peak_memory() { g_peak_bytes.store(g_current_bytes.load()); }

const char* dtype_name(DType d) { return d == DType::f32 ? "f32" : "f64"; }

// ---- creation --------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (int i = 0; i < shape.rank(); ++i)
    require(shape[i] >= 0, "Tensor::empty", "negative extent in shape ", shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(std::size_t(shape.numel()) * dtype_size(dtype));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.impl().storage->data(), 0, std::size_t(shape.numel()) * dtype_size(dtype));
  return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill_(value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype) { return full(Shape{}, value, dtype); }

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape) {
  require(std::int64_t(values.size()) == shape.numel(), "Tensor::from_vector", "got ",
          values.size(), " values for shape ", shape, " (", shape.numel(), " elements)");
  Tensor t = empty(shape, DType::f32);
  std::copy(values.begin(), values.end(), t.data<float>());
  return t;
}

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape) {
  require(std::int64_t(values.size()) == shape.numel(), "Tensor::from_vector", "got ",
          values.size(), " values for shape ", shape, " (", shape.numel(), " elements)");
  Tensor t = empty(shape, DType::f64);
  std::copy(values.begin(), values.end(), t.data<double>());
  return t;
}

Tensor Tensor::arange(std::int64_t n, DType dtype) {
  Tensor t = empty(Shape{n}, dtype);
  for (std::int64_t i = 0; i < n; ++i) t.set({i}, double(i));
  return t;
}

// ---- metadata and access ---------------------------------------------------------------

TensorImpl& Tensor::impl() const {
  require(impl_ != nullptr, "Tensor", "use of an undefined tensor");
  return *impl_;
}

static int normalize_axis(int axis, int rank, const char* op) {
  const int a = axis < 0 ? axis + rank : axis;
  require(a >= 0 && a < rank, op, "axis ", axis, " out of range for rank ", rank);
  return a;
}

std::int64_t Tensor::size(int axis) const {
  return shape()[normalize_axis(axis, dim(), "Tensor::size")];
}

bool Tensor::is_contiguous() const {
  std::int64_t expected = 1;
  for (int i = dim() - 1; i >= 0; --i) {
    if (shape()[i] != 1 && strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

bool Tensor::shares_storage_with(const Tensor& other) const {
  return defined() && other.defined() && impl().storage == other.impl().storage;
}

TensorDescription Tensor::describe() const {
  if (!defined()) return {};
  return {true, dtype(), shape()};
}

std::ostream& operator<<(std::ostream& os, const TensorDescription& d) {
  if (!d.defined) return os << "undefined";
  return os << dtype_name(d.dtype) << d.shape;
}

std::string TensorDescription::str() const {
  std::ostringstream os;
  os << *this;
  return os.str();
}

template <class T>
T* Tensor::data() const {
  require(dtype() == dtype_of<T>(), "Tensor::data", "requested ", dtype_name(dtype_of<T>()),
          " from a ", describe(), " tensor");
  return static_cast<T*>(impl().storage->data()) + impl().offset;
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;

static std::int64_t element_offset(const Tensor& t, std::initializer_list<std::int64_t> index,
                                   const char* op) {
  // Checked with plain ifs: describe() builds strings and must only run on failure.
  if (int(index.size()) != t.dim())
    throw Error(format_error(op, "index of rank ", index.size(), " for tensor ", t.describe()));
  std::int64_t off = t.offset();
  int i = 0;
  for (std::int64_t v : index) {
    if (v < 0 || v >= t.shape()[i])
      throw Error(format_error(op, "index ", v, " out of range for axis ", i, " of tensor ",
                               t.describe()));
    off += v * t.strides()[i];
    ++i;
  }
  return off;
}

double Tensor::at(std::initializer_list<std::int64_t> index) const {
  const std::int64_t off = element_offset(*this, index, "Tensor::at");
  if (dtype() == DType::f32) return static_cast<const float*>(impl().storage->data())[off];
  return static_cast<const double*>(impl().storage->data())[off];
}

void Tensor::set(std::initializer_list<std::int64_t> index, double value) {
  const std::int64_t off = element_offset(*this, index, "Tensor::set");
  if (dtype() == DType::f32)
    static_cast<float*>(impl().storage->data())[off] = float(value);
  else
    static_cast<double*>(impl().storage->data())[off] = value;
  bump_version();
}

std::uint64_t Tensor::version() const { return impl().storage->version(); }
void Tensor::bump_version() const { impl().storage->bump_version(); }

double Tensor::item() const {
  require(numel() == 1, "Tensor::item", "needs exactly one element, got ", describe());
  Tensor c = contiguous();
  return dtype() == DType::f32 ? double(*c.data<float>()) : *c.data<double>();
}

std::vector<double> Tensor::to_vector() const {
  Tensor c = to(DType::f64);
  const double* p = c.data<double>();
  return std::vector<double>(p, p + numel());
}

std::vector<float> Tensor::to_float_vector() const {
  Tensor c = dtype() == DType::f32 ? contiguous() : to(DType::f32);
  const float* p = c.data<float>();
  return std::vector<float>(p, p + numel());
}

// ---- data writes -----------------------------------------------------------------------

static void require_writable(const Tensor& t, const char* op) {
  require(!(t.requires_grad() && grad_enabled()), op,
          "in-place write to a tensor that requires grad (", t.describe(),
          "); wrap it in NoGradGuard or detach() it first");
}

Tensor& Tensor::fill_(double value) {
  require_writable(*this, "Tensor::fill_");
  strided_fill(*this, value);
  bump_version();
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  require_writable(*this, "Tensor::copy_");
  require(src.shape() == shape(), "Tensor::copy_", "source shape ", src.shape(),
          " differs from destination shape ", shape());
  strided_copy(src, *this);
  bump_version();
  return *this;
}

Tensor Tensor::to(DType target) const {
  Tensor out = empty(shape(), target);
  strided_copy(*this, out);
  return out;
}

// ---- views -----------------------------------------------------------------------------

Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides,
                 std::int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl().storage;
  impl->offset = offset;
  impl->shape = shape;
  impl->strides = strides;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

// Strides for viewing `t` as `target` without copying, if possible (NumPy's rule: each
// group of merged/split axes must be contiguous within itself).
static bool view_strides(const Tensor& t, const Shape& target, Shape& out) {
  const Shape& s = t.shape();
  const Shape& st = t.strides();
  out = target;
  if (t.numel() == 0) {
    out = contiguous_strides(target);
    return true;
  }
  int i = 0, j = 0;  // old axis, new axis
  const int n = s.rank(), m = target.rank();
  while (i < n || j < m) {
    // skip extent-1 axes on both sides
    if (j < m && target[j] == 1) {
      out[j] = 1;
      ++j;
      continue;
    }
    if (i < n && s[i] == 1) {
      ++i;
      continue;
    }
    if (i >= n || j >= m) return false;
    std::int64_t old_size = s[i], new_size = target[j];
    int i_end = i, j_end = j;
    while (old_size != new_size) {
      if (old_size < new_size) {
        if (++i_end >= n) return false;
        old_size *= s[i_end];
      } else {
        if (++j_end >= m) return false;
        new_size *= target[j_end];
      }
    }
    // The old axes i..i_end must be contiguous among themselves (extent-1 axes aside).
    std::int64_t expect = -1, stride = 1;
    for (int a = i_end; a >= i; --a) {
      if (s[a] == 1) continue;
      if (expect == -1) stride = st[a];
      else if (st[a] != expect) return false;
      expect = st[a] * s[a];
    }
    for (int b = j_end; b >= j; --b) {
      out[b] = stride;
      stride *= target[b];
    }
    i = i_end + 1;
    j = j_end + 1;
  }
  return true;
}

static Shape infer_shape(const Shape& requested, std::int64_t numel, const char* op,
                         const Shape& from) {
  Shape shape = requested;
  int infer = -1;
  std::int64_t known = 1;
  for (int i = 0; i < shape.rank(); ++i) {
    if (shape[i] == -1) {
      require(infer < 0, op, "more than one -1 in shape ", requested);
      infer = i;
    } else {
      require(shape[i] >= 0, op, "negative extent in shape ", requested);
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    require(known > 0 && numel % known == 0, op, "cannot infer -1 in ", requested, " from ",
            from, " (", numel, " elements)");
    shape[infer] = numel / known;
  }
  require(shape.numel() == numel, op, "cannot reshape ", from, " (", numel, " elements) to ",
          requested);
  return shape;
}

// Records the backward of a view op: its gradient is reshaped/permuted back by `back`.
static void record_view(Tensor& out, const Tensor& in, const char* name,
                        std::function<Tensor(const Tensor&)> back) {
  if (!should_record({&in})) return;
  record_node(out, name, {in},
              [back = std::move(back)](const Tensor& g, const NeedsGrad&) -> std::vector<Tensor> {
                return {back(g)};
              });
}

Tensor Tensor::view(const Shape& requested) const {
  const Shape shape = infer_shape(requested, numel(), "Tensor::view", this->shape());
  Shape strides;
  require(view_strides(*this, shape, strides), "Tensor::view", "tensor ", describe(),
          " with strides ", this->strides(), " cannot be viewed as ", shape,
          " without a copy; use reshape()");
  Tensor out = make_view(*this, shape, strides, offset());
  const Shape in_shape = this->shape();
  record_view(out, *this, "view", [in_shape](const Tensor& g) { return g.reshape(in_shape); });
  return out;
}

Tensor Tensor::reshape(const Shape& requested) const {
  const Shape shape = infer_shape(requested, numel(), "Tensor::reshape", this->shape());
  Shape strides;
  if (view_strides(*this, shape, strides)) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::transpose(int a, int b) const {
  std::vector<int> order(static_cast<std::size_t>(dim()));
  std::iota(order.begin(), order.end(), 0);
  a = normalize_axis(a, dim(), "Tensor::transpose");
  b = normalize_axis(b, dim(), "Tensor::transpose");
  std::swap(order[std::size_t(a)], order[std::size_t(b)]);
  return permute(order);
}

Tensor Tensor::permute(const std::vector<int>& order) const {
  require(int(order.size()) == dim(), "Tensor::permute", "order of length ", order.size(),
          " for tensor ", describe());
  Shape shape, strides;
  std::vector<bool> seen(static_cast<std::size_t>(dim()), false);
  std::vector<int> inverse(static_cast<std::size_t>(dim()));
  for (std::size_t i = 0; i < order.size(); ++i) {
    const int a = normalize_axis(order[i], dim(), "Tensor::permute");
    require(!seen[std::size_t(a)], "Tensor::permute", "axis ", a, " repeated in the order");
    seen[std::size_t(a)] = true;
    inverse[std::size_t(a)] = int(i);
    shape.push_back(this->shape()[a]);
    strides.push_back(this->strides()[a]);
  }
  Tensor out = make_view(*this, shape, strides, offset());
  record_view(out, *this, "permute", [inverse](const Tensor& g) { return g.permute(inverse); });
  return out;
}

Tensor Tensor::slice(int axis, std::int64_t start, std::int64_t stop, std::int64_t step) const {
  axis = normalize_axis(axis, dim(), "Tensor::slice");
  const std::int64_t n = shape()[axis];
  require(step > 0, "Tensor::slice", "step must be positive, got ", step);
  if (start < 0) start += n;
  if (stop < 0) stop += n;
  stop = std::min(stop, n);
  require(start >= 0 && start <= stop, "Tensor::slice", "range [", start, ", ", stop,
          ") invalid for axis ", axis, " of extent ", n, " in ", describe());
  Shape shape = this->shape(), strides = this->strides();
  shape[axis] = (stop - start + step - 1) / step;
  strides[axis] *= step;
  Tensor out = make_view(*this, shape, strides, offset() + start * this->strides()[axis]);
  const Shape in_shape = this->shape();
  const DType dt = dtype();
  record_view(out, *this, "slice", [=](const Tensor& g) {
    Tensor full = Tensor::zeros(in_shape, dt);
    NoGradGuard ng;
    full.slice(axis, start, stop, step).copy_(g);
    return full;
  });
  // out is a fresh view: a node on it is the slice node just recorded. Once the input's
  // gradient has begun, the backward pass adds this slice's part into it in place instead.
  if (Node* node = recorded_node(out))
    node->add_into = [=](const Tensor& g, const Tensor& acc) {
      NoGradGuard ng;
      Tensor region = acc.slice(axis, start, stop, step);
      region.copy_(add(region, g));
    };
  return out;
}

Tensor Tensor::narrow(int axis, std::int64_t start, std::int64_t length) const {
  require(length >= 0, "Tensor::narrow", "negative length ", length);
  axis = normalize_axis(axis, dim(), "Tensor::narrow");
  require(start >= 0 && start + length <= shape()[axis], "Tensor::narrow", "[", start, ", ",
          start + length, ") out of range for axis ", axis, " of ", describe());
  return slice(axis, start, start + length);
}

Tensor Tensor::unsqueeze(int axis) const {
  const int a = normalize_axis(axis, dim() + 1, "Tensor::unsqueeze");
  Shape shape = this->shape();
  shape.insert(a, 1);
  return view(shape);
}

Tensor Tensor::squeeze(int axis) const {
  const int a = normalize_axis(axis, dim(), "Tensor::squeeze");
  require(shape()[a] == 1, "Tensor::squeeze", "axis ", a, " has extent ", shape()[a],
          ", not 1, in ", describe());
  Shape shape = this->shape();
  shape.erase(a);
  return view(shape);
}

Tensor Tensor::expand(const Shape& target) const {
  require(target.rank() >= dim(), "Tensor::expand", "cannot expand ", describe(), " to ",
          target);
  Shape strides = target;
  const int lead = target.rank() - dim();
  for (int i = 0; i < target.rank(); ++i) {
    if (i < lead) {
      strides[i] = 0;
      continue;
    }
    const std::int64_t e = shape()[i - lead];
    require(e == target[i] || e == 1, "Tensor::expand", "cannot expand ", describe(), " to ",
            target);
    strides[i] = e == target[i] ? this->strides()[i - lead] : 0;
  }
  Tensor out = make_view(*this, target, strides, offset());
  const Shape in_shape = shape();
  record_view(out, *this, "expand", [in_shape](const Tensor& g) { return sum_to(g, in_shape); });
  return out;
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype());
  strided_copy(*this, out);
  record_view(out, *this, "clone", [](const Tensor& g) { return g; });
  return out;
}

// ---- autograd surface ------------------------------------------------------------------

Tensor& Tensor::set_requires_grad(bool on) {
  require(is_leaf(), "Tensor::set_requires_grad",
          "only leaf tensors can change requires_grad; use detach() for a non-leaf");
  impl().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  return impl().grad ? Tensor(impl().grad) : Tensor();
}

void Tensor::zero_grad() { impl().grad.reset(); }

void Tensor::set_grad(const Tensor& g) {
  if (!g.defined()) {
    impl().grad.reset();
    return;
  }
  require(g.shape() == shape() && g.dtype() == dtype(), "Tensor::set_grad", "gradient ",
          g.describe(), " does not match tensor ", describe());
  impl().grad = g.impl_ptr();
}

void Tensor::backward(const Tensor& seed, bool retain_graph) const {
  run_backward(*this, seed, retain_graph);
}

Tensor Tensor::detach() const {
  return make_view(*this, shape(), strides(), offset());
}

}  // namespace crt
