// The weight of a recorded block under byte sampling (byte_sampler.h): a
// block of s bytes is recorded with probability p(s) = 1 - exp(-s / I), so
// counting it as 1 / p(s) blocks of s / p(s) bytes makes every sum over the
// recorded blocks an unbiased (Horvitz-Thompson) estimate of the sum over
// all blocks. Its variance is estimated from the same blocks: each one adds
// (1 - p) / p^2 times its value squared.
#pragma once

#include <cmath>
#include <cstdint>

namespace heapscope::core::sampling {

// The sampler counts a zero-byte block as one byte (sampled_size), or it
// could never be recorded and counts would miss it.
inline std::uint64_t sampled_size(std::uint64_t size) noexcept { return size == 0 ? 1 : size; }

inline double inclusion_probability(std::uint64_t size, std::uint64_t interval) noexcept {
  return -std::expm1(-static_cast<double>(sampled_size(size)) / static_cast<double>(interval));
}

// The estimated bytes a recorded block stands for, rounded to whole bytes so
// that running totals add and subtract exactly.
inline std::uint64_t size_weight(std::uint64_t size, std::uint64_t interval) noexcept {
  if (interval == 0) return size;
  return static_cast<std::uint64_t>(
      std::llround(static_cast<double>(size) / inclusion_probability(size, interval)));
}

}  // namespace heapscope::core::sampling
