// The paper's own cost figures (design/paper.md): the FLOPs read from Figures 5 and 6 (WordPTB,
// 3 and 16 layers, paper.md 5.2, about +-2%) and Table 6's inference times (WikiText-103,
// 16 layers; batch, segment length and hardware not given).
#pragma once

#include <cstdint>
#include <string>

namespace crt::bench {

struct PaperFlops {
  std::int64_t layers, seg;
  double transformer, xl, crt;
};

inline constexpr PaperFlops kPaperFlops[] = {
    {3, 17, 1.39e9, 1.66e9, 1.59e9},   {3, 35, 2.87e9, 3.42e9, 3.28e9},
    {3, 70, 5.76e9, 6.86e9, 6.57e9},   {16, 17, 4.47e9, 5.92e9, 4.64e9},
    {16, 35, 9.27e9, 1.22e10, 9.52e9}, {16, 70, 1.86e10, 2.45e10, 1.91e10},
};

// Table 6, ms per batch: Transformer 997, Transformer-XL 1421.3, CRT-GRU 997.5.
inline constexpr double kPaperTable6Transformer = 997.0, kPaperTable6Xl = 1421.3,
                        kPaperTable6Crt = 997.5;

// The paper's FLOPs for one of our grid points, or -1: only the WordPTB shapes (paper-3,
// paper-16) at segments 17, 35 and 70 have one; both CRT cells map to the paper's CRT.
inline double paper_flops(const std::string& config, const std::string& model, std::int64_t seg) {
  const std::int64_t layers = config == "paper-3" ? 3 : config == "paper-16" ? 16 : -1;
  for (const PaperFlops& p : kPaperFlops)
    if (p.layers == layers && p.seg == seg) {
      if (model == "transformer") return p.transformer;
      if (model == "xl") return p.xl;
      if (model.rfind("crt", 0) == 0) return p.crt;
    }
  return -1;
}

}  // namespace crt::bench
