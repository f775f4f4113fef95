"""What every no-harm program shares: starting the tracer the test asks for
and printing observations, one JSON line each.

tests/test_no_harm.py runs each program untraced, under the standard
module, under heapscope.start() and under startup tracing
(HEAPSCOPE_TRACE), and compares the lines. NO_HARM_TRACER names the tracer
the program starts itself ('none', 'tracemalloc' or 'heapscope') and
NO_HARM_NFRAME its traceback limit. Everything here that allocates runs
before the program's observations begin, the same way in every run, and
each program runs its workload once before it starts observing, so that
first uses (an import inside a library call, a cache filled) are behind it.
"""

import gc
import json
import os
import sys

# Every run imports both tracers, started or not: what differs between the
# runs is then tracing, not what an import leaves behind (modules another
# first use would have imported, free lists, the collector's counts).
import heapscope
import tracemalloc

TRACER = os.environ.get('NO_HARM_TRACER', 'none')
NFRAME = int(os.environ.get('NO_HARM_NFRAME', '25'))


def start_tracer():
    """Start the tracer named by NO_HARM_TRACER (nothing for 'none'), then
    collect: every run starts observing with the collector's counts at zero
    and its free lists empty, whatever startup left (startup tracing
    imports more than an untraced start)."""
    if TRACER == 'heapscope':
        heapscope.start(NFRAME)
    elif TRACER == 'tracemalloc':
        tracemalloc.start(NFRAME)
    elif TRACER != 'none':
        raise SystemExit('NO_HARM_TRACER=%s: not none, heapscope or tracemalloc' % TRACER)
    gc.collect()


def tracers():
    """Which tracers trace this process now, e.g. ['heapscope']: the test
    checks that a traced run was traced to the end (no vacuous pass)."""
    return [module.__name__ for module in (heapscope, tracemalloc) if module.is_tracing()]


def report(name, value):
    """One observation: a JSON line ["name", value] on stdout."""
    sys.stdout.write(json.dumps([name, value]) + '\n')
    sys.stdout.flush()


def report_tracers():
    """The last line of a program: which tracers were still tracing."""
    sys.stdout.write(json.dumps(['#tracers', tracers()]) + '\n')
    sys.stdout.flush()
