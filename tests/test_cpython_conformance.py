"""CPython's own tracemalloc test-suite, run against heapscope.

`test.test_tracemalloc` (the running Python's stdlib copy) is imported in a
child process after `heapscope.install()`, so its `import tracemalloc`
binds heapscope, and run with unittest. Every CPython test must pass except
the ones listed in EXCLUDED below, each with the reason it cannot apply to
heapscope. A failure of anything else is a heapscope bug, not a candidate for
the list.
"""

import json
import subprocess
import sys
import textwrap

import pytest

_STARTUP = (
    "starts a child interpreter with -X tracemalloc / PYTHONTRACEMALLOC, "
    "which enables CPython's module at startup, not heapscope (heapscope's "
    "own startup tracing is planned and will need tests of its own)"
)

# "Class.test" -> why the test cannot apply to heapscope, on every version.
EXCLUDED = {
    "TestCommandLine.test_env_var_disabled_by_default": _STARTUP,
    "TestCommandLine.test_env_var_ignored_with_E": _STARTUP,
    "TestCommandLine.test_env_var_disabled": _STARTUP,
    "TestCommandLine.test_env_var_enabled_at_startup": _STARTUP,
    "TestCommandLine.test_env_limit": _STARTUP,
    "TestCommandLine.test_env_var_invalid": _STARTUP,
    "TestCommandLine.test_sys_xoptions": _STARTUP,
    "TestCommandLine.test_sys_xoptions_invalid": _STARTUP,
    "TestCommandLine.test_pymem_alloc0": _STARTUP,
}

# Exclusions that hold only before a Python version: {(major, minor): {...}}.
# None today: test_new_reference (objects reused from free lists) passes on
# every version since heapscope wraps _Py_NewReference before 3.13.
EXCLUDED_BEFORE = {}


def excluded_tests(version=sys.version_info):
    excluded = dict(EXCLUDED)
    for before, tests in EXCLUDED_BEFORE.items():
        if version[:2] < before:
            excluded.update(tests)
    return excluded


# Runs in the child: install heapscope, import CPython's tests, skip the
# excluded ones with their reason, run the rest and write one JSON record
# per test. argv: [results_path, excluded_json].
_CHILD = textwrap.dedent(
    r"""
    import json, sys, unittest

    import heapscope
    heapscope.install()
    import test.test_tracemalloc as cpython_tests

    # Guard against the whole point silently failing: the tests must be
    # exercising heapscope, not the standard module.
    assert cpython_tests.tracemalloc is heapscope, cpython_tests.tracemalloc

    # TestCAPI stores blocks with _testcapi.tracemalloc_track/untrack and
    # reads them back with _testcapi.tracemalloc_get_traceback (3.9-3.12) or
    # _testinternalcapi._PyTraceMalloc_GetTraceback (3.13): C functions that
    # call libpython's PyTraceMalloc_Track/Untrack and
    # _PyTraceMalloc_GetTraceback through their own module's relocation
    # slots, which heapscope diverts to itself while it traces. Nothing is
    # substituted here; CPython's own module must not be tracing, so that a
    # traceback read back can only have come from heapscope.
    import _tracemalloc
    assert not _tracemalloc.is_tracing()
    for holder, function in (
        ("_testcapi", "tracemalloc_track"),
        ("_testcapi", "tracemalloc_untrack"),
        ("_testcapi", "tracemalloc_get_traceback"),
        ("_testinternalcapi", "_PyTraceMalloc_GetTraceback"),
    ):
        module = getattr(cpython_tests, holder, None)
        if module is not None and hasattr(module, function):
            assert type(getattr(module, function)).__name__ == "builtin_function_or_method"

    results_path, excluded = sys.argv[1], json.loads(sys.argv[2])
    for name, reason in excluded.items():
        cls_name, test_name = name.split(".")
        cls = getattr(cpython_tests, cls_name, None)
        if cls is not None and hasattr(cls, test_name):
            setattr(cls, test_name, unittest.skip(reason)(getattr(cls, test_name)))

    class Recorder(unittest.TextTestResult):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.records = []

        def _record(self, test, outcome, detail=""):
            name = ".".join(test.id().split(".")[-2:])
            self.records.append({"test": name, "outcome": outcome, "detail": detail})

        def addSuccess(self, test):
            super().addSuccess(test)
            self._record(test, "passed")

        def addFailure(self, test, err):
            super().addFailure(test, err)
            self._record(test, "failed", self.failures[-1][1])

        def addError(self, test, err):
            super().addError(test, err)
            self._record(test, "error", self.errors[-1][1])

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            self._record(test, "excluded" if reason in excluded.values() else "skipped", reason)

        def addExpectedFailure(self, test, err):
            super().addExpectedFailure(test, err)
            self._record(test, "passed")

        def addUnexpectedSuccess(self, test):
            super().addUnexpectedSuccess(test)
            self._record(test, "failed", "unexpected success")

    def run_at_depth(depth):
        # CPython's test_snapshot asserts that traces[1] has total_nframe > 10,
        # true under regrtest's deep stack but not under a bare runner (the
        # standard module itself fails it there on 3.9). Recurse to give the
        # tests a regrtest-like stack.
        if depth:
            return run_at_depth(depth - 1)
        suite = unittest.defaultTestLoader.loadTestsFromModule(cpython_tests)
        runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=Recorder)
        return runner.run(suite)

    result = run_at_depth(20)
    with open(results_path, "w") as out:
        json.dump(result.records, out)
    """
)


def _stdlib_tests_available():
    try:
        import test.test_tracemalloc  # noqa: F401
    except ImportError as exc:
        return False, str(exc)
    return True, ""


@pytest.fixture(scope="module")
def cpython_results(tmp_path_factory):
    available, why = _stdlib_tests_available()
    if not available:
        pytest.skip(f"this Python has no stdlib test.test_tracemalloc ({why})")
    workdir = tmp_path_factory.mktemp("cpython_conformance")
    results_path = workdir / "results.json"
    # cwd is a scratch dir: the CPython tests write os_helper.TESTFN there.
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(results_path), json.dumps(excluded_tests())],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if not results_path.exists():
        pytest.fail(
            f"the child running CPython's tests died (exit {child.returncode}):\n"
            f"{child.stderr[-5000:]}"
        )
    return json.loads(results_path.read_text())


def test_cpython_test_tracemalloc_passes(cpython_results):
    outcomes = {}
    for record in cpython_results:
        outcomes.setdefault(record["outcome"], []).append(record["test"])
    summary = ", ".join(f"{len(tests)} {outcome}" for outcome, tests in sorted(outcomes.items()))
    print(f"CPython test_tracemalloc on {sys.version.split()[0]}: {summary}")

    # A test skipping itself because tracemalloc is still tracing means an
    # earlier test's stop() did not stop: a heapscope bug, not a skip.
    bad = [
        r
        for r in cpython_results
        if r["outcome"] in ("failed", "error")
        or (r["outcome"] == "skipped" and "must be stopped" in r["detail"])
    ]
    if bad:
        pytest.fail(
            f"{len(bad)} CPython test(s) fail against heapscope ({summary}):\n\n"
            + "\n".join(f"--- {r['test']} ({r['outcome']})\n{r['detail']}" for r in bad),
            pytrace=False,
        )
    assert outcomes.get("passed"), "no CPython test ran"


def test_exclusions_name_real_tests():
    # An exclusion that no longer names a test (renamed upstream, typo) would
    # silently excuse nothing; catch it on the versions that have the module.
    available, why = _stdlib_tests_available()
    if not available:
        pytest.skip(f"this Python has no stdlib test.test_tracemalloc ({why})")
    import test.test_tracemalloc as cpython_tests

    missing = [
        name
        for name in excluded_tests()
        if not hasattr(getattr(cpython_tests, name.split(".")[0], None), name.split(".")[1])
    ]
    assert not missing, f"EXCLUDED names tests this Python does not have: {missing}"


def test_capi_tests_ran_against_heapscope(cpython_results):
    # TestCAPI skips itself where _testcapi is missing; where it exists, each
    # of its tests must have run (and passed: test_cpython_test_tracemalloc_passes
    # reports why not), or PyTraceMalloc_Track/Untrack went untested.
    try:
        import _testcapi  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"this Python has no _testcapi ({exc}): CPython's TestCAPI cannot run")
    capi = {r["test"]: r["outcome"] for r in cpython_results if r["test"].startswith("TestCAPI.")}
    assert capi, "CPython's TestCAPI did not run"
    assert all(outcome == "passed" for outcome in capi.values()), capi
