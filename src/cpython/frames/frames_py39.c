/* Frame capture for CPython 3.9: the PyFrameObject chain, f_lasti in bytes. */
#include "frame_capture.h"

#include <frameobject.h>

#define HS_FRAME PyFrameObject
#define HS_CONTEXT PyThreadState *
static inline const HS_FRAME *hs_next(const HS_FRAME *f) { return f->f_back; }
static inline unsigned hs_counts(const HS_FRAME *f) {
  (void)f;
  return 1;
}
static inline int hs_may_be_incomplete_below(const HS_FRAME *above) {
  (void)above;
  return 0;
}
static inline int hs_chain_usable(PyThreadState *tstate) {
  (void)tstate;
  return 1;
}
#include "core/frame_chain_walk.h"

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
