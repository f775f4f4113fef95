/* Frame capture for CPython 3.13: the _PyInterpreterFrame chain hanging off
 * tstate->current_frame, whose code lives in f_executable; incomplete frames
 * (C-stack shims, frames still being set up) are skipped as CPython does. */
#define Py_BUILD_CORE 1
#include "frame_capture.h"

#include <internal/pycore_frame.h>
#include <internal/pycore_interp.h>

#include "interpreter_frame_chain.h"

int hs_capture_frames(PyThreadState *tstate, hs_raw_frame *out, int max_frames,
                      unsigned *total, int holds_gil, hs_frame_chain *chain) {
  /* 3.12 reads the depth from the recursion counter; 3.13 cannot: a class
   * call specialised as CALL_ALLOC_AND_ENTER_INIT links and counts a
   * trampoline frame (_Py_InitCleanup) below __init__'s frame, which is
   * incomplete and so left out of CPython's own count, and only a walk
   * finds how many such frames the stack holds. */
  (void)holds_gil;
  int written = 0;
  _PyInterpreterFrame *top = tstate ? tstate->current_frame : NULL;
  _PyInterpreterFrame *f;
  for (f = _PyFrame_GetFirstComplete(top); f != NULL && written < max_frames;
       f = _PyFrame_GetFirstComplete(f->previous)) {
    out[written].code = _PyFrame_GetCode(f);
    out[written].byte_offset = _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
    out[written].lineno_override = -1;
    written++;
  }
  /* Past the traceback limit only total_nframe needs the frames: count the
   * complete ones (deep stacks spend their time here). */
  return hs_finish_capture(f, chain, tstate, written, total);
}

Py_ssize_t hs_code_units(PyCodeObject *code) { return Py_SIZE(code); }

PyThreadState *hs_gil_holder(void) { return PyThreadState_GetUnchecked(); }
