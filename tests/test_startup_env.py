"""HEAPSCOPE_TRACE=N traces any `python` started with it, from startup, as
PYTHONTRACEMALLOC=N does for the standard module: each process writes its
own snapshot at exit, so a program that starts Python subprocesses is
traced whole. Without the variable nothing of heapscope is imported.

The variable works through heapscope.pth, which pip installs into
site-packages; these tests need that install (CI has it) and skip, saying
so, when heapscope is used from a source tree through PYTHONPATH.
"""

import os
import re
import signal
import site
import subprocess
import sys

import pytest

heapscope = pytest.importorskip('heapscope')

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cli_programs')
ENDING = os.path.join(PROGRAMS, 'ending.py')
CONTEXT = os.path.join(PROGRAMS, 'context.py')
SPAWNER = os.path.join(PROGRAMS, 'spawner.py')
TIMEOUT = 60
VARIABLES = ('HEAPSCOPE_TRACE', 'HEAPSCOPE_OUTPUT', 'HEAPSCOPE_TOP', 'HEAPSCOPE_SAMPLE_INTERVAL')


def _startup_hook():
    directories = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        directories.append(site.getusersitepackages())
    for directory in directories:
        if os.path.isfile(os.path.join(directory, 'heapscope.pth')):
            return os.path.join(directory, 'heapscope.pth')
    return None


pytestmark = pytest.mark.skipif(
    _startup_hook() is None,
    reason='heapscope.pth is not in site-packages: heapscope is not installed with pip '
           '(e.g. run from the source tree with PYTHONPATH), and the variable needs it')


def python(*args, cwd, **variables):
    env = {name: value for name, value in os.environ.items() if name not in VARIABLES}
    env.update(variables)
    return subprocess.run([sys.executable] + list(args), cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)


def line_of(path, marker):
    with open(path) as source:
        return next(number for number, line in enumerate(source, 1) if marker in line)


def lines_in(path):
    snapshot = heapscope.Snapshot.load(str(path))
    return {(stat.traceback[0].filename, stat.traceback[0].lineno): stat.size
            for stat in snapshot.statistics('lineno')}


def snapshots(directory):
    return sorted(name for name in os.listdir(str(directory)) if name.endswith('.hsnap'))


def test_the_variable_traces_a_program_from_its_first_line(tmp_path):
    untraced = python(ENDING, 'exit-status', cwd=tmp_path)
    got = python(ENDING, 'exit-status', cwd=tmp_path, HEAPSCOPE_TRACE='1')
    # the program ends as it would without heapscope...
    assert got.returncode == untraced.returncode == 3
    assert got.stdout == untraced.stdout
    # ...and leaves heapscope.<its pid>.hsnap in the directory it started in
    [name] = snapshots(tmp_path)
    pid = re.fullmatch(r'heapscope\.(\d+)\.hsnap', name).group(1)
    assert 'of pid %s ' % pid in got.stderr
    assert (ENDING, line_of(ENDING, 'kept until exit')) in lines_in(tmp_path / name)
    got = python(CONTEXT, cwd=tmp_path, HEAPSCOPE_TRACE='1', HEAPSCOPE_OUTPUT='ctx.hsnap')
    assert lines_in(tmp_path / 'ctx.hsnap')[(CONTEXT, 1)] >= 100 * 1000


def test_n_sets_the_traceback_limit(tmp_path):
    python(ENDING, 'normal', cwd=tmp_path, HEAPSCOPE_TRACE='7', HEAPSCOPE_OUTPUT='s.hsnap')
    assert heapscope.Snapshot.load(str(tmp_path / 's.hsnap')).traceback_limit == 7


@pytest.mark.parametrize('value', [None, '', '0'])
def test_without_the_variable_heapscope_is_not_even_imported(tmp_path, value):
    code = ('import sys; print(sorted(m for m in sys.modules '
            'if "heapscope" in m))')
    variables = {} if value is None else {'HEAPSCOPE_TRACE': value}
    got = python('-c', code, cwd=tmp_path, **variables)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == '[]'
    assert snapshots(tmp_path) == []


def test_the_command_line_itself_is_not_traced(tmp_path):
    snapshot = tmp_path / 'given.hsnap'
    heapscope.Snapshot([(0, 10, (('a.py', 1),), 1)], 1).dump(str(snapshot))
    got = python('-m', 'heapscope', 'top', str(snapshot), cwd=tmp_path, HEAPSCOPE_TRACE='1')
    assert got.returncode == 0, got.stderr
    assert got.stderr == ''
    assert snapshots(tmp_path) == ['given.hsnap']


def test_python_dash_e_ignores_the_variable_as_it_ignores_pythontracemalloc(tmp_path):
    got = python('-E', ENDING, 'normal', cwd=tmp_path, HEAPSCOPE_TRACE='1')
    assert got.returncode == 0, got.stderr
    assert snapshots(tmp_path) == []


@pytest.mark.parametrize('variables', [{'HEAPSCOPE_TRACE': 'lots'},
                                       {'HEAPSCOPE_TRACE': '70000'},
                                       {'HEAPSCOPE_TRACE': '1', 'HEAPSCOPE_TOP': 'x'}])
def test_a_bad_value_is_one_line_and_the_program_runs_untraced(tmp_path, variables):
    got = python(ENDING, 'normal', cwd=tmp_path, **variables)
    assert got.returncode == 0
    assert got.stdout.splitlines() == ['started', 'done']
    [line] = got.stderr.splitlines()
    assert line.startswith('heapscope: not tracing this process: HEAPSCOPE_')
    assert snapshots(tmp_path) == []


def test_each_process_of_a_tree_writes_its_own_file(tmp_path):
    got = python(SPAWNER, cwd=tmp_path, HEAPSCOPE_TRACE='1',
                 HEAPSCOPE_OUTPUT=str(tmp_path / 'tree.{pid}.hsnap'), HEAPSCOPE_TOP='0')
    assert got.returncode == 0, got.stderr
    files = snapshots(tmp_path)
    assert all(re.fullmatch(r'tree\.\d+\.hsnap', name) for name in files), files
    contents = [lines_in(tmp_path / name) for name in files]
    parent = (SPAWNER, line_of(SPAWNER, "the parent's block"))
    forked = (SPAWNER, line_of(SPAWNER, "the forked child's block"))
    child = ('<string>', 1)
    for block in (parent, forked, child):
        assert [lines for lines in contents if block in lines], (block, got.stderr)
    # HEAPSCOPE_TOP=0: one line per process, naming its file
    written = re.findall(r'snapshot written to (\S+)', got.stderr)
    assert sorted(os.path.basename(path) for path in written) == files


def test_run_trace_children_traces_subprocesses(tmp_path):
    got = subprocess.run([sys.executable, '-m', 'heapscope', 'run', '--trace-children',
                          '-o', str(tmp_path / 'run.hsnap'), SPAWNER],
                         capture_output=True, text=True, timeout=TIMEOUT, cwd=str(tmp_path))
    assert got.returncode == 0, got.stderr
    assert 'warning' not in got.stderr
    children = [name for name in snapshots(tmp_path) if name != 'run.hsnap']
    assert [name for name in children if ('<string>', 1) in lines_in(tmp_path / name)]


@pytest.mark.skipif(not hasattr(signal, 'SIGTERM') or sys.platform == 'win32',
                    reason='SIGTERM is a POSIX signal')
def test_sigterm_writes_the_snapshot_and_still_kills(tmp_path):
    env = {name: value for name, value in os.environ.items() if name not in VARIABLES}
    env.update(HEAPSCOPE_TRACE='1', HEAPSCOPE_OUTPUT='term.hsnap')
    process = subprocess.Popen([sys.executable, ENDING, 'wait'], cwd=str(tmp_path), env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while process.stdout.readline().strip() != 'ready':
            assert process.poll() is None, process.stderr.read()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGTERM
    assert (ENDING, line_of(ENDING, 'kept until exit')) in lines_in(tmp_path / 'term.hsnap')
