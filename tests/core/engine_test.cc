// Engine: traces, memory counters, interning and snapshots behind one lock.
#include "core/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace heapscope::core {
namespace {

using Words = std::vector<std::uint32_t>;

// Interns ("file.py", line) frames and a traceback of them, most recent first.
std::uint32_t traceback(Engine& engine, std::vector<std::pair<std::string, int>> frames,
                        std::uint32_t total = 0) {
  std::lock_guard lock(engine.mutex());
  Words ids;
  for (const auto& [file, line] : frames) {
    const std::uint32_t filename = engine.intern_filename_unlocked(file);
    ids.push_back(engine.intern_frame_unlocked(filename, line));
  }
  return engine.intern_traceback_unlocked(total ? total : static_cast<std::uint32_t>(ids.size()),
                                          ids);
}

void add(Engine& engine, std::uintptr_t address, std::size_t size, std::uint32_t tb) {
  std::lock_guard lock(engine.mutex());
  engine.add_trace_unlocked(address, size, tb);
}

std::pair<std::string, int> frame_of(Engine& engine, std::uint32_t frame_id) {
  std::lock_guard lock(engine.mutex());
  int line = -1;
  std::string file = engine.filename_of_frame_unlocked(frame_id, &line);
  return {file, line};
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::lock_guard lock(engine.mutex());
    engine.set_tracing_unlocked(true);
  }
  Engine engine;
};

TEST_F(EngineTest, AddingTracesRaisesCurrentAndPeak) {
  const std::uint32_t tb = traceback(engine, {{"a.py", 1}});
  add(engine, 0x1000, 100, tb);
  add(engine, 0x2000, 50, tb);
  EXPECT_EQ(engine.memory().current, 150u);
  EXPECT_EQ(engine.memory().peak, 150u);
  EXPECT_EQ(engine.trace_count(), 2u);
}

TEST_F(EngineTest, ReplacingATraceAtTheSameAddressSubtractsTheOldSize) {
  const std::uint32_t tb = traceback(engine, {{"a.py", 1}});
  add(engine, 0x1000, 100, tb);
  add(engine, 0x1000, 30, tb);
  EXPECT_EQ(engine.memory().current, 30u);
  EXPECT_EQ(engine.memory().peak, 100u);
  EXPECT_EQ(engine.trace_count(), 1u);
  add(engine, 0x1000, 250, tb);
  EXPECT_EQ(engine.memory().current, 250u);
  EXPECT_EQ(engine.memory().peak, 250u);
}

TEST_F(EngineTest, RemovingATraceLowersCurrentButNotPeak) {
  const std::uint32_t tb = traceback(engine, {{"a.py", 1}});
  add(engine, 0x1000, 100, tb);
  add(engine, 0x2000, 50, tb);
  engine.remove_trace(0x1000);
  EXPECT_EQ(engine.memory().current, 50u);
  EXPECT_EQ(engine.memory().peak, 150u);
  {
    std::lock_guard lock(engine.mutex());
    engine.remove_trace_unlocked(0x2000);
  }
  EXPECT_EQ(engine.memory().current, 0u);
  EXPECT_EQ(engine.memory().peak, 150u);
  EXPECT_EQ(engine.trace_count(), 0u);
}

TEST_F(EngineTest, RemovingAnUntracedAddressChangesNothing) {
  const std::uint32_t tb = traceback(engine, {{"a.py", 1}});
  add(engine, 0x1000, 100, tb);
  engine.remove_trace(0x3000);
  EXPECT_EQ(engine.memory().current, 100u);
  EXPECT_EQ(engine.trace_count(), 1u);
}

TEST_F(EngineTest, ResetPeakSetsPeakToCurrent) {
  const std::uint32_t tb = traceback(engine, {{"a.py", 1}});
  add(engine, 0x1000, 100, tb);
  add(engine, 0x2000, 50, tb);
  engine.remove_trace(0x1000);
  engine.reset_peak();
  EXPECT_EQ(engine.memory().peak, 50u);
  add(engine, 0x3000, 10, tb);
  EXPECT_EQ(engine.memory().peak, 60u);
  engine.remove_trace(0x3000);
  EXPECT_EQ(engine.memory().peak, 60u);
}

TEST_F(EngineTest, BigSizesAreCountedInFull) {
  const std::uint32_t tb = traceback(engine, {{"a.py", 1}});
  const std::size_t big = (std::size_t{1} << 33) + 5;
  add(engine, 0x1000, big, tb);
  EXPECT_EQ(engine.memory().current, big);
  add(engine, 0x2000, big + 2, tb);
  EXPECT_EQ(engine.memory().current, 2 * big + 2);
  engine.remove_trace(0x1000);
  EXPECT_EQ(engine.memory().current, big + 2);
  EXPECT_EQ(engine.memory().peak, 2 * big + 2);
  engine.remove_trace(0x2000);
  EXPECT_EQ(engine.memory().current, 0u);
}

// add_trace_unlocked records blocks fresh from the allocator: a trace still
// at the address means its free went unseen. That leftover is replaced once
// the new trace leaves the young traces; until then both count, and if the
// new one is removed while young, the leftover stays as it was.
TEST_F(EngineTest, ALeftoverTraceAtAFreshBlocksAddressGoesWhenTheNewTraceAges) {
  const std::uint32_t tb = traceback(engine, {{"a.py", 1}});
  const std::uint32_t other = traceback(engine, {{"b.py", 2}});
  add(engine, 0x1000, 100, tb);
  for (std::uintptr_t a = 0x100000; a < 0x100000 + 4096 * 16; a += 16) add(engine, a, 1, other);
  const std::size_t others = 4096;
  EXPECT_EQ(engine.memory().current, 100 + others);

  add(engine, 0x1000, 30, tb);  // the leftover of 100 bytes is not searched for
  EXPECT_EQ(engine.trace_count(), others + 2);
  EXPECT_EQ(engine.memory().current, 130 + others);
  engine.remove_trace(0x1000);  // the young one
  EXPECT_EQ(engine.trace_count(), others + 1);
  EXPECT_EQ(engine.memory().current, 100 + others);

  add(engine, 0x1000, 40, tb);
  for (std::uintptr_t a = 0x200000; a < 0x200000 + 4096 * 16; a += 16) add(engine, a, 1, other);
  // The new trace aged into its region, replacing the leftover there.
  EXPECT_EQ(engine.trace_count(), 2 * others + 1);
  EXPECT_EQ(engine.memory().current, 40 + 2 * others);
  Words frames;
  std::uint32_t total = 0;
  ASSERT_TRUE(engine.traceback_of(0x1000, &frames, &total));
  engine.remove_trace(0x1000);
  EXPECT_FALSE(engine.traceback_of(0x1000, &frames, &total));
  EXPECT_EQ(engine.memory().current, 2 * others);
}

TEST_F(EngineTest, TakeTraceRemovesItAndRestoreTracePutsItBack) {
  const std::uint32_t tb = traceback(engine, {{"a.py", 1}});
  add(engine, 0x1000, 100, tb);
  Engine::TakenTrace taken{};
  ASSERT_TRUE(engine.take_trace(0x1000, &taken));
  EXPECT_EQ(taken.record.address, 0x1000u);
  EXPECT_EQ(taken.record.size, 100u);
  EXPECT_EQ(taken.record.traceback, tb);
  EXPECT_EQ(engine.memory().current, 0u);
  EXPECT_EQ(engine.trace_count(), 0u);
  Engine::TakenTrace again{};
  EXPECT_FALSE(engine.take_trace(0x1000, &again));

  engine.restore_trace(taken);
  EXPECT_EQ(engine.memory().current, 100u);
  EXPECT_EQ(engine.memory().peak, 100u);
  Words frames;
  std::uint32_t total = 0;
  ASSERT_TRUE(engine.traceback_of(0x1000, &frames, &total));
  EXPECT_EQ(total, 1u);
}

TEST_F(EngineTest, RestoreTraceRecordsNothingOnceTheTablesWereCleared) {
  // A failed realloc racing clear_traces(): the taken trace's traceback id
  // points into tables that no longer exist and must not come back.
  const std::uint32_t tb = traceback(engine, {{"a.py", 1}});
  add(engine, 0x1000, 100, tb);
  Engine::TakenTrace taken{};
  ASSERT_TRUE(engine.take_trace(0x1000, &taken));
  {
    std::lock_guard lock(engine.mutex());
    engine.clear_unlocked();
  }
  engine.restore_trace(taken);
  EXPECT_EQ(engine.trace_count(), 0u);
  EXPECT_EQ(engine.memory().current, 0u);
}

TEST_F(EngineTest, RestoreTraceRecordsNothingOnceTracingStopped) {
  const std::uint32_t tb = traceback(engine, {{"a.py", 1}});
  add(engine, 0x1000, 100, tb);
  Engine::TakenTrace taken{};
  ASSERT_TRUE(engine.take_trace(0x1000, &taken));
  {
    std::lock_guard lock(engine.mutex());
    engine.set_tracing_unlocked(false);
  }
  engine.restore_trace(taken);
  EXPECT_EQ(engine.trace_count(), 0u);
  EXPECT_EQ(engine.memory().current, 0u);
}

TEST_F(EngineTest, UnknownTracebackIsUnknownFileLineZeroWithTotalOne) {
  std::uint32_t unknown;
  {
    std::lock_guard lock(engine.mutex());
    unknown = engine.unknown_traceback_unlocked();
    ASSERT_NE(unknown, kNoId);
    EXPECT_EQ(engine.unknown_traceback_unlocked(), unknown);
  }
  add(engine, 0x1000, 8, unknown);
  Words frames;
  std::uint32_t total = 0;
  ASSERT_TRUE(engine.traceback_of(0x1000, &frames, &total));
  EXPECT_EQ(total, 1u);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frame_of(engine, frames[0]), (std::pair<std::string, int>{"<unknown>", 0}));
  // The same as interning that frame by hand.
  EXPECT_EQ(traceback(engine, {{"<unknown>", 0}}), unknown);
}

TEST_F(EngineTest, InterningTheSameTracebackTwiceGivesTheSameId) {
  const std::uint32_t a = traceback(engine, {{"a.py", 1}, {"b.py", 2}});
  const std::uint32_t b = traceback(engine, {{"a.py", 1}, {"b.py", 2}});
  const std::uint32_t reversed = traceback(engine, {{"b.py", 2}, {"a.py", 1}});
  const std::uint32_t other_line = traceback(engine, {{"a.py", 1}, {"b.py", 3}});
  const std::uint32_t deeper = traceback(engine, {{"a.py", 1}, {"b.py", 2}}, 10);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, reversed);
  EXPECT_NE(a, other_line);
  EXPECT_NE(a, deeper);  // same frames, different total_nframe
  std::lock_guard lock(engine.mutex());
  EXPECT_EQ(engine.intern_filename_unlocked("a.py"), engine.intern_filename_unlocked("a.py"));
  EXPECT_NE(engine.intern_filename_unlocked("a.py"), engine.intern_filename_unlocked("b.py"));
}

TEST_F(EngineTest, InternTracebackCapsTotalAt65535) {
  const std::uint32_t at_cap = traceback(engine, {{"a.py", 1}}, 65535);
  const std::uint32_t above = traceback(engine, {{"a.py", 1}}, 65536);
  const std::uint32_t far_above = traceback(engine, {{"a.py", 1}}, 1000000);
  const std::uint32_t below = traceback(engine, {{"a.py", 1}}, 65534);
  EXPECT_EQ(above, at_cap);
  EXPECT_EQ(far_above, at_cap);
  EXPECT_NE(below, at_cap);
  add(engine, 0x1000, 8, far_above);
  Words frames;
  std::uint32_t total = 0;
  ASSERT_TRUE(engine.traceback_of(0x1000, &frames, &total));
  EXPECT_EQ(total, 65535u);
  EXPECT_EQ(frames.size(), 1u);
}

TEST_F(EngineTest, TracebacksLongerThanTheInlineBufferRoundTrip) {
  std::vector<std::pair<std::string, int>> frames;
  for (int i = 0; i < 300; ++i) frames.emplace_back("deep.py", i);
  const std::uint32_t tb = traceback(engine, frames, 1000);
  add(engine, 0x1000, 8, tb);
  Words ids;
  std::uint32_t total = 0;
  ASSERT_TRUE(engine.traceback_of(0x1000, &ids, &total));
  EXPECT_EQ(total, 1000u);
  ASSERT_EQ(ids.size(), 300u);
  for (int i = 0; i < 300; ++i) EXPECT_EQ(frame_of(engine, ids[i]).second, i);
  EXPECT_EQ(traceback(engine, frames, 1000), tb);
}

TEST_F(EngineTest, NegativeLineNumbersRoundTrip) {
  const std::uint32_t tb = traceback(engine, {{"a.py", -1}});
  add(engine, 0x1000, 8, tb);
  Words ids;
  std::uint32_t total = 0;
  ASSERT_TRUE(engine.traceback_of(0x1000, &ids, &total));
  EXPECT_EQ(frame_of(engine, ids[0]), (std::pair<std::string, int>{"a.py", -1}));
}

TEST_F(EngineTest, TracebackOfAnUntracedAddressIsFalse) {
  Words frames{42};
  std::uint32_t total = 42;
  EXPECT_FALSE(engine.traceback_of(0x1000, &frames, &total));
}

TEST_F(EngineTest, TracebackOfGivesFramesMostRecentFirst) {
  const std::uint32_t tb = traceback(engine, {{"inner.py", 10}, {"outer.py", 20}}, 5);
  add(engine, 0x1000, 8, tb);
  Words frames;
  std::uint32_t total = 0;
  ASSERT_TRUE(engine.traceback_of(0x1000, &frames, &total));
  EXPECT_EQ(total, 5u);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frame_of(engine, frames[0]), (std::pair<std::string, int>{"inner.py", 10}));
  EXPECT_EQ(frame_of(engine, frames[1]), (std::pair<std::string, int>{"outer.py", 20}));
}

TEST_F(EngineTest, ANoIdTracebackIsDroppedAndCounted) {
  add(engine, 0x1000, 8, kNoId);
  EXPECT_EQ(engine.trace_count(), 0u);
  EXPECT_EQ(engine.memory().current, 0u);
  EXPECT_EQ(engine.dropped_traces(), 1u);
}

TEST_F(EngineTest, TakeSnapshotCopiesTracesAndTablesConsistently) {
  const std::uint32_t t1 = traceback(engine, {{"a.py", 1}});
  const std::uint32_t t2 = traceback(engine, {{"b.py", 2}, {"a.py", 3}}, 7);
  std::map<std::uintptr_t, std::pair<std::size_t, std::uint32_t>> expected;
  for (std::uintptr_t i = 1; i <= 1000; ++i) {
    const std::uint32_t tb = i % 3 ? t1 : t2;
    add(engine, i * 64, i, tb);
    expected[i * 64] = {i, tb};
  }
  const FrozenTraces frozen = engine.take_snapshot();
  ASSERT_EQ(frozen.traces.size(), expected.size());
  std::size_t total = 0;
  std::map<std::pair<std::size_t, std::uint32_t>, int> seen;  // (size, traceback)
  for (const auto& t : frozen.traces) {
    EXPECT_EQ(t.domain, 0u);
    total += t.size;
    ++seen[{t.size, t.traceback}];
  }
  EXPECT_EQ(total, engine.memory().current);
  for (const auto& [address, value] : expected) EXPECT_EQ(seen[value], 1) << address;

  // Every traceback id resolves, through the frozen tables alone, to its frames.
  const auto resolve = [&](std::uint32_t id) {
    const TracebackView view = frozen.traceback(id);
    std::vector<std::pair<std::string, int>> out;
    for (std::uint32_t f : view.frames) {
      auto words = frozen.frames.get(f);
      out.emplace_back(frozen.filenames.at(words[0]), static_cast<int>(words[1]));
    }
    return std::make_pair(view.total_nframe, out);
  };
  using Frames = std::vector<std::pair<std::string, int>>;
  EXPECT_EQ(resolve(t1), std::make_pair(1u, Frames{{"a.py", 1}}));
  EXPECT_EQ(resolve(t2), std::make_pair(7u, Frames{{"b.py", 2}, {"a.py", 3}}));
}

TEST_F(EngineTest, ASnapshotIsUnchangedByLaterTracing) {
  const std::uint32_t t1 = traceback(engine, {{"a.py", 1}});
  add(engine, 0x1000, 10, t1);
  const FrozenTraces frozen = engine.take_snapshot();
  const std::uint32_t t2 = traceback(engine, {{"later.py", 9}});
  add(engine, 0x2000, 20, t2);
  engine.remove_trace(0x1000);
  {
    std::lock_guard lock(engine.mutex());
    engine.clear_unlocked();
  }
  ASSERT_EQ(frozen.traces.size(), 1u);
  EXPECT_EQ(frozen.traces[0].size, 10u);
  EXPECT_EQ(frozen.tracebacks.size(), 1u);
  EXPECT_EQ(frozen.filenames, std::vector<std::string>{"a.py"});
  EXPECT_EQ(frozen.traceback(frozen.traces[0].traceback).total_nframe, 1u);
}

TEST_F(EngineTest, ClearUnlockedEmptiesEverythingButKeepsTracingOn) {
  const std::uint32_t tb = traceback(engine, {{"a.py", 1}});
  add(engine, 0x1000, 100, tb);
  add(engine, 0x2000, 8, kNoId);
  {
    std::lock_guard lock(engine.mutex());
    ASSERT_NE(engine.unknown_traceback_unlocked(), kNoId);
  }
  const std::size_t busy = engine.memory_bytes();
  {
    std::lock_guard lock(engine.mutex());
    engine.clear_unlocked();
  }
  EXPECT_TRUE(engine.tracing());
  EXPECT_EQ(engine.trace_count(), 0u);
  EXPECT_EQ(engine.memory().current, 0u);
  EXPECT_EQ(engine.memory().peak, 0u);
  EXPECT_EQ(engine.dropped_traces(), 0u);
  EXPECT_LT(engine.memory_bytes(), busy);
  const FrozenTraces frozen = engine.take_snapshot();
  EXPECT_TRUE(frozen.traces.empty());
  EXPECT_EQ(frozen.frames.size(), 0u);
  EXPECT_EQ(frozen.tracebacks.size(), 0u);
  EXPECT_TRUE(frozen.filenames.empty());
  Words frames;
  std::uint32_t total = 0;
  EXPECT_FALSE(engine.traceback_of(0x1000, &frames, &total));

  // Interning starts afresh, and the unknown traceback is rebuilt in the new tables.
  std::uint32_t unknown;
  {
    std::lock_guard lock(engine.mutex());
    unknown = engine.unknown_traceback_unlocked();
  }
  add(engine, 0x3000, 8, unknown);
  ASSERT_TRUE(engine.traceback_of(0x3000, &frames, &total));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frame_of(engine, frames[0]), (std::pair<std::string, int>{"<unknown>", 0}));
}

TEST_F(EngineTest, ClearUnlockedKeepsTracingOff) {
  {
    std::lock_guard lock(engine.mutex());
    engine.set_tracing_unlocked(false);
    engine.clear_unlocked();
  }
  EXPECT_FALSE(engine.tracing());
}

TEST_F(EngineTest, MemoryBytesGrowsWithTracesAndTables) {
  const std::size_t empty = engine.memory_bytes();
  for (int i = 0; i < 5000; ++i) {
    const std::uint32_t tb = traceback(engine, {{"file" + std::to_string(i % 50) + ".py", i}});
    add(engine, 0x100000 + i * 32, 32, tb);
  }
  EXPECT_GT(engine.memory_bytes(), empty + 5000 * 16);
}

TEST_F(EngineTest, ManyThreadsAddingAndRemovingEndConsistent) {
  constexpr int kThreads = 8;
  constexpr int kOperations = 30000;
  std::vector<std::map<std::uintptr_t, std::size_t>> live(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(1000 + t);
      auto& mine = live[t];
      // Each thread owns the addresses congruent to t, as blocks are owned
      // by whoever allocated them; all threads share the tables.
      const auto address = [&] { return (0x7f0000000000 + (rng() % 20000) * kThreads + t) * 16; };
      for (int i = 0; i < kOperations; ++i) {
        const int op = static_cast<int>(rng() % 10);
        if (op < 5) {
          const std::uintptr_t a = address();
          const std::size_t size = 1 + rng() % 1000;
          // An allocator hands out only blocks that were freed (and so
          // untraced): add_trace_unlocked is for those.
          if (mine.count(a) != 0) engine.remove_trace(a);
          std::lock_guard lock(engine.mutex());
          const std::uint32_t file =
              engine.intern_filename_unlocked("t" + std::to_string(rng() % 7) + ".py");
          const std::uint32_t frame =
              engine.intern_frame_unlocked(file, static_cast<int>(rng() % 5));
          const std::uint32_t tb = op == 0 ? engine.unknown_traceback_unlocked()
                                           : engine.intern_traceback_unlocked(1, {&frame, 1});
          engine.add_trace_unlocked(a, size, tb);
          mine[a] = size;
        } else if (op < 8) {
          const std::uintptr_t a = address();
          engine.remove_trace(a);
          mine.erase(a);
        } else if (op < 9) {  // a failed realloc: take the trace, then put it back
          const std::uintptr_t a = address();
          Engine::TakenTrace taken{};
          const bool had = engine.take_trace(a, &taken);
          ASSERT_EQ(had, mine.count(a) == 1);
          if (had) {
            ASSERT_EQ(taken.record.size, mine[a]);
            engine.restore_trace(taken);
          }
        } else {
          const MemoryCounters m = engine.memory();
          ASSERT_LE(m.current, m.peak);
          Words frames;
          std::uint32_t total = 0;
          if (engine.traceback_of(address(), &frames, &total)) {
            ASSERT_EQ(total, 1u);
          }
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();

  std::size_t count = 0, bytes = 0;
  for (const auto& mine : live) {
    count += mine.size();
    for (const auto& [a, size] : mine) bytes += size;
  }
  EXPECT_EQ(engine.trace_count(), count);
  const MemoryCounters m = engine.memory();
  EXPECT_EQ(m.current, bytes);
  EXPECT_GE(m.peak, m.current);
  const FrozenTraces frozen = engine.take_snapshot();
  ASSERT_EQ(frozen.traces.size(), count);
  std::size_t frozen_bytes = 0;
  for (const auto& t : frozen.traces) {
    frozen_bytes += t.size;
    ASSERT_LT(t.traceback, frozen.tracebacks.size());
    const TracebackView view = frozen.traceback(t.traceback);
    ASSERT_EQ(view.total_nframe, 1u);
    ASSERT_EQ(view.frames.size(), 1u);
    ASSERT_LT(frozen.frames.get(view.frames[0])[0], frozen.filenames.size());
  }
  EXPECT_EQ(frozen_bytes, bytes);
  EXPECT_EQ(engine.dropped_traces(), 0u);
  EXPECT_LE(frozen.filenames.size(), 8u);  // 7 files and "<unknown>"
}

}  // namespace
}  // namespace heapscope::core
