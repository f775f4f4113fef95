/* Frame capture for CPython 3.11: the _PyInterpreterFrame chain hanging off
 * tstate->cframe, skipping frames still being set up (incomplete), as
 * CPython 3.11's own tracemalloc does. */
#define Py_BUILD_CORE 1
#include "frame_capture.h"

#include <internal/pycore_frame.h>
#include <internal/pycore_interp.h>

#define HS_FRAME _PyInterpreterFrame
#define HS_CONTEXT PyThreadState *
static inline const HS_FRAME *hs_next(const HS_FRAME *f) { return f->previous; }
static inline unsigned hs_counts(const HS_FRAME *f) {
  return !_PyFrame_IsIncomplete((HS_FRAME *)f);
}
/* A frame is incomplete while it runs the instructions before its RESUME
 * (COPY_FREE_VARS, MAKE_CELL, RETURN_GENERATOR), none of which links a
 * frame above it: a frame above an incomplete one came in through the C
 * evaluation entry (a finalizer, say), which marks it is_entry. So the
 * frame below one that is not an entry is complete, without reading its
 * code object. With a PEP 523 evaluator set, frames may be linked some
 * other way: the chain is not used then. */
static inline int hs_may_be_incomplete_below(const HS_FRAME *above) { return above->is_entry; }
static inline int hs_chain_usable(PyThreadState *tstate) {
  return tstate->interp->eval_frame == NULL;
}
#include "core/frame_chain_walk.h"

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
