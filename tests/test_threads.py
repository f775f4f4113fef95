"""heapscope traces correctly while many threads allocate at once.

Three situations, each with a test that fails if it broke:

* Python threads allocating through the MEM and OBJ domains (GIL held): each
  block carries the traceback of the thread that allocated it, never another
  thread's.
* Threads calling PyMem_RawMalloc/RawRealloc/RawFree *without the GIL*
  (through ctypes.CDLL, which releases the GIL around the call): heapscope
  reads the calling thread's own frames, so the trace points at the Python
  line that made the call, and freed or moved blocks leave no trace behind.
* start/stop/clear_traces/take_snapshot racing with allocating threads: no
  crash, no hang, and the tracer's counters and tables stay consistent.

Each worker thread runs code compiled under its own file name, so a trace
attributed to the wrong thread is visible as a wrong file name.

Run: python -m pytest tests/test_threads.py -q
"""

import array
import collections
import ctypes
import faulthandler
import gc
import os
import random
import signal
import subprocess
import sys
import threading
import traceback

import pytest

import heapscope

from raw_allocator import gil_check_without_gil as _gil_check_nogil  # noqa: E402
from raw_allocator import raw_free as _raw_free  # noqa: E402  (calls without the GIL)
from raw_allocator import raw_malloc as _raw_malloc  # noqa: E402
from raw_allocator import raw_realloc as _raw_realloc  # noqa: E402

# The same check through PyDLL, which keeps the GIL: proves the check works.
_gil_check_with_gil = ctypes.pythonapi.PyGILState_Check
_gil_check_with_gil.restype = ctypes.c_int
_gil_check_with_gil.argtypes = []

# A size no allocator can satisfy: PyMem_RawRealloc fails and keeps the block.
_IMPOSSIBLE_SIZE = sys.maxsize // 2

# Generous upper bound for heapscope's counters in these tests.
_ABSURD = 1 << 40

# Every test here must finish well within this; a hang becomes a failure.
_WATCHDOG_SECONDS = 120
_SCENARIO_SECONDS = 60


def _compile_functions(filename, source):
    """Compiles `source` as if it lived in `filename`; returns its namespace
    and the line number of each line tagged ``# @name``."""
    namespace = {
        # Repetition builds a new object without argument tuples, whose
        # free list would blur the counts per line.
        "ONE_BYTE": bytearray(1),
        "ONE_ITEM": array.array("q", [0]),
        "raw_malloc": _raw_malloc,
        "raw_realloc": _raw_realloc,
        "raw_free": _raw_free,
        "gil_check": _gil_check_nogil,
    }
    exec(compile(source, filename, "exec"), namespace)
    lines = {}
    for number, text in enumerate(source.splitlines(), start=1):
        if "# @" in text:
            lines[text.split("# @")[1].strip()] = number
    return namespace, lines


@pytest.fixture(autouse=True)
def clean_tracer():
    """Each test starts and ends with heapscope stopped, a fast thread switch
    interval (so threads really interleave) and a watchdog against hangs."""
    heapscope.stop()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    faulthandler.dump_traceback_later(_WATCHDOG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        sys.setswitchinterval(interval)
        heapscope.stop()


def _run_threads(targets):
    threads = [threading.Thread(target=target, args=args) for target, args in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _traces_in(filename):
    """(size, most recent frame, total_nframe, frames) of each live trace
    whose most recent frame lies in `filename`."""
    found = []
    for domain, size, frames, total_nframe in heapscope._get_traces():
        assert domain == 0
        if frames and frames[0][0] == filename:
            found.append((size, frames[0], total_nframe, frames))
    return found


# --------------------------------------------------------------------------
# Python threads, GIL held: MEM and OBJ domains

_GIL_WORKER_SOURCE = """\
def allocate(barrier, count, byte_size, array_length, kept_data, kept_items):
    barrier.wait()
    for i in range(count):
        data = ONE_BYTE * byte_size  # @bytearray
        items = ONE_ITEM * array_length  # @array
        kept_data[i] = data
        kept_items[i] = items
"""


def test_every_block_allocated_by_many_python_threads_carries_its_own_threads_traceback():
    n_threads, count = 8, 150
    workers = []
    for index in range(n_threads):
        filename = f"<heapscope-gil-thread-{index}>"
        # Shift each worker's lines so threads also differ by line number.
        namespace, lines = _compile_functions(filename, "\n" * index + _GIL_WORKER_SOURCE)
        # Sizes straddle pymalloc's 512-byte limit, where the object
        # allocator falls back to the raw one (a nested call, traced once).
        byte_size = 100 + 150 * index
        array_length = 3 + 20 * index
        workers.append((filename, lines, namespace["allocate"], byte_size, array_length,
                        [None] * count, [None] * count))

    barrier = threading.Barrier(n_threads)
    heapscope.start(4)
    _run_threads([
        (allocate, (barrier, count, byte_size, array_length, kept_data, kept_items))
        for _, _, allocate, byte_size, array_length, kept_data, kept_items in workers
    ])
    snapshot = heapscope.take_snapshot()
    raw_traces = heapscope._get_traces()

    for filename, lines, _, byte_size, array_length, kept_data, kept_items in workers:
        # Every object the thread kept was traced at its own line.
        for data, items in zip(kept_data, kept_items):
            tb = heapscope.get_object_traceback(data)
            assert tb is not None and (tb[-1].filename, tb[-1].lineno) == (filename, lines["bytearray"])
            tb = heapscope.get_object_traceback(items)
            assert tb is not None and (tb[-1].filename, tb[-1].lineno) == (filename, lines["array"])

        # Exact sizes and counts per line: two blocks per object (header
        # and buffer), adding up to sys.getsizeof. Neither type has a free
        # list, so every object is a fresh allocation.
        by_line = {
            stat.traceback[-1].lineno: stat
            for stat in snapshot.filter_traces([heapscope.Filter(True, filename)]).statistics("lineno")
        }
        bytearray_stat = by_line[lines["bytearray"]]
        assert bytearray_stat.count == 2 * count
        assert bytearray_stat.size == count * sys.getsizeof(bytearray(1) * byte_size)
        # array.array keeps its items in the MEM domain (PyMem_Malloc).
        array_stat = by_line[lines["array"]]
        assert array_stat.count == 2 * count
        assert array_stat.size == count * sys.getsizeof(array.array("q", [0]) * array_length)
        assert bytearray_stat.size != array_stat.size

        # The rest of the stack is the worker thread's own: allocate <-
        # Thread.run <- ..., with nframe=4 frames kept of a deeper stack.
        for _, size, frames, total_nframe in raw_traces:
            if frames[0][0] != filename or frames[0][1] not in (lines["bytearray"], lines["array"]):
                continue
            assert len(frames) == 4
            assert total_nframe >= 4
            assert frames[1][0] == threading.__file__


# --------------------------------------------------------------------------
# RAW domain without the GIL

_RAW_WORKER_SOURCE = """\
def raw_work(barrier, sizes, realloc_extra, out):
    barrier.wait()
    gil_states = set()
    blocks = []
    for size in sizes:
        gil_states.add(gil_check())
        address = raw_malloc(size)  # @malloc
        blocks.append([address, size])
    for n, block in enumerate(blocks):
        if n % 3 == 1:
            moved = raw_realloc(block[0], block[1] + realloc_extra)  # @realloc
            assert moved
            block[0] = moved
            block[1] += realloc_extra
        elif n % 3 == 2:
            raw_free(block[0])  # @free
            block[0] = None
        elif n % 6 == 0:
            failed = raw_realloc(block[0], IMPOSSIBLE_SIZE)  # @failed_realloc
            assert not failed
    out.append((gil_states, blocks))
"""


def test_raw_calls_through_ctypes_cdll_are_really_made_without_the_gil():
    # The premise of the next test, checked on this Python: through CDLL the
    # call runs without the GIL, through pythonapi (PyDLL) with it.
    assert _gil_check_with_gil() == 1
    assert _gil_check_nogil() == 0
    seen = []
    thread = threading.Thread(target=lambda: seen.append((_gil_check_nogil(), _gil_check_with_gil())))
    thread.start()
    thread.join()
    assert seen == [(0, 1)]


def test_raw_blocks_allocated_by_many_threads_without_the_gil_are_traced_at_the_calling_line():
    n_threads, count = 8, 120
    realloc_extra = 50_000
    workers = []
    for index in range(n_threads):
        filename = f"<heapscope-raw-thread-{index}>"
        namespace, lines = _compile_functions(filename, "\n" * index + _RAW_WORKER_SOURCE)
        namespace["IMPOSSIBLE_SIZE"] = _IMPOSSIBLE_SIZE
        # Unique sizes: a traced size names exactly one block of one thread.
        sizes = [10_000 + 1_000 * index + j for j in range(count)]
        workers.append((filename, lines, namespace["raw_work"], sizes, []))

    barrier = threading.Barrier(n_threads)
    heapscope.start(3)
    try:
        _run_threads([(work, (barrier, sizes, realloc_extra, out))
                      for _, _, work, sizes, out in workers])
        for filename, lines, _, sizes, out in workers:
            gil_states, blocks = out[0]
            assert gil_states == {0}, "PyMem_RawMalloc was called with the GIL held"

            expected = collections.Counter()
            for n, (address, size) in enumerate(blocks):
                if address is None:
                    continue  # freed: must have no trace
                # Moved blocks are traced at the realloc line with their new
                # size; a failed realloc leaves the block traced where it was.
                line = lines["realloc"] if n % 3 == 1 else lines["malloc"]
                expected[(size, line)] += 1
            traced = collections.Counter()
            for size, (_, lineno), total_nframe, frames in _traces_in(filename):
                if size < 10_000:
                    continue  # Python objects: the int addresses, the list
                traced[(size, lineno)] += 1
                # The caller's own stack, read without the GIL: raw_work <-
                # Thread.run <- ..., three frames kept.
                assert len(frames) == 3 and total_nframe >= 3
                assert frames[1][0] == threading.__file__
            assert traced == expected
    finally:
        for *_, out in workers:
            for _, blocks in out:
                for address, _ in blocks:
                    if address is not None:
                        _raw_free(address)

    for filename, *_ in workers:
        assert [t for t in _traces_in(filename) if t[0] >= 10_000] == []


def test_a_failed_raw_realloc_keeps_the_block_traced_with_its_original_traceback():
    heapscope.start()
    address = _raw_malloc(123_457)
    line = sys._getframe().f_lineno - 1
    try:
        assert not _raw_realloc(address, _IMPOSSIBLE_SIZE)
        traced = [t for t in heapscope._get_traces() if t[1] == 123_457]
        assert traced == [(0, 123_457, ((__file__, line),), traced[0][3])]
    finally:
        _raw_free(address)
    assert [t for t in heapscope._get_traces() if t[1] == 123_457] == []


# --------------------------------------------------------------------------
# Control functions racing with allocating threads

_RACE_WORKER_SOURCE = """\
def python_work(stop, pause, paused, resume, seed):
    rng = random.Random(seed)
    keep = []
    while not stop.is_set():
        if pause.is_set():
            paused.wait()
            resume.wait()
            continue
        choice = rng.random()
        if choice < 0.4:
            keep.append(bytearray(rng.randrange(1, 3000)))  # @py_alloc
        elif choice < 0.6:
            keep.append({i: str(i) for i in range(rng.randrange(1, 40))})  # @py_dict
        elif choice < 0.7 and keep:
            data = keep[rng.randrange(len(keep))]
            heapscope.get_object_traceback(data)
        elif keep:
            del keep[rng.randrange(len(keep))]
        if len(keep) > 300:
            del keep[:150]


def raw_work(stop, pause, paused, resume, base, slots, live):
    # Slot s holds at most one block, of size base + 16*s (+8 once moved by
    # a realloc), so at any quiet moment a traced size names one live block.
    rng = random.Random(base)
    blocks = [None] * slots  # [address, moved] or None
    try:
        while not stop.is_set():
            if pause.is_set():
                live[:] = [base + 16 * s + (8 if b[1] else 0)
                           for s, b in enumerate(blocks) if b is not None]
                paused.wait()
                resume.wait()
                continue
            s = rng.randrange(slots)
            block = blocks[s]
            if block is None:
                blocks[s] = [raw_malloc(base + 16 * s), False]  # @raw_malloc
            elif rng.random() < 0.5:
                raw_free(block[0])  # @raw_free
                blocks[s] = None
            elif not block[1]:
                block[0] = raw_realloc(block[0], base + 16 * s + 8)  # @raw_realloc
                block[1] = True
            else:
                assert not raw_realloc(block[0], IMPOSSIBLE_SIZE)  # @raw_failed
    finally:
        for block in blocks:
            if block is not None:
                raw_free(block[0])
"""


class _Workers:
    """Allocating threads that the main thread can pause at a quiet point:
    `pause` asks them to stop, the `paused` barrier says they all did, the
    `resume` barrier lets them go. A worker that raises breaks the barriers,
    so the main thread reports its error instead of waiting for it."""

    def __init__(self, n_python, n_raw):
        namespace, self.lines = _compile_functions("<heapscope-race-worker>", _RACE_WORKER_SOURCE)
        namespace.update(random=random, heapscope=heapscope, IMPOSSIBLE_SIZE=_IMPOSSIBLE_SIZE)
        n_threads = n_python + n_raw
        self.stop = threading.Event()
        self.pause = threading.Event()
        self.paused = threading.Barrier(n_threads + 1)
        self.resume = threading.Barrier(n_threads + 1)
        self.errors = []
        self.raw_live = [[] for _ in range(n_raw)]
        self.raw_bases = [200_000 + 10_000 * k for k in range(n_raw)]
        common = (self.stop, self.pause, self.paused, self.resume)
        self.threads = [
            threading.Thread(target=self._guard, args=(namespace["python_work"], *common, k))
            for k in range(n_python)
        ] + [
            threading.Thread(target=self._guard,
                             args=(namespace["raw_work"], *common, self.raw_bases[k], 64,
                                   self.raw_live[k]))
            for k in range(n_raw)
        ]

    def _guard(self, work, *args):
        try:
            work(*args)
        except threading.BrokenBarrierError:
            pass  # shutting down, or another worker failed
        except BaseException:
            self.errors.append(traceback.format_exc())
            self.paused.abort()
            self.resume.abort()

    def _raise_errors(self):
        if self.errors:
            raise AssertionError("a worker thread failed:\n" + self.errors[0])

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.paused.abort()
        self.resume.abort()
        for thread in self.threads:
            thread.join()
        self._raise_errors()

    def quiesce(self):
        self.pause.set()
        try:
            self.paused.wait()
        except threading.BrokenBarrierError:
            self._raise_errors()
            raise

    def go_on(self):
        self.pause.clear()
        try:
            self.resume.wait()
        except threading.BrokenBarrierError:
            self._raise_errors()
            raise

    def raw_sizes(self):
        return {size for live in self.raw_live for size in live}

    def is_raw_size(self, size):
        return any(base <= size < base + 10_000 for base in self.raw_bases)


def _check_counters():
    current, peak = heapscope.get_traced_memory()
    assert 0 <= current <= peak < _ABSURD
    assert 0 <= heapscope.get_tracemalloc_memory() < _ABSURD


def _check_stopped():
    assert not heapscope.is_tracing()
    assert heapscope.get_traced_memory() == (0, 0)
    assert heapscope._get_traces() == []
    try:
        heapscope.take_snapshot()
    except RuntimeError:
        pass
    else:
        raise AssertionError("take_snapshot() worked after stop()")


def _check_quiet_state(workers):
    """With every worker paused: the table's total is the current counter
    (up to the few objects made by the two calls themselves), and the raw
    traces are exactly live raw blocks, none freed or moved."""
    # A garbage collection between the two reads would free memory that the
    # first read counted: collect first, and keep the collector off.
    gc.collect()
    gc.disable()
    try:
        current = heapscope.get_traced_memory()[0]
        traces = heapscope._get_traces()
    finally:
        gc.enable()
    total = sum(size for _, size, _, _ in traces)
    assert abs(total - current) < 4096, (total, current)
    traced_raw = [size for _, size, frames, _ in traces
                  if workers.is_raw_size(size) and frames[0][0] == "<heapscope-race-worker>"]
    assert len(traced_raw) == len(set(traced_raw)), "a raw block is traced twice"
    stale = set(traced_raw) - workers.raw_sizes()
    assert not stale, f"traces of freed or moved raw blocks remain: {sorted(stale)}"


# The racing scenarios run in a child process (see _run_isolated), so that a
# crash or a deadlock fails the one test with a diagnosis instead of taking
# pytest down with it.

def _scenario_control_functions_racing_with_allocating_threads():
    rng = random.Random(1234)
    with _Workers(n_python=3, n_raw=3) as workers:
        heapscope.start()
        for step in range(300):
            op = rng.random()
            if op < 0.15:
                heapscope.stop()
                _check_stopped()
                heapscope.start(rng.randrange(1, 8))
                assert heapscope.is_tracing()
            elif op < 0.3:
                heapscope.clear_traces()
                _check_counters()
            elif op < 0.35:
                snapshot = heapscope.take_snapshot()
                stats = snapshot.statistics("lineno")
                assert all(stat.size > 0 and stat.count > 0 for stat in stats)
                assert sum(stat.size for stat in stats) == sum(t.size for t in snapshot.traces)
            elif op < 0.5:
                for _, size, frames, total_nframe in heapscope._get_traces():
                    assert 0 < size < _ABSURD and 1 <= len(frames) <= total_nframe
            elif op < 0.6:
                heapscope.reset_peak()
                _check_counters()
            elif op < 0.75:
                workers.quiesce()
                try:
                    _check_quiet_state(workers)
                finally:
                    workers.go_on()
            else:
                _check_counters()
            if step % 50 == 0:
                gc.collect()
        heapscope.stop()
        _check_stopped()
    heapscope.start()
    _check_counters()
    heapscope.stop()
    _check_stopped()


def _scenario_stop_racing_with_allocating_threads():
    with _Workers(n_python=2, n_raw=3):
        for _ in range(300):
            heapscope.start(5)
            heapscope.take_snapshot()
            heapscope.stop()
            _check_stopped()


# A few lines of C, compiled when a test first needs them, for what ctypes
# cannot do: a loop of RAW-domain calls that never takes the GIL between
# calls, so that it overlaps the main thread's calls as much as possible.
_HELPER_SOURCE = r"""
#include <Python.h>

/* Called through ctypes.CDLL, so without the GIL. Until *stop is set (or
   max_rounds rounds), reallocates `block` to an impossible size (a failure,
   which takes the block's trace out and puts it back), and every 64th round
   to `size` first (a success, which traces the block anew). Returns the
   block; *calls_with_gil counts the rounds run with the GIL (must be 0). */
void *hs_realloc_loop(void *block, size_t size, volatile int *stop, long max_rounds,
                      long *rounds, long *calls_with_gil) {
    long n = 0, with_gil = 0;
    for (; n < max_rounds && !*stop; n++) {
        if (n % 64 == 0) {
            void *moved = PyMem_RawRealloc(block, size);
            if (moved != NULL) block = moved;
        }
        if (PyMem_RawRealloc(block, (size_t)PY_SSIZE_T_MAX / 2) != NULL) abort();
        with_gil += PyGILState_Check();
    }
    *rounds = n;
    *calls_with_gil = with_gil;
    return block;
}
"""

_helper_library = []


def _native_helper():
    """The helper above, compiled against this Python's headers with the C
    compiler that builds heapscope (CC, else cc), loaded with ctypes.CDLL."""
    if not _helper_library:
        import shutil
        import sysconfig
        import tempfile
        compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if not compiler:
            pytest.skip("no C compiler to build the test helper")
        directory = tempfile.mkdtemp(prefix="heapscope-test-helper-")
        source = os.path.join(directory, "helper.c")
        library = os.path.join(directory, "helper.so")
        with open(source, "w") as f:
            f.write(_HELPER_SOURCE)
        # The sanitizer runtimes preloaded by tests/asan/run.sh have no
        # business in the compiler.
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        subprocess.run(
            compiler.split() + ["-O1", "-shared", "-fPIC", "-o", library, source,
                                "-I", sysconfig.get_paths()["include"]],
            check=True, env=env, capture_output=True)
        lib = ctypes.CDLL(library)
        lib.hs_realloc_loop.restype = ctypes.c_void_p
        lib.hs_realloc_loop.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int), ctypes.c_long,
            ctypes.POINTER(ctypes.c_long), ctypes.POINTER(ctypes.c_long)]
        _helper_library.append(lib)
    return _helper_library[0]


def _scenario_clear_traces_racing_with_failing_reallocs():
    # A failed realloc takes the block's trace out and puts it back. If
    # clear_traces() (or stop() and start()) runs in between, the trace must
    # stay cleared: putting it back would resurrect a trace from before the
    # clear, whose traceback id the clear invalidated (a wrong traceback, or
    # a crash when the id is past the new tables), and the failed reallocs
    # that follow keep putting it back. After a clear the block may only be
    # traced again by a successful realloc, at the line that called the loop.
    helper = _native_helper()
    size = 654_321
    stop = ctypes.c_int(0)
    rounds, calls_with_gil = ctypes.c_long(0), ctypes.c_long(0)
    result = []

    def loop(block):
        result.append(helper.hs_realloc_loop(  # @native-loop
            block, size, ctypes.byref(stop), 2_000_000, ctypes.byref(rounds),
            ctypes.byref(calls_with_gil)))

    # After each clear, allocations from a varying number of other lines
    # come first, so the loop's traceback gets a different id each time and
    # a resurrected (stale) id cannot name the right traceback by chance.
    namespace, _ = _compile_functions("<heapscope-id-shifters>", "".join(
        f"def shift{k}():\n    return bytearray({k + 1})\n" for k in range(8)))
    shifters = [namespace[f"shift{k}"] for k in range(8)]

    heapscope.start()
    thread = threading.Thread(target=loop, args=(_raw_malloc(size),))
    thread.start()
    loop_line = (os.path.abspath(__file__), _line_of_marker("# @native-loop"))
    wrong = []
    try:
        for step in range(100_000):
            if step % 2:
                heapscope.clear_traces()
            else:
                heapscope.stop()
                heapscope.start()
            for shift in shifters[:step % 8]:
                shift()
            for _, traced_size, frames, _ in heapscope._get_traces():
                if traced_size == size and frames != (loop_line,):
                    wrong.append(frames)
    finally:
        stop.value = 1
        thread.join()
        heapscope.stop()
        if result:
            _raw_free(result[0])
    assert calls_with_gil.value == 0 and rounds.value > 0
    assert wrong == [], f"{len(wrong)} cleared traces came back: {wrong[:3]}"


def _line_of_marker(marker):
    with open(os.path.abspath(__file__)) as f:
        for number, text in enumerate(f, start=1):
            if text.rstrip().endswith(marker) and "_line_of_marker" not in text:
                return number
    raise LookupError(marker)


def _run_isolated(scenario):
    """Runs `scenario` (a function of this module) in a fresh interpreter
    with a time limit, and fails with its output if it crashed, hung or
    raised."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import faulthandler; faulthandler.enable(); "
        f"faulthandler.dump_traceback_later({_SCENARIO_SECONDS}, exit=True); "
        "import test_threads as t; sys.setswitchinterval(1e-5); "
        f"t.{scenario.__name__}(); print('scenario done')"
    )
    try:
        child = subprocess.run(
            [sys.executable, "-c", code, os.path.dirname(os.path.abspath(__file__))],
            capture_output=True, text=True, timeout=_SCENARIO_SECONDS + 30)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{scenario.__name__} hung:\n{e.stderr}")
    assert child.returncode == 0 and "scenario done" in child.stdout, (
        f"{scenario.__name__} failed with exit code {child.returncode}"
        f" ({_signal_name(child.returncode)}):\n{child.stdout[-3000:]}\n{_relevant(child.stderr)}")


def _relevant(stderr):
    """The end of a child's stderr, without the warning AddressSanitizer
    prints for each impossible allocation the tests make on purpose."""
    lines = [line for line in stderr.splitlines() if "failed to allocate 0x" not in line]
    return "\n".join(lines)[-6000:]


def _signal_name(returncode):
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            pass
    return "no signal"


def test_start_stop_clear_and_snapshot_racing_with_allocating_threads_keep_the_tracer_consistent():
    _run_isolated(_scenario_control_functions_racing_with_allocating_threads)


def test_stop_racing_with_allocating_threads_leaves_nothing_traced():
    _run_isolated(_scenario_stop_racing_with_allocating_threads)


def test_a_trace_cleared_during_a_failing_raw_realloc_stays_cleared():
    _run_isolated(_scenario_clear_traces_racing_with_failing_reallocs)
