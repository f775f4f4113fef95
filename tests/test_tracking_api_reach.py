"""Which PyTraceMalloc_Track calls reach heapscope, as README's "What it
sees: domains" says: calls an extension makes through its own relocation
slots do (here _testcapi's, while CPython's module does not trace); a call
through a pointer looked up by the caller (ctypes.pythonapi, i.e. dlsym)
does not, and gets CPython's answer alone.

Run: python -m pytest tests/test_tracking_api_reach.py -q
"""

import json
import subprocess
import sys
import textwrap

import pytest

_CHILD = textwrap.dedent(
    """
    import ctypes, json, _tracemalloc
    import heapscope
    import _testcapi

    assert not _tracemalloc.is_tracing()
    track = ctypes.pythonapi.PyTraceMalloc_Track
    track.argtypes = (ctypes.c_uint, ctypes.c_size_t, ctypes.c_size_t)
    track.restype = ctypes.c_int
    untrack = ctypes.pythonapi.PyTraceMalloc_Untrack
    untrack.argtypes = (ctypes.c_uint, ctypes.c_size_t)
    untrack.restype = ctypes.c_int

    def sizes(domain):
        return sorted(t[1] for t in heapscope._get_traces() if t[0] == domain)

    through_slot, looked_up = bytearray(10), bytearray(10)
    heapscope.start()
    try:
        _testcapi.tracemalloc_track(71, id(through_slot), 4321, False)
        slot_error = None
    except RuntimeError as exc:  # Track returned < 0
        slot_error = str(exc)
    looked_up_result = track(72, id(looked_up), 8765)
    out = {
        "through_slot": sizes(71),
        "through_slot_error": slot_error,
        "looked_up": sizes(72),
        "looked_up_result": looked_up_result,
    }
    heapscope.stop()
    print(json.dumps(out))
    """
)


def test_slot_calls_reach_heapscope_looked_up_pointers_do_not():
    try:
        import _testcapi  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"this Python has no _testcapi ({exc}) to call Track through a slot")
    child = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    out = json.loads(child.stdout.strip().splitlines()[-1])
    assert out["through_slot_error"] is None and out["through_slot"] == [4321], out
    # README documents this limit; if heapscope ever reaches such calls, the
    # README's "What it does not see" must change with this assertion.
    assert out["looked_up"] == [] and out["looked_up_result"] == -2, out
