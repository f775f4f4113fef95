/* The remembered frame chain (core/frame_chain_walk.h) over the
 * _PyInterpreterFrame chain of 3.11 and later, where incomplete frames do
 * not count. Included by their frame captures after the internal headers
 * pycore_frame.h and pycore_interp.h. */
#ifndef HEAPSCOPE_INTERPRETER_FRAME_CHAIN_H
#define HEAPSCOPE_INTERPRETER_FRAME_CHAIN_H

#define HS_FRAME _PyInterpreterFrame
#define HS_CONTEXT PyThreadState *
static inline const HS_FRAME *hs_next(const HS_FRAME *f) { return f->previous; }
static inline unsigned hs_counts(const HS_FRAME *f) {
  return !_PyFrame_IsIncomplete((HS_FRAME *)f);
}
#if PY_VERSION_HEX < 0x030C0000
/* 3.11: a frame is incomplete while it runs the instructions before its
 * RESUME (COPY_FREE_VARS, MAKE_CELL, RETURN_GENERATOR), none of which links
 * a frame above it: a frame above an incomplete one came in through the C
 * evaluation entry (a finalizer, say), which marks it is_entry. So the
 * frame below one that is not an entry is complete, without reading its
 * code object. With a PEP 523 evaluator set, frames may be linked some
 * other way: the chain is not used then. */
static inline int hs_may_be_incomplete_below(const HS_FRAME *above) { return above->is_entry; }
static inline int hs_chain_usable(PyThreadState *tstate) {
  return tstate->interp->eval_frame == NULL;
}
#else
/* 3.12+: C-stack entry shims, and on 3.13 the _Py_InitCleanup trampoline
 * below an __init__ frame linked by an ordinary call, are incomplete too:
 * every frame gets the full check. */
static inline int hs_may_be_incomplete_below(const HS_FRAME *above) {
  (void)above;
  return 1;
}
static inline int hs_chain_usable(PyThreadState *tstate) {
  (void)tstate;
  return 1;
}
#endif
#include "core/frame_chain_walk.h"

#endif
