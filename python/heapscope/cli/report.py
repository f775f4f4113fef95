"""``heapscope report FILE [--diff OLD] -o OUT``: the HTML report
(``heapscope.reports.html``), optionally of the change since OLD."""

import os

from . import analysis
from .errors import file_error
from .progress import Progress


def main(args):
    from ..reports import html

    with Progress() as progress:
        snapshot = analysis.filtered(analysis.load(args.file, progress), args, progress)
        old = None
        if args.diff is not None:
            old = analysis.filtered(analysis.load(args.diff, progress), args, progress)
            analysis.check_comparable(args.diff, old, args.file, snapshot)
        progress.step('Writing %s' % args.output)
        try:
            html.write_report(snapshot, args.output, old=old, title=args.title,
                              snapshot_name=os.path.basename(args.file),
                              old_name=os.path.basename(args.diff) if args.diff else None)
        except OSError as exc:
            raise file_error(args.output, exc) from None
    print('wrote %s' % args.output)
    return 0
