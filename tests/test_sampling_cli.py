"""Sampled tracing from the command line: `heapscope run --sample-interval`
and HEAPSCOPE_SAMPLE_INTERVAL write sampled snapshots whose statistics are
estimates (not the raw sampled sizes), and top shows their intervals."""

import json
import os
import subprocess
import sys

import pytest

import heapscope
from test_startup_env import _startup_hook

TIMEOUT = 120
PROGRAM = '''
data = [bytes(2000) for _ in range(50000)]   # BIG: about 97 MiB
small = [str(i) for i in range(100000)]
'''
BIG_BYTES = 50000 * (2000 + 33)  # bytes objects: 33-byte header on 3.9-3.13


def _program(tmp_path):
    path = tmp_path / 'prog.py'
    path.write_text(PROGRAM)
    return path


def _big_line(snapshot, path):
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if 'BIG' in text)
    for stat in snapshot.statistics('lineno'):
        frame = stat.traceback[-1]
        if frame.filename == str(path) and frame.lineno == line:
            return stat
    raise AssertionError('no statistic for the BIG line')


def _check_estimate(snapshot, path):
    assert snapshot.sample_interval == 65536
    stat = _big_line(snapshot, path)
    # the estimate, not the sampled blocks' own sizes (about 3 % of them)
    assert 0.8 * BIG_BYTES < stat.size < 1.2 * BIG_BYTES
    low, high = stat.size_ci
    assert low < stat.size < high


@pytest.mark.parametrize('nframe', ['1', '5'])
def test_run_with_sample_interval_writes_a_sampled_snapshot(tmp_path, nframe):
    path = _program(tmp_path)
    out = tmp_path / 'sampled.hsnap'
    result = subprocess.run(
        [sys.executable, '-m', 'heapscope', 'run', '--sample-interval', '65536', '-n', nframe,
         '-o', str(out), str(path)],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    _check_estimate(heapscope.Snapshot.load(str(out)), path)

    top = subprocess.run([sys.executable, '-m', 'heapscope', 'top', str(out), '--json'],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert top.returncode == 0, top.stderr
    report = json.loads(top.stdout)
    assert report['snapshot']['sample_interval'] == 65536
    first = report['statistics'][0]
    assert first['size_ci'][0] <= first['size'] <= first['size_ci'][1]


@pytest.mark.skipif(_startup_hook() is None,
                    reason='heapscope.pth is not in site-packages: heapscope is not installed '
                           'with pip, and HEAPSCOPE_TRACE needs it')
def test_environment_variable_samples(tmp_path):
    path = _program(tmp_path)
    out = tmp_path / 'env.hsnap'
    env = dict(os.environ, HEAPSCOPE_TRACE='1', HEAPSCOPE_SAMPLE_INTERVAL='65536',
               HEAPSCOPE_OUTPUT=str(out))
    result = subprocess.run([sys.executable, str(path)], cwd=str(tmp_path), env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    _check_estimate(heapscope.Snapshot.load(str(out)), path)
