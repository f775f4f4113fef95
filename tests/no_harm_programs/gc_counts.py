"""The garbage collector's view of a deterministic program: gc.get_count()
at fixed points, what gc.get_stats() gained, and every gc.callbacks call
(phase, generation, collected, uncollectable) with the step it fell in.

The program allocates a fixed number of container objects (cycles left to
the collector, lists freed by reference counting) at stack depths 1 to 40,
so a tracer that allocates a GC object, or holds the collector off, moves
the collections and changes these numbers.
"""

import gc
import sys

from _no_harm import report, report_tracers, start_tracer

STEPS = 30
PER_STEP = 250


class Node:
    __slots__ = ('other', 'payload')


def garbage(count, step):
    for i in range(count):
        a = Node()
        b = Node()
        a.other = b
        b.other = a  # a cycle only the collector frees
        a.payload = [step, i]  # freed with the cycle
        b.payload = None
        temporary = {'i': i}  # freed at once by reference counting
        del temporary


def at_depth(depth, step):
    if depth > 1:
        return at_depth(depth - 1, step)
    garbage(PER_STEP // 5, step)
    return sys._getframe().f_back is not None


def main():
    start_tracer()
    events = []
    step = [-1]

    def on_gc(phase, info):
        events.append([step[0], phase, info['generation'], info['collected'],
                       info['uncollectable']])

    garbage(10, -1)
    at_depth(40, -1)
    gc.collect()
    before = gc.get_stats()
    gc.callbacks.append(on_gc)
    counts = []
    kept = []
    for number in range(STEPS):
        step[0] = number
        garbage(PER_STEP, number)
        at_depth(number % 40 + 1, number)
        kept.append([number])  # one more live container per step
        counts.append(list(gc.get_count()))
    gc.callbacks.remove(on_gc)
    after = gc.get_stats()
    report('get_count at each step', counts)
    report('gc.callbacks calls', events)
    report('get_stats gained', [{key: stats[key] - base[key] for key in sorted(stats)}
                                for base, stats in zip(before, after)])
    report('collect() at the end', gc.collect())
    report_tracers()


if __name__ == '__main__':
    main()
