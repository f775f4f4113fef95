"""One measurement, in a fresh process: run.py starts this file per run.

    child.py time    '{"workload": "json", "config": "heapscope-1", "loops": 30}'
    child.py memory  '{"config": "heapscope-1", "objects": 1000000}'
    child.py memory  '{"config": "heapscope-sampled", "objects": 20000, "workload": "sparse"}'
    child.py probe   '{"config": "memray"}'

Prints one line, ``BENCH-RESULT <json>``, on stdout; anything else the
workload prints is ignored.  A failure is a Python traceback on stderr and a
non-zero exit status, which the parent reports as n/a with the last line.

Timing covers the workload body only, both as wall-clock time and as the
CPU time of the process (all its threads, so a tracer's helper threads
count): the interpreter's startup, the imports,
the workload's setup and one untraced warm-up call happen before the tracer
starts; stopping the tracer happens after the clock stops.

With ``"paired": true`` the loops run untraced and traced in turn, in
fours (time_pairs), and the result also lists the paired times.  This
machine's speed jumps by half for seconds at a time (other tenants of the
host), so only times taken a fraction of a second apart compare reliably.
"""

import json
import random
import sys
import time

import configs

MARKER = "BENCH-RESULT"


def timed(body):
    """(CPU time, wall-clock time) of one call of body."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    body()
    return time.process_time() - cpu0, time.perf_counter() - wall0


def time_workload(spec):
    import workloads

    config = configs.BY_KEY[spec["config"]]
    workload = workloads.BY_NAME[spec["workload"]]
    loops = spec["loops"]

    configs.import_tracer(config)
    body = workload.setup()
    body()  # warm-up: caches, lazily imported modules, specialised bytecode

    if spec.get("paired"):
        return time_pairs(config, body, loops)
    stop = configs.start(config)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(loops):
        body()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    result = stop()
    result.update({"wall": wall, "cpu": cpu})
    return result


def time_pairs(config, body, loops):
    """The loops in fours, by a coin seeded alike in every run: untraced,
    traced twice (one tracer session), untraced; or traced (a session),
    untraced twice, traced (another session). Each four gives a pair: its
    two untraced times summed, its two traced times summed. Either order
    cancels a drift across the four; the coin keeps the garbage collector's
    full collections, which come every few loops, from falling into the same
    places of every four."""
    coin = random.Random(4)
    pairs = {"cpu": [], "wall": []}
    result = {}

    def traced(n):
        nonlocal result
        stop = configs.start(config)
        times = [timed(body) for _ in range(n)]
        result = stop()
        return times

    for _ in range(max(1, loops // 2)):
        if coin.random() < 0.5:
            untraced_times = [timed(body)]
            traced_times = traced(2)
            untraced_times.append(timed(body))
        else:
            traced_times = traced(1)
            untraced_times = [timed(body), timed(body)]
            traced_times += traced(1)
        for k, clock in enumerate(pairs):
            pairs[clock].append([sum(t[k] for t in untraced_times),
                                 sum(t[k] for t in traced_times)])
    result.update({clock: sum(t for _, t in runs) for clock, runs in pairs.items()})
    result["pairs"] = pairs
    return result


def measure_memory(spec):
    import rss

    return rss.measure(configs.BY_KEY[spec["config"]], spec["objects"],
                       spec.get("workload", "small"))


def probe(spec):
    config = configs.BY_KEY[spec["config"]]
    module = configs.import_tracer(config)
    stop = configs.start(config)
    stop()
    return {"version": getattr(module, "__version__", None)}


MODES = {"time": time_workload, "memory": measure_memory, "probe": probe}


def main():
    mode, spec = sys.argv[1], json.loads(sys.argv[2])
    result = MODES[mode](spec)
    sys.stdout.flush()
    print(MARKER, json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
