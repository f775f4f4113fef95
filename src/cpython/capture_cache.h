// Raw stack captures already turned into traceback ids, so that an
// allocation whose stack was seen before skips resolving each frame's line
// and interning the traceback.
//
// The per-thread LastCapture (block_recorder.cc) catches the commonest case,
// a run of allocations from one stack. This cache catches the rest: code
// that alternates between a few stacks, and deep tracebacks (nframe=25),
// where one changed line anywhere in 25 frames misses LastCapture
// (callgrind, pyperformance deltablue, CPython 3.11, nframe=25: resolving
// and interning were 134 M of the 320 M instructions heapscope added).
//
// A capture names code objects by address, so entries are only valid while
// the tracer's epoch is unchanged (tracer.h: it moves when tables clear or
// a cached code object dies). A new epoch drops every entry in O(1) by
// moving to a new generation; stale slots count as empty.
//
// Bounded: at kMaxEntries entries or kMaxPoolFrames stored frames the cache
// starts over, so a program with endless distinct stacks pays one hash per
// miss and a fixed amount of memory.
//
// Guarded by the engine's mutex: every method expects the caller to hold it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/allocation.h"
#include "frames/frame_capture.h"

namespace heapscope::cpython {

// Whether two captures of `count` frames are the same stack. Field by field
// and inlined: it runs on almost every allocation, mostly for one frame,
// where a call to memcmp cost more than the comparison.
inline bool same_raw_frames(const hs_raw_frame* a, const hs_raw_frame* b, int count) noexcept {
  for (int i = 0; i < count; ++i) {
    if (a[i].code != b[i].code || a[i].byte_offset != b[i].byte_offset ||
        a[i].lineno_override != b[i].lineno_override) {
      return false;
    }
  }
  return true;
}

// One stack as a capture wrote it: `count` frames and total_nframe.
struct Capture {
  const hs_raw_frame* frames;
  int count;
  unsigned total;
};

class CaptureCache {
 public:
  static constexpr std::uint32_t kAbsent = UINT32_MAX;

  static std::uint64_t hash(const Capture& capture) noexcept;

  // Whether to look this capture up at all. After kMissRun misses in a row
  // the cache is skipped for a while (1, 2, 4 ... kMaxSkip captures, while
  // the kMissesAfterSkip lookups after each skip keep missing; a hit ends
  // the skipping): a program that makes each object under a stack of
  // its own (fibonacci(22)'s coroutines, nframe=25) never hits, and hashing,
  // probing and copying every stack into a pool that wraps every few
  // thousand stacks cost it more than resolving them did.
  bool worth_trying() noexcept {
    if (skip_left_ == 0) return true;
    --skip_left_;
    return false;
  }

  // The traceback id of this capture in `epoch`, or kAbsent.
  std::uint32_t find(std::uint64_t epoch, std::uint64_t hash, const Capture& capture) noexcept;

  // Remembers a capture (one that find() just missed). Silently does
  // nothing when memory runs out: the cache only saves work.
  void insert(std::uint64_t epoch, std::uint64_t hash, const Capture& capture,
              std::uint32_t traceback) noexcept;

  // Frees everything (stop()).
  void release() noexcept;

  std::size_t memory_bytes() const noexcept;

 private:
  static constexpr std::uint32_t kInitialSlots = 256;
  static constexpr std::uint32_t kMaxEntries = 16 * 1024;
  static constexpr std::uint32_t kMaxPoolFrames = 128 * 1024;  // 2 MiB of frames
  static constexpr std::uint32_t kMissRun = 64;
  static constexpr std::uint32_t kMissesAfterSkip = 4;
  static constexpr std::uint32_t kMaxSkip = 1024;

  struct Slot {
    std::uint64_t hash;
    std::uint32_t generation;  // slots of another generation are empty
    std::uint32_t first;       // index of the first of its frames in pool_
    std::uint32_t count;
    std::uint32_t total;
    std::uint32_t traceback;
  };

  void start_generation(std::uint64_t epoch) noexcept;
  bool live(const Slot& slot) const noexcept { return slot.generation == generation_; }
  bool grow() noexcept;

  std::unique_ptr<Slot[], core::Releaser> slots_;
  std::uint32_t capacity_ = 0;  // a power of two, or 0 before the first insert
  std::uint32_t entries_ = 0;
  std::unique_ptr<hs_raw_frame[], core::Releaser> pool_;
  std::uint32_t pool_capacity_ = 0;
  std::uint32_t pool_used_ = 0;
  std::uint32_t generation_ = 1;  // slots start at generation 0: empty
  std::uint64_t epoch_ = 0;
  std::uint32_t misses_in_a_row_ = 0;
  std::uint32_t skip_left_ = 0;
  std::uint32_t next_skip_ = 1;
};

}  // namespace heapscope::cpython
