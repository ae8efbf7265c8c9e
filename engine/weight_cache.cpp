// The inference cache of transposed weights (see weight_cache.hpp).
#include "engine/weight_cache.hpp"

#include "engine/autograd.hpp"
#include "kernels/kernels.hpp"

#include <map>
#include <mutex>
#include <tuple>

namespace crt {
namespace {

// One copy per (kind of copy, storage, offset, shape, strides): two views of one storage never
// share one. Kinds: 0 the transpose, else 1 + the panel width of gemv panels.
using Key = std::tuple<std::int64_t, std::uint64_t, std::int64_t, std::vector<std::int64_t>>;

struct Entry {
  std::weak_ptr<Storage> source;  // expired once the weight is gone: the entry is dropped
  std::uint64_t version = 0;
  Tensor copy;
};

// At every new copy the entries whose weights are gone are dropped; above this many bytes of
// copies the whole cache is (the next calls rebuild what is still in use).
constexpr std::int64_t kMaxBytes = std::int64_t(1) << 30;

struct Cache {
  std::mutex mutex;
  std::map<Key, Entry> entries;
  std::int64_t bytes = 0, hits = 0, misses = 0;

  void prune() {
    for (auto it = entries.begin(); it != entries.end();) {
      if (it->second.source.expired()) {
        bytes -= it->second.copy.numel() * std::int64_t(dtype_size(it->second.copy.dtype()));
        it = entries.erase(it);
      } else {
        ++it;
      }
    }
    if (bytes > kMaxBytes) {
      entries.clear();
      bytes = 0;
    }
  }
};

Cache& cache() {
  static Cache c;
  return c;
}

Key key_of(const Tensor& w, std::int64_t kind) {
  std::vector<std::int64_t> dims;
  for (int i = 0; i < w.dim(); ++i) {
    dims.push_back(w.size(i));
    dims.push_back(w.strides()[i]);
  }
  return {kind, w.impl().storage->id(), w.offset(), std::move(dims)};
}

// The cached result of make(w) for this kind, made again when w's storage has been written.
template <class Make>
Tensor cached(const Tensor& w, std::int64_t kind, Make make) {
  const std::shared_ptr<Storage>& storage = w.impl().storage;
  const std::uint64_t version = storage->version();
  Cache& c = cache();
  const Key key = key_of(w, kind);
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.entries.find(key);
    if (it != c.entries.end() && it->second.version == version) {
      ++c.hits;
      return it->second.copy;
    }
  }
  // Made outside the lock; a concurrent miss on the same key makes the same copy twice.
  const Tensor copy = make();
  const std::int64_t bytes = copy.numel() * std::int64_t(dtype_size(copy.dtype()));
  std::lock_guard<std::mutex> lock(c.mutex);
  ++c.misses;
  auto [it, inserted] = c.entries.try_emplace(key);
  if (!inserted) c.bytes -= it->second.copy.numel() * std::int64_t(dtype_size(it->second.copy.dtype()));
  it->second = Entry{storage, version, copy};
  c.bytes += bytes;
  c.prune();
  return copy;
}

}  // namespace

namespace {
// Inference (gradients off) with a 2-D parameter big enough for a copy to pay.
bool cacheable_weight(const Tensor& w) {
  return !grad_enabled() && w.dim() == 2 && w.requires_grad() && w.numel() >= (1 << 14);
}
}  // namespace

bool use_weight_cache_rows(std::int64_t rows, const Tensor& w) {
  return rows >= 5 && rows <= 512 && cacheable_weight(w);
}

bool use_gemv_panels(std::int64_t rows, const Tensor& w) {
  return rows == 1 && cacheable_weight(w);
}

std::size_t gemv_panel_for(DType dtype) {
  return dtype == DType::f32 ? kernels::gemv_panel_rows() : 4;
}

Tensor cached_transpose(const Tensor& w) {
  require(w.defined() && w.dim() == 2, "cached_transpose", "needs a 2-D weight, got ",
          w.describe());
  return cached(w, 0, [&] { return w.detach().transpose(0, 1).contiguous(); });
}

Tensor cached_gemv_panels(const Tensor& w, std::int64_t blocks, std::size_t panel) {
  require(w.defined() && w.dim() == 2 && blocks >= 1 && w.size(0) % blocks == 0 && panel >= 1,
          "cached_gemv_panels", "needs a 2-D weight of `blocks` equal row blocks, got ",
          w.describe(), " in ", blocks, " blocks");
  return cached(w, 1 + std::int64_t(panel) * 16 + blocks, [&] {
    const Tensor wc = w.detach().contiguous();
    const std::int64_t rows = w.size(0) / blocks, k = w.size(1);
    const std::size_t block = kernels::gemv_packed_size(std::size_t(rows), std::size_t(k), panel);
    Tensor out = Tensor::empty({std::int64_t(block) * blocks}, w.dtype());
    for (std::int64_t g = 0; g < blocks; ++g) {
      if (w.dtype() == DType::f32)
        kernels::gemv_pack(wc.data<float>() + g * rows * k, std::size_t(k), std::size_t(rows),
                           std::size_t(k), panel, out.data<float>() + std::size_t(g) * block);
      else
        kernels::gemv_pack(wc.data<double>() + g * rows * k, std::size_t(k), std::size_t(rows),
                           std::size_t(k), panel, out.data<double>() + std::size_t(g) * block);
    }
    return out;
  });
}

WeightCacheStats weight_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return {std::int64_t(c.entries.size()), c.bytes, c.hits, c.misses};
}

void clear_weight_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.entries.clear();
  c.bytes = c.hits = c.misses = 0;
}

}  // namespace crt
