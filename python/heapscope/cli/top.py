"""``heapscope top FILE``: where a snapshot's memory was allocated."""

import sys

from . import analysis, json_output
from .progress import Progress


def main(args):
    analysis.check_key(args)
    with Progress() as progress:
        snapshot = analysis.filtered(analysis.load(args.file, progress), args, progress)
        progress.step('Grouping by %s' % args.key)
        stats = snapshot.statistics(args.key, args.cumulative)
        total = _total(snapshot, stats, args)
    if args.json:
        json_output.print_top(args.file, snapshot, total, stats, args)
        return 0
    from ..reports import terminal
    from .headers import snapshot_line, sampling_note

    console = terminal.make_console(sys.stdout)
    terminal.print_line(console, snapshot_line(args.file, snapshot, total, args))
    note = sampling_note(snapshot)
    if note:
        terminal.print_line(console, note, 'dim')
    terminal.print_statistics(console, stats, args.key, args.limit)
    return 0


def _total(snapshot, stats, args):
    if not args.cumulative:
        # each block is in exactly one group: the groups add up to the whole
        return sum(stat.size for stat in stats), sum(stat.count for stat in stats)
    return analysis.totals(snapshot)
