"""Run one program twice, under CPython's tracemalloc and under heapscope,
and compare what the two report.

The program is written once to a file, so that both runs see the same file
name and line numbers. Its first line binds `tracemalloc` to the module the
run is for (`import heapscope as tracemalloc` in heapscope's run), and it
writes what it measured as JSON to the path given as its last argument
(`RESULTS`). Each run is a fresh child process: tracing state, free lists and
the small-block caches of libraries never carry over from one run to the
other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Optional

MODULES = ("tracemalloc", "heapscope")

# Line 1 of every program: the same line count under both modules.
_PREAMBLE = (
    "import sys; tracemalloc = __import__(sys.argv[1]); "
    "RESULTS = sys.argv[2]  # tracemalloc, or heapscope standing in for it\n"
)


def write_program(directory: Path, name: str, body: str) -> Path:
    """Writes `body` (dedented) after the preamble; returns the file."""
    path = directory / name
    path.write_text(_PREAMBLE + textwrap.dedent(body).lstrip("\n"))
    return path


def run_program(
    path: Path,
    module: str,
    *,
    env: Optional[dict] = None,
    timeout: float = 300,
) -> Any:
    """Runs `path` under `module` and returns the JSON it wrote."""
    if module not in MODULES:
        raise ValueError(f"module must be one of {MODULES}, not {module!r}")
    results = path.with_name(f"{path.stem}.{module}.json")
    if results.exists():
        results.unlink()
    child_env = dict(os.environ)
    # The same string hashes in both runs: set and dict sizes (and so the
    # blocks they allocate) otherwise vary from run to run (pandas on 3.12:
    # the standard module's own count of a scenario's blocks moved by 5).
    child_env["PYTHONHASHSEED"] = "0"
    child_env.update(env or {})
    child = subprocess.run(
        [sys.executable, str(path), module, str(results)],
        cwd=path.parent,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if child.returncode != 0 or not results.exists():
        raise AssertionError(
            f"{path.name} under {module} failed (exit {child.returncode}):\n"
            f"{child.stdout[-3000:]}\n{child.stderr[-6000:]}"
        )
    return json.loads(results.read_text())


def run_both(path: Path, **kwargs) -> dict:
    """{"tracemalloc": ..., "heapscope": ...}: the program's results under each."""
    return {module: run_program(path, module, **kwargs) for module in MODULES}


def within(expected: float, got: float, fraction: float) -> bool:
    """Whether `got` is `expected` within `fraction` of it (counts rounded
    down, so that a count under 1/fraction must be exact)."""
    return abs(got - expected) <= int(abs(expected) * fraction)
