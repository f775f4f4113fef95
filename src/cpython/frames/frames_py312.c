/* Frame capture for CPython 3.12: the _PyInterpreterFrame chain hanging off
 * tstate->cframe, skipping incomplete frames (C-stack shims and frames still
 * being set up) as CPython 3.12 does. */
#define Py_BUILD_CORE 1
#include "frame_capture.h"

#include <internal/pycore_frame.h>

int hs_capture_frames(PyThreadState *tstate, hs_raw_frame *out, int max_frames,
                      unsigned *total) {
  int written = 0;
  _PyInterpreterFrame *f = (tstate && tstate->cframe) ? tstate->cframe->current_frame : NULL;
  for (f = _PyFrame_GetFirstComplete(f); f != NULL && written < max_frames;
       f = _PyFrame_GetFirstComplete(f->previous)) {
    out[written].code = f->f_code;
    out[written].byte_offset = _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
    out[written].lineno_override = -1;
    written++;
  }
  /* Past the traceback limit only total_nframe needs the frames: count the
   * complete ones in a loop that does nothing else (deep stacks spend their
   * time here). f is complete or NULL here. */
  unsigned depth = (unsigned)written;
  for (; f != NULL; f = f->previous) depth += !_PyFrame_IsIncomplete(f);
  *total = depth < 65535 ? depth : 65535;
  return written;
}

Py_ssize_t hs_code_units(PyCodeObject *code) { return Py_SIZE(code); }
