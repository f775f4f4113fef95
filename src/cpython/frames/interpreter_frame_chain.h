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
static inline int hs_may_be_incomplete_below(const HS_FRAME *above) {
  /* Read as a byte: the read-ahead reads frames before their links are
   * checked, and a stale one's memory may hold anything (a bool load of
   * another value is undefined; UBSan saw 234). Any nonzero byte sends the
   * block frame by frame. */
  return *(const unsigned char *)&above->is_entry != 0;
}
static inline int hs_chain_usable(PyThreadState *tstate) {
  return tstate->interp->eval_frame == NULL;
}
/* Read-ahead: the regions are the thread's data-stack chunks, newest
 * first. They are this thread's own, and one is freed only when the thread
 * pops its first frame, so they stay mapped while the thread is inside an
 * allocator; frames pushed on one rise. */
#define HS_READ_AHEAD 1
typedef struct {
  const _PyStackChunk *chunk;
  __UINTPTR_TYPE__ first, last; /* where a frame in `chunk` may start */
} hs_readable;
static inline void hs_readable_at(hs_readable *r, const _PyStackChunk *chunk) {
  r->chunk = chunk;
  r->first = chunk ? (__UINTPTR_TYPE__)chunk->data : 1;
  r->last = chunk ? (__UINTPTR_TYPE__)chunk + chunk->size - sizeof(HS_FRAME) : 0;
}
static inline void hs_readable_begin(PyThreadState *tstate, hs_readable *r) {
  hs_readable_at(r, tstate->datastack_chunk);
}
static inline int hs_readable_has(const hs_readable *r, const void *frame) {
  return (__UINTPTR_TYPE__)frame >= r->first && (__UINTPTR_TYPE__)frame <= r->last;
}
static inline int hs_readable_older(hs_readable *r) {
  if (r->chunk == NULL || r->chunk->previous == NULL) return 0;
  hs_readable_at(r, r->chunk->previous);
  return 1;
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
