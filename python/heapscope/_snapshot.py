"""Snapshot and its statistics, in pure Python.

This is the reference implementation of the analysis side of the
tracemalloc API: it takes CPython's raw trace tuples and must give, element
for element, what the standard module gives.  It also re-exports the frame
and filter classes so that one import reaches the whole snapshot API.
"""

import copyreg
import pickle
from collections.abc import Iterable

from ._filters import BaseFilter, DomainFilter, Filter, _normalize_filename
from ._frames import Frame, Trace, Traceback, _format_size, _Traces

__all__ = [
    'BaseFilter', 'DomainFilter', 'Filter', 'Frame', 'Snapshot', 'Statistic',
    'StatisticDiff', 'Trace', 'Traceback',
]


class Statistic:
    """Size and count of the blocks allocated at one traceback."""

    __module__ = 'heapscope'
    __slots__ = ('traceback', 'size', 'count')

    def __init__(self, traceback, size, count):
        self.traceback = traceback
        self.size = size
        self.count = count

    def __hash__(self):
        return hash((self.traceback, self.size, self.count))

    def __eq__(self, other):
        if not isinstance(other, Statistic):
            return NotImplemented
        return ((self.traceback, self.size, self.count)
                == (other.traceback, other.size, other.count))

    def __str__(self):
        text = '%s: size=%s, count=%i' % (
            self.traceback, _format_size(self.size, False), self.count)
        if self.count:
            text += ', average=%s' % _format_size(self.size / self.count, False)
        return text

    def __repr__(self):
        return '<Statistic traceback=%r size=%i count=%i>' % (
            self.traceback, self.size, self.count)

    def _sort_key(self):
        # Biggest first; the traceback makes the order total, so ties on
        # size and count never depend on dict order.
        return (self.size, self.count, self.traceback)


class StatisticDiff:
    """A Statistic in a new snapshot next to its change from an old one."""

    __module__ = 'heapscope'
    __slots__ = ('traceback', 'size', 'size_diff', 'count', 'count_diff')

    def __init__(self, traceback, size, size_diff, count, count_diff):
        self.traceback = traceback
        self.size = size
        self.size_diff = size_diff
        self.count = count
        self.count_diff = count_diff

    def __hash__(self):
        return hash((self.traceback, self.size, self.size_diff,
                     self.count, self.count_diff))

    def __eq__(self, other):
        if not isinstance(other, StatisticDiff):
            return NotImplemented
        return ((self.traceback, self.size, self.size_diff,
                 self.count, self.count_diff)
                == (other.traceback, other.size, other.size_diff,
                    other.count, other.count_diff))

    def __str__(self):
        text = '%s: size=%s (%s), count=%i (%+i)' % (
            self.traceback,
            _format_size(self.size, False), _format_size(self.size_diff, True),
            self.count, self.count_diff)
        if self.count:
            text += ', average=%s' % _format_size(self.size / self.count, False)
        return text

    def __repr__(self):
        return '<StatisticDiff traceback=%r size=%i (%+i) count=%i (%+i)>' % (
            self.traceback, self.size, self.size_diff,
            self.count, self.count_diff)

    def _sort_key(self):
        # Largest change first, whether growth or shrinkage.
        return (abs(self.size_diff), self.size,
                abs(self.count_diff), self.count, self.traceback)


def _compare_grouped_stats(old_group, new_group):
    """Pair two {Traceback: Statistic} groupings into StatisticDiffs (unsorted)."""
    diffs = []
    for traceback, new in new_group.items():
        old = old_group.get(traceback)
        if old is None:
            diffs.append(StatisticDiff(traceback, new.size, new.size,
                                       new.count, new.count))
        else:
            diffs.append(StatisticDiff(traceback, new.size, new.size - old.size,
                                       new.count, new.count - old.count))
    for traceback, old in old_group.items():
        if traceback not in new_group:
            diffs.append(StatisticDiff(traceback, 0, -old.size, 0, -old.count))
    return diffs


_KEY_TYPES = ('traceback', 'filename', 'lineno')

# For each (key_type, cumulative): the grouping keys one trace counts under,
# computed from its raw frames (most recent first).  A key is itself a raw
# frames tuple, ready to become the statistic's Traceback.  'filename' keys
# use line 0.  Cumulative mode counts a trace once per frame, so a line or
# file that recurs in one stack is counted (and sized) once per occurrence -
# CPython does the same.
_GROUP_KEYS = {
    ('traceback', False): lambda frames: (frames,),
    ('lineno', False): lambda frames: (frames[:1],),
    ('filename', False): lambda frames: (((frames[0][0], 0),),),
    ('lineno', True): lambda frames: [(frame,) for frame in frames],
    ('filename', True): lambda frames: [((frame[0], 0),) for frame in frames],
}


class Snapshot:
    """The traces of the memory blocks live at one moment."""

    __module__ = 'heapscope'

    def __init__(self, traces, traceback_limit):
        # traces: the raw trace tuples, kept as given (usually a list)
        self.traces = _Traces(traces)
        self.traceback_limit = traceback_limit

    def dump(self, filename):
        """Write the snapshot to a file; Snapshot.load() reads it back."""
        with open(filename, 'wb') as fp:
            pickle.dump(self, fp, pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def load(filename):
        """Read a snapshot written by dump(), ours or CPython's tracemalloc.

        Unlike pickle.load, this never runs code named by the file: only the
        snapshot classes can be referenced.
        """
        with open(filename, 'rb') as fp:
            try:
                snapshot = _SnapshotUnpickler(fp).load()
            except Exception as exc:
                # Truncated or corrupt pickles fail in many ways (EOFError,
                # ValueError, KeyError...); report them all as one kind.
                raise pickle.UnpicklingError(
                    'cannot load a snapshot from %s: %s: %s'
                    % (filename, type(exc).__name__, exc)) from exc
        if (not isinstance(snapshot, Snapshot)
                or not isinstance(getattr(snapshot, 'traces', None), _Traces)):
            raise pickle.UnpicklingError(
                '%s does not contain a snapshot (found %s)'
                % (filename, type(snapshot).__name__))
        return snapshot

    def _filter_trace(self, include_filters, exclude_filters, trace):
        if include_filters and not any(f._match(trace)
                                       for f in include_filters):
            return False
        # an exclusive filter's _match() is true for the traces it lets pass
        return all(f._match(trace) for f in exclude_filters)

    def filter_traces(self, filters):
        """Return a new Snapshot keeping the traces that pass the filters.

        A trace passes when it matches at least one inclusive filter (if
        there are any) and none of the exclusive ones.
        """
        if not isinstance(filters, Iterable):
            raise TypeError('filters must be a list of filters, not %s'
                            % type(filters).__name__)
        if not filters:
            # CPython calls .copy() here, which fails on a tuple of traces;
            # list() gives the same list copy and also accepts tuples.
            return Snapshot(list(self.traces._traces), self.traceback_limit)
        include_filters = []
        exclude_filters = []
        for trace_filter in filters:
            if trace_filter.inclusive:
                include_filters.append(trace_filter)
            else:
                exclude_filters.append(trace_filter)
        kept = [trace for trace in self.traces._traces
                if self._filter_trace(include_filters, exclude_filters, trace)]
        return Snapshot(kept, self.traceback_limit)

    def _group_by(self, key_type, cumulative):
        """Return {Traceback: Statistic} for a key type."""
        # A tuple, not a set: an unhashable key_type must still give ValueError
        if key_type not in _KEY_TYPES:
            raise ValueError('unknown key_type: %r' % (key_type,))
        if cumulative and key_type not in ('lineno', 'filename'):
            raise ValueError('cumulative mode cannot by used '
                             'with key type %r' % key_type)
        keys_of = _GROUP_KEYS[key_type, bool(cumulative)]

        # Sum plain [size, count] pairs first; the Traceback and Statistic
        # objects are made once per group rather than looked up per trace.
        totals = {}
        for domain, size, frames, total_nframe in self.traces._traces:
            for key in keys_of(frames):
                total = totals.get(key)
                if total is None:
                    totals[key] = [size, 1]
                else:
                    total[0] += size
                    total[1] += 1

        stats = {}
        for frames, (size, count) in totals.items():
            traceback = Traceback(frames)
            stats[traceback] = Statistic(traceback, size, count)
        return stats

    def statistics(self, key_type, cumulative=False):
        """Group the traces by key_type; return Statistics, biggest first."""
        stats = list(self._group_by(key_type, cumulative).values())
        stats.sort(reverse=True, key=Statistic._sort_key)
        return stats

    def compare_to(self, old_snapshot, key_type, cumulative=False):
        """Return StatisticDiffs against old_snapshot, biggest change first."""
        new_group = self._group_by(key_type, cumulative)
        old_group = old_snapshot._group_by(key_type, cumulative)
        diffs = _compare_grouped_stats(old_group, new_group)
        diffs.sort(reverse=True, key=StatisticDiff._sort_key)
        return diffs


def _loadable_globals():
    """The only (module, name) globals a snapshot file may reference."""
    allowed = {}
    for cls in (Snapshot, _Traces, Trace, Traceback, Frame,
                Statistic, StatisticDiff):
        # Our own pickles name 'heapscope'; CPython's name 'tracemalloc' and
        # are read into our classes, whose state has the same layout.
        allowed['heapscope', cls.__name__] = cls
        allowed['tracemalloc', cls.__name__] = cls
    # Protocols 0 and 1 rebuild plain instances with
    # copyreg._reconstructor(cls, object, None); Python 3 writes the Python 2
    # module names there.  Neither can reach anything beyond the classes above.
    for module in ('copyreg', 'copy_reg'):
        allowed[module, '_reconstructor'] = copyreg._reconstructor
    for module in ('builtins', '__builtin__'):
        allowed[module, 'object'] = object
    return allowed


class _SnapshotUnpickler(pickle.Unpickler):
    _allowed = _loadable_globals()

    def find_class(self, module, name):
        try:
            return self._allowed[module, name]
        except KeyError:
            pass
        raise pickle.UnpicklingError(
            'global %s.%s is not allowed in a snapshot file' % (module, name))
