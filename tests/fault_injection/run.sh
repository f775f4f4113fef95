#!/usr/bin/env bash
# Builds heapscope with HEAPSCOPE_FAULT_INJECTION=ON (core/allocation.h then
# fails the tracer's Nth allocation on request) into a throwaway venv, and
# runs tests/fault_injection against that build. Exits non-zero on failure.
#
#   bash tests/fault_injection/run.sh      (uses python3; PYTHON=... to override)
#
# HEAPSCOPE_FI_DIR=/some/dir keeps the venv and build tree between runs.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"

if [[ -n "${HEAPSCOPE_FI_DIR:-}" ]]; then
  work="$HEAPSCOPE_FI_DIR"
  mkdir -p "$work"
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/heapscope-fi.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
fi

echo "fault injection: venv and build in $work"
[[ -x "$work/venv/bin/python" ]] || "$python" -m venv "$work/venv"
venv_python="$work/venv/bin/python"
"$venv_python" -m pip install -q pytest
"$venv_python" -m pip install -q --no-cache-dir -C build-dir="$work/build" \
  -C cmake.define.HEAPSCOPE_FAULT_INJECTION=ON "$repo"

# From the temp dir, so `import heapscope` finds the build just installed.
cd "$work"
"$venv_python" -c 'from heapscope import _heapscope; _heapscope._fail_allocation_at' ||
  { echo "fault injection: the installed build has no fault injection" >&2; exit 2; }
"$venv_python" -m pytest -p no:cacheprovider -rfE -q "$repo/tests/fault_injection"
