// crt measurements of one grid point (see runner.hpp).
#include "bench/suite/runner.hpp"

#include <malloc.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <fstream>

#include "crt/flops.hpp"
#include "crt/model.hpp"
#include "crt/trainer.hpp"
#include "datasets/batch_stream.hpp"
#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "engine/flops.hpp"
#include "engine/parallel.hpp"
#include "engine/tensor.hpp"

namespace crt::bench {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// True once enough timed repetitions are in: all of them, or at least 3 that used the budget.
bool timing_done(const std::vector<double>& ms, std::int64_t reps, const RunOptions& o) {
  if (std::int64_t(ms.size()) >= reps) return true;
  double total = 0;
  for (double v : ms) total += v;
  return ms.size() >= 3 && total >= o.max_run_seconds * 1e3;
}

// Inputs and targets of inference segment i (batch 1).
struct InferSegment {
  std::vector<std::int32_t> ids, targets;
};
InferSegment infer_segment(const std::vector<std::int32_t>& tokens, std::int64_t seg, std::int64_t i) {
  const auto begin = tokens.begin() + i * seg;
  return {std::vector<std::int32_t>(begin, begin + seg),
          std::vector<std::int32_t>(begin + 1, begin + seg + 1)};
}

model::SegmentWork loss_work(const model::ModelConfig& c, std::int64_t batch, std::int64_t tokens,
                             std::int64_t cached, const std::vector<std::int32_t>& targets) {
  model::SegmentWork w;
  w.batch = batch;
  w.tokens = tokens;
  w.cached = c.memory == model::MemoryKind::cache ? cached : 0;
  w.output.tail_rows = model::tail_rows(c, targets);
  return w;
}

// The segments of training step `step` (0-based) from a fresh stream, as the trainer sees them.
std::vector<model::SegmentWork> train_step_work(const model::ModelConfig& c,
                                                const std::vector<std::int32_t>& tokens,
                                                const RunOptions& o, std::int64_t step,
                                                std::int64_t* replay_tokens = nullptr) {
  data::BatchStream stream(tokens, int(o.train_batch));
  std::int64_t seen = 0;
  std::vector<model::SegmentWork> work;
  for (std::int64_t s = 0; s <= step; ++s) {
    if (replay_tokens) *replay_tokens = work.empty() ? 0 : work.back().tokens;
    work.clear();
    for (std::int64_t k = 0; k < o.bptt; ++k) {
      const data::Segment next = stream.next(int(c.seg_len));
      work.push_back(loss_work(c, o.train_batch, next.len, std::min(c.mem_len, seen), next.targets));
      seen += next.len;
    }
  }
  return work;
}

// NCGRU A-updates per training step (outside the tally): the position RNN's and the memory
// RNN's (which gets a gradient every step, through the replayed memory update).
std::int64_t uncounted_per_step(const model::ModelConfig& c, const RunOptions& o) {
  if (c.memory != model::MemoryKind::rnn || c.rnn_cell != model::RnnCell::ncgru) return 0;
  const std::int64_t one = model::ncgru_update_flops(c.d_model, int(c.ncgru_neumann_order), false);
  (void)o;
  return one * 2;
}

std::int64_t param_bytes(const model::LanguageModel& m) {
  std::int64_t b = 0;
  for (const auto& [name, t] : m.parameters()) b += t.numel() * std::int64_t(dtype_size(t.dtype()));
  return b;
}

Record base_record(const BenchConfig& bc, const BenchModel& bm, const model::LanguageModel& m,
                   std::int64_t seg, int threads, const char* mode, std::int64_t batch) {
  Record r;
  r.model = bm.name;
  r.config = bc.name;
  r.mode = mode;
  r.layers = bc.layers;
  r.d_model = bc.d_model;
  r.vocab = bc.vocab;
  r.adaptive = !bc.cutoffs.empty();
  r.seg_len = seg;
  r.batch = batch;
  r.threads = threads;
  r.param_count = m.parameter_count();
  r.param_bytes = param_bytes(m);
  return r;
}

void finish(Record& r, std::vector<double> ms, std::int64_t tokens_per_run) {
  r.latency = latency_stats(std::move(ms));
  r.tokens_per_s = r.latency.median > 0 ? double(tokens_per_run) / (r.latency.median / 1e3) : 0;
  r.gflops_per_s = r.latency.median > 0 && r.flops_closed_form > 0
                       ? double(r.flops_closed_form) / (r.latency.median / 1e3) / 1e9
                       : 0;
  r.peak_rss_bytes = peak_rss_bytes();
  r.engine_peak_bytes = memory_stats().peak_bytes;
}

}  // namespace

std::int64_t infer_token_count(std::int64_t seg, const RunOptions& o) {
  return (o.infer_warmup + o.infer_reps) * seg + 1;
}

std::int64_t train_token_count(std::int64_t seg, const RunOptions& o, std::int64_t thread_runs) {
  const std::int64_t steps = (o.train_warmup + o.train_reps) * std::max<std::int64_t>(1, thread_runs);
  // Columns long enough that the trainer never wraps around (which would empty the memory).
  const std::int64_t column = seg * o.bptt * std::max<std::int64_t>(64, steps + 1) + 2;
  return column * o.train_batch;
}

std::int64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return std::int64_t(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

bool reset_peaks() {
  release_cached_memory();  // the engine's cache of freed buffers
  malloc_trim(0);
  reset_peak_memory();
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";  // resets the resident-set high-water mark (Linux >= 4.0)
  f.flush();
  return bool(f);
}

FlopRow flop_row(const BenchConfig& bc, const BenchModel& bm, std::int64_t seg, const RunOptions& o,
                 std::int64_t thread_runs) {
  const model::ModelConfig c = make_config(bc, bm, seg);
  FlopRow row;
  row.model = bm.name;
  row.config = bc.name;
  row.layers = bc.layers;
  row.d_model = bc.d_model;
  row.vocab = bc.vocab;
  row.seg_len = seg;
  row.train_batch = o.train_batch;
  row.bptt_segments = o.bptt;
  const std::vector<std::int32_t> tokens = zipf_tokens(infer_token_count(seg, o), bc.vocab, o.token_seed);
  const InferSegment s0 = infer_segment(tokens, seg, 0), s1 = infer_segment(tokens, seg, 1);
  model::SegmentWork first = loss_work(c, 1, seg, 0, s0.targets);
  first.memory_token = false;  // a stream's first segment: no CRT memory yet
  row.fwd_first_closed = model::forward_flops(c, first).total();
  row.fwd_closed =
      model::forward_flops(c, loss_work(c, 1, seg, std::min(c.mem_len, seg), s1.targets)).total();
  const std::vector<std::int32_t> train_tokens =
      zipf_tokens(train_token_count(seg, o, thread_runs), bc.vocab, o.token_seed);
  std::int64_t replay = 0;
  const auto work = train_step_work(c, train_tokens, o, 1, &replay);
  row.train_closed = model::train_step_flops(c, work, replay).total();
  row.train_uncounted = uncounted_per_step(c, o);
  return row;
}

void tally_forward(const BenchConfig& bc, const BenchModel& bm, const RunOptions& o,
                   const std::vector<FlopRow*>& rows) {
  if (rows.empty()) return;
  // One model for all the rows' segment lengths (building a large one takes seconds): with
  // seg_len = mem_len = the longest segment, segments 0 and 1 of a stream of T-token segments
  // see exactly what they see with mem_len = T (an empty cache, then the T cached positions),
  // so the tallies are those of the rows' own configurations.
  std::int64_t longest = 0;
  for (const FlopRow* r : rows) longest = std::max(longest, r->seg_len);
  const model::LanguageModel m(make_config(bc, bm, longest));
  NoGradGuard no_grad;
  for (FlopRow* r : rows) {
    const std::int64_t seg = r->seg_len;
    const std::vector<std::int32_t> tokens = zipf_tokens(infer_token_count(seg, o), bc.vocab, o.token_seed);
    const InferSegment s0 = infer_segment(tokens, seg, 0), s1 = infer_segment(tokens, seg, 1);
    model::StreamState state = m.initial_state(1);
    reset_flop_count();
    (void)m.loss(m.forward(s0.ids, 1, state, {}), s0.targets);
    r->fwd_first_counted = flop_count();
    reset_flop_count();
    (void)m.loss(m.forward(s1.ids, 1, state, {}), s1.targets);
    r->fwd_counted = flop_count();
  }
}

std::vector<Record> run_point(const BenchConfig& bc, const BenchModel& bm, std::int64_t seg,
                              const std::vector<int>& threads, bool infer, bool train,
                              const RunOptions& o, FlopRow& flops) {
  require(o.infer_warmup >= 2 && o.train_warmup >= 2 && o.infer_reps >= 1 && o.train_reps >= 1,
          "crt-bench", "warm-ups must be >= 2 and repetitions >= 1");
  const model::ModelConfig c = make_config(bc, bm, seg);
  std::vector<Record> out;
  model::LanguageModel m(c);

  if (infer) {
    const std::vector<std::int32_t> tokens = zipf_tokens(infer_token_count(seg, o), bc.vocab, o.token_seed);
    bool first_run = true;
    for (int t : threads) {
      set_num_threads(t);
      const bool rss_reset = reset_peaks();
      Record r = base_record(bc, bm, m, seg, t, "infer", 1);
      NoGradGuard no_grad;
      model::StreamState state = m.initial_state(1);
      std::vector<double> ms;
      std::int64_t seen = 0;
      for (std::int64_t i = 0; i < o.infer_warmup + o.infer_reps; ++i) {
        const InferSegment s = infer_segment(tokens, seg, i);
        const std::int64_t cached = std::min(c.mem_len, seen);
        reset_flop_count();
        const auto t0 = Clock::now();
        (void)m.loss(m.forward(s.ids, 1, state, {}), s.targets);
        const double elapsed = ms_since(t0);
        const std::int64_t counted = flop_count();
        if (i == 0 && first_run) flops.fwd_first_counted = counted;
        if (i == 1) {
          r.flops_closed_form = model::forward_flops(c, loss_work(c, 1, seg, cached, s.targets)).total();
          r.flops_counted = counted;
          r.cached = c.memory == model::MemoryKind::cache ? cached : 0;
          if (first_run) flops.fwd_counted = counted;
        }
        if (i >= o.infer_warmup) ms.push_back(elapsed);
        seen += seg;
        if (timing_done(ms, o.infer_reps, o)) break;
      }
      r.state_bytes = state.bytes();
      finish(r, std::move(ms), seg);
      if (!rss_reset) r.note = "peak RSS covers the whole process";
      out.push_back(r);
      first_run = false;
    }
  }

  if (train) {
    const auto thread_runs = std::int64_t(threads.size());
    const std::vector<std::int32_t> tokens =
        zipf_tokens(train_token_count(seg, o, thread_runs), bc.vocab, o.token_seed);
    model::TrainOptions topt;
    topt.steps = (o.train_warmup + o.train_reps) * thread_runs + 1;
    topt.batch = o.train_batch;
    topt.bptt_segments = o.bptt;
    topt.weight_decay = 0.01;
    model::Trainer trainer(m, tokens, topt);
    std::int64_t replay = 0;
    const auto steady_work = train_step_work(c, tokens, o, 1, &replay);
    const model::FlopCount steady = model::train_step_flops(c, steady_work, replay);
    const std::int64_t per_stream_state = [&] {
      NoGradGuard no_grad;  // the state one stream carries, from a batch-1 forward
      model::StreamState s = m.initial_state(1);
      const InferSegment seg0 = infer_segment(tokens, seg, 0);
      (void)m.forward(seg0.ids, 1, s, {});
      return s.bytes();
    }();
    std::int64_t step = 0;
    for (int t : threads) {
      set_num_threads(t);
      const bool rss_reset = reset_peaks();
      Record r = base_record(bc, bm, m, seg, t, "train", o.train_batch);
      r.bptt_segments = o.bptt;
      r.cached = c.memory == model::MemoryKind::cache ? c.mem_len : 0;
      r.flops_closed_form = steady.total();
      r.flops_uncounted = uncounted_per_step(c, o);
      std::vector<double> ms;
      for (std::int64_t i = 0; i < o.train_warmup + o.train_reps; ++i, ++step) {
        reset_flop_count();
        const auto t0 = Clock::now();
        (void)trainer.step();
        const double elapsed = ms_since(t0);
        if (step == 1) {
          flops.train_counted = flop_count();
          r.flops_counted = flop_count();
        }
        if (i >= o.train_warmup) ms.push_back(elapsed);
        if (timing_done(ms, o.train_reps, o)) break;  // (step 1 is always a warm-up step)
      }
      if (r.flops_counted < 0) r.flops_counted = flops.train_counted;  // tallied at step 1
      r.state_bytes = per_stream_state;
      finish(r, std::move(ms), o.train_batch * seg * o.bptt);
      if (!rss_reset) r.note = "peak RSS covers the whole process";
      out.push_back(r);
    }
  }
  set_num_threads(0);
  return out;
}

}  // namespace crt::bench
