// Learning-rate schedules as small value types: lr_at(step) gives the rate for the update made
// after `step` completed updates (Optimizer::step_count()), so lr_at(0) drives the first one.
#pragma once

#include <cstdint>

namespace crt {

// The same rate at every step.
class ConstantLR {
 public:
  explicit ConstantLR(double base);
  double lr_at(std::int64_t step) const;
  double base() const { return base_; }

 private:
  double base_;
};

// Linear warm-up: base * (step + 1) / warmup_steps while step < warmup_steps (reaching base at
// step warmup_steps - 1), then base. warmup_steps == 0 is a constant rate.
class WarmupLR {
 public:
  WarmupLR(double base, std::int64_t warmup_steps);
  double lr_at(std::int64_t step) const;
  double base() const { return base_; }
  std::int64_t warmup_steps() const { return warmup_; }

 private:
  double base_;
  std::int64_t warmup_;
};

// Linear warm-up as WarmupLR, then cosine decay from base towards min_lr: for step >= warmup_steps,
//   lr = min_lr + (base - min_lr) * (1 + cos(pi * (step - warmup_steps) / (total_steps - warmup_steps))) / 2
// so the first update after warm-up runs at base and the last (step total_steps - 1) just above
// min_lr, which is reached only after the run (and kept). Without warm-up this is Transformer-XL's
// schedule (CosineAnnealingLR over max_step, stepped after each update); with warm-up, TXL's
// cosine keeps counting from step 0, ours spans the steps after the warm-up.
class WarmupCosineLR {
 public:
  WarmupCosineLR(double base, std::int64_t warmup_steps, std::int64_t total_steps,
                 double min_lr = 0.0);
  double lr_at(std::int64_t step) const;
  double base() const { return base_; }
  double min_lr() const { return min_lr_; }
  std::int64_t warmup_steps() const { return warmup_; }
  std::int64_t total_steps() const { return total_; }

 private:
  double base_;
  std::int64_t warmup_;
  std::int64_t total_;
  double min_lr_;
};

}  // namespace crt
