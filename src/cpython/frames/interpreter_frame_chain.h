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
/* Anchors: an optimized function's frame keeps f_locals null until
 * something asks for its locals, and a new activation at the same address
 * starts null again. So the capture marks a frame by giving it the empty
 * dict that locals() would have created there, and knows the activation by
 * that dict and its version tag (unique across dicts, bumped by every
 * change): if locals() fills it, or the frame returns and another takes its
 * place, the mark no longer holds and the walk goes on. Python code sees the
 * same thing as before: locals() and f_locals fill and return that dict,
 * and the frame frees it when it returns. Only thread-owned frames: a
 * generator's frame lives on after a yield and may come back on top of
 * other frames. */
#define HS_ANCHORS 1
static inline int hs_anchor_holds(const HS_FRAME *f, const hs_frame_chain *chain,
                                  PyThreadState *tstate) {
  PyObject *locals = f->f_locals;
  /* The type first: an object of another type that took the dict's address
   * may be too small to have a version tag. */
  return locals == (PyObject *)chain->anchor_mark && Py_IS_TYPE(locals, &PyDict_Type) &&
         ((PyDictObject *)locals)->ma_version_tag == chain->anchor_token &&
         tstate->interp->eval_frame == NULL;
}
static int hs_anchor_place(const HS_FRAME *frame, hs_frame_chain *chain, PyThreadState *tstate) {
  HS_FRAME *f = (HS_FRAME *)frame;
  if (f->owner != FRAME_OWNED_BY_THREAD || f->f_locals != NULL ||
      !(f->f_code->co_flags & CO_OPTIMIZED) || _PyFrame_IsIncomplete(f)) {
    return 0;
  }
  /* CPython's tracemalloc, tracing below our hooks, would see the dict as
   * an allocation of the traced program's. C code that calls the object
   * allocator without the GIL breaks its contract, and must not have us
   * write another thread's frame; nor is a dict made while Python
   * finalizes. All rare, and each only costs the walk its speed. */
  if (_Py_tracemalloc_config.tracing || tstate != PyGILState_GetThisThreadState() ||
      _Py_IsFinalizing()) {
    return 0;
  }
  /* 3.11 runs a collection as soon as a new GC object crosses the
   * threshold: not here, inside an allocator. The exception being raised,
   * if any, is kept, and an error of our own dropped. */
  struct _gc_runtime_state *gc = &tstate->interp->gc;
  const int collecting = gc->collecting;
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  gc->collecting = 1;
  PyObject *mark = PyDict_New();
  gc->collecting = collecting;
  PyErr_Restore(type, value, traceback);
  if (mark == NULL) return 0;
  f->f_locals = mark; /* the frame's reference: it frees the dict when it returns */
  chain->anchor_mark = mark;
  chain->anchor_token = ((PyDictObject *)mark)->ma_version_tag;
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
