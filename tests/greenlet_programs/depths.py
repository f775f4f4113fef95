"""Allocates blocks of distinct sizes inside greenlets started and switched
at different depths, and prints, as JSON, each block's size with the depth
Python shows at the allocating frame and the total_nframe heapscope traced.

    python depths.py before|after   (greenlet imported before or after start)
"""
import json
import sys

import heapscope

ORDER = sys.argv[1]
if ORDER == "before":
    import greenlet

heapscope.start(1)
if ORDER == "after":
    import greenlet  # noqa: F811

expected = {}  # size -> Python's depth at the allocation
kept = []
next_size = [90_001]


def python_depth(frame):
    depth = 0
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    return depth


def allocate():
    size = next_size[0]
    next_size[0] += 1
    kept.append(bytearray(size))
    expected[size] = python_depth(sys._getframe())


def descend(depth, then):
    if depth:
        return descend(depth - 1, then)
    return then()


def worker(name, depths):
    # Allocates at each depth in turn, switching back to the parent between.
    for depth in depths:
        descend(depth, allocate)
        greenlet.getcurrent().parent.switch()
    allocate()


def main():
    first = greenlet.greenlet(lambda: worker("first", [0, 7, 2]))
    second = greenlet.greenlet(lambda: worker("second", [13, 1, 5]))
    for _ in range(3):
        descend(9, first.switch)   # started and resumed 9 frames deep
        allocate()
        descend(21, second.switch)  # 21 frames deep
        allocate()
    first.switch()
    second.switch()

    # A greenlet started from inside another one, at depth.
    def nested():
        descend(4, allocate)
        inner = greenlet.greenlet(lambda: descend(6, allocate))
        descend(11, inner.switch)
        descend(2, allocate)

    descend(17, greenlet.greenlet(nested).switch)
    allocate()


descend(3, main)
# A bytearray of n bytes is one block of n + 1 (its trailing NUL).
traced = {size - 1: total for _, size, _, total in heapscope._get_traces()
          if size - 1 in expected}
heapscope.stop()
print(json.dumps({"expected": expected, "traced": traced}))
