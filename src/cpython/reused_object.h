// An object created in a block that is already traced (CPython reused the
// block from a free list or a cache of dead objects, or a finalizer
// resurrected the object) takes the creating line's traceback, as CPython's
// module re-dates it. Called by the object-creation hooks: the 3.13
// reference tracer and, before 3.13, the _Py_NewReference wrappers.
#pragma once

#include <Python.h>

#include "allocator_hooks.h"
#include "block_recorder.h"
#include "object_address.h"
#include "tracer.h"

namespace heapscope::cpython {

// Needs the GIL (object creation holds it).
inline void retrace_if_reused(PyObject* obj) noexcept {
  // An object created by our own work (the frame capture's marks make a
  // dict on 3.11) is neither traced nor retraced: no recursion.
  if (!is_tracing() || in_untraced_region()) return;
  const std::uintptr_t block = block_address(obj);
  // Most objects are created right after their block was allocated and
  // traced with this very traceback: only reused blocks need the work.
  // In sampled mode almost no block is traced: the filter says so without
  // the lock.
  if (take_last_recorded_block() != block && tracer().engine.may_be_traced(block)) {
    enter_untraced_region();
    retrace_block(block);
    leave_untraced_region();
  }
}

}  // namespace heapscope::cpython
