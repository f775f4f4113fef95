"""``heapscope export FILE --format FMT -o OUT``: a snapshot in pprof,
collapsed-stack or speedscope format (``heapscope.export``)."""

from . import analysis
from .errors import file_error
from .progress import Progress


def main(args):
    from .. import export

    with Progress() as progress:
        snapshot = analysis.filtered(analysis.load(args.file, progress), args, progress)
        progress.step('Writing %s' % args.output)
        try:
            export.export(snapshot, args.format, args.output)
        except OSError as exc:
            raise file_error(args.output, exc) from None
    print('wrote %s' % args.output)
    return 0
