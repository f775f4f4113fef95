"""The pure-Python snapshot classes behave exactly like CPython's tracemalloc.

Most tests are differential: the same raw traces go to heapscope._snapshot
and to the standard tracemalloc module, and everything observable (repr,
str, hash, order, exceptions and their messages) must agree.  CPython's
module is used here only as the reference.

Run: cd /work/main && PYTHONPATH=python python3 -m pytest tests/test_snapshot_classes.py -q
"""

import importlib
import inspect
import io
import itertools
import linecache
import os
import pickle
import pickletools
import random
import sys
import types
import unittest
import unittest.mock
from pathlib import Path

import pytest

import tracemalloc as cpython

PACKAGE_DIR = Path(__file__).resolve().parent.parent / 'python' / 'heapscope'


def _import_pure_snapshot_module():
    """Import heapscope._snapshot even when the package facade cannot load.

    heapscope/__init__.py needs the compiled core, which may not be built;
    these classes do not, so fall back to a bare package object.
    """
    try:
        return importlib.import_module('heapscope._snapshot')
    except ImportError:
        for name in [n for n in sys.modules if n.split('.')[0] == 'heapscope']:
            del sys.modules[name]
        package = types.ModuleType('heapscope')
        package.__path__ = [str(PACKAGE_DIR)]
        sys.modules['heapscope'] = package
        return importlib.import_module('heapscope._snapshot')


hs = _import_pure_snapshot_module()

assert cpython.Snapshot.__module__ == 'tracemalloc', \
    'tests need the standard tracemalloc as reference, not a replacement'

PUBLIC_CLASSES = ['Frame', 'Traceback', 'Trace', 'Statistic', 'StatisticDiff',
                  'Snapshot', 'BaseFilter', 'Filter', 'DomainFilter']
PRIVATE_CLASSES = ['_Traces']
HELPERS = ['_format_size', '_normalize_filename', '_compare_grouped_stats']
MODULES = {'heapscope': hs, 'cpython': cpython}


@pytest.fixture
def package_exports(monkeypatch):
    """Expose our classes as heapscope.X, as the package facade does.

    Pickle looks classes up by __module__ + name, and the facade may not be
    importable (or may export the compiled classes) while these tests run.
    """
    package = sys.modules['heapscope']
    for name in PUBLIC_CLASSES + PRIVATE_CLASSES:
        monkeypatch.setattr(package, name, getattr(hs, name), raising=False)
    monkeypatch.setattr(package, 'linecache', linecache, raising=False)
    return package


# --------------------------------------------------------------------------
# random raw traces, shared by the differential tests

FILENAMES = ['a.py', 'b.py', 'b.pyc', 'pkg/mod.py', 'pkg/mod.pyc', 'A.py',
             '/abs/path/x.py', '<frozen importlib._bootstrap>', 'c.pyo',
             'x.PYC', '<unknown>']
SIZES = [0, 1, 8, 16, 16, 32, 64, 100, 1023, 1024, 4096, 10240, 102400,
         123456, 5_000_000, 3 * 1024 ** 3]
DOMAINS = [0, 0, 0, 1, 2, 389047]


def random_frames(rng, depth_limit):
    if rng.random() < 0.08:
        return (('<unknown>', 0),)  # what the tracer records without a frame
    frames = []
    for _ in range(rng.randint(1, depth_limit)):
        filename = rng.choice(FILENAMES)
        frames.append((filename, 0 if filename == '<unknown>' else rng.randint(1, 6)))
    if len(frames) > 1 and rng.random() < 0.25:
        frames[-1] = frames[0]  # recursion: one line twice in a stack
    return tuple(frames)


def random_raw_traces(seed, count=300, depth_limit=5):
    rng = random.Random(seed)
    traces = []
    for _ in range(count):
        frames = random_frames(rng, depth_limit)
        # total_nframe counts the frames beyond the traceback limit too
        total_nframe = len(frames) + rng.choice([0, 0, 1, 7, 100])
        traces.append((rng.choice(DOMAINS), rng.choice(SIZES), frames, total_nframe))
    traces += rng.sample(traces, count // 8)  # identical blocks from one line
    rng.shuffle(traces)
    return traces


def perturbed(raw_traces, seed):
    """A later snapshot: some blocks freed, some resized, some new."""
    rng = random.Random(seed)
    kept = [t for t in raw_traces if rng.random() > 0.3]
    resized = [(d, rng.choice(SIZES), f, n) if rng.random() < 0.2 else (d, s, f, n)
               for d, s, f, n in kept]
    return resized + random_raw_traces(seed + 1000, count=60)


def snapshots(raw_traces, limit=5):
    return hs.Snapshot(list(raw_traces), limit), cpython.Snapshot(list(raw_traces), limit)


def describe(obj):
    """What an analysis object shows, independent of the module it is from."""
    return (type(obj).__name__, repr(obj), str(obj), hash(obj))


def outcome(call):
    """The result of call(), or the type and message of what it raised."""
    try:
        result = call()
    except Exception as exc:  # noqa: BLE001 - comparing exceptions is the point
        return ('raised', type(exc).__name__, str(exc))
    return ('returned', repr(result))


SEEDS = [1, 2, 3, 20240611]
KEY_MODES = [('traceback', False), ('lineno', False), ('filename', False),
             ('lineno', True), ('filename', True)]


# --------------------------------------------------------------------------
# the classes' shape


# What heapscope adds to the standard classes, all for sampled snapshots
# (tests/test_sampling.py): the confidence intervals of a Statistic or
# StatisticDiff (None when exact) in one extra slot, and the sampling interval
# of a Snapshot (0 when exact), which must also refuse to be pickled.
EXTENSIONS = {
    'Statistic': ({'size_ci', 'count_ci', '_interval', '_intervals', '_sampled'},
                  ('_intervals',)),
    'StatisticDiff': ({'size_ci', 'count_ci', 'size_diff_ci', 'count_diff_ci', '_interval',
                       '_intervals', '_sampled'}, ('_intervals',)),
    'Snapshot': ({'sample_interval'}, ()),
}


@pytest.mark.parametrize('name', PUBLIC_CLASSES + PRIVATE_CLASSES)
def test_each_class_has_cpythons_attributes_slots_and_hashability(name):
    ours, theirs = getattr(hs, name), getattr(cpython, name)
    assert ours.__module__ == 'heapscope'
    assert ours.__qualname__ == theirs.__qualname__
    added_names, added_slots = EXTENSIONS.get(name, (set(), ()))
    # __slotnames__ is a cache copyreg adds to a class once it has been pickled
    assert ({n for n in dir(ours) if n != '__slotnames__'}
            == {n for n in dir(theirs) if n != '__slotnames__'} | added_names)
    theirs_slots = getattr(theirs, '__slots__', None)
    assert getattr(ours, '__slots__', None) == (
        theirs_slots + added_slots if added_slots else theirs_slots)
    assert (ours.__hash__ is None) == (theirs.__hash__ is None)
    assert [c.__name__ for c in ours.__mro__] == [c.__name__ for c in theirs.__mro__]


@pytest.mark.parametrize('name', PUBLIC_CLASSES + PRIVATE_CLASSES)
def test_each_method_takes_the_same_parameters_as_cpythons(name):
    ours, theirs = getattr(hs, name), getattr(cpython, name)
    for attr, value in vars(theirs).items():
        if callable(value) or isinstance(value, staticmethod):
            assert (inspect.signature(getattr(ours, attr))
                    == inspect.signature(getattr(theirs, attr))), attr


@pytest.mark.parametrize('name', HELPERS)
def test_module_level_helpers_take_the_same_parameters(name):
    assert (inspect.signature(getattr(hs, name))
            == inspect.signature(getattr(cpython, name)))


def test_there_is_no_private_Frame_alias_because_cpython_has_none():
    # test_tracemalloc defines a helper calling tracemalloc._Frame, but never
    # calls it; the name does not exist in any CPython 3.9-3.13.
    assert not hasattr(cpython, '_Frame')
    assert not hasattr(hs, '_Frame')


# --------------------------------------------------------------------------
# Frame, Traceback, Trace and the traces sequence


def all_frames_of(raw_traces):
    return sorted({frame for trace in raw_traces for frame in trace[2]})


def test_frames_print_hash_and_compare_like_cpythons():
    raw = all_frames_of(random_raw_traces(5))
    for a, b in itertools.product(raw[:25], repeat=2):
        ours = hs.Frame(a), hs.Frame(b)
        theirs = cpython.Frame(a), cpython.Frame(b)
        assert describe(ours[0]) == describe(theirs[0])
        for op in ('__eq__', '__ne__', '__lt__', '__le__', '__gt__', '__ge__'):
            assert getattr(ours[0], op)(ours[1]) == getattr(theirs[0], op)(theirs[1])


def test_frames_sort_in_the_same_order_as_cpythons():
    raw = all_frames_of(random_raw_traces(6))
    random.Random(0).shuffle(raw)
    assert ([f._frame for f in sorted(hs.Frame(r) for r in raw)]
            == [f._frame for f in sorted(cpython.Frame(r) for r in raw)])


def test_tracebacks_expose_frames_oldest_first_as_a_sequence():
    for _, _, frames, total in random_raw_traces(7, count=60):
        for args in ((frames,), (frames, total)):
            ours, theirs = hs.Traceback(*args), cpython.Traceback(*args)
            assert describe(ours) == describe(theirs)
            assert ours.total_nframe == theirs.total_nframe
            assert len(ours) == len(theirs)
            assert [describe(f) for f in ours] == [describe(f) for f in theirs]
            assert [describe(f) for f in reversed(ours)] == [describe(f) for f in reversed(theirs)]
            for index in range(-len(frames) - 1, len(frames) + 1):
                assert outcome(lambda: ours[index]) == outcome(lambda: theirs[index])
            for sl in (slice(None), slice(1, None), slice(None, -1), slice(None, None, -1),
                       slice(-2, None), slice(5, 9)):
                assert repr(ours[sl]) == repr(theirs[sl])
                assert type(ours[sl]) is tuple
            first = ours[0]
            assert first in ours and cpython.Frame(first._frame) in theirs
            assert ours.index(first) == theirs.index(theirs[0])
            assert ours.count(first) == theirs.count(theirs[0])
            assert hs.Frame(('nowhere.py', 99)) not in ours


def test_traceback_equality_ignores_total_nframe_like_cpythons():
    frames = (('a.py', 1), ('b.py', 2))
    assert hs.Traceback(frames, 2) == hs.Traceback(frames, 50) == hs.Traceback(frames)
    assert hash(hs.Traceback(frames, 2)) == hash(hs.Traceback(frames))


def test_tracebacks_compare_and_sort_like_cpythons():
    stacks = [t[2] for t in random_raw_traces(8, count=80)] + [()]
    ours = [hs.Traceback(s) for s in stacks]
    theirs = [cpython.Traceback(s) for s in stacks]
    assert [repr(t) for t in sorted(ours)] == [repr(t) for t in sorted(theirs)]
    for i, j in itertools.product(range(0, 80, 7), repeat=2):
        for op in ('__eq__', '__lt__', '__le__', '__gt__', '__ge__'):
            assert getattr(ours[i], op)(ours[j]) == getattr(theirs[i], op)(theirs[j])


def test_traceback_format_gives_cpythons_lines_for_every_limit():
    here = __file__
    stack = ((here, 3), ('<unknown>', 0), ('/no/such/file.py', 4), (here, 1),
             (here, 40), (here, 2))
    for limit in [None] + list(range(-8, 9)):
        for recent_first in (False, True):
            assert (hs.Traceback(stack).format(limit, recent_first)
                    == cpython.Traceback(stack).format(limit, recent_first)), (limit, recent_first)
            assert (hs.Traceback(stack).format(limit=limit, most_recent_first=recent_first)
                    == cpython.Traceback(stack).format(limit=limit,
                                                       most_recent_first=recent_first))


def test_traceback_format_with_a_negative_limit_drops_the_most_recent_frames():
    # CPython slices [:limit]; its docs say "the abs(limit) oldest frames".
    stack = tuple(('f%d.py' % i, i) for i in range(5))  # f0 is the most recent
    lines = hs.Traceback(stack).format(limit=-1)
    assert [line for line in lines if line.startswith('  File')] == [
        '  File "f4.py", line 4', '  File "f3.py", line 3',
        '  File "f2.py", line 2', '  File "f1.py", line 1']
    assert hs.Traceback(stack).format(limit=0) == []


def test_traceback_format_reads_source_through_the_package_linecache(package_exports, monkeypatch):
    frames = (('x.py', 3), ('y.py', 7))
    with unittest.mock.patch('heapscope.linecache.getline',
                             side_effect=lambda f, n: '  <%s %s>  ' % (f, n)):
        assert hs.Traceback(frames).format() == [
            '  File "y.py", line 7', '    <y.py 7>', '  File "x.py", line 3', '    <x.py 3>']
    fake = types.SimpleNamespace(getline=lambda f, n: 'replaced')
    monkeypatch.setattr(package_exports, 'linecache', fake)
    assert hs.Traceback(frames).format(1) == ['  File "x.py", line 3', '    replaced']


def test_traceback_format_follows_patches_of_tracemalloc_linecache_once_installed(
        package_exports, monkeypatch):
    monkeypatch.setitem(sys.modules, 'tracemalloc', package_exports)
    with unittest.mock.patch('tracemalloc.linecache',
                             types.SimpleNamespace(getline=lambda f, n: 'via alias')):
        assert hs.Traceback((('x.py', 3),)).format() == [
            '  File "x.py", line 3', '    via alias']


def test_traces_print_compare_and_hash_like_cpythons():
    for raw in random_raw_traces(9, count=80) + [(0, 5, (('a.py', 1),))]:
        ours, theirs = hs.Trace(raw), cpython.Trace(raw)
        assert describe(ours) == describe(theirs)
        assert (ours.domain, ours.size) == (theirs.domain, theirs.size)
        assert describe(ours.traceback) == describe(theirs.traceback)
        assert ours == hs.Trace(raw) and ours != cpython.Trace(raw)


def test_snapshot_traces_are_a_lazy_unhashable_sequence_of_traces():
    raw = random_raw_traces(10, count=40)
    ours, theirs = snapshots(raw)
    assert repr(ours.traces) == repr(theirs.traces) == '<Traces len=45>'
    assert len(ours.traces) == len(theirs.traces)
    assert [describe(t) for t in ours.traces] == [describe(t) for t in theirs.traces]
    assert [describe(t) for t in ours.traces[3:9:2]] == [describe(t) for t in theirs.traces[3:9:2]]
    assert ours.traces[-1] in ours.traces and hs.Trace((9, 9, (), 9)) not in ours.traces
    assert ours.traces.index(ours.traces[4]) == theirs.traces.index(theirs.traces[4])
    assert ours.traces.count(ours.traces[4]) == theirs.traces.count(theirs.traces[4])
    assert outcome(lambda: hash(ours.traces)) == outcome(lambda: hash(theirs.traces))
    assert ours.traces == hs.Snapshot(list(raw), 1).traces
    assert ours.traces._traces == raw and ours.traceback_limit == 5


def test_snapshot_keeps_the_raw_traces_object_it_was_given():
    raw = random_raw_traces(11, count=5)
    assert hs.Snapshot(raw, 1).traces._traces is raw
    assert cpython.Snapshot(raw, 1).traces._traces is raw


# --------------------------------------------------------------------------
# sizes


def test_format_size_prints_every_magnitude_like_cpython():
    values = [0, 1, -1, 99, 100, 101, 1023, 1024, 1025, 10239, 10240, 10241,
              102399, 102400, 102451, 1024 ** 2 * 99.95, 1024 ** 2 * 99.94,
              1024 ** 3 * 10239.5, 1024 ** 4 * 5, 1024 ** 5 * 7, 2 ** 70,
              0.5, 1.5, 2.5, 2501.0, 66 / 7, 1e-9, -0.4, float('inf'), float('nan')]
    rng = random.Random(12)
    values += [rng.randint(-2 ** 50, 2 ** 50) for _ in range(300)]
    values += [rng.uniform(-1e12, 1e12) for _ in range(300)]
    values += [rng.randint(0, 10 ** 6) / rng.randint(1, 1000) for _ in range(300)]
    values += [b * 1024 ** e + d for b in (99, 100, 10239, 10240)
               for e in range(5) for d in (-1, 0, 1)]
    values += [-v for v in values]
    for value in values:
        for sign in (False, True):
            assert hs._format_size(value, sign) == cpython._format_size(value, sign), value


# --------------------------------------------------------------------------
# statistics and compare_to


@pytest.mark.parametrize('seed', SEEDS)
@pytest.mark.parametrize('key_type, cumulative', KEY_MODES)
def test_statistics_match_cpython_element_by_element(seed, key_type, cumulative):
    ours, theirs = snapshots(random_raw_traces(seed))
    ours_stats = ours.statistics(key_type, cumulative)
    theirs_stats = theirs.statistics(key_type, cumulative)
    assert [describe(s) for s in ours_stats] == [describe(s) for s in theirs_stats]
    assert ([(s.size, s.count, s.traceback.total_nframe) for s in ours_stats]
            == [(s.size, s.count, s.traceback.total_nframe) for s in theirs_stats])


def test_statistics_break_size_and_count_ties_by_traceback_descending():
    raw = [(0, 8, (('b.py', 1),), 1), (0, 8, (('a.py', 1),), 1),
           (0, 8, (('c.py', 1),), 1), (0, 8, (('a.py', 2),), 1)]
    ours, theirs = snapshots(raw)
    assert [str(s) for s in ours.statistics('lineno')] == [
        'c.py:1: size=8 B, count=1, average=8 B', 'b.py:1: size=8 B, count=1, average=8 B',
        'a.py:2: size=8 B, count=1, average=8 B', 'a.py:1: size=8 B, count=1, average=8 B']
    assert ([repr(s) for s in ours.statistics('lineno')]
            == [repr(s) for s in theirs.statistics('lineno')])


def test_cumulative_statistics_count_a_recursive_line_once_per_occurrence():
    raw = [(0, 10, (('a.py', 1), ('b.py', 2), ('a.py', 1)), 3)]
    ours, theirs = snapshots(raw)
    assert [repr(s) for s in ours.statistics('lineno', True)] == [
        "<Statistic traceback=<Traceback (<Frame filename='a.py' lineno=1>,)> size=20 count=2>",
        "<Statistic traceback=<Traceback (<Frame filename='b.py' lineno=2>,)> size=10 count=1>"]
    for key_type in ('lineno', 'filename'):
        assert ([repr(s) for s in ours.statistics(key_type, True)]
                == [repr(s) for s in theirs.statistics(key_type, True)])


def test_statistics_of_an_empty_snapshot_are_empty():
    for key_type, cumulative in KEY_MODES:
        assert hs.Snapshot([], 1).statistics(key_type, cumulative) == []


@pytest.mark.parametrize('seed', SEEDS)
@pytest.mark.parametrize('key_type, cumulative', KEY_MODES)
def test_compare_to_matches_cpython_element_by_element(seed, key_type, cumulative):
    old_raw = random_raw_traces(seed)
    new_raw = perturbed(old_raw, seed)
    ours_old, theirs_old = snapshots(old_raw)
    ours_new, theirs_new = snapshots(new_raw)
    pairs = [(ours_new, ours_old, theirs_new, theirs_old),
             (ours_old, ours_new, theirs_old, theirs_new),
             (ours_new, ours_new, theirs_new, theirs_new),
             (ours_new, hs.Snapshot([], 5), theirs_new, cpython.Snapshot([], 5)),
             (hs.Snapshot([], 5), ours_new, cpython.Snapshot([], 5), theirs_new)]
    for our_new, our_old, their_new, their_old in pairs:
        assert ([describe(d) for d in our_new.compare_to(our_old, key_type, cumulative)]
                == [describe(d) for d in their_new.compare_to(their_old, key_type, cumulative)])


def test_compare_to_does_not_change_either_snapshot():
    old_raw = random_raw_traces(13, count=50)
    new_raw = perturbed(old_raw, 13)
    old, new = hs.Snapshot(list(old_raw), 5), hs.Snapshot(list(new_raw), 5)
    first = new.compare_to(old, 'lineno')
    assert new.compare_to(old, 'lineno') == first
    assert old.traces._traces == old_raw and new.traces._traces == new_raw


def test_grouping_helpers_agree_with_cpythons():
    ours_old, theirs_old = snapshots(random_raw_traces(14))
    ours_new, theirs_new = snapshots(perturbed(random_raw_traces(14), 14))
    for key_type, cumulative in KEY_MODES:
        ours = ours_new._group_by(key_type, cumulative)
        theirs = theirs_new._group_by(key_type, cumulative)
        assert (sorted(describe(s) for s in ours.values())
                == sorted(describe(s) for s in theirs.values()))
        assert all(key is stat.traceback for key, stat in ours.items())
        ours_diff = hs._compare_grouped_stats(ours_old._group_by(key_type, cumulative), ours)
        theirs_diff = cpython._compare_grouped_stats(
            theirs_old._group_by(key_type, cumulative), theirs)
        assert sorted(map(describe, ours_diff)) == sorted(map(describe, theirs_diff))


def test_statistic_and_diff_objects_print_hash_and_compare_like_cpythons():
    tb = (('a.py', 3), ('b.py', 1))
    for args in [(0, 0), (5002, 2), (7, 3), (10 ** 9, 7), (66, 0)]:
        ours, theirs = hs.Statistic(hs.Traceback(tb), *args), cpython.Statistic(cpython.Traceback(tb), *args)
        assert describe(ours) == describe(theirs)
        assert ours == hs.Statistic(hs.Traceback(tb), *args)
        assert ours != theirs and ours != hs.Statistic(hs.Traceback(tb), args[0] + 1, args[1])
    for args in [(0, -66, 0, -1), (5002, 5000, 2, 1), (30, 0, 3, 0), (1, 1024 ** 3, 1, 5)]:
        ours = hs.StatisticDiff(hs.Traceback(tb), *args)
        theirs = cpython.StatisticDiff(cpython.Traceback(tb), *args)
        assert describe(ours) == describe(theirs)
        assert ours == hs.StatisticDiff(hs.Traceback(tb), *args)
        assert ours != hs.Statistic(hs.Traceback(tb), args[0], args[2])


# --------------------------------------------------------------------------
# filters


FILTER_SPECS = [
    ('Filter', (True, 'a.py'), {}),
    ('Filter', (False, 'a.py'), {}),
    ('Filter', (True, 'b.pyc'), {}),  # the pattern itself loses the 'c'
    ('Filter', (True, 'b.py', 3), {}),
    ('Filter', (False, 'b.py', 3), {}),
    ('Filter', (True, 'pkg/*'), {'all_frames': True}),
    ('Filter', (False, 'pkg/*'), {'all_frames': True}),
    ('Filter', (True, '*.py'), {'domain': 1}),
    ('Filter', (False, '*.py'), {'domain': 1}),
    ('Filter', (False, '<unknown>'), {}),
    ('Filter', (True, '<unknown>'), {'all_frames': True}),
    ('Filter', (True, '?.py', 2), {'all_frames': True, 'domain': 0}),
    ('Filter', (False, 'a.py', 2), {'all_frames': True, 'domain': 389047}),
    ('Filter', (True, '[ab].py'), {}),
    ('Filter', (True, '*x*'), {}),
    ('Filter', (False, '/abs/*'), {}),
    ('Filter', (True, 'A.py'), {}),
    ('Filter', (True, 'c.py'), {}),  # '.pyo' is not treated as '.py'
    ('Filter', (0, 'a.py'), {}),  # inclusive need not be a bool
    ('Filter', (1, '*', None, 1), {}),
    ('DomainFilter', (True, 0), {}),
    ('DomainFilter', (False, 0), {}),
    ('DomainFilter', (True, 389047), {}),
    ('DomainFilter', (False, 2), {}),
]


def make_filters(module, specs):
    return [getattr(module, cls)(*args, **kwargs) for cls, args, kwargs in specs]


def test_filters_have_cpythons_attributes():
    for spec in FILTER_SPECS:
        (ours,), (theirs,) = make_filters(hs, [spec]), make_filters(cpython, [spec])
        assert vars(ours) == vars(theirs)
        for attr in ('inclusive', 'filename_pattern', 'lineno', 'all_frames', 'domain'):
            assert outcome(lambda: getattr(ours, attr)) == outcome(lambda: getattr(theirs, attr))
        assert repr(ours).startswith('<heapscope.%s object at ' % spec[0])


def test_filters_match_each_trace_with_the_same_result_as_cpythons():
    raw = random_raw_traces(15, count=150)
    for spec in FILTER_SPECS:
        (ours,), (theirs,) = make_filters(hs, [spec]), make_filters(cpython, [spec])
        # repr, not ==: with a non-bool `inclusive`, CPython returns it as is
        for trace in raw:
            assert repr(ours._match(trace)) == repr(theirs._match(trace)), (spec, trace)
            if spec[0] == 'Filter':
                assert (repr(ours._match_traceback(trace[2]))
                        == repr(theirs._match_traceback(trace[2])))
                filename, lineno = trace[2][0]
                assert (repr(ours._match_frame(filename, lineno))
                        == repr(theirs._match_frame(filename, lineno)))


@pytest.mark.parametrize('seed', SEEDS[:2])
def test_filter_traces_matches_cpython_for_single_pairs_and_random_triples(seed):
    ours, theirs = snapshots(random_raw_traces(seed, count=120))
    combos = [[s] for s in FILTER_SPECS]
    combos += [list(pair) for pair in itertools.product(FILTER_SPECS, repeat=2)]
    rng = random.Random(seed)
    combos += [rng.sample(FILTER_SPECS, 3) for _ in range(150)]
    for specs in combos:
        ours_kept = ours.filter_traces(make_filters(hs, specs))
        theirs_kept = theirs.filter_traces(make_filters(cpython, specs))
        assert ours_kept.traces._traces == theirs_kept.traces._traces, specs
        assert ours_kept.traceback_limit == theirs_kept.traceback_limit


def test_filter_traces_accepts_any_iterable_of_filters():
    ours, theirs = snapshots(random_raw_traces(16, count=60))
    specs = FILTER_SPECS[:3] + FILTER_SPECS[-2:]
    expected = theirs.filter_traces(make_filters(cpython, specs)).traces._traces
    for container in (list, tuple, iter, set, lambda f: (x for x in f)):
        assert ours.filter_traces(container(make_filters(hs, specs))).traces._traces == expected


def test_filter_traces_without_filters_copies_the_snapshot():
    raw = random_raw_traces(17, count=20)
    snapshot = hs.Snapshot(raw, 3)
    for empty in ([], (), iter(())):
        copy = snapshot.filter_traces(empty)
        assert copy is not snapshot and copy.traces is not snapshot.traces
        assert copy.traces == snapshot.traces and copy.traces._traces is not raw
        assert type(copy) is hs.Snapshot and copy.traceback_limit == 3
    assert raw == random_raw_traces(17, count=20)


def test_filter_traces_without_filters_also_copies_a_tuple_of_traces():
    # Deliberate divergence: CPython raises AttributeError (tuple has no .copy()).
    raw = tuple(random_raw_traces(18, count=5))
    assert hs.Snapshot(raw, 1).filter_traces([]).traces._traces == list(raw)


def test_filename_normalisation_matches_cpythons():
    names = FILENAMES + ['', '.pyc', 'x.pyc.pyc', 'X.PyC', 'a/b.pyc', 'a\\b.pyc', 'y.pycx']
    for name in names:
        assert hs._normalize_filename(name) == cpython._normalize_filename(name)
    assert hs._normalize_filename(Path('p/q.pyc')) == 'p/q.py'


# --------------------------------------------------------------------------
# errors


def error_cases(mod):
    snap = mod.Snapshot(random_raw_traces(19, count=10), 5)
    tb = mod.Traceback((('a.py', 1),))
    return {
        'unknown key_type': lambda: snap.statistics('line'),
        'None key_type': lambda: snap.statistics(None),
        'unhashable key_type': lambda: snap.statistics(['lineno']),
        'cumulative traceback': lambda: snap.statistics('traceback', cumulative=True),
        'truthy cumulative traceback': lambda: snap.statistics('traceback', 1),
        'compare unknown key_type': lambda: snap.compare_to(snap, 'x'),
        'compare cumulative traceback': lambda: snap.compare_to(snap, 'traceback', True),
        'compare to a non-snapshot': lambda: snap.compare_to(None, 'lineno'),
        'a filter instead of a list': lambda: snap.filter_traces(mod.Filter(True, 'a')),
        'an int instead of filters': lambda: snap.filter_traces(5),
        'None instead of filters': lambda: snap.filter_traces(None),
        'a list of strings': lambda: snap.filter_traces(['a.py']),
        'a string of filters': lambda: snap.filter_traces('a.py'),
        'None pattern': lambda: mod.Filter(True, None),
        'int pattern': lambda: mod.Filter(True, 5),
        'bytes pyc pattern': lambda: mod.Filter(True, b'x.pyc'),
        'missing pattern': lambda: mod.Filter(True),
        'unknown Filter keyword': lambda: mod.Filter(True, 'a', line=3),
        'missing domain': lambda: mod.DomainFilter(True),
        'setting filename_pattern': lambda: setattr(mod.Filter(True, 'a'), 'filename_pattern', 'b'),
        'setting DomainFilter.domain': lambda: setattr(mod.DomainFilter(True, 1), 'domain', 2),
        'BaseFilter._match': lambda: mod.BaseFilter(True)._match((0, 1, (('a', 1),), 1)),
        'filename stats of an empty stack': lambda: mod.Snapshot([(0, 1, (), 0)], 1).statistics('filename'),
        'lineno stats of an empty stack': lambda: mod.Snapshot([(0, 1, (), 0)], 1).statistics('lineno'),
        'three-item raw trace': lambda: mod.Snapshot([(0, 1, (('a', 1),))], 1).statistics('lineno'),
        'three-item trace filtered': lambda: mod.Filter(True, 'a')._match((0, 1, (('a', 1),))),
        'str of an empty traceback': lambda: str(mod.Traceback(())),
        'traceback index out of range': lambda: tb[3],
        'traceback str index': lambda: tb['x'],
        'non-frame in a traceback': lambda: 'a.py' in tb,
        'frame < int': lambda: mod.Frame(('a', 1)) < 1,
        'frame >= str': lambda: mod.Frame(('a', 1)) >= 'a',
        'frame == tuple': lambda: mod.Frame(('a', 1)) == ('a', 1),
        'traceback > tuple': lambda: tb > (),
        'traceback <= frame': lambda: tb <= mod.Frame(('a', 1)),
        'traceback from a generator': lambda: mod.Traceback(x for x in ()),
        'format with a float limit': lambda: tb.format(1.5),
        'format with a str limit': lambda: tb.format('1'),
        'trace with a 5-item tuple': lambda: mod.Trace((0, 1, (), 2, 3)).traceback,
        'traces index out of range': lambda: mod.Snapshot([], 1).traces[0],
        'hash of the traces': lambda: hash(snap.traces),
        'statistics ordering': lambda: mod.Statistic(tb, 1, 1) < mod.Statistic(tb, 1, 1),
        'statistic diff ordering': lambda: mod.StatisticDiff(tb, 1, 1, 1, 1) > 0,
        'trace ordering': lambda: mod.Trace((0, 1, (), 1)) < mod.Trace((0, 1, (), 1)),
        'Statistic missing args': lambda: mod.Statistic(tb),
        'Snapshot missing limit': lambda: mod.Snapshot([]),
        'format_size of a str': lambda: mod._format_size('x', False),
        'normalize None': lambda: mod._normalize_filename(None),
        'Trace str with no frames': lambda: str(mod.Trace((0, 1, (), 0))),
        'Statistic str with float count': lambda: str(mod.Statistic(tb, 10, 2.5)),
        'Statistic repr with str size': lambda: repr(mod.Statistic(tb, 'x', 1)),
    }


@pytest.mark.parametrize('case', sorted(error_cases(hs)))
def test_errors_have_cpythons_type_and_message(case):
    assert outcome(error_cases(hs)[case]) == outcome(error_cases(cpython)[case])


def test_bad_key_type_messages_read_as_in_cpython():
    snapshot = hs.Snapshot([], 1)
    with pytest.raises(ValueError, match=r"^unknown key_type: 'line'$"):
        snapshot.statistics('line')
    # sic: CPython's message says "by used"
    with pytest.raises(ValueError, match=r"^cumulative mode cannot by used with key type 'traceback'$"):
        snapshot.statistics('traceback', True)
    with pytest.raises(TypeError, match=r'^filters must be a list of filters, not int$'):
        snapshot.filter_traces(3)


# --------------------------------------------------------------------------
# pickling and snapshot files


def sample_objects(mod):
    frames = (('a.py', 2), ('b.pyc', 4))
    snap = mod.Snapshot(random_raw_traces(21, count=8), 7)
    snap.extra_attribute = 'kept'
    return [mod.Frame(('a.py', 2)), mod.Traceback(frames), mod.Traceback(frames, 9),
            mod.Trace((1, 100, frames, 3)), mod.Statistic(mod.Traceback(frames), 10, 2),
            mod.StatisticDiff(mod.Traceback(frames), 10, -4, 2, 1), snap, snap.traces,
            mod.Filter(False, 'x.pyc', 3, True, 2), mod.DomainFilter(True, 5)]


def pickle_structure(obj, protocol):
    """The opcodes of a pickle, module names neutralised, frame sizes dropped."""
    ops = []
    for opcode, arg, _ in pickletools.genops(pickle.dumps(obj, protocol)):
        if opcode.name == 'FRAME':
            continue
        if isinstance(arg, str):
            arg = arg.replace('tracemalloc', 'MODULE').replace('heapscope', 'MODULE')
        ops.append((opcode.name, arg))
    return ops


@pytest.mark.parametrize('protocol', range(pickle.HIGHEST_PROTOCOL + 1))
def test_objects_pickle_to_the_same_structure_as_cpythons(package_exports, protocol):
    for ours, theirs in zip(sample_objects(hs), sample_objects(cpython)):
        assert (outcome(lambda: pickle_structure(ours, protocol))
                == outcome(lambda: pickle_structure(theirs, protocol))), type(ours).__name__


def test_objects_survive_a_pickle_round_trip(package_exports):
    for obj in sample_objects(hs):
        copy = pickle.loads(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))
        assert type(copy) is type(obj)
        if isinstance(obj, (hs.Snapshot, hs.BaseFilter)):
            assert vars(copy).keys() == vars(obj).keys()
        else:
            assert copy == obj and repr(copy) == repr(obj)


def test_snapshot_dump_then_load_gives_the_same_snapshot(package_exports, tmp_path):
    snapshot = hs.Snapshot(random_raw_traces(22), 5)
    snapshot.test_attr = 'new'
    path = tmp_path / 'snap.pickle'
    snapshot.dump(path)
    loaded = hs.Snapshot.load(path)
    assert type(loaded) is hs.Snapshot and type(loaded.traces) is hs._Traces
    assert loaded.traces == snapshot.traces and loaded.traceback_limit == 5
    assert loaded.test_attr == 'new'
    assert pickle.load(open(path, 'rb')).traces == snapshot.traces  # plain pickle too


def test_snapshot_load_reads_a_file_dumped_by_cpythons_tracemalloc(tmp_path):
    raw = random_raw_traces(23)
    theirs = cpython.Snapshot(raw, 5)
    theirs.test_attr = 'new'
    theirs.dump(tmp_path / 'cpython.pickle')
    ours = hs.Snapshot.load(tmp_path / 'cpython.pickle')
    assert type(ours) is hs.Snapshot and type(ours.traces) is hs._Traces
    assert ours.traces._traces == raw and ours.traceback_limit == 5
    assert ours.test_attr == 'new'
    for key_type, cumulative in KEY_MODES:
        assert ([describe(s) for s in ours.statistics(key_type, cumulative)]
                == [describe(s) for s in theirs.statistics(key_type, cumulative)])


@pytest.mark.parametrize('protocol', range(pickle.HIGHEST_PROTOCOL + 1))
def test_snapshot_load_reads_cpython_snapshots_pickled_with_any_protocol(tmp_path, protocol):
    raw = random_raw_traces(24, count=20)
    with open(tmp_path / 'p.pickle', 'wb') as fp:
        pickle.dump(cpython.Snapshot(raw, 2), fp, protocol)
    loaded = hs.Snapshot.load(tmp_path / 'p.pickle')
    assert type(loaded) is hs.Snapshot
    assert loaded.traces._traces == raw and loaded.traceback_limit == 2


def test_snapshot_load_reads_a_real_snapshot_taken_by_cpython(tmp_path):
    if cpython.is_tracing():
        pytest.skip('CPython tracemalloc is already tracing')
    cpython.start(10)
    try:
        garbage = [str(i) * 3 for i in range(2000)] + [bytearray(5000)]  # noqa: F841
        theirs = cpython.take_snapshot()
    finally:
        cpython.stop()
    theirs.dump(tmp_path / 'real.pickle')
    ours = hs.Snapshot.load(tmp_path / 'real.pickle')
    assert ours.traces._traces == theirs.traces._traces
    assert ours.traceback_limit == theirs.traceback_limit == 10
    for key_type, cumulative in KEY_MODES:
        assert ([describe(s) for s in ours.statistics(key_type, cumulative)]
                == [describe(s) for s in theirs.statistics(key_type, cumulative)])


def _short_unicode(text):
    data = text.encode()
    return b'\x8c' + bytes([len(data)]) + data


def rejected_payloads(marker):
    command = 'touch %s' % marker
    return {
        # protocol 0: GLOBAL 'os system', MARK, STRING, TUPLE, REDUCE
        'os.system, protocol 0': b'cos\nsystem\n(S' + repr(command).encode() + b'\ntR.',
        # protocol 4: STACK_GLOBAL 'os' 'system', TUPLE1, REDUCE
        'os.system, protocol 4': (b'\x80\x04' + _short_unicode('os') + _short_unicode('system')
                                  + b'\x93' + _short_unicode(command) + b'\x85R.'),
        # what pickle.dumps writes for os.system itself ('posix' on Unix)
        'os.system via pickle': pickle.dumps(_Exploit(command), 4),
        # a harmful global hidden inside an otherwise valid snapshot
        'inside a snapshot': pickle.dumps(_snapshot_carrying(_Exploit(command)), 4),
        'tracemalloc.start': b'\x80\x04' + _short_unicode('tracemalloc') + _short_unicode('start') + b'\x93)R.',
        'heapscope.Filter': b'\x80\x04' + _short_unicode('heapscope') + _short_unicode('Filter') + b'\x93.',
        'builtins.eval': b'cbuiltins\neval\n(S\'1\'\ntR.',
    }


class _Exploit:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _snapshot_carrying(payload):
    snapshot = cpython.Snapshot([(0, 1, (('a.py', 1),), 1)], 1)
    snapshot.payload = payload
    return snapshot


@pytest.mark.parametrize('case', sorted(rejected_payloads('x')))
def test_snapshot_load_refuses_files_naming_any_other_global_without_running_it(tmp_path, case):
    marker = tmp_path / 'executed'
    path = tmp_path / 'evil.pickle'
    path.write_bytes(rejected_payloads(marker)[case])
    with pytest.raises(pickle.UnpicklingError, match='is not allowed') as info:
        hs.Snapshot.load(path)
    assert not marker.exists()
    assert str(path) in str(info.value)


def test_snapshot_load_names_the_rejected_global(tmp_path):
    path = tmp_path / 'evil.pickle'
    path.write_bytes(rejected_payloads(tmp_path / 'executed')['os.system, protocol 4'])
    with pytest.raises(pickle.UnpicklingError, match=r'global os\.system is not allowed'):
        hs.Snapshot.load(path)
    assert not (tmp_path / 'executed').exists()


def test_snapshot_load_reports_truncated_corrupt_and_foreign_files_clearly(package_exports, tmp_path):
    good = pickle.dumps(hs.Snapshot(random_raw_traces(25, count=30), 3), pickle.HIGHEST_PROTOCOL)
    bad_files = {
        'empty': b'',
        'truncated': good[:len(good) // 2],
        'cut short by one byte': good[:-1],
        'garbage': b'this is not a snapshot at all',
        'random bytes': bytes(random.Random(1).randrange(256) for _ in range(500)),
        'not a snapshot': pickle.dumps([1, 2, 3]),
    }
    for name, data in bad_files.items():
        path = tmp_path / name.replace(' ', '_')
        path.write_bytes(data)
        with pytest.raises(pickle.UnpicklingError) as info:
            hs.Snapshot.load(path)
        assert str(path) in str(info.value), name


def test_snapshot_load_of_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        hs.Snapshot.load(tmp_path / 'missing')


# --------------------------------------------------------------------------
# CPython's own unit tests, pointed at our classes


def test_cpythons_own_snapshot_filter_and_traceback_tests_pass_on_our_classes(monkeypatch):
    suite_module = pytest.importorskip('test.test_tracemalloc')
    names = PUBLIC_CLASSES + PRIVATE_CLASSES + HELPERS
    stand_in = types.SimpleNamespace(linecache=linecache,
                                     **{name: getattr(hs, name) for name in names})
    monkeypatch.setattr(suite_module, 'tracemalloc', stand_in)
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for case in ('TestTraceback', 'TestSnapshot', 'TestFilters'):
        for test in loader.loadTestsFromTestCase(getattr(suite_module, case)):
            # take_snapshot() is the facade's job, not this module's
            if test._testMethodName != 'test_create_snapshot':
                suite.addTest(test)
    assert suite.countTestCases() >= 15
    stream = io.StringIO()
    result = unittest.TextTestRunner(stream=stream, verbosity=2).run(suite)
    assert result.wasSuccessful(), stream.getvalue()
