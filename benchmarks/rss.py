"""Resident memory that tracing adds per live traced block.

Runs in a fresh child process per tracer: start the tracer, allocate many
small objects and keep them alive, and read the process's resident set size
(RSS, from /proc/self/statm) before and after.  The parent subtracts the same
run without tracing and divides by the number of blocks the objects added,
counted from the tracer's own traces (``len(_get_traces())`` delta).  This is
what the operating system charges, not the tracer's estimate of itself.
"""

import gc
import os

import configs


class Node:
    """A small object: on 3.11 and 3.12 an instance and its values array are
    two blocks; on 3.13 the values live inside the instance."""

    def __init__(self, a, b):
        self.a = a
        self.b = b


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(config, objects):
    stop = configs.start(config)
    blocks_before = configs.traced_blocks(config)
    gc.collect()
    gc.disable()
    rss_before = resident_bytes()

    kept = [Node(None, None) for _ in range(objects)]

    rss_after = resident_bytes()
    blocks_after = configs.traced_blocks(config)
    extra = stop()
    del kept
    result = {"rss_delta_bytes": rss_after - rss_before, "objects": objects}
    if blocks_before is not None:
        result["blocks"] = blocks_after - blocks_before
    result.update(extra)
    return result
