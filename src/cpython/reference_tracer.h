// Objects reusing a traced block (CPython freelists) get the traceback of
// their creation, as in CPython's module. CPython 3.13 reports object
// creation to a public reference tracer; before 3.13 the same is done by
// wrapping _Py_NewReference (new_reference_hook.h), and these do nothing.
//
// The 3.13 tracer is a single slot (PyRefTracer_SetTracer), and CPython's
// tracemalloc.start() writes its own tracer there without chaining the one
// it finds, and its stop() writes NULL. So that neither module silently
// loses the other's re-dating, heapscope keeps its tracer in the slot while
// it traces and diverts PyRefTracer_SetTracer / PyRefTracer_GetTracer
// through the relocation slots (call_slots.h): a tracer others set is kept
// as the one ours calls after its own work, and is what they read back.
// Callers that reach the real functions anyway (a libpython linked
// statically, ctypes.pythonapi) are caught by repair_reference_tracer() at
// the next heapscope.is_tracing().
#pragma once

#include <cstddef>

#include "core/symbol_slots.h"

namespace heapscope::cpython {

// Installs our reference tracer, chaining to any tracer already set. GIL.
void install_reference_tracer();
// Puts back the tracer others set (chained to ours) when ours is still the
// one set. GIL.
void uninstall_reference_tracer();
// While tracing: when the slot no longer holds our tracer, puts ours back,
// chaining to the one found there. Returns whether it had to. GIL.
bool repair_reference_tracer();
// Writes the SetTracer / GetTracer hooks into `out` (room for 2) and
// returns how many; 0 before 3.13. GIL.
std::size_t reference_tracer_hooks(core::symbol_slots::Hook* out) noexcept;

}  // namespace heapscope::cpython
