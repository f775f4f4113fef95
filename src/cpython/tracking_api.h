// The tracking C API reaching heapscope: PyTraceMalloc_Track /
// PyTraceMalloc_Untrack, which extensions call to report memory they
// allocate themselves (numpy's array data, pandas' hash tables), and
// _PyTraceMalloc_GetTraceback, through which CPython's _testcapi reads such
// a block's traceback. Their relocation slots in every loaded object are
// rewritten while heapscope traces (call_slots.h).
//
// While heapscope traces, a Track is recorded in its domain with the
// calling thread's traceback (any thread, GIL or not) and returns 0, or -1
// when it could not be stored, as CPython's module does; a second Track of
// the same (domain, ptr) replaces the first; an Untrack of an unknown block
// does nothing and returns 0. CPython's functions are called as well, so
// its module sees the calls when it traces too; their return value is
// dropped (heapscope's is returned). While heapscope does not trace, the
// calls go to CPython's functions only (-2 when its module does not trace).
// In sampled mode a tracked block is recorded when the calling thread's
// byte sampler picks it, as an allocation would be.
#pragma once

#include <cstddef>

#include "core/symbol_slots.h"

namespace heapscope::cpython {

// Writes the hooks into `out` (room for 3) and returns how many. GIL.
std::size_t tracking_api_hooks(core::symbol_slots::Hook* out) noexcept;

}  // namespace heapscope::cpython
