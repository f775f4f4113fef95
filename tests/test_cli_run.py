"""`heapscope run`: the program runs as under `python` - same sys.argv,
__main__, sys.path[0], exit status, output and traceback - traced from its
first line, and however it ends (normally, sys.exit, an exception, Ctrl-C,
SIGTERM) its snapshot is written and its top lines printed.

Every test runs the programs of tests/cli_programs/ in fresh interpreters,
under `python` and under `python -m heapscope run`, and compares the two.
"""

import json
import os
import re
import signal
import subprocess
import sys

import pytest

heapscope = pytest.importorskip('heapscope')

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cli_programs')
ENDING = os.path.join(PROGRAMS, 'ending.py')
CONTEXT = os.path.join(PROGRAMS, 'context.py')
SPAWNER = os.path.join(PROGRAMS, 'spawner.py')
TIMEOUT = 60
# The one line `--top 0` prints at exit.
WRITTEN = re.compile(r'^heapscope: pid \d+ \(.*\): snapshot written to (.*)$', re.M)


def python(*args, **kwargs):
    return _run([sys.executable] + list(args), **kwargs)


def heapscope_run(*args, **kwargs):
    return _run([sys.executable, '-m', 'heapscope', 'run'] + list(args), **kwargs)


def _run(command, cwd=None, env=None):
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


def line_of(path, marker):
    """The number of the line of path that contains marker."""
    with open(path) as source:
        for number, line in enumerate(source, 1):
            if marker in line:
                return number
    raise AssertionError('%r not in %s' % (marker, path))


def lines_in(snapshot_path):
    """{(filename, lineno): size} of a snapshot file, by line."""
    snapshot = heapscope.Snapshot.load(str(snapshot_path))
    return {(stat.traceback[0].filename, stat.traceback[0].lineno): stat.size
            for stat in snapshot.statistics('lineno')}


def without_summary(stderr):
    return WRITTEN.sub('', stderr).rstrip('\n')


@pytest.mark.parametrize('mode', ['normal', 'exit-status', 'exit-message', 'exception'])
def test_the_program_ends_as_under_python(tmp_path, mode):
    expected = python(ENDING, mode)
    snapshot = tmp_path / 'out.hsnap'
    got = heapscope_run('-o', str(snapshot), '--top', '0', ENDING, mode)
    assert got.returncode == expected.returncode
    assert got.stdout == expected.stdout
    assert without_summary(got.stderr) == expected.stderr.rstrip('\n')
    # ... and the snapshot was written however it ended
    assert (ENDING, line_of(ENDING, 'kept until exit')) in lines_in(snapshot)


def test_an_uncaught_exception_shows_the_programs_traceback_only(tmp_path):
    got = heapscope_run('-o', str(tmp_path / 's.hsnap'), ENDING, 'exception')
    traceback = got.stderr[got.stderr.index('Traceback'):got.stderr.index('ValueError')]
    our_code = os.path.dirname(os.path.dirname(os.path.abspath(heapscope.__file__)))
    assert our_code not in traceback and 'runpy' not in traceback
    assert 'File "%s", line %d, in <module>' % (ENDING, line_of(ENDING, '    fail()')) \
        in traceback


def test_ctrl_c_prints_the_interrupt_and_dies_from_sigint_as_python_does(tmp_path):
    expected = python(ENDING, 'interrupt')
    snapshot = tmp_path / 'out.hsnap'
    got = heapscope_run('-o', str(snapshot), '--top', '0', ENDING, 'interrupt')
    assert expected.returncode == -signal.SIGINT
    assert got.returncode == expected.returncode
    assert without_summary(got.stderr) == expected.stderr.rstrip('\n')
    assert (ENDING, line_of(ENDING, 'kept until exit')) in lines_in(snapshot)


@pytest.mark.skipif(not hasattr(signal, 'SIGTERM') or sys.platform == 'win32',
                    reason='SIGTERM is a POSIX signal')
def test_sigterm_writes_the_snapshot_then_dies_from_sigterm(tmp_path):
    snapshot = tmp_path / 'out.hsnap'
    process = subprocess.Popen(
        [sys.executable, '-m', 'heapscope', 'run', '-o', str(snapshot), ENDING, 'wait'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while process.stdout.readline().strip() != 'ready':
            assert process.poll() is None, process.stderr.read()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGTERM
    assert 'on SIGTERM' in stderr
    assert (ENDING, line_of(ENDING, 'kept until exit')) in lines_in(snapshot)


def test_the_script_sees_what_python_gives_it(tmp_path):
    expected = json.loads(python(CONTEXT, 'a', '-n', '5', cwd=str(tmp_path)).stdout)
    got = heapscope_run('-o', str(tmp_path / 's.hsnap'), CONTEXT, 'a', '-n', '5',
                        cwd=str(tmp_path))
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == expected
    assert expected['argv'] == [CONTEXT, 'a', '-n', '5']  # our -n left to the program


def test_a_relative_script_path_is_kept_in_argv_as_python_keeps_it(tmp_path):
    expected = json.loads(python('context.py', 'x', cwd=PROGRAMS).stdout)
    got = heapscope_run('-o', str(tmp_path / 's.hsnap'), '--top', '0', 'context.py', 'x',
                        cwd=PROGRAMS)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == expected
    assert expected['argv'] == ['context.py', 'x']


def test_a_module_sees_what_python_dash_m_gives_it(tmp_path):
    env = with_programs_on_path()
    expected = json.loads(python('-m', 'context', 'b', cwd=str(tmp_path), env=env).stdout)
    got = heapscope_run('-o', str(tmp_path / 's.hsnap'), '-m', 'context', 'b',
                        cwd=str(tmp_path), env=env)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == expected
    assert expected['name'] == '__main__' and expected['spec'] == 'context'


def with_programs_on_path():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [PROGRAMS] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))


def test_a_modules_globals_live_until_the_snapshot_as_under_python_dash_m(tmp_path):
    snapshot = tmp_path / 'out.hsnap'
    got = heapscope_run('-o', str(snapshot), '--top', '0', '-m', 'context',
                        cwd=str(tmp_path), env=with_programs_on_path())
    assert got.returncode == 0, got.stderr
    assert lines_in(snapshot)[(CONTEXT, 1)] >= 100 * 1000


def test_a_directory_with_a_main_module_runs_as_under_python(tmp_path):
    app = tmp_path / 'app'
    app.mkdir()
    with open(CONTEXT) as source:
        (app / '__main__.py').write_text(source.read())
    expected = python('app', 'z', cwd=str(tmp_path))
    snapshot = tmp_path / 'out.hsnap'
    got = heapscope_run('-o', str(snapshot), '--top', '0', 'app', 'z', cwd=str(tmp_path))
    assert got.returncode == expected.returncode == 0, got.stderr
    assert json.loads(got.stdout) == json.loads(expected.stdout)
    assert lines_in(snapshot)[(str(app / '__main__.py'), 1)] >= 100 * 1000


def test_a_syntax_error_is_reported_as_python_reports_it(tmp_path):
    script = tmp_path / 'broken.py'
    script.write_text('x = (\n')
    expected = python(str(script))
    got = heapscope_run('-o', str(tmp_path / 's.hsnap'), str(script))
    assert got.returncode == expected.returncode == 1
    # (3.9 places the end of file one line further when python reads the
    # file itself: compare the file named and the error, not the position)
    assert got.stderr.splitlines()[-1] == expected.stderr.splitlines()[-1]
    assert got.stderr.splitlines()[0].startswith('  File "%s", line ' % script)
    assert 'Traceback' not in got.stderr  # python prints none for a syntax error


def test_tracing_is_on_from_the_programs_first_line(tmp_path):
    snapshot = tmp_path / 'out.hsnap'
    got = heapscope_run('-o', str(snapshot), CONTEXT)
    assert got.returncode == 0, got.stderr
    assert lines_in(snapshot)[(CONTEXT, 1)] >= 100 * 1000


def test_the_snapshot_waits_for_threads_and_atexit_handlers(tmp_path):
    for mode, marker in [('thread', 'allocated by a thread'),
                         ('atexit', 'allocated by an atexit handler')]:
        snapshot = tmp_path / (mode + '.hsnap')
        got = heapscope_run('-o', str(snapshot), '--top', '0', ENDING, mode)
        assert got.returncode == 0, got.stderr
        assert (ENDING, line_of(ENDING, marker)) in lines_in(snapshot), mode


def test_the_top_lines_are_printed_with_their_source_and_size(tmp_path):
    snapshot = tmp_path / 'out.hsnap'
    got = heapscope_run('-o', str(snapshot), '--top', '3', ENDING, 'normal')
    assert got.returncode == 0, got.stderr
    stats = heapscope.Snapshot.load(str(snapshot)).statistics('lineno')
    kept = line_of(ENDING, 'kept until exit')
    top = next(stat for stat in stats if stat.traceback[0].lineno == kept)
    row = next(line for line in got.stderr.splitlines() if ':%d ' % kept in line)
    assert heapscope._format_size(top.size, False) in row
    assert 'KEPT = [bytearray(1000) for _ in range(200)]' in row
    assert 'snapshot written to' in got.stderr.splitlines()[-1]
    # three rows, then the line for the rest
    assert re.search(r'^\d+ more lines: ', got.stderr, re.M)


def test_nframe_sets_the_traceback_limit_and_our_frames_are_cut_off(tmp_path):
    snapshot_path = tmp_path / 'out.hsnap'
    got = heapscope_run('-n', '25', '-o', str(snapshot_path), '--top', '0', ENDING, 'normal')
    assert got.returncode == 0, got.stderr
    snapshot = heapscope.Snapshot.load(str(snapshot_path))
    assert snapshot.traceback_limit == 25
    kept = line_of(ENDING, 'kept until exit')
    stat = next(stat for stat in snapshot.statistics('traceback')
                if stat.traceback[-1] == heapscope.Frame((ENDING, kept)))
    # a comprehension at module level: <module> then the comprehension, as
    # under python -X tracemalloc=25 - no runpy nor heapscope frame below
    assert [frame.filename for frame in stat.traceback] == [ENDING] * len(stat.traceback)
    assert not [trace for trace in snapshot.traces
                if os.sep + 'heapscope' + os.sep + 'cli' + os.sep in trace.traceback[-1].filename]


def test_the_default_file_is_named_after_the_pid_in_the_current_directory(tmp_path):
    got = heapscope_run('--top', '0', ENDING, 'chdir', os.path.dirname(ENDING),
                        cwd=str(tmp_path))
    assert got.returncode == 0, got.stderr
    files = os.listdir(str(tmp_path))
    assert len(files) == 1 and re.fullmatch(r'heapscope\.\d+\.hsnap', files[0]), files
    pid = files[0].split('.')[1]
    assert 'pid %s ' % pid in got.stderr


def test_a_pid_field_in_the_output_name_is_replaced(tmp_path):
    got = heapscope_run('-o', str(tmp_path / 'run-{pid}.hsnap'), '--top', '0', ENDING, 'normal')
    assert got.returncode == 0, got.stderr
    written = WRITTEN.search(got.stderr).group(1)
    assert re.fullmatch(r'run-\d+\.hsnap', os.path.basename(written))
    assert os.path.exists(os.path.join(str(tmp_path), os.path.basename(written)))


def test_a_program_read_from_standard_input_runs_too(tmp_path):
    snapshot = tmp_path / 'out.hsnap'
    got = subprocess.run([sys.executable, '-m', 'heapscope', 'run', '-o', str(snapshot),
                          '--top', '0', '-', 'arg'],
                         input='import sys\nkept = bytearray(123456)\nprint(sys.argv)\n',
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "['-', 'arg']"
    assert lines_in(snapshot)[('<stdin>', 2)] >= 123456


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='forks a child')
def test_forked_children_never_overwrite_the_parents_file(tmp_path):
    snapshot = tmp_path / 'out.hsnap'
    got = heapscope_run('-o', str(snapshot), '--top', '0', SPAWNER)
    assert got.returncode == 0, got.stderr
    assert os.listdir(str(tmp_path)) == ['out.hsnap']
    # the parent's block is in the file; the forked child's is not
    sizes = heapscope.Snapshot.load(str(snapshot)).statistics('lineno')
    lines = {stat.traceback[0].lineno for stat in sizes if stat.traceback[0].filename == SPAWNER}
    assert line_of(SPAWNER, "the parent's block") in lines
    assert line_of(SPAWNER, "the forked child's block") not in lines


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='forks a child')
def test_trace_children_gives_each_forked_child_its_own_file(tmp_path):
    got = heapscope_run('--trace-children', '-o', str(tmp_path / 'out.hsnap'), '--top', '0',
                        SPAWNER)
    assert got.returncode == 0, got.stderr
    children = [name for name in os.listdir(str(tmp_path)) if name != 'out.hsnap']
    assert all(re.fullmatch(r'out\.\d+\.hsnap', name) for name in children), children
    # the multiprocessing child ends with os._exit(), yet wrote its file
    forked = (SPAWNER, line_of(SPAWNER, "the forked child's block"))
    assert [name for name in children if forked in lines_in(tmp_path / name)], got.stderr
