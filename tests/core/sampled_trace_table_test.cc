// SampledTraceTable against a std::map model: every operation is applied to
// both and they must agree, over address patterns that make chunks split
// (ascending, descending, random, clustered runs) and merge (draining), with
// the extreme addresses, sizes and traceback ids. Then the reason the table
// exists: its memory per trace on sparse, sampled-looking addresses.
#include "core/sampling/sampled_trace_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/trace_table.h"
#include "trace_model.h"

namespace heapscope::core::sampling {
namespace {

constexpr std::uintptr_t kMaxAddress = UINTPTR_MAX;
constexpr std::uint64_t k64GiB = std::uint64_t{64} << 30;

using Value = test_model::TraceValue;
using Model = test_model::TraceModel;

enum class Pattern { kAscending, kDescending, kRandom, kClustered, kSparse, kExtreme, kMixed };

// Where new traces go. Ascending and descending runs fill the last and the
// first chunk and split them; random ones land anywhere; clustered ones hit
// live addresses (replacements) and neighbours; extreme ones sit at both
// ends of the address space and are unaligned.
class Addresses {
 public:
  Addresses(Pattern pattern, std::mt19937_64& rng) : pattern_(pattern), rng_(rng) {
    for (int k = 0; k < 64; ++k) clusters_.push_back(rng_() & ~std::uintptr_t{0xfff});
  }

  std::uintptr_t next() {
    if (pattern_ != Pattern::kMixed) return next(pattern_);
    return next(static_cast<Pattern>(rng_() % static_cast<unsigned>(Pattern::kMixed)));
  }

 private:
  std::uintptr_t next(Pattern pattern) {
    switch (pattern) {
      case Pattern::kAscending:
        return ascending_ += 16 * (1 + rng_() % 4);
      case Pattern::kDescending:
        return descending_ -= 16 * (1 + rng_() % 4);
      case Pattern::kRandom:
        return rng_() % 8 ? rng_() & ~std::uintptr_t{15} : rng_();
      case Pattern::kClustered:
        return clusters_[rng_() % clusters_.size()] + (rng_() % 256) * 16 + (rng_() % 64 == 0);
      case Pattern::kSparse:
        return 0x7f0000000000 + (rng_() % (k64GiB / 16)) * 16;
      case Pattern::kExtreme:
      case Pattern::kMixed:
        break;
    }
    constexpr std::array<std::uintptr_t, 12> kEnds = {0,
                                                      1,
                                                      15,
                                                      16,
                                                      17,
                                                      0x80,
                                                      0x4000,
                                                      std::uintptr_t{1} << 63,
                                                      (std::uintptr_t{1} << 63) - 1,
                                                      kMaxAddress - 16,
                                                      kMaxAddress - 1,
                                                      kMaxAddress};
    const std::uintptr_t near = rng_() % 64;
    switch (rng_() % 6) {  // half of them anywhere, so a few thousand can be live
      case 0:
        return kEnds[rng_() % kEnds.size()];
      case 1:
        return near;  // just above 0
      case 2:
        return kMaxAddress - near;  // just below the top
      default:
        return rng_();
    }
  }

  Pattern pattern_;
  std::mt19937_64& rng_;
  std::uintptr_t ascending_ = 0x7f0000000000;
  std::uintptr_t descending_ = 0x7f8000000000;
  std::vector<std::uintptr_t> clusters_;
};

// Every varint length of a size, with the edges of each.
std::size_t random_size(std::mt19937_64& rng) {
  constexpr std::array<std::size_t, 9> kEdges = {0,     1,          127,          128,     16383,
                                                 16384, UINT32_MAX, SIZE_MAX - 1, SIZE_MAX};
  switch (rng() % 4) {
    case 0:
      return kEdges[rng() % kEdges.size()];
    case 1:
      return rng() >> (rng() % 64);
    default:
      return 16 + rng() % 4096;
  }
}

std::uint32_t random_traceback(std::mt19937_64& rng) {
  constexpr std::array<std::uint32_t, 6> kEdges = {0, 1, 127, 128, UINT32_MAX - 1, UINT32_MAX};
  switch (rng() % 4) {
    case 0:
      return kEdges[rng() % kEdges.size()];
    case 1:
      return static_cast<std::uint32_t>(rng());
    default:
      return static_cast<std::uint32_t>(rng() % 5000);
  }
}

// size(), for_each (every live trace once, nothing else, compared as sets)
// and find() of every live trace.
void expect_same(const SampledTraceTable& table, const Model& model) {
  ASSERT_EQ(table.size(), model.size());
  std::vector<TraceRecord> seen;
  table.for_each([&](const TraceRecord& r) { seen.push_back(r); });
  std::sort(seen.begin(), seen.end(),
            [](const TraceRecord& a, const TraceRecord& b) { return a.address < b.address; });
  ASSERT_EQ(seen.size(), model.size());
  auto it = model.map().begin();
  for (const TraceRecord& r : seen) {
    ASSERT_EQ(r.address, it->first);
    ASSERT_EQ(r.size, it->second.size) << "address " << r.address;
    ASSERT_EQ(r.traceback, it->second.traceback) << "address " << r.address;
    TraceRecord found{};
    ASSERT_TRUE(table.find(r.address, &found)) << "address " << r.address;
    ASSERT_EQ(found.address, r.address);
    ASSERT_EQ(found.size, r.size);
    ASSERT_EQ(found.traceback, r.traceback);
    ++it;
  }
}

// One random operation on both; `grow` biases it towards inserting.
void step(SampledTraceTable& table, Model& model, Addresses& addresses, std::mt19937_64& rng,
          bool grow, std::vector<std::uintptr_t>& erased) {
  // Percentages of insert, replace, repoint, erase, erase absent, find live;
  // the rest finds anything.
  static constexpr int kGrow[] = {55, 8, 5, 12, 10, 5};
  static constexpr int kDrain[] = {15, 8, 5, 42, 15, 8};
  const int* const weights = grow ? kGrow : kDrain;
  int bounds[6];
  for (int k = 0, sum = 0; k < 6; ++k) bounds[k] = sum += weights[k];
  const int op = static_cast<int>(rng() % 100);
  TraceRecord r{};
  if (model.size() == 0 || op < bounds[0]) {  // insert, new or not
    const std::uintptr_t a = addresses.next();
    const Value v{random_size(rng), random_traceback(rng)};
    const std::size_t expected =
        model.contains(a) ? model.at(a).size : SampledTraceTable::kNothingReplaced;
    std::size_t replaced = 0;
    ASSERT_TRUE(table.insert(a, v.size, v.traceback, &replaced));
    ASSERT_EQ(replaced, expected) << "address " << a;
    model.put(a, v);
  } else if (op < bounds[1]) {  // replace a live trace
    const std::uintptr_t a = model.pick(rng);
    const Value v{random_size(rng), random_traceback(rng)};
    std::size_t replaced = 0;
    ASSERT_TRUE(table.insert(a, v.size, v.traceback, &replaced));
    ASSERT_EQ(replaced, model.at(a).size);
    model.put(a, v);
  } else if (op < bounds[2]) {  // repoint a live trace, or an absent address
    const std::uintptr_t a = op % 2 ? model.pick(rng) : addresses.next();
    const std::uint32_t tb = random_traceback(rng);
    ASSERT_EQ(table.set_traceback(a, tb), model.contains(a)) << "address " << a;
    if (model.contains(a)) model.put(a, Value{model.at(a).size, tb});
  } else if (op < bounds[3]) {  // erase a live trace
    const std::uintptr_t a = model.pick(rng);
    const Value expected = model.at(a);
    ASSERT_TRUE(table.erase(a, op % 2 ? &r : nullptr)) << "address " << a;
    if (op % 2) {
      ASSERT_EQ(r.address, a);
      ASSERT_EQ(r.size, expected.size);
      ASSERT_EQ(r.traceback, expected.traceback);
    }
    model.remove(a);
    erased.push_back(a);
  } else if (op < bounds[4]) {  // erase an absent (maybe just erased) address
    const std::uintptr_t a = !erased.empty() && op % 2 ? erased[rng() % erased.size()] : rng();
    const bool present = model.contains(a);
    ASSERT_EQ(table.erase(a, &r), present) << "address " << a;
    model.remove(a);
  } else if (op < bounds[5]) {  // find a live trace
    const std::uintptr_t a = model.pick(rng);
    ASSERT_TRUE(table.find(a, &r));
    ASSERT_EQ(r.size, model.at(a).size);
    ASSERT_EQ(r.traceback, model.at(a).traceback);
  } else {  // find anything
    const std::uintptr_t a = addresses.next();
    ASSERT_EQ(table.find(a, &r), model.contains(a)) << "address " << a;
  }
  if (erased.size() > 4096) erased.erase(erased.begin(), erased.begin() + 2048);
  ASSERT_EQ(table.size(), model.size());
}

TEST(SampledTraceTable, StartsEmptyAndFindsNothing) {
  SampledTraceTable table;
  TraceRecord r{};
  EXPECT_EQ(table.size(), 0u);
  EXPECT_FALSE(table.find(0, &r));
  EXPECT_FALSE(table.find(kMaxAddress, &r));
  EXPECT_FALSE(table.erase(0x1000, &r));
  EXPECT_FALSE(table.set_traceback(0x1000, 1));
  int visits = 0;
  table.for_each([&](const TraceRecord&) { ++visits; });
  EXPECT_EQ(visits, 0);
}

TEST(SampledTraceTable, ExtremeValuesRoundTrip) {
  SampledTraceTable table;
  Model model;
  const std::uintptr_t addresses[] = {
      0, 1, 0x1003, 0x7f0000001230, std::uintptr_t{1} << 63, kMaxAddress - 1, kMaxAddress};
  const std::size_t sizes[] = {0, SIZE_MAX, 127, 128, UINT32_MAX};
  const std::uint32_t tracebacks[] = {0, UINT32_MAX, 127, 128};
  std::size_t k = 0;
  for (const std::uintptr_t a : addresses) {
    const Value v{sizes[k % 5], tracebacks[k % 4]};
    ++k;
    std::size_t replaced = 0;
    ASSERT_TRUE(table.insert(a, v.size, v.traceback, &replaced));
    EXPECT_EQ(replaced, SampledTraceTable::kNothingReplaced);
    model.put(a, v);
  }
  ASSERT_NO_FATAL_FAILURE(expect_same(table, model));
  // Replace every one with every combination of extremes, both directions.
  for (const std::uintptr_t a : addresses) {
    for (const std::size_t size : sizes) {
      for (const std::uint32_t tb : tracebacks) {
        std::size_t replaced = 0;
        ASSERT_TRUE(table.insert(a, size, tb, &replaced));
        EXPECT_EQ(replaced, model.at(a).size);
        model.put(a, Value{size, tb});
        ASSERT_TRUE(table.set_traceback(a, UINT32_MAX - tb));
        model.put(a, Value{size, UINT32_MAX - tb});
        ASSERT_NO_FATAL_FAILURE(expect_same(table, model));
      }
    }
  }
  for (const std::uintptr_t a : addresses) {
    TraceRecord r{};
    ASSERT_TRUE(table.erase(a, &r));
    EXPECT_EQ(r.address, a);
    EXPECT_EQ(r.size, model.at(a).size);
    EXPECT_EQ(r.traceback, model.at(a).traceback);
    model.remove(a);
    EXPECT_FALSE(table.erase(a, &r));
    ASSERT_NO_FATAL_FAILURE(expect_same(table, model));
  }
  EXPECT_EQ(table.size(), 0u);
}

TEST(SampledTraceTable, AgreesWithAMapForEveryAddressPattern) {
  const std::pair<Pattern, const char*> patterns[] = {
      {Pattern::kAscending, "ascending"}, {Pattern::kDescending, "descending"},
      {Pattern::kRandom, "random"},       {Pattern::kClustered, "clustered"},
      {Pattern::kSparse, "sparse"},       {Pattern::kExtreme, "extreme"},
      {Pattern::kMixed, "mixed"}};
  std::uint64_t seed = 1;
  for (const auto& [pattern, name] : patterns) {
    SCOPED_TRACE(name);
    std::mt19937_64 rng(seed++);
    Addresses addresses(pattern, rng);
    SampledTraceTable table;
    Model model;
    std::vector<std::uintptr_t> erased;
    // Grow past many chunk splits, drain so chunks merge, grow again; then
    // clear and reuse the same table.
    for (int round = 0; round < 2; ++round) {
      for (const std::size_t target : {3000, 50, 2000, 0}) {
        const bool grow = model.size() < target;
        for (long n = 0; grow ? model.size() < target : model.size() > target; ++n) {
          ASSERT_LT(n, 100000) << "stuck short of " << target << " traces";
          ASSERT_NO_FATAL_FAILURE(step(table, model, addresses, rng, grow, erased));
          if (n % 499 == 0) {
            ASSERT_NO_FATAL_FAILURE(expect_same(table, model));
          }
        }
        ASSERT_NO_FATAL_FAILURE(expect_same(table, model));
      }
      for (int n = 0; n < 500; ++n) {
        ASSERT_NO_FATAL_FAILURE(step(table, model, addresses, rng, true, erased));
      }
      table.clear();
      model.clear();
      EXPECT_EQ(table.size(), 0u);
      EXPECT_EQ(table.memory_bytes(), SampledTraceTable().memory_bytes());
      ASSERT_NO_FATAL_FAILURE(expect_same(table, model));
    }
  }
}

TEST(SampledTraceTable, LookupsOfAbsentAddressesChangeNothing) {
  SampledTraceTable table;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(table.insert((rng() % k64GiB) * 16, 100, 1));
  const std::size_t bytes = table.memory_bytes();
  const std::size_t size = table.size();
  TraceRecord r{};
  for (int i = 0; i < 5000; ++i) {
    const std::uintptr_t a = (rng() % k64GiB) * 16 + 8;  // never inserted
    ASSERT_FALSE(table.find(a, &r));
    ASSERT_FALSE(table.erase(a, &r));
    ASSERT_FALSE(table.set_traceback(a, 2));
  }
  EXPECT_EQ(table.memory_bytes(), bytes);
  EXPECT_EQ(table.size(), size);
}

// HEAPSCOPE_STRESS_SCALE=N makes the stress run N times longer.
long stress_scale() {
  const char* text = std::getenv("HEAPSCOPE_STRESS_SCALE");
  const long scale = text ? std::strtol(text, nullptr, 10) : 0;
  return scale > 0 ? scale : 1;
}

TEST(SampledTraceTableStress, AgreesWithAMapThroughWavesOfGrowthAndDrain) {
  SampledTraceTable table;
  Model model;
  std::mt19937_64 rng(0x5a3b1ed);
  Addresses addresses(Pattern::kMixed, rng);
  std::vector<std::uintptr_t> erased;
  const long operations = 2000000L * stress_scale();
  long done = 0;
  int waves = 0;
  while (done < operations) {
    const std::size_t high = std::uniform_int_distribution<std::size_t>(1000, 60000)(rng);
    const std::size_t low = std::uniform_int_distribution<std::size_t>(0, high / 4)(rng);
    for (const bool grow : {true, false}) {
      while (done < operations && (grow ? model.size() < high : model.size() > low)) {
        ++done;
        ASSERT_NO_FATAL_FAILURE(step(table, model, addresses, rng, grow, erased))
            << "operation " << done;
      }
      ASSERT_NO_FATAL_FAILURE(expect_same(table, model)) << "wave " << waves;
    }
    if (++waves % 5 == 0) {
      table.clear();
      model.clear();
    }
  }
  EXPECT_GT(waves, 3);
}

// Sampled blocks: 16-byte aligned anywhere in 64 GiB of address space, sizes
// log-uniform from 16 B to 4 MiB, traceback ids below 5000.
struct SparseTraces {
  explicit SparseTraces(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> log_size(std::log(16.0), std::log(4194304.0));
    std::map<std::uintptr_t, Value> unique;
    while (unique.size() < n) {
      const std::uintptr_t a = 0x7f0000000000 + (rng() % (k64GiB / 16)) * 16;
      unique[a] = Value{static_cast<std::size_t>(std::llround(std::exp(log_size(rng)))),
                        static_cast<std::uint32_t>(rng() % 5000)};
    }
    records.reserve(n);
    for (const auto& [a, v] : unique) records.push_back(TraceRecord{a, v.size, v.traceback});
    std::shuffle(records.begin(), records.end(), rng);  // inserted in allocation order
  }
  std::vector<TraceRecord> records;
};

double bytes_per_trace(std::size_t bytes, std::size_t traces) {
  return static_cast<double>(bytes) / static_cast<double>(traces);
}

TEST(SampledTraceTable, SparseTracesCostAtMost12BytesEach) {
  for (const std::size_t n : {std::size_t{100000}, std::size_t{1000}}) {
    const SparseTraces traces(n, 42 + n);
    SampledTraceTable sampled;
    TraceTable exact;
    for (const TraceRecord& r : traces.records) {
      ASSERT_TRUE(sampled.insert(r.address, r.size, r.traceback));
      ASSERT_TRUE(exact.insert(r.address, r.size, r.traceback));
    }
    ASSERT_EQ(sampled.size(), n);
    const double per_trace = bytes_per_trace(sampled.memory_bytes(), n);
    const double exact_per_trace = bytes_per_trace(exact.memory_bytes(), n);
    const std::string key = std::to_string(n);
    RecordProperty("sampled_bytes_per_trace_" + key, std::to_string(per_trace));
    RecordProperty("exact_bytes_per_trace_" + key, std::to_string(exact_per_trace));
    std::cout << n << " sparse traces: SampledTraceTable " << per_trace
              << " bytes each, TraceTable " << exact_per_trace << "\n";
    EXPECT_LE(per_trace, n >= 100000 ? 12.0 : 16.0) << n << " traces";
    // Why sampled mode has its own table.
    EXPECT_GT(exact.memory_bytes(), sampled.memory_bytes()) << n << " traces";
    // And it must still hold them all.
    for (const TraceRecord& r : traces.records) {
      TraceRecord found{};
      ASSERT_TRUE(sampled.find(r.address, &found));
      ASSERT_EQ(found.size, r.size);
      ASSERT_EQ(found.traceback, r.traceback);
    }
  }
}

TEST(SampledTraceTable, ErasingMostTracesGivesTheirMemoryBack) {
  // Chunks left nearly empty merge and the chunk vector shrinks, so memory
  // follows the live traces down, not their peak.
  const SparseTraces traces(100000, 7);
  SampledTraceTable table;
  for (const TraceRecord& r : traces.records) ASSERT_TRUE(table.insert(r.address, r.size, 1));
  const std::size_t peak = table.memory_bytes();
  for (std::size_t i = 0; i < traces.records.size(); ++i) {
    if (i % 100 != 0) {
      ASSERT_TRUE(table.erase(traces.records[i].address, nullptr));
    }
  }
  ASSERT_EQ(table.size(), 1000u);
  const double per_trace = bytes_per_trace(table.memory_bytes(), table.size());
  RecordProperty("bytes_per_trace_after_drain", std::to_string(per_trace));
  std::cout << "1000 traces left of 100000: " << per_trace << " bytes each (peak "
            << bytes_per_trace(peak, 100000) << ")\n";
  EXPECT_LE(per_trace, 24.0);
  EXPECT_LE(table.memory_bytes(), peak / 40);
}

}  // namespace
}  // namespace heapscope::core::sampling
