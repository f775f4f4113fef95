// The remembered frame chain (core/frame_chain.h, frame_chain_walk.h)
// against a model stack: fake frames pushed and popped the way CPython's
// data stack does it (a popped frame's memory is reused by the next push, its
// old link still in it), generator frames that leave the stack and come back
// on top of other frames, and generators destroyed for real, so that reading
// a frame the walk has not verified is a use-after-free for ASan to catch.
// After every step the remembered walk must count what a plain walk counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <random>
#include <vector>

namespace {

struct FakeFrame {
  FakeFrame* previous = nullptr;
  bool counted = true;  // CPython: complete
  bool entry = false;   // CPython 3.11: is_entry
  bool generator = false;
};

}  // namespace

#define HS_FRAME FakeFrame
#define HS_CONTEXT bool
static inline int hs_chain_usable(bool usable) { return usable; }
static inline const FakeFrame* hs_next(const FakeFrame* f) { return f->previous; }
static inline unsigned hs_counts(const FakeFrame* f) { return f->counted; }
static inline int hs_may_be_incomplete_below(const FakeFrame* above) { return above->entry; }
#include "core/frame_chain_walk.h"

namespace {

unsigned plain_count(const FakeFrame* f) {
  unsigned n = 0;
  for (; f != nullptr; f = f->previous) n += f->counted;
  return n;
}

class FrameChain {
 public:
  FrameChain() = default;
  FrameChain(const FrameChain&) = delete;
  FrameChain& operator=(const FrameChain&) = delete;
  ~FrameChain() { hs_frame_chain_release(&chain_); }
  hs_frame_chain* get() { return &chain_; }

 private:
  hs_frame_chain chain_{};
};

// A thread's stack. Ordinary frames come from a pool reused last-in
// first-out, as CPython's data stack reuses its memory; a frame that is not
// counted (CPython: still before its first instruction) may only have an
// entry frame above it, and completes when an ordinary call is made from it,
// which is the rule the chain relies on for 3.11.
class World {
 public:
  World(std::uint64_t seed, std::size_t pool_size) : rng_(seed), pool_(pool_size) {
    for (auto& frame : pool_) free_.push_back(&frame);
    std::reverse(free_.begin(), free_.end());
  }

  const FakeFrame* top() const { return stack_.empty() ? nullptr : stack_.back(); }
  std::size_t depth() const { return stack_.size(); }

  bool push(bool entry, bool counted) {
    if (free_.empty()) return false;
    FakeFrame* frame = free_.back();
    free_.pop_back();
    link(frame, entry, counted);
    return true;
  }

  void pop() {
    if (stack_.empty()) return;
    FakeFrame* frame = stack_.back();
    stack_.pop_back();
    // The link stays in the popped frame's memory, as it does in CPython's.
    if (frame->generator) {
      suspended_.push_back(frame);
    } else {
      free_.push_back(frame);
    }
  }

  void resume_generator() {
    FakeFrame* frame;
    if (!suspended_.empty() && chance(3, 4)) {
      const std::size_t k = pick(suspended_.size());
      frame = suspended_[k];
      suspended_.erase(suspended_.begin() + static_cast<std::ptrdiff_t>(k));
    } else {
      generators_.push_back(std::make_unique<FakeFrame>());
      frame = generators_.back().get();
      frame->generator = true;
    }
    link(frame, chance(1, 2), true);
  }

  // Frees a suspended generator's frame: a walk that reads it is a
  // use-after-free.
  void destroy_generator() {
    if (suspended_.empty()) return;
    const std::size_t k = pick(suspended_.size());
    FakeFrame* frame = suspended_[k];
    suspended_.erase(suspended_.begin() + static_cast<std::ptrdiff_t>(k));
    auto owned = std::find_if(generators_.begin(), generators_.end(),
                              [frame](const auto& g) { return g.get() == frame; });
    generators_.erase(owned);
  }

  // One random step, with a stack at most `most` deep. It empties now and
  // then, so that a generator's frame can be the bottom of one stack and
  // then sit on top of another.
  void step(std::size_t most) {
    if (chance(1, 5000)) floor_ = floor_ ? 0 : 2;
    const unsigned roll = static_cast<unsigned>(pick(100));
    if (roll < 45 && depth() < most) {
      push(chance(1, 10), !chance(1, 10));
    } else if (roll < 85 && depth() > floor_) {
      pop();
    } else if (roll < 93 && depth() < most) {
      resume_generator();
    } else {
      destroy_generator();
    }
  }

  // Where a capture starts counting: below the traceback's frames.
  const FakeFrame* below_top(unsigned skip) const {
    const FakeFrame* f = top();
    for (unsigned i = 0; i < skip && f != nullptr; ++i) f = f->previous;
    return f;
  }

  bool chance(unsigned in, unsigned of) { return pick(of) < in; }
  std::size_t pick(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_);
  }

 private:
  void link(FakeFrame* frame, bool entry, bool counted) {
    if (!stack_.empty() && !entry) stack_.back()->counted = true;  // it made a call
    frame->previous = stack_.empty() ? nullptr : stack_.back();
    frame->entry = entry;
    frame->counted = frame->generator ? true : counted;
    stack_.push_back(frame);
  }

  std::mt19937_64 rng_;
  std::vector<FakeFrame> pool_;
  std::vector<FakeFrame*> free_;
  std::vector<FakeFrame*> stack_;
  std::vector<FakeFrame*> suspended_;
  std::vector<std::unique_ptr<FakeFrame>> generators_;
  std::size_t floor_ = 2;  // pops stop at this depth
};

TEST(FrameChain, CountsWhatAPlainWalkCountsWhileTheStackChanges) {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    World world(seed, 1024);
    FrameChain chain;
    for (int i = 0; i < 60; ++i) world.push(false, true);
    for (int i = 0; i < 60000; ++i) {
      // Mostly small moves near the top, sometimes a long run of pushes or
      // pops, so the chain is joined high, low, and not at all.
      const int moves = world.chance(1, 50) ? 200 : 1;
      for (int m = 0; m < moves; ++m) world.step(world.chance(1, 2) ? 300 : 120);
      const FakeFrame* start = world.below_top(static_cast<unsigned>(world.pick(5)));
      ASSERT_EQ(hs_count_frames(start, chain.get(), true), plain_count(start))
          << "seed " << seed << ", step " << i << ", depth " << world.depth();
    }
  }
}

TEST(FrameChain, AnotherStacksChainOnlyCostsAWalk) {
  // A thread's chain may be left from another thread state: the count must
  // not depend on it.
  World a(7, 512), b(8, 512);
  for (int i = 0; i < 100; ++i) {
    a.push(false, true);
    b.push(false, true);
  }
  FrameChain chain;
  for (int i = 0; i < 5000; ++i) {
    World& world = (i % 3 == 0) ? a : b;
    world.step(200);
    const FakeFrame* start = world.below_top(1);
    ASSERT_EQ(hs_count_frames(start, chain.get(), true), plain_count(start)) << "step " << i;
  }
}

TEST(FrameChain, FramesBelowAnEntryFrameAreCheckedEvenWhenRemembered) {
  // An incomplete frame under a finalizer's entry frame, deep enough that the
  // remembered chain covers it; it completes between two counts while every
  // link stays the same.
  World world(11, 256);
  for (int i = 0; i < 40; ++i) world.push(false, true);
  world.push(false, /*counted=*/false);
  for (int i = 0; i < 40; ++i) world.push(i == 0, true);
  FrameChain chain;
  const FakeFrame* start = world.below_top(2);
  EXPECT_EQ(hs_count_frames(start, chain.get(), true), 78u);  // 79 frames, one incomplete
  EXPECT_EQ(hs_count_frames(start, chain.get(), true), 78u);  // now from the chain
  for (int i = 0; i < 40; ++i) world.pop();
  world.push(false, true);  // the incomplete frame made a call: it is complete
  for (int i = 0; i < 39; ++i) world.push(false, true);
  start = world.below_top(2);
  EXPECT_EQ(hs_count_frames(start, chain.get(), true), 79u);  // the same links, all complete
}

TEST(FrameChain, AFrameThatWasTheBottomMayHaveFramesBelowItLater) {
  // A generator resumed from C at the bottom of a thread's stack, then
  // resumed again on top of a Python frame: every remembered link is the
  // same, and the stack is one frame deeper.
  std::vector<FakeFrame> frames(31);
  FakeFrame& generator = frames[0];
  for (std::size_t i = 1; i < 30; ++i) frames[i].previous = &frames[i - 1];
  FrameChain chain;
  EXPECT_EQ(hs_count_frames(&frames[29], chain.get(), true), 30u);
  EXPECT_EQ(hs_count_frames(&frames[29], chain.get(), true), 30u);
  generator.previous = &frames[30];
  EXPECT_EQ(hs_count_frames(&frames[29], chain.get(), true), 31u);
}

TEST(FrameChain, StacksDeeperThanTheChainHoldsAreCountedByWalking) {
  const std::size_t deep = HS_FRAME_CHAIN_MAX + 1000;
  World world(13, deep);
  for (std::size_t i = 0; i < deep; ++i) world.push(false, true);
  FrameChain chain;
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(hs_count_frames(world.top(), chain.get(), true),
              65535u);  // capped as CPython caps it
  }
  EXPECT_EQ(chain.get()->count, 0u);  // not remembered
  for (std::size_t i = 0; i < 2000; ++i) world.pop();
  EXPECT_EQ(hs_count_frames(world.top(), chain.get(), true), deep - 2000);
  EXPECT_EQ(hs_count_frames(world.top(), chain.get(), true), deep - 2000);
  EXPECT_EQ(chain.get()->count, deep - 2000 - HS_PLAIN_FRAMES);
}

TEST(FrameChain, AChainThatMayNotBeUsedIsLeftAlone) {
  World world(19, 128);
  for (int i = 0; i < 100; ++i) world.push(false, true);
  FrameChain chain;
  EXPECT_EQ(hs_count_frames(world.top(), chain.get(), false), 100u);
  EXPECT_EQ(chain.get()->frames, nullptr);
  EXPECT_EQ(hs_count_frames(world.top(), chain.get(), true), 100u);
  EXPECT_EQ(chain.get()->count, 100u - HS_PLAIN_FRAMES);
}

TEST(FrameChain, ShallowStacksAreNotRemembered) {
  World world(17, 64);
  for (int i = 0; i < HS_PLAIN_FRAMES; ++i) world.push(false, true);
  FrameChain chain;
  EXPECT_EQ(hs_count_frames(world.top(), chain.get(), true), unsigned{HS_PLAIN_FRAMES});
  EXPECT_EQ(chain.get()->frames, nullptr);
  EXPECT_EQ(hs_count_frames(nullptr, chain.get(), true), 0u);
}

}  // namespace
