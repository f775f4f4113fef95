#!/usr/bin/env bash
# The trace table's cost per operation on the insert/erase sequences of real
# workloads, counted by cachegrind (deterministic on a noisy machine), for
# the working tree and optionally a git revision side by side:
#   benchmarks/table_replay.sh [--base REV] [WORKLOAD...]   (default: json ast float deltablue)
# Builds heapscope with HEAPSCOPE_OPLOG=ON into a temporary directory, logs
# the table operations of each workload (child.py, heapscope nframe=1, 3
# loops), then replays each log into TraceTable compiled from each tree.
# Reports instructions, D1 misses and LL misses per operation, with the LL
# cache set to 2 MiB (this machine's L2); the cost of loading and reading the log is
# measured separately and subtracted. Needs valgrind and g++.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
base=""
if [[ "${1:-}" == "--base" ]]; then base="$2"; shift 2; fi
workloads=("$@")
[[ ${#workloads[@]} -gt 0 ]] || workloads=(json ast float deltablue)
python="$(python3 -c 'import sys; print(sys.executable)')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "building heapscope with the operation log..." >&2
python3 -m pip install -q --no-deps --target "$work/logging" "$repo" \
  -C cmake.define.HEAPSCOPE_OPLOG=ON -C build-dir="$work/build" >&2
for w in "${workloads[@]}"; do
  (cd "$here" && HEAPSCOPE_OPLOG="$work/$w.log" PYTHONPATH="$work/logging" "$python" child.py time \
    "{\"workload\": \"$w\", \"config\": \"heapscope-1\", \"loops\": 3}" >/dev/null)
done

trees=(head)
mkdir -p "$work/head/core"
cp "$repo/src/core/trace_table.h" "$repo/src/core/trace_table.cc" "$work/head/core/"
if [[ -n "$base" ]]; then
  trees=(base head)
  mkdir -p "$work/base/core"
  for f in trace_table.h trace_table.cc; do
    git -C "$repo" show "$base:src/core/$f" >"$work/base/core/$f"
  done
fi
for t in "${trees[@]}"; do
  g++ -std=c++20 -O3 -DNDEBUG -I "$work/$t" -o "$work/$t/replay" "$here/table_replay/replay.cc" \
    "$work/$t/core/trace_table.cc"
done

counts() {  # instructions, D1 misses, LL misses of one run
  valgrind --tool=cachegrind --cache-sim=yes --LL=2097152,16,64 --cachegrind-out-file=/dev/null \
    "$@" 2>&1 >/dev/null | awk '/I +refs/ {i=$4} /D1  misses/ {d=$4} /LL misses/ {l=$4}
      END {gsub(",", "", i); gsub(",", "", d); gsub(",", "", l); print i, d, l}'
}
printf '%-11s %-5s %10s %8s %10s %10s\n' workload tree operations "Ir/op" "D1miss/op" "LLmiss/op"
for w in "${workloads[@]}"; do
  ops=$(( $(stat -c %s "$work/$w.log") / 16 ))
  for t in "${trees[@]}"; do
    read -r i0 d0 l0 < <(counts "$work/$t/replay" "$work/$w.log" load)
    read -r i1 d1 l1 < <(counts "$work/$t/replay" "$work/$w.log")
    printf '%-11s %-5s %10d %8.1f %10.3f %10.3f\n' "$w" "$t" "$ops" \
      "$(echo "($i1 - $i0) / $ops" | bc -l)" "$(echo "($d1 - $d0) / $ops" | bc -l)" \
      "$(echo "($l1 - $l0) / $ops" | bc -l)"
  done
done
