"""Snapshot and its statistics.

The analysis runs in C++ (src/core/snapshot) whenever the traces fit its
model: a snapshot from take_snapshot() always does, a list of CPython's raw
tuples is converted once. The pure-Python code here is the reference it is
checked against, element for element, and the fallback for data the C++ side
declines (traces that are not exactly CPython's tuples, filters it does not
know): it must give what the standard module gives.  The module also
re-exports the frame and filter classes so one import reaches the whole API.
"""

import copyreg
import io
import os.path
import pickle
import sys
import weakref
from collections.abc import Iterable

from ._filters import BaseFilter, DomainFilter, Filter, _normalize_filename
from ._frames import Frame, Trace, Traceback, _format_size, _RawTraces, _Traces

try:
    from . import _heapscope as _native
except ImportError:  # the classes work without the compiled core, in Python
    _native = None

__all__ = [
    'BaseFilter', 'DomainFilter', 'Filter', 'Frame', 'Snapshot', 'Statistic',
    'StatisticDiff', 'Trace', 'Traceback',
]


class Statistic:
    """Size and count of the blocks allocated at one traceback.

    From a sampled snapshot, ``size`` and ``count`` are unbiased estimates
    and ``size_ci`` / ``count_ci`` their 95 % confidence intervals as
    ``(low, high)``; both are None for an exact snapshot.
    """

    __module__ = 'heapscope'
    # _intervals: None, or (size_ci, count_ci) of a sampled snapshot
    __slots__ = ('traceback', 'size', 'count', '_intervals')

    def __init__(self, traceback, size, count):
        self.traceback = traceback
        self.size = size
        self.count = count

    @classmethod
    def _sampled(cls, traceback, size, count, size_ci=None, count_ci=None):
        # The slot stays unset for exact statistics, so they pickle exactly
        # as CPython's do.
        stat = cls(traceback, size, count)
        if size_ci is not None:
            stat._intervals = (size_ci, count_ci)
        return stat

    # Properties over one optional slot: a Statistic unpickled from CPython's
    # module (three slots) still answers None.
    def _interval(self, index):
        intervals = getattr(self, '_intervals', None)
        return intervals[index] if intervals else None

    size_ci = property(lambda self: self._interval(0),
                       doc='95 % interval of size (sampled snapshots), else None.')
    count_ci = property(lambda self: self._interval(1),
                        doc='95 % interval of count (sampled snapshots), else None.')

    def __hash__(self):
        return hash((self.traceback, self.size, self.count))

    def __eq__(self, other):
        if not isinstance(other, Statistic):
            return NotImplemented
        return ((self.traceback, self.size, self.count)
                == (other.traceback, other.size, other.count))

    def __str__(self):
        text = '%s: size=%s%s, count=%i%s' % (
            self.traceback, _format_size(self.size, False), _size_interval(self.size_ci),
            self.count, _count_interval(self.count_ci))
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


# How sampled statistics show their 95 % intervals in str(): after the value,
# in brackets, so the standard module's part of the line is unchanged.
def _size_interval(interval, sign=False):
    if interval is None:
        return ''
    return ' [%s..%s]' % (_format_size(interval[0], sign), _format_size(interval[1], sign))


def _count_interval(interval, sign=False):
    if interval is None:
        return ''
    return (' [%+i..%+i]' if sign else ' [%i..%i]') % interval


class StatisticDiff:
    """A Statistic in a new snapshot next to its change from an old one."""

    __module__ = 'heapscope'
    # _intervals: None, or (size_ci, count_ci, size_diff_ci, count_diff_ci)
    # when both snapshots are sampled
    __slots__ = ('traceback', 'size', 'size_diff', 'count', 'count_diff', '_intervals')

    def __init__(self, traceback, size, size_diff, count, count_diff):
        self.traceback = traceback
        self.size = size
        self.size_diff = size_diff
        self.count = count
        self.count_diff = count_diff

    @classmethod
    def _sampled(cls, traceback, size, size_diff, count, count_diff,
                 size_ci=None, count_ci=None, size_diff_ci=None, count_diff_ci=None):
        stat = cls(traceback, size, size_diff, count, count_diff)
        if size_ci is not None:
            stat._intervals = (size_ci, count_ci, size_diff_ci, count_diff_ci)
        return stat

    def _interval(self, index):
        intervals = getattr(self, '_intervals', None)
        return intervals[index] if intervals else None

    size_ci = property(lambda self: self._interval(0),
                       doc='95 % interval of size (sampled snapshots), else None.')
    count_ci = property(lambda self: self._interval(1),
                        doc='95 % interval of count (sampled snapshots), else None.')
    size_diff_ci = property(lambda self: self._interval(2),
                            doc='95 % interval of size_diff (sampled snapshots), else None.')
    count_diff_ci = property(lambda self: self._interval(3),
                             doc='95 % interval of count_diff (sampled snapshots), else None.')

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
        text = '%s: size=%s (%s%s), count=%i (%+i%s)' % (
            self.traceback,
            _format_size(self.size, False), _format_size(self.size_diff, True),
            _size_interval(self.size_diff_ci, True),
            self.count, self.count_diff, _count_interval(self.count_diff_ci, True))
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


# id(_Traces) -> (its raw traces, the trace objects they held when
# converted, the C++ snapshot or None). Kept outside the object: _Traces must
# keep CPython's attributes and pickle state. An entry goes when its _Traces
# is collected.
#
# A list of raw traces can be changed in place (an item replaced, the list
# sorted, cut or extended): the entry is used only while the list still
# holds the very same trace objects in the same order, checked in C++ by
# identity. The copy keeps those objects alive, so an identical address
# always means the same (immutable) trace tuple.
_CORES = {}


def _core_of(traces):
    """The C++ snapshot behind a _Traces, or None to use the reference code."""
    raw = getattr(traces, '_traces', None)
    if type(raw) is _RawTraces:
        return raw._core
    if _native is None or type(raw) not in (list, tuple):
        return None
    key = id(traces)
    cached = _CORES.get(key)
    if cached is not None and cached[0] is raw and _native._same_items(cached[1], raw):
        return cached[2]
    # A tuple cannot change: it is its own record of what was converted.
    converted = raw if type(raw) is tuple else list(raw)
    core = _native._core_from_raw(converted)
    if cached is None:
        weakref.finalize(traces, _CORES.pop, key, None)
    _CORES[key] = (raw, converted, core)
    return core


def _snapshot_on(core, traceback_limit):
    return Snapshot(_RawTraces(core), traceback_limit)


def _snapshot_of_raw(traces, traceback_limit, sample_interval):
    """A Snapshot of raw trace tuples taken from a snapshot sampled at
    sample_interval (0: exact); a sample stays a sample."""
    if not sample_interval:
        return Snapshot(traces, traceback_limit)
    core = _native._core_from_raw(traces, sample_interval)
    if core is None:
        raise ValueError('heapscope cannot rebuild a sampled snapshot from these traces')
    return _snapshot_on(core, traceback_limit)


def _group_args(key_type, cumulative):
    """Validate statistics' arguments as the reference does; return the
    canonical key type and cumulative as a bool."""
    # A tuple, not a set: an unhashable key_type must still give ValueError
    if key_type not in _KEY_TYPES:
        raise ValueError('unknown key_type: %r' % (key_type,))
    if cumulative and key_type not in ('lineno', 'filename'):
        raise ValueError('cumulative mode cannot by used '
                         'with key type %r' % key_type)
    return _KEY_TYPES[_KEY_TYPES.index(key_type)], bool(cumulative)


# Values a trace's int lineno or domain can never equal (a type whose ==
# with an int is always False); other types could define __eq__, and send
# filtering to the reference code.
_NEVER_EQUAL_TO_INT = (type(None), str, bytes, bytearray, tuple, list, dict,
                       set, frozenset, complex)


def _int_state(value, low, high):
    """(state, value) for an equality test against ints in [low, high):
    state 1 compares with value, 2 never matches; None when unknown."""
    if type(value) is float:
        if not value.is_integer():
            return 2, 0
        value = int(value)
    if type(value) in (int, bool):
        value = int(value)
        return (1, value) if low <= value < high else (2, 0)
    if type(value) in _NEVER_EQUAL_TO_INT:
        return 2, 0
    return None


_POSIX_NORMCASE = os.path.normcase('A.b') == 'A.b'
_PYTHON39_FNMATCH = sys.version_info < (3, 10)


def _filter_spec(f):
    """A filter as the C++ engine takes it, or None when only the reference
    code can apply it (a subclass, an unusual attribute value...)."""
    if type(f) is DomainFilter:
        domain = _int_state(f.domain, 0, 2 ** 32)
        if domain is None:
            return None
        return (True, bool(f.inclusive), '', 0, 0, False,
                domain[0], domain[1], _PYTHON39_FNMATCH)
    if type(f) is not Filter or not _POSIX_NORMCASE:
        return None
    pattern = f._filename_pattern
    if type(pattern) is not str:
        return None
    lineno = (0, 0) if f.lineno is None else _int_state(f.lineno, -2 ** 63, 2 ** 63)
    domain = (0, 0) if f.domain is None else _int_state(f.domain, 0, 2 ** 32)
    if lineno is None or domain is None:
        return None
    return (False, bool(f.inclusive), pattern, lineno[0], lineno[1],
            bool(f.all_frames), domain[0], domain[1], _PYTHON39_FNMATCH)


class Snapshot:
    """The traces of the memory blocks live at one moment."""

    __module__ = 'heapscope'

    def __init__(self, traces, traceback_limit):
        # traces: the raw trace tuples, kept as given (usually a list)
        self.traces = _Traces(traces)
        self.traceback_limit = traceback_limit

    @property
    def sample_interval(self):
        """0 for an exact snapshot (every block traced); for a sampled one,
        the mean bytes between samples, and statistics are estimates."""
        raw = getattr(getattr(self, 'traces', None), '_traces', None)
        return raw._core.sample_interval if type(raw) is _RawTraces else 0

    def __reduce_ex__(self, protocol):
        if self.sample_interval:
            # A pickle keeps the traces as a plain list, which would turn the
            # sample into what looks like an exact snapshot.
            raise TypeError('a sampled snapshot cannot be pickled; '
                            'Snapshot.dump() writes it with its sampling interval')
        return super().__reduce_ex__(protocol)

    def dump(self, filename):
        """Write the snapshot to a file; Snapshot.load() reads it back.

        The file is heapscope's compact binary format (docs/snapshot-format.md).
        A snapshot carrying more than its traces and traceback_limit (extra
        attributes, a subclass, data only the Python code handles) is
        pickled instead, as CPython does, so that nothing is lost.
        """
        data = _encode(self)
        with open(filename, 'wb') as fp:
            if data is not None:
                fp.write(data)
            else:
                pickle.dump(self, fp, pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def load(filename):
        """Read a snapshot written by dump(), ours or CPython's tracemalloc.

        heapscope's format is validated entirely before anything is built.
        A pickle (CPython's format) is read by an unpickler that can only
        reference the snapshot classes, so loading never runs code from the
        file. Any problem raises pickle.UnpicklingError naming it.
        """
        with open(filename, 'rb') as fp:
            # The first bytes tell whether the file can be either format:
            # anything else is refused before the rest is read (a device
            # such as /dev/zero would never end).
            data = fp.read(len(_FILE_MAGIC))
            if not data:
                raise SnapshotFileError('cannot load a snapshot from %s: the file is empty'
                                        % (filename,))
            if not _may_be_snapshot(data):
                raise SnapshotFileError(
                    'cannot load a snapshot from %s: the file is neither a heapscope snapshot '
                    'nor a tracemalloc pickle (it starts with %r)' % (filename, data))
            data += fp.read()
        # The magic, or a file too short to hold it: the format's reader
        # names what is wrong.
        if data.startswith(_FILE_MAGIC) or _FILE_MAGIC.startswith(data):
            if _native is None:
                raise SnapshotFileError('cannot load a snapshot from %s: reading '
                                        "heapscope's format needs the compiled core"
                                        % (filename,))
            try:
                core, traceback_limit = _native._core_load(data)
            except ValueError as exc:
                raise SnapshotFileError('cannot load a snapshot from %s: %s'
                                        % (filename, exc)) from None
            return _snapshot_on(core, traceback_limit)
        # Python's C unpickler allocates what sizes in the stream announce:
        # check them first, or fall back to the (slower) Python unpickler.
        unpickler = _SnapshotUnpickler if _native is not None else _PySnapshotUnpickler
        problem = _native._pickle_bounds_problem(data) if _native is not None else ''
        if problem:
            raise SnapshotFileError('cannot load a snapshot from %s: %s'
                                    % (filename, problem))
        try:
            snapshot = unpickler(io.BytesIO(data)).load()
        except Exception as exc:
            # Truncated or corrupt pickles fail in many ways (EOFError,
            # ValueError, KeyError...); report them all as one kind.
            raise SnapshotFileError(
                'cannot load a snapshot from %s: not a heapscope snapshot, and '
                'not a readable tracemalloc pickle (%s: %s)'
                % (filename, type(exc).__name__, exc)) from exc
        if (not isinstance(snapshot, Snapshot)
                or not isinstance(getattr(snapshot, 'traces', None), _Traces)):
            raise SnapshotFileError(
                '%s does not contain a snapshot (found %s)'
                % (filename, type(snapshot).__name__))
        problem = _pickled_snapshot_problem(snapshot)
        if problem:
            raise SnapshotFileError('cannot load a snapshot from %s: %s' % (filename, problem))
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
            if type(self.traces._traces) is _RawTraces:
                # frozen: the copy can share the C++ snapshot
                return _snapshot_on(self.traces._traces._core, self.traceback_limit)
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
        specs = [_filter_spec(f) for f in include_filters + exclude_filters]
        core = _core_of(self.traces) if None not in specs else None
        if core is not None:
            kept = core.filter(specs)
            if kept is not None:
                return _snapshot_on(kept, self.traceback_limit)
        kept = [trace for trace in self.traces._traces
                if self._filter_trace(include_filters, exclude_filters, trace)]
        return _snapshot_of_raw(kept, self.traceback_limit, self.sample_interval)

    def _group_by(self, key_type, cumulative):
        """Return {Traceback: Statistic} for a key type (reference code)."""
        keys_of = _GROUP_KEYS[_group_args(key_type, cumulative)]

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
        key_type, cumulative = _group_args(key_type, cumulative)
        core = _core_of(self.traces)
        rows = core.statistics(key_type, cumulative) if core is not None else None
        if rows is not None:
            if rows and len(rows[0]) > 3:  # sampled: with intervals
                return [Statistic._sampled(Traceback(frames), *values) for frames, *values in rows]
            return [Statistic(Traceback(frames), size, count) for frames, size, count in rows]
        _refuse_unweighted(self)
        stats = list(self._group_by(key_type, cumulative).values())
        stats.sort(reverse=True, key=Statistic._sort_key)
        return stats

    def compare_to(self, old_snapshot, key_type, cumulative=False):
        """Return StatisticDiffs against old_snapshot, biggest change first."""
        key_type, cumulative = _group_args(key_type, cumulative)
        if isinstance(old_snapshot, Snapshot):
            _check_same_kind(self, old_snapshot)
            core = _core_of(self.traces)
            old_core = _core_of(old_snapshot.traces) if core is not None else None
            rows = (core.compare(old_core, key_type, cumulative)
                    if old_core is not None else None)
            if rows is not None:
                if rows and len(rows[0]) > 5:  # sampled: with intervals
                    return [StatisticDiff._sampled(Traceback(frames), *values)
                            for frames, *values in rows]
                return [StatisticDiff(Traceback(frames), size, size_diff, count, count_diff)
                        for frames, size, size_diff, count, count_diff in rows]
            _refuse_unweighted(self)
        new_group = self._group_by(key_type, cumulative)
        old_group = old_snapshot._group_by(key_type, cumulative)
        diffs = _compare_grouped_stats(old_group, new_group)
        diffs.sort(reverse=True, key=StatisticDiff._sort_key)
        return diffs


def _check_same_kind(new, old):
    """compare_to between a sampled and an exact snapshot would put an
    estimate beside a count: refuse it, saying why."""
    new_interval, old_interval = new.sample_interval, old.sample_interval
    if bool(new_interval) != bool(old_interval):
        raise ValueError(_mixed_kinds_message(new_interval, old_interval))


def _snapshot_kind(interval):
    return 'a sampled (every %d bytes)' % interval if interval else 'an exact'


def _mixed_kinds_message(new_interval, old_interval):
    """Why two snapshots of different kinds cannot be compared (the
    command line says the same)."""
    return ('cannot compare %s snapshot with %s one: take both snapshots in the '
            'same mode' % (_snapshot_kind(new_interval), _snapshot_kind(old_interval)))


def _refuse_unweighted(snapshot):
    # The reference code sums sizes as they are; for a sample that would be
    # a silent wrong answer.
    if snapshot.sample_interval:
        raise ValueError('heapscope cannot analyse this sampled snapshot: its traces '
                         'do not fit the C++ engine (sizes beyond 64 bits?)')


class SnapshotFileError(pickle.UnpicklingError):
    """A file Snapshot.load() cannot read: empty, truncated, corrupted,
    foreign, or from a newer heapscope. The message names the problem."""

    __module__ = 'heapscope'


# The first bytes of heapscope's snapshot format (src/core/snapshot/file_format.h)
_FILE_MAGIC = b'\x89HSNAP\r\n'


# The opcodes a pickle of a Snapshot can start with: PROTO (protocols 2 and
# up), GLOBAL (copyreg._reconstructor, protocols 0 and 1) and MARK (INST,
# OBJ). Any other first byte cannot begin such a pickle.
_PICKLE_STARTS = (b'\x80', b'c', b'(')


def _may_be_snapshot(head):
    """Whether a file starting with these bytes may be heapscope's format or
    a pickle of a snapshot."""
    if head.startswith(_FILE_MAGIC) or _FILE_MAGIC.startswith(head):
        return True
    return head[:1] in _PICKLE_STARTS


def _encode(snapshot):
    """The snapshot in heapscope's format, or None when it must be pickled."""
    if _native is None or type(snapshot) is not Snapshot:
        return None
    if set(vars(snapshot)) != {'traces', 'traceback_limit'}:
        return None
    traces, limit = snapshot.traces, snapshot.traceback_limit
    if type(traces) is not _Traces or set(vars(traces)) != {'_traces'}:
        return None
    if type(limit) is not int or not -2 ** 63 <= limit < 2 ** 63:
        return None
    core = _core_of(traces)
    if core is None:
        return None
    return core.dump(limit)


def _is_raw_trace(trace):
    """Whether trace is a tuple the tracer makes (see _RawTraces)."""
    if type(trace) is not tuple or len(trace) != 4:
        return False
    domain, size, frames, total_nframe = trace
    if (type(domain) is not int or type(size) is not int or type(total_nframe) is not int
            or type(frames) is not tuple or not frames):
        return False
    return all(type(frame) is tuple and len(frame) == 2 and type(frame[0]) is str
               and type(frame[1]) is int for frame in frames)


def _pickled_snapshot_problem(snapshot):
    """What is wrong with an unpickled snapshot's content, or None."""
    limit = getattr(snapshot, 'traceback_limit', None)
    if type(limit) is not int:
        return 'traceback_limit is %s, not an int' % type(limit).__name__
    raw = getattr(snapshot.traces, '_traces', None)
    if type(raw) not in (list, tuple):
        return 'the traces are %s, not a list' % type(raw).__name__
    if _native is not None and _core_of(snapshot.traces) is not None:
        return None  # converted: every trace is well formed
    for trace in raw:
        if not _is_raw_trace(trace):
            return ('a trace is not a (domain, size, frames, total_nframe) tuple: %.200s'
                    % _safe_repr(trace))
    return None


def _safe_repr(obj):
    # A hostile file can hold half-built objects of the admitted classes,
    # whose repr itself fails: the message must still come out.
    try:
        return repr(obj)
    except Exception:
        return '<%s object>' % type(obj).__name__


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
    # take_snapshot()'s traces pickle as list([...]): harmless
    allowed['builtins', 'list'] = list
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


class _PySnapshotUnpickler(pickle._Unpickler):
    """The pure-Python unpickler (its memo is a dict and it reads before it
    allocates), for when the compiled core is missing."""

    _allowed = _SnapshotUnpickler._allowed
    find_class = _SnapshotUnpickler.find_class
