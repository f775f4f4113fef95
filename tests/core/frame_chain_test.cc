// The remembered frame chain (core/frame_chain.h, frame_chain_walk.h)
// against a model stack: fake frames pushed and popped the way CPython's
// data stack does it (frames laid out upwards in chunks, a popped frame's
// memory reused by the next push with its old link still in it, a chunk
// freed when its first frame is popped), generator frames that leave the
// stack and come back on top of other frames, and generators destroyed for
// real. A freed chunk's memory may come back as a later chunk, as mapped
// memory does, so a live frame may sit where a stale chain expects another.
// Reading a frame the walk may not read (in a freed chunk, of a destroyed
// generator) is an error for ASan to catch: the read-ahead checks whole runs
// of frames before verifying their links, and may do that only inside the
// live chunks it is told about.
// After every step the remembered walk must count what a plain walk counts.
#include "core/frame_chain.h"

#include <gtest/gtest.h>
#include <sanitizer/asan_interface.h>

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

// One data-stack chunk: frames are pushed upwards in it.
struct Chunk {
  explicit Chunk(std::size_t size) : frames(new FakeFrame[size]), size(size) {}
  std::unique_ptr<FakeFrame[]> frames;
  std::size_t size;
  std::size_t used = 0;
};

// Memory holding frames, readable while it is live: a chunk's frames.
struct Region {
  const FakeFrame* first;
  std::size_t size;
};

// What a capture passes to the walk: whether the chain may be used, and the
// live regions, oldest first, which are all it may read ahead in.
struct Walk {
  bool usable;
  const std::vector<Region>* regions;
};

}  // namespace

#define HS_FRAME FakeFrame
#define HS_CONTEXT const Walk*
static inline int hs_chain_usable(const Walk* walk) { return walk->usable; }
static inline const FakeFrame* hs_next(const FakeFrame* f) { return f->previous; }
static inline unsigned hs_counts(const FakeFrame* f) { return f->counted; }
static inline int hs_may_be_incomplete_below(const FakeFrame* above) { return above->entry; }
#define HS_READ_AHEAD 1
struct hs_readable {
  const std::vector<Region>* regions;
  std::size_t at;  // the cursor's region (regions are oldest first)
};
static inline void hs_readable_begin(const Walk* walk, hs_readable* r);
static inline int hs_readable_has(const hs_readable* r, const void* frame);
static inline int hs_readable_older(hs_readable* r);
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

// A thread's stack. Ordinary frames are laid out upwards in chunks, reused
// last-in first-out as CPython's data stack reuses its memory, and a chunk
// is freed when its first frame is popped (all but the first chunk); a frame
// that is not counted (CPython: still before its first instruction) may only
// have an entry frame above it, and completes when an ordinary call is made
// from it, which is the rule the chain relies on for 3.11.
class World {
 public:
  World(std::uint64_t seed, std::size_t chunk_size) : rng_(seed), chunk_size_(chunk_size) {
    chunks_.push_back(std::make_unique<Chunk>(chunk_size_));
  }

  // The live chunks' memory, oldest first.
  std::vector<Region> regions() const {
    std::vector<Region> regions;
    for (const auto& chunk : chunks_) regions.push_back({chunk->frames.get(), chunk->size});
    return regions;
  }
  const FakeFrame* top() const { return stack_.empty() ? nullptr : stack_.back(); }
  std::size_t depth() const { return stack_.size(); }

  ~World() {
    for (auto& chunk : spare_) ASAN_UNPOISON_MEMORY_REGION(chunk->frames.get(), chunk_bytes());
  }
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  void push(bool entry, bool counted) {
    if (chunks_.back()->used == chunks_.back()->size) chunks_.push_back(new_chunk());
    Chunk& chunk = *chunks_.back();
    link(&chunk.frames[chunk.used++], entry, counted);
  }

  void pop() {
    if (stack_.empty()) return;
    FakeFrame* frame = stack_.back();
    stack_.pop_back();
    // The link stays in the popped frame's memory, as it does in CPython's.
    if (frame->generator) {
      suspended_.push_back(frame);
      return;
    }
    Chunk& chunk = *chunks_.back();
    --chunk.used;
    if (chunk.used == 0 && chunks_.size() > 1) {
      // Freed: unreadable until it comes back as a new chunk.
      ASAN_POISON_MEMORY_REGION(chunk.frames.get(), chunk_bytes());
      spare_.push_back(std::move(chunks_.back()));
      chunks_.pop_back();
      if (spare_.size() > 8) {
        ASAN_UNPOISON_MEMORY_REGION(spare_.front()->frames.get(), chunk_bytes());
        spare_.erase(spare_.begin());
      }
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
  std::size_t chunk_bytes() const { return chunk_size_ * sizeof(FakeFrame); }

  // Any freed chunk's memory, stale links and all, or new memory.
  std::unique_ptr<Chunk> new_chunk() {
    if (spare_.empty() || chance(1, 4)) return std::make_unique<Chunk>(chunk_size_);
    const auto k = static_cast<std::ptrdiff_t>(pick(spare_.size()));
    std::unique_ptr<Chunk> chunk = std::move(spare_[static_cast<std::size_t>(k)]);
    spare_.erase(spare_.begin() + k);
    ASAN_UNPOISON_MEMORY_REGION(chunk->frames.get(), chunk_bytes());
    return chunk;
  }

  void link(FakeFrame* frame, bool entry, bool counted) {
    if (!stack_.empty() && !entry) stack_.back()->counted = true;  // it made a call
    frame->previous = stack_.empty() ? nullptr : stack_.back();
    frame->entry = entry;
    frame->counted = frame->generator ? true : counted;
    stack_.push_back(frame);
  }

  std::mt19937_64 rng_;
  std::size_t chunk_size_;
  std::vector<std::unique_ptr<Chunk>> chunks_;  // the live ones, newest last
  std::vector<std::unique_ptr<Chunk>> spare_;   // freed ones, poisoned
  std::vector<FakeFrame*> stack_;
  std::vector<FakeFrame*> suspended_;
  std::vector<std::unique_ptr<FakeFrame>> generators_;
  std::size_t floor_ = 2;  // pops stop at this depth
};

}  // namespace

static inline void hs_readable_begin(const Walk* walk, hs_readable* r) {
  r->regions = walk->regions;
  r->at = walk->regions != nullptr && !walk->regions->empty() ? walk->regions->size() - 1 : 0;
}
static inline int hs_readable_has(const hs_readable* r, const void* frame) {
  if (r->regions == nullptr || r->regions->empty()) return 0;
  const Region& region = (*r->regions)[r->at];
  const auto at = reinterpret_cast<std::uintptr_t>(frame);
  const auto first = reinterpret_cast<std::uintptr_t>(region.first);
  return at >= first && at < first + region.size * sizeof(FakeFrame);
}
static inline int hs_readable_older(hs_readable* r) {
  if (r->regions == nullptr || r->at == 0) return 0;
  --r->at;
  return 1;
}

namespace {

// The remembered walk's count from `f`, reading ahead only in the regions
// given (none: a null list).
unsigned count_frames(const FakeFrame* f, FrameChain& chain, const std::vector<Region>* regions,
                      bool usable = true) {
  const Walk walk{usable, regions};
  return hs_count_frames(f, chain.get(), &walk);
}

// The same, reading ahead only in `world`'s live chunks (none without a
// world).
unsigned count_frames(const FakeFrame* f, FrameChain& chain, const World* world,
                      bool usable = true) {
  const std::vector<Region> regions = world != nullptr ? world->regions() : std::vector<Region>{};
  return count_frames(f, chain, &regions, usable);
}

TEST(FrameChain, CountsWhatAPlainWalkCountsWhileTheStackChanges) {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    World world(seed, 48);
    FrameChain chain;
    for (int i = 0; i < 60; ++i) world.push(false, true);
    for (int i = 0; i < 60000; ++i) {
      // Mostly small moves near the top, sometimes a long run of pushes or
      // pops, so the chain is joined high, low, and not at all.
      const int moves = world.chance(1, 50) ? 200 : 1;
      for (int m = 0; m < moves; ++m) world.step(world.chance(1, 2) ? 300 : 120);
      const FakeFrame* start = world.below_top(static_cast<unsigned>(world.pick(5)));
      ASSERT_EQ(count_frames(start, chain, &world), plain_count(start))
          << "seed " << seed << ", step " << i << ", depth " << world.depth();
    }
  }
}

TEST(FrameChain, AnotherStacksChainOnlyCostsAWalk) {
  // A thread's chain may be left from another thread state: the count must
  // not depend on it.
  World a(7, 40), b(8, 40);
  for (int i = 0; i < 100; ++i) {
    a.push(false, true);
    b.push(false, true);
  }
  FrameChain chain;
  for (int i = 0; i < 5000; ++i) {
    World& world = (i % 3 == 0) ? a : b;
    world.step(200);
    const FakeFrame* start = world.below_top(1);
    ASSERT_EQ(count_frames(start, chain, &world), plain_count(start)) << "step " << i;
  }
}

TEST(FrameChain, FramesBelowAnEntryFrameAreCheckedEvenWhenRemembered) {
  // An incomplete frame under a finalizer's entry frame, deep enough that the
  // remembered chain covers it; it completes between two counts while every
  // link stays the same.
  World world(11, 32);
  for (int i = 0; i < 40; ++i) world.push(false, true);
  world.push(false, /*counted=*/false);
  for (int i = 0; i < 40; ++i) world.push(i == 0, true);
  FrameChain chain;
  const FakeFrame* start = world.below_top(2);
  EXPECT_EQ(count_frames(start, chain, &world), 78u);  // 79 frames, one incomplete
  EXPECT_EQ(count_frames(start, chain, &world), 78u);  // now from the chain
  for (int i = 0; i < 40; ++i) world.pop();
  world.push(false, true);  // the incomplete frame made a call: it is complete
  for (int i = 0; i < 39; ++i) world.push(false, true);
  start = world.below_top(2);
  EXPECT_EQ(count_frames(start, chain, &world), 79u);  // the same links, all complete
}

TEST(FrameChain, AFrameThatWasTheBottomMayHaveFramesBelowItLater) {
  // A generator resumed from C at the bottom of a thread's stack, then
  // resumed again on top of a Python frame: every remembered link is the
  // same, and the stack is one frame deeper.
  std::vector<FakeFrame> frames(31);
  FakeFrame& generator = frames[0];
  generator.generator = true;
  for (std::size_t i = 1; i < 30; ++i) frames[i].previous = &frames[i - 1];
  FrameChain chain;
  EXPECT_EQ(count_frames(&frames[29], chain, static_cast<const World*>(nullptr)), 30u);
  EXPECT_EQ(count_frames(&frames[29], chain, static_cast<const World*>(nullptr)), 30u);
  generator.previous = &frames[30];
  EXPECT_EQ(count_frames(&frames[29], chain, static_cast<const World*>(nullptr)), 31u);
}

// Links frames[0..n) into a stack on top of `below` (null: the bottom).
FakeFrame* stack_up(FakeFrame* frames, std::size_t n, FakeFrame* below) {
  for (std::size_t i = 0; i < n; ++i) {
    frames[i] = FakeFrame{};
    frames[i].previous = i == 0 ? below : &frames[i - 1];
  }
  return &frames[n - 1];
}

TEST(FrameChain, ReadsAheadOnlyInLiveChunks) {
  // One block of memory as three chunks, so their addresses rise in order:
  // the bottom chunk, then A, then B. The stack first fills all three and
  // is remembered; then A and B are freed and B's memory comes back as the
  // second chunk. Its new frames sit where the chain remembers B's old ones,
  // so the walk joins the chain there, and the frames the chain holds below
  // them (A's) rise into them: one run of addresses, of which only the part
  // in B may be read. A is poisoned: reading it is an ASan report. Eight
  // chunk sizes, so that for one of them a block of the read-ahead spans
  // B's first frame and A's last ones, whatever the block and plain-walk
  // sizes are.
  for (std::size_t chunk_size = 40; chunk_size < 48; ++chunk_size) {
    std::vector<FakeFrame> memory(3 * chunk_size);
    FakeFrame* bottom = memory.data();
    FakeFrame* a = bottom + chunk_size;
    FakeFrame* b = a + chunk_size;
    const unsigned n = static_cast<unsigned>(chunk_size);
    FrameChain chain;

    FakeFrame* top =
        stack_up(b, chunk_size, stack_up(a, chunk_size, stack_up(bottom, 13, nullptr)));
    const std::vector<Region> before = {{bottom, chunk_size}, {a, chunk_size}, {b, chunk_size}};
    EXPECT_EQ(count_frames(top, chain, &before), 13 + 2 * n);
    EXPECT_EQ(count_frames(top, chain, &before), 13 + 2 * n);  // B, A, bottom: read ahead

    ASAN_POISON_MEMORY_REGION(a, chunk_size * sizeof(FakeFrame));
    top = stack_up(b, chunk_size, &bottom[12]);
    const std::vector<Region> after = {{bottom, chunk_size}, {b, chunk_size}};
    EXPECT_EQ(count_frames(top, chain, &after), 13 + n) << chunk_size;  // differs at B's first
    EXPECT_EQ(count_frames(top, chain, &after), 13 + n) << chunk_size;  // B, bottom: read ahead
    ASAN_UNPOISON_MEMORY_REGION(a, chunk_size * sizeof(FakeFrame));
  }
}

TEST(FrameChain, StacksDeeperThanTheChainHoldsAreCountedByWalking) {
  const std::size_t deep = HS_FRAME_CHAIN_MAX + 1000;
  World world(13, 4096);
  for (std::size_t i = 0; i < deep; ++i) world.push(false, true);
  FrameChain chain;
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(count_frames(world.top(), chain, &world),
              65535u);  // capped as CPython caps it
  }
  EXPECT_EQ(chain.get()->count, 0u);  // not remembered
  for (std::size_t i = 0; i < 2000; ++i) world.pop();
  EXPECT_EQ(count_frames(world.top(), chain, &world), deep - 2000);
  EXPECT_EQ(count_frames(world.top(), chain, &world), deep - 2000);
  EXPECT_EQ(chain.get()->count, deep - 2000 - HS_PLAIN_FRAMES);
}

TEST(FrameChain, AChainThatMayNotBeUsedIsLeftAlone) {
  World world(19, 32);
  for (int i = 0; i < 100; ++i) world.push(false, true);
  FrameChain chain;
  EXPECT_EQ(count_frames(world.top(), chain, &world, false), 100u);
  EXPECT_EQ(chain.get()->frames, nullptr);
  EXPECT_EQ(count_frames(world.top(), chain, &world), 100u);
  EXPECT_EQ(chain.get()->count, 100u - HS_PLAIN_FRAMES);
}

TEST(FrameChain, ShallowStacksAreNotRemembered) {
  World world(17, 8);
  for (int i = 0; i < HS_PLAIN_FRAMES; ++i) world.push(false, true);
  FrameChain chain;
  EXPECT_EQ(count_frames(world.top(), chain, &world), unsigned{HS_PLAIN_FRAMES});
  EXPECT_EQ(chain.get()->frames, nullptr);
  EXPECT_EQ(count_frames(nullptr, chain, &world), 0u);
}

}  // namespace
