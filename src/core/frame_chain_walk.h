/* Counting the frames below the traceback limit, with a remembered chain
 * (frame_chain.h). Included by a version's frame capture after it defines:
 *   HS_FRAME, the frame type, and HS_CONTEXT, what the capture passes on;
 *   const HS_FRAME *hs_next(const HS_FRAME *f)    the frame below f;
 *   unsigned hs_counts(const HS_FRAME *f)         1 if total_nframe counts f;
 *   int hs_may_be_incomplete_below(const HS_FRAME *above)
 *       0 when the frame `above` links to is known to be counted (so the
 *       chain's check reads nothing else of it), 1 when it needs hs_counts;
 *   int hs_chain_usable(HS_CONTEXT context)       whether the chain may be
 *       used at all (asked only for deep stacks).
 * A template by inclusion: the frame types are version-specific C structs,
 * and the loops are only worth it with those functions inlined. */
#ifndef HEAPSCOPE_FRAME_CHAIN_WALK_H
#define HEAPSCOPE_FRAME_CHAIN_WALK_H

#include <stddef.h>

#include "frame_chain.h"

/* Frames past the limit that are counted by following pointers before the
 * remembered chain is consulted: shallow stacks never touch it. */
#define HS_PLAIN_FRAMES 16

static unsigned hs_count_plain(const HS_FRAME *f) {
  unsigned n = 0;
  for (; f != NULL; f = hs_next(f)) n += hs_counts(f);
  return n;
}

/* Out of memory for the chain: forget it and count from `f` by walking. */
static unsigned hs_forget_and_walk(hs_frame_chain *chain, const HS_FRAME *f) {
  chain->count = 0;
  return hs_count_plain(f);
}

/* Pushes `f` on the walk in progress; 0 when out of memory. */
static inline int hs_scratch_push(hs_frame_chain *chain, unsigned *n, const HS_FRAME *f) {
  if (*n == chain->scratch_capacity &&
      !hs_frame_chain_reserve(&chain->scratch, &chain->scratch_capacity, *n + 1)) {
    return 0;
  }
  chain->scratch[(*n)++] = f;
  return 1;
}

/* Counts from `start` (a live frame) to the bottom, and leaves the chain
 * holding the stack as it is now (or empty when memory ran out). Out of
 * line: shallow stacks never get here, and inlined it would make every
 * capture save and restore the registers it needs. */
__attribute__((noinline)) static unsigned hs_count_remembering(const HS_FRAME *start,
                                                               hs_frame_chain *chain) {
  /* Follow pointers until a frame the chain holds: the frames above it are
   * new since the last walk. */
  unsigned counted = 0, top = 0, join = 0;
  int joined = 0;
  const HS_FRAME *f = start;
  for (; f != NULL; f = hs_next(f)) {
    if (hs_frame_chain_find(chain, f, &join)) {
      joined = 1;
      break;
    }
    if (!hs_scratch_push(chain, &top, f)) {
      return counted + hs_forget_and_walk(chain, f);
    }
    counted += hs_counts(f);
  }
  if (!joined) {
    hs_frame_chain_store(chain, 0, top);
    return counted;
  }
  /* frames[join] is live: the walk reached it. Each remembered frame below
   * it is read only after the live frame above links to it; the next
   * address comes from the array, so the processor need not wait for one
   * frame's load to start the next. */
  const void *const *frames = chain->frames;
  const HS_FRAME *g = f;
  counted += hs_counts(g);
  const void *const *at = frames + join; /* *at == g */
  unsigned incomplete = 0;
  for (; at != frames; --at) {
    const HS_FRAME *below = (const HS_FRAME *)at[-1];
    if (hs_next(g) != below) break;
    if (__builtin_expect(hs_may_be_incomplete_below(g), 0)) incomplete += !hs_counts(below);
    g = below;
  }
  const unsigned i = (unsigned)(at - frames);
  counted += join - i - incomplete;
  if (i == 0 && hs_next(g) == NULL) {
    hs_frame_chain_store(chain, join + 1, top);
    return counted;
  }
  /* The stack differs below frames[i] (g, live and counted): walk the rest,
   * and remember the whole stack from this walk. */
  for (unsigned k = join + 1; k-- > i;) {
    if (!hs_scratch_push(chain, &top, (const HS_FRAME *)frames[k])) {
      return counted + hs_forget_and_walk(chain, hs_next(g));
    }
  }
  for (f = hs_next(g); f != NULL; f = hs_next(f)) {
    if (!hs_scratch_push(chain, &top, f)) {
      return counted + hs_forget_and_walk(chain, f);
    }
    counted += hs_counts(f);
  }
  hs_frame_chain_store(chain, 0, top);
  return counted;
}

static inline unsigned hs_capped(unsigned depth) { return depth < 65535 ? depth : 65535; }

/* The deep case of hs_finish_capture, out of line. */
__attribute__((noinline)) static int hs_finish_deep(const HS_FRAME *f, hs_frame_chain *chain,
                                                    HS_CONTEXT context, int written, unsigned depth,
                                                    unsigned *total) {
  const int remembering = chain != NULL && hs_chain_usable(context);
  depth += remembering ? hs_count_remembering(f, chain) : hs_count_plain(f);
  *total = hs_capped(depth);
  return written;
}

/* Ends a capture that wrote `written` frames: counts the frames from `rest`
 * to the bottom of the stack, stores `written` plus that count in *total
 * (capped at 65535, as CPython caps total_nframe) and returns `written`. A
 * capture returns what this returns, so that the deep case is a tail call
 * and a shallow stack's capture saves no registers. */
static inline int hs_finish_capture(const HS_FRAME *rest, hs_frame_chain *chain, HS_CONTEXT context,
                                    int written, unsigned *total) {
  unsigned depth = (unsigned)written;
  unsigned budget = HS_PLAIN_FRAMES;
  for (; rest != NULL; rest = hs_next(rest)) {
    if (__builtin_expect(budget-- == 0, 0)) {
      return hs_finish_deep(rest, chain, context, written, depth, total);
    }
    depth += hs_counts(rest);
  }
  *total = hs_capped(depth);
  return written;
}

/* The frames from `f` to the bottom of the stack, capped like total_nframe. */
static inline unsigned hs_count_frames(const HS_FRAME *f, hs_frame_chain *chain,
                                       HS_CONTEXT context) {
  unsigned total;
  hs_finish_capture(f, chain, context, 0, &total);
  return total;
}

#endif
