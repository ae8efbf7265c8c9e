// oneTBB behind parallel_for (see parallel.hpp).
#include "engine/parallel.hpp"

#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>

#include <algorithm>
#include <memory>
#include <mutex>

#include "engine/error.hpp"

namespace crt {

namespace {
std::mutex g_control_mutex;
std::unique_ptr<tbb::global_control> g_control;
int g_threads = 0;
}  // namespace

void set_num_threads(int n) {
  require(n >= 0, "set_num_threads", "thread count must be >= 0, got ", n);
  std::lock_guard<std::mutex> lock(g_control_mutex);
  g_control.reset();
  g_threads = n;
  if (n > 0)
    g_control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                      std::size_t(n));
}

int num_threads() {
  std::lock_guard<std::mutex> lock(g_control_mutex);
  return g_threads > 0 ? g_threads : int(tbb::info::default_concurrency());
}

namespace {

// Runs fn over fixed `grain`-sized chunks of [begin, end) through the given partitioner.
template <class Partitioner>
void run_chunks(std::int64_t begin, std::int64_t end, std::int64_t grain,
                const std::function<void(std::int64_t, std::int64_t)>& fn,
                const Partitioner& partitioner) {
  const std::int64_t chunks = (end - begin + grain - 1) / grain;
  tbb::parallel_for(
      tbb::blocked_range<std::int64_t>(0, chunks, 1),
      [&](const tbb::blocked_range<std::int64_t>& r) {
        for (std::int64_t c = r.begin(); c != r.end(); ++c)
          fn(begin + c * grain, std::min(end, begin + (c + 1) * grain));
      },
      partitioner);
}

}  // namespace

void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (end <= begin) return;
  grain = std::max<std::int64_t>(1, grain);
  if (end - begin <= grain) {
    fn(begin, end);
    return;
  }
  // simple_partitioner splits down to exactly `grain`-sized pieces, independent of threads.
  run_chunks(begin, end, grain, fn, tbb::simple_partitioner());
}

void parallel_for_static(std::int64_t begin, std::int64_t end, std::int64_t grain,
                         const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (end <= begin) return;
  grain = std::max<std::int64_t>(1, grain);
  if (end - begin <= grain || num_threads() == 1) {
    for (std::int64_t lo = begin; lo < end; lo += grain) fn(lo, std::min(end, lo + grain));
    return;
  }
  run_chunks(begin, end, grain, fn, tbb::static_partitioner());
}

}  // namespace crt
