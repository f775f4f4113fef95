// TraceTable against a model: every operation is applied to the table and to
// a std::unordered_map, and the two must agree after each step. The stress
// run at the end is the long version, meant to run under ASan and UBSan.
#include "core/trace_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <unordered_map>
#include <utility>
#include <vector>

#include "trace_model.h"

namespace heapscope::core {
namespace {

constexpr std::size_t k4GiB = std::size_t{1} << 32;
constexpr std::uintptr_t kRegion = 64 * 1024;
constexpr std::uintptr_t kPool = 4 * 1024;

using Value = test_model::TraceValue;
using Model = test_model::TraceModel;

// Addresses shaped like pymalloc's (64 KiB regions of 4 KiB pools, each pool
// cut in blocks of one 16..512-byte stride after a 48-byte header) or like
// malloc's and mmap's (anywhere, 16-byte aligned).
class AddressSource {
 public:
  explicit AddressSource(std::mt19937_64& rng) : rng_(rng) {
    // Half the regions are neighbours (an arena), half are far apart.
    const std::uintptr_t arena = 0x7f3a12340000;
    for (std::uintptr_t k = 0; k < 16; ++k) regions_.push_back(arena + k * kRegion);
    for (int k = 0; k < 16; ++k) {
      regions_.push_back(std::uniform_int_distribution<std::uintptr_t>(1, (1ull << 31) - 1)(rng_) *
                         kRegion);
    }
  }

  std::uintptr_t clustered() {
    const std::uintptr_t region = regions_[pick(regions_.size())];
    const std::uintptr_t pool = pick(kRegion / kPool);
    // The stride is a property of the pool, as in pymalloc.
    const std::uintptr_t stride = 16 * (1 + (region / kRegion * 7 + pool * 13) % 32);
    const std::uintptr_t blocks = (kPool - 48) / stride;
    return region + pool * kPool + 48 + pick(blocks) * stride;
  }

  // Mostly 16-byte aligned; PyTraceMalloc_Track() accepts any pointer, so a
  // few are not even 8-byte aligned.
  std::uintptr_t scattered() {
    const std::uintptr_t a =
        std::uniform_int_distribution<std::uintptr_t>(1, (1ull << 43) - 1)(rng_) * 16;
    return pick(50) == 0 ? a + 1 + pick(15) : a;
  }

  std::uintptr_t any() { return pick(10) < 7 ? clustered() : scattered(); }

 private:
  std::uintptr_t pick(std::uintptr_t n) {
    return std::uniform_int_distribution<std::uintptr_t>(0, n - 1)(rng_);
  }

  std::mt19937_64& rng_;
  std::vector<std::uintptr_t> regions_;
};

// Mostly small blocks, some medium, and a few at the edges of the inline
// size fields (16 and 32 bits) and beyond 4 GiB.
std::size_t random_size(std::mt19937_64& rng) {
  const int kind = std::uniform_int_distribution<int>(0, 99)(rng);
  if (kind < 85) return std::uniform_int_distribution<std::size_t>(1, 512)(rng);
  if (kind < 95) return std::uniform_int_distribution<std::size_t>(513, 1 << 24)(rng);
  constexpr std::array<std::size_t, 11> kEdges = {0,
                                                  65534,
                                                  65535,
                                                  65536,
                                                  std::numeric_limits<std::uint32_t>::max() - 1,
                                                  std::numeric_limits<std::uint32_t>::max(),
                                                  k4GiB,
                                                  k4GiB + 1,
                                                  std::numeric_limits<std::size_t>::max() / 2,
                                                  std::numeric_limits<std::size_t>::max() - 1,
                                                  std::numeric_limits<std::size_t>::max()};
  if (kind < 99)
    return kEdges[std::uniform_int_distribution<std::size_t>(0, kEdges.size() - 1)(rng)];
  return std::uniform_int_distribution<std::size_t>(k4GiB, std::size_t{1} << 45)(rng);
}

// Any id the engine can hand out; UINT32_MAX is kNoId, which it never stores.
std::uint32_t random_traceback(std::mt19937_64& rng) {
  return std::uniform_int_distribution<std::uint32_t>(0, UINT32_MAX - 1)(rng);
}

// Checks size(), find() of every live trace, and that for_each visits each
// live trace exactly once with its current size and traceback.
void expect_same(const TraceTable& table, const Model& model) {
  ASSERT_EQ(table.size(), model.size());
  std::unordered_map<std::uintptr_t, int> visits;
  table.for_each([&](const TraceRecord& r) {
    ++visits[r.address];
    auto it = model.map().find(r.address);
    ASSERT_NE(it, model.map().end()) << "for_each visited untraced address " << r.address;
    EXPECT_EQ(r.size, it->second.size) << "address " << r.address;
    EXPECT_EQ(r.traceback, it->second.traceback) << "address " << r.address;
  });
  ASSERT_EQ(visits.size(), model.size());
  for (const auto& [address, count] : visits) ASSERT_EQ(count, 1) << "address " << address;
  for (const auto& [address, value] : model.map()) {
    TraceRecord r{};
    ASSERT_TRUE(table.find(address, &r)) << "lost address " << address;
    ASSERT_EQ(r.address, address);
    ASSERT_EQ(r.size, value.size);
    ASSERT_EQ(r.traceback, value.traceback);
  }
}

// The trace of `address` is there, with this size and traceback.
void expect_trace(const TraceTable& table, std::uintptr_t address, std::size_t size,
                  std::uint32_t traceback) {
  TraceRecord r{};
  ASSERT_TRUE(table.find(address, &r)) << address;
  EXPECT_EQ(r.address, address);
  EXPECT_EQ(r.size, size);
  EXPECT_EQ(r.traceback, traceback);
}

TEST(TraceTable, StartsEmptyAndFindsNothing) {
  TraceTable table;
  TraceRecord r{};
  EXPECT_EQ(table.size(), 0u);
  EXPECT_FALSE(table.find(0x1000, &r));
  EXPECT_FALSE(table.erase(0x1000, &r));
  int visits = 0;
  table.for_each([&](const TraceRecord&) { ++visits; });
  EXPECT_EQ(visits, 0);
}

TEST(TraceTable, InsertedTraceIsFoundWithItsSizeAndTraceback) {
  TraceTable table;
  ASSERT_TRUE(table.insert(0x7f0000001230, 48, 7));
  TraceRecord r{};
  ASSERT_TRUE(table.find(0x7f0000001230, &r));
  EXPECT_EQ(r.address, 0x7f0000001230u);
  EXPECT_EQ(r.size, 48u);
  EXPECT_EQ(r.traceback, 7u);
  EXPECT_FALSE(table.find(0x7f0000001240, &r));
  EXPECT_EQ(table.size(), 1u);
}

TEST(TraceTable, InsertAtATracedAddressReplacesTheTrace) {
  TraceTable table;
  ASSERT_TRUE(table.insert(0x5000, 10, 1));
  ASSERT_TRUE(table.insert(0x5000, 20, 2));
  ASSERT_NO_FATAL_FAILURE(expect_trace(table, 0x5000, 20, 2));
  EXPECT_EQ(table.size(), 1u);
}

TEST(TraceTable, EraseReturnsTheRemovedTraceAndForgetsIt) {
  TraceTable table;
  ASSERT_TRUE(table.insert(0x5000, 10, 1));
  TraceRecord removed{};
  ASSERT_TRUE(table.erase(0x5000, &removed));
  EXPECT_EQ(removed.address, 0x5000u);
  EXPECT_EQ(removed.size, 10u);
  EXPECT_EQ(removed.traceback, 1u);
  EXPECT_EQ(table.size(), 0u);
  EXPECT_FALSE(table.find(0x5000, &removed));
  EXPECT_FALSE(table.erase(0x5000, nullptr));
}

TEST(TraceTable, EraseOfAnAbsentAddressChangesNothing) {
  TraceTable table;
  ASSERT_TRUE(table.insert(0x5000, 10, 1));
  EXPECT_FALSE(table.erase(0x5010, nullptr));
  EXPECT_FALSE(table.erase(0x15000, nullptr));  // same slot in a small table, other region
  EXPECT_EQ(table.size(), 1u);
  TraceRecord r{};
  EXPECT_TRUE(table.find(0x5000, &r));
}

TEST(TraceTable, SizesOfFourGiBAndMoreSurviveInsertReplaceAndErase) {
  TraceTable table;
  const std::size_t big = k4GiB + 12345;
  const std::size_t boundary = std::numeric_limits<std::uint32_t>::max();
  ASSERT_TRUE(table.insert(0x1000, big, 1));
  ASSERT_TRUE(table.insert(0x2000, boundary, 2));
  ASSERT_TRUE(table.insert(0x3000, boundary - 1, 3));
  TraceRecord r{};
  ASSERT_TRUE(table.find(0x1000, &r));
  EXPECT_EQ(r.size, big);
  ASSERT_TRUE(table.find(0x2000, &r));
  EXPECT_EQ(r.size, boundary);
  ASSERT_TRUE(table.find(0x3000, &r));
  EXPECT_EQ(r.size, boundary - 1);

  // big -> big, big -> small, small -> big
  ASSERT_TRUE(table.insert(0x1000, 2 * big, 4));
  ASSERT_TRUE(table.find(0x1000, &r));
  EXPECT_EQ(r.size, 2 * big);
  ASSERT_TRUE(table.insert(0x2000, 64, 5));
  ASSERT_TRUE(table.find(0x2000, &r));
  EXPECT_EQ(r.size, 64u);
  ASSERT_TRUE(table.insert(0x3000, big, 6));
  ASSERT_TRUE(table.find(0x3000, &r));
  EXPECT_EQ(r.size, big);

  ASSERT_TRUE(table.erase(0x1000, &r));
  EXPECT_EQ(r.size, 2 * big);
  ASSERT_TRUE(table.erase(0x3000, &r));
  EXPECT_EQ(r.size, big);
  // A small trace later stored at a formerly big address is not confused with it.
  ASSERT_TRUE(table.insert(0x1000, 8, 7));
  ASSERT_TRUE(table.find(0x1000, &r));
  EXPECT_EQ(r.size, 8u);
}

TEST(TraceTable, ReplacingABigSizeWithASmallOneForgetsTheBigSize) {
  // Both tables hold one small trace at the same address after having held
  // one big size there; the side map must be empty in both, so they report
  // the same memory.
  TraceTable replaced;
  ASSERT_TRUE(replaced.insert(0x1000, k4GiB, 1));
  ASSERT_TRUE(replaced.insert(0x1000, 16, 1));
  TraceTable erased;
  ASSERT_TRUE(erased.insert(0x1000, k4GiB, 1));
  ASSERT_TRUE(erased.erase(0x1000, nullptr));
  ASSERT_TRUE(erased.insert(0x1000, 16, 1));
  EXPECT_EQ(replaced.memory_bytes(), erased.memory_bytes());
}

TEST(TraceTable, ReinsertAfterEraseStoresTheNewTrace) {
  TraceTable table;
  for (std::uintptr_t a = 0x10000; a < 0x10000 + 4096 * 16; a += 16)
    ASSERT_TRUE(table.insert(a, 1, 1));
  for (std::uintptr_t a = 0x10000; a < 0x10000 + 4096 * 16; a += 32)
    ASSERT_TRUE(table.erase(a, nullptr));
  for (std::uintptr_t a = 0x10000; a < 0x10000 + 4096 * 16; a += 32)
    ASSERT_TRUE(table.insert(a, 2, 2));
  EXPECT_EQ(table.size(), 4096u);
  for (std::uintptr_t a = 0x10000; a < 0x10000 + 4096 * 16; a += 16) {
    TraceRecord r{};
    ASSERT_TRUE(table.find(a, &r));
    EXPECT_EQ(r.size, (a - 0x10000) % 32 == 0 ? 2u : 1u);
  }
}

TEST(TraceTable, ClearForgetsEverythingAndTheTableIsUsableAgain) {
  TraceTable table;
  for (std::uintptr_t a = 1; a <= 10000; ++a) ASSERT_TRUE(table.insert(a * 16, a, 0));
  ASSERT_TRUE(table.insert(0x1000000, k4GiB, 0));
  table.clear();
  EXPECT_EQ(table.size(), 0u);
  TraceRecord r{};
  EXPECT_FALSE(table.find(16, &r));
  EXPECT_FALSE(table.find(0x1000000, &r));
  EXPECT_FALSE(table.erase(16, nullptr));
  int visits = 0;
  table.for_each([&](const TraceRecord&) { ++visits; });
  EXPECT_EQ(visits, 0);
  ASSERT_TRUE(table.insert(0x1000000, 5, 9));
  ASSERT_TRUE(table.find(0x1000000, &r));
  EXPECT_EQ(r.size, 5u);
  EXPECT_EQ(table.size(), 1u);
}

TEST(TraceTable, GrowthKeepsEveryTrace) {
  TraceTable table;
  Model model;
  std::mt19937_64 rng(20240601);
  AddressSource source(rng);
  // Dense pymalloc-like regions, then scattered blocks, across many doublings.
  for (std::uintptr_t region = 0; region < 64; ++region) {
    for (std::uintptr_t a = 0; a < kRegion; a += 16) {
      const std::uintptr_t address = 0x7e0000000000 + region * 3 * kRegion + a;
      const Value v{a / 16 + 1, static_cast<std::uint32_t>(region)};
      ASSERT_TRUE(table.insert(address, v.size, v.traceback));
      model.put(address, v);
    }
  }
  for (int i = 0; i < 200000; ++i) {
    const std::uintptr_t address = source.scattered();
    const Value v{random_size(rng), random_traceback(rng)};
    ASSERT_TRUE(table.insert(address, v.size, v.traceback));
    model.put(address, v);
  }
  expect_same(table, model);
}

TEST(TraceTable, MemoryBytesGrowsWithTheNumberOfTraces) {
  TraceTable table;
  const std::size_t empty = table.memory_bytes();
  std::size_t previous = empty;
  for (std::uintptr_t n = 1; n <= 100000; ++n) {
    ASSERT_TRUE(table.insert(0x7f0000000000 + n * 32, 32, 0));
    const std::size_t now = table.memory_bytes();
    ASSERT_GE(now, previous) << "after " << n << " traces";
    previous = now;
  }
  // No layout stores an address, a size and a traceback id in less than 4 bytes.
  EXPECT_GT(previous, empty + 100000 * 4);
  table.clear();
  EXPECT_LE(table.memory_bytes(), empty + 64);
}

TEST(TraceTable, ErasingMostTracesGivesMostOfTheirMemoryBack) {
  // A long-running traced process frees what it allocated: the table must
  // follow the live traces down (trace_table.h keeps each table's load
  // "between 0.4 and 0.8"), not stay at its high-water mark.
  TraceTable table;
  const std::uintptr_t base = 0x7e0000000000;
  const std::uintptr_t end = base + (std::uintptr_t{16} << 20);  // 1 Mi blocks of 16 bytes
  for (std::uintptr_t a = base; a < end; a += 16) ASSERT_TRUE(table.insert(a, 16, 1));
  const std::size_t peak = table.memory_bytes();
  std::size_t kept = 0;
  for (std::uintptr_t a = base; a < end; a += 16) {
    if ((a - base) / 16 % 100 == 0) {
      ++kept;  // one block in a hundred stays
    } else {
      ASSERT_TRUE(table.erase(a, nullptr));
    }
  }
  ASSERT_EQ(table.size(), kept);
  EXPECT_LE(table.memory_bytes(), peak / 4)
      << table.size() << " traces left in " << table.memory_bytes() << " bytes (peak " << peak
      << ")";
}

TEST(TraceTable, RoundsOfBuildingAndDroppingKeepAtMostAMebibyteOfSpareSlots) {
  // Slot arrays that regions let go of are kept for reuse, within a budget
  // of 1 MiB (more only while the live tables are big): a table drained of
  // 200k traces stays that close to empty, round after round, and clear()
  // gives the spares back too.
  TraceTable table;
  const std::size_t empty = table.memory_bytes();
  const std::uintptr_t base = 0x7d0000000000;
  const std::uintptr_t end = base + 200000 * 16;
  std::size_t drained = 0;
  for (int round = 0; round < 3; ++round) {
    for (std::uintptr_t a = base; a < end; a += 16) ASSERT_TRUE(table.insert(a, 16, 2));
    EXPECT_GT(table.memory_bytes(), empty + 200000 * 4);
    for (std::uintptr_t a = base; a < end; a += 16) ASSERT_TRUE(table.erase(a, nullptr));
    ASSERT_EQ(table.size(), 0u);
    const std::size_t now = table.memory_bytes();
    EXPECT_LE(now, empty + (std::size_t{1} << 20) + 64 * 1024) << "round " << round;
    if (round > 0) {
      // No growth from round to round beyond the spare lists' own vectors.
      EXPECT_LE(now, drained + 256) << "round " << round;
    }
    drained = now;
  }
  table.clear();
  EXPECT_LE(table.memory_bytes(), empty + 64);
}

TEST(TraceTable, RefillingADrainedRegionNeverTakesMoreMemoryThanTheFirstFill) {
  // A drained table that grows again heads back toward its earlier peak in
  // bigger steps; the steps must stop at that peak, whatever the fill.
  for (const std::uintptr_t traces : {50u, 700u, 5000u, 10000u, 30000u}) {
    TraceTable table;
    const std::uintptr_t base = 0x7c0000000000;
    const auto fill = [&](std::uintptr_t count) {
      for (std::uintptr_t i = 0; i < count; ++i) ASSERT_TRUE(table.insert(base + i * 16, 16, 3));
    };
    const auto drain = [&](std::uintptr_t count) {
      for (std::uintptr_t i = 0; i < count; ++i) ASSERT_TRUE(table.erase(base + i * 16, nullptr));
    };
    fill(traces);
    const std::size_t first = table.memory_bytes();
    for (int round = 0; round < 3; ++round) {
      drain(traces);
      fill(traces / 2);  // a smaller structure: the table may grow less, never more
      EXPECT_LE(table.memory_bytes(), first + 256) << traces << " traces, round " << round;
      drain(traces / 2);
      fill(traces);
      EXPECT_LE(table.memory_bytes(), first + 256) << traces << " traces, round " << round;
      for (std::uintptr_t i = 0; i < traces; ++i) {
        TraceRecord found;
        ASSERT_TRUE(table.find(base + i * 16, &found));
        EXPECT_EQ(found.traceback, 3u);
      }
    }
  }
}

TEST(TraceTable, APymallocLikeHeapCostsAtMost24BytesPerTrace) {
  // DESIGN.md aims at 16 bytes per traced block or less (CPython: ~97).
  // Blocks of 16..512 bytes filling 4 KiB pools, one stride per pool, in
  // 256 KiB arenas spread over the address space, with a third freed.
  TraceTable table;
  std::mt19937_64 rng(5);
  std::size_t traced = 0;
  for (int arena = 0; arena < 64; ++arena) {
    const std::uintptr_t base = std::uniform_int_distribution<std::uintptr_t>(1, 1u << 30)(rng)
                                << 18;
    for (std::uintptr_t pool = base; pool < base + (256 << 10); pool += kPool) {
      const std::uintptr_t stride = 16 * (1 + rng() % 32);
      for (std::uintptr_t a = pool + 48; a + stride <= pool + kPool; a += stride) {
        if (rng() % 3 == 0) continue;
        ASSERT_TRUE(table.insert(a, stride, static_cast<std::uint32_t>(rng() % 1000)));
        ++traced;
      }
    }
  }
  ASSERT_EQ(table.size(), traced);
  const double per_trace = static_cast<double>(table.memory_bytes()) / static_cast<double>(traced);
  RecordProperty("bytes_per_trace", std::to_string(per_trace));
  EXPECT_LE(per_trace, 24.0) << traced << " traces, " << table.memory_bytes() << " bytes";
}

TEST(TraceTable, InsertReportsTheSizeOfTheTraceItReplaced) {
  TraceTable table;
  std::size_t replaced = 0;
  ASSERT_TRUE(table.insert(0x1000, 10, 1, &replaced));
  EXPECT_EQ(replaced, TraceTable::kNothingReplaced);
  ASSERT_TRUE(table.insert(0x1000, 20, 2, &replaced));
  EXPECT_EQ(replaced, 10u);
  ASSERT_TRUE(table.insert(0x1000, k4GiB + 3, 3, &replaced));
  EXPECT_EQ(replaced, 20u);
  ASSERT_TRUE(table.insert(0x1000, 7, 4, &replaced));
  EXPECT_EQ(replaced, k4GiB + 3);
  ASSERT_TRUE(table.insert(0x1003, 5, 5, &replaced));  // not 8-byte aligned
  EXPECT_EQ(replaced, TraceTable::kNothingReplaced);
  ASSERT_TRUE(table.insert(0x1003, 6, 6, &replaced));
  EXPECT_EQ(replaced, 5u);
  ASSERT_TRUE(table.erase(0x1000, nullptr));
  ASSERT_TRUE(table.insert(0x1000, 8, 7, &replaced));
  EXPECT_EQ(replaced, TraceTable::kNothingReplaced);
  EXPECT_EQ(table.size(), 2u);
}

// Young traces: the newest traces wait in a small array before moving to
// their regions. Filling it many times over moves every young trace out.
// (65,536 fresh traces: a young trace survives one in 2,048 of them, so
// e^-32 of the time all of them.)
void age_all(TraceTable& table, std::uintptr_t base) {
  constexpr std::uintptr_t kFresh = 65536;
  for (std::uintptr_t a = base; a < base + kFresh * 16; a += 16)
    ASSERT_TRUE(table.insert_fresh(a, 1, 9));
  for (std::uintptr_t a = base; a < base + kFresh * 16; a += 16)
    ASSERT_TRUE(table.erase(a, nullptr));
}

TEST(TraceTable, TracesKeepTheirSizeAndTracebackAsTheyAgeIntoTheirRegions) {
  TraceTable table;
  ASSERT_TRUE(table.insert_fresh(0x7f0000001230, 48, 7));
  ASSERT_TRUE(table.insert_fresh(0x7f0000001240, 65534, 8));  // the largest a young trace holds
  ASSERT_NO_FATAL_FAILURE(age_all(table, 0x7e0000000000));
  ASSERT_NO_FATAL_FAILURE(expect_trace(table, 0x7f0000001230, 48, 7));
  ASSERT_NO_FATAL_FAILURE(expect_trace(table, 0x7f0000001240, 65534, 8));
  EXPECT_EQ(table.size(), 2u);
}

TEST(TraceTable, InsertFreshReplacesAYoungTraceAtTheSameAddress) {
  TraceTable table;
  std::size_t replaced = 0;
  ASSERT_TRUE(table.insert_fresh(0x5000, 10, 1, &replaced));
  EXPECT_EQ(replaced, TraceTable::kNothingReplaced);
  ASSERT_TRUE(table.insert_fresh(0x5000, 20, 2, &replaced));
  EXPECT_EQ(replaced, 10u);
  ASSERT_TRUE(table.insert_fresh(0x5000, k4GiB, 3, &replaced));  // too big to be young
  EXPECT_EQ(replaced, 20u);
  EXPECT_EQ(table.size(), 1u);
  TraceRecord r{};
  ASSERT_TRUE(table.find(0x5000, &r));
  EXPECT_EQ(r.size, k4GiB);
}

TEST(TraceTable, InsertFreshOverAnAgedTraceKeepsBothUntilTheNewOneAges) {
  TraceTable table;
  ASSERT_TRUE(table.insert_fresh(0x5000, 10, 1));
  ASSERT_NO_FATAL_FAILURE(age_all(table, 0x7e0000000000));
  // The old trace's free went unseen: the fresh one does not look for it.
  std::size_t replaced = 0;
  ASSERT_TRUE(table.insert_fresh(0x5000, 20, 2, &replaced));
  EXPECT_EQ(replaced, TraceTable::kNothingReplaced);
  EXPECT_EQ(table.size(), 2u);
  TraceRecord r{};
  ASSERT_TRUE(table.find(0x5000, &r));
  EXPECT_EQ(r.size, 20u);  // the newest answers
  // Erased young, it leaves the old trace as it was.
  ASSERT_TRUE(table.erase(0x5000, &r));
  EXPECT_EQ(r.size, 20u);
  ASSERT_TRUE(table.find(0x5000, &r));
  EXPECT_EQ(r.size, 10u);
  // Aged, it replaces the old trace in its region, which is reported.
  ASSERT_TRUE(table.insert_fresh(0x5000, 30, 3));
  std::size_t dropped = 0;
  for (std::uintptr_t a = 0x7d0000000000; a < 0x7d0000000000 + 8192 * 16; a += 16) {
    ASSERT_TRUE(table.insert_fresh(a, 1, 9, &replaced));
    if (replaced != TraceTable::kNothingReplaced) dropped += replaced;
  }
  EXPECT_EQ(dropped, 10u);
  EXPECT_EQ(table.size(), 8192u + 1);
  ASSERT_TRUE(table.find(0x5000, &r));
  EXPECT_EQ(r.size, 30u);
  ASSERT_TRUE(table.erase(0x5000, nullptr));
  EXPECT_FALSE(table.find(0x5000, &r));
}

TEST(TraceTable, AddressesThatMarkAFreeYoungSlotAreNeverFound) {
  // Free young slots hold an unaligned address (1): looking it up, or any
  // unaligned address, must not find a free slot.
  TraceTable table;
  TraceRecord r{};
  for (std::uintptr_t a : {std::uintptr_t{1}, std::uintptr_t{3}, std::uintptr_t{0x5001}}) {
    EXPECT_FALSE(table.find(a, &r)) << a;
    EXPECT_FALSE(table.erase(a, &r)) << a;
    EXPECT_FALSE(table.set_traceback(a, 4)) << a;
  }
  ASSERT_TRUE(table.insert_fresh(0x5000, 10, 1));
  for (std::uintptr_t a : {std::uintptr_t{1}, std::uintptr_t{3}, std::uintptr_t{0x5001}}) {
    EXPECT_FALSE(table.find(a, &r)) << a;
    EXPECT_FALSE(table.erase(a, &r)) << a;
    EXPECT_FALSE(table.set_traceback(a, 4)) << a;
  }
  ASSERT_TRUE(table.insert_fresh(1, 7, 2));  // unaligned: traced beside the young ones
  ASSERT_TRUE(table.find(1, &r));
  EXPECT_EQ(r.size, 7u);
  EXPECT_EQ(table.size(), 2u);
  ASSERT_TRUE(table.erase(1, &r));
  EXPECT_FALSE(table.erase(1, &r));
  EXPECT_EQ(table.size(), 1u);
}

TEST(TraceTable, ATraceGrownPastTheYoungLimitLeavesNoYoungCopy) {
  TraceTable table;
  std::size_t replaced = 0;
  ASSERT_TRUE(table.insert(0x6000, 100, 1));
  ASSERT_TRUE(table.insert(0x6000, 70000, 2, &replaced));
  EXPECT_EQ(replaced, 100u);
  EXPECT_EQ(table.size(), 1u);
  int visits = 0;
  table.for_each([&](const TraceRecord& t) {
    ++visits;
    EXPECT_EQ(t.size, 70000u);
  });
  EXPECT_EQ(visits, 1);
  ASSERT_TRUE(table.erase(0x6000, nullptr));
  EXPECT_EQ(table.size(), 0u);
  TraceRecord r{};
  EXPECT_FALSE(table.find(0x6000, &r));
}

TEST(TraceTable, SetTracebackRepointsOnlyATracedBlock) {
  TraceTable table;
  EXPECT_FALSE(table.set_traceback(0x1000, 1));
  ASSERT_TRUE(table.insert(0x1000, k4GiB, 1));
  ASSERT_TRUE(table.insert(0x2001, 10, 1));
  EXPECT_TRUE(table.set_traceback(0x1000, 9));
  EXPECT_TRUE(table.set_traceback(0x2001, 8));
  EXPECT_FALSE(table.set_traceback(0x3000, 7));
  TraceRecord r{};
  ASSERT_TRUE(table.find(0x1000, &r));
  EXPECT_EQ(r.traceback, 9u);
  EXPECT_EQ(r.size, k4GiB);
  ASSERT_TRUE(table.find(0x2001, &r));
  EXPECT_EQ(r.traceback, 8u);
  EXPECT_EQ(r.size, 10u);
  EXPECT_FALSE(table.find(0x3000, &r));
  EXPECT_EQ(table.size(), 2u);
}

TEST(TraceTable, AddressesThatAreNotEightByteAlignedAreTracedLikeOthers) {
  TraceTable table;
  Model model;
  for (std::uintptr_t a = 0x7f0000001000; a < 0x7f0000001000 + 256; ++a) {
    ASSERT_TRUE(table.insert(a, a % 7 == 0 ? k4GiB + a : a & 0xff, static_cast<std::uint32_t>(a)));
    model.put(a, Value{a % 7 == 0 ? k4GiB + a : a & 0xff, static_cast<std::uint32_t>(a)});
  }
  expect_same(table, model);
  for (std::uintptr_t a = 0x7f0000001000; a < 0x7f0000001000 + 256; a += 3) {
    ASSERT_TRUE(table.erase(a, nullptr));
    model.remove(a);
  }
  expect_same(table, model);
}

TEST(TraceTable, ErasingFromCrowdedProbeRunsKeepsEveryOtherTrace) {
  // Blocks at the same few offsets in many regions, and dense runs in a few:
  // whatever the layout, some of them share home slots, so probe runs are
  // long and wrap around the ends of their tables. Deleting from the middle
  // of a run must not cut it.
  TraceTable table;
  Model model;
  std::vector<std::uintptr_t> addresses;
  const auto add = [&](std::uintptr_t address, std::uint32_t tb) {
    addresses.push_back(address);
    ASSERT_TRUE(table.insert(address, address % 4096 + 1, tb));
    model.put(address, Value{address % 4096 + 1, tb});
  };
  for (std::uintptr_t region = 0; region < 300; ++region) {
    for (std::uintptr_t offset :
         {kRegion - 16, kRegion - 32, std::uintptr_t{0}, std::uintptr_t{16}}) {
      add((0x100 + region * 5) * kRegion + offset, static_cast<std::uint32_t>(region));
      add((0x100 + region * 5) * (kRegion << 3) + offset, static_cast<std::uint32_t>(region));
    }
  }
  for (std::uintptr_t a = 0x7e0000000000; a < 0x7e0000000000 + (1 << 20); a += 16) add(a, 1);
  expect_same(table, model);
  std::mt19937_64 rng(7);
  std::shuffle(addresses.begin(), addresses.end(), rng);
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    TraceRecord r{};
    ASSERT_TRUE(table.erase(addresses[i], &r));
    model.remove(addresses[i]);
    if (i % 4999 == 0) {
      ASSERT_NO_FATAL_FAILURE(expect_same(table, model)) << "after " << i;
    }
  }
  EXPECT_EQ(table.size(), 0u);
}

TEST(TraceTable, AgreesWithAnUnorderedMapOverRandomOperations) {
  TraceTable table;
  Model model;
  std::mt19937_64 rng(0x5eed);
  AddressSource source(rng);
  std::vector<std::uintptr_t> erased;  // recently erased, for re-insert and erase-absent
  constexpr int kOperations = 300000;
  int clears = 0;
  for (int step = 0; step < kOperations; ++step) {
    const int op = std::uniform_int_distribution<int>(0, 99)(rng);
    TraceRecord r{};
    if (op < 35 || model.size() == 0) {  // insert at a new (or clustered, maybe traced) address
      const std::uintptr_t a = source.any();
      const Value v{random_size(rng), random_traceback(rng)};
      const std::size_t expected =
          model.contains(a) ? model.map().at(a).size : TraceTable::kNothingReplaced;
      std::size_t replaced = 0;
      // An untraced address goes in as a fresh block would (insert_fresh's
      // contract needs no trace there), with young traces moving out to
      // their regions in between; a traced one through insert().
      if (model.contains(a)) {
        ASSERT_TRUE(table.insert(a, v.size, v.traceback, &replaced));
      } else {
        ASSERT_TRUE(table.insert_fresh(a, v.size, v.traceback, &replaced));
      }
      ASSERT_EQ(replaced, expected) << "step " << step;
      model.put(a, v);
    } else if (op < 43) {  // replace a live trace
      const std::uintptr_t a = model.pick(rng);
      const Value v{random_size(rng), random_traceback(rng)};
      std::size_t replaced = 0;
      ASSERT_TRUE(table.insert(a, v.size, v.traceback, &replaced));
      ASSERT_EQ(replaced, model.map().at(a).size) << "step " << step;
      model.put(a, v);
    } else if (op < 45) {  // repoint a live trace, or fail to repoint an absent one
      const std::uintptr_t a = op == 43 ? model.pick(rng) : source.any();
      const std::uint32_t tb = random_traceback(rng);
      ASSERT_EQ(table.set_traceback(a, tb), model.contains(a)) << "step " << step;
      if (model.contains(a)) model.put(a, Value{model.map().at(a).size, tb});
    } else if (op < 73) {  // erase a live trace
      const std::uintptr_t a = model.pick(rng);
      const Value expected = model.map().at(a);
      ASSERT_TRUE(table.erase(a, &r)) << "step " << step;
      EXPECT_EQ(r.address, a);
      EXPECT_EQ(r.size, expected.size);
      EXPECT_EQ(r.traceback, expected.traceback);
      model.remove(a);
      erased.push_back(a);
    } else if (op < 78) {  // erase an absent address
      const std::uintptr_t a =
          !erased.empty() && op % 2 ? erased[rng() % erased.size()] : source.any();
      ASSERT_EQ(table.erase(a, op % 3 ? &r : nullptr), model.remove(a)) << "step " << step;
    } else if (op < 88) {  // find a live trace
      const std::uintptr_t a = model.pick(rng);
      ASSERT_TRUE(table.find(a, &r)) << "step " << step;
      EXPECT_EQ(r.size, model.map().at(a).size);
      EXPECT_EQ(r.traceback, model.map().at(a).traceback);
    } else if (op < 94) {  // find anything
      const std::uintptr_t a = source.any();
      ASSERT_EQ(table.find(a, &r), model.contains(a)) << "step " << step;
    } else if (!erased.empty()) {  // re-insert after erase
      const std::uintptr_t a = erased[rng() % erased.size()];
      const Value v{random_size(rng), random_traceback(rng)};
      ASSERT_TRUE(table.insert(a, v.size, v.traceback));
      model.put(a, v);
    }
    if (erased.size() > 4096) erased.erase(erased.begin(), erased.begin() + 2048);
    ASSERT_EQ(table.size(), model.size()) << "step " << step;
    if (step % 20000 == 19999) {
      ASSERT_NO_FATAL_FAILURE(expect_same(table, model)) << "step " << step;
    }
    if (step % 100000 == 99999) {
      table.clear();
      model.clear();
      ++clears;
    }
  }
  ASSERT_NO_FATAL_FAILURE(expect_same(table, model));
  EXPECT_EQ(clears, kOperations / 100000);
}

// A pymalloc-like allocator: blocks handed out in address order from 4 KiB
// pools of one stride each, pools filling 64 KiB regions, 16 regions to an
// arena placed anywhere; freed blocks are reused last-in first-out.
class BumpAllocator {
 public:
  explicit BumpAllocator(std::mt19937_64& rng) : rng_(rng) { new_arena(); }

  std::uintptr_t allocate() {
    if (!free_.empty() && rng_() % 2) {
      const std::uintptr_t a = free_.back();
      free_.pop_back();
      return a;
    }
    if (next_ + stride_ > pool_ + kPool) new_pool();
    const std::uintptr_t a = next_;
    next_ += stride_;
    return a;
  }
  void release(std::uintptr_t a) {
    if (free_.size() < 100000) free_.push_back(a);
  }
  void forget() { free_.clear(); }

 private:
  void new_arena() {
    arena_ =
        std::uniform_int_distribution<std::uintptr_t>(1, (1ull << 27) - 1)(rng_) * 16 * kRegion;
    pools_in_arena_ = 0;
    new_pool();
  }
  void new_pool() {
    if (pools_in_arena_ == 16 * kRegion / kPool) return new_arena();
    pool_ = arena_ + pools_in_arena_++ * kPool;
    stride_ = 16 * std::uniform_int_distribution<std::uintptr_t>(1, 32)(rng_);
    next_ = pool_ + 48;
  }

  std::mt19937_64& rng_;
  std::uintptr_t arena_ = 0, pool_ = 0, next_ = 0, stride_ = 16;
  std::uintptr_t pools_in_arena_ = 0;
  std::vector<std::uintptr_t> free_;
};

// The stress run is long enough to matter under ASan/UBSan (tests/core/run.sh);
// HEAPSCOPE_STRESS_SCALE=N multiplies its length.
int stress_scale() {
  const char* scale = std::getenv("HEAPSCOPE_STRESS_SCALE");
  return scale && std::atoi(scale) > 0 ? std::atoi(scale) : 1;
}

TEST(TraceTableStress, AgreesWithAnUnorderedMapThroughWavesOfGrowthAndDrain) {
  TraceTable table;
  Model model;
  std::mt19937_64 rng(0xdecafbad);
  AddressSource source(rng);
  BumpAllocator pymalloc(rng);
  const long operations = 2000000L * stress_scale();
  long step = 0;
  int waves = 0;
  while (step < operations) {
    // Grow to a random height, then drain to a random fraction of it.
    const std::size_t high = std::uniform_int_distribution<std::size_t>(1000, 250000)(rng);
    const std::size_t low = std::uniform_int_distribution<std::size_t>(0, high / 4)(rng);
    for (const bool growing : {true, false}) {
      while (step < operations && (growing ? model.size() < high : model.size() > low)) {
        ++step;
        const int op = std::uniform_int_distribution<int>(0, 99)(rng);
        const bool insert = model.size() == 0 || (growing ? op < 75 : op < 25);
        TraceRecord r{};
        if (insert) {
          const std::uintptr_t a = op % 5 ? pymalloc.allocate() : source.scattered();
          const Value v{random_size(rng), random_traceback(rng)};
          if (model.contains(a)) {
            ASSERT_TRUE(table.insert(a, v.size, v.traceback));
          } else {
            ASSERT_TRUE(table.insert_fresh(a, v.size, v.traceback));
          }
          model.put(a, v);
        } else if (op % 10 == 0) {  // free a whole pool, as pymalloc returns one
          const std::uintptr_t pool = model.pick(rng) & ~(kPool - 1);
          for (std::uintptr_t a = pool; a < pool + kPool; a += 16) {
            ASSERT_EQ(table.erase(a, &r), model.remove(a)) << "step " << step;
          }
        } else {
          const std::uintptr_t a = model.pick(rng);
          const Value expected = model.map().at(a);
          ASSERT_TRUE(table.erase(a, &r)) << "step " << step;
          ASSERT_EQ(r.size, expected.size);
          ASSERT_EQ(r.traceback, expected.traceback);
          model.remove(a);
          pymalloc.release(a);
        }
        ASSERT_EQ(table.size(), model.size()) << "step " << step;
        if (op == 0 && model.size() > 0) {  // spot check a live trace
          const std::uintptr_t a = model.pick(rng);
          ASSERT_TRUE(table.find(a, &r)) << "step " << step;
          ASSERT_EQ(r.size, model.map().at(a).size);
        }
      }
      ASSERT_NO_FATAL_FAILURE(expect_same(table, model)) << "wave " << waves;
    }
    if (++waves % 8 == 0) {
      table.clear();
      model.clear();
      pymalloc.forget();
    }
  }
  EXPECT_GT(waves, 3);
}

}  // namespace
}  // namespace heapscope::core
