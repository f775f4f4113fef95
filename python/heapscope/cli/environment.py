"""Startup tracing from environment variables, for any ``python`` started
with them - the equivalent of ``PYTHONTRACEMALLOC=N`` for heapscope.

    HEAPSCOPE_TRACE=N               trace with N frames per traceback (0 or unset: off)
    HEAPSCOPE_OUTPUT=PATH           snapshot file; '{pid}' becomes the process id
                                    (default: heapscope.{pid}.hsnap, in the directory
                                    the process started in)
    HEAPSCOPE_TOP=N                 lines printed on stderr at exit (default 10; 0: only
                                    the file's name)
    HEAPSCOPE_SAMPLE_INTERVAL=BYTES sampled tracing, about one block every BYTES bytes
    HEAPSCOPE_NATIVE=1              trace native memory too (start(native=True)); 0 or
                                    unset: off

``heapscope.pth`` (installed beside the package) imports ``_heapscope_startup``
when HEAPSCOPE_TRACE is set, which calls ``start_from_environment``.
"""

import argparse
import os

from .parser import DEFAULT_OUTPUT, DEFAULT_TOP, byte_count, count, nframe
from .session import TracingSession

TRACE = 'HEAPSCOPE_TRACE'
OUTPUT = 'HEAPSCOPE_OUTPUT'
TOP = 'HEAPSCOPE_TOP'
SAMPLE_INTERVAL = 'HEAPSCOPE_SAMPLE_INTERVAL'
NATIVE = 'HEAPSCOPE_NATIVE'

PID_FIELD = '{pid}'


def start_from_environment(environ):
    """Start the session the variables describe; return it, or None when
    HEAPSCOPE_TRACE is unset, empty or 0. A bad value raises ValueError
    naming the variable."""
    session = session_from(environ)
    if session is not None:
        session.start()
    return session


def session_from(environ):
    text = environ.get(TRACE, '').strip()
    if not text or text == '0':
        return None
    frames = _parse(TRACE, text, nframe)
    output = os.path.abspath(environ.get(OUTPUT) or DEFAULT_OUTPUT)
    top = _parse(TOP, environ[TOP], count) if environ.get(TOP) else DEFAULT_TOP
    interval = (_parse(SAMPLE_INTERVAL, environ[SAMPLE_INTERVAL], byte_count)
                if environ.get(SAMPLE_INTERVAL) else None)
    native = _parse(NATIVE, environ.get(NATIVE, ''), _switch)
    # A fork shares the parent's file name unless the name has the pid in it.
    child_output = output if PID_FIELD in output else None
    return TracingSession(frames, output, top, sample_interval=interval,
                          child_output=child_output, child_top=top, native=native)


def for_children(frames, output_template, sample_interval, native=False):
    """The variables that trace the Python processes a program starts, each
    into its own file, quietly (one line each at exit)."""
    variables = {TRACE: str(frames), OUTPUT: output_template, TOP: '0'}
    if sample_interval is not None:
        variables[SAMPLE_INTERVAL] = str(sample_interval)
    if native:
        variables[NATIVE] = '1'
    return variables


def _switch(text):
    """'1' on, '0' or empty off (as PYTHONTRACEMALLOC reads its digits)."""
    text = text.strip()
    if text in ('', '0'):
        return False
    if text == '1':
        return True
    raise argparse.ArgumentTypeError('expected 1 (on) or 0 (off)')


def children_template(output):
    """The per-process file name of children, from the parent's file name:
    the same when it has '{pid}', else 'name.{pid}.ext' beside it."""
    if PID_FIELD in output:
        return output
    stem, extension = os.path.splitext(output)
    return '%s.%s%s' % (stem, PID_FIELD, extension)


def _parse(name, text, parse):
    try:
        return parse(text)
    except argparse.ArgumentTypeError as exc:
        raise ValueError('%s=%s: %s' % (name, text, exc)) from None
