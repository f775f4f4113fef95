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
 * and, when it knows regions of memory that stay readable while the walk
 * runs, with frames' addresses rising inside each (CPython's data-stack
 * chunks), HS_READ_AHEAD and:
 *   hs_readable, a cursor over those regions, innermost first;
 *   void hs_readable_begin(HS_CONTEXT context, hs_readable *r)
 *       puts the cursor on the innermost region;
 *   int hs_readable_has(const hs_readable *r, const void *frame)
 *       1 when a frame at that address lies in the cursor's region;
 *   int hs_readable_older(hs_readable *r)
 *       moves the cursor one region outwards; 0 when there is none.
 * A template by inclusion: the frame types are version-specific C structs,
 * and the loops are only worth it with those functions inlined. */
#ifndef HEAPSCOPE_FRAME_CHAIN_WALK_H
#define HEAPSCOPE_FRAME_CHAIN_WALK_H

#include <stddef.h>

#include "frame_chain.h"

/* Frames past the limit that are counted by following pointers before the
 * remembered chain is consulted: shallow stacks never touch it. */
#define HS_PLAIN_FRAMES 16

/* hs_counts(f) for the frame below `above` (null: unknown). */
static inline unsigned hs_counts_below(const HS_FRAME *above, const HS_FRAME *f) {
  return above != NULL && !hs_may_be_incomplete_below(above) ? 1 : hs_counts(f);
}

static unsigned hs_count_plain(const HS_FRAME *f) {
  unsigned n = 0;
  for (const HS_FRAME *above = NULL; f != NULL; above = f, f = hs_next(f)) {
    n += hs_counts_below(above, f);
  }
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

#ifdef HS_READ_AHEAD
/* Frames checked with one branch when read ahead. */
#define HS_BLOCK_FRAMES 8

/* Given remembered frames low[0] .. high[-1] whose addresses rise, the
 * lowest p such that p[0] .. high[-1] all lie in one readable region (high
 * when high[-1] lies in neither the cursor's region nor the next one
 * out). */
static inline const void *const *hs_readable_from(hs_readable *r, const void *const *low,
                                                  const void *const *high) {
  if (!hs_readable_has(r, high[-1])) {
    hs_readable older = *r;
    if (!hs_readable_older(&older) || !hs_readable_has(&older, high[-1])) return high;
    *r = older;
  }
  if (hs_readable_has(r, *low)) return low;
  /* The addresses rise, so the run's frames in this region are its upper
   * part: find where that starts. */
  const void *const *in = high - 1;
  while (low < in) {
    const void *const *mid = low + (in - low) / 2;
    if (hs_readable_has(r, *mid)) {
      in = mid;
    } else {
      low = mid + 1;
    }
  }
  return in;
}

/* Checks the remembered frames from at[-1] down to `low`, all readable,
 * eight at a time while they are the live stack's (*at == *g, live and
 * counted). Returns where it stopped, *g the frame there: fewer than eight
 * frames left, a link that differs, or an entry frame (something below it
 * may be incomplete), for the frame-at-a-time loop to look at. */
static inline const void *const *hs_check_blocks(const void *const *at, const void *const *low,
                                                 const HS_FRAME **g) {
  const HS_FRAME *above = *g;
  for (; at - low >= HS_BLOCK_FRAMES; at -= HS_BLOCK_FRAMES) {
    /* One branch per block: nonzero when a link differs or a frame is an
     * entry. */
    __UINTPTR_TYPE__ differ = 0;
    const HS_FRAME *f = above;
    for (int k = 1; k <= HS_BLOCK_FRAMES; ++k) {
      const HS_FRAME *below = (const HS_FRAME *)at[-k];
      differ |= ((__UINTPTR_TYPE__)hs_next(f) ^ (__UINTPTR_TYPE__)below) |
                (__UINTPTR_TYPE__)hs_may_be_incomplete_below(f);
      f = below;
    }
    if (differ != 0) break;
    above = f;
  }
  *g = above;
  return at;
}
#endif

/* Counts from `start` (a live frame) to the bottom, and leaves the chain
 * holding the stack as it is now (or empty when memory ran out). Out of
 * line: shallow stacks never get here, and inlined it would make every
 * capture save and restore the registers it needs. */
__attribute__((noinline)) static unsigned hs_count_remembering(const HS_FRAME *start,
                                                               hs_frame_chain *chain,
                                                               HS_CONTEXT context) {
  (void)context;
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
   * it is read only after the live frame above links to it (or, read
   * ahead, once it is known to be readable memory); the next address comes
   * from the array, so the processor need not wait for one frame's load to
   * start the next. */
  const void *const *frames = chain->frames;
  const HS_FRAME *g = f;
  counted += hs_counts(g);
  const void *const *at = frames + join; /* *at == g */
  unsigned incomplete = 0;
#ifdef HS_READ_AHEAD
  hs_readable readable;
  hs_readable_begin(context, &readable);
#endif
  for (;;) {
    const void *const *stop = frames;
#ifdef HS_READ_AHEAD
    /* The frames below that rise up to at[-1] may be read before their
     * links are checked when both ends of the run are readable: a stale
     * frame then costs a comparison that fails, not a fault. Checked eight
     * at a time; where that stops, frame at a time for up to a block, then
     * read ahead again. */
    const unsigned left = (unsigned)(at - frames);
    if (left >= HS_BLOCK_FRAMES) {
      const void *const *low = at - chain->rise[left - 1];
      if (at - low >= HS_BLOCK_FRAMES) {
        low = hs_readable_from(&readable, low, at);
        if (at - low >= HS_BLOCK_FRAMES) at = hs_check_blocks(at, low, &g);
      }
      if (at - frames > HS_BLOCK_FRAMES) stop = at - HS_BLOCK_FRAMES;
    }
#endif
    for (; at != stop; --at) {
      const HS_FRAME *below = (const HS_FRAME *)at[-1];
      if (hs_next(g) != below) goto checked;
      if (__builtin_expect(hs_may_be_incomplete_below(g), 0)) incomplete += !hs_counts(below);
      g = below;
    }
    if (at == frames) break;
  }
checked:;
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
  depth += remembering ? hs_count_remembering(f, chain, context) : hs_count_plain(f);
  *total = hs_capped(depth);
  return written;
}

/* Ends a capture that wrote `written` frames: counts the frames from
 * `rest` to the bottom of the stack, stores `written` plus that
 * count in *total (capped at 65535, as CPython caps total_nframe) and
 * returns `written`. A capture returns what this returns, so that the deep
 * case is a tail call and a shallow stack's capture saves no registers. */
static inline int hs_finish_capture(const HS_FRAME *rest, hs_frame_chain *chain,
                                    HS_CONTEXT context, int written, unsigned *total) {
  unsigned depth = (unsigned)written;
  unsigned budget = HS_PLAIN_FRAMES;
  /* The frame above `rest`, once the loop has looked at it: a frame below
   * one it knows is counted needs no reading of its own (3.11: most). */
  const HS_FRAME *above = NULL;
  for (; rest != NULL; above = rest, rest = hs_next(rest)) {
    if (__builtin_expect(budget-- == 0, 0)) {
      return hs_finish_deep(rest, chain, context, written, depth, total);
    }
    depth += hs_counts_below(above, rest);
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
