"""Before and after a change: heapscope built from two sources, timed side by side.

    python3 benchmarks/compare.py                       # HEAD against the working tree
    python3 benchmarks/compare.py --base main~3 --workloads json,float --repeat 11

Both builds are installed into temporary directories (the base from a git
worktree of the given revision, the head from the working tree as it is, with
uncommitted changes) and imported from there through PYTHONPATH, so the
Python's own installation is left alone. Each round runs each build once, in
a shuffled order, each in a fresh process that times its loops untraced and
traced in turn (benchmarks/child.py, "paired"), as run.py does: this
machine's speed jumps by half for seconds at a time, so only times taken a
fraction of a second apart compare. A build's slowdown in a round is the
median of its traced / untraced ratios; the report gives the median of those
per round, and head/base from the same rounds with their range.
"""

import argparse
import contextlib
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile

import run
import workloads
from report import paired_slowdown

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CONFIGS = ["heapscope-1", "heapscope-25", "heapscope-sampled"]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD", help="git revision of the base build")
    parser.add_argument("--workloads", default=",".join(workloads.QUICK),
                        help=f"comma-separated (default {','.join(workloads.QUICK)})")
    parser.add_argument("--config", default="heapscope-1", choices=CONFIGS)
    parser.add_argument("--repeat", type=int, default=9, help="rounds per workload")
    parser.add_argument("--scale", type=float, default=0.5,
                        help="multiply every workload's loop count")
    parser.add_argument("--python", default=sys.executable, help="the Python to time")
    args = parser.parse_args(argv)
    names = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in names if w not in workloads.BY_NAME]
    if unknown or not names:
        parser.error(f"unknown workload(s) {', '.join(unknown) or '(none given)'}; "
                     f"known: {', '.join(workloads.BY_NAME)}")
    if args.repeat < 1 or args.scale <= 0:
        parser.error("--repeat must be at least 1 and --scale above 0")
    resolved = subprocess.run(["git", "-C", REPO, "rev-parse", "--verify", "--quiet",
                               f"{args.base}^{{commit}}"], capture_output=True, text=True)
    if resolved.returncode != 0:
        parser.error(f"--base {args.base!r} is not a commit of {REPO}")
    args.workloads = names
    return args


def log(message):
    print(message, file=sys.stderr, flush=True)


def install(python, source, target, build_dir):
    log(f"building {os.path.relpath(source, REPO) or '.'} into {target}")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--target", target,
                    source, "-C", f"build-dir={build_dir}"], check=True)
    found = subprocess.run([python, "-c", "import heapscope; print(heapscope.__file__)"],
                           env={**os.environ, "PYTHONPATH": target}, check=True,
                           capture_output=True, text=True).stdout.strip()
    if not found.startswith(os.path.join(target, "")):
        raise SystemExit(f"PYTHONPATH={target} imports heapscope from {found}, not the build")


@contextlib.contextmanager
def worktree(revision, path):
    subprocess.run(["git", "-C", REPO, "worktree", "add", "-q", "--detach", path, revision],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", path], check=False)


def slowdown_once(python, workload, config, loops, pythonpath):
    """One run's slowdown: the median of its paired traced / untraced CPU times."""
    spec = {"workload": workload, "config": config, "loops": loops, "paired": True}
    result, reason = run.run_child(python, "time", spec, pythonpath)
    if reason:
        raise SystemExit(f"{workload} {config}: {reason}")
    return paired_slowdown(result["pairs"]["cpu"])


def compare(args, builds):
    """{workload: {"base": [ratios], "head": [ratios], "head/base": [ratios]}}."""
    rng = random.Random()
    results = {}
    for w in args.workloads:
        loops = max(2, round(workloads.BY_NAME[w].loops * args.scale))
        ratios = {"base": [], "head": [], "head/base": []}
        for round_number in range(args.repeat):
            runs = list(builds.items())
            rng.shuffle(runs)
            slowdown = {name: slowdown_once(args.python, w, args.config, loops, target)
                        for name, target in runs}
            ratios["base"].append(slowdown["base"])
            ratios["head"].append(slowdown["head"])
            ratios["head/base"].append(slowdown["head"] / slowdown["base"])
            log(f"{w:>12} {round_number + 1}/{args.repeat}: "
                f"base {ratios['base'][-1]:.2f}x, head {ratios['head'][-1]:.2f}x")
        results[w] = ratios
    return results


def report(args, results):
    print(f"{args.config}, CPU time, median of {args.repeat} paired rounds at scale "
          f"{args.scale}; base = {args.base}, head = the working tree")
    print(f"{'workload':>12} {'base':>7} {'head':>7} {'head/base':>10}  range of head/base")
    for w, r in results.items():
        change = statistics.median(r["head/base"])
        print(f"{w:>12} {statistics.median(r['base']):6.2f}x {statistics.median(r['head']):6.2f}x"
              f" {change:9.3f}  {min(r['head/base']):.3f}-{max(r['head/base']):.3f}")
    changes = [statistics.median(r["head/base"]) for r in results.values()]
    geomean = math.exp(sum(math.log(c) for c in changes) / len(changes))
    print(f"{'geomean':>12} {'':>7} {'':>7} {geomean:9.3f}")


def main(argv=None):
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="heapscope-compare-") as tmp:
        with worktree(args.base, os.path.join(tmp, "base-src")) as source:
            install(args.python, source, os.path.join(tmp, "base"),
                    os.path.join(tmp, "base-build"))
        install(args.python, REPO, os.path.join(tmp, "head"), os.path.join(tmp, "head-build"))
        builds = {"base": os.path.join(tmp, "base"), "head": os.path.join(tmp, "head")}
        report(args, compare(args, builds))


if __name__ == "__main__":
    main()
