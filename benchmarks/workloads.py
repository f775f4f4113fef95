"""The workloads: what the benchmark times under each tracer.

Each workload is a ``setup`` function that does the unmeasured preparation
(imports, input data, the pyperformance module) and returns ``body``, the
function that is timed.  ``body`` is called ``loops`` times in a row; the loop
counts are fixed, not calibrated per run, so two runs on the same machine time
the same work (about 0.3 s untraced each on the 2-core reference machine).
Quick mode runs the ``QUICK`` subset with half the loops.

Two kinds of workload:
  stdlib         allocation-heavy standard-library work (json, ast, re,
                 decimal, dataclasses, deep call stacks);
  pyperformance  real programs from the pyperformance suite, imported from the
                 installed ``pyperformance`` package (nothing is vendored) and
                 their core function called directly, without pyperf's runner.
Probes (``PROBES``): one allocation pattern each, for before/after checks with
compare.py (``--workloads str_short,str_kept``); full runs leave them out.

This module is imported by the child process only after it decides what to
run; nothing here runs at import time except defining functions.
"""

import importlib.util
import os
import sys
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Workload:
    name: str
    kind: str           # "stdlib" or "pyperformance"
    loops: int          # calls of body in full mode
    setup: Callable[[], Callable[[], object]]
    description: str


# --- standard library ---------------------------------------------------------

def _json_setup():
    import json

    doc = {
        "users": [
            {
                "id": i,
                "name": f"user{i}",
                "email": f"user{i}@example.org",
                "score": i * 1.5,
                "active": i % 3 == 0,
                "tags": ["alpha", "beta", str(i)],
                "address": {"street": f"{i} Main St", "zip": f"{10000 + i}"},
            }
            for i in range(2000)
        ]
    }
    text = json.dumps(doc)

    def body():
        json.dumps(json.loads(text))

    return body


def _ast_setup():
    import ast
    import inspect

    with open(inspect.__file__, encoding="utf-8") as f:
        source = f.read()

    def body():
        ast.parse(source)

    return body


def _re_setup():
    import re
    import textwrap

    with open(textwrap.__file__, encoding="utf-8") as f:
        text = f.read() * 4
    words = re.compile(r"\b\w+\b")
    assign = re.compile(r"(\w+)\s*=\s*([^\n]+)")
    quoted = re.compile(r"'([^'\n]*)'|\"([^\"\n]*)\"")

    def body():
        words.findall(text)
        [m.groups() for m in assign.finditer(text)]
        quoted.sub(lambda m: m.group(0).upper(), text)
        text.split()

    return body


def _decimal_setup():
    import decimal

    context = decimal.Context(prec=40)
    D = decimal.Decimal
    values = [D(i) / D(7) for i in range(1, 2000)]

    def body():
        with decimal.localcontext(context):
            total = D(0)
            for v in values:
                total += v * v - v / D(3)
                total = abs(total).sqrt() + v.quantize(D("0.0001"))
            str(total)

    return body


def _dataclasses_setup():
    import dataclasses

    @dataclasses.dataclass
    class Point:
        x: float
        y: float

    @dataclasses.dataclass
    class Item:
        name: str
        position: Point
        tags: list
        meta: dict

    def body():
        items = [
            Item(f"item{i}", Point(i, -i), ["a", "b"], {"k": i})
            for i in range(1000)
        ]
        [dataclasses.asdict(item) for item in items]

    return body


def _deep_stack_setup():
    # Allocation at the bottom of a 150-frame stack: CPython's module walks the
    # whole stack on every allocation to count total_nframe.
    depth = 150

    def descend(n):
        if n:
            return descend(n - 1)
        return [(i, str(i)) for i in range(1000)]

    def body():
        for _ in range(50):
            descend(depth)

    return body


# --- pyperformance -------------------------------------------------------------

def pyperformance_benchmarks_dir():
    """Where the installed pyperformance keeps its benchmark sources."""
    spec = importlib.util.find_spec("pyperformance")
    if spec is None or spec.origin is None:
        raise RuntimeError("pyperformance is not installed for this Python "
                           "(pip install -r benchmarks/requirements.txt)")
    return os.path.join(os.path.dirname(spec.origin), "data-files", "benchmarks")


def _load_pyperformance(name):
    path = os.path.join(pyperformance_benchmarks_dir(), f"bm_{name}", "run_benchmark.py")
    if not os.path.exists(path):
        raise RuntimeError(f"this pyperformance has no bm_{name} ({path})")
    spec = importlib.util.spec_from_file_location(f"bm_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _richards_setup():
    bm = _load_pyperformance("richards")
    richards = bm.Richards()
    return lambda: richards.run(1)


def _deltablue_setup():
    bm = _load_pyperformance("deltablue")
    return lambda: bm.delta_blue(1000)


def _raytrace_setup():
    bm = _load_pyperformance("raytrace")
    return lambda: bm.bench_raytrace(1, 40, 40, None)


def _chaos_setup():
    bm = _load_pyperformance("chaos")
    GVector, Spline = bm.GVector, bm.Spline
    # The splines of bm_chaos's main(), which builds them inline.
    splines = [
        Spline([GVector(1.597350, 3.304460, 0.0), GVector(1.575810, 4.123260, 0.0),
                GVector(1.313210, 5.288350, 0.0), GVector(1.618900, 5.329910, 0.0),
                GVector(2.889940, 5.502700, 0.0), GVector(2.373060, 4.381830, 0.0),
                GVector(1.662000, 4.360280, 0.0)],
               3, [0, 0, 0, 1, 1, 1, 2, 2, 2]),
        Spline([GVector(2.804500, 4.017350, 0.0), GVector(2.550500, 3.525230, 0.0),
                GVector(1.979010, 2.620360, 0.0), GVector(1.979010, 2.620360, 0.0)],
               3, [0, 0, 0, 1, 1, 1]),
        Spline([GVector(2.001670, 4.011320, 0.0), GVector(2.335040, 3.312830, 0.0),
                GVector(2.366800, 3.233460, 0.0), GVector(2.366800, 3.233460, 0.0)],
               3, [0, 0, 0, 1, 1, 1]),
    ]
    game = bm.Chaosgame(splines, bm.DEFAULT_THICKNESS)
    return lambda: game.create_image_chaos(bm.DEFAULT_WIDTH, bm.DEFAULT_HEIGHT,
                                           2000, None, bm.DEFAULT_RNG_SEED)


def _go_setup():
    bm = _load_pyperformance("go")
    bm.GAMES = 50
    return bm.versus_cpu


def _float_setup():
    bm = _load_pyperformance("float")
    return lambda: bm.benchmark(20000)


def _nbody_setup():
    bm = _load_pyperformance("nbody")
    return lambda: bm.bench_nbody(1, bm.DEFAULT_REFERENCE, 5000)


def _coroutines_setup():
    bm = _load_pyperformance("coroutines")

    def body():
        # bm_coroutines' loop: one coroutine per call, driven by send().
        coro = bm.fibonacci(22)
        try:
            while True:
                coro.send(None)
        except StopIteration:
            pass

    return body


def _generators_setup():
    bm = _load_pyperformance("generators")
    tree = bm.tree(range(20000))

    def body():
        for _ in tree:
            pass

    return body


WORKLOADS = [
    Workload("json", "stdlib", 35, _json_setup,
             "json.loads + json.dumps of a 2000-record document"),
    Workload("ast", "stdlib", 11, _ast_setup,
             "ast.parse of Lib/inspect.py"),
    Workload("re", "stdlib", 35, _re_setup,
             "findall / finditer / sub over 4x Lib/textwrap.py"),
    Workload("decimal", "stdlib", 40, _decimal_setup,
             "Decimal arithmetic, sqrt and quantize at 40 digits"),
    Workload("dataclasses", "stdlib", 20, _dataclasses_setup,
             "1000 nested dataclass instances, then asdict() of each"),
    Workload("deep_stack", "stdlib", 35, _deep_stack_setup,
             "small allocations at the bottom of a 150-frame recursion"),
    Workload("richards", "pyperformance", 7, _richards_setup,
             "bm_richards: Richards.run(1)"),
    Workload("deltablue", "pyperformance", 8, _deltablue_setup,
             "bm_deltablue: delta_blue(1000)"),
    Workload("raytrace", "pyperformance", 6, _raytrace_setup,
             "bm_raytrace: a 40x40 render"),
    Workload("chaos", "pyperformance", 11, _chaos_setup,
             "bm_chaos: create_image_chaos, 2000 iterations"),
    Workload("go", "pyperformance", 10, _go_setup,
             "bm_go: versus_cpu() with 50 games"),
    Workload("float", "pyperformance", 22, _float_setup,
             "bm_float: benchmark(20000)"),
    Workload("coroutines", "pyperformance", 25, _coroutines_setup,
             "bm_coroutines: fibonacci(22) as coroutines awaiting coroutines (generators' frames)"),
    Workload("generators", "pyperformance", 7, _generators_setup,
             "bm_generators: a 20,000-node tree walked by recursive yield from"),
    Workload("nbody", "pyperformance", 14, _nbody_setup,
             "bm_nbody: 5000 advance() steps (float arithmetic: short-lived floats, little live memory)"),
]


# --- probes: one allocation pattern each, for compare.py, not in full runs -----

def _str_short_setup():
    # One str per iteration, freed at the next: the trace dies young.
    def body():
        for i in range(200_000):
            s = "%d" % i  # noqa: F841
    return body


def _str_kept_setup():
    # The same strings kept in a list until the loop ends: every trace ages.
    def body():
        kept = ["%d" % i for i in range(200_000)]
        del kept
    return body


PROBES = [
    Workload("str_short", "probe", 10, _str_short_setup,
             "200,000 short-lived str objects, one alive at a time"),
    Workload("str_kept", "probe", 10, _str_kept_setup,
             "200,000 str objects alive until the loop ends"),
]

BY_NAME = {w.name: w for w in WORKLOADS + PROBES}

# The quick-mode subset: a mix of stdlib and real programs.
QUICK = ["json", "ast", "dataclasses", "deep_stack", "raytrace"]
