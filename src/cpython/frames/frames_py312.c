/* Frame capture for CPython 3.12: the _PyInterpreterFrame chain hanging off
 * tstate->cframe, skipping incomplete frames (C-stack shims and frames still
 * being set up) as CPython 3.12 does. */
#define Py_BUILD_CORE 1
#include "frame_capture.h"

#include <internal/pycore_frame.h>
#include <internal/pycore_interp.h>

#include "interpreter_frame_chain.h"

/* Set, never cleared, by hs_note_stack_switcher(). greenlet keeps one
 * Python stack per greenlet, each with its own data stack and frame chain,
 * and saves and restores the recursion counter when it switches; but a new
 * greenlet starts with the counter of the stack that started it, while its
 * frame chain starts empty, so inside it the counter is too high by that
 * depth (and by a different amount in each greenlet). Nothing in the thread
 * state tells a greenlet's stack from the thread's own in O(1), so once such
 * a module is loaded the depth comes from the walk, which is exact. */
static int stack_switcher_loaded = 0;

void hs_note_stack_switcher(void) {
  __atomic_store_n(&stack_switcher_loaded, 1, __ATOMIC_RELAXED);
}

/* The number of complete frames on the stack, from the thread's Python
 * recursion counter instead of a walk; 0 when the counter cannot be trusted
 * here. The counter counts exactly the frames that passed the evaluation
 * loop's entry check (start_frame, or gen.throw()'s entry) and are still
 * linked, because CPython links, counts, uncounts and unlinks each frame
 * with no allocation in between, except in two places:
 *  - raising RecursionError, which it does with recursion_headroom set;
 *  - a PEP 523 evaluator, which may link frames its own way;
 * and a stack switcher (greenlet, above) breaks it for good. All fall back
 * to the walk. Of the counted frames, only the top one can
 * be incomplete: a frame is incomplete while it runs the instructions before
 * its first traceable one (MAKE_CELL, COPY_FREE_VARS, RETURN_GENERATOR),
 * which call no Python code, and since 3.12 a garbage collection (and its
 * finalizers) waits for the eval breaker instead of starting inside them. */
static unsigned depth_from_counter(PyThreadState *tstate, _PyInterpreterFrame *top) {
  if (tstate->recursion_headroom != 0 || tstate->interp->eval_frame != NULL ||
      __atomic_load_n(&stack_switcher_loaded, __ATOMIC_RELAXED)) {
    return 0;
  }
  int counted = tstate->py_recursion_limit - tstate->py_recursion_remaining;
  if (top != NULL && top->owner != FRAME_OWNED_BY_CSTACK && _PyFrame_IsIncomplete(top)) {
    counted--;
  }
  return counted > 0 ? (unsigned)counted : 0;
}

int hs_capture_frames(PyThreadState *tstate, hs_raw_frame *out, int max_frames,
                      unsigned *total, int holds_gil, hs_frame_chain *chain) {
  int written = 0;
  _PyInterpreterFrame *top = (tstate && tstate->cframe) ? tstate->cframe->current_frame : NULL;
  _PyInterpreterFrame *f;
  for (f = _PyFrame_GetFirstComplete(top); f != NULL && written < max_frames;
       f = _PyFrame_GetFirstComplete(f->previous)) {
    out[written].code = f->f_code;
    out[written].byte_offset = _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
    out[written].lineno_override = -1;
    written++;
  }
  /* Past the traceback limit only total_nframe needs the frames. f is
   * complete or NULL here, so the depth is more than `written` frames; a
   * counter that says otherwise is not trusted. */
  unsigned depth = (unsigned)written;
  if (f != NULL) {
    const unsigned counted = holds_gil ? depth_from_counter(tstate, top) : 0;
    if (counted > depth) {
      depth = counted;
    } else {
      depth += hs_count_frames(f, chain, tstate);
    }
  }
  *total = hs_capped(depth);
  return written;
}

Py_ssize_t hs_code_units(PyCodeObject *code) { return Py_SIZE(code); }

PyThreadState *hs_gil_holder(void) { return _PyThreadState_UncheckedGet(); }
