/* Frame capture for CPython 3.11: the _PyInterpreterFrame chain hanging off
 * tstate->cframe, skipping frames still being set up (incomplete), as
 * CPython 3.11's own tracemalloc does. */
#define Py_BUILD_CORE 1
#include "frame_capture.h"

#include <internal/pycore_frame.h>
#include <internal/pycore_interp.h>
#include <internal/pycore_pymem.h>
#include <internal/pycore_pystate.h>
#include <string.h>

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

/* The rest of a capture whose `written` frames end with the live anchor:
 * the frames below it are those it was marked over (core/frame_chain.h),
 * copied from the chain once a capture has kept them. While a trace
 * function runs, it may move a waiting frame's line (a 'line' event may set
 * any traced frame's f_lineno): the frames are read then, and kept only
 * once tracing is off. */
static int below_anchor(PyThreadState *tstate, const _PyInterpreterFrame *anchor,
                        hs_frame_chain *chain, hs_raw_frame *out, int written, int max_frames,
                        unsigned *total, hs_capture_key *key) {
  const unsigned below = chain->anchor_below;
  *total = hs_capped((unsigned)written + below);
  chain->anchor_uses++;
  key->live = written;
  key->token = chain->anchor_token;
  unsigned want = (unsigned)(max_frames - written);
  if (want > below) want = below;
  const int tracing = tstate->cframe->use_tracing != 0;
  if (chain->anchor_stored >= want && !tracing) {
    if (want != 0) memcpy(out + written, chain->anchor_frames, want * sizeof(hs_raw_frame));
    return written + (int)want;
  }
  /* The first capture through this anchor to need the frames below reads
   * them, and keeps them for the next. */
  _PyInterpreterFrame *f = anchor->previous;
  const int n = write_frames(&f, out, written, max_frames);
  if (tracing) {
    chain->anchor_stored = 0;
    key->token = 0; /* all read, nothing copied: known by all its frames */
  } else {
    hs_anchor_store(chain, out + written, (unsigned)(n - written), sizeof(hs_raw_frame));
  }
  return n;
}

/* A capture that may meet the thread's anchor among the frames it writes.
 * Out of line: a traceback of one frame copies nothing below it. */
__attribute__((noinline)) static int capture_through_anchor(PyThreadState *tstate,
                                                            _PyInterpreterFrame *top,
                                                            hs_raw_frame *out, int max_frames,
                                                            unsigned *total,
                                                            hs_frame_chain *chain,
                                                            hs_capture_key *key) {
  const void *anchor = chain->anchor;
  int written = 0;
  _PyInterpreterFrame *f = top;
  for (; f != NULL && written < max_frames; f = f->previous) {
    if (_PyFrame_IsIncomplete(f)) continue;
    write_frame(&out[written++], f);
    if (f == anchor && hs_anchor_holds(f, chain, tstate)) {
      return below_anchor(tstate, f, chain, out, written, max_frames, total, key);
    }
  }
  return hs_finish_capture(top, f, chain, tstate, written, total);
}

int hs_capture_frames(PyThreadState *tstate, hs_raw_frame *out, int max_frames,
                      unsigned *total, int holds_gil, hs_frame_chain *chain, hs_capture_key *key) {
  (void)holds_gil; /* no counter to read: before 3.12 one counter mixes C and Python calls */
  _PyInterpreterFrame *top = (tstate && tstate->cframe) ? tstate->cframe->current_frame : NULL;
  if (chain != NULL) {
    chain->traceback_limit = (unsigned)max_frames;
    if (max_frames > 1 && chain->anchor != NULL) {
      return capture_through_anchor(tstate, top, out, max_frames, total, chain, key);
    }
  }
  _PyInterpreterFrame *f = top;
  const int written = write_frames(&f, out, 0, max_frames);
  /* Past the traceback limit only total_nframe needs the frames: count the
   * complete ones (deep stacks spend their time here). */
  return hs_finish_capture(top, f, chain, tstate, written, total);
}

Py_ssize_t hs_code_units(PyCodeObject *code) { return Py_SIZE(code); }

/* _PyThreadState_UncheckedGet() is this load, behind a call into libpython. */
PyThreadState *hs_gil_holder(void) { return _PyThreadState_GET(); }
