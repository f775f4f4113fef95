"""Programs whose every allocation comes from a stack never seen before,
checked block by block against the stack Python itself shows.

A tree recursion with two call sites makes each block under a raw stack of
its own (fibonacci's coroutines, nframe=25). heapscope then stops looking
such stacks up in its capture cache for a while, and resolves only the
frames that differ from the last stack it resolved, matched by depth from
the bottom (cpython/block_recorder.cc, cpython/capture_cache.h). Each block's
frames and total_nframe must still be exactly Python's, also when the
program goes back to stacks it repeats."""

import sys

import pytest

import heapscope
from python_frames import python_depth, python_lines


@pytest.fixture(autouse=True)
def tracing_off_before_and_after():
    heapscope.stop()
    yield
    heapscope.stop()


def python_stack(frame, limit):
    """(total frames, (filename, line) of the first `limit`) as Python shows them."""
    return python_depth(frame), python_lines(frame, limit)


class Recorder:
    """Makes blocks of sizes no other code makes, and notes the stack
    Python shows for each."""

    def __init__(self, nframe, sizes_from):
        self.nframe = nframe
        self.next_size = sizes_from
        self.blocks = []  # (object, total_nframe, frames)

    def allocate(self):
        size = self.next_size  # a block of size + 1 bytes
        self.next_size += 1
        # One line: Python shows the frame at the line that made the block.
        self.blocks.append((bytearray(size), *python_stack(sys._getframe(0), self.nframe)))

    def expected(self):
        return {len(block) + 1: (total, frames) for block, total, frames in self.blocks}


def tree(recorder, n):
    recorder.allocate()
    if n < 2:
        return
    tree(recorder, n - 1)  # one call site
    recorder.allocate()
    tree(recorder, n - 2)  # another, on its own line


async def coroutine_tree(recorder, n):
    recorder.allocate()
    if n < 2:
        return
    await coroutine_tree(recorder, n - 1)
    recorder.allocate()
    await coroutine_tree(recorder, n - 2)


def drive(coroutine):
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise AssertionError("the coroutine awaited something outside the tree")


def at_depth(depth, then):
    if depth:
        return at_depth(depth - 1, then)
    return then()


def traced(expected):
    """(total_nframe, frames) heapscope traced for each size in `expected`."""
    found = {}
    for _, size, frames, total in heapscope._get_traces():
        if size in expected:
            found.setdefault(size, []).append((total, tuple(frames)))
    return {size: found.get(size) for size in expected}


def assert_traced_as_python_showed(*recorders):
    expected = {}
    for recorder in recorders:
        expected.update(recorder.expected())
    assert len(expected) > 1000
    assert traced(expected) == {size: [stack] for size, stack in expected.items()}


@pytest.mark.parametrize("nframe", [3, 25, 200])
def test_tree_recursion_with_two_call_sites(nframe):
    heapscope.start(nframe)
    recorder = Recorder(nframe, 10_000)
    # Under stacks of different depths, so frames are matched at shifted positions.
    for depth in (0, 7, 30):
        at_depth(depth, lambda: tree(recorder, 14))
    assert_traced_as_python_showed(recorder)


@pytest.mark.parametrize("nframe", [1, 25])
def test_coroutines_awaiting_coroutines_on_two_lines(nframe):
    heapscope.start(nframe)
    recorder = Recorder(nframe, 10_000)
    drive(coroutine_tree(recorder, 15))
    assert_traced_as_python_showed(recorder)


def repeat_a_few_stacks(recorder, times):
    for _ in range(times):
        for depth in (3, 9, 4, 12):
            at_depth(depth, recorder.allocate)


def test_stacks_that_repeat_after_stacks_that_never_do():
    # The capture cache is skipped while it misses: the stacks that repeat
    # afterwards must come out right whether it was skipped or looked up.
    heapscope.start(25)
    first = Recorder(25, 10_000)
    tree(first, 15)
    then = Recorder(25, 20_000)
    repeat_a_few_stacks(then, 300)
    again = Recorder(25, 30_000)
    tree(again, 12)
    repeat_a_few_stacks(again, 300)
    assert_traced_as_python_showed(first, then, again)


def test_a_stack_resolved_before_clear_traces_is_not_reused_after():
    # Frame ids are only valid until the tables clear (a new epoch).
    heapscope.start(25)
    before = Recorder(25, 10_000)
    tree(before, 14)
    heapscope.clear_traces()
    after = Recorder(25, 20_000)
    tree(after, 14)
    assert_traced_as_python_showed(after)
