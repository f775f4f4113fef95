/* The remembered frame chain's storage (frame_chain.h); the walk that uses
 * it is frame_chain_walk.h, compiled into each version's frame capture.
 * C rather than C++ like the rest of the core: the frame captures that
 * include these headers are C (CPython's internal headers are). */
#include "frame_chain.h"

#include <stdlib.h>

void hs_frame_chain_release(hs_frame_chain *chain) {
  free(chain->frames);
  free(chain->scratch);
  free(chain->hints);
  free(chain->rise);
  chain->frames = NULL;
  chain->scratch = NULL;
  chain->hints = NULL;
  chain->rise = NULL;
  chain->count = chain->capacity = chain->scratch_capacity = chain->rise_capacity = 0;
}

int hs_frame_chain_reserve(const void ***array, unsigned *capacity, unsigned need) {
  if (need <= *capacity) return 1;
  if (need > HS_FRAME_CHAIN_MAX) return 0;
  unsigned grown = *capacity ? *capacity : 64;
  while (grown < need) grown *= 2;
  if (grown > HS_FRAME_CHAIN_MAX) grown = HS_FRAME_CHAIN_MAX;
  const void **bigger = (const void **)realloc((void *)*array, grown * sizeof(const void *));
  if (bigger == NULL) return 0;
  *array = bigger;
  *capacity = grown;
  return 1;
}

/* Makes room for a rise count per frame of `frames`' capacity. */
static int reserve_rise(hs_frame_chain *chain) {
  if (chain->capacity <= chain->rise_capacity) return 1;
  unsigned short *bigger =
      (unsigned short *)realloc(chain->rise, chain->capacity * sizeof(unsigned short));
  if (bigger == NULL) return 0;
  chain->rise = bigger;
  chain->rise_capacity = chain->capacity;
  return 1;
}

void hs_frame_chain_store(hs_frame_chain *chain, unsigned base, unsigned n) {
  if (chain->hints == NULL) {
    chain->hints = (hs_frame_chain_hint *)calloc(HS_FRAME_CHAIN_HINTS, sizeof(hs_frame_chain_hint));
  }
  if (chain->hints == NULL || !hs_frame_chain_reserve(&chain->frames, &chain->capacity, base + n) ||
      !reserve_rise(chain)) {
    chain->count = 0;
    return;
  }
  for (unsigned k = 0; k < n; ++k) {
    const void *frame = chain->scratch[n - 1 - k];
    const unsigned i = base + k;
    chain->frames[i] = frame;
    const int rises = i > 0 && (__UINTPTR_TYPE__)chain->frames[i - 1] < (__UINTPTR_TYPE__)frame;
    chain->rise[i] = rises && chain->rise[i - 1] < 0xFFFF ? chain->rise[i - 1] + 1 : 1;
    hs_frame_chain_hint *hint = &chain->hints[hs_frame_chain_slot(frame)];
    hint->frame = frame;
    hint->index = i;
  }
  chain->count = base + n;
}
