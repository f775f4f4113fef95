#!/usr/bin/env python3
"""Time heapscope side by side with CPython's tracemalloc and memray.

    python3 benchmarks/run.py [--quick] [--python PATH] [--out docs/benchmarks.md]

Every workload (workloads.py) runs under every configuration (configs.py):
no tracing, tracemalloc nframe=1 and 25, memray tracing Python's allocators,
heapscope nframe=1 and 25.  Each measurement is a fresh process (child.py)
that starts the tracer before the workload and times the workload body
alone: the CPU time of the process by default, since on a shared 2-core
machine wall-clock time mostly measures the neighbours (--clock wall for the
other; both are recorded).  The configurations of one workload run
interleaved, round robin.  This machine's speed also jumps by half for
seconds at a time, which no interleaving of whole runs evens out: so a
traced run times its loops untraced and traced in turn, in fours (child.py,
"paired"), and the report takes the median of their traced / untraced
ratios.  Then rss.py measures the resident memory
tracing adds per live block, and, for sampled tracing, per live sampled
block on a workload of large untouched blocks (rss.py says why).

The full run prints the tables and writes docs/benchmarks.md and
docs/benchmarks.png (28 minutes on the 2-core machine while others shared
it).  --quick runs a subset in a minute or two and writes nothing unless
--out is given: run it before landing a change to the hot path.  Timing is
never asserted in tests.

Dependencies (requirements.txt: pyperformance, memray, matplotlib) missing
from the timed Python or from this one are installed with pip unless
--no-install is given; heapscope itself is installed from this tree when it
is missing, or always with --install.  A configuration or workload that
cannot run is reported as n/a with the reason.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import configs
import environment
import report
import workloads

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "child.py")
DEFAULT_OUT = os.path.join(environment.REPO, "docs", "benchmarks.md")
CLOCKS = ("cpu", "wall")
CHILD_TIMEOUT = 900  # seconds; tracemalloc nframe=25 on a slow machine stays well under

FULL = {"repeat": 5, "scale": 1.0, "memory_objects": 1_000_000, "memory_repeat": 3,
        "memory_configs": ["none", "tracemalloc-1", "heapscope-1", "memray", "heapscope-sampled"]}
# Blocks of 1 MiB for the memory per sampled block: ~17,000 of them are
# sampled at 512 KiB, enough to resolve a few bytes each.
MEMORY_SPARSE_BLOCKS = 20_000
# Under a second per run, and heap layout moves the figure by a few bytes
# per block from run to run: the median of more runs.
SPARSE_REPEAT = 5
SAMPLED = "heapscope-sampled"
QUICK = {"repeat": 3, "scale": 0.5, "memory_objects": 1_000_000, "memory_repeat": 1,
         "memory_configs": ["none", "heapscope-1"]}


def log(message="", end="\n"):
    print(message, end=end, file=sys.stderr, flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="workloads: " + ", ".join(w.name for w in workloads.WORKLOADS)
        + "\nconfigurations: " + ", ".join(c.key for c in configs.CONFIGS))
    parser.add_argument("--quick", action="store_true",
                        help=f"workloads {','.join(workloads.QUICK)}, configurations "
                             f"{','.join(configs.QUICK)}, {QUICK['repeat']} runs at half length; "
                             "writes no file unless --out is given")
    parser.add_argument("--python", default=sys.executable, metavar="PATH",
                        help="the Python to benchmark (default: the one running this)")
    parser.add_argument("--out", metavar="FILE.md",
                        help="write the report here and the plot beside it as .png "
                             "(default: docs/benchmarks.md, none with --quick)")
    parser.add_argument("--no-write", action="store_true", help="only print the results")
    parser.add_argument("--json", metavar="FILE", help="also write every raw time as JSON")
    parser.add_argument("--workloads", metavar="A,B", help="comma-separated subset of workloads")
    parser.add_argument("--configs", metavar="A,B",
                        help="comma-separated subset of configurations ('none' is always run)")
    parser.add_argument("--repeat", type=int, metavar="N", help="runs per configuration")
    parser.add_argument("--scale", type=float, metavar="F",
                        help="multiply every workload's loop count (quick: 0.5)")
    parser.add_argument("--clock", choices=CLOCKS, default="cpu",
                        help="what the tables compare: the child's CPU time (default; "
                             "robust when other processes share the machine) or wall-clock "
                             "time; both are recorded")
    parser.add_argument("--from-json", metavar="FILE",
                        help="measure nothing: rebuild the tables, report and plot from a "
                             "file written by --json")
    parser.add_argument("--no-memory", action="store_true", help="skip memory per block")
    parser.add_argument("--install", action="store_true",
                        help="pip install heapscope from this tree into the timed Python first")
    parser.add_argument("--no-install", action="store_true",
                        help="never run pip; report what is missing instead")
    return parser.parse_args(argv)


def pick(names, known, what):
    if not names:
        return None
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        sys.exit(f"run.py: unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return chosen


def run_child(python, mode, spec, pythonpath=None):
    """Run child.py once; return (result dict, None) or (None, reason).
    `pythonpath` puts a build of heapscope ahead of the installed one."""
    command = [python, CHILD, mode, json.dumps(spec)]
    env = environment.child_environment()
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    try:
        proc = subprocess.run(command, capture_output=True, text=True, cwd=HERE,
                              timeout=CHILD_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {CHILD_TIMEOUT} s"
    for line in reversed(proc.stdout.splitlines()):
        if proc.returncode == 0 and line.startswith("BENCH-RESULT "):
            return json.loads(line[len("BENCH-RESULT "):]), None
    reason = environment.last_line(proc.stderr) or f"exit status {proc.returncode}"
    return None, reason


def probe_configs(python, keys):
    """Start and stop each tracer once; {key: reason} for those that fail."""
    broken = {}
    for key in keys:
        if key != "none":
            _, reason = run_child(python, "probe", {"config": key})
            if reason:
                broken[key] = reason
                log(f"  {key}: n/a ({reason})")
    return broken


def time_workloads(python, names, keys, repeat, scale, broken, clock):
    """Round robin: for each repetition, each configuration once, starting
    one further along each time so no configuration always runs first.
    Traced runs are paired loop by loop with untraced ones (child.py)."""
    times = {c: {w: {k: [] for k in keys} for w in names} for c in CLOCKS}
    pairs = {c: {w: {k: [] for k in keys if k != "none"} for w in names} for c in CLOCKS}
    errors = {w: {k: broken[k] for k in keys if k in broken} for w in names}
    extras = {w: {k: [] for k in keys} for w in names}
    for w in names:
        loops = max(1, round(workloads.BY_NAME[w].loops * scale))
        for rep in range(repeat):
            log(f"{w:>12} {rep + 1}/{repeat}:", end="")
            order = keys[rep % len(keys):] + keys[:rep % len(keys)]
            for key in order:
                if key in errors[w]:
                    continue
                spec = {"workload": w, "config": key, "loops": loops, "paired": key != "none"}
                result, reason = run_child(python, "time", spec)
                if reason:
                    errors[w][key] = reason
                    log(f" {key} n/a", end="")
                    continue
                run_pairs = result.pop("pairs", None)
                for c in CLOCKS:
                    times[c][w][key].append(result.pop(c))
                    if run_pairs:
                        pairs[c][w][key].extend(run_pairs[c])
                extras[w][key].append(result)
                if run_pairs:
                    log(f" {key} {report.paired_slowdown(run_pairs[clock]):.2f}x", end="")
                else:
                    log(f" {key} {times[clock][w][key][-1]:.2f}", end="")
            log()
            if "none" in errors[w]:
                # Without the untraced time nothing else of this workload means anything.
                for key in keys:
                    errors[w].setdefault(key, errors[w]["none"])
                break
    return times, pairs, errors, extras


def measure_memory(python, keys, objects, repeat, broken, workload="small"):
    memory, errors = {}, {}
    for key in keys:
        if key in broken:
            errors[key] = broken[key]
            continue
        runs = []
        for _ in range(repeat):
            result, reason = run_child(python, "memory", {"config": key, "objects": objects,
                                                          "workload": workload})
            if reason:
                errors[key] = reason
                break
            runs.append(result)
        if runs:
            runs.sort(key=lambda r: r["rss_delta_bytes"])
            memory[key] = runs[len(runs) // 2]
            log(f"  memory {workload} {key}: RSS +{memory[key]['rss_delta_bytes'] / 2**20:.1f} MiB"
                + (f", {memory[key]['blocks']:,} blocks" if "blocks" in memory[key] else ""))
    return memory, errors


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.no_install and args.install:
        sys.exit("run.py: --install and --no-install contradict each other")
    if args.from_json:
        with open(args.from_json) as f:
            results = json.load(f)
        results["clock"] = args.clock
        out = None if args.no_write else args.out or DEFAULT_OUT
        publish(results, args, out)
        return
    results = measure(args, argv)
    out = None if args.no_write else args.out or (None if args.quick else DEFAULT_OUT)
    publish(results, args, out)


def measure(args, argv):
    started = time.monotonic()
    mode = QUICK if args.quick else FULL
    python = args.python
    repeat = args.repeat or mode["repeat"]
    scale = args.scale or mode["scale"]
    names = pick(args.workloads, list(workloads.BY_NAME), "workload") \
        or (workloads.QUICK if args.quick else [w.name for w in workloads.WORKLOADS])
    keys = pick(args.configs, list(configs.BY_KEY), "configuration") \
        or (configs.QUICK if args.quick else [c.key for c in configs.CONFIGS])
    keys = ["none"] + [k for k in keys if k != "none"]

    warnings = []
    log(f"preparing {python}")
    problems = environment.ensure_dependencies(python, not args.no_install, log)
    for reason in problems.values():
        log(f"  {reason}")
        warnings.append(reason)
    stale = environment.ensure_heapscope(python, args.install, log)
    if stale:
        log(f"  WARNING: {stale}")
        warnings.append(stale)
    meta = environment.describe(python)
    command = [os.path.basename(sys.executable), os.path.relpath(os.path.abspath(sys.argv[0]))]
    custom = any((args.workloads, args.configs, args.repeat, args.scale, args.no_memory))
    meta.update({
        "mode": ("quick" if args.quick else "full") + (", custom selection" if custom else ""),
        "command": shlex.join(command + argv),
        "quick": args.quick, "repeat": repeat, "scale": scale, "warnings": warnings,
    })
    log(f"heapscope {meta['commit']} on {meta['python']}, {meta['nproc']} x {meta['cpu']}, "
        f"load {meta['load_before']:.1f}")

    log("checking the tracers")
    broken = probe_configs(python, keys)
    log(f"timing {len(names)} workloads x {len(keys)} configurations x {repeat} runs")
    times, pairs, errors, extras = time_workloads(python, names, keys, repeat, scale, broken,
                                                  args.clock)

    memory, memory_errors, sparse, sparse_errors = {}, {}, {}, {}
    if not args.no_memory:
        memory_keys = [k for k in mode["memory_configs"]
                       if k == "none" or k in keys or not args.configs]
        log(f"memory per block: {mode['memory_objects']:,} objects, "
            f"{mode['memory_repeat']} run(s) each")
        memory, memory_errors = measure_memory(python, memory_keys, mode["memory_objects"],
                                               mode["memory_repeat"], broken)
        meta.update({"memory_objects": mode["memory_objects"],
                     "memory_repeat": mode["memory_repeat"]})
        if SAMPLED in memory_keys:
            # The small objects leave too few sampled blocks to resolve what
            # each costs: measure sampling again where thousands are live.
            log(f"memory per sampled block: {MEMORY_SPARSE_BLOCKS:,} blocks of 1 MiB, "
                f"{mode['memory_repeat']} run(s) each")
            # Exact tracing of the same blocks too: "per sampled block no more
            # than exact mode's" compared on one workload.
            sparse_keys = ["none", "heapscope-1", SAMPLED]
            sparse, sparse_errors = measure_memory(python, sparse_keys,
                                                   MEMORY_SPARSE_BLOCKS,
                                                   SPARSE_REPEAT, broken, "sparse")
            meta["memory_sparse_blocks"] = MEMORY_SPARSE_BLOCKS
            meta["memory_sparse_repeat"] = SPARSE_REPEAT

    meta["load_after"] = os.getloadavg()[0]
    meta["elapsed"] = time.monotonic() - started
    return {
        "meta": meta, "workloads": names, "configs": keys, "clock": args.clock,
        "descriptions": {w: workloads.BY_NAME[w].description for w in names},
        "times": times, "pairs": pairs, "errors": errors, "extras": extras,
        "memory": memory, "memory_errors": memory_errors,
        "memory_sparse": sparse, "memory_sparse_errors": sparse_errors,
    }


def publish(results, args, out):
    """Print the tables; write the raw JSON, the markdown report and the plot."""
    summary = report.Summary(results)
    print()
    print(report.text(summary))
    print(f"\n({results['meta']['elapsed'] / 60:.1f} min)")

    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        log(f"wrote {args.json}")
    if out:
        png = os.path.splitext(out)[0] + ".png"
        try:
            report.plot(summary, png)
            png_name = os.path.basename(png)
            log(f"wrote {png}")
        except ImportError as e:
            log(f"no plot: {e} (pip install -r {os.path.relpath(environment.REQUIREMENTS)})")
            png_name = None
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        # Sections written by other benchmarks (snapshot_scale.py) follow a
        # marker and survive a rerun of this one.
        kept = ""
        if os.path.exists(out):
            with open(out) as f:
                previous = f.read()
            if KEEP_MARKER in previous:
                kept = "\n" + previous[previous.index(KEEP_MARKER):]
        with open(out, "w") as f:
            f.write(report.markdown(summary, png_name) + kept)
        log(f"wrote {out}")


KEEP_MARKER = "<!-- other benchmarks: kept across reruns of run.py -->"


if __name__ == "__main__":
    main()
