// Model-level invariants of the three language models: parameter counts against the paper's
// arithmetic, causality, memory/cache dependence, BPTT gradients through two CRT segments,
// adaptive softmax, checkpoint refusal, and bit-exact resume.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "crt/checkpoint.hpp"
#include "crt/model.hpp"
#include "crt/trainer.hpp"
#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "tests/gradcheck.hpp"

using namespace crt;
using namespace crt::model;

namespace {

ModelConfig tiny(ModelKind kind, std::int64_t vocab = 23) {
  ModelConfig c = preset(kind, 2, 16, 2, 24, vocab);
  c.seg_len = 5;
  c.mem_len = 5;
  c.dropout = 0.0;
  c.emb_dropout = 0.0;
  return c;
}

std::vector<std::int32_t> tokens(std::int64_t n, std::int64_t vocab, std::uint64_t seed) {
  Generator g(seed);
  std::vector<std::int32_t> t(static_cast<std::size_t>(n));
  for (auto& v : t) v = std::int32_t(g.next_u64() % std::uint64_t(vocab));
  return t;
}

// Runs segments through a fresh stream and returns the hidden states of each, as vectors.
std::vector<std::vector<double>> run_segments(const LanguageModel& m,
                                              const std::vector<std::vector<std::int32_t>>& segs) {
  NoGradGuard ng;
  StreamState s = m.initial_state(1);
  std::vector<std::vector<double>> out;
  for (const auto& ids : segs) out.push_back(m.forward(ids, 1, s, {}).to_vector());
  return out;
}

// Moves every parameter off its initial value (zero biases and the zero initial memory put
// ReLU and LayerNorm at exact kinks, where finite differences are meaningless).
std::vector<Tensor> perturbed_parameters(const LanguageModel& m, const std::string& skip_prefix = "~") {
  Generator g(77);
  std::vector<Tensor> out;
  NoGradGuard ng;
  for (const auto& [name, p] : m.parameters()) {
    Tensor noisy = add(p, uniform(p.shape(), -0.1, 0.1, g, p.dtype()));
    Tensor live = p;
    live.copy_(noisy);
    if (name.rfind(skip_prefix, 0) != 0) out.push_back(p);
  }
  return out;
}

std::vector<ModelConfig> all_kinds() {
  ModelConfig nc = tiny(ModelKind::crt);
  nc.rnn_cell = RnnCell::ncgru;
  ModelConfig learned = tiny(ModelKind::transformer);
  learned.position = PositionEncoding::learned;
  ModelConfig pre = tiny(ModelKind::transformer_xl);
  pre.pre_ln = true;
  return {tiny(ModelKind::transformer), learned, tiny(ModelKind::transformer_xl), pre,
          tiny(ModelKind::crt), nc};
}

}  // namespace

TEST_CASE("parameter counts match the paper's arithmetic (WikiText-103 base, paper.md 2.1)") {
  // Transformer-XL base: 151,107,538 (the RMT logs' count for TXL base with vocab 267,735).
  // CRT-GRU: drop r_net (16 x 410^2) and the u/v biases (820), add two GRU(410, 410)
  // (2 x 1,011,060): 150,439,238.
  const LanguageModel xl(wt103_base(ModelKind::transformer_xl));
  CHECK(xl.parameter_count() == 151107538);
  const LanguageModel crt(wt103_base(ModelKind::crt));
  CHECK(crt.parameter_count() == 150439238);
  // CRT-NCGRU: each cell has 6 d^2 weights (U_c included) and 4 d biases, 2 d fewer than a GRU.
  ModelConfig nc = wt103_base(ModelKind::crt);
  nc.rnn_cell = RnnCell::ncgru;
  CHECK(LanguageModel(nc).parameter_count() == 150439238 - 2 * 2 * 410);
  // The absolute-position Transformer has no position parameters at all.
  const LanguageModel tr(wt103_base(ModelKind::transformer));
  CHECK(tr.parameter_count() == 151107538 - 16 * 410 * 410 - 820);
}

TEST_CASE("causality: changing token t never changes outputs before t (all models)") {
  for (const ModelConfig& c : all_kinds()) {
    CAPTURE(c.summary());
    const LanguageModel m(c, 7);
    std::vector<std::int32_t> first = tokens(5, c.vocab_size, 1), second = tokens(5, c.vocab_size, 2);
    auto base = run_segments(m, {first, second});
    for (std::int64_t t = 0; t < 5; ++t) {
      auto changed = second;
      changed[std::size_t(t)] = (changed[std::size_t(t)] + 1) % std::int32_t(c.vocab_size);
      auto out = run_segments(m, {first, changed});
      CHECK(out[0] == base[0]);
      const std::size_t d = std::size_t(c.d_model);
      for (std::size_t pos = 0; pos < 5; ++pos) {
        const bool same = std::equal(out[1].begin() + long(pos * d), out[1].begin() + long((pos + 1) * d),
                                     base[1].begin() + long(pos * d));
        if (pos < std::size_t(t)) CHECK(same);
        if (pos == std::size_t(t)) CHECK_FALSE(same);
      }
    }
  }
}

TEST_CASE("memory: segment 1 changes segment 2's outputs only through the memory or cache") {
  const std::vector<std::int32_t> a = tokens(5, 23, 3), b = tokens(5, 23, 4), next = tokens(5, 23, 5);
  auto differs = [&](const ModelConfig& c) {
    const LanguageModel m(c, 11);
    return run_segments(m, {a, next})[1] != run_segments(m, {b, next})[1];
  };
  ModelConfig crt = tiny(ModelKind::crt);
  CHECK(differs(crt));
  crt.memory = MemoryKind::none;
  CHECK_FALSE(differs(crt));
  ModelConfig nc = tiny(ModelKind::crt);
  nc.rnn_cell = RnnCell::ncgru;
  CHECK(differs(nc));
  CHECK(differs(tiny(ModelKind::transformer_xl)));
  CHECK_FALSE(differs(tiny(ModelKind::transformer)));
  // The XL cache reaches back mem_len tokens only: with mem_len 5 and 5-token segments,
  // segment 1 cannot influence segment 3 directly... but it can through segment 2's cache
  // of its own layer inputs, which depended on segment 1. So XL differs too.
  ModelConfig xl = tiny(ModelKind::transformer_xl);
  const LanguageModel m(xl, 11);
  CHECK(run_segments(m, {a, next, next})[2] != run_segments(m, {b, next, next})[2]);
}

TEST_CASE("CRT without memory and position RNN off equals a plain segment Transformer") {
  // Table 8's ablation switches: memory off + sinusoidal positions gives the Transformer baseline.
  ModelConfig c = tiny(ModelKind::crt);
  c.memory = MemoryKind::none;
  c.position = PositionEncoding::sinusoidal;
  ModelConfig t = tiny(ModelKind::transformer);
  t.kind = ModelKind::crt;  // same switches, same seed -> same parameters
  CHECK(c == t);
  const LanguageModel a(c, 5), b(t, 5);
  const auto ids = tokens(5, 23, 9);
  CHECK(run_segments(a, {ids}) == run_segments(b, {ids}));
}

TEST_CASE("gradient check through two segments of BPTT (CRT, GRU and NCGRU, in double)") {
  for (RnnCell cell : {RnnCell::gru, RnnCell::ncgru}) {
    ModelConfig c = tiny(ModelKind::crt, 11);
    c.rnn_cell = cell;
    c.n_layer = 1;
    c.d_model = 8;
    c.d_head = 4;
    c.d_inner = 12;
    c.seg_len = 3;
    CAPTURE(to_string(cell));
    LanguageModel m(c, 3, DType::f64);
    const auto s1 = tokens(3, 11, 1), s2 = tokens(3, 11, 2), t2 = tokens(3, 11, 3);
    // Loss on segment 2 only: its gradient w.r.t. parameters that segment 1 used flows back
    // through the memory carried from segment 1.
    const std::vector<Tensor> params = perturbed_parameters(m);
    auto f = [&](const std::vector<Tensor>&) {
      StreamState s = m.initial_state(1);
      (void)m.forward(s1, 1, s, {});
      return m.loss(m.forward(s2, 1, s, {}), t2);
    };
    testing::GradCheckOptions opt;
    opt.max_elements_per_input = 12;
    CHECK(testing::gradcheck(f, params, opt) <= 1.0);
    // And the memory really carries gradient: d loss / d (memory after segment 1) is nonzero.
    StreamState s = m.initial_state(1);
    (void)m.forward(s1, 1, s, {});
    Tensor mem = s.memory.detach();
    mem.set_requires_grad(true);
    s.memory = mem;
    m.loss(m.forward(s2, 1, s, {}), t2).backward();
    double norm = 0;
    for (double v : mem.grad().to_vector()) norm += v * v;
    CHECK(norm > 0);
  }
}

TEST_CASE("adaptive softmax: normalised log-probabilities and loss equal to their NLL") {
  ModelConfig c = tiny(ModelKind::crt, 40);
  c.adaptive_cutoffs = {10, 25};
  LanguageModel m(c, 2, DType::f64);
  // One segment: the memory RNN's output is not used yet, so its parameters get no gradient.
  const std::vector<Tensor> params = perturbed_parameters(m, "memory_rnn");
  StreamState s = m.initial_state(2);
  const auto ids = tokens(10, 40, 4), targets = tokens(10, 40, 5);
  const Tensor h = m.forward(ids, 2, s, {});
  const Tensor lp = m.log_probs(h);  // [2, 5, 40]
  double nll = 0;
  for (std::int64_t b = 0; b < 2; ++b)
    for (std::int64_t t = 0; t < 5; ++t) {
      double total = 0;
      for (std::int64_t v = 0; v < 40; ++v) total += std::exp(lp.at({b, t, v}));
      CHECK(total == doctest::Approx(1.0).epsilon(1e-12));
      nll -= lp.at({b, t, targets[std::size_t(b * 5 + t)]});
    }
  CHECK(m.loss(h, targets).item() == doctest::Approx(nll / 10).epsilon(1e-12));
  testing::GradCheckOptions opt;
  opt.max_elements_per_input = 10;
  CHECK(testing::gradcheck([&](const auto&) {
          StreamState st = m.initial_state(2);
          return m.loss(m.forward(ids, 2, st, {}), targets);
        }, params, opt) <= 1.0);
}

TEST_CASE("checkpoints: round trip, and refusal of other configurations and corrupt files") {
  const auto dir = std::filesystem::temp_directory_path() / "crt_test_models";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "m.safetensors").string();
  ModelConfig c = tiny(ModelKind::crt);
  c.rnn_cell = RnnCell::ncgru;
  LanguageModel a(c, 1), b(c, 2);
  save_checkpoint(path, a);
  const SafetensorsFile f = read_checkpoint(path);
  CHECK(checkpoint_config(f) == c);
  load_model_tensors(f, b);
  const auto ids = tokens(5, 23, 1);
  CHECK(run_segments(a, {ids, ids}) == run_segments(b, {ids, ids}));

  ModelConfig other = c;
  other.d_inner = 32;
  LanguageModel o(other, 1);
  try {
    load_model_tensors(f, o);
    FAIL("expected a configuration mismatch");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("another configuration") != std::string::npos);
  }
  // Truncated file.
  {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream out((dir / "cut.safetensors").string(), std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size() / 2));
  }
  CHECK_THROWS_AS(read_checkpoint((dir / "cut.safetensors").string()), Error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("resume is exact: N steps == N/2, save, load, N/2 more (bit for bit)") {
  for (ModelKind kind : {ModelKind::crt, ModelKind::transformer_xl}) {
    ModelConfig c = tiny(kind);
    if (kind == ModelKind::crt) c.rnn_cell = RnnCell::ncgru;
    c.dropout = 0.1;  // dropout draws must resume too
    c.emb_dropout = 0.1;
    CAPTURE(c.summary());
    TrainOptions o;
    o.steps = 6;
    o.batch = 2;
    o.bptt_segments = 2;
    o.lr = 1e-2;
    o.warmup = 2;
    const auto data = tokens(400, 23, 8);
    const std::string path = (std::filesystem::temp_directory_path() / "crt_resume.safetensors").string();

    LanguageModel straight(c, 4);
    Trainer t1(straight, data, o);
    for (int i = 0; i < 6; ++i) t1.step();

    LanguageModel first(c, 4);
    Trainer t2(first, data, o);
    for (int i = 0; i < 3; ++i) t2.step();
    t2.save(path);
    LanguageModel resumed(c, 99);  // different init: everything must come from the file
    Trainer t3(resumed, data, o);
    t3.load(path);
    CHECK(t3.steps_done() == 3);
    for (int i = 0; i < 3; ++i) t3.step();
    for (std::size_t i = 0; i < straight.parameters().size(); ++i) {
      CAPTURE(straight.parameters()[i].first);
      CHECK(straight.parameters()[i].second.to_vector() == resumed.parameters()[i].second.to_vector());
    }
    // A run with another training setup refuses the checkpoint.
    TrainOptions o2 = o;
    o2.batch = 3;
    LanguageModel again(c, 4);
    Trainer t4(again, data, o2);
    CHECK_THROWS_WITH_AS(t4.load(path), doctest::Contains("train.batch"), Error);
    std::filesystem::remove(path);
  }
}

TEST_CASE("bad model input gives clear errors") {
  const LanguageModel m(tiny(ModelKind::crt), 1);
  StreamState s = m.initial_state(1);
  CHECK_THROWS_WITH_AS(m.forward({1, 2, 99}, 1, s, {}), doctest::Contains("token id 99"), Error);
  CHECK_THROWS_WITH_AS(m.forward({1, 2, 3}, 2, s, {}), doctest::Contains("batch 2"), Error);
  ModelConfig bad = tiny(ModelKind::transformer_xl);
  bad.position = PositionEncoding::sinusoidal;
  CHECK_THROWS_WITH_AS(LanguageModel(bad, 1), doctest::Contains("relative"), Error);
  bad = tiny(ModelKind::crt);
  bad.adaptive_cutoffs = {10, 5};
  CHECK_THROWS_WITH_AS(LanguageModel(bad, 1), doctest::Contains("cutoffs"), Error);
  CHECK_THROWS_WITH_AS(parse_model_kind("gpt"), doctest::Contains("unknown model kind 'gpt'"), Error);
}

TEST_CASE("one-segment truncated BPTT still trains CRT's memory RNN (replayed memory update)") {
  for (RnnCell cell : {RnnCell::gru, RnnCell::ncgru}) {
    ModelConfig c = tiny(ModelKind::crt);
    c.rnn_cell = cell;
    LanguageModel m(c, 4);
    std::vector<double> before;
    for (const auto& [name, p] : m.parameters())
      if (name.rfind("memory_rnn", 0) == 0) {
        const auto v = p.to_vector();
        before.insert(before.end(), v.begin(), v.end());
      }
    TrainOptions o;
    o.steps = 3;
    o.batch = 2;
    o.bptt_segments = 1;
    Trainer t(m, tokens(400, 23, 8), o);
    for (int i = 0; i < 3; ++i) t.step();
    std::vector<double> after;
    for (const auto& [name, p] : m.parameters())
      if (name.rfind("memory_rnn", 0) == 0) {
        const auto v = p.to_vector();
        after.insert(after.end(), v.begin(), v.end());
      }
    CAPTURE(to_string(cell));
    CHECK(before != after);
  }
}

TEST_CASE("CRT trains with gradients through the memory by default (BPTT depth 2)") {
  CHECK(default_bptt_segments(tiny(ModelKind::crt)) == 2);
  CHECK(default_bptt_segments(tiny(ModelKind::transformer)) == 1);
  CHECK(default_bptt_segments(tiny(ModelKind::transformer_xl)) == 1);
  ModelConfig no_memory = tiny(ModelKind::crt);
  no_memory.memory = MemoryKind::none;
  CHECK(default_bptt_segments(no_memory) == 1);
  const auto data = tokens(400, 23, 8);
  LanguageModel m(tiny(ModelKind::crt), 4);
  Trainer t(m, data, TrainOptions{});
  CHECK(t.options().bptt_segments == 2);
  t.step();
  CHECK(t.steps_done() == 1);
}

TEST_CASE("the replayed memory update changes gradients only: the forward value is the carried memory") {
  for (RnnCell cell : {RnnCell::gru, RnnCell::ncgru}) {
    CAPTURE(to_string(cell));
    ModelConfig c = tiny(ModelKind::crt);
    c.rnn_cell = cell;
    LanguageModel m(c, 4);
    StreamState s = m.initial_state(2);
    (void)m.forward(tokens(10, 23, 1), 2, s, {});  // with a graph: the replay's inputs are kept
    s.detach();
    REQUIRE(s.memory_inputs.defined());
    // An optimiser step changes the memory RNN's weights after the memory was carried.
    {
      NoGradGuard ng;
      Generator g(3);
      for (const auto& [name, p] : m.parameters())
        if (name.rfind("memory_rnn", 0) == 0) {
          Tensor live = p;
          live.copy_(add(p, uniform(p.shape(), -0.2, 0.2, g, p.dtype())));
        }
    }
    StreamState without_replay = s;
    without_replay.memory_inputs = Tensor();
    const auto ids = tokens(10, 23, 2);
    const Tensor with = m.forward(ids, 2, s, {});
    const Tensor plain = m.forward(ids, 2, without_replay, {});
    CHECK(with.to_vector() == plain.to_vector());
    // ... and the memory RNN still gets a gradient from this segment's loss through the replay.
    m.loss(with, tokens(10, 23, 3)).backward();
    double norm = 0;
    for (const auto& [name, p] : m.parameters())
      if (name.rfind("memory_rnn", 0) == 0 && p.grad().defined())
        for (double v : p.grad().to_vector()) norm += v * v;
    CHECK(norm > 0);
  }
}

TEST_CASE("NCGRU's U_c is clipped with the parameters and counted in the parameter count") {
  ModelConfig c = tiny(ModelKind::crt);
  c.rnn_cell = RnnCell::ncgru;
  LanguageModel m(c, 4);
  const std::vector<Tensor> all = m.gradient_tensors();
  std::vector<Tensor> u_c;
  for (const auto& [name, t] : m.buffers())
    if (t.requires_grad()) u_c.push_back(t);
  REQUIRE(u_c.size() == 2);  // position and memory RNN
  CHECK(all.size() == m.parameters().size() + 2);
  std::int64_t n = 0;
  for (const auto& [name, t] : m.parameters()) n += t.numel();
  CHECK(m.parameter_count() == n + 2 * c.d_model * c.d_model);
  // Two segments, so that the memory RNN's U_c gets a gradient too.
  StreamState s = m.initial_state(2);
  (void)m.forward(tokens(10, 23, 1), 2, s, {});
  m.loss(m.forward(tokens(10, 23, 2), 2, s, {}), tokens(10, 23, 3)).backward();
  auto norm_of = [](const std::vector<Tensor>& ts) {
    double sq = 0;
    for (const Tensor& t : ts)
      if (t.grad().defined())
        for (double v : t.grad().to_vector()) sq += v * v;
    return std::sqrt(sq);
  };
  CHECK(norm_of(u_c) > 0);
  const double total = norm_of(all);
  CHECK(clip_grad_norm(all, total / 4) == doctest::Approx(total).epsilon(1e-5));
  CHECK(norm_of(all) == doctest::Approx(total / 4).epsilon(1e-5));
}

TEST_CASE("first-step gradient norms are of one order for every model kind") {
  // A zero memory token in front of the first segment reached every post-LN LayerNorm with
  // zero variance; CRT's first gradient norms were then thousands of times the others'.
  std::vector<ModelConfig> kinds = all_kinds();
  ModelConfig no_memory = tiny(ModelKind::crt);
  no_memory.memory = MemoryKind::none;
  ModelConfig three = tiny(ModelKind::crt);
  three.n_layer = 3;
  kinds.push_back(no_memory);
  kinds.push_back(three);
  for (const ModelConfig& c : kinds) {
    CAPTURE(c.summary());
    LanguageModel m(c, 4);
    TrainOptions o;
    o.steps = 2;
    o.batch = 4;
    Trainer t(m, tokens(2000, c.vocab_size, 8), o);
    const StepStats first = t.step(), second = t.step();
    CHECK(first.grad_norm < 20);
    CHECK(first.grad_norm < 10 * second.grad_norm);
  }
}

namespace {
// Log-probabilities [n, V] of a one-stream run, as doubles.
std::vector<double> log_probs_of(const LanguageModel& m, const Tensor& hidden) {
  NoGradGuard ng;
  return m.log_probs(hidden).to_vector();
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a[i] - b[i]));
  return d;
}
}  // namespace

TEST_CASE("incremental decoding equals the segment-at-once forward: one token, chunks, all at once") {
  // Three whole segments and a part of a fourth, in double (differences are rounding only)
  // and in float; every model kind, both CRT cells, a carried position RNN.
  std::vector<ModelConfig> configs = all_kinds();
  ModelConfig carry = tiny(ModelKind::crt);
  carry.pos_rnn_carry = true;
  carry.pos_rnn_residual = true;
  configs.push_back(carry);
  for (DType dtype : {DType::f64, DType::f32}) {
    for (const ModelConfig& c : configs) {
      CAPTURE(c.summary());
      CAPTURE(dtype_size(dtype));
      LanguageModel m(c, 5, dtype);
      perturbed_parameters(m);
      const std::int64_t n = 3 * c.seg_len + 2;
      const std::vector<std::int32_t> ids = tokens(n, c.vocab_size, 9);
      // Reference: forward() over whole segments, then the partial last one.
      std::vector<double> reference;
      {
        NoGradGuard ng;
        StreamState s = m.initial_state(1);
        for (std::int64_t begin = 0; begin < n; begin += c.seg_len) {
          const std::int64_t len = std::min(c.seg_len, n - begin);
          const std::vector<std::int32_t> seg(ids.begin() + begin, ids.begin() + begin + len);
          const std::vector<double> lp = log_probs_of(m, m.forward(seg, 1, s, {}));
          reference.insert(reference.end(), lp.begin(), lp.end());
        }
      }
      const double tolerance = dtype == DType::f64 ? 1e-10 : 2e-4;
      for (std::int64_t chunk : {std::int64_t(1), std::int64_t(3), n}) {
        CAPTURE(chunk);
        DecodeState s = m.decode_state(1);
        std::vector<double> got;
        std::vector<std::int64_t> boundary_bytes;
        for (std::int64_t begin = 0; begin < n; begin += chunk) {
          const std::int64_t len = std::min(chunk, n - begin);
          const std::vector<std::int32_t> piece(ids.begin() + begin, ids.begin() + begin + len);
          const std::vector<double> lp = log_probs_of(m, m.decode(piece, 1, s));
          got.insert(got.end(), lp.begin(), lp.end());
          if (s.filled == 0) boundary_bytes.push_back(s.bytes());
        }
        CHECK(max_abs_diff(got, reference) <= tolerance);
        // Between segments the state does not grow (CRT: one memory vector; XL: a full cache).
        for (std::size_t i = 1; i < boundary_bytes.size(); ++i) CHECK(boundary_bytes[i] == boundary_bytes[0]);
        if (c.kind == ModelKind::crt && chunk == 1) {
          CHECK(!boundary_bytes.empty());
          CHECK(boundary_bytes.back() == std::int64_t(c.d_model * (c.pos_rnn_carry ? 2 : 1) * dtype_size(dtype)));
        }
      }
    }
  }
}

TEST_CASE("incremental decoding of a batch equals decoding each stream alone") {
  for (const ModelConfig& c : all_kinds()) {
    CAPTURE(c.summary());
    LanguageModel m(c, 5, DType::f64);
    perturbed_parameters(m);
    const std::int64_t batch = 3, n = c.seg_len + 3;
    const std::vector<std::int32_t> ids = tokens(batch * n, c.vocab_size, 4);
    DecodeState together = m.decode_state(batch);
    const std::vector<double> all = log_probs_of(m, m.decode(ids, batch, together));
    const std::size_t per_stream = all.size() / std::size_t(batch);
    for (std::int64_t b = 0; b < batch; ++b) {
      DecodeState alone = m.decode_state(1);
      const std::vector<std::int32_t> mine(ids.begin() + b * n, ids.begin() + (b + 1) * n);
      const std::vector<double> lp = log_probs_of(m, m.decode(mine, 1, alone));
      const std::vector<double> part(all.begin() + long(std::size_t(b) * per_stream),
                                     all.begin() + long(std::size_t(b + 1) * per_stream));
      CHECK(max_abs_diff(lp, part) <= 1e-12);
    }
  }
}
