"""What top, diff, report and export share: loading snapshots with a
progress indicator, the --include/--exclude/--domain filters, totals."""

import heapscope

from .errors import CliError, file_error


def load(path, progress):
    """The snapshot in ``path``; a file that cannot be read is a CliError."""
    progress.step('Loading %s' % path)
    try:
        return heapscope.Snapshot.load(path)
    except (OSError, heapscope.SnapshotFileError) as exc:
        raise file_error(path, exc) from None
    except MemoryError:
        raise CliError('%s: not enough memory to load this snapshot' % path) from None


def filters(args):
    """The heapscope filters the options ask for ([] when none).

    A trace passes heapscope's filters when it matches any inclusive one, so
    the domain goes into each --include filter rather than beside them:
    ``--include 'app/*' --domain 0`` keeps blocks of app/ in domain 0.
    """
    domains = args.domain or [None]
    if args.include:
        chosen = [heapscope.Filter(True, pattern, all_frames=args.all_frames, domain=domain)
                  for pattern in args.include for domain in domains]
    else:
        chosen = [heapscope.DomainFilter(True, domain) for domain in args.domain]
    chosen += [heapscope.Filter(False, pattern, all_frames=args.all_frames)
               for pattern in args.exclude]
    return chosen


def filtered(snapshot, args, progress):
    chosen = filters(args)
    if not chosen:
        return snapshot
    progress.step('Filtering')
    return snapshot.filter_traces(chosen)


def totals(snapshot):
    """(size, count) of every block in the snapshot (estimates if sampled)."""
    stats = snapshot.statistics('filename')
    return sum(stat.size for stat in stats), sum(stat.count for stat in stats)


def describe_filters(args):
    """The filters in words, for a header ('' when none)."""
    parts = ['files matching %s' % ' or '.join(args.include)] if args.include else []
    parts += ['not %s' % pattern for pattern in args.exclude]
    if args.domain:
        parts.append('domain %s' % ' or '.join(str(d) for d in args.domain))
    if not parts:
        return ''
    frames = ' (any frame)' if args.all_frames else ''
    return 'blocks from %s%s' % (', '.join(parts), frames)


def check_comparable(old_path, old, new_path, new):
    """A sampled snapshot holds estimates, an exact one counts: comparing
    them is a mistake in what was asked, said before comparing."""
    if bool(old.sample_interval) == bool(new.sample_interval):
        return

    def kind(snapshot):
        if snapshot.sample_interval:
            return 'a sampled snapshot, every %d bytes' % snapshot.sample_interval
        return 'an exact snapshot'

    raise CliError('cannot compare %s (%s) with %s (%s): take both snapshots in the same mode'
                   % (old_path, kind(old), new_path, kind(new)))


def check_key(args):
    """The standard module's rule, said before any file is loaded."""
    if args.cumulative and args.key == 'traceback':
        raise CliError('--cumulative cannot be used with --key traceback')
