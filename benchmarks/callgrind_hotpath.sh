#!/usr/bin/env bash
# Instruction counts of the hot path, stable on a noisy machine: the same
# workload untraced, under CPython's tracemalloc and under heapscope.
#   benchmarks/callgrind_hotpath.sh [PYTHON]
# PYTHON must be the real interpreter binary, not a pyenv shim (valgrind
# would profile the shim's bash). Needs valgrind.
set -euo pipefail
python="${1:-$(python3 -c 'import sys; print(sys.executable)')}"
python="$(readlink -f "$("$python" -c 'import sys; print(sys.executable)')")"
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
count() {
  PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file="$out/cg" \
    "$python" "$here/hotpath_workload.py" "$1" "$2" >/dev/null 2>&1
  callgrind_annotate "$out/cg" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}
none=$(count none 1)
printf '%-22s %15s %8s\n' configuration instructions "vs none"
printf '%-22s %15d %8s\n' "no tracing" "$none" "1.00x"
for config in "cpython 1" "heapscope 1" "heapscope-sampled 1" "cpython 25" "heapscope 25"; do
  n=$(count $config)
  printf '%-22s %15d %7.2fx\n' "${config/ / nframe=}" "$n" "$(echo "$n / $none" | bc -l)"
done
