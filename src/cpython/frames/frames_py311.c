/* Frame capture for CPython 3.11: the _PyInterpreterFrame chain hanging off
 * tstate->cframe, skipping frames still being set up (incomplete), as
 * CPython 3.11's own tracemalloc does. */
#define Py_BUILD_CORE 1
#include "frame_capture.h"

#include <internal/pycore_frame.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_pystate.h>

#include "interpreter_frame_chain.h"

static inline void write_frame(hs_raw_frame *out, const _PyInterpreterFrame *f) {
  out->code = f->f_code;
  out->byte_offset = _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
  out->lineno_override = -1;
}

/* Writes the complete frames from *from down, until `max_frames` are
 * written; *from is left on the first frame not looked at. */
static inline int write_frames(_PyInterpreterFrame **from, hs_raw_frame *out, int written,
                               int max_frames) {
  _PyInterpreterFrame *f = *from;
  for (; f != NULL && written < max_frames; f = f->previous) {
    if (_PyFrame_IsIncomplete(f)) continue;
    write_frame(&out[written++], f);
  }
  *from = f;
  return written;
}

int hs_capture_frames(PyThreadState *tstate, hs_raw_frame *out, int max_frames,
                      unsigned *total, int holds_gil, hs_frame_chain *chain) {
  (void)holds_gil; /* no counter to read: before 3.12 one counter mixes C and Python calls */
  _PyInterpreterFrame *top = (tstate && tstate->cframe) ? tstate->cframe->current_frame : NULL;
  _PyInterpreterFrame *f = top;
  const int written = write_frames(&f, out, 0, max_frames);
  /* Past the traceback limit only total_nframe needs the frames: count the
   * complete ones (deep stacks spend their time here). */
  return hs_finish_capture(f, chain, tstate, written, total);
}

Py_ssize_t hs_code_units(PyCodeObject *code) { return Py_SIZE(code); }

/* _PyThreadState_UncheckedGet() is this load, behind a call into libpython. */
PyThreadState *hs_gil_holder(void) { return _PyThreadState_GET(); }
