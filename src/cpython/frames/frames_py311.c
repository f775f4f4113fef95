/* Frame capture for CPython 3.11: the _PyInterpreterFrame chain hanging off
 * tstate->cframe, skipping frames still being set up (incomplete), as
 * CPython 3.11's own tracemalloc does. */
#define Py_BUILD_CORE 1
#include "frame_capture.h"

#include <internal/pycore_frame.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_pymem.h>

#include "interpreter_frame_chain.h"

int hs_capture_frames(PyThreadState *tstate, hs_raw_frame *out, int max_frames,
                      unsigned *total, int holds_gil, hs_frame_chain *chain) {
  (void)holds_gil; /* no counter to read: before 3.12 one counter mixes C and Python calls */
  int written = 0;
  _PyInterpreterFrame *f = (tstate && tstate->cframe) ? tstate->cframe->current_frame : NULL;
  for (; f != NULL && written < max_frames; f = f->previous) {
    if (_PyFrame_IsIncomplete(f)) continue;
    out[written].code = f->f_code;
    out[written].byte_offset = _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
    out[written].lineno_override = -1;
    written++;
  }
  /* Past the traceback limit only total_nframe needs the frames: count the
   * complete ones (deep stacks spend their time here). */
  return hs_finish_capture(f, chain, tstate, written, total);
}

Py_ssize_t hs_code_units(PyCodeObject *code) { return Py_SIZE(code); }
