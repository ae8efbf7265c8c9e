// The README's embedding example: build a CRT, train it briefly, save and reload it, then
// run two independent streams and generate past several segments at constant memory.
// Compiled and run by the test suite (test "api-example").
#include <cstdio>
#include <vector>

#include "crt/api.hpp"

int main() {
  // A small CRT over a 50-token vocabulary; memory and position GRUs as in the paper.
  crt::model::ModelConfig config = crt::model::preset(crt::model::ModelKind::crt, /*n_layer=*/2,
                                                      /*d_model=*/32, /*n_head=*/4, /*d_inner=*/64,
                                                      /*vocab_size=*/50);
  config.seg_len = 8;
  crt::Model model = crt::Model::create(config, /*seed=*/42);

  // Train on a repeating pattern for a few steps.
  std::vector<std::int32_t> tokens;
  for (int i = 0; i < 4000; ++i) tokens.push_back(std::int32_t((i * 7) % 50));
  crt::model::TrainOptions options;
  options.steps = 40;
  options.batch = 4;
  options.lr = 3e-3;
  auto trainer = model.trainer(tokens, options);
  double first = 0, last = 0;
  for (int step = 0; step < options.steps; ++step) {
    const crt::model::StepStats s = trainer->step();
    (step == 0 ? first : last) = s.loss;
  }
  std::printf("loss %.3f -> %.3f\n", first, last);

  model.save("/tmp/crt_embed_example.safetensors");
  const crt::Model loaded = crt::Model::load("/tmp/crt_embed_example.safetensors");

  // Two streams over one model, each with its own memory.
  crt::Stream a = loaded.open_stream();
  crt::Stream b = loaded.open_stream();
  const std::vector<float> next = a.feed({0, 7, 14, 21});
  b.feed({3});
  std::printf("log p(28 | 0 7 14 21) = %.3f\n", next[28]);

  crt::Generator gen(1);
  const std::int64_t before = a.state_bytes();
  const std::vector<std::int32_t> text = a.generate(40, gen, /*temperature=*/0.5);
  std::printf("generated %zu tokens; state %lld -> %lld bytes\n", text.size(), (long long)before,
              (long long)a.state_bytes());
  return last < first ? 0 : 1;
}
