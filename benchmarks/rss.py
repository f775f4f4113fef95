"""Resident memory that tracing adds per live traced block.

Runs in a fresh child process per tracer: start the tracer, allocate many
blocks and keep them alive, and read the process's resident set size (RSS,
from /proc/self/statm) before and after.  The parent subtracts the same run
without tracing and divides by the number of blocks the allocations added,
counted from the tracer's own traces (``len(_get_traces())`` delta).  This is
what the operating system charges, not the tracer's estimate of itself.

Two workloads:

- "small": ``objects`` small instances (one or two blocks each), the cost
  per block of exact tracing.
- "sparse": ``objects`` blocks of 1 MiB made with ``bytes(1 << 20)``, for
  sampled tracing.  A sampled tracer keeps about one block per sample
  interval (512 KiB) allocated, so a million small objects leave a few
  hundred sampled blocks and what they cost is lost in the RSS noise; 20,000
  blocks of 1 MiB leave thousands.  ``bytes(n)`` is calloc'd and glibc serves
  a block this large with a fresh mmap that is zero already and never
  written, so each block costs the program one page of RSS (its malloc
  header): the untraced delta is small and the same from run to run, and
  the tracer's few bytes per sampled block stand out.  The 20 GiB this
  reserves are virtual only; the kernel's default overcommit heuristic
  (vm.overcommit_memory=0) grants them.
"""

import gc
import os

import configs

SPARSE_BLOCK = 1 << 20


class Node:
    """A small object: on 3.11 and 3.12 an instance and its values array are
    two blocks; on 3.13 the values live inside the instance."""

    def __init__(self, a, b):
        self.a = a
        self.b = b


# Each workload fills a list made before the first RSS reading: a list that
# grew while the tracer allocated would be moved by realloc around the
# tracer's buffers, and the holes it left would be charged to the tracer
# (seen: 0.5-11.8 B per sampled block from run to run; 6.9-10.4 B with the
# list made first).
def small(kept):
    for i in range(len(kept)):
        kept[i] = Node(None, None)


def sparse(kept):
    for i in range(len(kept)):
        kept[i] = bytes(SPARSE_BLOCK)


WORKLOADS = {"small": small, "sparse": sparse}


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _tracer_self_bytes(config):
    """The tracer's own count of the memory it holds (get_tracemalloc_memory),
    a cross-check of the RSS figure: malloc may serve the tracer from memory
    the process had already freed, which RSS does not see."""
    if config.tracer in ("tracemalloc", "heapscope"):
        return configs.import_tracer(config).get_tracemalloc_memory()
    return None


def measure(config, objects, workload="small"):
    allocate = WORKLOADS[workload]
    stop = configs.start(config)
    blocks_before = configs.traced_blocks(config)
    gc.collect()
    gc.disable()
    kept = [None] * objects
    self_before = _tracer_self_bytes(config)
    rss_before = resident_bytes()

    allocate(kept)

    rss_after = resident_bytes()
    self_after = _tracer_self_bytes(config)
    blocks_after = configs.traced_blocks(config)
    extra = stop()
    del kept
    result = {"rss_delta_bytes": rss_after - rss_before, "objects": objects,
              "workload": workload}
    if blocks_before is not None:
        result["blocks"] = blocks_after - blocks_before
    if self_before is not None:
        result["tracer_self_delta_bytes"] = self_after - self_before
    result.update(extra)
    return result
