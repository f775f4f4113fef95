"""The tracer configurations a workload is timed under.

A configuration names a tracer and its traceback depth.  ``start`` is called
in the child process, after the workload's setup and before the timed body,
and returns a function that stops the tracer and returns what is worth
reporting about the run (how much the tracer saw, the size of memray's file).
"""

import os
import tempfile
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Config:
    key: str                # on the command line and in the results
    label: str              # in the tables and the plot
    tracer: str             # "none", "tracemalloc", "memray" or "heapscope"
    nframe: Optional[int]   # traceback depth, None where it does not apply
    sample_interval: Optional[int] = None  # heapscope's sampled mode (bytes)


CONFIGS = [
    Config("none", "no tracing", "none", None),
    Config("tracemalloc-1", "tracemalloc nframe=1", "tracemalloc", 1),
    Config("tracemalloc-25", "tracemalloc nframe=25", "tracemalloc", 25),
    Config("memray", "memray (Python allocators)", "memray", None),
    Config("heapscope-1", "heapscope nframe=1", "heapscope", 1),
    Config("heapscope-25", "heapscope nframe=25", "heapscope", 25),
    Config("heapscope-sampled", "heapscope sampled 512 KiB, nframe=25", "heapscope", 25, 512 * 1024),
]

BY_KEY = {c.key: c for c in CONFIGS}

# Quick mode leaves out the two slowest configurations, which a change to
# heapscope's hot path does not move.
QUICK = ["none", "tracemalloc-1", "heapscope-1", "heapscope-25"]


def import_tracer(config):
    """Import the tracer's module (outside the timed region)."""
    if config.tracer == "none":
        return None
    if config.tracer == "tracemalloc":
        import tracemalloc
        return tracemalloc
    if config.tracer == "heapscope":
        import heapscope
        return heapscope
    if config.tracer == "memray":
        import memray
        return memray
    raise ValueError(f"unknown tracer {config.tracer!r}")


def start(config):
    """Start tracing; return a function that stops it and returns a dict."""
    module = import_tracer(config)
    if module is None:
        return lambda: {}
    if config.tracer == "memray":
        return _start_memray(module)

    # tracemalloc and heapscope share an API.
    if config.sample_interval:
        module.start(config.nframe, sample_interval=config.sample_interval)
    else:
        module.start(config.nframe)
    if not module.is_tracing():
        raise RuntimeError(f"{config.tracer}.start() returned but is_tracing() is False")

    def stop():
        current, peak = module.get_traced_memory()
        module.stop()
        return {"traced_peak_bytes": peak}

    return stop


def _start_memray(memray):
    # memray refuses to overwrite a file: give it a fresh name in a fresh directory.
    directory = tempfile.mkdtemp(prefix="heapscope-bench-memray-")
    path = os.path.join(directory, "capture.bin")
    tracker = memray.Tracker(path, trace_python_allocators=True, native_traces=False)
    tracker.__enter__()

    def stop():
        tracker.__exit__(None, None, None)
        size = os.path.getsize(path)
        os.unlink(path)
        os.rmdir(directory)
        return {"memray_file_bytes": size}

    return stop


def traced_blocks(config):
    """How many blocks the tracer holds now (None if it cannot say)."""
    if config.tracer in ("tracemalloc", "heapscope"):
        return len(import_tracer(config)._get_traces())
    return None
