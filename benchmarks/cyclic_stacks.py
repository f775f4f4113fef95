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

import argparse
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


def positive(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {value}")
    return value


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("functions", type=positive, help="distinct recursive functions")
    parser.add_argument("rounds", type=positive, help="calls of each, in turn")
    parser.add_argument("untraced", nargs="?", choices=["untraced"],
                        help="run without heapscope, for the baseline")
    args = parser.parse_args(argv)
    functions = [recursive_function(k) for k in range(args.functions)]
    if args.untraced is None:
        heapscope.start(25)
    for _ in range(args.rounds):
        for function in functions:
            function(8, allocate)
    heapscope.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
