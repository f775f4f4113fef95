"""Statistics as a table for a terminal or a pipe.

Columns are aligned; sizes use the standard module's units (``_format_size``);
each location comes with its source line. rich decides whether the output is
a terminal: there, colour (unless NO_COLOR is set) and lines cut to the
terminal's width; in a pipe, plain text and whole lines.

Everything shown comes from ``Snapshot.statistics()`` / ``compare_to()``
objects, so sampled snapshots' estimates (``size_ci`` and friends, 95 %
confidence bounds) are shown as ``±`` beside the value when present.
"""

import os

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from .._frames import _format_size
from .paths import display_path

try:
    from .._source import source_line
except ImportError:  # pragma: no cover - only while _source is being written
    import linecache

    def source_line(filename, lineno):
        return linecache.getline(filename, lineno).strip()

# Styles, in rich's syntax.
_RANK = 'dim'
_SIZE = 'bold'
_LOCATION = 'cyan'
_SOURCE = ''
_GREW = 'red'
_SHRANK = 'green'
_HEADER = 'bold'
_NOTE = 'dim'


def make_console(file):
    """A rich Console on ``file``. In a pipe it never wraps or cuts a line."""
    console = Console(file=file, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(file=file, highlight=False, soft_wrap=True, width=1 << 20)
    return console


def print_line(console, text, style=_HEADER):
    """One line (a header, a note) in the given rich style; never cut (a
    terminal wraps it)."""
    _emit(console, Text(text, style=style), cut=False)


def print_statistics(console, stats, key_type, limit):
    """The first ``limit`` Statistics (all when 0) as a table, then a line
    for the rest."""
    shown = stats[:limit] if limit else stats
    columns = [_Column('#', 'right', _RANK), _Column('Size', 'right', _SIZE),
               _Column('Count', 'right', '')]
    rows = []
    for rank, stat in enumerate(shown, 1):
        cells = [str(rank),
                 _with_margin(_format_size(stat.size, False), _size_margin(stat, 'size_ci')),
                 _with_margin(str(stat.count), _count_margin(stat, 'count_ci'))]
        rows.append(cells + _location_cells(stat.traceback, key_type))
    _print_table(console, columns + _location_columns(key_type), rows,
                 spaced=key_type == 'traceback')
    rest = stats[len(shown):]
    if rest:
        print_line(console, '%d more %s: %s in %s' % (
            len(rest), _plural(key_type, len(rest)),
            _format_size(sum(stat.size for stat in rest), False),
            blocks(sum(stat.count for stat in rest))), _NOTE)


def print_diffs(console, diffs, key_type, limit):
    """The first ``limit`` StatisticDiffs (all when 0), growth in red and
    shrinking in green, then a line for the rest."""
    shown = diffs[:limit] if limit else diffs
    columns = [_Column('#', 'right', _RANK), _Column('Size', 'right', _SIZE),
               _Column('Change', 'right', None), _Column('Count', 'right', ''),
               _Column('Change', 'right', None)]
    rows = []
    for rank, diff in enumerate(shown, 1):
        change_style = _GREW if diff.size_diff > 0 else _SHRANK if diff.size_diff < 0 else ''
        cells = [str(rank),
                 _with_margin(_format_size(diff.size, False), _size_margin(diff, 'size_ci')),
                 (_with_margin(_format_size(diff.size_diff, True),
                               _size_margin(diff, 'size_diff_ci', diff.size_diff)), change_style),
                 _with_margin(str(diff.count), _count_margin(diff, 'count_ci')),
                 (_with_margin('%+d' % diff.count_diff,
                               _count_margin(diff, 'count_diff_ci', diff.count_diff)),
                  change_style)]
        rows.append(cells + _location_cells(diff.traceback, key_type))
    _print_table(console, columns + _location_columns(key_type), rows,
                 spaced=key_type == 'traceback')
    rest = diffs[len(shown):]
    if rest:
        print_line(console, '%d more %s: %s, %s' % (
            len(rest), _plural(key_type, len(rest)),
            _format_size(sum(diff.size_diff for diff in rest), True),
            blocks(sum(diff.count_diff for diff in rest), sign=True)), _NOTE)


def blocks(count, sign=False):
    """'1 block', '20000 blocks', '+3 blocks'."""
    return '%s block%s' % ('%+d' % count if sign else count, '' if abs(count) == 1 else 's')


class _Column:
    __slots__ = ('title', 'justify', 'style')

    def __init__(self, title, justify, style):
        self.title = title
        self.justify = justify
        self.style = style  # None: each cell brings its own


def _location_columns(key_type):
    if key_type == 'filename':
        return [_Column('File', 'left', _LOCATION)]
    title = 'Traceback (most recent call last)' if key_type == 'traceback' else 'Line'
    return [_Column(title, 'left', _LOCATION), _Column('Source', 'left', _SOURCE)]


def _location_cells(traceback, key_type):
    """The location column(s) of one row. A traceback gives one line per
    frame, oldest first as in Python's tracebacks; its last line is where
    the memory was allocated."""
    if key_type == 'filename':
        return [display_path(traceback[0].filename)]
    frames = list(traceback)
    places = ['%s:%d' % (display_path(frame.filename), frame.lineno) for frame in frames]
    sources = [source_line(frame.filename, frame.lineno) for frame in frames]
    if key_type == 'traceback' and traceback.total_nframe is not None \
            and traceback.total_nframe > len(frames):
        # the outer frames fell beyond the traceback limit (-n)
        places.insert(0, '... %d more' % (traceback.total_nframe - len(frames)))
        sources.insert(0, '')
    return ['\n'.join(places), '\n'.join(sources)]


def _size_margin(stat, attribute, value=None):
    """The ± half-width of a confidence interval on a size, or None."""
    bounds = getattr(stat, attribute, None)
    if not bounds:
        return None
    value = getattr(stat, attribute[:-3]) if value is None else value
    return _format_size(max(bounds[1] - value, value - bounds[0]), False)


def _count_margin(stat, attribute, value=None):
    bounds = getattr(stat, attribute, None)
    if not bounds:
        return None
    value = getattr(stat, attribute[:-3]) if value is None else value
    return '%d' % round(max(bounds[1] - value, value - bounds[0]))


def _with_margin(text, margin):
    return text if margin is None else '%s ±%s' % (text, margin)


def _plural(key_type, n):
    word = {'lineno': 'line', 'filename': 'file', 'traceback': 'traceback'}[key_type]
    return word if n == 1 else word + 's'


def _print_table(console, columns, rows, spaced):
    """rows: one list of cells per row; a cell is a str (lines split on
    '\\n') or a (str, style) pair for a column whose style is None."""
    grid = [[_cell(cell, column) for cell, column in zip(row, columns)] for row in rows]
    widths = [cell_len(column.title) for column in columns]
    for row in grid:
        for index, (lines, _) in enumerate(row):
            for line in lines:
                widths[index] = max(widths[index], cell_len(line))
    last = len(columns) - 1
    header = Text(style=_HEADER)
    for index, column in enumerate(columns):
        header.append(_pad(column.title, widths[index], column.justify, index == last))
        if index != last:
            header.append('  ')
    _emit(console, header)
    for number, row in enumerate(grid):
        if spaced and number:
            _emit(console, Text())
        height = max(len(lines) for lines, _ in row)
        for line_index in range(height):
            line = Text()
            for index, (column, (lines, style)) in enumerate(zip(columns, row)):
                text = lines[line_index] if line_index < len(lines) else ''
                line.append(_pad(text, widths[index], column.justify, index == last), style)
                if index != last:
                    line.append('  ')
            line.rstrip()
            _emit(console, line)


def _cell(cell, column):
    text, style = cell if isinstance(cell, tuple) else (cell, column.style)
    return text.split('\n'), style or ''


def _pad(text, width, justify, is_last):
    gap = ' ' * (width - cell_len(text))
    if justify == 'right':
        return gap + text
    return text if is_last else text + gap


def _emit(console, text, cut=True):
    if cut and console.is_terminal:
        text.truncate(console.width, overflow='ellipsis')
    console.print(text, soft_wrap=True)
