"""Taking heapscope's own part out of a snapshot taken by ``heapscope run``.

The program runs inside our command line, so two things in the snapshot are
ours rather than the program's:

- blocks that heapscope's command line allocated itself (most recent frame
  in ``heapscope/cli/``): left out;
- with ``-n`` above 1, the outermost frames of the program's tracebacks:
  runpy, ``heapscope/__main__.py`` or the ``heapscope`` script, and the
  command line's functions that call the program. They are cut off, so a
  traceback starts at the program's first frame, as under ``python -X
  tracemalloc``. total_nframe loses them too when they were all recorded.
"""

import os
import runpy

import heapscope
from heapscope._snapshot import _snapshot_of_raw

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CLI_FILES = os.path.join(_PACKAGE, 'cli', '*')
_RUNPY_FILES = (runpy.__file__, '<frozen runpy>')


def without_ours(snapshot, entry_file=None):
    """The snapshot without our blocks and our outer frames.

    entry_file: the file of the script that started us (the ``heapscope``
    console script), if any."""
    snapshot = snapshot.filter_traces([heapscope.Filter(False, _CLI_FILES)])
    # Our frames can only be below the program's when a traceback holds
    # more than one frame and one of them is ours: usually none (-n 1), and
    # then nothing costs more than this check, done in C++.
    marked = snapshot.filter_traces([heapscope.Filter(True, _CLI_FILES, all_frames=True)])
    if not len(marked.traces):
        return snapshot
    return _cut_outer_frames(snapshot, _outer_files(entry_file))


def native_plan(entry_file=None):
    """(directory, outer files) for the native equivalent of without_ours
    (src/core/snapshot/own_frames.h), used when a signal's snapshot is
    written without Python."""
    return os.path.dirname(_CLI_FILES), sorted(_outer_files(entry_file))


def _outer_files(entry_file):
    outer_files = set(_RUNPY_FILES)
    outer_files.add(os.path.join(_PACKAGE, '__main__.py'))
    if entry_file:
        outer_files.add(entry_file)
    return outer_files


def _is_ours(filename, outer_files):
    return filename in outer_files or os.path.dirname(filename) == os.path.dirname(_CLI_FILES)


def _cut_outer_frames(snapshot, outer_files):
    cut = {}  # raw frames (most recent first) -> (kept frames, frames dropped)
    traces = []
    for domain, size, frames, total_nframe in snapshot.traces._traces:
        kept = cut.get(frames)
        if kept is None:
            end = len(frames)
            while end > 1 and _is_ours(frames[end - 1][0], outer_files):
                end -= 1
            kept = cut[frames] = (frames[:end], len(frames) - end)
        traces.append((domain, size, kept[0], total_nframe - kept[1]))
    # a sampled snapshot must stay one: its statistics are weighted
    return _snapshot_of_raw(traces, snapshot.traceback_limit, snapshot.sample_interval)
