"""A Snapshot built on a list of raw traces follows that list: changed in
place (an item replaced, sorted, cut, extended) between two calls, its
statistics, compare_to and filter_traces give what the standard module
gives on the list as it is now - never the result of the list as it was
when heapscope first converted it."""

import tracemalloc as cpython

import pytest

heapscope = pytest.importorskip('heapscope')

MODES = [('traceback', False), ('lineno', False), ('filename', False), ('lineno', True),
         ('filename', True)]


def raw():
    return [(0, 10, (('a.py', 1),), 1), (0, 20, (('b.py', 2), ('a.py', 1)), 2),
            (0, 30, (('c.py', 3),), 1)]


def shown(rows):
    return [repr(row) for row in rows]


def same_as_cpython(traces):
    ours, theirs = heapscope.Snapshot(traces, 5), cpython.Snapshot(list(traces), 5)
    return ours, theirs


def change_first(traces):
    traces[0] = (0, 999, (('z.py', 9),), 1)


def change_size(traces):
    domain, size, frames, total = traces[1]
    traces[1] = (domain, size + 1, frames, total)


def swap(traces):
    traces[0], traces[-1] = traces[-1], traces[0]


def shorten_and_extend(traces):
    del traces[0]
    traces.append((0, 7, (('new.py', 4),), 1))


def clear(traces):
    traces.clear()


def equal_copy(traces):
    # an equal tuple that is another object: the answer must not change
    traces[0] = tuple(list(traces[0]))


CHANGES = [change_first, change_size, swap, shorten_and_extend, clear, equal_copy]


@pytest.mark.parametrize('change', CHANGES, ids=lambda f: f.__name__)
@pytest.mark.parametrize('mode', MODES, ids=lambda m: '%s-%s' % m)
def test_statistics_follow_a_list_changed_in_place(change, mode):
    traces = raw()
    snapshot = heapscope.Snapshot(traces, 5)
    before = shown(snapshot.statistics(*mode))
    assert before == shown(cpython.Snapshot(raw(), 5).statistics(*mode))
    change(traces)
    assert shown(snapshot.statistics(*mode)) == shown(cpython.Snapshot(traces, 5).statistics(*mode))


@pytest.mark.parametrize('change', CHANGES, ids=lambda f: f.__name__)
def test_compare_to_and_filter_traces_follow_a_list_changed_in_place(change):
    traces, old_traces = raw(), raw()[1:]
    snapshot, old = heapscope.Snapshot(traces, 5), heapscope.Snapshot(old_traces, 5)
    snapshot.compare_to(old, 'lineno')
    snapshot.filter_traces([heapscope.Filter(True, 'a.py')])
    change(traces)
    change(old_traces)
    theirs, their_old = cpython.Snapshot(traces, 5), cpython.Snapshot(old_traces, 5)
    assert (shown(snapshot.compare_to(old, 'lineno'))
            == shown(theirs.compare_to(their_old, 'lineno')))
    only_a = [heapscope.Filter(True, 'a.py', all_frames=True)]
    assert (list(snapshot.filter_traces(only_a).traces._traces)
            == list(theirs.filter_traces([cpython.Filter(True, 'a.py', all_frames=True)])
                    .traces._traces))


def test_replaced_trace_list_is_followed():
    snapshot = heapscope.Snapshot(raw(), 5)
    snapshot.statistics('lineno')
    snapshot.traces._traces = raw()[:1]
    assert shown(snapshot.statistics('lineno')) == shown(
        cpython.Snapshot(raw()[:1], 5).statistics('lineno'))


def test_a_trace_list_changed_to_what_the_engine_declines_uses_the_reference():
    traces = raw()
    snapshot = heapscope.Snapshot(traces, 5)
    snapshot.statistics('lineno')
    traces[0] = (0, 2 ** 70, (('a.py', 1),), 1)  # beyond 64 bits: Python's ints
    assert shown(snapshot.statistics('lineno')) == shown(
        cpython.Snapshot(traces, 5).statistics('lineno'))


def test_the_conversion_is_kept_while_the_list_is_unchanged(monkeypatch):
    # The fast path: an unchanged list is converted once, however many
    # analyses run on it.
    from heapscope import _snapshot
    calls = []
    convert = _snapshot._native._core_from_raw

    def counting(*args, **kwargs):
        calls.append(1)
        return convert(*args, **kwargs)

    monkeypatch.setattr(_snapshot._native, '_core_from_raw', counting)
    snapshot = heapscope.Snapshot(raw(), 5)
    for mode in MODES:
        snapshot.statistics(*mode)
    snapshot.filter_traces([heapscope.Filter(False, 'b.py')])
    assert len(calls) == 1
    snapshot.traces._traces[0] = (0, 1, (('a.py', 1),), 1)
    snapshot.statistics('lineno')
    assert len(calls) == 2
