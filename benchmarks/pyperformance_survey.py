"""Beyond run.py's workloads: every pyperformance benchmark that loads here,
timed untraced, under CPython's tracemalloc and under heapscope, side by side.

    python3 benchmarks/pyperformance_survey.py                 # all, nframe=1
    python3 benchmarks/pyperformance_survey.py --nframe 25 coroutines generators

run.py's workloads are chosen and tuned; this is the check against programs
nobody tuned for.  Each benchmark runs in a fresh process, which loads its
``run_benchmark.py`` with pyperf's Runner replaced by a recorder (so the
function it would time is called directly, without pyperf's worker
processes), then times blocks of calls in rounds of five: untraced,
tracemalloc, untraced, heapscope, untraced.  A slowdown is the median over
the rounds of a traced block's CPU time over the mean of the untraced blocks
beside it (this machine's speed jumps for seconds at a time, so only times
taken a fraction of a second apart compare).  Benchmarks whose imports are
missing (pyperformance installs them per benchmark) are listed as skipped.
Timing only: nothing here is asserted.
"""

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time

MARKER = "SURVEY-RESULT"
# Not timed: they start servers or subprocesses, or measure start-up.
EXCLUDED = {"asyncio_tcp", "asyncio_websockets", "concurrent_imap", "hg_startup",
            "python_startup", "tornado_http", "dask", "bench_mp_pool", "bench_thread_pool"}


def benchmarks_dir():
    spec = importlib.util.find_spec("pyperformance")
    if spec is None or spec.origin is None:
        raise SystemExit("pyperformance is not installed (pip install -r benchmarks/requirements.txt)")
    return os.path.join(os.path.dirname(spec.origin), "data-files", "benchmarks")


def all_names():
    root = benchmarks_dir()
    names = []
    for entry in sorted(os.listdir(root)):
        if entry.startswith("bm_") and os.path.exists(os.path.join(root, entry, "run_benchmark.py")):
            if entry[3:] not in EXCLUDED:
                names.append(entry[3:])
    return names


# --- child: one benchmark --------------------------------------------------------

def load_body(name):
    """The function the benchmark's script hands to pyperf, as a no-argument call."""
    import argparse as _argparse

    import pyperf

    captured = []

    class Recorder:
        def __init__(self, *args, **kwargs):
            self.argparser = _argparse.ArgumentParser()
            self.metadata = {}
            self.args = None

        def parse_args(self, args=None):
            self.args = self.argparser.parse_args([])
            return self.args

        def bench_func(self, _name, func, *args, **kwargs):
            captured.append(lambda: func(*args))

        def bench_time_func(self, _name, func, *args, **kwargs):
            captured.append(lambda: func(1, *args))

        def bench_async_func(self, _name, func, *args, **kwargs):
            import asyncio
            captured.append(lambda: asyncio.run(func(*args)))

        def bench_command(self, *args, **kwargs):
            raise RuntimeError("a command benchmark: not timed here")

    pyperf.Runner = Recorder
    path = os.path.join(benchmarks_dir(), f"bm_{name}", "run_benchmark.py")
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location("__main__", path)
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules["__main__"] = saved
    if not captured:
        raise RuntimeError("the script registered nothing to time")
    return captured[0]


def child(name, nframe, rounds, block_seconds):
    import tracemalloc

    import heapscope

    body = load_body(name)
    body()  # warm-up
    start = time.process_time()
    body()
    one = max(time.process_time() - start, 1e-6)
    calls = max(1, round(block_seconds / one))

    def block(start_tracer=None, stop_tracer=None):
        if start_tracer:
            start_tracer()
        cpu = time.process_time()
        for _ in range(calls):
            body()
        cpu = time.process_time() - cpu
        if stop_tracer:
            stop_tracer()
        return cpu

    tm, hs = [], []
    for _ in range(rounds):
        u1 = block()
        t = block(lambda: tracemalloc.start(nframe), tracemalloc.stop)
        u2 = block()
        h = block(lambda: heapscope.start(nframe), heapscope.stop)
        u3 = block()
        tm.append(t / ((u1 + u2) / 2))
        hs.append(h / ((u2 + u3) / 2))
    print(MARKER, json.dumps({"name": name, "call_ms": one * 1000, "calls": calls,
                              "tracemalloc": statistics.median(tm),
                              "heapscope": statistics.median(hs)}), flush=True)


# --- parent ------------------------------------------------------------------------

def run_one(python, name, args):
    command = [python, os.path.abspath(__file__), "--child", name, "--nframe", str(args.nframe),
               "--rounds", str(args.rounds), "--block", str(args.block)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"name": name, "skipped": f"over {args.timeout} s"}
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line.split(" ", 1)[1])
    reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return {"name": name, "skipped": reason[:100]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="pyperformance benchmarks (default: all)")
    parser.add_argument("--nframe", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--block", type=float, default=0.15, help="seconds per timed block")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per benchmark")
    parser.add_argument("--python", default=sys.executable, help="the Python to time")
    parser.add_argument("--child", metavar="NAME", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.nframe < 1 or args.rounds < 1 or args.block <= 0:
        parser.error("--nframe and --rounds must be at least 1, --block above 0")
    if args.child:
        child(args.child, args.nframe, args.rounds, args.block)
        return
    names = args.names or all_names()
    unknown = sorted(set(names) - set(all_names()))
    if unknown:
        parser.error(f"no such pyperformance benchmark here: {', '.join(unknown)}")
    print(f"nframe={args.nframe}, {args.rounds} rounds of {args.block} s blocks, {args.python}")
    print("| benchmark | call | tracemalloc | heapscope | hs/tm added |")
    print("|---|---:|---:|---:|---:|")
    timed = []
    for name in names:
        result = run_one(args.python, name, args)
        if "skipped" in result:
            print(f"| {name} | skipped: {result['skipped']} | | | |", flush=True)
            continue
        timed.append(result)
        tm, hs = result["tracemalloc"], result["heapscope"]
        added = f"{(hs - 1) / (tm - 1):.2f}" if tm > 1.05 else "n/m"
        print(f"| {name} | {result['call_ms']:.1f} ms | {tm:.2f}x | {hs:.2f}x | {added} |", flush=True)
    if timed:
        geo = lambda key: math.exp(statistics.fmean(math.log(r[key]) for r in timed))  # noqa: E731
        worst = max(timed, key=lambda r: r["heapscope"])
        print(f"| **geomean of {len(timed)}** | | **{geo('tracemalloc'):.2f}x** | "
              f"**{geo('heapscope'):.2f}x** | |")
        print(f"heapscope's highest: {worst['name']} {worst['heapscope']:.2f}x")


if __name__ == "__main__":
    main()
