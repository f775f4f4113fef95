"""Startup tracing for every ``python`` run with HEAPSCOPE_TRACE set.

Imported by ``heapscope.pth`` (installed beside it in site-packages) only
when that variable is set, so other Python processes pay one environment
lookup. The variables are described in ``heapscope.cli.environment``.
"""

import os
import sys

session = None


def _start():
    global session
    if sys.flags.ignore_environment:  # python -E / -I: environment ignored
        return
    try:
        from heapscope.cli.environment import start_from_environment

        session = start_from_environment(os.environ)
    except Exception as exc:
        # Never break the program over its tracing: one line, then run untraced.
        sys.stderr.write('heapscope: not tracing this process: %s\n' % (exc,))


def cancel():
    """Undo the startup tracing (``python -m heapscope`` does, to trace what it runs itself)."""
    if session is not None:
        session.cancel()


_start()
