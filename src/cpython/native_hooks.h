// Native tracing (start(native=True)): the C allocator's functions as
// called by extension modules and the libraries under them, diverted
// through their relocation slots (core/symbol_slots.h) while heapscope
// traces.
//
// Every block those objects get from malloc, calloc, realloc,
// reallocarray, posix_memalign, aligned_alloc, memalign, valloc or pvalloc
// is a trace in kNativeDomain under the calling thread's traceback (any
// thread, GIL or not; `<unknown>` for a thread without Python frames), of
// the size asked for; free removes it; realloc moves it (the moved block
// takes the current traceback). An anonymous mapping (mmap, mmap64 with
// MAP_ANONYMOUS) is a trace of its length in whole pages; munmap removes
// the part it unmaps (what is left of a mapping keeps its traceback),
// mremap moves or resizes it, a MAP_FIXED mapping replaces what it covers.
// File-backed mappings are not traced. In sampled mode a block or mapping
// is traced when the thread's byte sampler puts a sample point in it, as
// for Python's blocks.
//
// Not diverted, so never seen twice or seen at all:
//  - the main program and libpython: CPython's own calls to malloc are the
//    ones under PyMem_RawMalloc and friends, which domain 0 traces already;
//  - the C library and the dynamic loader (their internal allocations,
//    strdup's or fopen's, are made without going through any slot);
//  - libstdc++ and libgcc_s: heapscope's own C++ runtime. Its containers
//    allocate through libstdc++'s operator new, sometimes with the engine
//    lock held; diverting libstdc++'s slots would bring those allocations
//    back into the hook. C++ code's `new` is therefore not seen (its direct
//    malloc calls are);
//  - heapscope's own module (never patched: its slots are how the
//    replacements reach the C library);
//  - allocators and sanitizer runtimes that replace malloc for the whole
//    process (libjemalloc, libtcmalloc, libmimalloc, libasan, ... loaded
//    with LD_PRELOAD): the mappings they make back every block, Python's
//    too. Recognised by name (native_hooks_wanted).
// A thread already inside one of heapscope's hooks passes its calls
// straight through (an allocator hook another tool put under Python's,
// calling malloc, is traced once, in domain 0).
//
// A block an extension also reports through PyTraceMalloc_Track (numpy's
// array data) is traced in that domain only: the Track drops the native
// trace at that address (tracking_api.cc).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/symbol_slots.h"

namespace heapscope::cpython {

// The domain of native traces: "nat" in ASCII, a number no known extension
// uses with PyTraceMalloc_Track (numpy 389047, pandas 424242, cykhash
// 414141).
inline constexpr std::uint32_t kNativeDomain = 0x6E6174;

// Writes the allocator hooks into `out` (room for kNativeHooks) and
// returns how many. GIL.
inline constexpr std::size_t kNativeHooks = 14;
std::size_t native_hooks(core::symbol_slots::Hook* out) noexcept;

// Whether the hooks record (start(native=True) until stop()). Any thread.
void set_native_tracing(bool on) noexcept;
bool native_tracing() noexcept;

// Whether an object's allocator slots are diverted (the filter above).
bool native_hooks_wanted(const core::symbol_slots::LoadedObject& object) noexcept;

}  // namespace heapscope::cpython
