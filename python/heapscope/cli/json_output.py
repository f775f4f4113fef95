"""``--json``: top and diff as one JSON document on stdout.

The keys are stable (docs/cli.md describes them); a key may be added in a
later version, none removed or renamed without changing ``version``.
Tracebacks are lists of {"filename", "lineno"} ordered as heapscope's
Traceback: oldest frame first, the allocating line last.
"""

import json
import sys

VERSION = 1


def print_top(path, snapshot, total, stats, args):
    shown = stats[:args.limit] if args.limit else stats
    rest = stats[len(shown):]
    document = {
        'version': VERSION,
        'command': 'top',
        'snapshot': _snapshot(path, snapshot, total),
        'key_type': args.key,
        'cumulative': args.cumulative,
        'filters': _filters(args),
        'statistics': [_statistic(stat) for stat in shown],
        'more': {'entries': len(rest), 'size': sum(stat.size for stat in rest),
                 'count': sum(stat.count for stat in rest)},
    }
    _write(document)


def print_diff(old, new, diffs, args):
    """old, new: (path, snapshot, (size, count)) each."""
    shown = diffs[:args.limit] if args.limit else diffs
    rest = diffs[len(shown):]
    document = {
        'version': VERSION,
        'command': 'diff',
        'old': _snapshot(*old),
        'new': _snapshot(*new),
        'key_type': args.key,
        'cumulative': args.cumulative,
        'filters': _filters(args),
        'statistics': [_diff(diff) for diff in shown],
        'more': {'entries': len(rest), 'size_diff': sum(diff.size_diff for diff in rest),
                 'count_diff': sum(diff.count_diff for diff in rest)},
    }
    _write(document)


def _snapshot(path, snapshot, total):
    return {'file': path, 'traceback_limit': snapshot.traceback_limit,
            'sample_interval': getattr(snapshot, 'sample_interval', 0) or 0,
            'size': total[0], 'count': total[1]}


def _filters(args):
    return {'include': list(args.include), 'exclude': list(args.exclude),
            'domain': list(args.domain), 'all_frames': args.all_frames}


def _statistic(stat):
    return {'size': stat.size, 'count': stat.count,
            'size_ci': _bounds(stat, 'size_ci'), 'count_ci': _bounds(stat, 'count_ci'),
            'traceback': _frames(stat.traceback)}


def _diff(diff):
    return {'size': diff.size, 'size_diff': diff.size_diff,
            'count': diff.count, 'count_diff': diff.count_diff,
            'size_ci': _bounds(diff, 'size_ci'), 'size_diff_ci': _bounds(diff, 'size_diff_ci'),
            'count_ci': _bounds(diff, 'count_ci'), 'count_diff_ci': _bounds(diff, 'count_diff_ci'),
            'traceback': _frames(diff.traceback)}


def _bounds(stat, name):
    bounds = getattr(stat, name, None)
    return None if bounds is None else [bounds[0], bounds[1]]


def _frames(traceback):
    return [{'filename': frame.filename, 'lineno': frame.lineno} for frame in traceback]


def _write(document):
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write('\n')
    sys.stdout.flush()
