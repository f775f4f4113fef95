"""Frame, Traceback, Trace and the lazy trace sequence of a snapshot.

Every class here wraps CPython's raw tuples unchanged (a frame is
``(filename, lineno)``, a trace is ``(domain, size, frames, total_nframe)``
with frames most recent first) and builds Python objects only when asked.
Keeping the raw tuples, under the attribute names CPython uses, is what lets
hashes, equality and pickles agree with the standard ``tracemalloc``.
"""

import linecache
import operator
import sys
from collections.abc import Sequence
from functools import total_ordering

_UNITS = ('B', 'KiB', 'MiB', 'GiB', 'TiB')


def _format_size(size, sign):
    """Render a byte count the way tracemalloc prints it ('66 B', '1.5 KiB')."""
    spec = '%+.*f %s' if sign else '%.*f %s'
    for unit in _UNITS:
        # Under 100 of a scaled unit, one decimal keeps three significant
        # digits; bytes never get decimals.
        if unit != 'B' and abs(size) < 100:
            return spec % (1, size, unit)
        # Up to 4-5 whole digits before stepping to the next unit; TiB is the
        # last unit however large the number.
        if abs(size) < 10 * 1024 or unit == _UNITS[-1]:
            return spec % (0, size, unit)
        size /= 1024


def _linecache():
    # Resolved on every call rather than bound at import time, so that
    # mock.patch('heapscope.linecache', ...) - or 'tracemalloc.linecache' once
    # heapscope stands in for tracemalloc - is seen by Traceback.format.
    package = sys.modules.get(__package__)
    return getattr(package, 'linecache', linecache)


@total_ordering
class Frame:
    """A (filename, lineno) location in a traceback."""

    __module__ = 'heapscope'
    __slots__ = ('_frame',)

    def __init__(self, frame):
        self._frame = frame

    @property
    def filename(self):
        return self._frame[0]

    @property
    def lineno(self):
        return self._frame[1]

    def __eq__(self, other):
        if not isinstance(other, Frame):
            return NotImplemented
        return self._frame == other._frame

    def __lt__(self, other):
        if not isinstance(other, Frame):
            return NotImplemented
        return self._frame < other._frame

    def __hash__(self):
        return hash(self._frame)

    def __str__(self):
        return '%s:%s' % (self.filename, self.lineno)

    def __repr__(self):
        return '<Frame filename=%r lineno=%r>' % (self.filename, self.lineno)


@total_ordering
class Traceback(Sequence):
    """The frames of an allocation, indexed from the oldest to the most recent.

    The raw frames arrive most recent first (the tracer's order) and are
    stored reversed, once, so that indexing, comparison and hashing all work
    on the public order.
    """

    __module__ = 'heapscope'
    __slots__ = ('_frames', '_total_nframe')

    def __init__(self, frames, total_nframe=None):
        self._frames = tuple(reversed(frames))
        # None means "unknown", as in the tracebacks statistics build
        self._total_nframe = total_nframe

    @property
    def total_nframe(self):
        return self._total_nframe

    def __len__(self):
        return len(self._frames)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(Frame(raw) for raw in self._frames[index])
        return Frame(self._frames[index])

    def __contains__(self, frame):
        return frame._frame in self._frames

    def __hash__(self):
        return hash(self._frames)

    def __eq__(self, other):
        if not isinstance(other, Traceback):
            return NotImplemented
        return self._frames == other._frames

    def __lt__(self, other):
        if not isinstance(other, Traceback):
            return NotImplemented
        return self._frames < other._frames

    def __str__(self):
        # Names the oldest frame only (IndexError when there is none)
        return str(self[0])

    def __repr__(self):
        text = '<Traceback %r' % (tuple(self),)
        if self._total_nframe is not None:
            text += ' total_nframe=%s' % (self._total_nframe,)
        return text + '>'

    def format(self, limit=None, most_recent_first=False):
        """Return the traceback as source-listing lines, without newlines."""
        frames = self
        if limit is not None:
            # A positive limit keeps that many most recent frames.  Otherwise
            # CPython slices [:limit]: 0 keeps nothing and -n drops the n most
            # recent frames (not "the n oldest", as its docs say); we follow it.
            frames = self[-limit:] if limit > 0 else self[:limit]
        if most_recent_first:
            frames = reversed(frames)
        getline = _linecache().getline
        lines = []
        for frame in frames:
            lines.append('  File "%s", line %s' % (frame.filename, frame.lineno))
            source = getline(frame.filename, frame.lineno).strip()
            if source:
                lines.append('    %s' % source)
        return lines


class Trace:
    """One traced memory block: its domain, size and traceback."""

    __module__ = 'heapscope'
    __slots__ = ('_trace',)

    def __init__(self, trace):
        self._trace = trace

    @property
    def domain(self):
        return self._trace[0]

    @property
    def size(self):
        return self._trace[1]

    @property
    def traceback(self):
        # frames and, when present, total_nframe
        return Traceback(*self._trace[2:])

    def __eq__(self, other):
        if not isinstance(other, Trace):
            return NotImplemented
        return self._trace == other._trace

    def __hash__(self):
        return hash(self._trace)

    def __str__(self):
        return '%s: %s' % (self.traceback, _format_size(self.size, False))

    def __repr__(self):
        # CPython prints the size humanised here, and a comma before traceback
        return '<Trace domain=%s size=%s, traceback=%r>' % (
            self.domain, _format_size(self.size, False), self.traceback)


class _Traces(Sequence):
    """Snapshot.traces: a sequence of Trace objects made on access.

    Deliberately without __slots__: CPython pickles its state as the
    instance dict {'_traces': [...]}, and loading such pickles needs one.
    """

    __module__ = 'heapscope'

    def __init__(self, traces):
        self._traces = traces

    def __len__(self):
        return len(self._traces)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(Trace(raw) for raw in self._traces[index])
        return Trace(self._traces[index])

    def __contains__(self, trace):
        return trace._trace in self._traces

    # Defining __eq__ alone leaves the class unhashable, as in CPython.
    def __eq__(self, other):
        if not isinstance(other, _Traces):
            return NotImplemented
        return self._traces == other._traces

    def __repr__(self):
        return '<Traces len=%s>' % len(self)


class _RawTraces(Sequence):
    """What ``_get_traces()`` returns: the list of raw trace tuples CPython's
    ``_get_traces()`` returns, kept in C++ and turned into tuples on access.

    It compares equal to a list of the same tuples, indexes and slices like
    one (a slice gives a list) and pickles as a list. A Snapshot built on it
    analyses its traces in C++ without making a tuple per trace.
    """

    __slots__ = ('_core',)

    def __init__(self, core):
        self._core = core  # a _heapscope._SnapshotCore

    def __len__(self):
        return len(self._core)

    def __getitem__(self, index):
        if isinstance(index, slice):
            picked = range(*index.indices(len(self._core)))
            return self._core.slice(picked.start, len(picked), picked.step)
        try:
            index = operator.index(index)
        except TypeError:
            raise TypeError('list indices must be integers or slices, not %s'
                            % type(index).__name__) from None
        size = len(self._core)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError('list index out of range')
        return self._core.trace(index)

    def __iter__(self):
        core = self._core
        size = len(core)
        for start in range(0, size, 4096):
            yield from core.slice(start, min(4096, size - start), 1)

    def __eq__(self, other):
        if isinstance(other, _RawTraces):
            return self._core.equals(other._core)
        if isinstance(other, list):
            return len(other) == len(self._core) and list(self) == other
        return NotImplemented

    __hash__ = None  # unhashable, like a list

    def __repr__(self):
        return repr(list(self))

    def copy(self):
        return list(self)

    def __reduce__(self):
        return (list, (list(self),))
