// Per-thread, grow-only, 64-byte-aligned scratch buffers (see scratch.hpp). Baseline flags.
#include "kernels/scratch.hpp"

#include <array>
#include <cstdlib>
#include <memory>
#include <new>

namespace crt::kernels {
namespace {

struct FreeDeleter {
  void operator()(float* p) const noexcept { std::free(p); }
};

struct Buffer {
  std::unique_ptr<float, FreeDeleter> data;
  std::size_t capacity = 0;  // floats
};

}  // namespace

float* thread_scratch(ScratchSlot slot, std::size_t floats) {
  thread_local std::array<Buffer, static_cast<std::size_t>(ScratchSlot::count)> buffers;
  Buffer& buf = buffers[static_cast<std::size_t>(slot)];
  if (buf.capacity < floats) {
    // Grow geometrically, rounded to whole cache lines.
    std::size_t want = floats > 2 * buf.capacity ? floats : 2 * buf.capacity;
    want = (want + 15) / 16 * 16;
    buf.data.reset();
    buf.capacity = 0;
    void* p = std::aligned_alloc(64, want * sizeof(float));
    if (p == nullptr) throw std::bad_alloc();
    buf.data.reset(static_cast<float*>(p));
    buf.capacity = want;
  }
  return buf.data.get();
}

}  // namespace crt::kernels
