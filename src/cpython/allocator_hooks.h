// Python's allocator hooks for the RAW, MEM and OBJ domains.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heapscope::cpython {

// Puts our hooks on top of each domain's current allocator, unless they are
// already there. Needs the GIL.
void install_hooks();

// Whether install_hooks() would leave the RAW domain untraced: each time
// another hook sits on top of the RAW allocator at start(), ours go on top
// in a new slot (RAW hooks are never removed, see uninstall_hooks), and
// the slots are few. Needs the GIL.
bool raw_hooks_exhausted();

// Restores the allocator our hooks wrapped, in the MEM and OBJ domains
// where our hooks are on top. The RAW hooks stay installed and pass calls
// straight through while tracing is off: other threads call the raw
// allocator without the GIL, so rewriting it races them (a torn read of
// the allocator struct), and the hooks are built so that the one install
// is safe against that race but a removal could not be. Where another hook
// was installed over ours (CPython's own tracemalloc, say), ours stay in its
// chain and pass calls straight through while tracing is off: unhooking
// from the middle of a chain is impossible. Needs the GIL.
void uninstall_hooks();

// Marks the calling thread as inside a hook, so allocations it makes are
// passed through untraced (used around fork, where the tables are locked).
void enter_untraced_region() noexcept;
// Whether the calling thread is inside a hook or an untraced region.
bool in_untraced_region() noexcept;
void leave_untraced_region() noexcept;

// An untraced region for the lifetime of the object; the thread's state
// before it (maybe in a region already) comes back at its end.
class UntracedScope {
 public:
  UntracedScope() noexcept : was_inside_(in_untraced_region()) {
    if (!was_inside_) enter_untraced_region();
  }
  ~UntracedScope() {
    if (!was_inside_) leave_untraced_region();
  }
  UntracedScope(const UntracedScope&) = delete;
  UntracedScope& operator=(const UntracedScope&) = delete;

 private:
  bool was_inside_;
};

// Whether a block the hooks did not see (PyTraceMalloc_Track) is to be
// traced: always in exact mode; in sampled mode when this thread's byte
// sampler puts a sample point in it, as for an allocation.
bool should_trace_block(std::size_t size, std::uintptr_t address) noexcept;

// For repair_hooks()'s probe in sampled mode: the next block this thread
// allocates through our hooks is noted as recently recorded (block_recorder.h)
// without being recorded, and the thread's sampler is left as it was.
// disarm_probe() cancels a probe no hook saw.
void arm_probe() noexcept;
void disarm_probe() noexcept;

}  // namespace heapscope::cpython
