"""The HTML report: one self-contained page, checked as text and in Chromium.

The snapshots come from real tracing: a small program with named functions
that allocate different amounts runs under heapscope in a subprocess and
dumps an old and a new snapshot. One of its modules is a file named
``<script>alert(1)</script>.py`` whose source lines hold ``</script>``.
"""

import html
import json
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import zlib

import pytest

import heapscope
from heapscope import _format_size, _source
from heapscope.reports import html as html_report
from heapscope.reports.html import build_model, write_report

HOSTILE_NAME = '<script>alert(1)</script>.py'
HOSTILE_LINE = "</script><script>alert(2)</script>"

WORKLOAD = textwrap.dedent('''\
    import importlib.util
    import sys

    import heapscope

    KEPT = {}


    def build_lookup_table():
        KEPT["table"] = [bytearray(4096) for _ in range(200)]


    def remember_greetings():
        KEPT["greetings"] = ["hello visitor %d" % i for i in range(3000)]


    def grow_request_cache():
        KEPT["cache"] = [bytearray(1024) for _ in range(400)]


    def serve_requests():
        build_lookup_table()
        remember_greetings()


    def load_hostile_module(path):
        spec = importlib.util.spec_from_file_location("hostile", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


    heapscope.start(10)
    hostile = load_hostile_module(sys.argv[1])
    KEPT["hostile"] = hostile.render_script_tag()
    serve_requests()
    heapscope.take_snapshot().dump(sys.argv[2])
    grow_request_cache()
    del KEPT["greetings"]
    heapscope.take_snapshot().dump(sys.argv[3])
''')

HOSTILE_MODULE = textwrap.dedent('''\
    def render_script_tag():
        return ["%s" + str(i) for i in range(600)]
''') % HOSTILE_LINE

# Functions whose memory is still there in the new snapshot: those that
# allocated it (in the tables and the flame graph), and a caller (flame graph).
ALLOCATING = ['build_lookup_table', 'grow_request_cache', 'render_script_tag']
CALLING = ['serve_requests']

CHROMIUM = shutil.which('chromium')
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason='chromium not installed (apt-get install chromium)')


# ---- fixtures ------------------------------------------------------------------

@pytest.fixture(scope='module')
def snapshots(tmp_path_factory):
    """(old, new, workload directory): snapshots of the traced workload."""
    workdir = tmp_path_factory.mktemp('workload')
    program = workdir / 'workload.py'
    program.write_text(WORKLOAD, encoding='utf-8')
    hostile = workdir / HOSTILE_NAME  # a directory '<script>alert(1)<' holding 'script>.py'
    hostile.parent.mkdir(parents=True, exist_ok=True)
    hostile.write_text(HOSTILE_MODULE, encoding='utf-8')
    old_path, new_path = workdir / 'old.hsnap', workdir / 'new.hsnap'
    subprocess.run([sys.executable, str(program), str(hostile), str(old_path), str(new_path)],
                   check=True, timeout=120, cwd=str(workdir))
    return heapscope.Snapshot.load(str(old_path)), heapscope.Snapshot.load(str(new_path)), workdir


@pytest.fixture(scope='module')
def report_paths(snapshots, tmp_path_factory):
    """The plain and the diff report of the workload, written once."""
    old, new, _ = snapshots
    outdir = tmp_path_factory.mktemp('reports')
    plain, diff = outdir / 'plain.html', outdir / 'diff.html'
    write_report(new, str(plain), snapshot_name='new.hsnap')
    write_report(new, str(diff), old=old, snapshot_name='new.hsnap', old_name='old.hsnap')
    return plain, diff


def _embedded_data(page):
    match = re.search(r'<script type="application/json" id="heapscope-data">(.*?)</script>',
                      page, re.S)
    return json.loads(match.group(1))


def _frame_of(model, function):
    """The (index, frame) of the first frame of ``function`` in the model."""
    for index, frame in enumerate(model['frames']):
        if frame[2] == function:
            return index, frame
    raise AssertionError('no frame of %s' % function)


# ---- the page as text ------------------------------------------------------------

def test_page_makes_no_network_request(report_paths):
    for path in report_paths:
        page = path.read_text(encoding='utf-8')
        lowered = page.lower()
        assert 'http://' not in lowered and 'https://' not in lowered
        # Nothing loaded from anywhere: no src/href attributes, stylesheets or CSS urls
        assert not re.search(r'\s(src|href)\s*=', lowered)
        assert '<link' not in lowered and 'url(' not in lowered and '@import' not in lowered
        assert "default-src 'none'" in page


def test_filenames_and_source_lines_cannot_break_out_of_the_page(report_paths, snapshots):
    _, _, workdir = snapshots
    hostile_path = str(workdir / HOSTILE_NAME)
    page = report_paths[0].read_text(encoding='utf-8')
    # The only script elements are the report's own two
    assert page.count('</script') == 2
    assert len(re.findall(r'<script\b', page)) == 2
    assert 'alert(' not in page.replace('alert(1)\\u003c', '').replace('alert(2)\\u003c', '')
    # ... and the hostile strings are still there, intact, once the JSON is read
    model = _embedded_data(page)
    assert hostile_path in model['filenames']
    # the function may have frames at more than one line (3.12+ also
    # allocates at its def line): the hostile one is among them
    frames = [frame for frame in model['frames'] if frame[2] == 'render_script_tag']
    assert frames and all(model['filenames'][frame[0]] == hostile_path for frame in frames)
    assert any(HOSTILE_LINE in frame[3] for frame in frames)


def test_a_title_is_escaped(snapshots, tmp_path):
    _, new, _ = snapshots
    path = tmp_path / 'titled.html'
    write_report(new, str(path), title='</title><script>alert(3)</script> {{JS}}')
    page = path.read_text(encoding='utf-8')
    assert '<title>&lt;/title&gt;&lt;script&gt;alert(3)&lt;/script&gt; {{JS}}</title>' in page
    assert page.count('</script') == 2


def test_tables_hold_the_statistics_by_line_and_by_file(snapshots):
    _, new, _ = snapshots
    model = build_model(new)
    for table, key_type in (('lines', 'lineno'), ('files', 'filename')):
        stats = new.statistics(key_type)
        rows = model[table]['rows']
        assert [row['size'] for row in rows] == [stat.size for stat in stats]
        assert [row['count'] for row in rows] == [stat.count for stat in stats]
        assert [row['size_text'] for row in rows] == [_format_size(s.size, False) for s in stats]
        assert 'size_diff' not in rows[0]
    first = new.statistics('lineno')[0].traceback[0]
    frame = model['frames'][model['lines']['rows'][0]['ref']]
    assert (model['filenames'][frame[0]], frame[1]) == (first.filename, first.lineno)
    assert frame[3] == _source.source_line(first.filename, first.lineno)
    assert model['summary']['size'] == sum(stat.size for stat in new.statistics('filename'))
    assert model['summary']['traces'] == len(new.traces)
    assert model['summary']['traceback_limit'] == 10


def test_a_diff_has_size_and_count_changes(snapshots, report_paths):
    old, new, _ = snapshots
    model = _embedded_data(report_paths[1].read_text(encoding='utf-8'))
    assert model['diff'] is True
    diffs = new.compare_to(old, 'lineno')
    rows = model['lines']['rows']
    assert [(row['size_diff'], row['count_diff']) for row in rows] == [
        (d.size_diff, d.count_diff) for d in diffs]
    assert [row['size_diff_text'] for row in rows] == [
        _format_size(d.size_diff, True) for d in diffs]
    by_function = {model['frames'][row['ref']][2]: row for row in rows}
    assert by_function['grow_request_cache']['size_diff'] > 0
    assert by_function['remember_greetings']['size_diff'] < 0


def _children(nodes):
    children = {index: [] for index in range(len(nodes))}
    for index, node in enumerate(nodes):
        if node[1] >= 0:
            children[node[1]].append(index)
    return children


def test_flame_graph_runs_from_the_outermost_frame_to_the_allocating_line(snapshots):
    _, new, workdir = snapshots
    model = build_model(new)
    nodes = model['flame']['nodes']
    assert nodes[0][0] == -1 and nodes[0][2] == sum(s.size for s in new.statistics('traceback'))
    # Widths add up: no node's children are wider than it.
    for index, kids in _children(nodes).items():
        assert sum(nodes[kid][2] for kid in kids) <= nodes[index][2]
    # The lookup table's line hangs under serve_requests, under the module's code.
    table_frame, _ = _frame_of(model, 'build_lookup_table')
    chain = []
    index = next(i for i, node in enumerate(nodes) if node[0] == table_frame)
    while index > 0:
        frame = model['frames'][nodes[index][0]]
        chain.append((frame[2], model['filenames'][frame[0]]))
        index = nodes[index][1]
    program = str(workdir / 'workload.py')
    assert chain[:3] == [('build_lookup_table', program), ('serve_requests', program),
                         ('<module>', program)]
    assert nodes[index][0] == -1


def test_flame_graph_is_coloured_by_growth_in_a_diff(snapshots):
    old, new, _ = snapshots
    model = build_model(new, old=old)
    nodes = model['flame']['nodes']
    cache_frame, _ = _frame_of(model, 'grow_request_cache')
    grown = [node for node in nodes if node[0] == cache_frame]
    assert grown and all(node[5] > 0 and node[6].startswith('+') for node in grown)


def test_traceback_limit_one_gives_a_one_level_graph():
    snapshot = heapscope.Snapshot([(0, 100, (('a.py', 1),), 1), (0, 50, (('b.py', 2),), 1)], 1)
    nodes = build_model(snapshot)['flame']['nodes']
    assert [node[1] for node in nodes] == [-1, 0, 0]
    assert [node[2] for node in nodes] == [150, 100, 50]


def test_an_empty_snapshot_gives_a_page(tmp_path):
    path = tmp_path / 'empty.html'
    empty = heapscope.Snapshot([], 1)
    write_report(empty, str(path), old=empty)
    model = _embedded_data(path.read_text(encoding='utf-8'))
    assert model['lines']['rows'] == [] and model['files']['rows'] == []
    assert model['summary']['size'] == 0 and len(model['flame']['nodes']) == 1


def test_a_missing_source_file_leaves_the_source_line_empty(tmp_path):
    gone = str(tmp_path / 'deleted_since.py')
    snapshot = heapscope.Snapshot([(0, 64, ((gone, 7),), 1)], 1)
    model = build_model(snapshot)
    filename_id, lineno, _, source = model['frames'][0]
    assert (model['filenames'][filename_id], lineno, source) == (gone, 7, '')


def test_a_hundred_thousand_lines_are_capped(tmp_path):
    raw = [(0, 16 + i % 4000, (('/src/mod%d.py' % (i % 300), i // 300 + 1),
                               ('/src/caller%d.py' % (i % 7), i % 40 + 1),
                               ('/src/main.py', 3)), 3)
           for i in range(100_000)]
    snapshot = heapscope.Snapshot(raw, 3)
    path = tmp_path / 'big.html'
    write_report(snapshot, str(path))
    model = _embedded_data(path.read_text(encoding='utf-8'))
    lines = model['lines']
    assert len(lines['rows']) == html_report.MAX_TABLE_ROWS
    assert lines['hidden_rows'] == 100_000 - html_report.MAX_TABLE_ROWS
    nodes = model['flame']['nodes']
    merged = [node for node in nodes if node[0] == -2]
    assert merged and len(nodes) - len(merged) <= html_report.MAX_FLAME_BARS
    # Merging loses no size: the leaves still add up to the total.
    assert nodes[0][2] == sum(size for _, size, _, _ in raw)
    assert sum(nodes[i][2] for i, kids in _children(nodes).items() if not kids) == nodes[0][2]
    assert path.stat().st_size < 2_000_000


class _SampledStatistic:
    def __init__(self, stat):
        self.traceback, self.size, self.count = stat.traceback, stat.size, stat.count
        self.size_ci = (stat.size * 0.9, stat.size * 1.1)
        self.count_ci = (stat.count - 1, stat.count + 1)


class _SampledSnapshot(heapscope.Snapshot):
    """Stands in for a sampled snapshot: an interval, and intervals on estimates."""
    sample_interval = 4096

    def statistics(self, key_type, cumulative=False):
        return [_SampledStatistic(s) for s in super().statistics(key_type, cumulative)]


def test_a_sampled_snapshot_shows_its_interval_and_confidence_intervals():
    snapshot = _SampledSnapshot([(0, 100_000, (('a.py', 1),), 1)], 1)
    model = build_model(snapshot)
    assert model['summary']['sample_interval_text'] == _format_size(4096, False)
    row = model['lines']['rows'][0]
    low, high = _format_size(90_000, False), _format_size(110_000, False)
    assert low.endswith(' KiB') and high.endswith(' KiB')
    # The unit once, and a line break allowed only after the dash.
    assert row['size_ci_text'] == '%s\u00a0\u2013 %s\u00a0KiB' % (low[:-4], high[:-4])
    assert row['count_ci_text'] == '0\u00a0\u2013 2'


# ---- the page in a browser ------------------------------------------------------

def _chromium(tmp_path, page, *args):
    """Run headless Chromium on ``page`` with a fresh profile; its stdout.
    A JavaScript error on the page fails the test."""
    profile = tmp_path / ('profile-%d' % len(list(tmp_path.glob('profile-*'))))
    command = [CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
               '--no-first-run', '--user-data-dir=%s' % profile,
               '--enable-logging=stderr', '--v=0',  # console messages on stderr
               '--window-size=1280,900']
    # The page's script runs while it is parsed, before the load event that
    # a screenshot waits for; a DOM dump gets virtual time for its probes.
    if '--dump-dom' in args:
        command.append('--virtual-time-budget=5000')
    command += list(args) + [page.as_uri()]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=90, check=True)
    errors = [line for line in result.stderr.decode('utf-8', 'replace').splitlines()
              if ':CONSOLE' in line and 'Uncaught' in line]
    assert not errors, errors
    return result.stdout.decode('utf-8')


def _rendered(dom):
    """The DOM without script elements: what the page's JavaScript built."""
    return re.sub(r'<script\b.*?</script>', '', dom, flags=re.S)


@needs_chromium
def test_browser_renders_the_function_names(report_paths, tmp_path):
    raw_dom = _chromium(tmp_path, report_paths[0], '--dump-dom')
    dom = _rendered(raw_dom)
    for function in ALLOCATING + CALLING:
        # in the flame graph, as "function (file:line)"
        assert re.search(r'class="bar"[^>]*>%s \([^)]*:\d+\)<' % function, dom), function
    for function in ALLOCATING:
        assert '<td class="fn" data-key="function">%s</td>' % function in dom
    # The hostile filename and source line are text on the page, never elements.
    assert '&lt;script&gt;alert(1)&lt;' in dom and 'script&gt;.py:2' in dom
    assert '&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;' in dom
    assert len(re.findall(r'<script\b', raw_dom)) == 2


def _png_pixels(data):
    """(width, height, bytes per pixel, pixel bytes) of an 8-bit RGB/RGBA PNG."""
    assert data[:8] == b'\x89PNG\r\n\x1a\n'
    position, idat = 8, []
    while position < len(data):
        length, kind = struct.unpack('>I4s', data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b'IHDR':
            width, height, depth, colour = struct.unpack('>IIBB', body[:10])
        elif kind == b'IDAT':
            idat.append(body)
        position += 12 + length
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b''.join(idat))
    stride = width * bpp
    previous = bytearray(stride)
    pixels = bytearray()
    for y in range(height):
        start = y * (stride + 1)
        kind, row = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        _unfilter(kind, row, previous, bpp)
        pixels += row
        previous = row
    return width, height, bpp, bytes(pixels)


def _unfilter(kind, row, previous, bpp):
    if kind == 1:
        for i in range(bpp, len(row)):
            row[i] = (row[i] + row[i - bpp]) & 255
    elif kind == 2:
        for i in range(len(row)):
            row[i] = (row[i] + previous[i]) & 255
    elif kind == 3:
        for i in range(len(row)):
            left = row[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + ((left + previous[i]) >> 1)) & 255
    elif kind == 4:
        for i in range(len(row)):
            a = row[i - bpp] if i >= bpp else 0
            b, c = previous[i], previous[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predictor = a if pa <= pb and pa <= pc else b if pb <= pc else c
            row[i] = (row[i] + predictor) & 255


@needs_chromium
def test_browser_screenshot_is_not_blank(report_paths, tmp_path):
    shot = tmp_path / 'shot.png'
    _chromium(tmp_path, report_paths[1], '--screenshot=%s' % shot)
    width, height, bpp, pixels = _png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 900)
    colours = {}
    for offset in range(0, len(pixels), bpp * 7):  # every 7th pixel is plenty
        colour = pixels[offset:offset + 3]
        colours[colour] = colours.get(colour, 0) + 1
    background = max(colours.values())
    assert len(colours) > 50  # text, bars in several colours, red and green changes
    assert sum(colours.values()) - background > 0.2 * sum(colours.values())


SORT_PROBE = '''<script>
(function () {
  function column(key) {
    return Array.prototype.map.call(
      document.querySelectorAll('#table-lines td[data-key="' + key + '"]'),
      function (td) {
        return td.dataset.value !== undefined ? Number(td.dataset.value) : td.textContent;
      });
  }
  var probe = {};
  var header = document.querySelector('#table-lines th[data-key="count"]');
  header.click();
  probe.first = column('count');
  probe.firstSort = header.getAttribute('aria-sort');
  header.click();
  probe.second = column('count');
  probe.secondSort = header.getAttribute('aria-sort');
  document.querySelector('#table-lines th[data-key="function"]').click();
  probe.functions = column('function');
  var search = document.getElementById('table-search');
  search.value = 'CACHE';
  search.dispatchEvent(new Event('input'));
  probe.filtered = column('function');
  document.body.setAttribute('data-probe', JSON.stringify(probe));
}());
</script>
'''


@needs_chromium
def test_browser_sorts_and_filters_the_table(report_paths, tmp_path):
    page = report_paths[0].read_text(encoding='utf-8')
    probed = tmp_path / 'probed.html'
    probed.write_text(page.replace('</body>', SORT_PROBE + '</body>'), encoding='utf-8')
    dom = _chromium(tmp_path, probed, '--dump-dom')
    match = re.search(r'<body[^>]*data-probe="([^"]*)"', dom)
    probe = json.loads(html.unescape(match.group(1)))
    model = _embedded_data(page)
    rows = model['lines']['rows']
    counts = [row['count'] for row in rows]
    # The filter matches function, file:line and source line, ignoring case.
    matching = []
    for row in rows:
        file_id, lineno, function, source = model['frames'][row['ref']]
        text = '%s %s:%s %s' % (function, model['filenames'][file_id], lineno, source)
        if 'cache' in text.lower():
            matching.append(function)
    assert probe['first'] == sorted(counts, reverse=True)
    assert probe['firstSort'] == 'descending'
    assert probe['second'] == sorted(counts)
    assert probe['secondSort'] == 'ascending'
    assert probe['functions'] == sorted(probe['functions'])
    assert 'build_lookup_table' in probe['functions']
    assert 'grow_request_cache' in matching and len(matching) < len(rows)
    assert probe['filtered'] == sorted(matching)


@needs_chromium
def test_browser_colours_growth_and_shrinkage(report_paths, tmp_path):
    dom = _rendered(_chromium(tmp_path, report_paths[1], '--dump-dom'))
    assert 'data-key="size_diff"' in dom and 'data-key="count_diff"' in dom
    assert re.search(r'<td class="num grow" data-key="size_diff" data-value="\d+">\+', dom)
    assert re.search(r'<td class="num shrink" data-key="size_diff" data-value="-\d+">-', dom)
    assert re.search(r'<td class="num grow" data-key="count_diff" data-value="\d+">\+', dom)


@needs_chromium
def test_browser_says_when_the_graph_has_one_level(tmp_path):
    snapshot = heapscope.Snapshot([(0, 4096, ((__file__, 1),), 1)], 1)
    path = tmp_path / 'limit1.html'
    write_report(snapshot, str(path))
    dom = _rendered(_chromium(tmp_path, path, '--dump-dom'))
    assert 'traceback limit of 1' in dom
    assert 'graph has a single level' in dom


ZOOM_PROBE = '''<script>
(function () {
  function bar(prefix) {
    return Array.prototype.find.call(document.querySelectorAll('#flame .bar'),
      function (node) { return node.textContent.indexOf(prefix) === 0; });
  }
  var flame = document.getElementById('flame').getBoundingClientRect().width;
  var reset = document.getElementById('flame-reset');
  var probe = {before: bar('serve_requests').getBoundingClientRect().width / flame,
               resetBefore: reset.disabled};
  bar('serve_requests').click();
  probe.zoomed = bar('serve_requests').getBoundingClientRect().width / flame;
  probe.resetZoomed = reset.disabled;
  probe.renderScriptTag = !!bar('render_script_tag');
  reset.click();
  probe.after = bar('serve_requests').getBoundingClientRect().width / flame;
  document.body.setAttribute('data-probe', JSON.stringify(probe));
}());
</script>
'''


@needs_chromium
def test_browser_zooms_into_a_frame_on_click(report_paths, tmp_path):
    page = report_paths[0].read_text(encoding='utf-8')
    probed = tmp_path / 'zoom.html'
    probed.write_text(page.replace('</body>', ZOOM_PROBE + '</body>'), encoding='utf-8')
    dom = _chromium(tmp_path, probed, '--dump-dom')
    probe = json.loads(html.unescape(re.search(r'<body[^>]*data-probe="([^"]*)"', dom).group(1)))
    assert 0.2 < probe['before'] < 0.99 and probe['resetBefore'] is True
    # Zoomed: the frame spans the graph, frames outside it are gone, reset is offered.
    assert probe['zoomed'] > 0.99 and probe['resetZoomed'] is False
    assert probe['renderScriptTag'] is False
    assert probe['after'] == probe['before']
