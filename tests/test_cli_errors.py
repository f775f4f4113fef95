"""Mistakes at the command line - a missing, empty, truncated or foreign
file, a bad option, a script or module that does not exist, an output that
cannot be written - are one line on stderr and a non-zero exit status,
never a traceback of ours. (docs/cli.md lists the statuses.)"""

import os
import pickle
import subprocess
import sys

import pytest

heapscope = pytest.importorskip('heapscope')

TIMEOUT = 60
COMMAND_LINE_ERROR = 2


def heapscope_cli(*args, cwd=None):
    return subprocess.run([sys.executable, '-m', 'heapscope'] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd)


def one_line_error(result, status=COMMAND_LINE_ERROR):
    """The single line of stderr, after checking it is the only one."""
    assert result.returncode == status, (result.returncode, result.stderr)
    assert 'Traceback' not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('heapscope: error: '), lines[0]
    return lines[0]


@pytest.fixture
def good(tmp_path):
    path = tmp_path / 'good.hsnap'
    heapscope.Snapshot([(0, 64, (('a.py', 1),), 1)] * 3, 1).dump(str(path))
    return path


def bad_files(tmp_path, good):
    data = good.read_bytes()
    files = {
        'missing': tmp_path / 'missing.hsnap',
        'empty': tmp_path / 'empty.hsnap',
        'truncated': tmp_path / 'truncated.hsnap',
        'foreign': tmp_path / 'notes.txt',
        'directory': tmp_path,
    }
    files['empty'].write_bytes(b'')
    files['truncated'].write_bytes(data[:len(data) - 5])
    files['foreign'].write_text('these are not the blocks you are looking for\n')
    files['binary'] = tmp_path / 'random.bin'
    files['binary'].write_bytes(bytes(range(256)) * 4)
    files['other pickle'] = tmp_path / 'list.pickle'
    files['other pickle'].write_bytes(pickle.dumps([1, 2, 3]))
    files['under a file'] = good / 'x.hsnap'
    if os.path.exists('/dev/zero'):
        files['endless'] = '/dev/zero'
    return files


@pytest.mark.parametrize('kind', ['missing', 'empty', 'truncated', 'foreign', 'directory',
                                  'binary', 'other pickle', 'under a file', 'endless'])
@pytest.mark.parametrize('command', ['top', 'diff', 'report', 'export'])
def test_an_unreadable_snapshot_is_one_line_naming_the_file(tmp_path, good, kind, command):
    files = bad_files(tmp_path, good)
    if kind not in files:
        pytest.skip('no /dev/zero on this system')
    bad = files[kind]
    out = tmp_path / 'out'
    args = {'top': ['top', bad], 'diff': ['diff', good, bad],
            'report': ['report', bad, '-o', out],
            'export': ['export', bad, '--format', 'collapsed', '-o', out]}[command]
    line = one_line_error(heapscope_cli(*args))
    assert str(bad) in line
    assert not out.exists()


@pytest.mark.parametrize('args, words', [
    (['top'], 'required'),
    (['top', 'GOOD', '--key', 'function'], "invalid choice: 'function'"),
    (['top', 'GOOD', '--limit', 'many'], "expected an integer, not 'many'"),
    (['top', 'GOOD', '--limit', '-3'], 'expected 0 or more'),
    (['top', 'GOOD', '--domain', '-1'], 'domain'),
    (['top', 'GOOD', '--key', 'traceback', '--cumulative'], '--cumulative'),
    (['top', 'GOOD', '--colour'], 'unrecognized arguments: --colour'),
    (['diff', 'GOOD'], 'required'),
    (['export', 'GOOD', '--format', 'svg', '-o', 'x'], "invalid choice: 'svg'"),
    (['report', 'GOOD'], 'required: -o/--output'),
    (['frobnicate'], "invalid choice: 'frobnicate'"),
    ([], 'required'),
    (['run'], 'expected the script to run'),
    (['run', '-n', '0', 'x.py'], 'range [1; 65535]'),
    (['run', '-n', '70000', 'x.py'], 'range [1; 65535]'),
    (['run', '-n', 'five', 'x.py'], "expected an integer, not 'five'"),
    (['run', '--top', '-1', 'x.py'], 'expected 0 or more'),
    (['run', '--sample-interval', 'lots', 'x.py'], 'sample-interval'),
    (['run', '--bogus', 'x.py'], 'unrecognized arguments: --bogus'),
    (['run', '-m'], 'expected a module name'),
])
def test_a_bad_option_is_one_line(good, args, words):
    args = [str(good) if arg == 'GOOD' else arg for arg in args]
    line = one_line_error(heapscope_cli(*args))
    assert words in line


def test_a_script_that_does_not_exist_fails_as_under_python(tmp_path):
    missing = tmp_path / 'nope.py'
    expected = subprocess.run([sys.executable, str(missing)], capture_output=True, text=True,
                              timeout=TIMEOUT)
    got = heapscope_cli('run', '-o', tmp_path / 's.hsnap', missing)
    line = one_line_error(got, status=expected.returncode)
    # python's own words, after our prefix instead of python's path
    assert line.split('heapscope: error: ')[1] == expected.stderr.split(': ', 1)[1].strip()
    assert os.listdir(str(tmp_path)) == []  # nothing ran, nothing written


def test_a_module_that_does_not_exist_fails_as_under_python(tmp_path):
    expected = subprocess.run([sys.executable, '-m', 'no_such_module_here'], capture_output=True,
                              text=True, timeout=TIMEOUT, cwd=str(tmp_path))
    got = heapscope_cli('run', '-o', tmp_path / 's.hsnap', '-m', 'no_such_module_here',
                        cwd=str(tmp_path))
    line = one_line_error(got, status=expected.returncode)
    assert line.split('heapscope: error: ')[1] == expected.stderr.split(': ', 1)[1].strip()
    assert os.listdir(str(tmp_path)) == []


def test_an_output_that_cannot_be_written_is_refused_before_the_program_runs(tmp_path):
    script = tmp_path / 'prog.py'
    script.write_text('open(%r, "w").close()\n' % str(tmp_path / 'ran'))
    line = one_line_error(heapscope_cli('run', '-o', tmp_path / 'no' / 'dir' / 'x.hsnap', script))
    assert 'no such directory' in line
    assert not (tmp_path / 'ran').exists()


@pytest.mark.parametrize('command', ['report', 'export'])
def test_an_output_that_cannot_be_written_is_one_line(tmp_path, good, command):
    out = tmp_path / 'no' / 'dir' / 'out'
    args = ['report', good, '-o', out] if command == 'report' else \
        ['export', good, '--format', 'speedscope', '-o', out]
    line = one_line_error(heapscope_cli(*args))
    assert str(out) in line


def test_a_reader_that_goes_away_is_no_traceback(tmp_path):
    path = tmp_path / 'many.hsnap'
    heapscope.Snapshot([(0, n, (('f%d.py' % n, n),), 1) for n in range(1, 20000)], 1) \
        .dump(str(path))
    process = subprocess.Popen([sys.executable, '-m', 'heapscope', 'top', str(path),
                                '--limit', '0'],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.readline()
    process.stdout.close()  # like `| head -1`
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert b'Traceback' not in stderr and b'Exception ignored' not in stderr, stderr


@pytest.fixture
def sampled(tmp_path):
    path = tmp_path / 'sampled.hsnap'
    core = heapscope._heapscope._core_from_raw([(0, 64, (('a.py', 1),), 1)] * 3, 4096)
    heapscope._snapshot._snapshot_on(core, 1).dump(str(path))
    return path


@pytest.mark.parametrize('order', ['exact first', 'sampled first'])
@pytest.mark.parametrize('command', ['diff', 'report'])
def test_comparing_an_exact_and_a_sampled_snapshot_is_a_user_error(tmp_path, good, sampled,
                                                                   order, command):
    old, new = (good, sampled) if order == 'exact first' else (sampled, good)
    out = tmp_path / 'out.html'
    args = (['diff', old, new] if command == 'diff'
            else ['report', new, '--diff', old, '-o', out])
    line = one_line_error(heapscope_cli(*args))
    assert 'internal error' not in line
    assert str(good) in line and str(sampled) in line
    assert 'an exact snapshot' in line and 'a sampled snapshot, every 4096 bytes' in line
    assert 'same mode' in line
    assert not out.exists()


def test_two_sampled_snapshots_still_compare(sampled):
    result = heapscope_cli('diff', sampled, sampled)
    assert result.returncode == 0, result.stderr
