"""Deep stacks whose top changes, checked block by block against the stack
that Python itself shows.

heapscope counts a deep stack's frames with a remembered chain of the last
walk's frames (core/frame_chain.h), LastCapture and the capture cache
compare stacks by their frames: these tests move a deep stack up and down
through frames of two sizes (so that a frame's memory is taken by another
at another depth) and check total_nframe and the tracebacks against the
frames Python shows. They run on every version."""

import random
import sys
import threading

import pytest

import heapscope
from python_frames import python_depth, python_lines


@pytest.fixture(autouse=True)
def tracing_off_before_and_after():
    heapscope.stop()
    yield
    heapscope.stop()


def python_callers(frame, limit):
    """(filename, line) of up to `limit` frames below `frame`, as Python
    shows them: what a traceback holds after its first frame."""
    return python_lines(frame.f_back, limit)


class Plan:
    """A seeded walk over a deep stack: down and up through functions of
    two frame sizes (so that a frame's memory is taken by other functions'
    frames), allocations at every depth, and a generator resumed at
    different depths."""

    def __init__(self, seed, steps, sizes_from=1000, callers=0, low=20, high=160, burst=1):
        self.rng = random.Random(seed)
        self.sizes_from = sizes_from
        self.steps = steps
        self.low, self.high = low, high  # the depths it wanders between
        self.burst = burst  # allocations in a row: up to this many
        self.callers = callers  # how many callers of each block to note
        # (object, the depth Python showed where it was made, its callers)
        self.blocks = []
        self.generator = self.allocating_generator()

    def allocate(self):
        frame = sys._getframe(0)
        # A bytearray of n bytes is a block of n + 1: each size unique.
        block = bytearray(self.sizes_from + len(self.blocks))  # the block
        self.blocks.append((block, python_depth(frame), python_callers(frame, self.callers)))

    def allocating_generator(self):
        while True:
            block = bytearray(self.sizes_from + len(self.blocks))  # the block
            frame = sys._getframe(0)
            self.blocks.append((block, python_depth(frame), python_callers(frame, self.callers)))
            yield

    def next_move(self, depth):
        if self.steps == 0:
            return "end"
        self.steps -= 1
        roll = self.rng.random()
        # Drift down to low-high frames (20-160), then wander there.
        if depth < self.low or (roll < 0.35 and depth < self.high):
            return "down"
        if roll < 0.6:
            return "allocate"
        if roll < 0.65:
            return "resume"
        return "up" if roll < 0.95 else "locals"

    def run(self):
        self.small(0)

    def small(self, depth):
        return self.level(depth, self.large)

    def large(self, depth, a=1, b=2, c=3, d=4, e=5, f=6, g=7, h=8):
        local_sum = a + b + c + d + e + f + g + h
        result = self.level(depth, self.small)
        assert local_sum == 36 and (a, h) == (1, 8)
        return result

    def level(self, depth, callee):
        here = depth
        while True:
            move = self.next_move(depth)
            if move == "end":
                return "end"
            if move == "down":
                if (callee if self.rng.random() < 0.5 else self.small)(depth + 1) == "end":
                    return "end"
            elif move == "allocate":
                for _ in range(self.rng.randint(1, self.burst)):
                    self.allocate()
            elif move == "resume":
                next(self.generator)
            elif move == "locals":
                # The frame's locals are what Python put there.
                names = locals()
                assert names["here"] == depth and names["callee"] is callee
            else:
                assert here == depth
                return "up"


def allocation_lines():
    with open(__file__) as f:
        return {number for number, line in enumerate(f, 1) if line.rstrip().endswith("# the block")}


def traced_blocks():
    """(total_nframe, frames after the first) of each traced block made on
    a `# the block` line, by size."""
    lines = allocation_lines()
    traced = {}
    for _, size, frames, total in heapscope._get_traces():
        if frames and frames[0][0] == __file__ and frames[0][1] in lines:
            traced.setdefault(size, []).append((total, tuple(frames[1:])))
    return traced


def traced_totals():
    """total_nframe of each traced block made on a `# the block` line, by size."""
    return {size: [total for total, _ in blocks] for size, blocks in traced_blocks().items()}


def assert_traced_at(expected):
    """Blocks, by size, were traced with these lists of depths."""
    traced = traced_totals()
    assert {size: traced.get(size) for size in expected} == expected


def check(*plans):
    """Each plan's blocks were traced with the depth Python showed."""
    expected = {}
    for plan in plans:
        assert len(plan.blocks) > 500
        for block, depth, _ in plan.blocks:
            expected.setdefault(len(block) + 1, []).append(depth)
    assert_traced_at(expected)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_total_nframe_matches_python_as_a_deep_stack_changes(seed):
    heapscope.start(1)
    plan = Plan(seed, 20_000)
    plan.run()
    check(plan)


@pytest.mark.parametrize("nframe", [8, 25])
def test_tracebacks_match_python_as_a_deep_stack_changes(nframe):
    # Every frame of every traceback must be the one Python shows, line by
    # line.
    heapscope.start(nframe)
    plan = Plan(6, 20_000, callers=nframe - 1)
    plan.run()
    traced = traced_blocks()
    expected = {len(block) + 1: [(depth, callers)] for block, depth, callers in plan.blocks}
    assert len(expected) > 500
    assert {size: traced.get(size) for size in expected} == expected


@pytest.mark.parametrize("nframe", [1, 3])
def test_total_nframe_matches_python_on_a_shallow_stack_allocating_in_bursts(nframe):
    # Allocations in bursts under the same top frame, in a new thread
    # (whose stack starts a few frames deep): the plan's stacks lie on both
    # sides of the depth past which walks use the remembered chain.
    heapscope.start(nframe)
    plan = Plan(7, 20_000, low=0, high=4, burst=64)  # each level is 2 frames
    errors = []

    def run():
        try:
            plan.run()
        except BaseException as error:  # reported below, in the main thread
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == []
    depths = {depth for _, depth, _ in plan.blocks}
    assert min(depths) <= 10 and max(depths) >= 14
    check(plan)


def test_total_nframe_matches_python_in_two_threads_at_once():
    heapscope.start(3)
    plans = [Plan(4, 20_000, 1000), Plan(5, 20_000, 30_000)]
    errors = []

    def run(plan):
        try:
            plan.run()
        except BaseException as error:  # reported below, in the main thread
            errors.append(error)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often, mid-walk
    try:
        threads = [threading.Thread(target=run, args=(plan,)) for plan in plans]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(old_interval)
    assert errors == []
    check(*plans)


def thin(n, then):
    return thin(n - 1, then) if n else then()


def wide(n, then, a=1, b=2, c=3, d=4, e=5):
    x, y, z = a + b, c + d, e
    return wide(n - 1, then) if n else then()


class Blocks:
    """What allocate_blocks made, and the depth Python showed for each, by
    block size. Module-level state, so that the functions making the blocks
    have no local variables or closures that would change their frames."""

    @classmethod
    def reset(cls):
        cls.sizes = iter(range(1000, 1_000_000))
        cls.kept = []
        cls.expected = {}


def allocate_blocks():
    for _ in range(3):
        size = next(Blocks.sizes)
        block = bytearray(size)  # the block
        Blocks.kept.append(block)  # not on that line: the list grows too
        Blocks.expected[size + 1] = [python_depth(sys._getframe(0))]


def test_a_frames_memory_taken_by_a_frame_at_another_depth():
    # Stacks of `thin` frames over `wide` ones, in every proportion: frames
    # of two sizes, so that some frame lands where an earlier stack's frame
    # was, at another depth, with the same frames above it.
    Blocks.reset()
    heapscope.start(1)
    for total in (40, 41, 70):
        for wide_frames in range(total):
            wide(wide_frames, lambda n=total - wide_frames: thin(n, allocate_blocks))
    assert_traced_at(Blocks.expected)


def allocate_noting_callers():
    for _ in range(3):
        size = next(Blocks.sizes)
        block = bytearray(size)  # the block
        Blocks.kept.append(block)  # not on that line: the list grows too
        frame = sys._getframe(0)
        Blocks.expected[size + 1] = [(python_depth(frame), python_callers(frame, 24))]


def below_a():
    return thin(12, allocate_noting_callers)


def below_b():
    return thin(12, allocate_noting_callers)


def test_stacks_alike_near_the_top_keep_their_own_frames_below():
    # Two stacks of one depth, the same frame for frame from the top to 13
    # frames down, that differ further down (below_a or below_b): each
    # traceback of 25 frames must keep its own.
    Blocks.reset()
    heapscope.start(25)
    for _ in range(20):
        thin(30, below_a)
        thin(30, below_b)
    traced = traced_blocks()
    assert len(Blocks.expected) == 20 * 2 * 3
    assert {size: traced.get(size) for size in Blocks.expected} == Blocks.expected

