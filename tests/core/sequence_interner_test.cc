// SequenceInterner: one dense id per distinct sequence of words.
#include "core/sequence_interner.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <span>
#include <vector>

namespace heapscope::core {
namespace {

using Words = std::vector<std::uint32_t>;

std::uint32_t intern(SequenceInterner& interner, const Words& words) {
  return interner.intern(std::span<const std::uint32_t>(words));
}

Words words_of(const SequenceInterner& interner, std::uint32_t id) {
  auto span = interner.get(id);
  return Words(span.begin(), span.end());
}

TEST(SequenceInterner, EqualSequencesGetEqualIds) {
  SequenceInterner interner;
  const Words a{1, 2, 3};
  const Words a_copy{1, 2, 3};
  const std::uint32_t id = intern(interner, a);
  EXPECT_EQ(intern(interner, a_copy), id);
  EXPECT_EQ(intern(interner, a), id);
  EXPECT_EQ(interner.size(), 1u);
}

TEST(SequenceInterner, DifferentSequencesGetDifferentIds) {
  SequenceInterner interner;
  const std::vector<Words> all = {{1, 2, 3}, {1, 2, 4},    {3, 2, 1},       {0},       {0, 0},
                                  {0, 0, 0}, {UINT32_MAX}, {UINT32_MAX, 0}, {2, 1, 3}, {1, 3, 2}};
  std::map<std::uint32_t, Words> seen;
  for (const Words& w : all) {
    const std::uint32_t id = intern(interner, w);
    ASSERT_NE(id, SequenceInterner::kNoId);
    EXPECT_TRUE(seen.emplace(id, w).second) << "id " << id << " given twice";
  }
  EXPECT_EQ(interner.size(), all.size());
}

TEST(SequenceInterner, PrefixesAreDifferentSequences) {
  SequenceInterner interner;
  Words w;
  std::vector<std::uint32_t> ids;
  for (std::uint32_t i = 0; i < 20; ++i) {
    ids.push_back(intern(interner, w));  // the empty sequence first, then longer prefixes
    w.push_back(7);
  }
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(ids[i], i) << "prefix of length " << i;
    EXPECT_EQ(interner.get(ids[i]).size(), i);
  }
}

TEST(SequenceInterner, TheEmptySequenceHasAnIdAndNoWords) {
  SequenceInterner interner;
  const std::uint32_t empty = interner.intern({});
  ASSERT_NE(empty, SequenceInterner::kNoId);
  EXPECT_TRUE(interner.get(empty).empty());
  EXPECT_EQ(interner.intern({}), empty);
  const std::uint32_t zero = intern(interner, {0});
  EXPECT_NE(zero, empty);
  EXPECT_EQ(interner.intern({}), empty);
}

TEST(SequenceInterner, LongSequencesRoundTrip) {
  SequenceInterner interner;
  std::mt19937 rng(3);
  Words long_one(100000);
  for (auto& w : long_one) w = rng();
  Words differs_at_the_end = long_one;
  differs_at_the_end.back() ^= 1;
  Words one_shorter(long_one.begin(), long_one.end() - 1);
  const std::uint32_t a = intern(interner, long_one);
  const std::uint32_t b = intern(interner, differs_at_the_end);
  const std::uint32_t c = intern(interner, one_shorter);
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(b, c);
  EXPECT_EQ(intern(interner, long_one), a);
  EXPECT_EQ(words_of(interner, a), long_one);
  EXPECT_EQ(words_of(interner, b), differs_at_the_end);
  EXPECT_EQ(words_of(interner, c), one_shorter);
}

TEST(SequenceInterner, IdsAreDenseInOrderOfFirstSight) {
  SequenceInterner interner;
  std::mt19937 rng(11);
  std::map<Words, std::uint32_t> model;
  // Enough distinct sequences to grow the index many times, with repeats.
  for (int i = 0; i < 200000; ++i) {
    Words w(rng() % 6);
    for (auto& x : w) x = rng() % 24;
    const std::uint32_t id = intern(interner, w);
    auto [it, added] = model.emplace(w, static_cast<std::uint32_t>(model.size()));
    ASSERT_EQ(id, it->second) << (added ? "new" : "repeated") << " sequence " << i;
    ASSERT_EQ(interner.size(), model.size());
  }
  EXPECT_GT(model.size(), 10000u);
  for (const auto& [w, id] : model) ASSERT_EQ(words_of(interner, id), w);
}

TEST(SequenceInterner, GetReturnsTheInternedWords) {
  SequenceInterner interner;
  const Words a{5, 6, 7, 8};
  const Words b{9};
  const std::uint32_t ia = intern(interner, a);
  const std::uint32_t ib = intern(interner, b);
  // Interning more must not disturb earlier sequences.
  for (std::uint32_t i = 0; i < 50000; ++i) intern(interner, {i, i + 1});
  EXPECT_EQ(words_of(interner, ia), a);
  EXPECT_EQ(words_of(interner, ib), b);
}

TEST(SequenceInterner, ClearResetsIdsAndReleasesMemory) {
  SequenceInterner interner;
  const std::size_t empty = interner.memory_bytes();
  for (std::uint32_t i = 0; i < 10000; ++i) intern(interner, {i, 2 * i, 3 * i});
  EXPECT_GT(interner.memory_bytes(), empty + 10000 * 3 * sizeof(std::uint32_t));
  interner.clear();
  EXPECT_EQ(interner.size(), 0u);
  EXPECT_EQ(interner.memory_bytes(), empty);
  EXPECT_EQ(intern(interner, {9999, 2 * 9999, 3 * 9999}), 0u);
  EXPECT_EQ(intern(interner, {0, 0, 0}), 1u);
  EXPECT_EQ(words_of(interner, 0), (Words{9999, 2 * 9999, 3 * 9999}));
}

TEST(SequenceInterner, ACopyIsIndependentOfTheOriginal) {
  SequenceInterner original;
  const std::uint32_t a = intern(original, {1, 2});
  SequenceInterner copy;
  ASSERT_TRUE(copy.assign(original));
  EXPECT_EQ(intern(original, {3}), 1u);
  EXPECT_EQ(copy.size(), 1u);
  EXPECT_EQ(intern(copy, {1, 2}), a);
  EXPECT_EQ(intern(copy, {4}), 1u);
  EXPECT_EQ(words_of(copy, 1), (Words{4}));
  EXPECT_EQ(words_of(original, 1), (Words{3}));
}

}  // namespace
}  // namespace heapscope::core
