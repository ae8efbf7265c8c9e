// The closed-form FLOP counts (crt/flops.hpp) against the engine's tally of the ops each model
// actually ran: forward per segment (XL cache empty and full, full and adaptive softmax, batch 1
// and > 1) and whole training steps (one and two BPTT segments), for every model kind.
#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "crt/flops.hpp"
#include "crt/model.hpp"
#include "crt/trainer.hpp"
#include "datasets/batch_stream.hpp"
#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "engine/flops.hpp"

using namespace crt;
using namespace crt::model;

namespace {

// Small widths with unequal d_model, attention width and d_inner, so that a wrong factor shows.
ModelConfig small(ModelKind kind, std::int64_t vocab, bool adaptive) {
  ModelConfig c = preset(kind, 2, 12, 2, 20, vocab);
  c.d_head = 5;  // attention width 10 != d_model
  c.seg_len = 6;
  c.mem_len = 4;  // < seg_len: the cache keeps only part of a segment
  if (adaptive) c.adaptive_cutoffs = {vocab / 4, vocab / 2};
  return c;
}

struct Named {
  std::string name;
  ModelConfig config;
};

std::vector<Named> all_models(std::int64_t vocab, bool adaptive) {
  std::vector<Named> out;
  out.push_back({"transformer", small(ModelKind::transformer, vocab, adaptive)});
  out.push_back({"xl", small(ModelKind::transformer_xl, vocab, adaptive)});
  out.push_back({"crt-gru", small(ModelKind::crt, vocab, adaptive)});
  ModelConfig nc = small(ModelKind::crt, vocab, adaptive);
  nc.rnn_cell = RnnCell::ncgru;
  out.push_back({"crt-ncgru", nc});
  ModelConfig rel = small(ModelKind::transformer, vocab, adaptive);  // relative, no cache
  rel.position = PositionEncoding::relative;
  out.push_back({"transformer-relative", rel});
  ModelConfig pre = small(ModelKind::transformer_xl, vocab, adaptive);
  pre.pre_ln = true;
  out.push_back({"xl-pre-ln", pre});
  ModelConfig carry = small(ModelKind::crt, vocab, adaptive);
  carry.pos_rnn_carry = true;
  carry.pos_rnn_residual = true;
  out.push_back({"crt-carry", carry});
  return out;
}

std::vector<std::int32_t> random_tokens(std::int64_t n, std::int64_t vocab, std::uint64_t seed) {
  Generator g(seed);
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (auto& v : t) v = std::int32_t(g.next_u64() % std::uint64_t(vocab));
  return t;
}

std::int64_t tally(const std::function<void()>& run) {
  reset_flop_count();
  run();
  return flop_count();
}

}  // namespace

TEST_CASE("closed form: the worked example of flops.hpp, by hand") {
  ModelConfig c = preset(ModelKind::transformer, 2, 16, 2, 24, 23);
  c.seg_len = 5;
  SegmentWork seg;
  seg.tokens = 5;
  // Per layer: qkv 2*5*16*48, attention 4*16*(5*6/2), output 2*5*16*16, FF 4*5*16*24.
  const std::int64_t layer = 2 * 5 * 16 * 48 + 4 * 16 * 15 + 2 * 5 * 16 * 16 + 4 * 5 * 16 * 24;
  const std::int64_t output = 2 * 5 * 23 * 16;
  CHECK(forward_flops(c, seg).total() == 2 * layer + output);
  CHECK(train_step_flops(c, {seg}).total() == 3 * (2 * layer + output));
  // And the engine agrees.
  LanguageModel m(c, 1);
  const auto ids = random_tokens(5, 23, 1), targets = random_tokens(5, 23, 2);
  const std::int64_t counted = tally([&] {
    NoGradGuard ng;
    StreamState s = m.initial_state(1);
    (void)m.loss(m.forward(ids, 1, s, {}), targets);
  });
  CHECK(counted == 2 * layer + output);
}

TEST_CASE("forward: closed form == engine tally for every model, segment length and batch") {
  const std::int64_t vocab = 40;
  for (bool adaptive : {false, true})
    for (const Named& named : all_models(vocab, adaptive))
      for (std::int64_t batch : {1, 3})
        for (std::int64_t t : {1, 3, 6}) {
          CAPTURE(named.name);
          CAPTURE(adaptive);
          CAPTURE(batch);
          CAPTURE(t);
          const ModelConfig& c = named.config;
          LanguageModel m(c, 7);
          StreamState state = m.initial_state(batch);
          std::int64_t seen = 0;
          // Three segments: the XL cache is empty, then partly or fully filled (mem_len 4).
          for (int s = 0; s < 3; ++s) {
            const auto ids = random_tokens(batch * t, vocab, 10 + std::uint64_t(s));
            const auto targets = random_tokens(batch * t, vocab, 20 + std::uint64_t(s));
            SegmentWork seg;
            seg.batch = batch;
            seg.tokens = t;
            seg.cached = c.memory == MemoryKind::cache ? std::min(c.mem_len, seen) : 0;
            seg.memory_token = seen > 0;
            seg.output.tail_rows = tail_rows(c, targets);
            const bool log_probs = s == 2;  // last segment: the full distribution instead
            if (log_probs) seg.output.kind = OutputWork::Kind::log_probs;
            const std::int64_t counted = tally([&] {
              NoGradGuard ng;
              const Tensor h = m.forward(ids, batch, state, {});
              if (log_probs) (void)m.log_probs(h);
              else (void)m.loss(h, targets);
            });
            CHECK(counted == forward_flops(c, seg).total());
            seen += t;
          }
        }
}

TEST_CASE("training step: closed form == engine tally (Trainer::step, 1 and 2 BPTT segments)") {
  const std::int64_t vocab = 40;
  for (bool adaptive : {false, true})
    for (const Named& named : all_models(vocab, adaptive))
      for (std::int64_t batch : {1, 2})
        for (std::int64_t bptt : {1, 2}) {
          CAPTURE(named.name);
          CAPTURE(adaptive);
          CAPTURE(batch);
          CAPTURE(bptt);
          ModelConfig c = named.config;
          c.seg_len = 5;
          LanguageModel m(c, 3);
          const auto data = random_tokens(400, vocab, 5);
          TrainOptions o;
          o.steps = 10;
          o.batch = batch;
          o.bptt_segments = bptt;
          Trainer trainer(m, data, o);
          data::BatchStream shadow(data, int(batch));  // the segments the trainer will read
          std::int64_t seen = 0, replay = 0;
          for (int step = 0; step < 2; ++step) {  // step 0: XL cache empty; step 1: full
            std::vector<SegmentWork> segments;
            for (std::int64_t s = 0; s < bptt; ++s) {
              const data::Segment next = shadow.next(int(c.seg_len));
              SegmentWork seg;
              seg.batch = batch;
              seg.tokens = next.len;
              seg.cached = c.memory == MemoryKind::cache ? std::min(c.mem_len, seen) : 0;
              seg.memory_token = seen > 0;
              seg.output.tail_rows = tail_rows(c, next.targets);
              segments.push_back(seg);
              seen += next.len;
            }
            const std::int64_t counted = tally([&] { (void)trainer.step(); });
            // From step 1 on, CRT replays the previous segment's memory update.
            CHECK(counted == train_step_flops(c, segments, replay).total());
            replay = segments.back().tokens;
          }
        }
}

TEST_CASE("training step with attention dropout: the unfused attention scores every pair") {
  ModelConfig c = small(ModelKind::transformer_xl, 30, false);
  c.dropatt = 0.1;
  c.seg_len = 5;
  LanguageModel m(c, 3);
  const auto data = random_tokens(200, 30, 8);
  TrainOptions o;
  o.batch = 2;
  Trainer trainer(m, data, o);
  for (std::int64_t cached : {0, 4}) {
    SegmentWork seg;
    seg.batch = 2;
    seg.tokens = 5;
    seg.cached = cached;
    CAPTURE(cached);
    CHECK(tally([&] { (void)trainer.step(); }) == train_step_flops(c, {seg}).total());
  }
}

TEST_CASE("closed form: structure of the parts") {
  ModelConfig tr = preset(ModelKind::transformer, 3, 64, 4, 256, 1000);
  ModelConfig crt_gru = preset(ModelKind::crt, 3, 64, 4, 256, 1000);
  ModelConfig crt_nc = crt_gru;
  crt_nc.rnn_cell = RnnCell::ncgru;
  SegmentWork seg;
  seg.tokens = 17;
  // The NCGRU's U_c product makes its forward exactly as costly as the GRU's.
  CHECK(forward_flops(crt_nc, seg).total() == forward_flops(crt_gru, seg).total());
  // CRT = a Transformer over T + 1 positions plus two RNNs of 12 d^2 per token each.
  SegmentWork longer = seg;
  longer.tokens = 18;
  longer.output.kind = OutputWork::Kind::none;
  const FlopCount f = forward_flops(crt_gru, seg);
  CHECK(f.position_rnn == 17 * 12 * 64 * 64);
  CHECK(f.memory_rnn == 17 * 12 * 64 * 64);
  CHECK(f.projections + f.attention + f.feed_forward == forward_flops(tr, longer).total());
  // One BPTT segment: the memory RNN has no backward; two: the first segment's has.
  const FlopCount one = train_step_flops(crt_gru, {seg});
  CHECK(one.memory_rnn == f.memory_rnn);
  const FlopCount two = train_step_flops(crt_gru, {seg, seg});
  CHECK(two.memory_rnn > 2 * f.memory_rnn);
  // The NCGRU A-update is cubic in the hidden size; each Neumann order adds H^3 multiply-adds.
  CHECK(ncgru_update_flops(128, 2, false) == 8 * ncgru_update_flops(64, 2, false));
  CHECK(ncgru_update_flops(64, 3, false) - ncgru_update_flops(64, 2, false) == 2 * 64 * 64 * 64);
}

TEST_CASE("closed form: bad arguments give clear errors") {
  const ModelConfig tr = preset(ModelKind::transformer, 2, 16, 2, 24, 23);
  SegmentWork seg;
  seg.tokens = 3;
  seg.cached = 2;
  CHECK_THROWS_WITH_AS((void)forward_flops(tr, seg), doctest::Contains("cached positions"), Error);
  seg.cached = 0;
  seg.tokens = 0;
  CHECK_THROWS_WITH_AS((void)forward_flops(tr, seg), doctest::Contains("tokens >= 1"), Error);
  CHECK_THROWS_WITH_AS((void)train_step_flops(tr, {}), doctest::Contains("at least one segment"), Error);
  ModelConfig ad = tr;
  ad.adaptive_cutoffs = {5, 10};
  seg.tokens = 3;
  CHECK_THROWS_WITH_AS((void)forward_flops(ad, seg), doctest::Contains("tail row counts"), Error);
  CHECK_THROWS_WITH_AS((void)tail_rows(ad, {1, 99}), doctest::Contains("target 99"), Error);
  CHECK_THROWS_WITH_AS((void)ncgru_update_flops(8, 4, false), doctest::Contains("order"), Error);
}
