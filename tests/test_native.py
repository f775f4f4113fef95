"""Native tracing: start(native=True).

What extension modules and the libraries under them allocate from the C
allocator is traced in heapscope.NATIVE_DOMAIN, at the Python line that
called into the library, whether the library was loaded before start() or
after it (ctypes.CDLL, dlopen from C), linked with lazy binding, full RELRO
or -fno-plt; frees remove the traces, realloc moves them; anonymous
mappings are traced in whole pages, partly unmapped, moved by mremap and
replaced by MAP_FIXED (file-backed ones are not traced); threads that
released the GIL keep their Python line, threads Python never saw get
`<unknown>`; stop() puts every slot back and the library keeps working.
Python's own allocations are not seen a second time, nor a block an
extension also reports with PyTraceMalloc_Track (numpy's array data).

A function's address kept in a library's data (libxml2's `xmlMalloc =
malloc`) is rewritten too, but only while it holds what the loader put
there: an allocator the library installed itself is left alone.

Real libraries: lxml (libxml2 allocates through such a pointer), sqlite3
(the `_sqlite3` module links libsqlite3, whose own
counter `sqlite3_memory_used()` is read through ctypes) and numpy's matrix
product through OpenBLAS, which maps its work buffers at the first product
and reuses them (numpy installed into the running interpreter from PyPI, as
tests/test_real_libraries.py does).

The fixture library is built with the system C compiler for the test. Each
scenario runs in a fresh interpreter: which libraries are loaded, and when,
is the point.

Run: python -m pytest tests/test_native.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import fixture_library

_FIXTURE_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <sys/mman.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Each block is written to, so the library visibly works. */
void* fx_malloc(size_t n) { void* p = malloc(n); if (p) memset(p, 1, n); return p; }
void* fx_calloc(size_t c, size_t n) { return calloc(c, n); }
void* fx_realloc(void* p, size_t n) { return realloc(p, n); }
void* fx_reallocarray(void* p, size_t c, size_t n) { return reallocarray(p, c, n); }
void fx_free(void* p) { free(p); }
void* fx_posix_memalign(size_t a, size_t n) {
  void* p = NULL;
  return posix_memalign(&p, a, n) == 0 ? p : NULL;
}
void* fx_aligned_alloc(size_t a, size_t n) { return aligned_alloc(a, n); }
void* fx_memalign(size_t a, size_t n) { return memalign(a, n); }
void* fx_valloc(size_t n) { return valloc(n); }
/* Whether a block holds n bytes of 1 (what fx_malloc wrote). */
int fx_check(const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) if (p[i] != 1) return 0;
  return 1;
}

/* Anonymous and file-backed mappings. */
void* fx_mmap(size_t n) {
  void* p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}
void* fx_mmap_fixed(void* at, size_t n) {
  void* p = mmap(at, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}
void* fx_mmap_file(int fd, size_t n) {
  void* p = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
  return p == MAP_FAILED ? NULL : p;
}
int fx_munmap(void* p, size_t n) { return munmap(p, n); }
void* fx_mremap(void* p, size_t old_size, size_t new_size) {
  void* q = mremap(p, old_size, new_size, MREMAP_MAYMOVE);
  return q == MAP_FAILED ? NULL : q;
}

/* Allocator pointers in initialised data, as libxml2 keeps xmlMalloc: an
   absolute relocation to malloc/free, not a call slot. */
void* (*fx_alloc_pointer)(size_t) = malloc;
void (*fx_free_pointer)(void*) = free;
void* fx_malloc_through_pointer(size_t n) { return fx_alloc_pointer(n); }
void fx_free_through_pointer(void* p) { fx_free_pointer(p); }
/* An allocator of the library's own, which it may install in the pointer. */
static unsigned char fx_arena[1 << 16];
static size_t fx_arena_used;
static void* fx_own_alloc(size_t n) {
  if (fx_arena_used + n > sizeof fx_arena) return NULL;
  void* p = fx_arena + fx_arena_used;
  fx_arena_used += n;
  return p;
}
void fx_use_own_allocator(void) { fx_alloc_pointer = fx_own_alloc; }
int fx_pointer_is_own(void) { return fx_alloc_pointer == fx_own_alloc; }

/* Reports a block as numpy does its array data (through this library's slot). */
int PyTraceMalloc_Track(unsigned int domain, uintptr_t ptr, size_t size);
int PyTraceMalloc_Untrack(unsigned int domain, uintptr_t ptr);
int fx_track(unsigned int domain, uintptr_t ptr, size_t size) {
  return PyTraceMalloc_Track(domain, ptr, size);
}
int fx_untrack(unsigned int domain, uintptr_t ptr) { return PyTraceMalloc_Untrack(domain, ptr); }

/* Loads `path` with dlopen from C and mallocs n bytes through its fx_malloc. */
void* fx_dlopen_and_malloc(const char* path, size_t n) {
  void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) return NULL;
  void* (*m)(size_t) = (void* (*)(size_t))dlsym(handle, "fx_malloc");
  return m == NULL ? NULL : m(n);
}

/* Mallocs `count` blocks of `size` in a thread Python never saw, frees the
   odd ones, and hands back the even ones in `out`. */
struct thread_args { size_t count, size; void** out; };
static void* thread_body(void* arg) {
  struct thread_args* a = (struct thread_args*)arg;
  for (size_t i = 0; i < a->count; ++i) a->out[i] = malloc(a->size);
  for (size_t i = 1; i < a->count; i += 2) { free(a->out[i]); a->out[i] = NULL; }
  return NULL;
}
int fx_malloc_in_native_thread(size_t count, size_t size, void** out) {
  struct thread_args a = {count, size, out};
  pthread_t thread;
  if (pthread_create(&thread, NULL, thread_body, &a) != 0) return -1;
  pthread_join(thread, NULL);
  return 0;
}
"""

_VARIANTS = fixture_library.VARIANTS


@pytest.fixture(scope="session")
def fixture_libs(tmp_path_factory):
    # -fno-builtin: the compiler must not fold a malloc/free pair away.
    return fixture_library.build(tmp_path_factory, "native", _FIXTURE_C, ["-fno-builtin"])


_PRELUDE = r"""
import ctypes, json, sys, threading
import heapscope
import heapscope._heapscope as _hs

LIBS = json.loads(sys.argv[1])
P, S = ctypes.c_void_p, ctypes.c_size_t

def load(name):
    lib = ctypes.CDLL(LIBS[name])  # CDLL: the calls run without the GIL
    for function, args in [("fx_malloc", [S]), ("fx_calloc", [S, S]), ("fx_realloc", [P, S]),
                           ("fx_reallocarray", [P, S, S]), ("fx_posix_memalign", [S, S]),
                           ("fx_aligned_alloc", [S, S]), ("fx_memalign", [S, S]),
                           ("fx_valloc", [S]), ("fx_dlopen_and_malloc", [ctypes.c_char_p, S]),
                           ("fx_mmap", [S]), ("fx_mmap_fixed", [P, S]),
                           ("fx_mmap_file", [ctypes.c_int, S]), ("fx_mremap", [P, S, S])]:
        getattr(lib, function).restype = P
        getattr(lib, function).argtypes = args
    lib.fx_free.argtypes = [P]
    lib.fx_malloc_through_pointer.restype = P
    lib.fx_malloc_through_pointer.argtypes = [S]
    lib.fx_free_through_pointer.argtypes = [P]
    lib.fx_check.argtypes = [P, S]
    lib.fx_munmap.argtypes = [P, S]
    lib.fx_track.argtypes = [ctypes.c_uint, P, S]
    lib.fx_untrack.argtypes = [ctypes.c_uint, P]
    lib.fx_malloc_in_native_thread.argtypes = [S, S, ctypes.POINTER(P)]
    return lib

def line():
    return sys._getframe(1).f_lineno

def native():
    # (size, [(filename, line)...]) per trace; this script is "<string>".
    snapshot = heapscope.take_snapshot().filter_traces(
        [heapscope.DomainFilter(True, heapscope.NATIVE_DOMAIN)])
    return sorted((t.size, [(f.filename, f.lineno) for f in t.traceback])
                  for t in snapshot.traces)

def mine():
    # Native traces made by this script's lines.
    return [t for t in native() if t[1][0][0] == "<string>"]

OUT = {}
"""


def _run(code, libs, timeout=180, env=None):
    script = _PRELUDE + textwrap.dedent(code) + "\nprint(json.dumps(OUT))\n"
    child = subprocess.run(
        [sys.executable, "-c", script, json.dumps(libs)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert child.returncode == 0, f"scenario failed (exit {child.returncode}):\n{child.stderr}"
    return json.loads(child.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("variant", sorted(_VARIANTS))
def test_each_allocator_function_traced_at_the_calling_line(fixture_libs, variant):
    out = _run(
        f"""
        lib = load({variant!r})
        early = lib.fx_malloc(333)  # before start(): untraced
        heapscope.start(1, native=True)
        OUT["native_on"] = heapscope.is_tracing_native()
        OUT["patched"] = {{name: _hs._patched_slots(name) for name in
                           ("malloc", "calloc", "realloc", "free", "posix_memalign")}}
        blocks = {{}}
        blocks["malloc"] = (lib.fx_malloc(1000), line())
        blocks["calloc"] = (lib.fx_calloc(10, 201), line())
        blocks["posix_memalign"] = (lib.fx_posix_memalign(64, 3000), line())
        blocks["aligned_alloc"] = (lib.fx_aligned_alloc(256, 4096), line())
        blocks["memalign"] = (lib.fx_memalign(128, 5000), line())
        blocks["valloc"] = (lib.fx_valloc(6000), line())
        OUT["lines"] = {{k: v[1] for k, v in blocks.items()}}
        OUT["allocated"] = mine()
        block = lib.fx_realloc(blocks["malloc"][0], 100000); OUT["realloc_line"] = line()
        OUT["check_after_realloc"] = lib.fx_check(block, 1000)
        blocks["malloc"] = (block, 0)
        OUT["after_realloc"] = [t for t in mine() if t[0] == 100000]
        OUT["old_size_left"] = [t for t in mine() if t[0] == 1000]
        block = lib.fx_reallocarray(blocks["calloc"][0], 7, 1000); OUT["reallocarray_line"] = line()
        blocks["calloc"] = (block, 0)
        OUT["after_reallocarray"] = [t for t in mine() if t[0] == 7000]
        # reallocarray overflowing fails and leaves the block (and its trace) alone.
        OUT["overflow"] = lib.fx_reallocarray(block, 2**62, 16)
        OUT["after_overflow"] = [t for t in mine() if t[0] == 7000]
        # realloc(NULL, n) is a malloc.
        fresh = lib.fx_realloc(None, 777); OUT["realloc_null_line"] = line()
        OUT["realloc_null"] = [t for t in mine() if t[0] == 777]
        lib.fx_free(fresh)
        for address, _ in blocks.values():
            lib.fx_free(address)
        OUT["after_free"] = mine()
        lib.fx_free(early)  # allocated before start(): harmless
        lib.fx_free(None)
        OUT["after_untraced_free"] = mine()
        heapscope.stop()
        OUT["native_after_stop"] = heapscope.is_tracing_native()
        OUT["patched_after_stop"] = _hs._patched_slots("malloc") + _hs._patched_slots("free")
        late = lib.fx_malloc(4321)
        OUT["works_after_stop"] = lib.fx_check(late, 4321)
        lib.fx_free(late)
        heapscope.start(1)
        OUT["patched_without_native"] = _hs._patched_slots("malloc") + _hs._patched_slots("free")
        late = lib.fx_malloc(4321)
        OUT["traced_without_native"] = native()
        OUT["native_off"] = heapscope.is_tracing_native()
        lib.fx_free(late)
        heapscope.stop()
        """,
        fixture_libs,
    )
    assert out["native_on"] is True
    assert all(count >= 1 for count in out["patched"].values()), out["patched"]
    lines = out["lines"]
    want = sorted([
        [1000, [["<string>", lines["malloc"]]]],
        [2010, [["<string>", lines["calloc"]]]],
        [3000, [["<string>", lines["posix_memalign"]]]],
        [4096, [["<string>", lines["aligned_alloc"]]]],
        [5000, [["<string>", lines["memalign"]]]],
        [6000, [["<string>", lines["valloc"]]]],
    ])
    assert out["allocated"] == want
    # realloc moves the trace: new size, the realloc's line, the old one gone.
    assert out["after_realloc"] == [[100000, [["<string>", out["realloc_line"]]]]]
    assert out["check_after_realloc"] == 1
    assert out["old_size_left"] == []
    assert out["after_reallocarray"] == [[7000, [["<string>", out["reallocarray_line"]]]]]
    assert out["overflow"] is None
    assert out["after_overflow"] == out["after_reallocarray"]
    assert out["realloc_null"] == [[777, [["<string>", out["realloc_null_line"]]]]]
    assert out["after_free"] == []
    assert out["after_untraced_free"] == []
    assert out["native_after_stop"] is False
    assert out["patched_after_stop"] == 0
    assert out["works_after_stop"] == 1
    # Without native=True no allocator slot is rewritten at all.
    assert out["patched_without_native"] == 0
    assert out["traced_without_native"] == []
    assert out["native_off"] is False


@pytest.mark.parametrize("variant", sorted(_VARIANTS))
def test_anonymous_mappings(fixture_libs, variant, tmp_path):
    data = tmp_path / "mapped"
    data.write_bytes(b"x" * 100000)
    out = _run(
        f"""
        import mmap, os
        PAGE = mmap.PAGESIZE
        lib = load({variant!r})
        heapscope.start(1, native=True)
        def at(address):
            # Native traces of this script by start address: (size, line).
            snapshot = heapscope.take_snapshot().filter_traces(
                [heapscope.DomainFilter(True, heapscope.NATIVE_DOMAIN)])
            return sorted((t.size, t.traceback[0].lineno) for t in snapshot.traces
                          if t.traceback[0].filename == "<string>")
        m = lib.fx_mmap(10 * PAGE + 1); OUT["map_line"] = line()
        OUT["mapped"] = at(m)
        # Unmapping a page in the middle leaves two traces, both at the map's line.
        OUT["munmap_middle"] = lib.fx_munmap(m + 4 * PAGE, PAGE)
        OUT["split"] = at(m)
        # The last part grows by mremap: it keeps being traced, at that line.
        tail = lib.fx_mremap(m + 5 * PAGE, 6 * PAGE, 20 * PAGE); OUT["mremap_line"] = line()
        OUT["remapped"] = at(m)
        # MAP_FIXED over the second page of the first part replaces it.
        fixed = lib.fx_mmap_fixed(m + PAGE, PAGE); OUT["fixed_line"] = line()
        OUT["fixed"] = at(m)
        fd = os.open({str(data)!r}, os.O_RDONLY)
        f = lib.fx_mmap_file(fd, 100000)
        OUT["with_file"] = at(m)
        lib.fx_munmap(f, 100000)
        os.close(fd)
        lib.fx_munmap(m, 4 * PAGE)
        lib.fx_munmap(tail, 20 * PAGE)
        OUT["after_munmap"] = at(m)
        OUT["page"] = PAGE
        heapscope.stop()
        OUT["patched_after_stop"] = _hs._patched_slots("mmap") + _hs._patched_slots("munmap")
        """,
        fixture_libs,
    )
    page, line = out["page"], out["map_line"]
    assert out["mapped"] == [[11 * page, line]]  # whole pages
    assert out["munmap_middle"] == 0
    assert out["split"] == [[4 * page, line], [6 * page, line]]
    assert out["remapped"] == [[4 * page, line], [20 * page, out["mremap_line"]]]
    assert out["fixed"] == sorted([[page, line], [page, out["fixed_line"]], [2 * page, line],
                                   [20 * page, out["mremap_line"]]])
    assert out["with_file"] == out["fixed"]  # file-backed mappings are not traced
    assert out["after_munmap"] == []
    assert out["patched_after_stop"] == 0


@pytest.mark.parametrize("variant", sorted(_VARIANTS))
def test_allocator_pointers_in_data_traced_and_left_alone_once_the_library_set_them(
        fixture_libs, variant):
    out = _run(
        f"""
        lib = load({variant!r})
        heapscope.start(1, native=True)
        block = lib.fx_malloc_through_pointer(70001); OUT["line"] = line()
        OUT["traced"] = [t[0] for t in mine() if t[1][0][1] == OUT["line"]]
        lib.fx_free_through_pointer(block)
        OUT["after_free"] = [t[0] for t in mine() if t[1][0][1] == OUT["line"]]
        heapscope.stop()
        # The library installs its own allocator; a new start() must leave
        # that pointer alone, and stop() must not put malloc back in it.
        lib.fx_use_own_allocator()
        heapscope.start(1, native=True)
        own = lib.fx_malloc_through_pointer(333); OUT["own_line"] = line()
        OUT["own_traced"] = [t[0] for t in mine() if t[1][0][1] == OUT["own_line"]]
        heapscope.stop()
        OUT["still_own"] = bool(lib.fx_pointer_is_own())
        after = lib.fx_malloc_through_pointer(64)
        OUT["works_after_stop"] = bool(after)
        """,
        fixture_libs,
    )
    assert out["traced"] == [70001]
    assert out["after_free"] == []
    assert out["own_traced"] == []
    assert out["still_own"] is True
    assert out["works_after_stop"] is True


@pytest.fixture(scope="session")
def lxml_installed():
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--only-binary=:all:",
         "--disable-pip-version-check", "lxml"],
        capture_output=True, text=True, timeout=600,
    )
    if done.returncode != 0:
        probe = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "pip"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"PyPI is unreachable (pip install lxml): {probe.stderr[-300:]}")
        pytest.fail(f"pip install lxml failed:\n{done.stderr[-2000:]}")


def test_lxml_tree_at_the_line_that_parsed_it(fixture_libs, lxml_installed):
    # libxml2 (linked into lxml's extension) allocates through xmlMalloc, a
    # pointer to malloc in its data: only the data relocation reaches it.
    out = _run(
        """
        from lxml import etree
        xml = b"<root>" + b"".join(b"<item id='%d'>text %d</item>" % (i, i)
                                   for i in range(20000)) + b"</root>"
        OUT["text"] = len(xml)
        heapscope.start(1, native=True)
        tree = etree.fromstring(xml); OUT["line"] = line()
        OUT["parsed"] = sum(t[0] for t in mine() if t[1][0][1] == OUT["line"])
        del tree
        OUT["left"] = sum(t[0] for t in mine() if t[1][0][1] == OUT["line"])
        heapscope.stop()
        OUT["works_after_stop"] = len(etree.tostring(etree.fromstring(xml))) == len(xml)
        """,
        fixture_libs,
    )
    # A parsed tree is larger than its text (a node, an attribute and a
    # text node per item); freeing it gives nearly all of it back (the
    # parser keeps a few small dictionaries).
    assert out["parsed"] > out["text"], out
    assert out["left"] < 64 * 1024, out
    assert out["works_after_stop"] is True


def test_libraries_loaded_after_start(fixture_libs):
    out = _run(
        """
        heapscope.start(1, native=True)
        lib = load("late")
        block = lib.fx_malloc(2222); OUT["line"] = line()
        # A library the late one loads with dlopen from C, then mallocs through.
        path = LIBS["late_from_c"].encode()
        other = lib.fx_dlopen_and_malloc(path, 3333); OUT["from_c_line"] = line()
        OUT["traces"] = mine()
        OUT["patched"] = _hs._patched_slots("malloc")
        lib.fx_free(block)
        lib.fx_free(other)
        OUT["after_free"] = mine()
        heapscope.stop()
        OUT["patched_after_stop"] = _hs._patched_slots("malloc")
        """,
        fixture_libs,
    )
    assert out["traces"] == [[2222, [["<string>", out["line"]]]], [3333, [["<string>", out["from_c_line"]]]]]
    assert out["patched"] >= 2
    assert out["after_free"] == []
    assert out["patched_after_stop"] == 0


def test_library_unloaded_while_tracing(fixture_libs):
    out = _run(
        """
        import _ctypes
        heapscope.start(1, native=True)
        OUT["patched_before"] = _hs._patched_slots("malloc")
        lib = load("late")
        block = lib.fx_malloc(5555)
        lib.fx_free(block)
        OUT["patched_loaded"] = _hs._patched_slots("malloc")
        _ctypes.dlclose(lib._handle)  # its slots go with it
        del lib
        OUT["patched_unloaded"] = _hs._patched_slots("malloc")
        lib = load("late")  # loaded again, maybe at another address
        block = lib.fx_malloc(6666); OUT["line"] = line()
        OUT["traces"] = mine()
        lib.fx_free(block)
        heapscope.stop()
        OUT["patched_after_stop"] = _hs._patched_slots("malloc")
        """,
        fixture_libs,
    )
    # The library's malloc slots (its call slot and its allocator pointer
    # in data) come and go with it.
    assert out["patched_loaded"] > out["patched_before"]
    assert out["patched_unloaded"] == out["patched_before"]
    assert out["traces"] == [[6666, [["<string>", out["line"]]]]]
    assert out["patched_after_stop"] == 0


def test_threads_with_and_without_python_frames(fixture_libs):
    out = _run(
        """
        lib = load("lazy")
        heapscope.start(1, native=True)
        kept = {}
        def work(name, size):
            # CDLL releases the GIL around the call: the hook runs without it.
            kept[name] = lib.fx_malloc(size); OUT["thread_line"] = line()
        threads = [threading.Thread(target=work, args=(i, 1111 + i)) for i in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        OUT["python_threads"] = mine()
        blocks = (P * 10)()
        OUT["spawned"] = lib.fx_malloc_in_native_thread(10, 2345, blocks)
        OUT["native_thread"] = [t for t in native() if t[0] == 2345]
        for address in list(kept.values()) + [b for b in blocks if b]:
            lib.fx_free(address)
        OUT["after_free"] = [t for t in native() if t[0] == 2345] + mine()
        heapscope.stop()
        """,
        fixture_libs,
    )
    line = out["thread_line"]
    assert out["python_threads"] == [[1111 + i, [["<string>", line]]] for i in range(4)]
    assert out["spawned"] == 0
    # The five blocks still held, each with CPython's unknown frame.
    assert out["native_thread"] == [[2345, [["<unknown>", 0]]]] * 5
    assert out["after_free"] == []


def test_fork_child_keeps_tracing_native(fixture_libs):
    out = _run(
        """
        import os
        lib = load("lazy")
        heapscope.start(1, native=True)
        kept = lib.fx_malloc(1234)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            block = lib.fx_malloc(4321); child_line = line()
            result = {"line": child_line, "traces": mine(), "native": heapscope.is_tracing_native()}
            lib.fx_free(block)
            lib.fx_free(kept)
            result["after_free"] = mine()
            heapscope.stop()
            result["patched_after_stop"] = _hs._patched_slots("malloc")
            os.write(write, json.dumps(result).encode())
            os._exit(0)
        os.close(write)
        data = b""
        while True:
            chunk = os.read(read, 65536)
            if not chunk: break
            data += chunk
        _, status = os.waitpid(pid, 0)
        OUT["status"] = status
        OUT["child"] = json.loads(data)
        OUT["parent"] = mine()
        OUT["parent_patched"] = _hs._patched_slots("malloc")
        lib.fx_free(kept)
        heapscope.stop()
        """,
        fixture_libs,
    )
    assert out["status"] == 0
    child = out["child"]
    assert child["native"] is True
    assert sorted(size for size, _ in child["traces"]) == [1234, 4321]
    assert [4321, [["<string>", child["line"]]]] in child["traces"]
    assert child["after_free"] == []
    assert child["patched_after_stop"] == 0
    # The parent is untouched by the child's frees and stop().
    assert [size for size, _ in out["parent"]] == [1234]
    assert out["parent_patched"] >= 1


@pytest.mark.parametrize("pythonmalloc", [None, "malloc"])
def test_python_allocations_not_counted_twice(fixture_libs, pythonmalloc):
    env = dict(os.environ)
    env.pop("PYTHONMALLOC", None)
    if pythonmalloc:
        # Python's allocators are then malloc itself, called from libpython.
        env["PYTHONMALLOC"] = pythonmalloc
    out = _run(
        """
        heapscope.start(1, native=True)
        data = bytearray(3_000_000); OUT["line"] = line()   # PyMem: libpython's malloc
        raw = ctypes.create_string_buffer(2_000_000)           # PyMem too
        snapshot = heapscope.take_snapshot()
        OUT["domains_at_line"] = sorted(
            {t.domain for t in snapshot.traces if t.traceback[0].lineno == OUT["line"]})
        OUT["native_big"] = [t for t in native() if t[0] >= 1_000_000]
        # A block the library reports itself (PyTraceMalloc_Track, as numpy
        # does for array data) is counted in that domain only.
        lib = load("lazy")
        block = lib.fx_malloc(50_000)
        OUT["track"] = lib.fx_track(12345, block, 50_000)
        snapshot = heapscope.take_snapshot()
        OUT["block_domains"] = sorted(t.domain for t in snapshot.traces if t.size == 50_000)
        lib.fx_untrack(12345, block)
        lib.fx_free(block)
        heapscope.stop()
        """,
        fixture_libs,
        env=env,
    )
    assert out["domains_at_line"] == [0]
    assert out["native_big"] == []
    assert out["track"] == 0
    assert out["block_domains"] == [12345]


def test_exit_while_tracing_native(fixture_libs):
    # No stop(): the interpreter finalizes with the slots rewritten while a
    # daemon thread (GIL released in each call) and a thread Python never
    # saw keep allocating and freeing through them.
    out = _run(
        """
        import sqlite3
        lib = load("lazy")
        heapscope.start(5, native=True)
        connection = sqlite3.connect(":memory:")
        connection.execute("create table t(x)")
        def churn():
            while True:
                lib.fx_free(lib.fx_malloc(100))
        threading.Thread(target=churn, daemon=True).start()
        blocks = (P * 1000)()
        lib.fx_malloc_in_native_thread(1000, 64, blocks)
        kept = [lib.fx_malloc(5000) for _ in range(100)]
        OUT["native"] = heapscope.is_tracing_native()
        """,
        fixture_libs,
    )
    assert out["native"] is True


def test_sampled_mode_samples_native_blocks(fixture_libs):
    out = _run(
        """
        lib = load("lazy")
        heapscope.start(1, sample_interval=65536, native=True)
        blocks = [lib.fx_malloc(4096) for _ in range(4000)]; OUT["line"] = line()
        snapshot = heapscope.take_snapshot().filter_traces(
            [heapscope.DomainFilter(True, heapscope.NATIVE_DOMAIN)])
        at_line = [t for t in snapshot.traces if t.traceback[0].lineno == OUT["line"]]
        OUT["count"] = len(at_line)
        OUT["estimate"] = sum(s.size for s in snapshot.statistics("lineno")
                              if s.traceback[0].lineno == OUT["line"])
        for b in blocks: lib.fx_free(b)
        OUT["after_free"] = len(heapscope.take_snapshot().filter_traces(
            [heapscope.DomainFilter(True, heapscope.NATIVE_DOMAIN)]).traces)
        heapscope.stop()
        """,
        fixture_libs,
    )
    total = 4000 * 4096
    # A sample every 64 KiB on average over 16 MiB: about 250 blocks are
    # sampled, not all 4000, and the estimate is the bytes allocated within
    # a generous 25 % (the Poisson count's standard deviation is ~6 %).
    assert 100 < out["count"] < 500
    assert abs(out["estimate"] - total) < 0.25 * total
    assert out["after_free"] == 0


def test_start_arguments(fixture_libs):
    out = _run(
        """
        errors = {}
        for kwargs in [{"native": 1}, {"native": "yes"}]:
            try:
                heapscope.start(1, **kwargs)
            except TypeError as error:
                errors[repr(kwargs)] = str(error)
        heapscope.start(1, native=True)
        try:
            heapscope.start(1)
        except ValueError as error:
            errors["mode"] = str(error)
        heapscope.start(1, native=True)  # same mode: fine
        OUT["still_native"] = heapscope.is_tracing_native()
        heapscope.stop()
        OUT["errors"] = errors
        OUT["domain"] = heapscope.NATIVE_DOMAIN
        """,
        fixture_libs,
    )
    assert set(out["errors"]) == {"{'native': 1}", "{'native': 'yes'}", "mode"}
    assert "native must be a bool" in out["errors"]["{'native': 1}"]
    assert "native allocations included" in out["errors"]["mode"]
    assert out["still_native"] is True
    assert out["domain"] not in (0, 389047, 424242, 414141)


def test_sqlite_pages_at_the_line_that_built_the_table(fixture_libs):
    import sqlite3  # noqa: F401  (skips below if the module is missing)

    out = _run(
        """
        import ctypes.util, sqlite3, _sqlite3
        # The libsqlite3 _sqlite3 links, as loaded in this process.
        sqlite = ctypes.CDLL(None)
        try:
            used = sqlite.sqlite3_memory_used
        except AttributeError:
            used = ctypes.CDLL(ctypes.util.find_library("sqlite3")).sqlite3_memory_used
        used.restype = ctypes.c_int64
        heapscope.start(1, native=True)
        before = used()
        connection = sqlite3.connect(":memory:"); OUT["connect_line"] = line()
        connection.execute("create table t(x)")
        connection.executemany("insert into t values (?)", [("x" * 100,)] * 20000); OUT["line"] = line()
        OUT["sqlite_counter"] = used() - before
        by_line = {}
        for size, frames in native():
            by_line[frames[0][1]] = by_line.get(frames[0][1], 0) + size
        OUT["traced_lines"] = {str(k): v for k, v in by_line.items()}
        connection.close(); OUT["close_line"] = line()
        OUT["sqlite_after_close"] = used() - before
        OUT["traced_after_close"] = sum(size for size, frames in mine())
        heapscope.stop()
        """,
        fixture_libs,
    )
    lines = out["traced_lines"]
    table = lines.get(str(out["line"]), 0)
    connect = lines.get(str(out["connect_line"]), 0)
    counter = out["sqlite_counter"]
    # 20,000 rows of 100 bytes: the pages hold at least the rows' bytes.
    assert table >= 2_000_000
    if counter > 0:
        # sqlite's own count of its outstanding memory (sqlite3_memory_used,
        # the usable sizes of its blocks) and the bytes traced at the lines
        # that made it agree within 2 % (usable size vs size asked for).
        assert abs((table + connect) - counter) <= 0.02 * counter, (table, connect, counter)
    # Closing the connection frees its pages: what is left traced at the
    # script's lines is what sqlite still holds (its counter after close).
    assert out["traced_after_close"] <= max(out["sqlite_after_close"], 0) + 64 * 1024


@pytest.fixture(scope="session")
def numpy_installed():
    from test_real_libraries import _install_or_skip

    _install_or_skip("numpy")


def test_numpy_matmul(fixture_libs, numpy_installed):
    out = _run(
        """
        heapscope.start(1, native=True)
        import numpy as np  # after start(): OpenBLAS is loaded through the dlopen wrapper
        a = np.ones((300, 300)); b = np.ones((300, 300))
        def native_at(lineno):
            return sum(size for size, frames in mine() if frames[0][1] == lineno)
        first = a @ b; OUT["first_line"] = line()
        OUT["first_native"] = native_at(OUT["first_line"])
        heapscope.reset_peak()
        current, _ = heapscope.get_traced_memory()
        native_before = sum(size for size, frames in native())
        c = a @ b; OUT["line"] = line()
        after, peak = heapscope.get_traced_memory()
        OUT["grew"] = after - current
        OUT["peak_above"] = peak - current
        OUT["native_grew"] = sum(size for size, frames in native()) - native_before
        OUT["native_at_line"] = native_at(OUT["line"])
        OUT["check"] = float(c[0, 0])
        snapshot = heapscope.take_snapshot()
        OUT["result_domains"] = sorted(
            t.domain for t in snapshot.traces
            if t.traceback[0].lineno == OUT["line"] and t.size >= 300 * 300 * 8)
        heapscope.stop()
        """,
        fixture_libs,
    )
    assert out["check"] == 300.0
    # The first product makes OpenBLAS map its work buffers (anonymous mmap,
    # megabytes), traced at that line; it keeps them for the next products.
    assert out["first_native"] >= 1 << 20
    # The second product reuses them: no native byte more, none at its line.
    assert out["native_grew"] == 0 and out["native_at_line"] == 0
    # Its result (720,000 bytes) is counted once: numpy reports it in its own
    # domain (or domain 0 from numpy 2.5: PyMem_RawMalloc), never also in the
    # native domain.
    assert len(out["result_domains"]) == 1 and out["result_domains"][0] != 0x6E6174
    assert out["grew"] >= 300 * 300 * 8
    assert out["peak_above"] >= out["grew"]


_CLI_PROGRAM = r"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.fx_malloc.restype = ctypes.c_void_p
lib.fx_malloc.argtypes = [ctypes.c_size_t]
kept = [lib.fx_malloc(1_000_000) for _ in range(5)]  # NATIVE LINE
"""


def _program(tmp_path):
    path = tmp_path / "native_program.py"
    path.write_text(_CLI_PROGRAM)
    line = next(number for number, text in enumerate(_CLI_PROGRAM.splitlines(), 1)
                if "NATIVE LINE" in text)
    return path, line


def _native_sizes_at(snapshot_path, program, line):
    import heapscope

    snapshot = heapscope.Snapshot.load(str(snapshot_path))
    return sorted(t.size for t in snapshot.traces
                  if t.domain == heapscope.NATIVE_DOMAIN
                  and t.traceback[0].filename == str(program) and t.traceback[0].lineno == line)


def _environment(**variables):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEAPSCOPE_")}
    env.update(variables)
    return env


@pytest.mark.parametrize("native", [True, False])
def test_cli_run_native(fixture_libs, tmp_path, native):
    program, line = _program(tmp_path)
    output = tmp_path / "run.hsnap"
    command = [sys.executable, "-m", "heapscope", "run", "-o", str(output), "--top", "3"]
    if native:
        command.append("--native")
    child = subprocess.run(command + [str(program), fixture_libs["lazy"]], capture_output=True,
                           text=True, timeout=120, env=_environment())
    assert child.returncode == 0, child.stderr
    sizes = _native_sizes_at(output, program, line)
    if native:
        assert sizes == [1_000_000] * 5
        # The exit summary's top line is the native one (4.8 MiB).
        assert f"native_program.py:{line}" in child.stderr
    else:
        assert sizes == []


def test_environment_variable(fixture_libs, tmp_path):
    from heapscope.cli import environment

    program, line = _program(tmp_path)
    output = tmp_path / "env.hsnap"
    base = dict(HEAPSCOPE_TRACE="1", HEAPSCOPE_OUTPUT=str(output), HEAPSCOPE_TOP="0")
    env_native = _environment(**base, HEAPSCOPE_NATIVE="1")
    child = subprocess.run([sys.executable, str(program), fixture_libs["lazy"]],
                           capture_output=True, text=True, timeout=120, env=env_native)
    assert child.returncode == 0, child.stderr
    if not output.exists():
        pytest.skip("heapscope.pth is not in site-packages (heapscope not installed with "
                    "pip): HEAPSCOPE_TRACE cannot work here; stderr: " + child.stderr[-300:])
    assert _native_sizes_at(output, program, line) == [1_000_000] * 5
    # A bad value: one line on stderr, the program runs untraced.
    output.unlink()
    bad = subprocess.run([sys.executable, str(program), fixture_libs["lazy"]],
                         capture_output=True, text=True, timeout=120,
                         env=_environment(**base, HEAPSCOPE_NATIVE="yes"))
    assert bad.returncode == 0
    assert "HEAPSCOPE_NATIVE=yes" in bad.stderr and not output.exists()
    # Children of `run --native --trace-children` inherit the variable.
    assert environment.for_children(1, "x.{pid}", None, native=True)["HEAPSCOPE_NATIVE"] == "1"
    assert "HEAPSCOPE_NATIVE" not in environment.for_children(1, "x.{pid}", None)
