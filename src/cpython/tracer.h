// The process-wide tracer: the engine, the frame cache and the allocator
// hooks that feed them. Every function here expects the GIL unless it says
// otherwise.
#pragma once

#include <Python.h>

#include <atomic>
#include <cstddef>

#include "core/engine.h"
#include "frame_resolver.h"

namespace heapscope::cpython {

inline constexpr int kMaxFrames = 65535;  // CPython's limit for start(nframe)

struct Tracer {
  core::Engine engine;
  FrameResolver resolver;                 // guarded by engine.mutex()
  std::atomic<int> max_nframe{1};         // read by the hooks without a lock
  // Bumped (under the engine lock) whenever traceback ids or code-object
  // identities may have changed meaning: tables cleared, a cached code
  // object destroyed. Per-thread caches of traceback ids check it.
  std::atomic<std::uint64_t> epoch{1};
};

// Immortal: the hooks may run during interpreter and process shutdown, after
// static destructors would have run, so the tracer is never destroyed.
Tracer& tracer() noexcept;

// One-time process setup (fork handlers, code watcher). Returns false with
// a Python exception set on failure.
bool initialize();

// Installs the hooks (unless ours are already on top) and starts recording.
// Keeps the current traceback limit when already tracing, as CPython does.
void start(int nframe);
// Stops recording, removes our hooks when they are on top, and drops all traces.
void stop();
// Drops all traces and cached frames, keeping tracing on or off.
void clear_traces();
bool is_tracing() noexcept;

// Another tracer installed under ours can take our hooks out of the chain
// when it stops (CPython's tracemalloc.stop() restores the allocator it
// saved, which is not ours). Probes each domain with a one-byte allocation
// our hooks must see; where they did not, installs them again. Returns
// whether any domain had lost them. Needs the GIL; only while tracing.
bool repair_hooks();

// Bytes the tracer itself holds: tables, caches, interned names.
std::size_t memory_usage();

}  // namespace heapscope::cpython
