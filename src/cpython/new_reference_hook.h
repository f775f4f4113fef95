// Objects reusing a traced block, re-dated before 3.13: CPython 3.9-3.12
// tell only their own tracemalloc when an object is created
// (_Py_NewReference calls a private function), so heapscope wraps
// _Py_NewReference (and _Py_NewReferenceNoTotal on 3.12, which the free
// lists call) in the relocation slots through which libpython and
// extensions call it. 3.13 has a public reference tracer instead
// (reference_tracer.h): there this adds nothing.
#pragma once

#include <cstddef>

#include "core/symbol_slots.h"

namespace heapscope::cpython {

// Writes this version's hooks into `out` (room for 2) and returns how many;
// 0 on 3.13+ or when the functions cannot be found. GIL.
std::size_t new_reference_hooks(core::symbol_slots::Hook* out) noexcept;

}  // namespace heapscope::cpython
