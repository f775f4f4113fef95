"""The lines above a top or diff table: which files, how much, what is shown."""

from .._frames import _format_size
from ..reports.terminal import blocks
from . import analysis

_WORDS = {'lineno': 'lines', 'filename': 'files', 'traceback': 'tracebacks'}


def snapshot_line(path, snapshot, total, args):
    return '%s: %s in %s, traceback limit %d%s\n%s' % (
        path, _format_size(total[0], False), blocks(total[1]), snapshot.traceback_limit,
        _filters(args), _what(args, 'biggest first'))


def comparison_line(args, old_total, new_total):
    yield '%s -> %s: %s -> %s (%s), %d -> %d blocks (%+d)%s' % (
        args.old, args.new, _format_size(old_total[0], False),
        _format_size(new_total[0], False), _format_size(new_total[0] - old_total[0], True),
        old_total[1], new_total[1], new_total[1] - old_total[1], _filters(args))
    yield _what(args, 'biggest change first')


def sampling_note(snapshot):
    interval = getattr(snapshot, 'sample_interval', 0)
    if not interval:
        return ''
    return ('sampled about every %s: sizes and counts are estimates, '
            '± their 95%% confidence margin' % _format_size(interval, False))


def _filters(args):
    described = analysis.describe_filters(args)
    return ' (%s)' % described if described else ''


def _what(args, order):
    cumulative = ', cumulative (a block counts in every frame of its traceback)' \
        if args.cumulative else ''
    return 'By %s, %s%s:' % (args.key, order, cumulative)
