"""The one view of a snapshot every export format is written from.

A stack is a traceback of ``snapshot.statistics('traceback')`` with its size
and count: for a sampled snapshot these are already the estimates, and the
95 % bounds ride along when the statistic has them.
"""

from .._source import function_scope

# A traceback can come without frames (CPython records '<unknown>' line 0
# when it cannot tell); every format wants at least one frame per stack.
UNKNOWN_FRAME = ('<unknown>', 0)


class Stack:
    __slots__ = ('frames', 'size', 'count', 'size_ci', 'count_ci')

    def __init__(self, frames, size, count, size_ci=None, count_ci=None):
        self.frames = frames      # ((filename, lineno), ...), leaf first
        self.size = size
        self.count = count
        self.size_ci = size_ci    # (low, high) for sampled snapshots, else None
        self.count_ci = count_ci


def stacks(snapshot):
    """The snapshot's Stacks, biggest first."""
    result = []
    for stat in snapshot.statistics('traceback'):
        # A Traceback is indexed oldest first; exports want the leaf first.
        frames = tuple((frame.filename, frame.lineno)
                       for frame in reversed(stat.traceback))
        result.append(Stack(frames or (UNKNOWN_FRAME,), stat.size, stat.count,
                            getattr(stat, 'size_ci', None),
                            getattr(stat, 'count_ci', None)))
    return result


def sample_interval(snapshot):
    """Mean bytes between samples for a sampled snapshot, 0 when exact."""
    return getattr(snapshot, 'sample_interval', 0) or 0


class FrameNames:
    """(filename, lineno) -> (function name, def line), each frame looked up once."""

    def __init__(self):
        self._scopes = {}

    def scope(self, frame):
        scope = self._scopes.get(frame)
        if scope is None:
            scope = self._scopes[frame] = function_scope(*frame)
        return scope

    def name(self, frame):
        return self.scope(frame)[0]
