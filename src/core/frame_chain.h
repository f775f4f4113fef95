/* The frames of a thread's last deep walk, kept so the next walk can check
 * them instead of chasing them.
 *
 * Counting total_nframe past the traceback limit means following the frame
 * chain to its bottom: one dependent load per frame, which on a 150-frame
 * stack costs more than everything else an allocation does. Consecutive
 * allocations mostly share all but the top few frames. So a walk that
 * reaches a frame this chain holds stops chasing pointers and compares each
 * remembered frame's link with the next remembered frame instead: the
 * addresses come from this array, not from the loads, so the processor
 * issues the loads of many frames at once.
 *
 * Nothing here is trusted: a remembered frame is read only once the link
 * above it (a live frame's) has been found to point at it, and a link that
 * differs sends the walk back to following pointers. The chain may be stale,
 * or another thread state's; the count is still that of the live stack. */
#ifndef HEAPSCOPE_FRAME_CHAIN_H
#define HEAPSCOPE_FRAME_CHAIN_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Deeper chains are walked without being remembered: total_nframe stops at
 * 65535 anyway. */
#define HS_FRAME_CHAIN_MAX 65536u
/* Slots of the table that finds a frame's position in the chain. */
#define HS_FRAME_CHAIN_HINT_BITS 8
#define HS_FRAME_CHAIN_HINTS (1u << HS_FRAME_CHAIN_HINT_BITS)

typedef struct {
  const void *frame;
  unsigned index;
} hs_frame_chain_hint;

typedef struct {
  const void **frames; /* outermost first: frames[0] is the bottom of the stack */
  unsigned count;
  unsigned capacity;
  const void **scratch; /* the frames of the walk in progress, innermost first */
  unsigned scratch_capacity;
  /* Where a frame was put in `frames`, by a hash of its address; a hint is
   * checked against `frames` before use, so stale ones are harmless. */
  hs_frame_chain_hint *hints;
  /* rise[i]: how many frames up to frames[i] have addresses rising
   * strictly, as frames pushed on one data-stack chunk do (at least 1;
   * capped). A walk that finds both ends of such a run in memory that stays
   * readable knows all of the run is (frame_chain_walk.h, read-ahead). */
  unsigned short *rise;
  unsigned rise_capacity;
} hs_frame_chain;

/* Frees what `chain` holds and leaves it empty (all-zero is empty too). */
void hs_frame_chain_release(hs_frame_chain *chain);

/* Makes room for `need` entries in an array of frame pointers; 0 when out
 * of memory (the array is left as it was). */
int hs_frame_chain_reserve(const void ***array, unsigned *capacity, unsigned need);

static inline unsigned hs_frame_chain_slot(const void *frame) {
  return (unsigned)(((unsigned long long)(__SIZE_TYPE__)frame * 0x9E3779B97F4A7C15ull) >>
                    (64 - HS_FRAME_CHAIN_HINT_BITS));
}

/* Whether `frame` is at some position of `chain`, which goes to `*at`. */
static inline int hs_frame_chain_find(const hs_frame_chain *chain, const void *frame,
                                      unsigned *at) {
  if (chain->hints == NULL) return 0;
  const hs_frame_chain_hint hint = chain->hints[hs_frame_chain_slot(frame)];
  if (hint.frame != frame || hint.index >= chain->count || chain->frames[hint.index] != frame) {
    return 0;
  }
  *at = hint.index;
  return 1;
}

/* Replaces chain->frames[base..] with the first `n` scratch frames,
 * reversed (the scratch holds them innermost first). Out of memory, the
 * chain is left empty, which only costs the next walk its speed. */
void hs_frame_chain_store(hs_frame_chain *chain, unsigned base, unsigned n);

#ifdef __cplusplus
}
#endif

#endif
