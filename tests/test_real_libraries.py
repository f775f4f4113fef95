"""numpy and pandas, side by side with the standard module.

Extension modules report the buffers they allocate themselves through
CPython's tracking API, `PyTraceMalloc_Track(domain, ptr, size)` and
`PyTraceMalloc_Untrack(domain, ptr)`: numpy its array data in domain 389047,
pandas its hash tables in 424242. Each scenario runs in two children, under
CPython's tracemalloc and under heapscope, and both must report the same
memory: per domain, the traced size and block count of the blocks the
scenario allocated, and `statistics("lineno")` for the lines that allocated
them, equal within 1 %.

numpy's versions differ in how they call the API (numpy's
numpy/_core/src/multiarray/alloc.c):

- up to 2.1.2 (pip's numpy on 3.9 is 2.0.2): array data from malloc, Track's
  return value ignored, and a resize untracks the old address only when
  realloc moved the block (so a second Track of the same address must replace
  the first);
- from 2.1.3 (numpy#27569): a Track that returns -1 makes numpy free the
  buffer and fail the allocation, so a wrong -1 breaks the program;
- from 2.5 (pip's numpy on 3.12 and 3.13): array data from PyMem_RawMalloc/
  RawCalloc/RawRealloc, which the tracer sees in domain 0, then
  `PyTraceMalloc_Untrack(0, ptr)` and `PyTraceMalloc_Track(389047, ptr, size)`
  move it to numpy's domain (read from the 2.5.5 wheel's calls).

The release pip gives the running Python is installed into it; 2.1.3, the
first release that checks Track's return value, is also run on every Python
that has its wheel (3.10-3.13), from a directory of its own.

Run: python -m pytest tests/test_real_libraries.py -q (installs numpy and
pandas into the running interpreter from PyPI; skips only if PyPI cannot be
reached).
"""

from __future__ import annotations

import abc
import subprocess
import sys

import pytest

from side_by_side import run_both, within, write_program

NUMPY_DOMAIN = 389047
PANDAS_DOMAIN = 424242
CHECKING_NUMPY = "2.1.3"  # the first numpy release that checks Track's return value
TOLERANCE = 0.01
# statistics("lineno") entries smaller than this in both runs are not compared.
MIN_LINE_SIZE = 1024
# Blocks a line may differ by beyond TOLERANCE (a count under 100 must
# otherwise be exact).
BLOCK_SLACK = 1
# Lines not compared one by one: the ABC caches (abc.py:123 or <frozen
# abc>:123, `_abc_subclasscheck`) hold sets of weak references whose block
# count moves from run to run under either module alike, even with the
# collector off and the hash seed fixed (pandas on 3.10: the standard module
# against itself 127 and 128 blocks over 4 runs, heapscope 126 to 128). They
# stay in domain 0's total, which DOMAIN0_SLACK bounds.
def _is_abc_cache(filename: str) -> bool:
    return filename in ("<frozen abc>", abc.__file__)


# Domain 0 as a whole also holds the interpreter's own caches touched by the
# scenario (type and ABC caches, interned strings), which vary by a few
# blocks from run to run under either module (the standard module against
# itself: up to 8 blocks, about 0.4 KiB, on pandas): that total may differ
# by this much more. The tracking API's domains and each line of 1 KiB or
# more are held to TOLERANCE and BLOCK_SLACK.
DOMAIN0_SLACK = (2048, 16)  # bytes, blocks


def _same(want, have):
    size_ok = within(want[0], have[0], TOLERANCE)
    count_ok = within(want[1], have[1], TOLERANCE) or abs(want[1] - have[1]) <= BLOCK_SLACK
    return size_ok and count_ok


def _close(want, have, slack):
    return abs(want[0] - have[0]) <= slack[0] and abs(want[1] - have[1]) <= slack[1]


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=900,
    )


def _install_or_skip(*args: str) -> None:
    done = _pip("install", "-q", "--only-binary=:all:", *args)
    if done.returncode == 0:
        return
    probe = _pip("index", "versions", "pip")
    if probe.returncode != 0:
        pytest.skip(f"PyPI is unreachable (pip install {' '.join(args)}): {probe.stderr[-500:]}")
    pytest.fail(f"pip install {' '.join(args)} failed:\n{done.stdout}\n{done.stderr[-3000:]}")


@pytest.fixture(scope="session")
def released_libraries():
    """numpy and pandas as pip gives them to the running Python."""
    _install_or_skip("numpy", "pandas")


@pytest.fixture(scope="session")
def checking_numpy(tmp_path_factory):
    """PYTHONPATH of a directory holding numpy 2.1.3 alone."""
    if sys.version_info < (3, 10):
        pytest.skip(f"numpy {CHECKING_NUMPY} has no wheel for Python 3.9 (it needs 3.10+)")
    target = tmp_path_factory.mktemp("numpy-checking")
    _install_or_skip("--target", str(target), f"numpy=={CHECKING_NUMPY}")
    return {"PYTHONPATH": str(target)}


# What every scenario reports: the blocks whose traceback passes through the
# scenario file, per domain and per line (statistics("lineno")), and every
# block of the libraries' own domains.
_REPORT = """
snapshot = tracemalloc.take_snapshot()
tracemalloc.stop()
mine = snapshot.filter_traces([tracemalloc.Filter(True, __file__, all_frames=True)])
domains, all_domains = collections.defaultdict(lambda: [0, 0]), collections.defaultdict(lambda: [0, 0])
for trace in mine.traces:
    domains[trace.domain][0] += trace.size
    domains[trace.domain][1] += 1
for trace in snapshot.traces:
    if trace.domain != 0:
        all_domains[trace.domain][0] += trace.size
        all_domains[trace.domain][1] += 1
lines = [
    [stat.traceback[0].filename, stat.traceback[0].lineno, stat.size, stat.count]
    for stat in mine.statistics("lineno")
]
with open(RESULTS, "w") as out:
    json.dump({
        "versions": VERSIONS,
        "domains": {str(d): v for d, v in domains.items()},
        "all_domains": {str(d): v for d, v in all_domains.items()},
        "lines": lines,
    }, out)
"""

# Everything is imported before tracing starts: the two modules' own imports
# differ, the scenario's must not.
NUMPY_SCENARIO = """
import collections, json
import numpy as np

VERSIONS = {"numpy": np.__version__}
import gc
gc.disable()  # collections at different moments move the ABC caches' blocks
tracemalloc.start(25)

ones = np.ones(300_000)                             # created (malloc or RawMalloc)
view = ones[::3]                                     # a view: no new data
zeros = np.zeros((200, 500))                         # calloc path
grown = np.arange(100_000, dtype=np.int64)
grown.resize(250_000, refcheck=False)                # ndarray.resize: realloc
shrunk = np.arange(200_000, dtype=np.int64)
shrunk.resize(50_000, refcheck=False)                # realloc that may stay in place
reshaped = np.resize(zeros, (300, 600))              # np.resize: a new array
joined = np.concatenate([ones, grown.astype(float)])  # the astype temporary is freed
freed = np.empty(400_000)
del freed                                            # freed: must leave no trace
smalls = [np.arange(i % 40) for i in range(400)]     # small arrays: numpy's block cache
del smalls[::2]                                      # half go back to the cache
more = [np.full(i % 40, 1.5) for i in range(400)]    # taken again from the cache
copies = [a.copy() for a in smalls]
"""

PANDAS_SCENARIO = """
import collections, json
import numpy as np
import pandas as pd

VERSIONS = {"numpy": np.__version__, "pandas": pd.__version__}
import gc
gc.disable()  # collections at different moments move the ABC caches' blocks
tracemalloc.start(25)

keys = np.arange(60_000) % 6_000
frame = pd.DataFrame({"k": keys, "v": np.arange(60_000, dtype=float)})
uniques = pd.unique(frame["k"])                       # a hash table, freed after
grouped = frame.groupby("k")["v"].sum()               # hash tables for the groups
merged = frame.merge(pd.DataFrame({"k": np.arange(6_000), "w": np.ones(6_000)}), on="k")
index = pd.Index(np.arange(30_000) * 7)
position = index.get_loc(700)                         # the index keeps its hash table
table = pd._libs.hashtable.Int64HashTable()
table.map_locations(np.arange(20_000, dtype=np.int64))  # a live table of our own
"""


def _assert_same_report(results, must_have_domains):
    expected, got = results["tracemalloc"], results["heapscope"]
    versions = expected["versions"]
    assert got["versions"] == versions
    for domain in must_have_domains:
        # Guards the scenario: the libraries must really have used the API.
        assert expected["all_domains"].get(str(domain), [0, 0])[1] > 0, (
            f"{versions}: the standard module saw nothing in domain {domain}: "
            "the scenario does not exercise the tracking API"
        )

    problems = []
    for key in ("domains", "all_domains"):
        for domain in sorted(set(expected[key]) | set(got[key]), key=int):
            want = expected[key].get(domain, [0, 0])
            have = got[key].get(domain, [0, 0])
            if not _same(want, have) and not (domain == "0" and _close(want, have, DOMAIN0_SLACK)):
                scope = "the scenario's blocks" if key == "domains" else "all blocks"
                problems.append(
                    f"domain {domain} ({scope}): heapscope {have[0]} B in {have[1]} blocks, "
                    f"the standard module {want[0]} B in {want[1]} blocks"
                )

    def by_line(report):
        return {(f, n): (s, c) for f, n, s, c in report["lines"]}

    want_lines, have_lines = by_line(expected), by_line(got)
    for line in sorted(set(want_lines) | set(have_lines)):
        want = want_lines.get(line, (0, 0))
        have = have_lines.get(line, (0, 0))
        if max(want[0], have[0]) < MIN_LINE_SIZE or _is_abc_cache(line[0]):
            continue
        if not _same(want, have):
            problems.append(
                f"{line[0]}:{line[1]}: heapscope size={have[0]} count={have[1]}, "
                f"the standard module size={want[0]} count={want[1]}"
            )
    assert not problems, f"{versions}, Python {sys.version.split()[0]}:\n" + "\n".join(problems)


def test_numpy_release_matches_the_standard_module(released_libraries, tmp_path):
    path = write_program(tmp_path, "numpy_arrays.py", NUMPY_SCENARIO + _REPORT)
    _assert_same_report(run_both(path), must_have_domains=[NUMPY_DOMAIN])


def test_numpy_checking_tracks_return_matches_the_standard_module(checking_numpy, tmp_path):
    path = write_program(tmp_path, "numpy_arrays.py", NUMPY_SCENARIO + _REPORT)
    results = run_both(path, env=checking_numpy)
    assert results["tracemalloc"]["versions"]["numpy"] == CHECKING_NUMPY
    _assert_same_report(results, must_have_domains=[NUMPY_DOMAIN])


@pytest.mark.xfail(
    sys.version_info < (3, 10),
    strict=True,
    reason="3.9: one 616-byte block more than the standard module at the merge() line "
    "(domain 0; the pandas domain agrees); not yet explained",
)
def test_pandas_hash_tables_match_the_standard_module(released_libraries, tmp_path):
    path = write_program(tmp_path, "pandas_tables.py", PANDAS_SCENARIO + _REPORT)
    _assert_same_report(run_both(path), must_have_domains=[NUMPY_DOMAIN, PANDAS_DOMAIN])
