"""`heapscope top FILE` and `heapscope diff OLD NEW`: what they print is what
Snapshot.statistics() / compare_to() say, with the options applied, in
aligned columns with source lines, as JSON with --json, in colour only on a
terminal.

The snapshots are made here from raw traces pointing at a source file
written by the test, so every expected value comes from heapscope's own
API on the same file.
"""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import pytest

heapscope = pytest.importorskip('heapscope')

TIMEOUT = 60
ANSI = re.compile(r'\x1b\[[0-9;]*m')
SOURCE = '''\
import os
cache = {}
log = []
def handle(request):
    cache[request] = render(request)
    log.append(request)
def render(request):
    return "<li>%s</li>" % request
'''


def heapscope_cli(*args, env=None):
    """python -m heapscope ARGS, its output piped (colour variables unset
    unless env is given)."""
    if env is None:
        env = {name: value for name, value in os.environ.items()
               if name not in ('FORCE_COLOR', 'NO_COLOR')}
    return subprocess.run([sys.executable, '-m', 'heapscope'] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=TIMEOUT, env=env)


@pytest.fixture
def app(tmp_path):
    path = tmp_path / 'app.py'
    path.write_text(SOURCE)
    return str(path)


def traces(app, scale=1):
    """Raw traces (domain, size, frames most recent first, total_nframe)."""
    handle = (app, 5)
    render = ((app, 8), handle)
    out = [(0, 1000 * scale, render, 2)] * (5 * scale)
    out += [(0, 300, ((app, 6),), 1)] * 3
    out += [(0, 2000, ((app, 2),), 1)]
    out += [(0, 40, (('<frozen importlib._bootstrap>', 241),), 1)] * 7
    out += [(389047, 4096, ((app, 3),), 1)]  # a numpy-like domain
    return out


def dump(tmp_path, name, raw, limit=2):
    path = tmp_path / name
    heapscope.Snapshot(raw, limit).dump(str(path))
    return str(path)


def table_rows(output):
    """The rows of the table: lines that start with a rank."""
    return [line for line in output.splitlines() if re.match(r'^\s*\d+  ', line)]


def test_top_shows_the_biggest_lines_with_size_count_and_source(tmp_path, app):
    path = dump(tmp_path, 'a.hsnap', traces(app))
    got = heapscope_cli('top', path)
    assert got.returncode == 0, got.stderr
    stats = heapscope.Snapshot.load(path).statistics('lineno')
    rows = table_rows(got.stdout)
    assert len(rows) == len(stats)
    for rank, (row, stat) in enumerate(zip(rows, stats), 1):
        frame = stat.traceback[0]
        cells = row.split()
        assert cells[0] == str(rank)
        assert heapscope._format_size(stat.size, False) in row
        assert str(stat.count) in cells
        assert '%s:%d' % (os.path.basename(frame.filename), frame.lineno) in row
        source = SOURCE.splitlines()[frame.lineno - 1].strip() if frame.filename == app else ''
        assert row.rstrip().endswith(source)
    # the header gives the file, the total and the traceback limit
    total = sum(stat.size for stat in stats)
    assert '%s: %s in %d blocks, traceback limit 2' % (
        path, heapscope._format_size(total, False), sum(s.count for s in stats)) in got.stdout


def test_columns_are_aligned(tmp_path, app):
    path = dump(tmp_path, 'a.hsnap', traces(app, scale=300))
    lines = heapscope_cli('top', path).stdout.splitlines()
    header = next(line for line in lines if line.lstrip().startswith('#'))
    rows = table_rows('\n'.join(lines))
    size_end = header.index('Size') + len('Size')
    place = header.index('Line')
    for row in rows:
        assert row[size_end - 1] != ' ' and row[size_end] == ' ', row  # right-aligned sizes
        assert row[place - 1] == ' ' and row[place] != ' ', row        # left-aligned places


def test_limit_keeps_the_first_rows_and_sums_up_the_rest(tmp_path, app):
    path = dump(tmp_path, 'a.hsnap', traces(app))
    stats = heapscope.Snapshot.load(path).statistics('lineno')
    got = heapscope_cli('top', path, '--limit', 2).stdout
    assert len(table_rows(got)) == 2
    rest = stats[2:]
    assert '%d more lines: %s in %d blocks' % (
        len(rest), heapscope._format_size(sum(s.size for s in rest), False),
        sum(s.count for s in rest)) in got
    assert 'more lines' not in heapscope_cli('top', path, '--limit', 0).stdout


@pytest.mark.parametrize('key, cumulative', [('filename', False), ('filename', True),
                                             ('lineno', True), ('traceback', False)])
def test_json_follows_statistics_for_every_key(tmp_path, app, key, cumulative):
    path = dump(tmp_path, 'a.hsnap', traces(app))
    args = ['top', path, '--key', key, '--json', '--limit', 0]
    if cumulative:
        args.append('--cumulative')
    got = heapscope_cli(*args)
    assert got.returncode == 0, got.stderr
    document = json.loads(got.stdout)
    stats = heapscope.Snapshot.load(path).statistics(key, cumulative)
    assert [(s['size'], s['count'], [(f['filename'], f['lineno']) for f in s['traceback']])
            for s in document['statistics']] == \
        [(s.size, s.count, [(f.filename, f.lineno) for f in s.traceback]) for s in stats]
    assert document['key_type'] == key and document['cumulative'] == cumulative
    assert document['snapshot']['traceback_limit'] == 2


def test_a_traceback_row_lists_its_frames_oldest_first(tmp_path, app):
    path = dump(tmp_path, 'a.hsnap', traces(app))
    lines = heapscope_cli('top', path, '--key', 'traceback', '--limit', 1).stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if re.match(r'^\s*1\s', line))
    assert 'app.py:5' in lines[first] and 'cache[request] = render(request)' in lines[first]
    assert 'app.py:8' in lines[first + 1] and 'return "<li>%s</li>" % request' in lines[first + 1]


@pytest.mark.parametrize('options, filters', [
    (['--include', '*app.py'], [heapscope.Filter(True, '*app.py')]),
    (['--exclude', '<frozen*'], [heapscope.Filter(False, '<frozen*')]),
    (['--domain', '389047'], [heapscope.DomainFilter(True, 389047)]),
    (['--include', '*app.py', '--domain', '0'], [heapscope.Filter(True, '*app.py', domain=0)]),
    (['--include', '*app.py', '--include', '<frozen*', '--exclude', '*bootstrap>'],
     [heapscope.Filter(True, '*app.py'), heapscope.Filter(True, '<frozen*'),
      heapscope.Filter(False, '*bootstrap>')]),
])
def test_filters_keep_what_heapscope_filters_keep(tmp_path, app, options, filters):
    path = dump(tmp_path, 'a.hsnap', traces(app))
    got = heapscope_cli('top', path, '--json', '--limit', 0, *options)
    assert got.returncode == 0, got.stderr
    expected = heapscope.Snapshot.load(path).filter_traces(filters).statistics('lineno')
    document = json.loads(got.stdout)
    assert [(s['size'], s['count']) for s in document['statistics']] == \
        [(s.size, s.count) for s in expected]
    assert document['snapshot']['size'] == sum(s.size for s in expected)


def test_all_frames_matches_a_filter_on_any_frame(tmp_path, app):
    raw = traces(app) + [(0, 77, (('lib.py', 1), (app, 5)), 2)]
    path = dump(tmp_path, 'a.hsnap', raw)
    got = heapscope_cli('top', path, '--json', '--include', '*app.py', '--all-frames')
    expected = heapscope.Snapshot.load(path).filter_traces(
        [heapscope.Filter(True, '*app.py', all_frames=True)]).statistics('lineno')
    assert [s['size'] for s in json.loads(got.stdout)['statistics']] == \
        [s.size for s in expected][:10]
    assert 77 in [s.size for s in expected]


def test_diff_shows_the_biggest_changes_first(tmp_path, app):
    old = dump(tmp_path, 'old.hsnap', traces(app))
    new = dump(tmp_path, 'new.hsnap', traces(app, scale=3)[10:])
    got = heapscope_cli('diff', old, new)
    assert got.returncode == 0, got.stderr
    diffs = heapscope.Snapshot.load(new).compare_to(heapscope.Snapshot.load(old), 'lineno')
    rows = table_rows(got.stdout)
    assert len(rows) == len(diffs)
    for row, diff in zip(rows, diffs):
        assert heapscope._format_size(diff.size_diff, True) in row
        assert '%+d' % diff.count_diff in row.split()
        assert '%s:%d' % (os.path.basename(diff.traceback[0].filename),
                          diff.traceback[0].lineno) in row


def test_diff_json_follows_compare_to(tmp_path, app):
    old = dump(tmp_path, 'old.hsnap', traces(app))
    new = dump(tmp_path, 'new.hsnap', traces(app, scale=2)[3:])
    got = heapscope_cli('diff', old, new, '--json', '--key', 'filename', '--cumulative')
    assert got.returncode == 0, got.stderr
    document = json.loads(got.stdout)
    diffs = heapscope.Snapshot.load(new).compare_to(heapscope.Snapshot.load(old),
                                                     'filename', cumulative=True)
    assert [(d['size'], d['size_diff'], d['count'], d['count_diff'])
            for d in document['statistics']] == \
        [(d.size, d.size_diff, d.count, d.count_diff) for d in diffs][:10]
    assert document['old']['file'] == old and document['new']['file'] == new


def test_cpython_tracemalloc_pickles_are_read(tmp_path, app):
    import tracemalloc
    path = tmp_path / 'cpython.pickle'
    tracemalloc.Snapshot(traces(app), 2).dump(str(path))
    got = heapscope_cli('top', path, '--json', '--limit', 0)
    assert got.returncode == 0, got.stderr
    expected = heapscope.Snapshot(traces(app), 2).statistics('lineno')
    assert [s['size'] for s in json.loads(got.stdout)['statistics']] == [s.size for s in expected]


def test_no_colour_in_a_pipe_colour_on_a_terminal_unless_no_color(tmp_path, app):
    old = dump(tmp_path, 'old.hsnap', traces(app))
    new = dump(tmp_path, 'new.hsnap', traces(app, scale=2))
    piped = heapscope_cli('diff', old, new).stdout
    assert not ANSI.search(piped)
    # FORCE_COLOR makes rich treat the output as a terminal
    terminal = dict(os.environ, FORCE_COLOR='1', TERM='xterm-256color')
    terminal.pop('NO_COLOR', None)
    coloured = heapscope_cli('diff', old, new, env=terminal).stdout
    assert '\x1b[31m' in coloured  # growth in red
    plain_colours = heapscope_cli('diff', old, new, env=dict(terminal, NO_COLOR='1')).stdout
    assert not re.search(r'\x1b\[(3\d|9\d)m', plain_colours)
    assert ANSI.sub('', plain_colours).splitlines()[2:] != []


def test_a_long_source_line_is_cut_to_the_terminal_but_not_in_a_pipe(tmp_path):
    app = tmp_path / 'wide.py'
    app.write_text('x = "%s"\n' % ('y' * 300))
    path = dump(tmp_path, 'a.hsnap', [(0, 10, ((str(app), 1),), 1)])
    piped = heapscope_cli('top', path).stdout
    assert 'y' * 300 in piped
    env = dict(os.environ, FORCE_COLOR='1', COLUMNS='100', TERM='xterm')
    shown = ANSI.sub('', heapscope_cli('top', path, env=env).stdout)
    row = table_rows(shown)[0]
    assert len(row) <= 100 and row.endswith('\u2026')


def test_the_progress_spinner_shows_on_a_terminal_and_is_erased(monkeypatch):
    from heapscope.cli import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(progress, 'DELAY', 0)
    stream = Terminal()
    shown = threading.Event()
    with progress.Progress(stream) as indicator:
        indicator.step('Loading big.hsnap')
        # wait for the timer thread to show it (no timing asserted)
        for _ in range(1000):
            if indicator._status is not None:
                shown.set()
                break
            threading.Event().wait(0.01)
    assert shown.is_set()
    assert 'Loading big.hsnap' in stream.getvalue()


def test_the_progress_spinner_never_shows_in_a_pipe(monkeypatch):
    from heapscope.cli import progress

    monkeypatch.setattr(progress, 'DELAY', 0)
    stream = io.StringIO()
    with progress.Progress(stream) as indicator:
        indicator.step('Loading big.hsnap')
    assert stream.getvalue() == ''
    assert indicator._timer is None


def test_import_heapscope_imports_neither_rich_nor_the_command_line():
    code = ('import sys, heapscope; '
            'print(sorted(m for m in sys.modules if m.split(".")[0] == "rich" '
            'or m.startswith("heapscope.cli") or m == "argparse"))')
    got = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == '[]'


def test_the_console_script_does_what_python_dash_m_does(tmp_path, app):
    script = shutil.which('heapscope', path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip('no heapscope script beside %s: heapscope is not installed with pip '
                    '(the tests run from a source tree)' % sys.executable)
    path = dump(tmp_path, 'a.hsnap', traces(app))
    got = subprocess.run([script, 'top', path, '--json'], capture_output=True, text=True,
                         timeout=TIMEOUT)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == json.loads(heapscope_cli('top', path, '--json').stdout)


def test_sampled_estimates_are_shown_with_their_margin(app):
    from types import SimpleNamespace

    from heapscope.reports import terminal

    traceback = heapscope.Traceback(((app, 2),))
    stat = SimpleNamespace(traceback=traceback, size=10 * 1024 * 1024, count=5000,
                           size_ci=(9 * 1024 * 1024, 11.5 * 1024 * 1024), count_ci=(4800, 5150))
    out = io.StringIO()
    terminal.print_statistics(terminal.make_console(out), [stat], 'lineno', 10)
    row = table_rows(out.getvalue())[0]
    margin = heapscope._format_size(1.5 * 1024 * 1024, False)  # the wider side
    assert '%s ±%s' % (heapscope._format_size(stat.size, False), margin) in row
    assert '5000 ±200' in row
