// Estimates of a total from the blocks a byte sampler recorded, and their
// 95 % confidence intervals.
//
// A statistic's size (or count) is estimated by summing each recorded
// block's value divided by its inclusion probability (weights.h). The
// interval treats that sum as a weighted sum of Poisson counts, the model
// byte sampling follows when blocks are small against the interval, and
// uses the gamma interval of Fay and Feuer (Statistics in Medicine, 1997)
// for such sums: exact (Garwood's interval) when all weights are equal,
// conservative otherwise, and sensible down to a single recorded block,
// where a normal interval would be far too narrow. The lower bound is never
// below what was actually seen.
//
// The upper bound allows for one more block than was seen (the continuity
// step): for sizes, a block whose weight is at least the interval (s / p(s)
// >= I for every s, so unseen small blocks are never ruled out even at a
// line whose sampled blocks were all certain); for counts, a block like the
// most lightly sampled one seen there (a line's unseen blocks are assumed no
// smaller than its smallest sampled block: the count of blocks far smaller
// than any sampled cannot be bounded usefully).
#pragma once

#include <cstdint>

namespace heapscope::core::sampling {

struct Estimate {
  double value = 0;         // the estimate: sum of value / p
  double variance = 0;      // its estimated variance: sum of (1 - p) (value / p)^2
  double max_term = 0;      // the largest sqrt(1 - p) * value / p of one block
  double max_weighted = 0;  // the largest value / p of one block
  double observed = 0;      // the sum of the recorded values themselves

  // One recorded block contributing `x` (its size, or 1 for counts) with
  // inclusion probability `p`.
  void add_block(double x, double p) noexcept;
  void add(const Estimate& other) noexcept;
  // `n` recorded blocks of the same x and p at once.
  void add_blocks(double x, double p, double n) noexcept;
};

struct Bounds {
  double low;
  double high;
};

inline constexpr double kConfidenceLevel = 0.95;

// The interval for the total that `e` estimates; `continuity` is the weight
// of the one block more that the upper bound allows for.
Bounds confidence_interval(const Estimate& e, double continuity) noexcept;

// The continuity weights described above.
inline double size_continuity(const Estimate& e, std::uint64_t interval) noexcept {
  const double floor = static_cast<double>(interval);
  return e.max_term > floor ? e.max_term : floor;
}
inline double count_continuity(const Estimate& e) noexcept { return e.max_weighted; }

// The interval for the change `now - old` between two independent
// estimates: normal, widened by half the larger continuity weight; blocks
// present in both snapshots make it conservative.
Bounds difference_interval(const Estimate& now, const Estimate& old, double continuity) noexcept;

// The q-quantile of the gamma distribution of shape `a` and scale 1; exposed
// for tests.
double gamma_quantile(double a, double q) noexcept;

}  // namespace heapscope::core::sampling
