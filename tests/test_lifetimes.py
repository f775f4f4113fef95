"""Tracing must not change how long the traced program's objects live, nor
write into its frames or its garbage collector.

heapscope's frame cache knows code objects by address and holds no
reference to them: each scenario runs in a fresh interpreter, traced or not,
and compares what the program can observe (weak references to its code
objects, the collector's allocation count) and, where a code object's
address is reused, the filename and line heapscope reports."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))


def run_program(source: str, *args: str) -> dict:
    """Runs `source` in a fresh interpreter and returns the JSON object it
    prints on its last line."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(source), *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# Compiles and runs 1,000 functions, each called once (so that its code
# object is in a traceback heapscope resolves), then drops them all.
_DROPPED_CODE = """
import gc, json, sys, weakref
tracer = sys.argv[1]
if tracer == "heapscope":
    import heapscope as module
elif tracer == "tracemalloc":
    import tracemalloc as module
if tracer != "none":
    module.start(1)
refs = []
for i in range(1000):
    ns = {}
    exec(compile(f"def f{i}(n):\\n    return [n] * {i % 50 + 3}\\n", f"<made {i}>", "exec"), ns)
    f = ns.pop(f"f{i}")
    f(i)
    refs.append(weakref.ref(f.__code__))
    del f, ns
gc.collect()
alive = sum(ref() is not None for ref in refs)
traced = module.get_traced_memory()[0] if tracer != "none" else 0
print(json.dumps({"alive": alive, "traced": traced}))
"""


def test_code_objects_made_and_dropped_while_tracing_die_as_untraced():
    untraced = run_program(_DROPPED_CODE, "none")
    standard = run_program(_DROPPED_CODE, "tracemalloc")
    traced = run_program(_DROPPED_CODE, "heapscope")
    assert untraced["alive"] == 0
    assert standard["alive"] == untraced["alive"]
    assert traced["alive"] == untraced["alive"]
    # Everything the program made is gone but its weak references and what
    # compile() interned. The standard module's traces also own a reference
    # to each of the 1,000 filename strings, where heapscope keeps a copy of
    # its own outside the traced heap: heapscope's traced memory is the
    # standard module's less those strings, within 3 %. (Keeping the code
    # objects alive made it several times as much; the base the interpreter
    # starts with differs between installations, so no ratio is fixed.)
    filenames = sum(sys.getsizeof(f"<made {i}>") for i in range(1000))
    expected = standard["traced"] - filenames
    assert abs(traced["traced"] - expected) <= 0.03 * standard["traced"], (traced, standard, filenames)


# Compiles a function per round, under a new filename and with its body on
# a new line, calls it once to allocate a block of a size unique to the
# round, and drops it, until code objects have come back at addresses that
# earlier rounds' had. Prints each block's size with the filename and line
# that made it, and how many rounds reused an address.
_REUSED_ADDRESSES = """
import json, sys
blocks = {}
kept = []
seen = set()
reused = 0
for i in range(5000):
    source = "\\n" * (i % 11) + "def f(n):\\n    return bytearray(n)\\n"
    ns = {}
    exec(compile(source, f"<round {i}>", "exec"), ns)
    f = ns.pop("f")
    size = 100_000 + i
    kept.append(f(size))
    blocks[size + 1] = [f"<round {i}>", i % 11 + 2]
    address = id(f.__code__)
    reused += address in seen
    seen.add(address)
    del f, ns
    if reused >= 50:
        break
result = {"reused": reused, "blocks": blocks}
"""

# Appended to _REUSED_ADDRESSES in the interpreter that imported heapscope:
# the traced filename and line of each block, by size.
_REPORT_TRACES = """
made = result["blocks"]
traced = {}
for _, size, frames, _ in heapscope._get_traces():
    if size in made:
        traced[size] = list(frames[0])
result["traced"] = {size: traced.get(size) for size in made}
print(json.dumps(result))
"""


def check_reuse(result):
    assert result["reused"] >= 50, "code object addresses never came back"
    wrong = {size: (made, result["traced"][size]) for size, made in result["blocks"].items()
             if result["traced"][size] != made}
    assert wrong == {}


def test_a_code_object_at_a_freed_code_objects_address_gets_its_own_lines():
    program = "import heapscope, json\nheapscope.start(1)\n" + _REUSED_ADDRESSES + _REPORT_TRACES
    check_reuse(run_program(program))


def _subinterpreters():
    try:
        import _interpreters as module  # 3.13
    except ImportError:
        try:
            import _xxsubinterpreters as module  # 3.12
        except ImportError:
            return None
    return module


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="the scenario concerns 3.12+, where code watchers are per interpreter")
def test_code_made_and_freed_in_a_subinterpreter_gets_its_own_lines(tmp_path):
    if _subinterpreters() is None:
        pytest.skip("this Python has neither _interpreters nor _xxsubinterpreters")
    out = tmp_path / "sub.json"
    inner = _REUSED_ADDRESSES + f"\nwith open({str(out)!r}, 'w') as f:\n    json.dump(result, f)\n"
    program = f"""
import json, sys
import heapscope
try:
    import _interpreters as subinterpreters
except ImportError:
    import _xxsubinterpreters as subinterpreters
heapscope.start(1)
interp = subinterpreters.create()
run = getattr(subinterpreters, "run_string", None) or subinterpreters.exec
error = run(interp, {inner!r})
if error is not None:
    raise SystemExit(f"the subinterpreter failed: {{error}}")
with open({str(out)!r}) as f:
    result = json.load(f)
made = {{int(k): v for k, v in result["blocks"].items()}}
traced = {{}}
for _, size, frames, _ in heapscope._get_traces():
    if size in made:
        traced[size] = list(frames[0])
result["traced"] = {{str(size): traced.get(size) for size in made}}
subinterpreters.destroy(interp)
print(json.dumps(result))
"""
    check_reuse(run_program(program))


# Allocates 2,000 blocks at the bottom of an 80-frame stack, each from the
# top of 20 more frames that return in between, with the collector off and
# CPython's free list of dicts emptied, and prints how many blocks the
# object allocator holds and how many objects the collector saw allocated
# meanwhile: only what the program itself made. (heapscope once put a dict
# into a frame near the top of deep stacks, which both saw.)
_DEEP_ALLOCATIONS = """
import gc, json, sys
if sys.argv[1] == "heapscope":
    import heapscope
    heapscope.start(int(sys.argv[2]))
gc.disable()
kept = []

def up(n, i):
    if n:
        return up(n - 1, i)
    kept.append(bytearray(i % 50 + 10))

def down(n):
    if n:
        return down(n - 1)
    drained = [{} for _ in range(200)]
    blocks, count = sys.getallocatedblocks(), gc.get_count()[0]
    for i in range(2000):
        up(20, i)
    return sys.getallocatedblocks() - blocks, gc.get_count()[0] - count

blocks, objects = down(80)
print(json.dumps({"blocks": blocks, "objects": objects}))
"""


@pytest.mark.parametrize("nframe", [1, 25])
def test_deep_stacks_traced_allocate_nothing_the_program_sees(nframe):
    untraced = run_program(_DEEP_ALLOCATIONS, "none")
    traced = run_program(_DEEP_ALLOCATIONS, "heapscope", str(nframe))
    assert traced == untraced
