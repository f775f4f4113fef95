// Recording a block under the calling thread's current traceback: the part
// of the hot path shared by the allocator hooks and the reference tracer.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heapscope::cpython {

// Traces a block just allocated. `raw_domain`: the call came through the
// RAW allocator, which may run without the GIL. Never allocates through
// Python, never takes the GIL.
void record_new_block(bool raw_domain, std::uintptr_t address, std::size_t size) noexcept;

// Gives an already traced block the current traceback (an object reused its
// memory). Untraced blocks stay untraced. Needs the GIL.
void retrace_block(std::uintptr_t address) noexcept;

// The block this thread traced last, 0 after it was consumed: an object
// created right after its allocation needs no retrace.
std::uintptr_t take_last_recorded_block() noexcept;

// PyTraceMalloc_Track: traces (domain, address) under the calling thread's
// traceback, from any thread, with or without the GIL. kNotTracing when a
// stop() won the race.
enum class TrackResult { kStored, kNotStored, kNotTracing };
TrackResult record_tracked_block(std::uint32_t domain, std::uintptr_t address,
                                 std::size_t size) noexcept;
// PyTraceMalloc_Untrack: drops the trace of (domain, address), if any.
void forget_tracked_block(std::uint32_t domain, std::uintptr_t address) noexcept;

// Counts `address` among this thread's last few blocks without recording it
// (a probe in sampled mode).
void note_recent_block(std::uintptr_t address) noexcept;

// Whether this thread recorded `address` among its last few blocks, of
// those recorded while note_recorded_blocks(true) was in effect.
bool recently_recorded(std::uintptr_t address) noexcept;

// Switches on or off, for this thread, noting each block it records for
// recently_recorded(): only repair_hooks' probe asks, so the hot path
// notes nothing otherwise.
void note_recorded_blocks(bool on) noexcept;

}  // namespace heapscope::cpython
