/* Frame capture for CPython 3.9: the PyFrameObject chain, f_lasti in bytes. */
#include "frame_capture.h"

#include <frameobject.h>

int hs_capture_frames(PyThreadState *tstate, hs_raw_frame *out, int max_frames,
                      unsigned *total) {
  int written = 0;
  unsigned depth = 0;
  for (PyFrameObject *f = tstate ? tstate->frame : NULL; f != NULL; f = f->f_back) {
    if (written < max_frames) {
      out[written].code = f->f_code;
      out[written].byte_offset = f->f_lasti;
      /* PyFrame_GetLineNumber: while tracing, f_lineno is the truth. */
      out[written].lineno_override = f->f_trace ? f->f_lineno : -1;
      written++;
    }
    if (depth < 65535) depth++;
  }
  *total = depth;
  return written;
}

Py_ssize_t hs_code_units(PyCodeObject *code) {
  return PyBytes_GET_SIZE(code->co_code) / 2;
}
