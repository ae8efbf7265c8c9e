// FLOP tally (see flops.hpp).
#include "engine/flops.hpp"

#include <atomic>

namespace crt {
namespace {
std::atomic<std::int64_t> g_flops{0};
}
void count_flops(std::int64_t flops) { g_flops.fetch_add(flops, std::memory_order_relaxed); }
std::int64_t flop_count() { return g_flops.load(std::memory_order_relaxed); }
void reset_flop_count() { g_flops.store(0, std::memory_order_relaxed); }
}  // namespace crt
