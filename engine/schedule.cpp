// Learning-rate schedules: constant, linear warm-up, warm-up + cosine decay.
#include "engine/schedule.hpp"

#include <cmath>
#include <numbers>

#include "engine/error.hpp"

namespace crt {

namespace {

void require_base(double base, const char* op) {
  require(std::isfinite(base) && base >= 0.0, op, "base learning rate must be finite and >= 0, got ",
          base);
}

void require_step(std::int64_t step, const char* op) {
  require(step >= 0, op, "step must be >= 0, got ", step);
}

// base * (step + 1) / warmup during warm-up, else base.
double warmup_rate(double base, std::int64_t warmup, std::int64_t step) {
  if (step >= warmup) return base;
  return base * double(step + 1) / double(warmup);
}

}  // namespace

ConstantLR::ConstantLR(double base) : base_(base) { require_base(base, "ConstantLR"); }

double ConstantLR::lr_at(std::int64_t step) const {
  require_step(step, "ConstantLR");
  return base_;
}

WarmupLR::WarmupLR(double base, std::int64_t warmup_steps) : base_(base), warmup_(warmup_steps) {
  require_base(base, "WarmupLR");
  require(warmup_steps >= 0, "WarmupLR", "warmup_steps must be >= 0, got ", warmup_steps);
}

double WarmupLR::lr_at(std::int64_t step) const {
  require_step(step, "WarmupLR");
  return warmup_rate(base_, warmup_, step);
}

WarmupCosineLR::WarmupCosineLR(double base, std::int64_t warmup_steps, std::int64_t total_steps,
                               double min_lr)
    : base_(base), warmup_(warmup_steps), total_(total_steps), min_lr_(min_lr) {
  const char* op = "WarmupCosineLR";
  require_base(base, op);
  require(warmup_steps >= 0, op, "warmup_steps must be >= 0, got ", warmup_steps);
  require(total_steps > 0, op, "total_steps must be > 0, got ", total_steps);
  require(total_steps >= warmup_steps, op, "total_steps (", total_steps,
          ") must be >= warmup_steps (", warmup_steps, ")");
  require(std::isfinite(min_lr) && min_lr >= 0.0 && min_lr <= base, op, "min_lr must be in [0, base = ",
          base, "], got ", min_lr);
}

double WarmupCosineLR::lr_at(std::int64_t step) const {
  require_step(step, "WarmupCosineLR");
  if (step < warmup_) return warmup_rate(base_, warmup_, step);
  if (step >= total_) return min_lr_;
  const double progress = double(step - warmup_) / double(total_ - warmup_);
  return min_lr_ + (base_ - min_lr_) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace crt
