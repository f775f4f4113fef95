// Which thread state an allocator hook runs under, without taking the GIL.
#pragma once

#include <Python.h>

#include "frames/frame_capture.h"

namespace heapscope::cpython {

// The thread state that holds the GIL, or null. Never fails, never allocates.
inline PyThreadState* gil_holder() noexcept { return hs_gil_holder(); }

// The calling OS thread's own thread state, GIL or not (null for a thread
// Python never saw). Its frame chain is stable while this thread is inside
// an allocator, since only this thread pushes or pops its frames.
inline PyThreadState* own_thread_state() noexcept { return PyGILState_GetThisThreadState(); }

}  // namespace heapscope::cpython
