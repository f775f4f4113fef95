"""total_nframe inside greenlets is the depth Python shows there.

greenlet gives each greenlet its own Python stack on one thread. On 3.12
heapscope reads the depth from the thread's recursion counter, which a
greenlet starts at its creator's depth: without care every block allocated
inside a greenlet was counted too deep. Each run is a subprocess, since
importing greenlet changes how heapscope counts for the rest of the process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAM = Path(__file__).parent / "greenlet_programs" / "depths.py"


@pytest.fixture(scope="session")
def greenlet_installed():
    try:
        import greenlet  # noqa: F401
        return
    except ImportError:
        pass
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "greenlet"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip("greenlet could not be installed from PyPI: " + result.stderr[-500:])


@pytest.mark.parametrize("order", ["before", "after"])
def test_total_nframe_inside_greenlets_is_pythons_depth(greenlet_installed, order):
    run = subprocess.run([sys.executable, str(PROGRAM), order], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    expected = {int(size): depth for size, depth in result["expected"].items()}
    traced = {int(size): total for size, total in result["traced"].items()}
    assert len(expected) == 18
    assert traced == expected
    # The scenario allocates at many different depths.
    assert len(set(expected.values())) >= 6
