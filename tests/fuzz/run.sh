#!/bin/sh
# A short fuzzing run of Snapshot.load for CI: atheris (pip install atheris)
# over the seed corpus, 30 seconds by default. Findings land in
# tests/fuzz/findings/ and make the script fail; add each, once fixed, to
# corpus/ as regress-*: tests/test_snapshot_file.py checks they are refused.
#   tests/fuzz/run.sh [seconds] [python]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-30}
python=${2:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here"/corpus/* "$work"/
mkdir -p "$here/findings"
status=0
"$python" "$here/fuzz_load.py" "$work" -max_total_time="$seconds" -timeout=10 \
  -rss_limit_mb=2048 -artifact_prefix="$here/findings/" || status=$?
rmdir "$here/findings" 2>/dev/null || true  # kept only when something was found
exit $status
