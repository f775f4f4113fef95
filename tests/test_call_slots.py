"""Calls heapscope diverts through relocation slots while it traces.

- PyTraceMalloc_Track / PyTraceMalloc_Untrack, which extensions call to
  report memory they allocate themselves, reach heapscope from a library
  loaded before start() or after it (ctypes.CDLL, dlopen from C), linked with
  lazy binding, full RELRO or -fno-plt, from any thread, with or without the
  GIL, with CPython's return values and semantics.
- Objects reused from CPython's free lists (and resurrected ones) are
  re-dated to the line that reuses them, as the standard module does, on
  every version (3.9-3.12 through the _Py_NewReference wrapper, 3.13 through
  PyRefTracer, whose single slot CPython's tracemalloc.start() would take:
  PyRefTracer_SetTracer/GetTracer are diverted so that both keep re-dating
  in every start/stop order).
- The slots are put back at stop(), kept consistent in a fork child, and
  survive threads that call Track and allocate while start()/stop() run.

The fixture library is built with the system C compiler for the test.
Each scenario runs in a fresh interpreter: which libraries are loaded, and
when, is the point.

Run: python -m pytest tests/test_call_slots.py -q
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import fixture_library

_FIXTURE_C = r"""
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

int PyTraceMalloc_Track(unsigned int domain, uintptr_t ptr, size_t size);
int PyTraceMalloc_Untrack(unsigned int domain, uintptr_t ptr);

int fixture_track(unsigned int domain, uintptr_t ptr, size_t size) {
  return PyTraceMalloc_Track(domain, ptr, size);
}
int fixture_untrack(unsigned int domain, uintptr_t ptr) {
  return PyTraceMalloc_Untrack(domain, ptr);
}

/* Loads `path` with dlopen from C and calls its fixture_track. */
int fixture_dlopen_and_track(const char* path, unsigned int domain, uintptr_t ptr, size_t size) {
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) return -100;
  int (*track)(unsigned int, uintptr_t, size_t) =
      (int (*)(unsigned int, uintptr_t, size_t))dlsym(handle, "fixture_track");
  if (track == NULL) return -101;
  return track(domain, ptr, size);
}

/* Track from a thread Python never saw (no thread state, no GIL). */
struct track_args { unsigned int domain; uintptr_t ptr; size_t size; int result; };
static void* track_thread(void* arg) {
  struct track_args* a = (struct track_args*)arg;
  a->result = PyTraceMalloc_Track(a->domain, a->ptr, a->size);
  return NULL;
}
int fixture_track_in_native_thread(unsigned int domain, uintptr_t ptr, size_t size) {
  struct track_args a = {domain, ptr, size, -100};
  pthread_t thread;
  if (pthread_create(&thread, NULL, track_thread, &a) != 0) return -101;
  pthread_join(thread, NULL);
  return a.result;
}
"""

_VARIANTS = fixture_library.VARIANTS


@pytest.fixture(scope="session")
def fixture_libs(tmp_path_factory):
    return fixture_library.build(tmp_path_factory, "call_slots", _FIXTURE_C)


_PRELUDE = r"""
import ctypes, json, sys
import heapscope
import heapscope._heapscope as _hs

LIBS = json.loads(sys.argv[1])

def load(name, with_gil=False):
    lib = (ctypes.PyDLL if with_gil else ctypes.CDLL)(LIBS[name])
    lib.fixture_track.argtypes = [ctypes.c_uint, ctypes.c_void_p, ctypes.c_size_t]
    lib.fixture_untrack.argtypes = [ctypes.c_uint, ctypes.c_void_p]
    lib.fixture_dlopen_and_track.argtypes = [
        ctypes.c_char_p, ctypes.c_uint, ctypes.c_void_p, ctypes.c_size_t]
    lib.fixture_track_in_native_thread.argtypes = [
        ctypes.c_uint, ctypes.c_void_p, ctypes.c_size_t]
    return lib

def line():
    return sys._getframe(1).f_lineno

def domain_traces(module, domain):
    snapshot = module.take_snapshot().filter_traces([module.DomainFilter(True, domain)])
    return sorted((t.size, [(f.filename == "<string>" or f.filename, f.lineno) for f in t.traceback])
                  for t in snapshot.traces)

OUT = {}
"""


def _run(code, libs, timeout=120):
    script = _PRELUDE + textwrap.dedent(code) + "\nprint(json.dumps(OUT))\n"
    child = subprocess.run(
        [sys.executable, "-c", script, json.dumps(libs)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert child.returncode == 0, f"scenario failed (exit {child.returncode}):\n{child.stderr}"
    return json.loads(child.stdout.strip().splitlines()[-1])


def _run_script(script, *args):
    """Runs a whole script (no prelude) with `args`; its JSON line on stdout."""
    child = subprocess.run([sys.executable, "-c", script, *args],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout)


@pytest.mark.parametrize("variant", sorted(_VARIANTS))
def test_track_and_untrack_reach_heapscope(fixture_libs, variant):
    out = _run(
        f"""
        lib = load({variant!r})
        OUT["before_start"] = lib.fixture_track(5, 4096, 100)
        heapscope.start(5)
        OUT["patched"] = _hs._patched_slots("PyTraceMalloc_Track")
        OUT["first"] = lib.fixture_track(5, 4096, 123); OUT["first_line"] = line()
        OUT["after_first"] = domain_traces(heapscope, 5)
        OUT["second"] = lib.fixture_track(5, 4096, 77); OUT["second_line"] = line()
        OUT["after_second"] = domain_traces(heapscope, 5)
        # Domain 0: a buffer Python's allocators never saw.
        buffer = ctypes.create_string_buffer(64)
        address = ctypes.addressof(buffer)
        OUT["zero"] = lib.fixture_track(0, address, 4321); OUT["zero_line"] = line()
        zero = heapscope.take_snapshot().filter_traces([heapscope.DomainFilter(True, 0)])
        OUT["zero_traced"] = [t.size for t in zero.traces
                              if t.traceback[0].lineno == OUT["zero_line"]]
        OUT["untrack_zero"] = lib.fixture_untrack(0, address)
        zero = heapscope.take_snapshot().filter_traces([heapscope.DomainFilter(True, 0)])
        OUT["zero_after_untrack"] = [t.size for t in zero.traces
                                     if t.traceback[0].lineno == OUT["zero_line"]]
        OUT["untrack"] = lib.fixture_untrack(5, 4096)
        OUT["after_untrack"] = domain_traces(heapscope, 5)
        OUT["untrack_unknown"] = lib.fixture_untrack(99, 8)
        heapscope.stop()
        OUT["patched_after_stop"] = _hs._patched_slots("PyTraceMalloc_Track")
        OUT["after_stop"] = lib.fixture_track(5, 4096, 100)
        """,
        fixture_libs,
    )
    assert out["before_start"] == -2  # CPython's function: its module does not trace
    assert out["patched"] >= 1
    assert out["first"] == 0
    assert out["after_first"] == [[123, [[True, out["first_line"]]]]]
    # A second Track of the same (domain, ptr) replaces the first.
    assert out["second"] == 0
    assert out["after_second"] == [[77, [[True, out["second_line"]]]]]
    assert out["zero"] == 0 and out["zero_traced"] == [4321]
    assert out["untrack_zero"] == 0 and out["zero_after_untrack"] == []
    assert out["untrack"] == 0 and out["after_untrack"] == []
    assert out["untrack_unknown"] == 0
    assert out["patched_after_stop"] == 0
    assert out["after_stop"] == -2


def test_libraries_loaded_after_start(fixture_libs):
    out = _run(
        """
        early = load("lazy")
        heapscope.start()
        late = load("late")  # ctypes.CDLL: dlopen from libffi's caller, _ctypes
        OUT["late"] = late.fixture_track(7, 8192, 11); OUT["late_line"] = line()
        # dlopen called from C, by a library loaded before start().
        path = LIBS["late_from_c"].encode()
        OUT["from_c"] = early.fixture_dlopen_and_track(path, 8, 8192, 22); OUT["from_c_line"] = line()
        OUT["traces"] = domain_traces(heapscope, 7) + domain_traces(heapscope, 8)
        heapscope.stop()
        """,
        fixture_libs,
    )
    assert out["late"] == 0 and out["from_c"] == 0
    assert out["traces"] == [
        [11, [[True, out["late_line"]]]],
        [22, [[True, out["from_c_line"]]]],
    ]


def test_track_with_and_without_the_gil_and_from_a_native_thread(fixture_libs):
    out = _run(
        """
        import threading
        heapscope.start()
        with_gil = load("lazy", with_gil=True)   # PyDLL keeps the GIL
        without_gil = load("lazy")               # CDLL releases it
        OUT["with"] = with_gil.fixture_track(9, 16, 1); OUT["with_line"] = line()
        OUT["without"] = without_gil.fixture_track(9, 32, 2); OUT["without_line"] = line()
        def in_thread():
            OUT["thread"] = without_gil.fixture_track(9, 48, 3); OUT["thread_line"] = line()
        t = threading.Thread(target=in_thread); t.start(); t.join()
        OUT["native"] = without_gil.fixture_track_in_native_thread(9, 64, 4)
        OUT["traces"] = domain_traces(heapscope, 9)
        heapscope.stop()
        """,
        fixture_libs,
    )
    assert [out["with"], out["without"], out["thread"], out["native"]] == [0, 0, 0, 0]
    assert out["traces"] == [
        [1, [[True, out["with_line"]]]],
        [2, [[True, out["without_line"]]]],
        [3, [[True, out["thread_line"]]]],
        # A thread with no Python frame: CPython's module gives the same.
        [4, [["<unknown>", 0]]],
    ]


@pytest.mark.parametrize("order", ["heapscope_first", "tracemalloc_first"])
def test_both_tracers_see_tracked_blocks(fixture_libs, order):
    out = _run(
        f"""
        import tracemalloc
        lib = load("relro_now")
        first, second = ((heapscope, tracemalloc) if {order!r} == "heapscope_first"
                         else (tracemalloc, heapscope))
        first.start(); second.start()
        OUT["both"] = lib.fixture_track(11, 4096, 50)
        OUT["heapscope"] = [s for s, _ in domain_traces(heapscope, 11)]
        OUT["tracemalloc"] = [s for s, _ in domain_traces(tracemalloc, 11)]
        tracemalloc.stop()
        OUT["heapscope_alone"] = lib.fixture_track(11, 8192, 60)
        OUT["heapscope_after"] = [s for s, _ in domain_traces(heapscope, 11)]
        tracemalloc.start()
        heapscope.stop()
        OUT["tracemalloc_alone"] = lib.fixture_track(11, 12288, 70)
        OUT["tracemalloc_after"] = [s for s, _ in domain_traces(tracemalloc, 11)]
        tracemalloc.stop()
        OUT["neither"] = lib.fixture_track(11, 4096, 80)
        """,
        fixture_libs,
    )
    assert out["both"] == 0
    assert out["heapscope"] == [50] and out["tracemalloc"] == [50]
    assert out["heapscope_alone"] == 0 and out["heapscope_after"] == [50, 60]
    assert out["tracemalloc_alone"] == 0 and out["tracemalloc_after"] == [70]
    assert out["neither"] == -2


_REUSE = r"""
import gc, sys
tm = __import__(sys.argv[1])
tm.start()
gc.collect()

def line():
    return sys._getframe(1).f_lineno

def where(obj):
    tb = tm.get_object_traceback(obj)
    return None if tb is None else tb[0].lineno

results = {}
x = 1.5; y = x * 3.25; del y                  # a float into the free list
z = x * 7.75; results["float"] = (where(z), line())
t = tuple([x, x, x]); del t                   # a 3-tuple into the free list
t2 = tuple([x, z, x]); results["tuple"] = (where(t2), line())
l = [x]; del l
l2 = [z]; results["list"] = (where(l2), line())
d = {"a": x}; del d
d2 = {"b": z}; results["dict"] = (where(d2), line())

class Phoenix:
    __slots__ = ()  # 3.11's own module cannot find objects with a managed dict at all
saved = []
def resurrect(self):
    saved.append(self)
Phoenix.__del__ = resurrect
def make():
    return Phoenix()
p = make()
del p; results["resurrected"] = (where(saved[0]), line())
print(json.dumps(results))
"""


@pytest.mark.parametrize("module", ["heapscope", "tracemalloc"])
def test_reused_objects_take_the_reusing_line(module):
    results = _run_script("import json\n" + _REUSE, module)
    for kind in ("float", "tuple", "list", "dict"):
        got, expected = results[kind]
        assert got == expected, f"{module}: {kind} reused from a free list dated {got}, not {expected}"
    results["module"] = module
    # The standard module re-dates a resurrected object to the line that
    # dropped it (docs/architecture.md says why heapscope does the same).
    got, expected = results["resurrected"]
    assert got == expected, f"{module}: resurrected object dated {got}, not {expected}"


def test_slots_put_back_at_stop_and_kept_in_a_fork_child(fixture_libs):
    out = _run(
        """
        import os
        lib = load("relro_now")
        reference = sys.version_info < (3, 13)
        OUT["idle"] = _hs._patched_slots("PyTraceMalloc_Track")
        heapscope.start()
        OUT["tracing"] = _hs._patched_slots("PyTraceMalloc_Track")
        OUT["new_reference"] = _hs._patched_slots("_Py_NewReference")
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            result = {}
            result["track"] = lib.fixture_track(12, 4096, 5)
            result["traced"] = [s for s, _ in domain_traces(heapscope, 12)]
            import gc; gc.collect()   # empties the free lists of blocks traced by nobody
            x = 2.5; y = x * 3.0; del y
            z = x * 5.0; result["reused"] = (heapscope.get_object_traceback(z)[0].lineno, line())
            result["slots"] = _hs._patched_slots("PyTraceMalloc_Track")
            heapscope.stop()
            result["slots_after_stop"] = _hs._patched_slots("PyTraceMalloc_Track")
            result["track_after_stop"] = lib.fixture_track(12, 4096, 5)
            os.write(write, json.dumps(result).encode())
            os._exit(0)
        os.close(write)
        OUT["child"] = json.loads(os.read(read, 65536).decode())
        _, status = os.waitpid(pid, 0)
        OUT["child_status"] = status
        OUT["parent_slots"] = _hs._patched_slots("PyTraceMalloc_Track")
        OUT["parent_track"] = lib.fixture_track(12, 8192, 6)
        heapscope.stop()
        OUT["stopped"] = [_hs._patched_slots(s) for s in
                          ("PyTraceMalloc_Track", "PyTraceMalloc_Untrack", "_Py_NewReference",
                           "_Py_NewReferenceNoTotal", "dlopen")]
        OUT["reference"] = reference
        """,
        fixture_libs,
    )
    assert out["idle"] == 0 and out["tracing"] >= 1
    if out["reference"]:
        assert out["new_reference"] >= 1, "libpython's _Py_NewReference slot was not found"
    child = out["child"]
    assert out["child_status"] == 0
    assert child["track"] == 0 and child["traced"] == [5]
    assert child["reused"][0] == child["reused"][1]
    assert child["slots"] >= 1 and child["slots_after_stop"] == 0
    assert child["track_after_stop"] == -2
    # The child's stop() changed nothing in the parent.
    assert out["parent_slots"] >= 1 and out["parent_track"] == 0
    assert out["stopped"] == [0, 0, 0, 0, 0]


def test_threads_track_and_allocate_while_start_and_stop_run(fixture_libs):
    out = _run(
        """
        import threading
        lib = load("lazy")       # CDLL: every Track runs without the GIL
        stop_flag = threading.Event()
        errors = []
        def worker(n):
            i = 0
            while not stop_flag.is_set():
                address = 4096 * (n * 100000 + i % 1000 + 1)
                result = lib.fixture_track(13, address, 8)
                if result not in (0, -2):
                    errors.append(result)
                junk = [float(i), (i, i), {"i": i}]
                if lib.fixture_untrack(13, address) not in (0, -2):
                    errors.append("untrack")
                i += 1
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        for _ in range(40):
            heapscope.start(3)
            heapscope.take_snapshot()
            heapscope.stop()
        stop_flag.set()
        for t in threads:
            t.join()
        OUT["errors"] = errors
        OUT["slots"] = _hs._patched_slots("PyTraceMalloc_Track")
        """,
        fixture_libs,
        timeout=300,
    )
    assert out["errors"] == []
    assert out["slots"] == 0


_REUSE_BOTH = r"""
import ctypes, gc, json, sys, warnings
import heapscope, tracemalloc
order, stops_first = sys.argv[1], sys.argv[2]
first, second = (heapscope, tracemalloc) if order == "heapscope_first" else (tracemalloc, heapscope)
stopper, remaining = (first, second) if stops_first == "first" else (second, first)
def slot():
    # The slot as CPython's own functions see it (ctypes reaches the real
    # PyRefTracer_GetTracer, not heapscope's replacement).
    if sys.version_info < (3, 13):
        return None
    get = ctypes.pythonapi.PyRefTracer_GetTracer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.c_void_p]
    return get(None)
first.start()
ours = slot() if first is heapscope else None
second.start()
ours = ours or slot()
def holder():
    now = slot()
    return "none" if now is None else "heapscope" if now == ours else "other"
gc.collect()   # empties the free lists of blocks neither traced
def line():
    return sys._getframe(1).f_lineno
def where(module, obj):
    tb = module.get_object_traceback(obj)
    return None if tb is None else tb[0].lineno
out = {}
x = 1.25; y = x * 3.5; del y
z = x * 9.5; out["both"] = [where(heapscope, z), where(tracemalloc, z), line()]
stopper.stop()
# Whichever stopped, the one left still has its tracer in the slot (before
# any heapscope call could have put one back).
out["holder_after_one"] = holder()
# CPython's stop() puts back the allocator it found, taking heapscope's
# hooks out when heapscope started after it; is_tracing() puts them back
# (and warns). Then empty the free lists of blocks allocated in between.
warnings.simplefilter("ignore")
heapscope.is_tracing()
gc.collect()
y = x * 4.5; del y
w = x * 8.5; out["remaining_alone"] = [where(remaining, w), line()]
remaining.stop()
out["holder_after_both"] = holder()
print(json.dumps(out))
"""


@pytest.mark.parametrize("stops_first", ["first", "second"])
@pytest.mark.parametrize("order", ["heapscope_first", "tracemalloc_first"])
def test_both_tracers_redate_reused_objects(order, stops_first):
    # On 3.13 the two share CPython's single PyRefTracer slot, which
    # tracemalloc.start() overwrites and tracemalloc.stop() clears: each
    # order of start and stop must leave re-dating to both while both
    # trace, and to the one left after the other stops.
    out = _run_script(_REUSE_BOTH, order, stops_first)
    heapscope_line, tracemalloc_line, expected = out["both"]
    assert heapscope_line == expected, "heapscope did not re-date while both traced"
    assert tracemalloc_line == expected, "tracemalloc did not re-date while both traced"
    got, expected = out["remaining_alone"]
    assert got == expected, "the tracer left did not re-date after the other stopped"
    if sys.version_info >= (3, 13):
        assert out["holder_after_one"] == (
            "heapscope" if (order == "heapscope_first") == (stops_first == "second") else "other")
        # CPython's tracer, or none (3.13.0's stop() leaves its own tracer
        # set; later 3.13 releases clear the slot), never heapscope's.
        assert out["holder_after_both"] in ("none", "other")


_TRACER_TAKEN = r"""
import ctypes, gc, json, sys, warnings
import heapscope
heapscope.start()
gc.collect()
def line():
    return sys._getframe(1).f_lineno
def where(obj):
    tb = heapscope.get_object_traceback(obj)
    return None if tb is None else tb[0].lineno
# A caller heapscope does not divert (ctypes reaches the real function)
# clears the slot, as a statically linked libpython's tracemalloc.stop()
# would.
ctypes.pythonapi.PyRefTracer_SetTracer.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
ctypes.pythonapi.PyRefTracer_SetTracer(None, None)
out = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out["tracing"] = heapscope.is_tracing()
out["warnings"] = [str(w.message) for w in caught]
x = 1.25; y = x * 3.5; del y
z = x * 9.5; out["redated"] = [where(z), line()]
heapscope.stop()
print(json.dumps(out))
"""


@pytest.mark.skipif(sys.version_info < (3, 13), reason="PyRefTracer exists from 3.13 on")
def test_reference_tracer_taken_behind_our_back_is_put_back_with_a_warning():
    out = _run_script(_TRACER_TAKEN)
    assert out["tracing"] is True
    assert len(out["warnings"]) == 1 and "reference tracer" in out["warnings"][0]
    got, expected = out["redated"]
    assert got == expected


# Another tool's reference tracer that chains properly: it reads the tracer
# set, sets its own, which calls the one it read, and puts that one back
# when it stops. `through_slots` calls the functions as any extension does
# (its relocation slots, which heapscope diverts while it traces); the
# other way looks them up with dlsym, as ctypes.pythonapi or a statically
# linked libpython would reach them, past heapscope's replacements.
_CHAINING_C = r"""
#include <dlfcn.h>
#include <stddef.h>

typedef int (*tracer_fn)(void* obj, int event, void* data);
tracer_fn PyRefTracer_GetTracer(void** data);
int PyRefTracer_SetTracer(tracer_fn tracer, void* data);

static tracer_fn below;
static void* below_data;
static long calls;

static int chaining(void* obj, int event, void* data) {
  (void)data;
  ++calls;
  return below != NULL ? below(obj, event, below_data) : 0;
}

int chaining_start(int through_slots) {
  tracer_fn (*get)(void**) = PyRefTracer_GetTracer;
  int (*set)(tracer_fn, void*) = PyRefTracer_SetTracer;
  if (!through_slots) {
    get = (tracer_fn (*)(void**))dlsym(RTLD_DEFAULT, "PyRefTracer_GetTracer");
    set = (int (*)(tracer_fn, void*))dlsym(RTLD_DEFAULT, "PyRefTracer_SetTracer");
  }
  below = get(&below_data);
  return set(chaining, NULL);
}

int chaining_stop(void) { return PyRefTracer_SetTracer(below, below_data); }
int chaining_is_set(void) { return PyRefTracer_GetTracer(NULL) == chaining; }
long chaining_calls(void) { return calls; }
"""


@pytest.fixture(scope="session")
def chaining_lib(tmp_path_factory):
    if sys.version_info < (3, 13):
        pytest.skip("PyRefTracer exists from 3.13 on")
    cc = fixture_library.compiler("the chaining tracer")
    directory = tmp_path_factory.mktemp("chaining")
    source = directory / "chaining.c"
    source.write_text(_CHAINING_C)
    path = directory / "libchaining.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(path), str(source), "-ldl"],
                   check=True)
    return str(path)


_CHAINING = r"""
import ctypes, gc, json, sys, warnings
import heapscope
through_slots = sys.argv[2] == "through_slots"
heapscope.start()
lib = ctypes.PyDLL(sys.argv[1])   # loaded while tracing: its slots diverted
gc.collect()
def line():
    return sys._getframe(1).f_lineno
def where(obj):
    tb = heapscope.get_object_traceback(obj)
    return None if tb is None else tb[0].lineno
out = {"started": lib.chaining_start(int(through_slots))}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    heapscope.is_tracing()
out["warnings"] = len(caught)
before = lib.chaining_calls()
x = 1.25; y = x * 3.5; del y
z = x * 9.5; out["redated"] = [where(z), line()]
out["its_calls"] = lib.chaining_calls() - before
if through_slots:
    out["stopped"] = lib.chaining_stop()
    y = x * 4.5; del y
    w = x * 8.5; out["redated_after_its_stop"] = [where(w), line()]
heapscope.stop()
print(json.dumps(out))
"""


@pytest.mark.parametrize("way", ["through_slots", "past_slots"])
def test_another_chaining_tracer_and_heapscope_both_see_events(chaining_lib, way):
    # Through the slots: it chains behind heapscope's tracer without a
    # repair. Past them: it takes the slot, chaining heapscope's tracer;
    # is_tracing() puts heapscope's back over it (with a warning), and the
    # loop that makes (each calling the other) must not recurse forever.
    out = _run_script(_CHAINING, chaining_lib, way)
    assert out["started"] == 0
    assert out["warnings"] == (0 if way == "through_slots" else 1)
    got, expected = out["redated"]
    assert got == expected
    assert out["its_calls"] > 0
    if way == "through_slots":
        assert out["stopped"] == 0
        got, expected = out["redated_after_its_stop"]
        assert got == expected


def test_many_tracked_blocks_in_several_domains(fixture_libs):
    # Enough blocks to grow the table of other domains several times, and
    # removals in an order that shifts runs back: every survivor must stay
    # findable, with its size, and the totals exact.
    out = _run(
        """
        import random
        lib = load("lazy", with_gil=True)
        heapscope.start()
        alive = {}
        rng = random.Random(5)
        for i in range(6000):
            domain, address = 20 + i % 3, 64 * (i // 3 + 1)
            assert lib.fixture_track(domain, address, i + 1) == 0
            alive[(domain, address)] = i + 1
        for key in rng.sample(sorted(alive), 4000):
            assert lib.fixture_untrack(*key) == 0
            del alive[key]
        for key in rng.sample(sorted(alive), 500):   # replaced: new size
            assert lib.fixture_track(key[0], key[1], 7) == 0
            alive[key] = 7
        snapshot = heapscope.take_snapshot()
        got = sorted((t.domain, t.size) for t in snapshot.traces if t.domain >= 20)
        OUT["match"] = got == sorted((d, s) for (d, _), s in alive.items())
        keys, total = list(alive), sum(alive.values())
        before = heapscope.get_traced_memory()[0]
        for key in keys:
            lib.fixture_untrack(*key)
        OUT["memory"] = before - heapscope.get_traced_memory()[0] - total
        OUT["left"] = [t.domain for t in heapscope.take_snapshot().traces if t.domain >= 20]
        heapscope.stop()
        """,
        fixture_libs,
    )
    assert out["match"]
    # Untracking them all lowers the traced memory by their sizes (give or
    # take the loop's own short-lived objects).
    assert abs(out["memory"]) < 2_000
    assert out["left"] == []
