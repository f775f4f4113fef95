/* Walking the calling thread's Python stack: one interface, one file per
 * CPython version family (chosen by CMake), because the frame structs are
 * private and change with every minor release.
 *
 * The walk reads the thread's frame chain directly and creates no Python
 * object: PyEval_GetFrame/PyFrame_GetBack would materialise frame objects on
 * 3.11+, which is exactly what an allocator hook must not do. It is safe
 * without the GIL when `tstate` belongs to the calling thread, since only
 * that thread changes its own chain. Written in C because the 3.11+ frame
 * layout is only reachable through CPython's internal C headers. */
#ifndef HEAPSCOPE_FRAME_CAPTURE_H
#define HEAPSCOPE_FRAME_CAPTURE_H

#include <Python.h>

#include "core/frame_chain.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  PyCodeObject *code;
  /* Offset in bytes of the instruction being executed, as PyCode_Addr2Line
   * takes it; negative before the first instruction. */
  int byte_offset;
  /* The line CPython reports regardless of the offset (3.9/3.10 keep it in
   * the frame while a trace function is set); -1 when the offset decides. */
  int lineno_override;
} hs_raw_frame;

/* Writes at most `max_frames` frames of `tstate`'s stack into `out`, most
 * recent first, and returns how many it wrote. `*total` receives the whole
 * depth, capped at 65535 as CPython caps total_nframe. `holds_gil` says the
 * calling thread holds the GIL: only then may 3.12+ read the depth from the
 * thread's recursion counters, which sys.setrecursionlimit rewrites from
 * another thread under the GIL. `chain`, the calling thread's own (or
 * null), speeds up counting deep stacks (core/frame_chain.h). The walk only
 * reads: it writes nothing into the frames, the thread state or the
 * interpreter. */
int hs_capture_frames(PyThreadState *tstate, hs_raw_frame *out, int max_frames,
                      unsigned *total, int holds_gil, hs_frame_chain *chain);

/* The thread state that holds the GIL, or null: _PyThreadState_UncheckedGet()
 * (PyThreadState_GetUnchecked() on 3.13), read inline where the version's
 * internal headers allow it. Asked on every traced allocation. */
PyThreadState *hs_gil_holder(void);

/* The number of code units (instructions) of `code`: the valid range of
 * byte_offset / 2 that the line cache may index. */
Py_ssize_t hs_code_units(PyCodeObject *code);

#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
/* 3.12: a module that switches Python stacks on one thread (greenlet) was
 * loaded, so the recursion counter no longer counts the frames of the
 * running stack alone: total_nframe comes from a walk from now on. */
void hs_note_stack_switcher(void);
#endif

#ifdef __cplusplus
}
#endif

#endif
