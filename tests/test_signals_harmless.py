"""Startup tracing (HEAPSCOPE_TRACE, `heapscope run`) changes nothing a
program can observe of its signals, beyond writing the snapshot:
signal.getsignal in the program and in the children it forks or spawns,
how each ending sets the exit status, how fast SIGTERM ends a process busy
in C code, and multiprocessing pools ended every way, many times, with
every worker's snapshot written whole.

Each scenario runs in fresh interpreters, untraced and traced, and compares.
"""

import os
import re
import signal
import site
import subprocess
import sys
import time

import pytest

heapscope = pytest.importorskip('heapscope')

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cli_programs')
PROBE = os.path.join(PROGRAMS, 'signal_probe.py')
ENDINGS = os.path.join(PROGRAMS, 'signal_endings.py')
POOLS = os.path.join(PROGRAMS, 'pool_exits.py')
VARIABLES = ('HEAPSCOPE_TRACE', 'HEAPSCOPE_OUTPUT', 'HEAPSCOPE_TOP', 'HEAPSCOPE_SAMPLE_INTERVAL')
TIMEOUT = 120
# How soon a process busy in C code must die of SIGTERM (untraced: at once).
PROMPT = 10
# Pools ended per start method: 500 in all (a fork pool hung about once in
# 25-100 when startup tracing installed a Python-level SIGTERM handler).
POOL_RUNS = {'fork': 300, 'forkserver': 150, 'spawn': 50}
SECONDS_PER_POOL = 60


def _startup_hook_installed():
    directories = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        directories.append(site.getusersitepackages())
    return any(os.path.isfile(os.path.join(d, 'heapscope.pth')) for d in directories)


pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith('linux'),
                       reason='POSIX signals, fork and /proc/self/status'),
    pytest.mark.skipif(not _startup_hook_installed(),
                       reason='heapscope.pth is not in site-packages: HEAPSCOPE_TRACE needs '
                              'heapscope installed with pip'),
]


def environment(traced, output=None):
    env = {name: value for name, value in os.environ.items() if name not in VARIABLES}
    if traced:
        env.update(HEAPSCOPE_TRACE='1', HEAPSCOPE_TOP='0')
        if output is not None:
            env['HEAPSCOPE_OUTPUT'] = str(output)
    return env


def python(args, cwd, traced, output=None, timeout=TIMEOUT):
    return subprocess.run([sys.executable] + list(args), cwd=str(cwd),
                          env=environment(traced, output), capture_output=True, text=True,
                          timeout=timeout)


def without_our_lines(stderr):
    return ''.join(line for line in stderr.splitlines(True) if not line.startswith('heapscope: '))


def kept_line_in(path):
    """Whether the snapshot file holds signal_endings.py's KEPT blocks."""
    with open(ENDINGS) as source:
        line = next(n for n, text in enumerate(source, 1) if 'kept until the end' in text)
    snapshot = heapscope.Snapshot.load(str(path))
    return any(stat.traceback[0].filename == ENDINGS and stat.traceback[0].lineno == line
               and stat.size >= 300 * 1000 for stat in snapshot.statistics('lineno'))


@pytest.mark.parametrize('mode', ['default', 'own'])
@pytest.mark.parametrize('output', ['probe.hsnap', 'probe.{pid}.hsnap'])
def test_getsignal_in_the_program_and_its_children_is_as_untraced(tmp_path, mode, output):
    untraced = python([PROBE, mode], tmp_path, traced=False)
    traced = python([PROBE, mode], tmp_path, traced=True, output=tmp_path / output)
    assert untraced.returncode == 0, untraced.stderr
    assert traced.returncode == 0, traced.stderr
    assert 'program: SIGTERM=%s' % ('0' if mode == 'default' else 'on_term') in untraced.stdout
    if '{pid}' in output:
        # A child with its own file watches SIGTERM again, in C: only the
        # kernel's view differs (its signals still do what they did).
        drop = re.compile(r'^fork child, C level: .*\n', re.M)
        assert drop.sub('', traced.stdout) == drop.sub('', untraced.stdout)
    else:
        assert traced.stdout == untraced.stdout
    assert without_our_lines(traced.stderr) == untraced.stderr


def test_a_forked_child_dies_of_sigterm_and_only_the_parent_goes_on(tmp_path):
    untraced = python([ENDINGS, 'fork-sigterm'], tmp_path, traced=False)
    traced = python([ENDINGS, 'fork-sigterm'], tmp_path, traced=True,
                    output=tmp_path / 'tree.{pid}.hsnap')
    assert untraced.returncode == traced.returncode == 0, traced.stderr
    pattern = re.compile(r'child (\d+) ended by signal (\d+)')
    assert pattern.search(untraced.stdout).group(2) == str(int(signal.SIGTERM))
    child, how = pattern.search(traced.stdout).groups()
    assert how == str(int(signal.SIGTERM))
    assert traced.stdout.replace(child, 'N') == pattern.sub(
        lambda m: 'child N ended by signal ' + m.group(2), untraced.stdout)
    # each wrote its own file, whole
    files = sorted(name for name in os.listdir(str(tmp_path)) if name.endswith('.hsnap'))
    assert 'tree.%s.hsnap' % child in files and len(files) == 2, (files, traced.stderr)
    for name in files:
        assert kept_line_in(tmp_path / name)


ENDING_STATUSES = {'exit-0': 0, 'exit-3': 3, 'exception': 1, 'os-exit': 7,
                   'SIGTERM': -signal.SIGTERM, 'SIGHUP': -signal.SIGHUP}


@pytest.mark.parametrize('mode', sorted(ENDING_STATUSES))
def test_every_ending_gives_the_untraced_exit_status(tmp_path, mode):
    untraced = python([ENDINGS, mode], tmp_path, traced=False)
    traced = python([ENDINGS, mode], tmp_path, traced=True, output=tmp_path / 'out.hsnap')
    assert untraced.returncode == ENDING_STATUSES[mode]
    assert traced.returncode == untraced.returncode, traced.stderr
    assert traced.stdout == untraced.stdout
    assert without_our_lines(traced.stderr) == untraced.stderr
    snapshot = tmp_path / 'out.hsnap'
    if mode == 'os-exit':  # no exit handler runs: nowhere to write from
        assert not snapshot.exists()
    else:
        assert kept_line_in(snapshot), traced.stderr
    assert [name for name in os.listdir(str(tmp_path)) if 'partial' in name] == []


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGHUP], ids=['SIGTERM', 'SIGHUP'])
@pytest.mark.parametrize('how', ['HEAPSCOPE_TRACE', 'heapscope run -n 10'])
def test_a_signal_ends_a_process_busy_in_c_promptly_with_its_snapshot(tmp_path, signum, how):
    snapshot = tmp_path / 'busy.hsnap'
    if how == 'HEAPSCOPE_TRACE':
        command = [sys.executable, ENDINGS, 'busy']
        env = environment(True, snapshot)
    else:
        command = [sys.executable, '-m', 'heapscope', 'run', '-n', '10', '--top', '0',
                   '-o', str(snapshot), ENDINGS, 'busy']
        env = environment(False)
    process = subprocess.Popen(command, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == 'ready', process.stderr.read()
        time.sleep(0.5)  # inside sum() by now
        sent = time.monotonic()
        process.send_signal(signum)
        try:
            _, stderr = process.communicate(timeout=PROMPT)
        except subprocess.TimeoutExpired:
            pytest.fail('still running %d s after %s' % (PROMPT, signal.Signals(signum).name))
        waited = time.monotonic() - sent
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signum, stderr
    assert 'on %s' % signal.Signals(signum).name in stderr, (stderr, waited)
    assert kept_line_in(snapshot)
    # heapscope's own frames are taken out as at exit: no traceback holds
    # one, and the program's tracebacks start at its own first frame.
    package = os.path.dirname(os.path.abspath(heapscope.__file__))
    for trace in heapscope.Snapshot.load(str(snapshot)).traces:
        for frame in trace.traceback:
            assert not frame.filename.startswith(package + os.sep), trace.traceback
            assert 'runpy' not in frame.filename, trace.traceback


def test_a_fork_while_traced_warns_as_untraced(tmp_path):
    # Python 3.12+ warns when a multi-threaded process forks: the signal
    # watcher thread must not count. (Shown on stderr: os.fork() clears the
    # error that -W error would make of it.)
    code = ('import os\npid = os.fork()\nif pid == 0:\n    os._exit(0)\n'
            'os.waitpid(pid, 0)\nprint("forked")\n')
    args = ['-W', 'always::DeprecationWarning', '-c', code]
    untraced = python(args, tmp_path, traced=False)
    traced = python(args, tmp_path, traced=True, output=tmp_path / 'fork.{pid}.hsnap')
    assert untraced.returncode == traced.returncode == 0, traced.stderr
    assert traced.stdout == untraced.stdout == 'forked\n'
    assert without_our_lines(traced.stderr) == untraced.stderr


# Forks in one process: each must be without Python 3.12+'s warning.
FORKS = 200


def test_many_forks_never_warn_and_the_watcher_runs_after_them(tmp_path):
    # The program counts the "multi-threaded, use of fork()" warnings it
    # gets; after the forks, SIGTERM must still be handled by the watcher:
    # the snapshot, then the death untraced gives.
    args = [ENDINGS, 'forks-then-SIGTERM', str(FORKS)]
    untraced = python(args, tmp_path, traced=False)
    traced = python(args, tmp_path, traced=True, output=tmp_path / 'forks.hsnap')
    assert untraced.returncode == -signal.SIGTERM, untraced.stderr
    assert untraced.stdout == 'forked %d times, 0 warnings\n' % FORKS
    assert traced.returncode == untraced.returncode, traced.stderr
    assert traced.stdout == untraced.stdout, traced.stderr
    assert without_our_lines(traced.stderr) == untraced.stderr
    assert kept_line_in(tmp_path / 'forks.hsnap'), traced.stderr


def test_a_signal_from_an_after_fork_hook_ends_the_parent_there(tmp_path):
    # The parent's after-fork hooks run before heapscope's watcher is back
    # (Python 3.13 starts it once os.fork() has returned): the signal waits
    # in the pipe, and the watcher, once started, writes the snapshot and
    # ends the process before the hook goes on, as SIG_DFL would have.
    untraced = python([ENDINGS, 'SIGTERM-in-fork-hook'], tmp_path, traced=False)
    traced = python([ENDINGS, 'SIGTERM-in-fork-hook'], tmp_path, traced=True,
                    output=tmp_path / 'hook.hsnap')
    assert untraced.returncode == -signal.SIGTERM, untraced.stderr
    assert untraced.stdout == ''
    assert traced.returncode == untraced.returncode, traced.stderr
    assert traced.stdout == untraced.stdout
    assert without_our_lines(traced.stderr) == untraced.stderr
    assert 'on SIGTERM' in traced.stderr
    assert kept_line_in(tmp_path / 'hook.hsnap'), traced.stderr


@pytest.mark.parametrize('method', sorted(POOL_RUNS))
def test_pools_ended_every_way_never_hang_and_every_worker_writes(tmp_path, method):
    runs = POOL_RUNS[method]
    got = python([POOLS, method, str(runs), str(SECONDS_PER_POOL)], tmp_path, traced=True,
                 output=tmp_path / 'worker.{pid}.hsnap',
                 timeout=runs * SECONDS_PER_POOL)
    assert got.returncode == 0, without_our_lines(got.stderr)[-3000:]
    assert got.stdout == 'ran %d\n' % runs
    assert 'could not write' not in got.stderr
