"""Snapshots written in other tools' formats.

``export(snapshot, fmt, path)`` writes one of:

- ``pprof``: gzipped ``perftools.profiles.Profile`` protobuf, for
  ``go tool pprof`` and continuous-profiling backends;
- ``collapsed``: flamegraph.pl's folded stacks, one line per traceback;
- ``speedscope``: speedscope's JSON file format.

Each format is one module with ``render(snapshot) -> bytes``; all of them are
built from ``snapshot.statistics('traceback')``, so a sampled snapshot's
estimates flow through unchanged. The details: docs/export.md.
"""

import importlib

__all__ = ['FORMATS', 'export', 'render']

FORMATS = ('pprof', 'collapsed', 'speedscope')


def render(snapshot, fmt):
    """The bytes of ``snapshot`` in format ``fmt`` (one of FORMATS)."""
    if fmt not in FORMATS:
        raise ValueError('unknown export format %r: choose one of %s'
                         % (fmt, ', '.join(FORMATS)))
    module = importlib.import_module('.' + fmt, __name__)
    return module.render(snapshot)


def export(snapshot, fmt, path):
    """Write ``snapshot`` to ``path`` in format ``fmt`` (one of FORMATS)."""
    data = render(snapshot, fmt)
    with open(path, 'wb') as out:
        out.write(data)
