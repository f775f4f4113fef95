"""``heapscope diff OLD NEW``: what changed between two snapshots."""

import sys

from . import analysis, json_output
from .progress import Progress


def main(args):
    analysis.check_key(args)
    with Progress() as progress:
        old = analysis.filtered(analysis.load(args.old, progress), args, progress)
        new = analysis.filtered(analysis.load(args.new, progress), args, progress)
        analysis.check_comparable(args.old, old, args.new, new)
        progress.step('Comparing by %s' % args.key)
        diffs = new.compare_to(old, args.key, args.cumulative)
        old_total, new_total = analysis.totals(old), analysis.totals(new)
    if args.json:
        json_output.print_diff((args.old, old, old_total), (args.new, new, new_total),
                               diffs, args)
        return 0
    from ..reports import terminal
    from .headers import comparison_line, sampling_note

    console = terminal.make_console(sys.stdout)
    for line in comparison_line(args, old_total, new_total):
        terminal.print_line(console, line)
    for snapshot in (old, new):
        note = sampling_note(snapshot)
        if note:
            terminal.print_line(console, note, 'dim')
            break
    terminal.print_diffs(console, diffs, args.key, args.limit)
    return 0
