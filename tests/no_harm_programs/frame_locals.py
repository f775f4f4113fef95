"""What frames hold. Each frame of a recursion 60 calls deep allocates 50
times on the way down, and the program records whether a dict freed just
before each allocation is the next dict made (a tracer that makes a dict
of its own takes its place) and what the allocations add to the
collector's count (after a collection has emptied the free lists). At the
bottom it looks at the frames of depth 1 to 59 above it: the types the
collector finds in each (before anything asks for their locals, so a
locals dict the interpreter did not make shows where frames report their
references), then sys._getframe(n).f_locals and whether f_locals gives the
same object twice; on the way back up, locals() in each frame; and the
frame of a generator between its yields.
"""

import gc
import sys

from _no_harm import report, report_tracers, start_tracer

DEPTH = 60
ALLOCATIONS = 50  # per frame: enough for a tracer to mark a frame it sees often


def referent_types(frame):
    return sorted(type(referent).__name__ for referent in gc.get_referents(frame))


def shown(mapping):
    return {name: repr(value) for name, value in sorted(mapping.items())
            if name not in ('observations', 'frame', 'reuse', 'freed_at', 'counted',
                                'count_before', 'added', 'reused', '_')}


def descend(depth, observations, reuse, counted):
    added = reused = 0
    gc.collect()  # empties the free lists: a dict made by a tracer is counted below
    for _ in range(ALLOCATIONS):
        freed = {}
        freed_at = id(freed)
        del freed  # to the dict free list
        count_before = gc.get_count()[0]
        block = [depth] * (depth % 7 + 1)  # allocates in this frame (through the tracer)
        added += gc.get_count()[0] - count_before
        made = {}  # takes the freed dict's place unless something took it first
        reused += id(made) == freed_at
        del made
    counted.append(added)
    reuse.append(reused)
    label = 'frame %d' % depth
    if depth < DEPTH:
        result = descend(depth + 1, observations, reuse, counted)
        observations.append(['locals() at %d' % depth, shown(locals())])
        return result
    referents = []
    for n in range(1, DEPTH):
        referents.append([n, referent_types(sys._getframe(n))])
    observations.append(['referents', referents])
    seen = []
    for n in range(1, DEPTH):
        frame = sys._getframe(n)
        seen.append([n, frame.f_code.co_name, shown(frame.f_locals),
                     frame.f_locals is frame.f_locals])
        del frame
    observations.append(['f_locals', seen])
    observations.append(['bottom locals()', shown(locals())])
    return len(block) + len(label)


def generator_frames():
    # a generator's frame outlives its yields; look at it between them
    def numbers():
        total = [0]
        for i in range(30):
            total.append(i)
            yield i
    iterator = numbers()
    seen = []
    for value in iterator:
        if value % 10 == 0:
            frame = iterator.gi_frame
            seen.append([value, referent_types(frame), shown(frame.f_locals)])
            del frame
    return seen


def main():
    start_tracer()
    observations = []
    reuse = []
    counted = []
    result = descend(1, observations, reuse, counted)
    report('what %d allocations added to gc.get_count()[0], at depths 1..%d'
           % (ALLOCATIONS, DEPTH), counted)
    report('how often a dict freed before an allocation was the next dict made, '
           'at depths 1..%d' % DEPTH, reuse)
    for name, value in observations:
        report(name, value)
    report('result', result)
    report('generator frames', generator_frames())
    report_tracers()


if __name__ == '__main__':
    main()
