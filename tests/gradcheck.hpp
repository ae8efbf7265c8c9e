// Shared test helpers: finite-difference gradient checking in double precision, error-message
// checks, and small comparisons.
// Finite-difference gradient checking in double precision. f maps the inputs to any tensor;
// the check contracts it with a fixed random weight to a scalar, so the whole vector-Jacobian
// product is compared: analytic (backward) against central differences, element by element.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "engine/parallel.hpp"
#include "engine/ops.hpp"
#include "engine/random.hpp"

namespace crt::testing {

// Runs fn, expects crt::Error, and checks that each fragment appears in its message.
template <class Fn>
void expect_error(Fn&& fn, std::initializer_list<const char*> fragments) {
  try {
    fn();
    FAIL("expected crt::Error");
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const char* f : fragments)
      CHECK_MESSAGE(msg.find(f) != std::string::npos, "message: ", msg, " lacks: ", f);
  }
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

// Restores the default thread count when a test changes it.
struct ThreadCountReset {
  ~ThreadCountReset() { set_num_threads(0); }
};

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Random double input of a shape, marked as requiring grad.
inline Tensor rand_input(const Shape& shape, Generator& gen, double lo = -1.0, double hi = 1.0) {
  Tensor t = uniform(shape, lo, hi, gen, DType::f64);
  t.set_requires_grad(true);
  return t;
}

struct GradCheckOptions {
  double eps = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
  std::int64_t max_elements_per_input = 400;  // elements probed per input (evenly spread)
};

// Returns the largest |analytic - numeric| / (atol + rtol * |numeric|); <= 1 passes.
inline double gradcheck(const Fn& f, std::vector<Tensor> inputs, GradCheckOptions opt = {}) {
  Generator gen(1234);
  Tensor probe = f(inputs);
  const Tensor weight = uniform(probe.shape(), -1.0, 1.0, gen, DType::f64);
  auto loss_of = [&](const std::vector<Tensor>& xs) { return sum(mul(f(xs), weight)); };
  for (auto& x : inputs) x.zero_grad();
  loss_of(inputs).backward();
  double worst = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    Tensor& x = inputs[i];
    if (!x.requires_grad()) continue;
    const Tensor analytic = x.grad();
    REQUIRE_MESSAGE(analytic.defined(), "input ", i, " got no gradient");
    REQUIRE(analytic.shape() == x.shape());
    const std::vector<double> ga = analytic.to_vector();
    const std::int64_t n = x.numel();
    const std::int64_t step = std::max<std::int64_t>(1, n / opt.max_elements_per_input);
    for (std::int64_t e = 0; e < n; e += step) {
      // Perturb element e of the contiguous input in place (outside the graph).
      double numeric;
      {
        NoGradGuard ng;
        // Raw writes: bump the version so that caches of derived data (weight_cache.hpp) see them.
        double* p = x.data<double>() + e;
        const double orig = *p;
        *p = orig + opt.eps;
        x.bump_version();
        const double up = loss_of(inputs).item();
        *p = orig - opt.eps;
        x.bump_version();
        const double down = loss_of(inputs).item();
        *p = orig;
        x.bump_version();
        numeric = (up - down) / (2 * opt.eps);
      }
      const double err = std::abs(ga[std::size_t(e)] - numeric) / (opt.atol + opt.rtol * std::abs(numeric));
      if (err > 1.0)
        FAIL_CHECK("input ", i, " element ", e, ": analytic ", ga[std::size_t(e)], " vs numeric ",
                   numeric);
      worst = std::max(worst, err);
    }
  }
  return worst;
}

}  // namespace crt::testing
