"""Every allocation of the tracer fails in turn (the 1st, the 2nd, ... the
last of a traced workload): the program never crashes and computes the same
result, the tracer's tables stay consistent with its counters, and a trace
that could not be stored is counted in dropped_traces().

Needs an extension built with HEAPSCOPE_FAULT_INJECTION=ON: run
tests/fault_injection/run.sh, which builds one and runs this file."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from heapscope import _heapscope

pytestmark = pytest.mark.skipif(
    not hasattr(_heapscope, "_fail_allocation_at"),
    reason="needs a HEAPSCOPE_FAULT_INJECTION=ON build: run tests/fault_injection/run.sh")

WORKLOAD = Path(__file__).parent / "workload.py"


def runs_of(mode):
    run = subprocess.run([sys.executable, str(WORKLOAD), mode], capture_output=True, text=True,
                         timeout=1200)
    # A crash (abort, segfault) ends the process with a signal.
    assert run.returncode == 0, run.stderr[-3000:]
    return [json.loads(line) for line in run.stdout.splitlines()]


@pytest.mark.parametrize("mode", ["exact", "sampled"])
def test_each_allocation_of_the_tracer_failing_in_turn(mode):
    runs = runs_of(mode)
    baseline, failing = runs[0], runs[1:]
    assert baseline["fail_at"] == 0 and baseline["dropped"] == 0
    # Enough allocations to reach every table's growth.
    assert baseline["allocations"] > 20
    assert [r["fail_at"] for r in failing] == list(range(1, baseline["allocations"] + 1))
    for r in failing:
        assert r["result"] == baseline["result"], r
        # Only the one allocation fails: at most the trace being recorded is lost.
        assert r["dropped"] <= 1, r
        if mode == "exact":
            # The traces add up to the counter (but for the same few blocks
            # the measurement itself allocates between the two readings).
            assert r["current"] - r["sum_sizes"] == baseline["current"] - baseline["sum_sizes"], r
            # No trace lost beyond those dropped (free lists and the
            # collector's timing move a couple of the workload's blocks).
            assert r["ours"] >= baseline["ours"] - r["dropped"] - 2, r
    # Some failures land where a trace is being stored, and are counted.
    assert sum(r["dropped"] for r in failing) > 0
