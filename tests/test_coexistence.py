"""heapscope and CPython's own tracemalloc running at the same time.

Both tracers hook Python's allocators, each wrapping whatever allocator it
finds when it starts, so the order matters: whoever starts last sits on top,
and a tracer that stops restores the allocator it saved when it started.
For every order of starts and stops (ours first, theirs first, interleaved
stops, restarts after the other stopped) nothing may crash, and whenever
heapscope is tracing, a block allocated just now must be traced by it at the
line that allocated it (and the same for tracemalloc, which heapscope must
not break either).

heapscope must also never use tracemalloc/_tracemalloc itself: it runs with
both modules made unimportable.

Run: python -m pytest tests/test_coexistence.py -q
"""

import collections
import itertools
import os
import subprocess
import sys
import textwrap
import threading
import warnings

import pytest

import heapscope
import tracemalloc

_HERE = os.path.abspath(__file__)

from raw_allocator import raw_free as _raw_free  # noqa: E402  (calls without the GIL)
from raw_allocator import raw_malloc as _raw_malloc  # noqa: E402

_OBJECT_SIZE = 123_457
_RAW_SIZE = 234_567


def _line_of(marker):
    with open(_HERE) as f:
        for number, text in enumerate(f, start=1):
            if text.rstrip().endswith(marker) and "_line_of" not in text:
                return number
    raise LookupError(marker)


def _allocate_object():
    return bytearray(_OBJECT_SIZE)  # @object


def _allocate_raw():
    return _raw_malloc(_RAW_SIZE)  # @raw


@pytest.fixture(autouse=True)
def both_stopped():
    heapscope.stop()
    tracemalloc.stop()
    yield
    heapscope.stop()
    tracemalloc.stop()


def _check_heapscope_traces_new_blocks(step):
    """A Python object and a raw block (allocated without the GIL) made now
    are traced by heapscope, at the lines that made them."""
    assert heapscope.is_tracing(), step
    obj = _allocate_object()
    address = _allocate_raw()
    try:
        tb = heapscope.get_object_traceback(obj)
        assert tb is not None, f"{step}: heapscope did not trace a new object"
        assert (tb[-1].filename, tb[-1].lineno) == (_HERE, _line_of("# @object")), step
        raw = [trace for trace in heapscope._get_traces() if trace[1] == _RAW_SIZE]
        assert len(raw) == 1, f"{step}: heapscope traced {len(raw)} new raw blocks instead of 1"
        assert raw[0][2][0] == (_HERE, _line_of("# @raw")), step
        current, peak = heapscope.get_traced_memory()
        assert _OBJECT_SIZE + _RAW_SIZE <= current <= peak, step
        snapshot = heapscope.take_snapshot()
        lines = {(stat.traceback[-1].filename, stat.traceback[-1].lineno): stat.size
                 for stat in snapshot.statistics("lineno")}
        assert lines.get((_HERE, _line_of("# @object")), 0) >= _OBJECT_SIZE, step
        assert lines.get((_HERE, _line_of("# @raw")), 0) >= _RAW_SIZE, step
    finally:
        _raw_free(address)
    assert [trace for trace in heapscope._get_traces() if trace[1] == _RAW_SIZE] == [], step


def _check_tracemalloc_traces_new_blocks(step):
    assert tracemalloc.is_tracing(), step
    obj = _allocate_object()
    tb = tracemalloc.get_object_traceback(obj)
    assert tb is not None, f"{step}: tracemalloc did not trace a new object"
    assert (tb[-1].filename, tb[-1].lineno) == (_HERE, _line_of("# @object")), step
    address = _allocate_raw()
    try:
        raw = [t for t in tracemalloc.take_snapshot().traces if t.size == _RAW_SIZE]
        assert len(raw) == 1, f"{step}: tracemalloc traced {len(raw)} new raw blocks instead of 1"
    finally:
        _raw_free(address)


def _check_stopped(step):
    assert not heapscope.is_tracing(), step
    assert heapscope.get_traced_memory() == (0, 0), step
    assert heapscope._get_traces() == [], step


_ACTIONS = {
    "ours.start": lambda: heapscope.start(3),
    "ours.stop": heapscope.stop,
    "theirs.start": lambda: tracemalloc.start(2),
    "theirs.stop": tracemalloc.stop,
}


def _run_sequence(sequence):
    """Applies each action and checks both tracers after every step."""
    obj_before = None
    for number, action in enumerate(sequence):
        _ACTIONS[action]()
        step = f"after step {number + 1} ({action}) of {' -> '.join(sequence)}"
        if heapscope.is_tracing():
            _check_heapscope_traces_new_blocks(step)
        else:
            _check_stopped(step)
        if tracemalloc.is_tracing():
            _check_tracemalloc_traces_new_blocks(step)
        else:
            assert tracemalloc.get_traced_memory() == (0, 0), step
        if obj_before is not None:
            assert len(obj_before) == 10  # memory allocated earlier stays valid
        obj_before = bytearray(10)


def _interleavings(ours, theirs):
    """Every order of the two action lists that keeps each list's own order."""
    n = len(ours) + len(theirs)
    for positions in itertools.combinations(range(n), len(ours)):
        merged, a, b = [], iter(ours), iter(theirs)
        for i in range(n):
            merged.append(next(a) if i in positions else next(b))
        yield tuple(merged)


_ONCE = ["ours.start", "ours.stop"]
_TWICE = _ONCE * 2
_THEIRS_ONCE = ["theirs.start", "theirs.stop"]
_THEIRS_TWICE = _THEIRS_ONCE * 2

_SEQUENCES = sorted(set(
    list(_interleavings(_ONCE, _THEIRS_ONCE))
    + list(_interleavings(_TWICE, _THEIRS_ONCE))
    + list(_interleavings(_ONCE, _THEIRS_TWICE))
))


# tracemalloc.stop() puts back the allocator it found at its start, which
# drops any hooks installed above it since: heapscope notices at its next
# API call, installs them again and says so with this warning.
_REPAIR_WARNING = "another tracer .* removed heapscope's allocator hooks"


@pytest.mark.filterwarnings(f"ignore:{_REPAIR_WARNING}:RuntimeWarning")
@pytest.mark.parametrize("sequence", _SEQUENCES, ids=lambda s: "-".join(a.replace(".", "_") for a in s))
def test_both_tracers_keep_tracing_correctly_in_every_start_and_stop_order(sequence):
    _run_sequence(sequence)


def test_heapscope_keeps_tracing_when_tracemalloc_started_first_stops_while_we_trace():
    # The order most likely to go wrong, spelled out: tracemalloc starts, we
    # start on top of it, tracemalloc stops (restoring the allocator it saved
    # at its start, which is *below* our hooks).
    tracemalloc.start()
    heapscope.start()
    _check_heapscope_traces_new_blocks("both tracing")
    tracemalloc.stop()
    with pytest.warns(RuntimeWarning, match=_REPAIR_WARNING):
        assert heapscope.is_tracing()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired once, no warning again
        _check_heapscope_traces_new_blocks("after tracemalloc.stop() while heapscope traces")


@pytest.mark.xfail(strict=True, reason=(
    "known gap: tracemalloc.stop() unhooks heapscope, and blocks allocated before "
    "heapscope's next API call notices (and re-installs its hooks) are not traced"))
def test_a_block_allocated_right_after_tracemalloc_stop_unhooked_us_is_traced():
    tracemalloc.start()
    heapscope.start()
    tracemalloc.stop()
    obj = _allocate_object()  # no heapscope call between the stop and this
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        tb = heapscope.get_object_traceback(obj)
    assert tb is not None


def test_heapscope_started_twice_around_tracemalloc_traces_each_block_once():
    # ours (passive, left below tracemalloc), tracemalloc, ours again on top:
    # two of our hook layers are in the chain and a block must be traced once.
    heapscope.start()
    tracemalloc.start()
    heapscope.stop()
    heapscope.start()
    obj = _allocate_object()
    matching = [t for t in heapscope._get_traces()
                if t[2][0] == (_HERE, _line_of("# @object")) and t[1] >= _OBJECT_SIZE]
    assert len(matching) == 1
    assert heapscope.get_object_traceback(obj) is not None
    tracemalloc.stop()
    _check_heapscope_traces_new_blocks("after tracemalloc.stop()")
    heapscope.stop()
    _check_stopped("end")


def _allocate_many(count):
    keep = [None] * count
    for i in range(count):
        keep[i] = bytearray(1000)  # @many
    return keep


@pytest.mark.xfail(
    strict=True,
    reason="known limitation: CPython's tracemalloc, started on top of heapscope, keeps its "
    "own tables with the allocator it wrapped, which is heapscope's RAW hook, so heapscope "
    "records those bookkeeping blocks at the user's line; from below, they cannot be told "
    "apart from the user's blocks (the other start order is exact)",
)
def test_heapscope_below_tracemalloc_counts_exactly_the_blocks_python_allocated():
    # tracemalloc, started second, sits on top and keeps its own tables with
    # the allocator it wrapped, heapscope's: those internal allocations are
    # not Python's and must not show up in heapscope's statistics.
    heapscope.start()
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        keep = _allocate_many(200)
        sizes = collections.Counter(
            size for _, size, frames, _ in heapscope._get_traces()
            if frames[0] == (_HERE, _line_of("# @many")))
    # Two blocks per bytearray (the object, then its buffer), nothing else.
    assert sum(sizes.values()) == 2 * len(keep), sorted(sizes.items())
    assert sum(size * n for size, n in sizes.items()) == len(keep) * sys.getsizeof(keep[0])


def test_tracemalloc_starting_above_heapscope_raises_no_false_alarm_about_removed_hooks():
    heapscope.start()
    tracemalloc.start()  # nothing of ours is removed: tracemalloc wraps us
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert heapscope.is_tracing()


def test_heapscope_never_starts_or_feeds_cpython_tracemalloc():
    heapscope.start()
    _allocate_object()
    assert not tracemalloc.is_tracing()
    assert tracemalloc.get_traced_memory() == (0, 0)
    heapscope.take_snapshot().statistics("lineno")
    heapscope.stop()
    assert not tracemalloc.is_tracing()


class _Allocating:
    """Threads allocating while the main thread starts and stops tracers:
    raw blocks through ctypes (GIL released) and/or Python objects."""

    def __init__(self, raw=2, python=1):
        self.stop = threading.Event()
        self.errors = []
        self.threads = ([threading.Thread(target=self._guard, args=(self._raw,)) for _ in range(raw)]
                        + [threading.Thread(target=self._guard, args=(self._python,))
                           for _ in range(python)])

    def _guard(self, work):
        try:
            work()
        except BaseException as e:  # reported by __exit__
            self.errors.append(e)

    def _raw(self):
        while not self.stop.is_set():
            _raw_free(_raw_malloc(1000))

    def _python(self):
        keep = []
        while not self.stop.is_set():
            keep.append(bytearray(500))
            if len(keep) > 100:
                keep.clear()

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()
        assert self.errors == []


def _cycle(sequence, times=30):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _REPAIR_WARNING, RuntimeWarning)
        _cycle_unwarned(sequence, times)


def _cycle_unwarned(sequence, times):
    for _ in range(times):
        for action in sequence:
            _ACTIONS[action]()
            if heapscope.is_tracing():
                heapscope.take_snapshot()
            if tracemalloc.is_tracing():
                tracemalloc.take_snapshot()


# CPython's own tracemalloc.stop() is not safe while other threads allocate
# through the RAW domain without the GIL, heapscope or not: a thread already
# inside its hook waits for the GIL, then runs on after stop() freed the
# tracer's buffers (seen crashing in traceback_new() on 3.9 and 3.11 with
# just `tracemalloc.start(); tracemalloc.stop()` in a loop beside such
# threads). So tracemalloc is only started and stopped while no such thread
# runs; heapscope is started and stopped with them running.

def test_heapscope_starting_and_stopping_above_tracemalloc_while_threads_allocate_does_not_crash():
    tracemalloc.start()
    with _Allocating(raw=2, python=1):
        _cycle(("ours.start", "ours.stop"))
    _check_tracemalloc_traces_new_blocks("after the threads")


def test_heapscope_restarting_around_tracemalloc_while_threads_allocate_does_not_crash():
    # ours below tracemalloc (left passive by each stop), ours again on top.
    heapscope.start()
    tracemalloc.start()
    with _Allocating(raw=2, python=1):
        _cycle(("ours.stop", "ours.start"))
        _check_heapscope_traces_new_blocks("with the threads running")
    tracemalloc.stop()
    _check_heapscope_traces_new_blocks("after tracemalloc.stop()")


# Its rounds of tracemalloc started first use up heapscope's RAW hook slots,
# which start() then says (the many-rounds test below checks that warning).
@pytest.mark.filterwarnings("ignore:heapscope cannot trace the RAW domain:RuntimeWarning")
def test_both_tracers_starting_and_stopping_while_python_threads_allocate_do_not_crash():
    with _Allocating(raw=0, python=2):
        _cycle(("theirs.start", "ours.start", "ours.stop", "theirs.stop"))
        _cycle(("ours.start", "theirs.start", "ours.stop", "ours.start", "theirs.stop", "ours.stop"))


def test_heapscope_works_with_tracemalloc_and_tracemalloc_impossible_to_import(tmp_path):
    # heapscope's own engine does all the work: with both modules blocked,
    # every part of the API still works (the one documented exception,
    # loading a snapshot that CPython's tracemalloc pickled, is not used).
    script = tmp_path / "blocked.py"
    script.write_text(textwrap.dedent("""\
        import sys
        sys.modules["tracemalloc"] = None   # "import tracemalloc" now raises ImportError
        sys.modules["_tracemalloc"] = None
        import heapscope

        def allocate():
            return bytearray(345_678)

        heapscope.start(5)
        first = heapscope.take_snapshot()
        kept = allocate()
        tb = heapscope.get_object_traceback(kept)
        assert tb is not None and tb[-1].lineno == 7, tb
        second = heapscope.take_snapshot()
        top = second.statistics("lineno")[0]
        assert top.size >= 345_678 and top.traceback[-1].lineno == 7, top
        second.statistics("traceback")
        second.statistics("filename", cumulative=True)
        diff = second.compare_to(first, "lineno")
        assert diff[0].size_diff >= 345_678, diff[0]
        only_here = second.filter_traces([heapscope.Filter(True, __file__)])
        assert sum(t.size for t in only_here.traces) >= 345_678
        assert heapscope.get_traced_memory()[0] >= 345_678
        heapscope.reset_peak()
        heapscope.get_tracemalloc_memory()
        heapscope.clear_traces()
        path = sys.argv[1]
        second.dump(path)
        loaded = heapscope.Snapshot.load(path)
        assert len(loaded.traces) == len(second.traces)
        heapscope.stop()
        assert "_tracemalloc" in sys.modules and sys.modules["_tracemalloc"] is None
        assert sys.modules["tracemalloc"] is None
        print("ok")
        """))
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "snap.bin")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr


def test_raw_blocks_stay_traced_through_many_rounds_of_tracemalloc_started_first(tmp_path):
    # CPython's tracemalloc, started before heapscope and stopped after it,
    # restores the RAW allocator it found, dropping heapscope's newer hooks,
    # so each such round puts heapscope's hooks on top anew; RAW hooks are
    # never removed (threads call them without the GIL), so the rounds are
    # counted. Up to 64 rounds every RAW block is traced; past them start()
    # says RAW tracing is off (a RuntimeWarning, an error under -W error)
    # rather than losing RAW blocks silently. In a subprocess: the rounds
    # would use up this process's hooks.
    script = tmp_path / "rounds.py"
    script.write_text(textwrap.dedent("""\
        import ctypes, sys, threading, tracemalloc, warnings
        import heapscope

        nogil = ctypes.CDLL(None)  # calls release the GIL
        nogil.PyMem_RawMalloc.restype = ctypes.c_void_p
        nogil.PyMem_RawMalloc.argtypes = [ctypes.c_size_t]
        nogil.PyMem_RawFree.argtypes = [ctypes.c_void_p]

        def raw_block_is_traced():
            out = []
            thread = threading.Thread(target=lambda: out.append(nogil.PyMem_RawMalloc(234_569)))
            thread.start()
            thread.join()
            traced = any(size == 234_569 for _, size, _, _ in heapscope._get_traces())
            nogil.PyMem_RawFree(out[0])
            return traced

        untraced = []
        for round in range(64):
            tracemalloc.start(1)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                heapscope.start(1)
            if not raw_block_is_traced():
                untraced.append(round)
            heapscope.stop()
            tracemalloc.stop()
        assert not untraced, untraced

        tracemalloc.start(1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            heapscope.start(1)
        assert [w.category for w in caught] == [RuntimeWarning], caught
        assert "RAW domain" in str(caught[0].message), caught[0].message
        assert heapscope.is_tracing() and not raw_block_is_traced()
        heapscope.stop()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                heapscope.start(1)
            except RuntimeWarning:
                pass
            else:
                raise AssertionError("no RuntimeWarning under -W error")
        assert not heapscope.is_tracing()
        tracemalloc.stop()
        print("ok")
        """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr
