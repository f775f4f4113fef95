// The byte sampler, the weights and intervals of its estimates, the address
// filter, and the engine in sampled mode.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <mutex>
#include <random>
#include <vector>

#include "core/engine.h"
#include "core/sampling/address_filter.h"
#include "core/sampling/byte_sampler.h"
#include "core/sampling/estimate.h"
#include "core/sampling/weights.h"

namespace heapscope::core::sampling {
namespace {

// The defining property: a block of s bytes holds a sample point with
// probability 1 - exp(-s / I), whatever came before it.
TEST(ByteSampler, SamplesEachBlockWithItsInclusionProbability) {
  constexpr std::uint64_t kInterval = 4096;
  ByteSampler sampler;
  sampler.reset(kInterval, 12345);
  const std::size_t sizes[] = {16, 512, 4096, 20000};
  std::size_t hits[4] = {}, draws[4] = {};
  std::mt19937_64 order(7);
  for (int i = 0; i < 400000; ++i) {
    const std::size_t k = order() % 4;
    ++draws[k];
    if (sampler.consume(sizes[k])) {
      sampler.cross();
      ++hits[k];
    }
  }
  for (std::size_t k = 0; k < 4; ++k) {
    const double p = inclusion_probability(sizes[k], kInterval);
    const double n = static_cast<double>(draws[k]);
    const double sd = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(static_cast<double>(hits[k]), n * p, 5 * sd + 1) << "size " << sizes[k];
  }
}

TEST(ByteSampler, SameSeedSameDecisions) {
  ByteSampler a, b;
  a.reset(1000, 99);
  b.reset(1000, 99);
  for (int i = 0; i < 10000; ++i) {
    const bool hit = a.consume(37);
    ASSERT_EQ(hit, b.consume(37));
    if (hit) {
      a.cross();
      b.cross();
    }
  }
}

TEST(Weights, SizeWeightIsAtLeastTheIntervalAndAtLeastTheSize) {
  for (std::uint64_t s : {1ull, 16ull, 1000ull, 524288ull, 10000000ull}) {
    const std::uint64_t w = size_weight(s, 524288);
    EXPECT_GE(w, s);
    EXPECT_GE(w + 1, 524288u);
  }
  EXPECT_EQ(size_weight(1000, 0), 1000u);  // exact mode: the size itself
  EXPECT_EQ(inclusion_probability(0, 100), inclusion_probability(1, 100));
}

TEST(Estimate, GammaQuantilesMatchReferenceValues) {
  // scipy.stats.gamma.ppf
  EXPECT_NEAR(gamma_quantile(1, 0.975), -std::log(0.025), 1e-9);
  EXPECT_NEAR(gamma_quantile(0.5, 0.975), 2.511943093657444, 1e-6);
  EXPECT_NEAR(gamma_quantile(10, 0.025), 4.7953886961324335, 1e-6);
  EXPECT_NEAR(gamma_quantile(5000, 0.975), 5139.535089943795, 1e-3);
  EXPECT_EQ(gamma_quantile(0, 0.5), 0);
}

TEST(Estimate, EqualWeightsGiveGarwoodsInterval) {
  Estimate e;
  const double p = 0.01;
  for (int i = 0; i < 3; ++i) e.add_block(1, p);
  const Bounds b = confidence_interval(e, count_continuity(e));
  // value 300, variance 3 * (1 - p) * 100^2: gamma of shape 3 / 0.99, scale 99
  EXPECT_NEAR(b.low, 99 * gamma_quantile(3 / 0.99, 0.025), 1e-6);
  EXPECT_GT(b.high, e.value);
  EXPECT_LE(b.low, e.value);
}

TEST(Estimate, CertainBlocksStillAllowForUnseenSmallOnes) {
  Estimate e;
  e.add_block(10'000'000, 1.0);  // recorded for sure
  const Bounds b = confidence_interval(e, size_continuity(e, 524288));
  EXPECT_EQ(b.low, 10'000'000);
  EXPECT_GT(b.high, 10'000'000 + 524288.0);
  EXPECT_LT(b.high, 10'000'000 + 10 * 524288.0);
}

TEST(Estimate, LowerBoundNeverBelowWhatWasSeen) {
  Estimate e;
  e.add_block(5000, 0.5);
  const Bounds b = confidence_interval(e, size_continuity(e, 8192));
  EXPECT_GE(b.low, 5000);
}

TEST(AddressFilter, NeverForgetsATracedAddress) {
  auto filter = std::make_unique<AddressFilter>();
  std::vector<std::uintptr_t> traced;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 5000; ++i) {
    const std::uintptr_t a = (rng() & 0xFFFFFFFFF0ull) | 0x10000000000ull;
    filter->add(a);
    traced.push_back(a);
  }
  for (std::size_t i = 0; i < traced.size(); i += 2) filter->remove(traced[i]);
  for (std::size_t i = 1; i < traced.size(); i += 2) EXPECT_TRUE(filter->may_contain(traced[i]));
  filter->clear();
  std::size_t left = 0;
  for (std::uintptr_t a : traced) left += filter->may_contain(a);
  EXPECT_EQ(left, 0u);
}

TEST(AddressFilter, SaturatedCounterStaysSet) {
  auto filter = std::make_unique<AddressFilter>();
  const std::uintptr_t a = 0x7f0000001000;
  for (int i = 0; i < 300; ++i) filter->add(a);
  for (int i = 0; i < 300; ++i) filter->remove(a);
  EXPECT_TRUE(filter->may_contain(a));  // over-approximates, never under
}

TEST(EngineSampled, CountersHoldWeightedEstimatesAndReturnToZero) {
  auto engine = std::make_unique<Engine>();
  std::uint32_t tb;
  {
    std::lock_guard lock(engine->mutex());
    engine->set_sample_interval_unlocked(4096);
    engine->set_tracing_unlocked(true);
    const std::uint32_t file = engine->intern_filename_unlocked("a.py");
    const std::uint32_t frame = engine->intern_frame_unlocked(file, 1);
    tb = engine->intern_traceback_unlocked(1, {&frame, 1});
    engine->add_trace_unlocked(0x1000, 100, tb);
    engine->add_trace_unlocked(0x2000, 100000, tb);
  }
  EXPECT_EQ(engine->memory().current, size_weight(100, 4096) + size_weight(100000, 4096));
  EXPECT_TRUE(engine->may_be_traced(0x1000));
  EXPECT_TRUE(engine->may_be_traced(0x2000));
  engine->remove_trace(0x1000);
  engine->remove_trace(0x2000);
  EXPECT_EQ(engine->memory().current, 0u);
  EXPECT_FALSE(engine->may_be_traced(0x1000));
  FrozenTraces frozen = engine->take_snapshot();
  EXPECT_EQ(frozen.sample_interval, 4096u);
}

TEST(EngineSampled, ExactModeConsidersEveryAddress) {
  auto engine = std::make_unique<Engine>();
  EXPECT_TRUE(engine->may_be_traced(0x1234));
}

}  // namespace
}  // namespace heapscope::core::sampling
