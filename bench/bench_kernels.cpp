// Single-threaded throughput of the float kernels other than GEMM at the model's shapes:
// <kernel>/<isa>/<size> for every runnable ISA variant and for "ref", the scalar reference
// (ref::X<float>). Counters: GB/s (bytes read plus written, once each) for memory-bound kernels,
// GFLOP/s for attention; both iteration-invariant rates over the thread's CPU time.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_main.hpp"
#include "kernels/dispatch.hpp"
#include "kernels/reference.hpp"

namespace {

using crt::kernels::AttentionShape;
using crt::kernels::BinaryOp;
using crt::kernels::KernelTable;
using crt::kernels::UnaryOp;
using std::size_t;
namespace ref = crt::kernels::ref;

// The scalar reference as one more table, named "ref".
// The scalar reference behind the table's signatures (panels of one row: lanes = 1).
void ref_gemv_packed(const float* a, const float* packed, size_t n, size_t k, float beta,
                     float* c) {
  ref::gemv_packed<float>(a, packed, n, k, 1, beta, c);
}
void ref_gemm_f64(const double* a, const double* b, double* c, size_t m, size_t n, size_t k) {
  ref::gemm<double>(false, false, m, n, k, 1.0, a, k, b, n, 1.0, c, n);
}

KernelTable reference_table() {
  KernelTable t{};
  t.name = t.cap_name = "ref";
  t.runnable = true;
  t.lanes = 1;
  t.binary = &ref::binary<float>;
  t.binary_scalar_right = &ref::binary_scalar_right<float>;
  t.binary_scalar_left = &ref::binary_scalar_left<float>;
  t.unary = &ref::unary<float>;
  t.unary_backward = &ref::unary_backward<float>;
  t.axpy = &ref::axpy<float>;
  t.dropout_apply = &ref::dropout_apply<float>;
  t.sum_squares = &ref::sum_squares<float>;
  t.sum_rows = &ref::sum_rows<float>;
  t.sum_cols = &ref::sum_cols<float>;
  t.softmax_rows = &ref::softmax_rows<float>;
  t.softmax_backward_rows = &ref::softmax_backward_rows<float>;
  t.log_softmax_rows = &ref::log_softmax_rows<float>;
  t.log_softmax_backward_rows = &ref::log_softmax_backward_rows<float>;
  t.cross_entropy_forward = &ref::cross_entropy_forward<float>;
  t.cross_entropy_backward = &ref::cross_entropy_backward<float>;
  t.layernorm_forward = &ref::layernorm_forward<float>;
  t.layernorm_backward = &ref::layernorm_backward<float>;
  t.gemv_packed = &ref_gemv_packed;
  t.gemm_f64_accumulate = &ref_gemm_f64;
  t.gru_gates_forward = &ref::gru_gates_forward<float>;
  t.gru_gates_backward = &ref::gru_gates_backward<float>;
  t.attention_forward = &ref::attention_forward<float>;
  t.attention_backward = &ref::attention_backward<float>;
  t.modrelu_forward = &ref::modrelu_forward<float>;
  t.modrelu_backward = &ref::modrelu_backward<float>;
  t.adam_update = &ref::adam_update<float>;
  return t;
}

const KernelTable& ref_table() {
  static const KernelTable t = reference_table();
  return t;
}

std::vector<const KernelTable*> variants() {
  std::vector<const KernelTable*> out;
  for (const KernelTable& t : crt::kernels::isa_tables())
    if (t.runnable) out.push_back(&t);
  out.push_back(&ref_table());
  return out;
}

// 64-byte aligned storage, as the engine's tensors have: the alignment of a row start changes
// how many vector loads and stores straddle cache lines, which made the same kernel's timings
// differ by up to 1.7x between buffers that happened to start 0, 16, 32 or 48 bytes into a line.
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64)));
  }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  bool operator==(const CacheLineAllocator&) const { return true; }
};
using Floats = std::vector<float, CacheLineAllocator<float>>;

// A float buffer with values uniform in [lo, hi), shared by the closure that times a kernel.
std::shared_ptr<Floats> buffer(size_t n, float lo, float hi, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  auto v = std::make_shared<Floats>(n);
  for (float& x : *v) x = dist(rng);
  return v;
}

using Body = std::function<void()>;
// Builds the inputs for one variant and returns the call to time.
using Make = std::function<Body(const KernelTable&)>;

enum class Rate { bytes, flops };

// Registers <kernel>/<isa>/<size> for every variant; `amount` is bytes or flops per call.
void add(const std::string& kernel, const std::string& size, Rate rate, double amount, Make make) {
  for (const KernelTable* t : variants()) {
    const std::string name = kernel + "/" + t->cap_name + "/" + size;
    benchmark::RegisterBenchmark(name.c_str(), [t, rate, amount, make](benchmark::State& state) {
      const Body body = make(*t);
      for (auto _ : state) {
        body();
        benchmark::ClobberMemory();
      }
      state.counters[rate == Rate::bytes ? "GB/s" : "GFLOP/s"] =
          benchmark::Counter(amount * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    })->Unit(benchmark::kMicrosecond);
  }
}

std::string dims(size_t a, size_t b) { return std::to_string(a) + "x" + std::to_string(b); }

constexpr double kF = sizeof(float);

void register_elementwise() {
  // 16 x 256 (one step of a batch), 16 x 70 x 410 (a segment of activations).
  for (size_t n : {size_t(4096), size_t(459200)}) {
    const std::string size = std::to_string(n);
    add("binary_add", size, Rate::bytes, 3 * kF * n, [n](const KernelTable& t) -> Body {
      auto a = buffer(n, -1, 1, 1), b = buffer(n, -1, 1, 2), y = buffer(n, 0, 0, 3);
      return [&t, a, b, y, n] { t.binary(BinaryOp::add, a->data(), b->data(), y->data(), n); };
    });
    add("dropout_apply", size, Rate::bytes, 2 * kF * n, [n](const KernelTable& t) -> Body {
      auto x = buffer(n, -1, 1, 1), y = buffer(n, 0, 0, 3);
      const auto threshold = std::uint64_t(std::ceil(std::ldexp(0.1, 53)));
      return [&t, x, y, n, threshold] {
        t.dropout_apply(x->data(), y->data(), n, 12345, 0, threshold, float(1.0 / 0.9));
      };
    });
    add("binary_scalar_mul", size, Rate::bytes, 2 * kF * n, [n](const KernelTable& t) -> Body {
      auto a = buffer(n, -1, 1, 1), y = buffer(n, 0, 0, 3);
      return [&t, a, y, n] {
        t.binary_scalar_right(BinaryOp::mul, a->data(), 0.5f, y->data(), n);
      };
    });
    const std::pair<UnaryOp, const char*> ops[] = {{UnaryOp::exp, "exp"},
                                                   {UnaryOp::tanh, "tanh"},
                                                   {UnaryOp::sigmoid, "sigmoid"},
                                                   {UnaryOp::gelu, "gelu"},
                                                   {UnaryOp::relu, "relu"}};
    for (const auto& entry : ops) {
      const UnaryOp op = entry.first;  // named: the lambdas below capture it
      const std::string op_name = entry.second;
      add("unary_" + op_name, size, Rate::bytes, 2 * kF * n, [n, op](const KernelTable& t) -> Body {
        auto x = buffer(n, -4, 4, 4), y = buffer(n, 0, 0, 5);
        return [&t, x, y, n, op] { t.unary(op, x->data(), y->data(), n); };
      });
      const bool reads_y = op == UnaryOp::exp || op == UnaryOp::tanh || op == UnaryOp::sigmoid;
      add("unary_backward_" + op_name, size, Rate::bytes, 3 * kF * n,
          [n, op, reads_y](const KernelTable& t) -> Body {
            auto x = buffer(n, -4, 4, 4), g = buffer(n, -1, 1, 6), dx = buffer(n, 0, 0, 7);
            return [&t, x, g, dx, n, op, reads_y] {
              t.unary_backward(op, reads_y ? nullptr : x->data(), reads_y ? x->data() : nullptr,
                               g->data(), dx->data(), n);
            };
          });
    }
    add("axpy", size, Rate::bytes, 3 * kF * n, [n](const KernelTable& t) -> Body {
      auto x = buffer(n, -1, 1, 8), y = buffer(n, -1, 1, 9);
      return [&t, x, y, n] { t.axpy(1e-3f, x->data(), y->data(), n); };
    });
    add("sum_squares", size, Rate::bytes, kF * n, [n](const KernelTable& t) -> Body {
      auto x = buffer(n, -1, 1, 10);
      return [&t, x, n] { benchmark::DoNotOptimize(t.sum_squares(x->data(), n)); };
    });
  }
  // Reductions: per-row sums of a segment's activations, bias gradients of the GRU gates.
  for (const auto& shape : {std::pair<size_t, size_t>{1120, 256}, {1120, 410}}) {
    const size_t rows = shape.first, cols = shape.second;  // named: lambdas capture them
    add("sum_rows", dims(rows, cols), Rate::bytes, kF * (rows * cols + rows),
        [rows, cols](const KernelTable& t) -> Body {
          auto x = buffer(rows * cols, -1, 1, 11), y = buffer(rows, 0, 0, 12);
          return [&t, x, y, rows, cols] { t.sum_rows(x->data(), y->data(), rows, cols); };
        });
  }
  for (const auto& shape : {std::pair<size_t, size_t>{1120, 768}, {1120, 1230}}) {
    const size_t rows = shape.first, cols = shape.second;  // named: lambdas capture them
    add("sum_cols", dims(rows, cols), Rate::bytes, kF * (rows * cols + cols),
        [rows, cols](const KernelTable& t) -> Body {
          auto x = buffer(rows * cols, -1, 1, 13), y = buffer(cols, 0, 0, 14);
          return [&t, x, y, rows, cols] { t.sum_cols(x->data(), y->data(), rows, cols, false); };
        });
  }
  // modReLU over an NCGRU state batch.
  for (const auto& shape : {std::pair<size_t, size_t>{16, 256}, {16, 410}}) {
    const size_t rows = shape.first, cols = shape.second;  // named: lambdas capture them
    add("modrelu_forward", dims(rows, cols), Rate::bytes, kF * (2 * rows * cols + cols),
        [rows, cols](const KernelTable& t) -> Body {
          auto z = buffer(rows * cols, -1, 1, 15), b = buffer(cols, -0.5, 0.5, 16),
               y = buffer(rows * cols, 0, 0, 17);
          return [&t, z, b, y, rows, cols] {
            t.modrelu_forward(z->data(), b->data(), y->data(), rows, cols);
          };
        });
    add("modrelu_backward", dims(rows, cols), Rate::bytes, kF * (3 * rows * cols + 3 * cols),
        [rows, cols](const KernelTable& t) -> Body {
          auto z = buffer(rows * cols, -1, 1, 15), b = buffer(cols, -0.5, 0.5, 16),
               g = buffer(rows * cols, -1, 1, 18), dz = buffer(rows * cols, 0, 0, 19),
               db = buffer(cols, 0, 0, 20);
          return [&t, z, b, g, dz, db, rows, cols] {
            t.modrelu_backward(z->data(), b->data(), g->data(), dz->data(), db->data(), rows, cols);
          };
        });
  }
  const size_t params = size_t(1) << 20;
  add("adam_update", std::to_string(params), Rate::bytes, 7 * kF * params,
      [params](const KernelTable& t) -> Body {
        auto p = buffer(params, -1, 1, 21), g = buffer(params, -1, 1, 22),
             m = buffer(params, -0.1f, 0.1f, 23), v = buffer(params, 0, 0.01f, 24);
        crt::kernels::AdamStep s{1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0.1f, 0.01f, true};
        return [&t, p, g, m, v, params, s] {
          t.adam_update(p->data(), g->data(), m->data(), v->data(), params, s);
        };
      });
}

void register_softmax() {
  // Attention-score rows (batch 16 x heads 10 x segment 70, over 140 keys) and vocabulary rows.
  for (const auto& shape :
       {std::pair<size_t, size_t>{11200, 140}, {70, 10000}, {16, 33278}}) {
    const size_t rows = shape.first, cols = shape.second;  // named: lambdas capture them
    const double n = double(rows * cols);
    add("softmax_rows", dims(rows, cols), Rate::bytes, 2 * kF * n,
        [rows, cols](const KernelTable& t) -> Body {
          auto x = buffer(rows * cols, -8, 8, 31), y = buffer(rows * cols, 0, 0, 32);
          return [&t, x, y, rows, cols] { t.softmax_rows(x->data(), y->data(), rows, cols); };
        });
    add("softmax_backward_rows", dims(rows, cols), Rate::bytes, 3 * kF * n,
        [rows, cols](const KernelTable& t) -> Body {
          auto y = buffer(rows * cols, 0, 0.01f, 33), g = buffer(rows * cols, -1, 1, 34),
               dx = buffer(rows * cols, 0, 0, 35);
          return [&t, y, g, dx, rows, cols] {
            t.softmax_backward_rows(y->data(), g->data(), dx->data(), rows, cols);
          };
        });
    add("log_softmax_rows", dims(rows, cols), Rate::bytes, 2 * kF * n,
        [rows, cols](const KernelTable& t) -> Body {
          auto x = buffer(rows * cols, -8, 8, 36), y = buffer(rows * cols, 0, 0, 37);
          return [&t, x, y, rows, cols] { t.log_softmax_rows(x->data(), y->data(), rows, cols); };
        });
    add("log_softmax_backward_rows", dims(rows, cols), Rate::bytes, 3 * kF * n,
        [rows, cols](const KernelTable& t) -> Body {
          auto y = buffer(rows * cols, -12, -4, 38), g = buffer(rows * cols, -1, 1, 39),
               dx = buffer(rows * cols, 0, 0, 40);
          return [&t, y, g, dx, rows, cols] {
            t.log_softmax_backward_rows(y->data(), g->data(), dx->data(), rows, cols);
          };
        });
  }
  // Cross-entropy over a batch of 16 rows: PTB-word (10000) and WikiText-103 (267735) vocabularies.
  for (size_t cols : {size_t(10000), size_t(267735)}) {
    const size_t rows = 16;
    const double n = double(rows * cols);
    const auto targets = std::make_shared<std::vector<std::int32_t>>(rows);
    for (size_t r = 0; r < rows; ++r) (*targets)[r] = std::int32_t((r * 7919) % cols);
    add("cross_entropy_forward", dims(rows, cols), Rate::bytes, kF * n,
        [rows, cols, targets](const KernelTable& t) -> Body {
          auto x = buffer(rows * cols, -8, 8, 41), loss = buffer(rows, 0, 0, 42),
               lse = buffer(rows, 0, 0, 43);
          return [&t, x, targets, loss, lse, rows, cols] {
            t.cross_entropy_forward(x->data(), targets->data(), loss->data(), lse->data(), rows,
                                    cols, -100);
          };
        });
    add("cross_entropy_backward", dims(rows, cols), Rate::bytes, 2 * kF * n,
        [rows, cols, targets](const KernelTable& t) -> Body {
          auto x = buffer(rows * cols, -8, 8, 41), lse = buffer(rows, 12, 12, 44),
               scale = buffer(rows, 1.0f / 16, 1.0f / 16, 45), dx = buffer(rows * cols, 0, 0, 46);
          return [&t, x, lse, targets, scale, dx, rows, cols] {
            t.cross_entropy_backward(x->data(), lse->data(), targets->data(), scale->data(),
                                     dx->data(), rows, cols, -100);
          };
        });
  }
}

void register_norm_gru() {
  for (size_t cols : {size_t(256), size_t(410)}) {
    const size_t rows = 1120;  // batch 16 x segment 70
    const double n = double(rows * cols);
    add("layernorm_forward", dims(rows, cols), Rate::bytes, kF * (2 * n + 2 * cols),
        [rows, cols](const KernelTable& t) -> Body {
          auto x = buffer(rows * cols, -2, 2, 51), g = buffer(cols, 0.5, 1.5, 52),
               b = buffer(cols, -1, 1, 53), y = buffer(rows * cols, 0, 0, 54),
               mean = buffer(rows, 0, 0, 55), rstd = buffer(rows, 0, 0, 56);
          return [&t, x, g, b, y, mean, rstd, rows, cols] {
            t.layernorm_forward(x->data(), g->data(), b->data(), y->data(), mean->data(),
                                rstd->data(), rows, cols, 1e-5f);
          };
        });
    add("layernorm_backward", dims(rows, cols), Rate::bytes, kF * (3 * n + 3 * cols),
        [rows, cols](const KernelTable& t) -> Body {
          auto x = buffer(rows * cols, -2, 2, 51), g = buffer(cols, 0.5, 1.5, 52),
               mean = buffer(rows, -0.1f, 0.1f, 57), rstd = buffer(rows, 0.5, 1.5, 58),
               dy = buffer(rows * cols, -1, 1, 59), dx = buffer(rows * cols, 0, 0, 60),
               dg = buffer(cols, 0, 0, 61), db = buffer(cols, 0, 0, 62);
          return [&t, x, g, mean, rstd, dy, dx, dg, db, rows, cols] {
            t.layernorm_backward(x->data(), g->data(), mean->data(), rstd->data(), dy->data(),
                                 dx->data(), dg->data(), db->data(), rows, cols);
          };
        });
  }
  for (size_t hidden : {size_t(256), size_t(410)})
    for (size_t batch : {size_t(1), size_t(16)}) {
      const size_t H = hidden, g3 = 3 * H;
      add("gru_gates_forward", dims(batch, H), Rate::bytes, kF * batch * (2 * g3 + 2 * H),
          [batch, H, g3](const KernelTable& t) -> Body {
            auto gi = buffer(batch * g3, -2, 2, 71), gh = buffer(batch * g3, -2, 2, 72),
                 h = buffer(batch * H, -1, 1, 73), out = buffer(batch * H, 0, 0, 74);
            return [&t, gi, gh, h, out, batch, H] {
              t.gru_gates_forward(gi->data(), gh->data(), h->data(), out->data(), batch, H);
            };
          });
      add("gru_gates_backward", dims(batch, H), Rate::bytes, kF * batch * (4 * g3 + 3 * H),
          [batch, H, g3](const KernelTable& t) -> Body {
            auto gi = buffer(batch * g3, -2, 2, 71), gh = buffer(batch * g3, -2, 2, 72),
                 h = buffer(batch * H, -1, 1, 73), g = buffer(batch * H, -1, 1, 75),
                 dgi = buffer(batch * g3, 0, 0, 76), dgh = buffer(batch * g3, 0, 0, 77),
                 dh = buffer(batch * H, 0, 0, 78);
            return [&t, gi, gh, h, g, dgi, dgh, dh, batch, H] {
              t.gru_gates_backward(gi->data(), gh->data(), h->data(), g->data(), dgi->data(),
                                   dgh->data(), dh->data(), batch, H);
            };
          });
    }
}

void register_gemv_f64() {
  // A batch-1 GRU step's recurrent product, W_hh [3H, H] packed in the variant's panels
  // (d = 256: 768 KB, in L2; d = 410: 2 MB, beyond it), and the one-cell step's 1.5 MB.
  for (const auto& shape : {std::pair<size_t, size_t>{768, 256}, {1536, 256}, {1230, 410}}) {
    const size_t n = shape.first, k = shape.second;  // named: lambdas capture them
    add("gemv_packed", dims(n, k), Rate::bytes, kF * double(n * k),
        [n, k](const KernelTable& t) -> Body {
          const size_t panel = t.lanes;
          auto w = buffer(n * k, -1, 1, 81), a = buffer(k, -1, 1, 82), c = buffer(n, 0, 0, 83);
          auto packed = std::make_shared<std::vector<float>>(
              crt::kernels::gemv_packed_size(n, k, panel));
          ref::gemv_pack<float>(w->data(), k, n, k, panel, packed->data());
          return [&t, packed, a, c, n, k] {
            t.gemv_packed(a->data(), packed->data(), n, k, 0.0f, c->data());
          };
        });
  }
  // The NCGRU's orthogonal update: H x H products in double.
  for (size_t h : {size_t(256), size_t(410)}) {
    add("gemm_f64_accumulate", dims(h, h), Rate::flops, 2.0 * double(h * h * h),
        [h](const KernelTable& t) -> Body {
          auto a = std::make_shared<std::vector<double>>(h * h, 0.5),
               b = std::make_shared<std::vector<double>>(h * h, 0.25),
               c = std::make_shared<std::vector<double>>(h * h, 0.0);
          return [&t, a, b, c, h] {
            t.gemm_f64_accumulate(a->data(), b->data(), c->data(), h, h, h);
          };
        });
  }
}

void register_attention() {
  // One head of causal attention over a segment with an equally long memory (Tk = 2 Tq) and a
  // relative-position bias, as in the model's attention layers.
  for (size_t seg : {size_t(17), size_t(35), size_t(70), size_t(150)})
    for (size_t d : {size_t(32), size_t(41)}) {
      const size_t tq = seg, tk = 2 * seg;
      double pairs = 0;  // visible (query, key) pairs
      for (size_t i = 0; i < tq; ++i) pairs += double(i + 1 + (tk - tq));
      const std::string size = std::to_string(seg) + "x" + std::to_string(d);
      const AttentionShape shape{tq, tk, d, true};
      const float scale = 1.0f / std::sqrt(float(d));
      add("attention_forward", size, Rate::flops, 4.0 * pairs * double(d),
          [tq, tk, d, shape, scale](const KernelTable& t) -> Body {
            auto q = buffer(tq * d, -1, 1, 81), k = buffer(tk * d, -1, 1, 82),
                 v = buffer(tk * d, -1, 1, 83), bias = buffer(tq * tk, -1, 1, 84),
                 out = buffer(tq * d, 0, 0, 85), lse = buffer(tq, 0, 0, 86);
            return [&t, q, k, v, bias, out, lse, shape, scale] {
              t.attention_forward(q->data(), k->data(), v->data(), bias->data(), out->data(),
                                  lse->data(), shape, scale);
            };
          });
      add("attention_backward", size, Rate::flops, 8.0 * pairs * double(d),
          [tq, tk, d, shape, scale](const KernelTable& t) -> Body {
            auto q = buffer(tq * d, -1, 1, 81), k = buffer(tk * d, -1, 1, 82),
                 v = buffer(tk * d, -1, 1, 83), bias = buffer(tq * tk, -1, 1, 84),
                 out = buffer(tq * d, 0, 0, 85), lse = buffer(tq, 0, 0, 86),
                 dout = buffer(tq * d, -1, 1, 87), dq = buffer(tq * d, 0, 0, 88),
                 dk = buffer(tk * d, 0, 0, 89), dv = buffer(tk * d, 0, 0, 90),
                 dbias = buffer(tq * tk, 0, 0, 91);
            // out and lse from the reference forward, so that P is a distribution.
            ref::attention_forward<float>(q->data(), k->data(), v->data(), bias->data(),
                                          out->data(), lse->data(), shape, scale);
            return [&t, q, k, v, bias, out, lse, dout, dq, dk, dv, dbias, shape, scale] {
              t.attention_backward(q->data(), k->data(), v->data(), bias->data(), out->data(),
                                   lse->data(), dout->data(), dq->data(), dk->data(), dv->data(),
                                   dbias->data(), shape, scale);
            };
          });
    }
}

}  // namespace

int main(int argc, char** argv) {
  return crt::bench::run_benchmarks(argc, argv, [] {
    register_elementwise();
    register_softmax();
    register_norm_gru();
    register_gemv_f64();
    register_attention();
  });
}
