"""os.fork() while heapscope is tracing, including while other threads are
allocating (with the GIL, and through the RAW domain without it).

The child must keep tracing (its new blocks traced with the right
traceback), take a snapshot, stop, start again and exit 0; the parent must
be unaffected. A fork taken while another thread holds the tracer's lock
would leave that lock held forever in the child, so every child runs under
a time limit: a deadlock fails the test instead of hanging it.

Each scenario runs in a fresh interpreter (see _run_isolated), so a crash or
a hang fails one test with a diagnosis instead of taking pytest down.

Run: python -m pytest tests/test_fork.py -q
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings

import pytest

import heapscope

from raw_allocator import raw_free as _raw_free  # noqa: E402  (calls without the GIL)
from raw_allocator import raw_malloc as _raw_malloc  # noqa: E402
from raw_allocator import raw_realloc as _raw_realloc  # noqa: E402

_CHILD_SECONDS = 20      # a child still running after this is deadlocked
_SCENARIO_SECONDS = 90   # the whole scenario, forks included

_HERE = os.path.abspath(__file__)

# Under AddressSanitizer (tests/asan/run.sh preloads it), a child forked
# while other threads call malloc can deadlock inside ASan's own allocator:
# GCC 12's libasan does not lock it around fork(), so a lock held by a thread
# that does not exist in the child stays held (seen: the child blocked in
# SizeClassAllocator64::GetFromAllocator; a subprocess child, between fork
# and exec, hung the same way). That is the sanitizer's limit, not
# heapscope's, so those scenarios only run without it.
_UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")
_needs_fork_safe_malloc = pytest.mark.skipif(
    _UNDER_ASAN, reason="ASan's allocator is not fork-safe while other threads allocate")


def _line_of(marker):
    """The line number of the line of this file that ends with `marker`."""
    with open(_HERE) as f:
        for number, text in enumerate(f, start=1):
            if text.rstrip().endswith(marker) and "_line_of" not in text:
                return number
    raise LookupError(marker)


# --------------------------------------------------------------------------
# What a child checks

def _traced_sizes(size):
    return [t for t in heapscope._get_traces() if t[1] == size]


def _child_checks():
    """Run in a forked child: tracing goes on, snapshots work, stop and a
    new start work. Raises AssertionError on any problem."""
    assert heapscope.is_tracing()

    # A Python object allocated in the child is traced at its line.
    data = bytearray(77_777)  # @child-object
    tb = heapscope.get_object_traceback(data)
    assert tb is not None
    assert (tb[-1].filename, tb[-1].lineno) == (_HERE, _line_of("# @child-object"))

    # So is a raw block allocated without the GIL; and a snapshot of
    # everything, inherited traces included, works.
    address = _raw_malloc(88_888)  # @child-raw
    try:
        snapshot = heapscope.take_snapshot()
        current, peak = heapscope.get_traced_memory()
    finally:
        _raw_free(address)
    raw = [trace for trace in snapshot.traces if trace.size == 88_888]
    assert len(raw) == 1
    assert (raw[0].traceback[-1].filename, raw[0].traceback[-1].lineno) == (
        _HERE, _line_of("# @child-raw"))
    stats = {(s.traceback[-1].filename, s.traceback[-1].lineno): s
             for s in snapshot.statistics("lineno")}
    assert stats[(_HERE, _line_of("# @child-object"))].size >= 77_777
    assert 88_888 + 77_777 <= current <= peak

    heapscope.stop()
    assert not heapscope.is_tracing()
    assert heapscope.get_traced_memory() == (0, 0)
    assert heapscope._get_traces() == []

    # Tracing again from scratch in the child.
    heapscope.start(3)
    again = bytearray(66_666)  # @child-restart
    tb = heapscope.get_object_traceback(again)
    assert tb is not None
    assert (tb[-1].filename, tb[-1].lineno) == (_HERE, _line_of("# @child-restart"))
    address = _raw_malloc(99_999)  # @child-restart-raw
    try:
        traced = _traced_sizes(99_999)
        assert len(traced) == 1 and traced[0][2][0] == (_HERE, _line_of("# @child-restart-raw"))
    finally:
        _raw_free(address)
    assert _traced_sizes(99_999) == []
    heapscope.take_snapshot().statistics("traceback")
    heapscope.stop()


def _fork_and_check(child=_child_checks):
    """Forks; the child runs `child` and exits 0 on success. Returns once the
    child exited 0; fails with the child's traceback, or kills the child and
    fails if it did not finish within the time limit."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # 3.12+ warns that fork() in a multi-threaded process may deadlock
        # the child: that is exactly what is under test.
        warnings.simplefilter("ignore", DeprecationWarning)
        # Hand the GIL to the allocating threads and fork as soon as it
        # comes back: a thread that just released it is inside its
        # allocation call, so the fork lands in the middle of one.
        time.sleep(0)
        pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(read_end)
            child()
            status = 0
        except BaseException:
            os.write(write_end, traceback.format_exc().encode())
        finally:
            os._exit(status)
    os.close(write_end)
    deadline = time.monotonic() + _CHILD_SECONDS
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            raise AssertionError(f"the forked child hung for {_CHILD_SECONDS} s (deadlock)")
        time.sleep(0.001)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode(errors="replace")
    if os.WIFSIGNALED(status):
        raise AssertionError(f"the forked child died of {signal.Signals(os.WTERMSIG(status)).name}")
    assert os.WEXITSTATUS(status) == 0, f"the forked child failed:\n{report}"


def _allocate_kept():
    return bytearray(44_444)  # @before-fork


def _parent_checks(before_fork_object):
    """The parent after its children exited: tracing unaffected."""
    assert heapscope.is_tracing()
    tb = heapscope.get_object_traceback(before_fork_object)
    assert tb is not None and (tb[-1].filename, tb[-1].lineno) == (_HERE, _line_of("# @before-fork"))
    data = bytearray(55_555)  # @parent-after
    tb = heapscope.get_object_traceback(data)
    assert tb is not None and (tb[-1].filename, tb[-1].lineno) == (_HERE, _line_of("# @parent-after"))
    current, peak = heapscope.get_traced_memory()
    assert 55_555 <= current <= peak
    heapscope.take_snapshot().statistics("lineno")


# --------------------------------------------------------------------------
# Allocating threads, running across the forks

class _Allocators:
    """Python threads allocating objects (GIL held) and threads allocating,
    moving and freeing raw blocks through ctypes (GIL released)."""

    def __init__(self, n_python=2, n_raw=2, raw_depth=0):
        self.stop = threading.Event()
        self.errors = []
        self.raw_depth = raw_depth
        self.threads = (
            [threading.Thread(target=self._guard, args=(self._python_work, k)) for k in range(n_python)]
            + [threading.Thread(target=self._guard, args=(self._deep_raw_work, k)) for k in range(n_raw)]
        )

    def _guard(self, work, seed):
        try:
            work(random.Random(seed))
        except BaseException:
            self.errors.append(traceback.format_exc())

    def _python_work(self, rng):
        keep = []
        while not self.stop.is_set():
            if rng.random() < 0.6 or not keep:
                keep.append(bytearray(rng.randrange(1, 4000)))
            else:
                del keep[rng.randrange(len(keep))]
            if len(keep) > 200:
                del keep[:100]

    def _deep_raw_work(self, rng, depth=0):
        # A deep stack makes each traced allocation hold the tracer's lock
        # longer (every frame is resolved under it), so forks are more
        # likely to happen while another thread holds it.
        if depth < self.raw_depth:
            self._deep_raw_work(rng, depth + 1)
        else:
            self._raw_work(rng)

    def _raw_work(self, rng):
        blocks = []
        try:
            while not self.stop.is_set():
                choice = rng.random()
                if choice < 0.5 or not blocks:
                    blocks.append(_raw_malloc(rng.randrange(1, 100_000)))
                elif choice < 0.75:
                    i = rng.randrange(len(blocks))
                    blocks[i] = _raw_realloc(blocks[i], rng.randrange(1, 100_000))
                else:
                    _raw_free(blocks.pop(rng.randrange(len(blocks))))
                if len(blocks) > 100:
                    _raw_free(blocks.pop(0))
        finally:
            for address in blocks:
                _raw_free(address)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()
        if self.errors:
            raise AssertionError("an allocating thread failed:\n" + self.errors[0])


# --------------------------------------------------------------------------
# Scenarios (each runs in a fresh interpreter)

def _scenario_fork_while_tracing():
    heapscope.start(5)
    kept = _allocate_kept()
    _fork_and_check()
    _parent_checks(kept)
    heapscope.stop()


def _scenario_child_sees_the_parents_traces():
    heapscope.start()
    kept = _allocate_kept()

    def child():
        # Blocks allocated before the fork are still live in the child, and
        # still traced there, as with CPython's tracemalloc.
        tb = heapscope.get_object_traceback(kept)
        assert tb is not None
        assert (tb[-1].filename, tb[-1].lineno) == (_HERE, _line_of("# @before-fork"))
        _child_checks()

    _fork_and_check(child)
    _parent_checks(kept)
    heapscope.stop()


def _child_quick_checks():
    """A cheap child: one traced allocation at the right line, then exit."""
    data = bytearray(33_333)  # @child-quick
    tb = heapscope.get_object_traceback(data)
    assert tb is not None
    assert (tb[-1].filename, tb[-1].lineno) == (_HERE, _line_of("# @child-quick"))


def _scenario_fork_while_threads_allocate():
    # Deep stacks and a traceback limit to match make every raw allocation
    # hold the tracer's lock for a while (each frame is resolved under it):
    # measured on 3.11, about one fork in six then lands while a raw thread
    # holds the lock, so without working fork handlers one of the 40 cheap
    # children below deadlocks with near certainty.
    sys.setrecursionlimit(10_000)
    threading.stack_size(64 << 20)
    heapscope.start(1000)
    kept = _allocate_kept()
    with _Allocators(n_python=1, n_raw=3, raw_depth=1000):
        time.sleep(0.05)  # let every thread reach its allocation loop
        for _ in range(60):
            _fork_and_check(_child_quick_checks)
        _fork_and_check()  # and once the full checks, 1000-frame tracebacks included
    _parent_checks(kept)
    heapscope.stop()
    assert heapscope.get_traced_memory() == (0, 0)


def _scenario_fork_from_a_secondary_thread_while_threads_allocate():
    heapscope.start(2)
    kept = _allocate_kept()
    failures = []

    def fork_from_here():
        try:
            for _ in range(10):
                _fork_and_check()
        except BaseException:
            failures.append(traceback.format_exc())

    with _Allocators(n_python=1, n_raw=2):
        forker = threading.Thread(target=fork_from_here)
        forker.start()
        forker.join()
    assert not failures, failures[0]
    _parent_checks(kept)
    heapscope.stop()


def _scenario_fork_while_not_tracing_then_start_in_child():
    heapscope.start()
    heapscope.stop()
    with _Allocators(n_python=1, n_raw=2):
        def child():
            assert not heapscope.is_tracing()
            heapscope.start(5)
            _child_checks()
        for _ in range(5):
            _fork_and_check(child)
    assert not heapscope.is_tracing()


def _scenario_subprocesses_while_tracing_and_threads_allocate():
    # subprocess forks (or vforks) and execs: the fork handlers must not
    # deadlock there either.
    heapscope.start()
    kept = _allocate_kept()
    with _Allocators(n_python=1, n_raw=2):
        for _ in range(5):
            result = subprocess.run([sys.executable, "-c", "print('ok')"],
                                    capture_output=True, text=True, timeout=_CHILD_SECONDS)
            assert result.stdout == "ok\n"
    _parent_checks(kept)
    heapscope.stop()


def _run_isolated(scenario):
    """Runs `scenario` in a fresh interpreter with a time limit; fails with
    its output if it crashed, hung or raised."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import faulthandler; faulthandler.enable(); "
        f"faulthandler.dump_traceback_later({_SCENARIO_SECONDS}, exit=True); "
        "import test_fork as t; sys.setswitchinterval(1e-4); "
        f"t.{scenario.__name__}(); print('scenario done')"
    )
    try:
        child = subprocess.run([sys.executable, "-c", code, os.path.dirname(_HERE)],
                               capture_output=True, text=True, timeout=_SCENARIO_SECONDS + 30)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{scenario.__name__} hung:\n{e.stderr}")
    how = f"exit code {child.returncode}"
    if child.returncode < 0:
        how = signal.Signals(-child.returncode).name
    assert child.returncode == 0 and "scenario done" in child.stdout, (
        f"{scenario.__name__} failed ({how}):\n{child.stdout[-3000:]}\n{child.stderr[-6000:]}")


# --------------------------------------------------------------------------
# Tests

def test_a_forked_child_keeps_tracing_takes_snapshots_stops_and_exits_cleanly():
    _run_isolated(_scenario_fork_while_tracing)


def test_a_forked_child_still_traces_the_blocks_allocated_before_the_fork():
    _run_isolated(_scenario_child_sees_the_parents_traces)


@_needs_fork_safe_malloc
def test_forking_while_threads_allocate_with_and_without_the_gil_never_deadlocks_the_child():
    _run_isolated(_scenario_fork_while_threads_allocate)


@_needs_fork_safe_malloc
def test_forking_from_a_secondary_thread_while_others_allocate_works():
    _run_isolated(_scenario_fork_from_a_secondary_thread_while_threads_allocate)


@_needs_fork_safe_malloc
def test_a_child_forked_while_not_tracing_can_start_tracing():
    _run_isolated(_scenario_fork_while_not_tracing_then_start_in_child)


@_needs_fork_safe_malloc
def test_subprocesses_started_while_tracing_and_threads_allocate_do_not_hang():
    _run_isolated(_scenario_subprocesses_while_tracing_and_threads_allocate)
