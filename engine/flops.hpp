// The engine's FLOP tally: ops that do multiply-adds (matmul, attention, GRU cell) add what
// they actually ran, counting a multiply-add as 2 FLOPs. Process-wide, thread-safe.
#pragma once

#include <cstdint>

namespace crt {

void count_flops(std::int64_t flops);
std::int64_t flop_count();
void reset_flop_count();

}  // namespace crt
