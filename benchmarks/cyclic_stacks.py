"""The capture cache's worst case for its skip: stacks that do repeat, but
in a cycle longer than the 64 misses in a row after which the cache is
skipped (src/cpython/capture_cache.h, worth_trying).

    python3 benchmarks/cyclic_stacks.py FUNCTIONS ROUNDS [untraced]

FUNCTIONS distinct recursive functions, each allocating at the bottom of 9
frames of its own, are called in turn ROUNDS times under heapscope.start(25):
every allocation misses the thread's last capture, and with all of them in
the capture cache every round after the first would hit it. Count its
instructions under two builds with callgrind, e.g.

    PYTHONPATH=BUILD valgrind --tool=callgrind python3.11 benchmarks/cyclic_stacks.py 1000 40
"""

import sys

import heapscope


def recursive_function(k):
    namespace = {}
    exec(f"def f{k}(n, then):\n"
         f"    if n:\n"
         f"        return f{k}(n - 1, then)\n"
         f"    return then()\n", namespace)
    return namespace[f"f{k}"]


def allocate():
    return [1, 2]


def main(argv):
    traced = argv[2:] != ["untraced"]
    counts = argv[:2]
    if len(argv) not in (2, 3) or argv[2:] not in ([], ["untraced"]) or not all(
            a.isdigit() and int(a) > 0 for a in counts):
        raise SystemExit("usage: cyclic_stacks.py FUNCTIONS ROUNDS [untraced]"
                         " (two positive integers)")
    functions = [recursive_function(k) for k in range(int(argv[0]))]
    if traced:
        heapscope.start(25)
    for _ in range(int(argv[1])):
        for function in functions:
            function(8, allocate)
    heapscope.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
