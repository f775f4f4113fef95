"""What every no-harm program shares: starting the tracer the test asks for
and printing observations, one JSON line each.

tests/test_no_harm.py runs each program untraced, under the standard
module, under heapscope.start() and under startup tracing
(HEAPSCOPE_TRACE), and compares the lines. NO_HARM_TRACER names the tracer
the program starts itself ('none', 'tracemalloc' or 'heapscope') and
NO_HARM_NFRAME its traceback limit. Everything here that allocates runs
before the program's observations begin, the same way in every run.
"""

import json
import os
import sys

TRACER = os.environ.get('NO_HARM_TRACER', 'none')
NFRAME = int(os.environ.get('NO_HARM_NFRAME', '25'))


def start_tracer():
    """Start the tracer named by NO_HARM_TRACER (nothing for 'none')."""
    if TRACER == 'heapscope':
        import heapscope
        heapscope.start(NFRAME)
    elif TRACER == 'tracemalloc':
        import tracemalloc
        tracemalloc.start(NFRAME)
    elif TRACER != 'none':
        raise SystemExit('NO_HARM_TRACER=%s: not none, heapscope or tracemalloc' % TRACER)


def tracers():
    """Which tracers trace this process now, e.g. ['heapscope']: the test
    checks that a traced run was traced to the end (no vacuous pass)."""
    found = []
    for name in ('heapscope', 'tracemalloc'):
        module = sys.modules.get(name)
        if module is not None and module.is_tracing():
            found.append(name)
    return found


def report(name, value):
    """One observation: a JSON line ["name", value] on stdout."""
    sys.stdout.write(json.dumps([name, value]) + '\n')
    sys.stdout.flush()


def report_tracers():
    """The last line of a program: which tracers were still tracing."""
    sys.stdout.write(json.dumps(['#tracers', tracers()]) + '\n')
    sys.stdout.flush()
