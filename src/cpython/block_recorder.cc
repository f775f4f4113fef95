#include "block_recorder.h"

#include <Python.h>

#include <algorithm>
#include <array>
#include <iterator>
#include <mutex>
#include <new>

#include "core/allocation.h"
#include "core/nothrow_vector.h"

#include "frames/frame_capture.h"
#include "thread_state.h"
#include "tracer.h"

namespace heapscope::cpython {

namespace {

// Tracebacks up to this depth are captured on the stack; a deeper limit
// (start(nframe) above it) uses a buffer kept per thread, so no traced
// allocation ever pays for a malloc of its own.
constexpr int kStackFrames = 128;

struct FrameBuffers {
  core::NothrowVector<hs_raw_frame> frames;
  core::NothrowVector<std::uint32_t> ids;
};

// The last stack this thread captured and the traceback it interned to.
// Consecutive allocations very often come from the same line (a loop, one
// expression building several objects): comparing the raw capture then
// skips line lookup and traceback interning. Valid while the tracer's
// epoch is unchanged (ids are only meaningful until the tables clear, and
// a code address only names one code object until that one dies).
struct LastCapture {
  // Other top frames seen over the same frames below: a function that
  // allocates on several lines changes only the top frame, and a deep
  // capture found here is neither hashed nor compared again in the capture
  // cache's pool, which is cold (deltablue, nframe=25: 0.6 D1 misses per
  // allocation there). Each keeps its own total: with one frame per
  // traceback nothing else lies below the top, and a program that
  // allocates at a few depths in turn (bm_float's methods and their
  // caller) went to the capture cache at every change of depth.
  //
  // Kept two-way set associative by top frame and total: a lookup is one
  // hash and up to two compares, so there can be more of them than a ring
  // searched end to end (8 sent dataclasses' __init__ and asdict lines to
  // the capture cache on 44 % of allocations), and a few lines that share
  // a set do not evict each other on every allocation, as direct-mapped
  // ones did (bm_float). A sibling is valid while its generation is the
  // capture's, so forgetting them all is one increment.
  static constexpr unsigned kSets = 32;
  struct Sibling {
    hs_raw_frame top;
    unsigned total;
    std::uint32_t traceback;
    std::uint32_t generation;
  };
  static unsigned set_of(const hs_raw_frame& top, unsigned total) noexcept {
    const std::uint64_t key = (reinterpret_cast<std::uintptr_t>(top.code) >> 4) ^
                              (static_cast<std::uint64_t>(top.byte_offset) << 20) ^
                              (static_cast<std::uint64_t>(total) << 40);
    return static_cast<unsigned>((key * 0x9E3779B97F4A7C15ULL) >> 59);
  }
  static_assert(kSets == 32, "set_of() keeps 5 bits");
  bool is(const Sibling& sibling, const hs_raw_frame* top, unsigned of_total) const noexcept {
    return sibling.generation == generation && sibling.total == of_total &&
           same_raw_frames(&sibling.top, top, 1);
  }
  // Keeps the last capture's top (in set top_set) as the newest of its set.
  void keep_top() noexcept {
    std::array<Sibling, 2>& set = siblings[top_set];
    set[1] = set[0];
    set[0] = Sibling{frames[0], total, traceback, generation};
  }

  std::uint64_t epoch = 0;
  std::uint32_t traceback = 0;
  unsigned total = 0;
  int count = -1;
  core::NothrowVector<hs_raw_frame> frames;  // the live frames
  std::array<std::array<Sibling, 2>, kSets> siblings{};
  std::uint32_t generation = 1;  // of the siblings; 0: never valid
  unsigned top_set = 0;          // set_of(frames[0], total)
  // This thread's stack at its last deep walk (core/frame_chain.h).
  hs_frame_chain chain{};

  // The last stack whose frames traceback_of_capture() resolved, with each
  // frame's id. A stack that misses every cache mostly shares its bottom
  // frames with the last one (each of fibonacci(22)'s 57,313 coroutines is
  // made under its own raw stack: nframe=25 resolved 25 frames for each), so
  // frames are matched by depth from the bottom and only the others are
  // resolved. Within one epoch a raw frame always resolves to the same id;
  // only stacks whose code objects the resolver knows are kept.
  std::uint64_t resolved_epoch = 0;
  unsigned resolved_total = 0;
  core::NothrowVector<hs_raw_frame> resolved_frames;
  core::NothrowVector<std::uint32_t> resolved_ids;  // one per resolved frame

  // Sets ids[i] for each frame of `captured` that the last resolved stack
  // held at the same depth, and core::kNoId for the others.
  void reuse_ids(std::uint64_t now, const Capture& captured, std::uint32_t* ids) const noexcept {
    const int count = captured.count;
    // Frame i of this capture lies at the depth of the last one's frame i + shift.
    const long shift = static_cast<long>(resolved_total) - static_cast<long>(captured.total);
    int from = 0;
    int to = 0;
    if (resolved_epoch == now) {
      from = static_cast<int>(std::clamp<long>(-shift, 0, count));
      const auto resolved_count = static_cast<long>(resolved_frames.size());
      to = static_cast<int>(std::clamp<long>(resolved_count - shift, from, count));
    }
    std::fill(ids, ids + from, core::kNoId);
    for (int i = from; i < to; ++i) {
      const auto j = static_cast<std::size_t>(i + shift);
      ids[i] = same_raw_frames(&resolved_frames[j], &captured.frames[i], 1) ? resolved_ids[j]
                                                                            : core::kNoId;
    }
    std::fill(ids + to, ids + count, core::kNoId);
  }
  void keep_resolved(std::uint64_t now, const Capture& captured,
                     const std::uint32_t* ids) noexcept {
    const auto n = static_cast<std::size_t>(captured.count);
    if (!resolved_frames.assign({captured.frames, n}) || !resolved_ids.assign({ids, n})) {
      resolved_epoch = 0;
      return;
    }
    resolved_epoch = now;
    resolved_total = captured.total;
  }

  LastCapture() = default;
  LastCapture(const LastCapture&) = delete;
  LastCapture& operator=(const LastCapture&) = delete;
  ~LastCapture() { hs_frame_chain_release(&chain); }

  // Whether `captured` is the last capture but for its top frame and its
  // total: the epoch, frame count and every frame below the top the same.
  bool same_below_top(std::uint64_t now, const Capture& captured) const noexcept {
    return epoch == now && count == captured.count && captured.count > 0 &&
           same_raw_frames(frames.data() + 1, captured.frames + 1, captured.count - 1);
  }
  // The traceback of a capture that is the last one but for its top frame
  // and total (same_below_top), or CaptureCache::kAbsent. A sibling found
  // stays where it is: moving it to the top cost more than it saved when
  // lines alternate (bm_nbody's arithmetic, each result a reused float).
  std::uint32_t find_top(const Capture& captured) const noexcept {
    if (total == captured.total && same_raw_frames(frames.data(), captured.frames, 1)) {
      return traceback;
    }
    const std::array<Sibling, 2>& set = siblings[set_of(captured.frames[0], captured.total)];
    if (is(set[0], captured.frames, captured.total)) return set[0].traceback;
    if (is(set[1], captured.frames, captured.total)) return set[1].traceback;
    return CaptureCache::kAbsent;
  }
  // Remembers a capture and its traceback; `below_same` when only its top
  // frame and total differ from the last capture's (same_below_top).
  void remember(std::uint64_t now, const Capture& captured, std::uint32_t id,
                bool below_same) noexcept {
    if (below_same) {
      keep_top();
      frames[0] = captured.frames[0];
      total = captured.total;
      traceback = id;
      top_set = set_of(frames[0], total);
      return;
    }
    if (++generation == 0) {  // wrapped: no stale sibling may match
      siblings.fill({});
      generation = 1;
    }
    if (!frames.assign({captured.frames, static_cast<std::size_t>(captured.count)})) {
      epoch = 0;
      return;
    }
    epoch = now;
    count = captured.count;
    total = captured.total;
    traceback = id;
    top_set = set_of(frames[0], total);
  }
};

// The calling thread's LastCapture, null once the thread is exiting. Read
// on every allocation, so the pointer is an initial-exec thread_local (one
// %fs-relative load); a thread_local with a destructor would cost a
// __tls_get_addr call and a guard check each time. The capture itself is
// owned by a second thread_local, touched only on a thread's first traced
// allocation and at its exit.
thread_local LastCapture* t_last __attribute__((tls_model("initial-exec"))) = nullptr;
thread_local bool t_last_gone __attribute__((tls_model("initial-exec"))) = false;

// On the heap, not in the thread_local: this module's initial-exec
// variables put all of its TLS in the static TLS block, whose spare room
// for modules loaded later is about 1.5 KiB (an import failed with
// "cannot allocate memory in static TLS block" at 2.4 KiB). Out of memory,
// the thread simply remembers nothing.
struct LastCaptureOwner {
  LastCapture* capture = nullptr;
  LastCaptureOwner() noexcept {
    void* memory = core::allocate(sizeof(LastCapture));
    if (memory != nullptr) capture = new (memory) LastCapture();
    t_last = capture;
  }
  ~LastCaptureOwner() {
    t_last = nullptr;
    t_last_gone = true;  // allocations later in the thread's exit go unremembered
    if (capture != nullptr) {
      capture->~LastCapture();
      core::release(capture);
    }
  }
};

[[gnu::noinline]] LastCapture* create_last_capture() noexcept {
  if (t_last_gone) return nullptr;
  thread_local LastCaptureOwner owner;
  return t_last;
}

[[gnu::always_inline]] inline LastCapture* last_capture() noexcept {
  LastCapture* last = t_last;
  return last != nullptr ? last : create_last_capture();
}

// Null when the buffer cannot be had (out of memory): the trace is dropped.
FrameBuffers* deep_buffers(int limit) noexcept {
  thread_local FrameBuffers buffers;
  const auto wanted = static_cast<std::size_t>(limit);
  if (buffers.frames.size() < wanted &&
      (!buffers.frames.resize(wanted) || !buffers.ids.resize(wanted))) {
    return nullptr;
  }
  return &buffers;
}

// The block this thread recorded last, for the object-creation hooks (the
// 3.13 reference tracer, the _Py_NewReference wrapper before it): an
// object created in a block just recorded needs no retrace.
thread_local std::uintptr_t t_last_recorded __attribute__((tls_model("initial-exec"))) = 0;

// The last few blocks this thread recorded, for repair_hooks()'s probe:
// another tracer installed above ours (CPython's tracemalloc) allocates its
// own bookkeeping through our hooks right after the probe's block.
constexpr unsigned kRecent = 4;
thread_local std::uintptr_t t_recent[kRecent] __attribute__((tls_model("initial-exec")));
thread_local unsigned t_recent_next __attribute__((tls_model("initial-exec"))) = 0;
thread_local bool t_noting __attribute__((tls_model("initial-exec"))) = false;

// The traceback id of a capture LastCapture did not hold, from the capture
// cache or by resolving and interning its frames (kNoId when memory ran
// out), under the engine lock. Out of line: most allocations repeat the
// thread's last capture.
[[gnu::noinline]] std::uint32_t traceback_of_capture(Tracer& t, std::uint64_t epoch,
                                                     LastCapture* last, const Capture& capture,
                                                     std::uint32_t* ids, bool rememberable,
                                                     bool below_same) noexcept {
  core::Engine& engine = t.engine;
  const hs_raw_frame* frames = capture.frames;
  const int count = capture.count;
  std::uint64_t hash = 0;
  const bool cached = rememberable && t.captures.worth_trying();
  if (cached) {
    hash = CaptureCache::hash(capture);
    const std::uint32_t seen = t.captures.find(epoch, hash, capture);
    if (seen != CaptureCache::kAbsent) {
      last->remember(epoch, capture, seen, below_same);
      return seen;
    }
  }
  std::uint32_t traceback = core::kNoId;
  if (frames == nullptr) {
    traceback = core::kNoId;  // out of memory: counted as a dropped trace
  } else if (count == 0) {
    traceback = engine.unknown_traceback_unlocked();
  } else {
    bool resolved = true;
    bool known = true;  // every frame's code object known to the resolver
    if (last != nullptr) {
      last->reuse_ids(epoch, capture, ids);
    } else {
      std::fill(ids, ids + count, core::kNoId);
    }
    for (int i = 0; i < count && resolved; ++i) {
      if (ids[i] == core::kNoId) {
        ids[i] = t.resolver.resolve_unlocked(engine, frames[i], &known);
        resolved = ids[i] != core::kNoId;
      }
    }
    if (resolved) {
      traceback =
          engine.intern_traceback_unlocked(capture.total, {ids, static_cast<std::size_t>(count)});
      if (known && last != nullptr) last->keep_resolved(epoch, capture, ids);
    }
    rememberable = rememberable && known;
  }
  if (rememberable && traceback != core::kNoId) {
    last->remember(epoch, capture, traceback, below_same);
    if (cached) t.captures.insert(epoch, hash, capture, traceback);
  }
  return traceback;
}

// Captures the calling thread's stack, then, under the engine lock, interns
// its traceback and hands the id (kNoId when memory ran out) to `apply`.
// Inlined into its two callers: one call less on every traced allocation.
template <typename Apply>
[[gnu::always_inline]] inline void with_current_traceback(bool raw_domain, Apply&& apply) noexcept {
  Tracer& t = tracer();
  PyThreadState* tstate;
  bool have_gil;
  if (raw_domain) {
    // The raw allocator runs with or without the GIL; CPython takes the GIL
    // here, we read this thread's own frames instead.
    tstate = own_thread_state();
    have_gil = tstate != nullptr && tstate == gil_holder();
  } else {
    tstate = gil_holder();
    have_gil = true;
  }

  const int limit = t.max_nframe.load(std::memory_order_relaxed);
  hs_raw_frame stack_frames[kStackFrames];
  std::uint32_t stack_ids[kStackFrames];
  hs_raw_frame* frames = stack_frames;
  std::uint32_t* ids = stack_ids;
  if (limit > kStackFrames) {
    FrameBuffers* deep = deep_buffers(limit);
    frames = deep ? deep->frames.data() : nullptr;
    ids = deep ? deep->ids.data() : nullptr;
  }
  LastCapture* last = last_capture();
  Capture capture{frames, 0, 0};
  if (tstate != nullptr && frames != nullptr) {
    capture.count = hs_capture_frames(tstate, frames, limit, &capture.total, have_gil,
                                      last != nullptr ? &last->chain : nullptr);
  }

  // Captures are remembered by their code objects' addresses, which stay
  // unique while the resolver knows those code objects (frame_resolver.h):
  // traceback_of_capture() clears this for one it could not note.
  bool rememberable = frames != nullptr && capture.count > 0 && last != nullptr;

  core::Engine& engine = t.engine;
  std::lock_guard lock(engine.mutex());
  if (!engine.tracing()) return;  // stop() won the race: record nothing
  const std::uint64_t epoch = t.epoch.load(std::memory_order_acquire);
  // One call of `apply`, so that it inlines once.
  const bool below_same = rememberable && last->same_below_top(epoch, capture);
  std::uint32_t traceback = below_same ? last->find_top(capture) : CaptureCache::kAbsent;
  if (traceback == CaptureCache::kAbsent) {
    traceback =
        traceback_of_capture(t, epoch, last, capture, ids, rememberable, below_same);
  }
  apply(engine, traceback);
}

}  // namespace

void note_recent_block(std::uintptr_t address) noexcept {
  t_recent[t_recent_next++ % kRecent] = address;
}

void record_new_block(bool raw_domain, std::uintptr_t address, std::size_t size) noexcept {
  with_current_traceback(raw_domain, [&](core::Engine& engine, std::uint32_t traceback) {
    engine.add_trace_unlocked(address, size, traceback);
  });
  t_last_recorded = address;
  if (t_noting) [[unlikely]]
    note_recent_block(address);
}

void retrace_block(std::uintptr_t address) noexcept {
  with_current_traceback(false, [&](core::Engine& engine, std::uint32_t traceback) {
    engine.retrace_unlocked(address, traceback);
  });
}

bool recently_recorded(std::uintptr_t address) noexcept {
  for (std::uintptr_t recent : t_recent) {
    if (recent == address) return true;
  }
  return false;
}

void note_recorded_blocks(bool on) noexcept {
  // A probe's block may take the address of an earlier probe's: forget those.
  if (on) std::fill(std::begin(t_recent), std::end(t_recent), std::uintptr_t{0});
  t_noting = on;
}

std::uintptr_t take_last_recorded_block() noexcept {
  const std::uintptr_t last = t_last_recorded;
  t_last_recorded = 0;
  return last;
}

TrackResult record_tracked_block(std::uint32_t domain, std::uintptr_t address,
                                 std::size_t size) noexcept {
  TrackResult result = TrackResult::kNotTracing;
  // As the RAW domain: any thread, GIL or not; its own frames.
  with_current_traceback(true, [&](core::Engine& engine, std::uint32_t traceback) {
    result = engine.track_unlocked(domain, address, size, traceback) ? TrackResult::kStored
                                                                     : TrackResult::kNotStored;
  });
  return result;
}

void forget_tracked_block(std::uint32_t domain, std::uintptr_t address) noexcept {
  core::Engine& engine = tracer().engine;
  std::lock_guard lock(engine.mutex());
  if (engine.tracing()) engine.untrack_unlocked(domain, address);
}

}  // namespace heapscope::cpython
