"""Do no harm: tracing changes nothing a program can observe.

Each program of tests/no_harm_programs/ reports what it sees of itself
(the collector's counts and callbacks, weakref callbacks, when code objects
die, what frames hold, signal dispositions in itself and its children, the
order of finalizers, which addresses objects get, the interpreter's
settings), one JSON line per
observation. Every program runs in a fresh interpreter untraced and then
traced each way a user traces:

- under the standard module (``tracemalloc.start(25)`` in the program),
  which must agree with the untraced run: it is what shows that an
  observation does not depend on tracing as such, so a difference under
  heapscope is heapscope's;
- under ``heapscope.start(25)`` in the program;
- under startup tracing, ``HEAPSCOPE_TRACE=1`` (through heapscope.pth): one
  frame per traceback, where heapscope's frame walks stop short of the
  stack's bottom (25 frames reach it on most of these stacks).

Every run imports both tracers (tests/no_harm_programs/_no_harm.py), so
that tracing, not an import, is what differs.

The traced runs must print what the untraced run prints, end with the same
status and write the same stderr (heapscope's own ``heapscope:`` lines
aside), and report that their tracer was still tracing at the end, so that
a tracer that failed to start cannot pass. Nothing here is marked as an
expected failure: a check that fails is a harm heapscope does.
"""

import json
import os
import signal
import site
import subprocess
import sys
import time

import pytest

heapscope = pytest.importorskip('heapscope')

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'no_harm_programs')
TIMEOUT = 120  # a loaded machine; the programs take about a second each
# traceback limits: the standard module's and heapscope.start()'s, and startup tracing's
NFRAME = 25
STARTUP_NFRAME = 1
# What a run under SIGTERM inside C code is given to end, after the signal.
SIGTERM_GRACE = 10
# Variables of the test's own environment that would trace the programs.
TRACING_VARIABLES = ('HEAPSCOPE_TRACE', 'HEAPSCOPE_OUTPUT', 'HEAPSCOPE_TOP',
                     'HEAPSCOPE_SAMPLE_INTERVAL', 'PYTHONTRACEMALLOC', 'NO_HARM_TRACER',
                     'NO_HARM_NFRAME')

UNTRACED = 'untraced'
STANDARD = 'tracemalloc.start()'
START = 'heapscope.start()'
STARTUP = 'HEAPSCOPE_TRACE'
TRACED_WAYS = (STANDARD, START, STARTUP)
# which tracers a run of each way must report tracing at its end
TRACERS = {UNTRACED: [], STANDARD: ['tracemalloc'], START: ['heapscope'],
           STARTUP: ['heapscope']}


def _startup_hook_installed():
    directories = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        directories.append(site.getusersitepackages())
    return any(os.path.isfile(os.path.join(directory, 'heapscope.pth'))
               for directory in directories)


def _skip_unless_possible(way):
    if way == STARTUP and not _startup_hook_installed():
        pytest.skip('heapscope.pth is not in site-packages (heapscope not installed with '
                    'pip), and HEAPSCOPE_TRACE needs it')


def _environment(way, directory):
    env = {name: value for name, value in os.environ.items()
           if name not in TRACING_VARIABLES}
    env['NO_HARM_NFRAME'] = str(NFRAME)
    env['NO_HARM_TRACER'] = {STANDARD: 'tracemalloc', START: 'heapscope'}.get(way, 'none')
    if way == STARTUP:
        env.update(HEAPSCOPE_TRACE=str(STARTUP_NFRAME), HEAPSCOPE_TOP='0',
                   HEAPSCOPE_OUTPUT=os.path.join(str(directory), 'no-harm.{pid}.hsnap'))
    return env


class Run:
    """What one run of a program showed: its observations in order, its
    exit status and its stderr without heapscope's own lines."""

    def __init__(self, way, status, stdout, stderr):
        self.way = way
        self.status = status
        self.observations = []
        self.tracers = None
        self.unparsed = []
        for line in stdout.splitlines():
            try:
                name, value = json.loads(line)
            except ValueError:
                self.unparsed.append(line)  # plain output: compared as it is
                continue
            if name == '#tracers':
                self.tracers = value
            else:
                self.observations.append((name, value))
        self.stderr = [line for line in stderr.splitlines()
                       if not line.startswith('heapscope: ')]

    def differences(self, reference):
        """What differs from the reference run, one readable line each."""
        found = []
        if self.status != reference.status:
            found.append('exit status %r, untraced %r' % (self.status, reference.status))
        if self.unparsed != reference.unparsed:
            found.append('output %r, untraced %r' % (self.unparsed, reference.unparsed))
        if self.stderr != reference.stderr:
            found.append('stderr %r, untraced %r' % (self.stderr[-3:], reference.stderr[-3:]))
        names = [name for name, _ in reference.observations]
        if [name for name, _ in self.observations] != names:
            found.append('observations %r, untraced %r'
                         % ([name for name, _ in self.observations], names))
            return found
        for (name, value), (_, expected) in zip(self.observations, reference.observations):
            if value != expected:
                found.append('%s: %s' % (name, _first_difference(value, expected)))
        return found


def _first_difference(value, expected):
    if isinstance(value, list) and isinstance(expected, list):
        for index, (got, wanted) in enumerate(zip(value, expected)):
            if got != wanted:
                return 'item %d is %s, untraced %s (of %d, untraced %d items)' % (
                    index, _short(got), _short(wanted), len(value), len(expected))
        return '%d items, untraced %d' % (len(value), len(expected))
    if isinstance(value, dict) and isinstance(expected, dict):
        keys = sorted(set(value) | set(expected), key=str)
        changed = ['%s: %s, untraced %s' % (key, _short(value.get(key)),
                                             _short(expected.get(key)))
                   for key in keys if value.get(key) != expected.get(key)]
        return '; '.join(changed[:4])
    return '%s, untraced %s' % (_short(value), _short(expected))


def _short(value):
    text = json.dumps(value)
    return text if len(text) <= 160 else text[:157] + '...'


def run(program, way, directory, *args):
    """Run program (a file of no_harm_programs/) one way, to its end."""
    completed = subprocess.run([sys.executable, os.path.join(PROGRAMS, program)] + list(args),
                               env=_environment(way, directory), cwd=str(directory),
                               capture_output=True, text=True, timeout=TIMEOUT)
    return Run(way, completed.returncode, completed.stdout, completed.stderr)


_untraced_runs = {}


def untraced(program, tmp_path_factory, *args):
    """The untraced run of a program, once per test session."""
    key = (program,) + args
    if key not in _untraced_runs:
        _untraced_runs[key] = run(program, UNTRACED, tmp_path_factory.mktemp('untraced'), *args)
    return _untraced_runs[key]


def assert_same(traced, reference, what):
    assert reference.tracers == [], 'the untraced run was traced: %r' % reference.tracers
    assert traced.tracers == TRACERS[traced.way], (
        'under %s the program reported tracing by %r at its end (status %r, stderr %r)'
        % (traced.way, traced.tracers, traced.status, traced.stderr[-5:]))
    differences = traced.differences(reference)
    assert not differences, 'under %s, what the program observed (%s) changed:\n  %s' % (
        traced.way, what, '\n  '.join(differences))


PROGRAM_NAMES = {
    'gc_counts.py': 'the collector: get_count, get_stats, callbacks',
    'weakref_events.py': 'weakref callbacks and finalize, in order',
    'code_lifetimes.py': 'code objects from exec and compile die when dropped',
    'frame_locals.py': 'locals(), f_locals and referents of frames 1..60 deep',
    'finalizers.py': '__del__ order and address reuse',
    'signals.py': 'signal.getsignal in the program, a fork and pool workers',
    'interpreter_state.py': 'trace/profile functions, hooks, thresholds, threads, recursion',
}


@pytest.mark.parametrize('way', TRACED_WAYS)
@pytest.mark.parametrize('program', sorted(PROGRAM_NAMES))
def test_the_program_observes_what_it_observes_untraced(program, way, tmp_path,
                                                        tmp_path_factory):
    _skip_unless_possible(way)
    reference = untraced(program, tmp_path_factory)
    assert reference.status == 0, reference.stderr
    assert reference.observations, 'the program reported nothing'
    assert_same(run(program, way, tmp_path), reference, PROGRAM_NAMES[program])


EXITS = ['normal', 'sys.exit(7)', 'sys.exit(message)', 'exception', 'os._exit(5)',
         'SIGTERM to itself']
EXPECTED_STATUS = {'normal': 0, 'sys.exit(7)': 7, 'sys.exit(message)': 1, 'exception': 1,
                   'os._exit(5)': 5, 'SIGTERM to itself': -signal.SIGTERM}


@pytest.mark.parametrize('way', TRACED_WAYS)
@pytest.mark.parametrize('mode', EXITS)
def test_the_program_ends_as_it_ends_untraced(mode, way, tmp_path, tmp_path_factory):
    _skip_unless_possible(way)
    reference = untraced('exits.py', tmp_path_factory, mode)
    assert reference.status == EXPECTED_STATUS[mode], reference.stderr
    assert_same(run('exits.py', way, tmp_path, mode), reference, 'how it ends: ' + mode)


def sigterm_inside_c_code(way, directory):
    """Send SIGTERM once the program is inside a long C call; how it ends,
    or that it did not end SIGTERM_GRACE seconds later."""
    process = subprocess.Popen([sys.executable, os.path.join(PROGRAMS, 'exits.py'),
                                'SIGTERM inside C code'],
                               env=_environment(way, directory), cwd=str(directory),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line.rstrip('\n'))
            if line.startswith('in C code'):
                break
        tracers = json.loads(lines.pop(0))
        # The line comes just before the call: give the program time to be
        # inside it, or a handler run at once would hide a delayed death.
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(SIGTERM_GRACE)
        except subprocess.TimeoutExpired:
            status = 'still running %d s after SIGTERM' % SIGTERM_GRACE
        return tracers, lines, status
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.mark.parametrize('way', TRACED_WAYS)
def test_sigterm_ends_a_program_inside_c_code_at_once(way, tmp_path):
    _skip_unless_possible(way)
    reference = sigterm_inside_c_code(UNTRACED, tmp_path)
    assert reference == (['#tracers', []], ['started SIGTERM inside C code', 'in C code'],
                         -signal.SIGTERM)
    tracers, lines, status = sigterm_inside_c_code(way, tmp_path)
    assert tracers == ['#tracers', TRACERS[way]]
    assert (lines, status) == reference[1:], (
        'under %s, SIGTERM sent inside C code: output %r, status %r; untraced %r, %r'
        % ((way, lines, status) + reference[1:]))
