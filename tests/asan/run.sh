#!/usr/bin/env bash
# Builds heapscope with AddressSanitizer + UndefinedBehaviorSanitizer into a
# throwaway venv, then runs the threaded, fork, coexistence, sampling,
# stack-depth (the remembered chain and its read-ahead), native-tracing and
# relocation-slot tests against that build. Exits non-zero on any test failure and on any sanitizer report.
#
#   bash tests/asan/run.sh            (uses python3; PYTHON=... to override)
#
# Works from a fresh clone: everything it needs (pytest, the build backend)
# is installed into the temporary venv, and the build tree lives in the
# temporary directory too, so the checkout's own build/ is left alone.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"

for tool in gcc g++ "$python"; do
  command -v "$tool" >/dev/null || { echo "asan: $tool not found" >&2; exit 2; }
done
# The runtimes to preload must be those of the compiler that builds the
# extension, so pin the compiler to gcc and ask it where they are.
libasan="$(gcc -print-file-name=libasan.so)"
libubsan="$(gcc -print-file-name=libubsan.so)"
for lib in "$libasan" "$libubsan"; do
  [[ -e "$lib" ]] || { echo "asan: $lib not found (install gcc's sanitizer runtimes)" >&2; exit 2; }
done

# HEAPSCOPE_ASAN_DIR=/some/dir keeps the venv and build tree there between
# runs (an incremental rebuild then takes seconds); otherwise a temporary
# directory is used and removed.
if [[ -n "${HEAPSCOPE_ASAN_DIR:-}" ]]; then
  work="$HEAPSCOPE_ASAN_DIR"
  mkdir -p "$work"
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/heapscope-asan.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
fi

echo "asan: venv and sanitized build in $work"
[[ -x "$work/venv/bin/python" ]] || "$python" -m venv "$work/venv"
venv_python="$work/venv/bin/python"
"$venv_python" -m pip install -q pytest
CC=gcc CXX=g++ HEAPSCOPE_SANITIZE=address,undefined \
  "$venv_python" -m pip install -q --no-cache-dir \
  -C build-dir="$work/build" -C cmake.build-type=RelWithDebInfo "$repo"

# Refuse to test anything but the sanitized build (located without
# importing it: it cannot load without the preloaded runtimes).
built="$(cd "$work" && "$venv_python" -c '
import importlib.util, pathlib
package = pathlib.Path(importlib.util.find_spec("heapscope").origin).parent
print(next(package.glob("_heapscope*.so")))')"
deps="$(ldd "$built")"
[[ "$deps" == *libasan* ]] || { echo "asan: $built is not linked with libasan" >&2; exit 2; }
echo "asan: testing $built"

log="$work/pytest.log"
# Run from the temp dir so `import heapscope` finds the installed build, not
# the checkout. Child interpreters started by the tests inherit these
# variables and so run sanitized too.
#  - detect_leaks=0: CPython leaks by design at exit.
#  - allocator_may_return_null=1: the tests make impossible allocations on
#    purpose (a failing realloc must return NULL, not abort).
set +e
(
  cd "$work"
  LD_PRELOAD="$libasan:$libubsan" \
  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1:abort_on_error=0:halt_on_error=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  PYTHONFAULTHANDLER=1 \
  "$venv_python" -m pytest -p no:cacheprovider -rfE -q \
    "$repo/tests/test_threads.py" "$repo/tests/test_fork.py" "$repo/tests/test_coexistence.py" \
    "$repo/tests/test_sampling.py" "$repo/tests/test_changing_deep_stacks.py" \
    "$repo/tests/test_stack_depth.py" "$repo/tests/test_native.py" "$repo/tests/test_call_slots.py"
) 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# A report in a child process may only show up in the captured output of a
# failed test; look for them everywhere.
if grep -Eq "ERROR: AddressSanitizer|runtime error:|ERROR: UndefinedBehaviorSanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer" "$log"; then
  echo "asan: sanitizer report(s) found:" >&2
  grep -E "ERROR: AddressSanitizer|runtime error:|SUMMARY: " "$log" | sort | uniq -c >&2
  exit 1
fi
if [[ "$status" -ne 0 ]]; then
  echo "asan: tests failed under the sanitized build (exit $status)" >&2
  exit "$status"
fi
echo "asan: no sanitizer report, all tests passed"
