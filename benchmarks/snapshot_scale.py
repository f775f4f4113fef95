"""Snapshot analysis at scale: heapscope against CPython's tracemalloc.

Allocates at least 2M live blocks from 1000 distinct source lines, under each
tracer in turn (same process, same objects), and times every snapshot
operation (the snapshots are taken while tracing, the rest runs after stop(),
which favours CPython: its analysis is much slower while tracing): take_snapshot, statistics('lineno'), statistics('filename',
cumulative=True), statistics('traceback'), compare_to, filter_traces,
statistics of a snapshot on a plain list of raw traces (first call and a
repeat), dump and load. Prints one markdown table per traceback limit with the ratio
CPython / heapscope and the file sizes.

    python benchmarks/snapshot_scale.py                  # nframe 1 and 25
    python benchmarks/snapshot_scale.py --nframe 1 --blocks 200000   # quicker
"""

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc as cpython

import heapscope

LINES = 1000
GENERATED = '<snapshot-scale-generated>'


def make_allocators():
    """1000 functions, one allocating line each, and a recursive caller that
    puts them under `depth` frames so that nframe=25 tracebacks are full."""
    source = ['def deep(k, fn, n):',
              '    if k <= 0:',
              '        return fn(n)',
              '    return deep(k - 1, fn, n)']
    for i in range(LINES):
        source.append('def alloc_%d(n):' % i)
        source.append('    return [object() for _ in range(n)]')
    namespace = {}
    exec(compile('\n'.join(source), GENERATED, 'exec'), namespace)
    return namespace['deep'], [namespace['alloc_%d' % i] for i in range(LINES)]


def populate(deep, allocators, per_line, depth, lines=range(LINES)):
    return [deep(depth, allocators[i], per_line) for i in lines]


def timed(call):
    gc.collect()
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def measure(module, nframe, per_line, depth, tmpdir):
    """Times of each operation, blocks in the snapshot, dump file size."""
    deep, allocators = make_allocators()
    gc.collect()
    module.start(nframe)
    try:
        keep = populate(deep, allocators, per_line, depth)
        results = {}
        results['take_snapshot'], old = timed(module.take_snapshot)
        blocks = len(old.traces)
        # the later snapshot: 10% of the lines freed, 10% reallocated
        for i in range(0, LINES, 10):
            keep[i] = None
        keep += populate(deep, allocators, per_line // 2, depth, range(5, LINES, 10))
        new = module.take_snapshot()
        # Analysis with tracing off, for both: while tracing, CPython's
        # analysis traces its own allocations and slows down several times.
        module.stop()
        results["statistics('lineno')"], _ = timed(lambda: new.statistics('lineno'))
        results["statistics('filename', cumulative=True)"], _ = timed(
            lambda: new.statistics('filename', cumulative=True))
        results["statistics('traceback')"], _ = timed(lambda: new.statistics('traceback'))
        results["compare_to(old, 'lineno')"], _ = timed(lambda: new.compare_to(old, 'lineno'))
        filters = [module.Filter(False, '<frozen importlib._bootstrap>'),
                   module.Filter(False, '<unknown>'),
                   module.Filter(True, '*generated*', all_frames=True)]
        results['filter_traces'], kept = timed(lambda: new.filter_traces(filters))
        # A snapshot on a plain list of raw traces (what a pickle loads, or
        # what user code builds): heapscope converts the list on the first
        # analysis and reuses the conversion while the list holds the same
        # trace objects, which it checks on every call.
        on_list = module.Snapshot(list(new.traces._traces), new.traceback_limit)
        results["list: statistics('lineno'), first"], _ = timed(
            lambda: on_list.statistics('lineno'))
        results["list: statistics('lineno'), again"], _ = timed(
            lambda: on_list.statistics('lineno'))
        del on_list
        path = os.path.join(tmpdir, '%s-%d.snapshot' % (module.__name__, nframe))
        results['dump'], _ = timed(lambda: new.dump(path))
        results['load'], loaded = timed(lambda: module.Snapshot.load(path))
        assert len(loaded.traces) == len(new.traces)
        size = os.path.getsize(path)
        del keep, old, new, kept, loaded
    finally:
        module.stop()
    gc.collect()
    return results, blocks, size


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--nframe', type=int, action='append', help='traceback limit (repeatable)')
    parser.add_argument('--blocks', type=int, default=2_000_000, help='live blocks to allocate')
    args = parser.parse_args()
    per_line = -(-args.blocks // LINES)
    print('Python %s, %d lines x %d objects' % (sys.version.split()[0], LINES, per_line))
    with tempfile.TemporaryDirectory() as tmpdir:
        for nframe in args.nframe or [1, 25]:
            depth = max(0, nframe - 2)
            theirs, their_blocks, their_size = measure(cpython, nframe, per_line, depth, tmpdir)
            ours, our_blocks, our_size = measure(heapscope, nframe, per_line, depth, tmpdir)
            print()
            print('nframe=%d: %d blocks traced by CPython, %d by heapscope' % (nframe, their_blocks, our_blocks))
            print()
            print('| operation | CPython tracemalloc | heapscope | ratio |')
            print('|---|---:|---:|---:|')
            for name in ours:
                print('| %s | %.3f s | %.4f s | %.0fx |' % (name, theirs[name], ours[name],
                                                          theirs[name] / max(ours[name], 1e-9)))
            print('| file size | %.1f MiB | %.1f MiB | %.2f of CPython |' % (
                their_size / 2 ** 20, our_size / 2 ** 20, our_size / their_size))
            sys.stdout.flush()


if __name__ == '__main__':
    main()
