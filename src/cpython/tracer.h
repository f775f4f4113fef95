// The process-wide tracer: the engine, the frame cache and the allocator
// hooks that feed them. Every function here expects the GIL unless it says
// otherwise.
#pragma once

#include <Python.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "capture_cache.h"
#include "core/engine.h"
#include "frame_resolver.h"

namespace heapscope::cpython {

inline constexpr int kMaxFrames = 65535;  // CPython's limit for start(nframe)

struct Tracer {
  core::Engine engine;
  FrameResolver resolver;          // guarded by engine.mutex()
  CaptureCache captures;           // guarded by engine.mutex()
  std::atomic<int> max_nframe{1};  // read by the hooks without a lock
  // Bumped (under the engine lock) whenever traceback ids or code-object
  // identities may have changed meaning: tables cleared, a cached code
  // object freed (forget_code). Per-thread caches of traceback ids check it.
  std::atomic<std::uint64_t> epoch{1};
  // 0 in exact mode. In sampled mode (the interval itself is
  // engine.sample_interval()) a generation number, never 0: a thread whose
  // sampler was seeded for another generation restarts it, from a seed
  // derived from `sampler_seed`, the generation and the thread's arrival,
  // before it counts a byte (a countdown left from an earlier session
  // would otherwise skip the first blocks of this one).
  std::atomic<std::uint64_t> sampler_generation{0};
  std::uint64_t last_generation = 0;  // guarded by the GIL
  std::atomic<std::uint64_t> sampler_seed{0};
  std::atomic<std::uint64_t> sampler_threads{0};
};

namespace detail {
// Immortal: the hooks may run during interpreter and process shutdown, after
// static destructors would have run, so the tracer is never destroyed. Made
// when the extension is loaded, before any hook can run; a plain pointer
// (no guard, no call) because every hook reads it.
inline Tracer* const the_tracer = new Tracer();
}  // namespace detail

inline Tracer& tracer() noexcept { return *detail::the_tracer; }

// One-time process setup (fork handlers). Returns false with
// a Python exception set on failure.
bool initialize();

// Called by the OBJ-domain free hook, before the block at `address` is
// released, when the frame cache may know a code object there: drops its
// entry and moves the epoch, under the engine lock. Any thread, any
// interpreter; must not be called with the engine lock held (nothing that
// holds it frees Python memory).
void forget_code(std::uintptr_t address) noexcept;

// Installs the hooks (unless ours are already on top) and the relocation
// slots of call_slots.h, and starts recording
// every block (sample_interval 0) or a byte sample of mean sample_interval.
// Keeps the current traceback limit when already tracing, as CPython does;
// returns false, changing nothing, when already tracing in the other mode
// or at another interval, or with native tracing (native_hooks.h) not as
// asked. With `native`, the C allocator's slots are diverted too; when they
// could not be (out of memory), tracing starts without them and
// native_tracing() says so.
bool start(int nframe, std::uint64_t sample_interval, bool native);
// Stops recording, removes our hooks when they are on top, puts the
// relocation slots back, and drops all traces.
void stop();
// Drops all traces and cached frames, keeping tracing on or off.
void clear_traces();
bool is_tracing() noexcept;

// Another tracer installed under ours can take our hooks out of the chain
// when it stops (CPython's tracemalloc.stop() restores the allocator it
// saved, which is not ours). Probes each domain with a one-byte allocation
// our hooks must see; where they did not, installs them again. On 3.13 also
// puts our reference tracer back if a call heapscope did not divert took
// its slot (reference_tracer.h). Returns whether anything had been lost.
// Needs the GIL; only while tracing.
bool repair_hooks();

// A new sampler generation (sampled mode only), under the GIL or in the
// fork child.
void bump_sampler_generation() noexcept;

// The seed of the samplers of the next generation (tests fix it).
void set_sampling_seed(std::uint64_t seed) noexcept;

// Bytes the tracer itself holds: tables, caches, interned names.
std::size_t memory_usage();

}  // namespace heapscope::cpython
