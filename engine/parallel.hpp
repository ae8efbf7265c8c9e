// Threads live here and nowhere else. parallel_for splits [begin, end) into fixed chunks of
// at least `grain` items (chunk boundaries depend only on the range and grain, never on the
// number of threads), so results are identical at any thread count as long as each chunk
// writes its own outputs. Ranges below one grain run on the calling thread.
#pragma once

#include <cstdint>
#include <functional>

namespace crt {

void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& fn);

// The same fixed chunks, spread evenly over the threads with no load balancing and the same
// chunk -> thread assignment on every call (oneTBB's static_partitioner). For loops re-run over
// the same data, such as the steps of a recurrence reading the same weights: each core keeps
// reading its own slice, which stays in its own cache.
void parallel_for_static(std::int64_t begin, std::int64_t end, std::int64_t grain,
                         const std::function<void(std::int64_t, std::int64_t)>& fn);

// Caps the worker threads used by parallel_for (0 = the machine's default). Process-wide.
void set_num_threads(int n);
int num_threads();

}  // namespace crt
