// Which allocations a sampled tracer records: a Poisson process over the
// bytes a thread allocates, with a mean of `interval` bytes between sample
// points. A block is recorded when a point falls inside it, so a block of
// s bytes is recorded with probability 1 - exp(-s / interval), independently
// of every other block (the gaps are memoryless): the weights in weights.h
// make every sum over recorded blocks an unbiased estimate.
//
// One sampler per thread, owned by the caller (a thread_local), so the fast
// path is a subtraction and a branch with no lock and no shared cache line.
// Constant-initialised, so a thread_local needs no guard.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace heapscope::core::sampling {

class ByteSampler {
 public:
  constexpr ByteSampler() = default;

  // Counts `size` bytes. False in the common case: no sample point falls in
  // them and nothing else is needed. True when one may: the caller then
  // calls `cross()` (or resets the sampler first if it is stale).
  [[gnu::always_inline]] bool consume(std::size_t size) noexcept {
    countdown_ -= static_cast<std::int64_t>(size);
    return countdown_ <= 0;
  }

  // After consume() returned true: draws the gaps after the point(s) that
  // fell in the block, so the countdown measures the way to the next point.
  void cross() noexcept {
    while (countdown_ <= 0) countdown_ += gap();
  }

  // Starts a new process: `interval` mean bytes between points (> 0).
  void reset(std::uint64_t interval, std::uint64_t seed) noexcept {
    mean_ = static_cast<double>(interval);
    state_ = seed;
    countdown_ = gap();
  }

  // The countdown, to save and restore around a probe that must not move it.
  std::int64_t countdown() const noexcept { return countdown_; }
  void set_countdown(std::int64_t countdown) noexcept { countdown_ = countdown; }

 private:
  // splitmix64: tiny state, good enough equidistribution for gap draws, and
  // no allocation (std::mt19937_64 would cost 5 KiB of TLS per thread).
  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  // An exponential gap of mean `mean_` bytes, at least 1.
  std::int64_t gap() noexcept {
    // 53 random bits -> a uniform in (0, 1]: log never sees 0.
    const double u = static_cast<double>((next() >> 11) + 1) * 0x1.0p-53;
    const double g = -std::log(u) * mean_;
    constexpr double kMax = 0x1.0p62;
    return g >= kMax ? static_cast<std::int64_t>(kMax) : static_cast<std::int64_t>(g) + 1;
  }

  std::int64_t countdown_ = 0;
  std::uint64_t state_ = 0;
  double mean_ = 0;
};

}  // namespace heapscope::core::sampling
