"""Regenerates the seed corpus in tests/fuzz/corpus (run from the repo root)."""

import os
import pickle
import tracemalloc as cpython

import heapscope

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')
RAW = [(0, 32, (('a.py', 1), ('b.py', 2)), 2), (0, 64, (('a.py', 1),), 5),
       (389047, 4096, (('caf\u00e9.py', 7),), 1), (0, 8, (('<unknown>', 0),), 1)]


def main():
    os.makedirs(HERE, exist_ok=True)
    heapscope.Snapshot(RAW, 5).dump(os.path.join(HERE, 'small.hsnap'))
    heapscope.Snapshot([], 1).dump(os.path.join(HERE, 'empty-snapshot.hsnap'))
    heapscope.Snapshot(RAW * 3 + [(1, 2 ** 40, (), 0)], 25).dump(os.path.join(HERE, 'odd.hsnap'))
    sampled = heapscope._snapshot._snapshot_on(heapscope._heapscope._core_from_raw(RAW, 524288), 5)
    sampled.dump(os.path.join(HERE, 'sampled.hsnap'))
    for protocol in (0, 2, 4):
        with open(os.path.join(HERE, 'cpython-p%d.pickle' % protocol), 'wb') as fp:
            pickle.dump(cpython.Snapshot(RAW, 5), fp, protocol)
    open(os.path.join(HERE, 'empty-file'), 'wb').close()


if __name__ == '__main__':
    main()
