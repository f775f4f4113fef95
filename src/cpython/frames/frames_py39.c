/* Frame capture for CPython 3.9: the PyFrameObject chain, f_lasti in bytes. */
#include "frame_capture.h"

#include <frameobject.h>

#include "frame_object_chain.h"

int hs_capture_frames(PyThreadState *tstate, hs_raw_frame *out, int max_frames,
                      unsigned *total, int holds_gil, hs_frame_chain *chain) {
  (void)holds_gil; /* no counter to read: before 3.12 one counter mixes C and Python calls */
  int written = 0;
  PyFrameObject *f = tstate ? tstate->frame : NULL;
  for (; f != NULL && written < max_frames; f = f->f_back, written++) {
    out[written].code = f->f_code;
    out[written].byte_offset = f->f_lasti;
    /* PyFrame_GetLineNumber: while tracing, f_lineno is the truth. */
    out[written].lineno_override = f->f_trace ? f->f_lineno : -1;
  }
  /* Past the traceback limit only total_nframe needs the frames: count them
   * (deep stacks spend their time here). */
  return hs_finish_capture(f, chain, tstate, written, total);
}

Py_ssize_t hs_code_units(PyCodeObject *code) {
  return PyBytes_GET_SIZE(code->co_code) / 2;
}

PyThreadState *hs_gil_holder(void) { return _PyThreadState_UncheckedGet(); }
