// The public API: streams are independent, feeding in pieces equals feeding at once,
// generation runs at constant state size, a stream's state saves and restores exactly, and
// bad input is refused clearly.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <span>
#include <string>

#include "crt/api.hpp"
#include "engine/error.hpp"

using namespace crt;

namespace {
Model small_model(model::ModelKind kind) {
  model::ModelConfig c = model::preset(kind, 1, 16, 2, 32, 30);
  c.seg_len = 4;
  c.mem_len = 4;
  return Model::create(c, 3);
}
}  // namespace

TEST_CASE("streams are independent and piecewise feeding equals feeding at once") {
  for (auto kind : {model::ModelKind::crt, model::ModelKind::transformer_xl, model::ModelKind::transformer}) {
    const Model m = small_model(kind);
    Stream a = m.open_stream(), b = m.open_stream(), c = m.open_stream();
    const std::vector<std::int32_t> text = {1, 5, 9, 2, 7, 7, 3, 11, 4, 8};
    const std::vector<float> whole = a.feed(text);
    std::vector<float> pieces;
    for (std::int32_t t : text) pieces = b.feed({t});
    // One token at a time runs other matrix shapes than ten at once: equal up to rounding.
    REQUIRE(whole.size() == pieces.size());
    float worst = 0;
    for (std::size_t i = 0; i < whole.size(); ++i) worst = std::max(worst, std::abs(whole[i] - pieces[i]));
    CHECK(worst <= 1e-4f);
    // Feeding another stream in between changes nothing for this one.
    c.feed({20, 21, 22, 23, 24});
    Stream d = m.open_stream();
    CHECK(d.feed(text) == whole);
    CHECK(a.tokens_seen() == 10);
    a.reset();
    CHECK(a.feed(text) == whole);
  }
}

TEST_CASE("CRT memory carries context across segments; generation keeps constant state") {
  const Model m = small_model(model::ModelKind::crt);
  Stream s1 = m.open_stream(), s2 = m.open_stream();
  // Same last segment, different earlier segment: predictions differ only through memory.
  const auto p1 = s1.feed({1, 2, 3, 4, 9, 9, 9, 9, 5});
  const auto p2 = s2.feed({6, 7, 8, 0, 9, 9, 9, 9, 5});
  CHECK(p1 != p2);
  Generator g(5);
  const std::int64_t bytes = s1.state_bytes();
  for (int i = 0; i < 5; ++i) {
    s1.generate(4, g, 0.7, 5);  // one full segment each
    CHECK(s1.state_bytes() == bytes);
  }
}

TEST_CASE("API errors name the problem") {
  const Model m = small_model(model::ModelKind::crt);
  Stream s = m.open_stream();
  Generator g(1);
  CHECK_THROWS_WITH_AS(s.sample(g), doctest::Contains("feed at least one token"), Error);
  CHECK_THROWS_WITH_AS(s.feed({3, 31}), doctest::Contains("token 31 at position 1"), Error);
  s.feed({1});
  CHECK_THROWS_WITH_AS(s.sample(g, 0.0), doctest::Contains("temperature"), Error);
  CHECK_THROWS_WITH_AS(Model::load("/nonexistent/model.safetensors"), doctest::Contains("/nonexistent/model.safetensors"), Error);
}

TEST_CASE("a stream's state saved mid-segment and restored continues exactly (bytes and file)") {
  const std::string path = (std::filesystem::temp_directory_path() / "crt_test_stream_state.safetensors").string();
  for (auto kind : {model::ModelKind::crt, model::ModelKind::transformer_xl, model::ModelKind::transformer}) {
    CAPTURE(model::to_string(kind));
    const Model m = small_model(kind);
    for (std::size_t prefix : {std::size_t(0), std::size_t(6), std::size_t(8)}) {  // fresh, mid-segment, boundary
      CAPTURE(prefix);
      Stream a = m.open_stream();
      const std::vector<std::int32_t> text = {1, 5, 9, 2, 7, 7, 3, 11, 4, 8, 2};
      if (prefix > 0) a.feed(std::span<const std::int32_t>(text.data(), prefix));
      const std::string bytes = a.save_state_bytes();
      a.save_state(path);
      Stream b = m.open_stream(), c = m.open_stream();
      b.feed({3, 3});  // whatever b held before is replaced
      b.restore_state_bytes(bytes);
      c.load_state(path);
      CHECK(b.tokens_seen() == std::int64_t(prefix));
      CHECK(b.state_bytes() == a.state_bytes());
      const std::span<const std::int32_t> rest(text.data() + prefix, text.size() - prefix);
      const std::vector<float> want = a.feed(rest);
      CHECK(b.feed(rest) == want);
      CHECK(c.feed(rest) == want);
      Generator ga(4), gb(4);
      CHECK(a.generate(6, ga, 0.9, 5) == b.generate(6, gb, 0.9, 5));
    }
  }
  std::filesystem::remove(path);
}

TEST_CASE("a stream state of another model or a damaged one is refused, naming what is wrong") {
  const Model crt_model = small_model(model::ModelKind::crt), xl = small_model(model::ModelKind::transformer_xl);
  Stream s = crt_model.open_stream();
  s.feed({1, 2, 3, 4, 5, 6});
  const std::string bytes = s.save_state_bytes();
  Stream other = xl.open_stream();
  CHECK_THROWS_WITH_AS(other.restore_state_bytes(bytes), doctest::Contains("the state of another model: crt.kind"),
                       Error);
  Stream same = crt_model.open_stream();
  CHECK_THROWS_WITH_AS(same.restore_state_bytes(bytes.substr(0, bytes.size() - 4)), doctest::Contains("stream state"),
                       Error);
  // A stream state written with one tensor renamed: the restore names it.
  std::string renamed = bytes;
  const std::size_t at = renamed.find("segment.outputs");
  REQUIRE(at != std::string::npos);
  renamed.replace(at, 15, "segment.outpute");
  CHECK_THROWS_WITH_AS(same.restore_state_bytes(renamed), doctest::Contains("lacks tensor 'segment.outputs'"), Error);
  // A refused restore leaves the stream as it was.
  Stream fresh = crt_model.open_stream();
  CHECK_THROWS(fresh.restore_state_bytes(renamed));
  CHECK(fresh.tokens_seen() == 0);
}
