"""The tracer itself: what gets traced, with which traceback, and the
function API around it, checked against CPython's own module where both can
run the same code."""

import ctypes
import gc
import random
import subprocess
import sys
import textwrap
import tracemalloc as cpython_tracemalloc

import pytest

import heapscope

THIS_FILE = __file__


@pytest.fixture(autouse=True)
def not_tracing_before_and_after():
    heapscope.stop()
    yield
    heapscope.stop()


def lineno_of(marker):
    with open(THIS_FILE) as f:
        for number, line in enumerate(f, 1):
            if marker in line and "lineno_of" not in line:
                return number
    raise AssertionError(marker)


# -- start / stop / limits ---------------------------------------------------


def test_start_and_stop_switch_tracing_on_and_off():
    assert not heapscope.is_tracing()
    heapscope.start()
    assert heapscope.is_tracing()
    heapscope.stop()
    assert not heapscope.is_tracing()


def test_start_sets_the_traceback_limit_only_when_not_already_tracing():
    heapscope.start(7)
    assert heapscope.get_traceback_limit() == 7
    heapscope.start(3)  # already tracing: CPython keeps the limit too
    assert heapscope.get_traceback_limit() == 7
    heapscope.stop()
    heapscope.start(3)
    assert heapscope.get_traceback_limit() == 3


@pytest.mark.parametrize("args", [("x",), (0,), (-1,), (65536,), (2**70,), (1.5,), (1, 2), (None,)])
def test_bad_start_arguments_raise_what_cpython_raises(args):
    with pytest.raises(Exception) as expected:
        cpython_tracemalloc.start(*args)
    with pytest.raises(type(expected.value)) as got:
        heapscope.start(*args)
    assert str(got.value) == str(expected.value)
    assert not heapscope.is_tracing()


def test_start_refuses_keyword_arguments():
    with pytest.raises(TypeError, match="takes no keyword arguments"):
        heapscope.start(nframe=2)


def test_functions_answer_like_cpython_when_not_tracing():
    assert heapscope.get_traced_memory() == (0, 0)
    assert heapscope._get_traces() == []
    assert heapscope.get_object_traceback(object()) is None
    heapscope.clear_traces()
    heapscope.reset_peak()
    with pytest.raises(RuntimeError, match="must be tracing memory allocations"):
        heapscope.take_snapshot()


# -- what is traced ------------------------------------------------------------


def test_a_block_is_traced_with_its_size_and_allocating_line():
    heapscope.start()
    data = bytearray(123_457)  # allocation-under-test
    traces = [t for t in heapscope.take_snapshot().traces if 123_457 <= t.size < 123_600]
    assert len(traces) == 1
    frame = traces[0].traceback[-1]
    assert (frame.filename, frame.lineno) == (THIS_FILE, lineno_of("allocation-under-test"))
    del data


def recurse_then_allocate(depth):
    if depth:
        return recurse_then_allocate(depth - 1)
    return bytearray(98_765)  # deep-allocation


def test_tracebacks_keep_nframe_frames_and_count_the_whole_stack():
    heapscope.start(5)
    cpython_tracemalloc.start(5)
    try:
        data = recurse_then_allocate(40)
        ours = heapscope.get_object_traceback(data)
        theirs = cpython_tracemalloc.get_object_traceback(data)
        ours_raw = [t for t in heapscope._get_traces() if 98_765 <= t[1] < 98_900]
        theirs_raw = [t for t in cpython_tracemalloc._get_traces() if 98_765 <= t[1] < 98_900]
    finally:
        cpython_tracemalloc.stop()
    assert len(ours) == 5
    assert [(f.filename, f.lineno) for f in ours] == [(f.filename, f.lineno) for f in theirs]
    assert ours[-1].lineno == lineno_of("deep-allocation")  # most recent last
    assert [t[2:] for t in ours_raw] == [t[2:] for t in theirs_raw]
    assert ours_raw[0][3] > 40  # total_nframe is the real depth, not the limit


def allocate_at_a(n):
    return bytearray(n)  # alternating-site-a


def allocate_at_b(n):
    return bytearray(n)  # alternating-site-b


def test_stacks_that_alternate_keep_their_own_tracebacks():
    # Stacks seen before are answered from a cache of raw captures: every
    # block must still get the traceback of the stack that allocated it.
    heapscope.start(25)
    kept = []
    for i in range(300):
        site = allocate_at_a if i % 3 else allocate_at_b
        kept.append((site, site(50_000 + i)))
    for site, block in kept:
        traceback = heapscope.get_object_traceback(block)
        marker = "alternating-site-a" if site is allocate_at_a else "alternating-site-b"
        assert traceback[-1].lineno == lineno_of(marker)
        assert traceback[-2].lineno == lineno_of("kept.append((site, site(50_000 + i)))")
        assert traceback.total_nframe == heapscope.get_object_traceback(kept[0][1]).total_nframe


SITES = 12
SITES_SOURCE = "def allocate(k, n):\n" + "".join(
    f"    if k == {k}: return bytearray(n)\n" for k in range(SITES))


def sites_allocator():
    """allocate(k, n): bytearray(n) made on line 2 + k of "<sites>"."""
    namespace = {}
    exec(compile(SITES_SOURCE, "<sites>", "exec"), namespace)
    return namespace["allocate"]


def bytearray_traces():
    """{n: (frames, total_nframe)} of the traced blocks of bytearray(n): its
    buffer keeps n + 1 bytes. (get_object_traceback() leaves total_nframe
    out, as CPython's does.)"""
    return {size - 1: (frames, total) for _, size, frames, total in heapscope._get_traces()}


def allocate_from_caller_a(allocate, k, n):
    return allocate(k, n)  # site-caller-a


def allocate_from_caller_b(allocate, k, n):
    return allocate(k, n)  # site-caller-b


@pytest.mark.parametrize("nframe", [1, 25])
def test_one_function_allocating_on_many_lines_gives_each_block_its_line(nframe):
    # Each thread remembers the tracebacks of several lines below one
    # unchanged stack; more lines than it remembers, runs of one line,
    # and a caller that changes under the same lines must all still give
    # every block the line that allocated it.
    allocate = sites_allocator()
    rng = random.Random(1234)
    plan = []
    for i in range(3000):
        k = rng.choice([0, 0, 0, 1, 2, 3]) if i % 500 < 250 else rng.randrange(SITES)
        caller = allocate_from_caller_b if i % 1000 >= 800 else allocate_from_caller_a
        plan.append((k, caller, 60_000 + i))
    heapscope.start(nframe)
    # Nothing else allocates between two calls, but the list growing.
    blocks = [caller(allocate, k, n) for k, caller, n in plan]
    traces = bytearray_traces()
    depths = set()
    for (k, caller, n), block in zip(plan, blocks):
        traceback = heapscope.get_object_traceback(block)
        assert (traceback[-1].filename, traceback[-1].lineno) == ("<sites>", 2 + k)
        if nframe > 1:
            marker = "site-caller-b" if caller is allocate_from_caller_b else "site-caller-a"
            assert traceback[-2].lineno == lineno_of(marker)
        depths.add(traces[n][1])
    assert len(depths) == 1


def allocate_deeper(allocate, k, n, extra):
    if extra:
        return allocate_deeper(allocate, k, n, extra - 1)
    return allocate(k, n)


@pytest.mark.parametrize("nframe", [1, 25])
def test_lines_allocating_at_depths_that_alternate_give_each_block_its_depth(nframe):
    # The lines a thread remembers are told apart by the depth below them
    # too: the same few lines reached at depths that change from one
    # allocation to the next must give every block its own total_nframe.
    allocate = sites_allocator()
    rng = random.Random(4321)
    plan = [(rng.choice([0, 1, 2]), rng.choice([0, 0, 1, 2, 3]), 60_000 + i) for i in range(2000)]
    heapscope.start(nframe)
    # Nothing else allocates between two calls, but the list growing.
    blocks = [allocate_deeper(allocate, k, n, extra) for k, extra, n in plan]
    traces = bytearray_traces()
    below = set()
    for k, extra, n in plan:
        frames, total = traces[n]
        assert frames[0][:2] == ("<sites>", 2 + k)
        below.add(total - extra)
    assert len(below) == 1
    del blocks


def test_code_objects_that_die_do_not_lend_their_lines_to_new_ones():
    # Fresh functions from exec() often reuse a dead one's address; a cached
    # capture of the dead code object must not name the new one's lines.
    heapscope.start(3)
    kept = []
    for i in range(200):
        namespace = {}
        padding = "\n" * (i % 7)
        exec(compile(f"{padding}def make(n):\n    return bytearray(n)\n", f"<gen-{i}>", "exec"),
             namespace)
        kept.append((i, namespace["make"](40_000 + i)))
        del namespace
        gc.collect()
    for i, block in kept:
        frame = heapscope.get_object_traceback(block)[-1]
        assert (frame.filename, frame.lineno) == (f"<gen-{i}>", 2 + i % 7)


def test_a_block_freed_while_tracing_leaves_no_trace():
    heapscope.start()
    data = bytearray(77_777)
    assert [t for t in heapscope._get_traces() if 77_777 <= t[1] < 77_900]
    del data
    assert not [t for t in heapscope._get_traces() if 77_777 <= t[1] < 77_900]


def test_a_large_object_falling_back_to_the_raw_allocator_is_traced_once():
    # pymalloc hands requests over 512 bytes to PyMem_RawMalloc: one block, one trace.
    heapscope.start()
    cpython_tracemalloc.start()
    try:
        data = b"x" * 250_001
        ours = [t for t in heapscope._get_traces() if 250_001 <= t[1] < 250_100]
        theirs = [t for t in cpython_tracemalloc._get_traces() if 250_001 <= t[1] < 250_100]
    finally:
        cpython_tracemalloc.stop()
    assert len(ours) == 1
    assert [t[1:] for t in ours] == [t[1:] for t in theirs]
    del data


pymem = ctypes.pythonapi  # PyDLL: these calls keep the GIL, as the MEM domain expects
pymem.PyMem_Malloc.restype = ctypes.c_void_p
pymem.PyMem_Malloc.argtypes = [ctypes.c_size_t]
pymem.PyMem_Realloc.restype = ctypes.c_void_p
pymem.PyMem_Realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
pymem.PyMem_Free.restype = None
pymem.PyMem_Free.argtypes = [ctypes.c_void_p]


def test_realloc_moves_the_trace_to_the_new_block_with_the_new_size():
    heapscope.start()
    block = pymem.PyMem_Malloc(40_001)
    assert len([t for t in heapscope._get_traces() if t[1] == 40_001]) == 1
    block = pymem.PyMem_Realloc(block, 900_001)  # realloc-line
    traces = heapscope.take_snapshot().traces
    assert not [t for t in traces if t.size == 40_001]
    moved = [t for t in traces if t.size == 900_001]
    assert len(moved) == 1
    assert moved[0].traceback[-1].lineno == lineno_of("realloc-line")
    pymem.PyMem_Free(block)
    assert not [t for t in heapscope._get_traces() if t[1] == 900_001]


def test_a_block_allocated_before_start_is_not_traced_and_frees_cleanly():
    block = pymem.PyMem_Malloc(31_337)
    heapscope.start()
    assert not [t for t in heapscope._get_traces() if t[1] == 31_337]
    current_before, _ = heapscope.get_traced_memory()
    pymem.PyMem_Free(block)
    assert heapscope.get_traced_memory()[0] <= current_before + 4096


def test_clear_traces_forgets_blocks_but_keeps_tracing():
    heapscope.start()
    data = bytearray(55_555)
    heapscope.clear_traces()
    assert heapscope.is_tracing()
    assert heapscope.get_object_traceback(data) is None
    fresh = bytearray(55_555)
    assert heapscope.get_object_traceback(fresh) is not None


def test_stop_forgets_every_trace():
    heapscope.start()
    data = bytearray(10_000)
    heapscope.stop()
    heapscope.start()
    assert heapscope.get_object_traceback(data) is None
    assert heapscope.get_traced_memory()[0] < 10_000


# -- memory counters -------------------------------------------------------------


def test_traced_memory_follows_allocations_and_keeps_the_peak():
    heapscope.start()
    base, _ = heapscope.get_traced_memory()
    data = bytearray(5_000_000)
    current, peak = heapscope.get_traced_memory()
    assert current - base >= 5_000_000
    del data
    after, peak_after = heapscope.get_traced_memory()
    assert after < current - 4_000_000
    assert peak_after >= current
    heapscope.reset_peak()
    current, peak = heapscope.get_traced_memory()
    assert peak - current < 100_000


def test_tracer_memory_grows_with_the_traces_it_holds():
    heapscope.start(10)
    before = heapscope.get_tracemalloc_memory()
    kept = [bytearray(i % 50 + 1) for i in range(100_000)]
    during = heapscope.get_tracemalloc_memory()
    assert during > before + 100_000 * 16  # at least one 16-byte slot per trace
    heapscope.clear_traces()
    assert heapscope.get_tracemalloc_memory() < during
    del kept


# -- get_object_traceback -------------------------------------------------------------


class WithDict:
    pass


class WithSlots:
    __slots__ = ("a",)


def make_objects(n):
    # One object per kind, each on its own line; none can come from a
    # freelist or be folded by the compiler.
    return {
        "gc-with-dict": WithDict(),  # object-line gc-with-dict (managed dict on 3.11+)
        "gc-with-slots": WithSlots(),  # object-line gc-with-slots
        "bytes": b"y" * n,  # object-line bytes (no GC header)
        "big-tuple": tuple(range(n)),  # object-line big-tuple
    }


@pytest.mark.parametrize("kind", ["gc-with-dict", "gc-with-slots", "bytes", "big-tuple"])
def test_object_traceback_finds_the_line_that_allocated_the_object(kind):
    heapscope.start()
    cpython_tracemalloc.start()
    try:
        obj = make_objects(3000)[kind]
        ours = heapscope.get_object_traceback(obj)
        theirs = cpython_tracemalloc.get_object_traceback(obj)
    finally:
        cpython_tracemalloc.stop()
    assert ours is not None
    assert ours[-1].lineno == lineno_of(f"object-line {kind}")
    # CPython 3.11 misses objects with a managed dict (it ignores that
    # pre-header); everywhere else both tracers must agree.
    if theirs is not None:
        assert [tuple(f) for f in [(x.filename, x.lineno) for x in ours]] == [
            (x.filename, x.lineno) for x in theirs
        ]
    elif not (kind == "gc-with-dict" and sys.version_info[:2] == (3, 11)):
        pytest.fail("CPython's tracemalloc did not trace the object")


def test_object_traceback_of_an_object_from_before_start_is_none():
    obj = WithDict()
    heapscope.start()
    gc.collect()
    assert heapscope.get_object_traceback(obj) is None


# -- the module-level contract --------------------------------------------------------


def test_take_snapshot_uses_the_module_level_functions(monkeypatch):
    heapscope.start(4)
    raw = [(0, 10, (("a.py", 2), ("b.py", 3)), 2)]
    monkeypatch.setattr(heapscope, "_get_traces", lambda: raw)
    monkeypatch.setattr(heapscope, "get_traceback_limit", lambda: 9)
    snapshot = heapscope.take_snapshot()
    assert snapshot.traceback_limit == 9
    assert [str(t) for t in snapshot.traces] == ["b.py:3: 10 B"]


def run_python(code):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result


def test_install_makes_import_tracemalloc_give_heapscope():
    result = run_python(
        """
        import heapscope, sys
        assert heapscope.install() is None
        import tracemalloc
        assert tracemalloc is heapscope
        tracemalloc.start()
        print(tracemalloc.is_tracing(), sys.modules.get("_tracemalloc") is None)
        """
    )
    assert result.stdout.split() == ["True", "True"]


def test_resource_warnings_show_where_heapscope_saw_the_object_allocated():
    result = run_python(
        """
        import heapscope, warnings, gc
        heapscope.install()
        heapscope.start(5)
        warnings.simplefilter("always")
        def leak():
            f = open(__import__("os").devnull)
        leak()
        gc.collect()
        """
    )
    assert "Object allocated at (most recent call last):" in result.stderr
    assert 'File "<string>", lineno 7' in result.stderr  # the open() line


def test_a_workload_gives_the_same_statistics_as_cpython(tmp_path):
    # Same code, each tracer in its own fresh interpreter. Only lines whose
    # objects cannot come from a freelist are compared (marked "compared"):
    # freelist reuse depends on what each tracer's import left behind.
    workload = tmp_path / "workload.py"
    workload.write_text(textwrap.dedent(
        """
        import sys
        tracer = __import__(sys.argv[1])
        class Row:
            __slots__ = ("key", "name", "payload")
            def __init__(self, i):
                self.key = tuple(range(i % 7 + 21))  # compared
                self.name = "row-%05d" % i  # compared
                self.payload = bytearray(64 + i % 300)  # compared
        def build(n):
            rows = [Row(i) for i in range(n)]
            return rows
        tracer.start(3)
        kept = [build(500) for _ in range(4)]
        compared = {n for n, line in enumerate(open(__file__), 1) if line.rstrip().endswith("# " + "compared")}
        snapshot = tracer.take_snapshot().filter_traces([tracer.Filter(True, __file__)])
        for stat in snapshot.statistics("traceback"):
            if stat.traceback[-1].lineno in compared:
                print(stat.size, stat.count, [(f.filename, f.lineno) for f in stat.traceback])
        """
    ))
    outputs = []
    for name in ("tracemalloc", "heapscope"):
        result = subprocess.run(
            [sys.executable, str(workload), name], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert len(outputs[0].splitlines()) == 3  # every compared line allocated
    assert outputs[0] == outputs[1]
