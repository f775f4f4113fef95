"""Runs a traced workload once per allocation of the tracer, making that one
allocation fail (a HEAPSCOPE_FAULT_INJECTION build), and prints one JSON line
per run: what the program computed and what the tracer counted.

    python workload.py MODE   (exact | sampled)

The workload's result must not depend on the failure; the traces the tracer
kept must add up to its memory counter; a failure can cost at most the one
trace being recorded (counted in dropped_traces())."""
import gc
import json
import sys

import heapscope
from heapscope import _heapscope

MODE = sys.argv[1]


def leaf(i):
    return {"n": i, "s": "x" * (i % 97), "t": (i, str(i))}


def middle(i, depth):
    if depth:
        return middle(i, depth - 1)
    return [leaf(i), bytearray(70_000 + i) if i % 50 == 0 else b"", str(i) * 3]


def workload():
    kept = [middle(i, i % 7) for i in range(3000)]
    total = sum(len(item[0]["s"]) + len(item[1]) + len(item[2]) for item in kept)
    del kept[::2]
    kept.extend(middle(i, 3) for i in range(500))
    return total + len(kept), kept


def traces_of_this_file(traces):
    return sum(1 for _, _, frames, _ in traces if frames and frames[0][0] == __file__)


def run(fail_at):
    heapscope.start(5, **({"sample_interval": 256} if MODE == "sampled" else {}))
    _heapscope._fail_allocation_at(fail_at)
    result, kept = workload()
    counted = _heapscope._allocations_counted()
    _heapscope._fail_allocation_at(0)
    gc.collect()
    traces = heapscope._get_traces()
    current, _ = heapscope.get_traced_memory()
    line = {
        "fail_at": fail_at,
        "result": result,
        "allocations": counted,
        "dropped": heapscope.dropped_traces(),
        "traces": len(traces),
        "ours": traces_of_this_file(traces),
        "sum_sizes": sum(size for _, size, _, _ in traces),
        "current": current,
    }
    del kept, traces
    heapscope.stop()
    return line


workload()  # warm up: caches and free lists as in every run below
first = run(0)
print(json.dumps(first), flush=True)
for n in range(1, first["allocations"] + 1):
    print(json.dumps(run(n)), flush=True)
