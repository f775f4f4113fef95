"""The HTML report: one self-contained page for a snapshot, or for the
change between two snapshots.

    write_report(snapshot, "report.html")              # what is allocated
    write_report(snapshot, "report.html", old=before)  # what grew, what shrank

The page carries its own CSS and JavaScript (``html_assets/``) and the data
as JSON in a ``<script type="application/json">`` element; it makes no
network request and opens offline. Everything shown is built here, in
Python, from ``statistics()`` / ``compare_to()``, so a sampled snapshot's
estimates and confidence intervals flow through unchanged; the browser
only lays the data out. Sizes arrive pre-formatted with the standard
module's units (``_format_size``) next to the raw numbers used for sorting.

Data that came from the traced program (filenames, source lines, function
names, the title) reaches the page only as JSON text, with ``<``, ``>``
and ``&`` escaped so that no string can close the script element, and the
JavaScript writes it with ``textContent``, never as markup.
"""

import html
import json
import os
import re

from .. import __version__, _source
from .._frames import _format_size
from ._flame_tree import SMALLER, FlameTree

# Past these sizes a report stops being pleasant to open; what is left out
# is summed up and named in the page.
MAX_TABLE_ROWS = 1000
MAX_FLAME_BARS = 5000           # frames drawn, the biggest (see _flame_tree)
MAX_FLAME_TREE_NODES = 200000   # frames summed before the smallest are merged
MAX_SOURCE_CHARS = 200

_ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'html_assets')


def write_report(snapshot, path, *, old=None, title=None, snapshot_name=None, old_name=None):
    """Write the HTML report of ``snapshot`` to ``path``; with ``old``,
    the report shows the change from ``old`` to ``snapshot``.

    ``snapshot_name`` and ``old_name`` (the files they were loaded from,
    say) are shown in the page's header.
    """
    model = build_model(snapshot, old=old, title=title,
                        snapshot_name=snapshot_name, old_name=old_name)
    page = render_page(model)
    # errors='replace': a filename may hold lone surrogates (undecodable
    # bytes on disk); the JSON is ASCII already, only the title can.
    with open(path, 'w', encoding='utf-8', errors='replace') as fp:
        fp.write(page)


def build_model(snapshot, *, old=None, title=None, snapshot_name=None, old_name=None):
    """The report's data, as the page's JavaScript reads it (a JSON-able dict)."""
    diff = old is not None
    frames = _FrameTable()
    if diff:
        by_line = snapshot.compare_to(old, 'lineno')
        by_file = snapshot.compare_to(old, 'filename')
        by_traceback = snapshot.compare_to(old, 'traceback')
    else:
        by_line = snapshot.statistics('lineno')
        by_file = snapshot.statistics('filename')
        by_traceback = snapshot.statistics('traceback')

    summary = _summary(snapshot, by_file, by_line, diff)
    summary.update(snapshot_name=snapshot_name, old_name=old_name)
    total_size = summary['size']
    return {
        'title': title or ('Memory growth' if diff else 'Memory report'),
        'version': __version__,
        'diff': diff,
        'summary': summary,
        'flame': _flame_graph(by_traceback, frames, diff),
        'lines': _table(by_line, frames, diff, total_size, by_file=False),
        'files': _table(by_file, frames, diff, total_size, by_file=True),
        'limits': {
            'table_rows': MAX_TABLE_ROWS,
            'flame_bars': MAX_FLAME_BARS,
        },
        # Filled by the graph and the tables above, which refer to them by index.
        'filenames': frames.filenames,
        'frames': frames.frames,
    }


def render_page(model):
    """The report's HTML: the template with the CSS, the script and the data inlined."""
    parts = {
        'TITLE': html.escape(model['title']),
        'CSS': _asset('report.css'),
        'JS': _asset('report.js'),
        'DATA': _script_json(model),
    }
    # One pass, so that text put in (a title, say) is never searched for
    # placeholders itself.
    return re.sub(r'\{\{(\w+)\}\}', lambda m: parts[m.group(1)], _asset('report.html'))


def _asset(name):
    with open(os.path.join(_ASSETS, name), encoding='utf-8') as fp:
        return fp.read()


def _script_json(value):
    """JSON that is inert inside <script>: no '</script', no '<!--'."""
    text = json.dumps(value, ensure_ascii=True, separators=(',', ':'), allow_nan=False)
    return text.replace('<', '\\u003c').replace('>', '\\u003e').replace('&', '\\u0026')


class _FrameTable:
    """The frames the page names, each stored once and referred to by index:
    ``[filename index, lineno, function name or None, source line]``."""

    def __init__(self):
        self.filenames = []
        self.frames = []
        self._file_ids = {}
        self._frame_ids = {}

    def file_id(self, filename):
        file_id = self._file_ids.get(filename)
        if file_id is None:
            file_id = self._file_ids[filename] = len(self.filenames)
            self.filenames.append(filename)
        return file_id

    def frame_id(self, frame):
        return self.frame_id_of_key((frame.filename, frame.lineno))

    def frame_id_of_key(self, key):
        """The id of the frame ``(filename, lineno)``."""
        frame_id = self._frame_ids.get(key)
        if frame_id is None:
            filename, lineno = key
            frame_id = self._frame_ids[key] = len(self.frames)
            self.frames.append([
                self.file_id(filename),
                lineno,
                _source.function_name(filename, lineno),
                _source_text(filename, lineno),
            ])
        return frame_id


def _source_text(filename, lineno):
    line = (_source.source_line(filename, lineno) or '').strip()
    if len(line) > MAX_SOURCE_CHARS:
        line = line[:MAX_SOURCE_CHARS - 1] + '\u2026'
    return line


def _summary(snapshot, by_file, by_line, diff):
    """The header's totals, summed from the per-file statistics."""
    size = sum(stat.size for stat in by_file)
    count = sum(stat.count for stat in by_file)
    sample_interval = getattr(snapshot, 'sample_interval', 0) or 0
    summary = {
        'size': size,
        'size_text': _format_size(size, False),
        'count': count,
        'traces': len(snapshot.traces),
        'traceback_limit': snapshot.traceback_limit,
        'files': sum(1 for stat in by_file if stat.size or stat.count),
        'lines': sum(1 for stat in by_line if stat.size or stat.count),
        'sample_interval': sample_interval,
        'sample_interval_text': _format_size(sample_interval, False) if sample_interval else None,
    }
    if diff:
        size_diff = sum(stat.size_diff for stat in by_file)
        summary.update(
            old_size_text=_format_size(size - size_diff, False),
            size_diff=size_diff,
            size_diff_text=_format_size(size_diff, True),
            count_diff=sum(stat.count_diff for stat in by_file),
        )
    return summary


def _table(stats, frames, diff, total_size, by_file):
    """One table's rows (the first MAX_TABLE_ROWS, in the statistics' order:
    biggest first, or biggest change first) and what was left out."""
    shown, hidden = stats[:MAX_TABLE_ROWS], stats[MAX_TABLE_ROWS:]
    rows = []
    for stat in shown:
        frame = stat.traceback[0]
        row = {'ref': frames.file_id(frame.filename) if by_file else frames.frame_id(frame)}
        row.update(_amounts(stat, diff, total_size))
        rows.append(row)
    return {
        'rows': rows,
        'total_rows': len(stats),
        'hidden_rows': len(hidden),
        'hidden_size_text': _format_size(sum(stat.size for stat in hidden), False),
    }


def _amounts(stat, diff, total_size):
    """A statistic's numbers, raw and as text, with its confidence intervals
    when the snapshot was sampled."""
    amounts = {
        'size': stat.size,
        'size_text': _format_size(stat.size, False),
        'count': stat.count,
        'average_text': _format_size(stat.size / stat.count, False) if stat.count else '',
        'share': stat.size / total_size if total_size else 0,
    }
    size_ci = getattr(stat, 'size_ci', None)
    count_ci = getattr(stat, 'count_ci', None)
    if size_ci is not None:
        amounts['size_ci_text'] = _size_range(size_ci, False)
    if count_ci is not None:
        amounts['count_ci_text'] = _count_range(count_ci, False)
    if diff:
        amounts['size_diff'] = stat.size_diff
        amounts['size_diff_text'] = _format_size(stat.size_diff, True)
        amounts['count_diff'] = stat.count_diff
        size_diff_ci = getattr(stat, 'size_diff_ci', None)
        count_diff_ci = getattr(stat, 'count_diff_ci', None)
        if size_diff_ci is not None:
            amounts['size_diff_ci_text'] = _size_range(size_diff_ci, True)
        if count_diff_ci is not None:
            amounts['count_diff_ci_text'] = _count_range(count_diff_ci, True)
    return amounts


# Confidence intervals read "low - high unit" and may wrap only after the dash.
_NBSP = '\u00a0'
_RANGE = _NBSP + '\u2013 '


def _size_range(bounds, sign):
    """'4752 - 5808 KiB' ('1023 B - 1.2 KiB' when the units differ)."""
    low, high = (_format_size(bound, sign).replace(' ', _NBSP) for bound in bounds)
    low_number, low_unit = low.split(_NBSP)
    high_unit = high.split(_NBSP)[1]
    if low_unit == high_unit:
        return low_number + _RANGE + high
    return low + _RANGE + high


def _count_range(bounds, sign):
    spec = '{:+,}' if sign else '{:,}'
    low, high = (spec.format(round(bound)) for bound in bounds)
    return low + _RANGE + high


def _flame_graph(stats, frames, diff):
    """The flame graph's nodes (see _flame_tree) and what was merged."""
    # Biggest first, so that what the capacity leaves out is the small tail.
    # A traceback with nothing left (freed since the old snapshot) has no width.
    stats = sorted((stat for stat in stats if stat.size > 0),
                   key=lambda stat: stat.size, reverse=True)
    tree = FlameTree(MAX_FLAME_TREE_NODES)
    for stat in stats:
        # Traceback order is oldest frame first: the root's side.
        path = [(frame.filename, frame.lineno) for frame in stat.traceback]
        tree.add(path, stat.size, stat.count, stat.size_diff if diff else 0)
    nodes = tree.encode(MAX_FLAME_BARS, frames.frame_id_of_key, diff)
    return {
        'nodes': nodes,
        'tracebacks': tree.tracebacks,
        'frames': tree.nodes - 1,
        'merged': sum(1 for node in nodes if node[0] == SMALLER),
        'capacity_reached': tree.nodes >= MAX_FLAME_TREE_NODES,
    }
