/* The remembered frame chain (core/frame_chain_walk.h) over 3.9's and
 * 3.10's PyFrameObject chain, where every frame counts. Included by their
 * frame captures after <frameobject.h>. */
#ifndef HEAPSCOPE_FRAME_OBJECT_CHAIN_H
#define HEAPSCOPE_FRAME_OBJECT_CHAIN_H

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

#endif
