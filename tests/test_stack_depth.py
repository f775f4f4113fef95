"""total_nframe, the whole depth of the stack, counted exactly as CPython's
own module counts it, on stacks whose shape makes that count hard: frames of
generators and coroutines, Python re-entered from C, frames still being set
up (which CPython leaves out), threads.

heapscope counts the depth without looking into every frame (deep stacks
would pay for it on every allocation), so each scenario runs with both
tracers on and every traceback is compared with CPython's for the same
object."""

import gc
import sys
import threading
import tracemalloc as cpython_tracemalloc

import pytest

import heapscope

NFRAME = 4

# Every test starts CPython's module first, so each start() puts heapscope's
# RAW hooks on top in a new slot; once the slots are gone start() says RAW
# blocks are no longer traced, which these tests do not look at.
pytestmark = pytest.mark.filterwarnings(
    "ignore:heapscope cannot trace the RAW domain:RuntimeWarning")


@pytest.fixture(autouse=True)
def both_tracers_off_before_and_after():
    heapscope.stop()
    # 3.9 and 3.10 keep a spare frame object per code object and reuse it,
    # and CPython's module re-attributes a reused object to the line that
    # reuses it (see scenario_traces): make the spares before tracing.
    closure_maker()
    list(generator_function())
    yield
    heapscope.stop()
    cpython_tracemalloc.stop()


def descend(depth, then):
    if depth:
        return descend(depth - 1, then)
    return then()


def gen_leaf(kept):
    kept.append(bytearray(70_001))
    yield 1
    kept.append(bytearray(70_002))
    yield 2


def gen_middle(kept):
    yield from gen_leaf(kept)
    kept.append(bytearray(70_003))
    yield 3


def drive_generators(kept):
    total = 0
    for value in gen_middle(kept):  # plain iteration (inlined on 3.12+)
        total += value
    middle = gen_middle(kept)
    total += next(middle)  # resumed from C
    total += middle.send(None)
    return total


async def coro_leaf(kept):
    kept.append(bytearray(70_011))
    return 1


async def coro_outer(kept):
    return await coro_leaf(kept) + await coro_leaf(kept)


def drive_coroutine(kept):
    coro = coro_outer(kept)
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value


def reenter_from_c(kept):
    def key(x):
        kept.append(bytearray(70_021 + x))
        return -x

    sorted(range(3), key=key)
    appender = lambda x: kept.append(bytearray(70_031 + x))  # noqa: E731
    list(map(appender, range(2)))
    eval("kept.append(bytearray(70_041))", {"kept": kept, "bytearray": bytearray})


class AllocatesInInit:
    def __init__(self, kept):
        kept.append(bytearray(70_051))


class AllocatesInDel:
    def __init__(self, kept):
        self.kept = kept

    def __del__(self):
        self.kept.append(bytearray(70_061))


def finalizer_on_decref(kept):
    obj = AllocatesInDel(kept)
    del obj


def closure_maker():
    # MAKE_CELL allocates the cell before the frame's first traceable
    # instruction: the frame is incomplete, and CPython leaves it out.
    captured = 1

    def inner():
        return captured

    return inner


def generator_function():
    yield 1  # RETURN_GENERATOR allocates the generator in an incomplete frame


class CyclicFinalizer:
    kept = None

    def __init__(self):
        self.cycle = self

    def __del__(self):
        CyclicFinalizer.kept.append(bytearray(70_071))
        # A few frames above the finalizer, past the traceback: the walk
        # that counts them reaches the incomplete frame frame by frame.
        descend(6, lambda: CyclicFinalizer.kept.append(bytearray(70_073)))
        # Also far above the incomplete frame, where heapscope checks its
        # remembered stack instead of walking it.
        descend(30, lambda: CyclicFinalizer.kept.append(bytearray(70_072)))


def finalizers_while_frames_are_set_up(kept):
    # A collection that starts inside MAKE_CELL or RETURN_GENERATOR (3.9-3.11
    # collect synchronously; the threshold is set so that the frame's first
    # GC allocation starts one) runs a finalizer's Python code above a frame
    # that is still incomplete and sits below a C-level entry.
    CyclicFinalizer.kept = kept
    threshold = gc.get_threshold()
    gc.collect()
    try:
        for _ in range(20):
            CyclicFinalizer()
            gc.set_threshold(max(1, gc.get_count()[0]))
            kept.append(closure_maker())
            CyclicFinalizer()
            gc.set_threshold(max(1, gc.get_count()[0]))
            kept.append(generator_function())
    finally:
        gc.set_threshold(*threshold)
    gc.collect()


def change_recursion_limit(kept):
    # 3.12 reads the depth from the thread's recursion counter, which
    # sys.setrecursionlimit rewrites: the depth must come out the same.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + 17)
    try:
        kept.append(bytearray(70_091))
    finally:
        sys.setrecursionlimit(limit)
    kept.append(bytearray(70_092))


def generator_over_deep_stacks(kept):
    while True:
        descend(40, lambda: kept.append(bytearray(70_101)))
        yield


def stacks_that_change_below(kept):
    # heapscope remembers each thread's last deep stack and checks it rather
    # than walking it (core/frame_chain.h), so here the remembered stack goes
    # stale: the generator's own frame keeps its address while the frames
    # below it change, and the frames above it are new on every resumption;
    # then the same function at other depths. (Which remembered frame a walk
    # joins depends on the stack's addresses; tests/core/frame_chain_test.cc
    # checks each way a remembered stack can be wrong, deterministically.)
    gen = generator_over_deep_stacks(kept)
    for depth in (30, 70, 30, 5, 90, 90, 0):
        descend(depth, lambda: next(gen))
    for depth in (100, 20, 100, 21, 99):
        descend(depth, lambda: kept.append(bytearray(70_102)))


SCENARIOS = {
    "plain recursion": lambda kept: kept.append(bytearray(70_081)),
    "generators": drive_generators,
    "coroutine": drive_coroutine,
    "reentry from C": reenter_from_c,
    "__init__": lambda kept: kept.append(AllocatesInInit(kept)),
    "__del__ on decref": finalizer_on_decref,
    "closure cells": lambda kept: kept.extend(closure_maker() for _ in range(3)),  # traced
    "generator objects": lambda kept: kept.extend(generator_function() for _ in range(3)),  # traced
    "finalizers while frames are set up": finalizers_while_frames_are_set_up,
    "recursion limit changed": change_recursion_limit,
    "stacks that change below": stacks_that_change_below,
}


def traced_lines():
    with open(__file__) as f:
        return {number for number, line in enumerate(f, 1) if line.rstrip().endswith("# traced")}


def scenario_traces(raw_traces, lines):
    """(size, frames, total_nframe), sorted, of every live block that is a
    scenario's bytearray or was allocated on a line marked `# traced`.

    Only blocks of types without a free list: CPython's module re-attributes
    an object reused from a free list (a list, dict, tuple, float) to the
    line that reused it, through a call CPython makes to its own module
    only, so those tracebacks differ by design."""
    return sorted((size, frames, total) for _, size, frames, total in raw_traces
                  if frames and (size > 70_000 or (frames[0][0] == __file__
                                                   and frames[0][1] in lines)))


def compare_in_this_thread(scenario, depth):
    kept = []
    # CPython's module first, so that heapscope's hooks wrap its hooks and do
    # not see the blocks CPython's module allocates for its own traces.
    cpython_tracemalloc.start(NFRAME)
    heapscope.start(NFRAME)
    try:
        descend(depth, lambda: scenario(kept))
        theirs = cpython_tracemalloc._get_traces()
        ours = heapscope._get_traces()
    finally:
        heapscope.stop()
        cpython_tracemalloc.stop()
    lines = traced_lines()
    theirs, ours = scenario_traces(theirs, lines), scenario_traces(ours, lines)
    assert theirs, "CPython's module traced none of the scenario's blocks"
    assert ours == theirs
    del kept
    return [total for _, _, total in ours]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
@pytest.mark.parametrize("depth", [0, 3, 120])
def test_total_nframe_matches_cpythons_own_count(name, depth):
    totals = compare_in_this_thread(SCENARIOS[name], depth)
    assert max(totals) > depth


def test_total_nframe_matches_in_a_thread_started_at_depth():
    results = []

    def run():
        try:
            results.append(compare_in_this_thread(drive_generators, 50))
        except BaseException as error:  # surfaced below, in the main thread
            results.append(error)

    thread = threading.Thread(target=descend, args=(30, run))
    thread.start()
    thread.join()
    if isinstance(results[0], BaseException):
        raise results[0]
    # The thread's own stack, not the main thread's: 50 + 30 and a few more.
    assert 80 < max(results[0]) < 100


def test_total_nframe_matches_on_a_stack_2500_frames_deep():
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 3000))
    try:
        totals = compare_in_this_thread(SCENARIOS["generators"], 2500)
    finally:
        sys.setrecursionlimit(limit)
    assert max(totals) > 2500


# 3.13 reports the RecursionError at the overflowing frame's first line,
# earlier versions at the call that overflowed.
def overflow(n):  # traced
    return overflow(n + 1)  # traced


def stack_depth():
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def test_total_nframe_matches_for_blocks_allocated_while_raising_recursion_error():
    # CPython allocates the RecursionError (3.12+) and its message while
    # the frame that overflowed is linked but its count is being undone:
    # heapscope walks the stack then instead of trusting the counter.
    limit = sys.getrecursionlimit()
    cpython_tracemalloc.start(NFRAME)
    heapscope.start(NFRAME)
    try:
        sys.setrecursionlimit(stack_depth() + 60)
        try:
            overflow(0)
        except RecursionError as error:
            caught = error
        finally:
            sys.setrecursionlimit(limit)
        # The traceback's objects (and before 3.11 its frames, taken from a
        # free list) go; the exception and its message stay.
        caught.__traceback__ = None
        theirs = cpython_tracemalloc._get_traces()
        ours = heapscope._get_traces()
    finally:
        heapscope.stop()
        cpython_tracemalloc.stop()
    sizes = {sys.getsizeof(caught), sys.getsizeof(caught.args[0])}
    lines = traced_lines()
    theirs = [t for t in scenario_traces(theirs, lines) if t[0] in sizes]
    ours = [t for t in scenario_traces(ours, lines) if t[0] in sizes]
    assert theirs and ours == theirs
    assert min(total for _, _, total in ours) > 50


def test_total_nframe_matches_under_a_pep_523_frame_evaluator():
    # A PEP 523 evaluator may link and count frames its own way, so 3.12
    # does not trust the recursion counter under one and walks the stack.
    # CPython's internal test module has an evaluator that records each
    # call, then evaluates the frame as usual: it keeps the counter right,
    # so this checks that the count stays exact with an evaluator set (and
    # with inlined calls off), not that the walk is needed.
    capi = pytest.importorskip("_testinternalcapi",
                               reason="this CPython build has no _testinternalcapi")
    if not hasattr(capi, "set_eval_frame_record"):
        pytest.skip("this CPython's _testinternalcapi cannot set a frame evaluator")
    calls = []
    capi.set_eval_frame_record(calls)
    try:
        totals = compare_in_this_thread(SCENARIOS["generators"], 40)
    finally:
        capi.set_eval_frame_default()
    assert calls, "the frame evaluator never ran"
    assert max(totals) > 40
