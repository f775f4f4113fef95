"""Running out of memory while traced raises MemoryError, as it does
untraced, and never ends the process: the tracer's tables that cannot grow
drop traces (counted in dropped_traces()) instead.

Each run is a subprocess whose address space is capped (RLIMIT_AS, as
`ulimit -v` does) a little above what it uses once tracing; it allocates in
a loop until MemoryError, recovers, and exits cleanly. Runs repeat: how far
a run gets before the tracer or the program hits the cap varies."""

import subprocess
import sys
import textwrap

import pytest


CHILD = textwrap.dedent("""
    import resource, sys, threading
    import heapscope

    LOOP, NFRAME = sys.argv[1], int(sys.argv[2])

    def objects(kept):
        while True:
            kept.append([object() for _ in range(100)])

    def nested(kept, depth=0):
        while True:
            kept.append({"depth": depth, "list": list(range(depth % 20))})
            if depth < 40:
                nested(kept, depth + 1)

    def run(results):
        # Nothing here may need memory once it has run out: the handler
        # frees the blocks first and stores a result into a slot made before.
        kept = []
        loop = {"objects": objects, "nested": nested, "thread": objects}[LOOP]
        try:
            loop(kept)
        except MemoryError:
            kept.clear()
            results[0] = "MemoryError"
        except RecursionError:
            kept.clear()
            results[0] = "RecursionError"

    heapscope.start(NFRAME)
    with open("/proc/self/status") as status:
        size_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    cap = (size_kb + 40_000) * 1024
    results = [None]
    if LOOP == "thread":
        thread = threading.Thread(target=run, args=(results,))
        thread.start()
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.RLIM_INFINITY))
    if LOOP == "thread":
        thread.join()
    else:
        run(results)
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert results == ["MemoryError"], results
    assert heapscope.is_tracing()
    heapscope.take_snapshot()
    heapscope.stop()
    print("recovered", heapscope.dropped_traces())
""")


@pytest.mark.parametrize("loop, nframe",
                         [("objects", 1), ("objects", 30), ("nested", 30), ("thread", 1)])
def test_memory_error_under_a_capped_address_space(loop, nframe):
    for attempt in range(8):
        run = subprocess.run([sys.executable, "-c", CHILD, loop, str(nframe)],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, (attempt, run.returncode, run.stderr[-2000:])
        assert run.stdout.startswith("recovered"), (attempt, run.stdout, run.stderr[-2000:])
