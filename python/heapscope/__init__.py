"""heapscope: Python's tracemalloc, traced by a C++ core.

A drop-in for the standard module: ``import heapscope as tracemalloc``, or
call ``heapscope.install()`` so that code importing ``tracemalloc`` gets
heapscope. The functions below keep the standard module's names, arguments,
results and error messages; the tracing itself happens in ``_heapscope``.
"""

import atexit
import linecache  # noqa: F401  (Traceback.format reads source through heapscope.linecache)
import sys

from . import _heapscope
from ._filters import BaseFilter, DomainFilter, Filter, _normalize_filename
from ._frames import Frame, Trace, Traceback, _format_size, _RawTraces, _Traces
from ._snapshot import (
    Snapshot,
    SnapshotFileError,
    Statistic,
    StatisticDiff,
    _compare_grouped_stats,
)

__version__ = "0.1.0"


# The standard module's functions are C builtins that reject extra
# arguments with CPython's own messages; nanobind's functions would raise
# the same TypeError with a message listing C++ overloads, and reject None
# where the standard module accepts any object. These wrappers give the
# standard module's behaviour and messages (its module name aside).
def _without_arguments(function):
    name = function.__name__

    def wrapper(*args, **kwargs):
        if kwargs:
            raise TypeError('heapscope.%s() takes no keyword arguments' % name)
        if args:
            raise TypeError('heapscope.%s() takes no arguments (%d given)' % (name, len(args)))
        return function()

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = function.__doc__
    return wrapper


stop = _without_arguments(_heapscope.stop)
is_tracing = _without_arguments(_heapscope.is_tracing)
clear_traces = _without_arguments(_heapscope.clear_traces)
get_traceback_limit = _without_arguments(_heapscope.get_traceback_limit)
get_traced_memory = _without_arguments(_heapscope.get_traced_memory)
get_tracemalloc_memory = _without_arguments(_heapscope.get_tracemalloc_memory)
reset_peak = _without_arguments(_heapscope.reset_peak)


def _get_object_traceback(*args, **kwargs):
    """The raw frames, most recent first, where the object was allocated,
    or None when it is untraced."""
    if kwargs:
        raise TypeError('heapscope._get_object_traceback() takes no keyword arguments')
    if len(args) != 1:
        raise TypeError('heapscope._get_object_traceback() takes exactly one argument '
                        '(%d given)' % len(args))
    if args[0] is None:
        # None is a static object, never allocated by Python's allocators;
        # nanobind refuses it as an argument.
        return None
    return _heapscope._get_object_traceback(args[0])


def start(*args, sample_interval=None, native: bool = False, **kwargs) -> None:
    """Start tracing Python memory allocations, storing at most ``nframe``
    frames per traceback (1 by default).

    ``nframe`` is positional-only, like the standard module's
    ``start(nframe=1, /)``. By default every block is traced. With
    ``sample_interval=BYTES`` (524288, 512 KiB, is a good start) heapscope
    traces a Poisson sample of the allocated bytes, one sample every BYTES
    on average, at a fraction of the cost; statistics and
    get_traced_memory() are then unbiased estimates, with confidence
    intervals on each Statistic.

    With ``native=True`` heapscope also traces what extension modules and
    the libraries under them allocate from the C allocator (malloc, calloc,
    realloc, posix_memalign, ...), each block in the domain NATIVE_DOMAIN
    under the Python traceback of the thread that allocated it (see the
    README's "Native memory" for what is and is not seen). Changing mode
    needs stop() first.
    """
    if kwargs:
        raise TypeError("heapscope.start() takes no keyword arguments other than "
                        "sample_interval and native (got %r)" % next(iter(kwargs)))
    if len(args) > 1:
        raise TypeError(f"start expected at most 1 argument, got {len(args)}")
    if not isinstance(native, bool):
        raise TypeError('native must be a bool, not %s' % type(native).__name__)
    _heapscope.start(args[0] if args else 1, _sample_interval_from(sample_interval), native)


#: The domain of the traces of native allocations (start(native=True)):
#: "nat" in ASCII, a number no known extension reports its own blocks in.
NATIVE_DOMAIN: int = _heapscope.NATIVE_DOMAIN


def is_tracing_native() -> bool:
    """Whether heapscope traces and native allocations are included
    (start(native=True))."""
    return _heapscope.is_tracing_native()


# Larger intervals would make the sampler's countdown overflow its 62 bits.
_MAX_SAMPLE_INTERVAL = 2 ** 62


def _sample_interval_from(value):
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError('sample_interval must be an int (bytes), not %s' % type(value).__name__)
    if not 1 <= value <= _MAX_SAMPLE_INTERVAL:
        raise ValueError('sample_interval must be in range [1; 2**62] bytes, got %d' % value)
    return value


def get_sampling_interval():
    """The mean bytes between samples while tracing in sampled mode; 0 when
    every block is traced or when not tracing."""
    return _heapscope.get_sampling_interval()


def get_object_traceback(obj):
    """The Traceback where ``obj`` was allocated, or None when it is untraced."""
    frames = _get_object_traceback(obj)
    if frames is None:
        return None
    return Traceback(frames)


def _get_traces():
    """The live traces as CPython's list of raw tuples
    ``(domain, size, ((filename, lineno), ...), total_nframe)``.

    The traces are frozen in C++ and the tuples made on access: the result
    compares, indexes and iterates as that list, and a Snapshot built on it
    analyses them in C++. Empty when not tracing.
    """
    return _RawTraces(_heapscope._frozen_traces())


def take_snapshot():
    """A Snapshot of the traces of the memory blocks allocated by Python."""
    # Looked up as module globals on purpose: code that patches
    # is_tracing, get_traceback_limit or _get_traces changes the snapshot.
    # During interpreter shutdown (a __del__ taking a snapshot) sys.modules
    # may no longer name the module: the module object itself is used.
    module = sys.modules.get(__name__) or _THIS_MODULE
    # Unpatched, the C functions are called directly: a Python function
    # called before the traces are frozen would leave its frame among them
    # (3.9 and 3.10 allocate frames as heap blocks and keep one per code
    # object), where the standard module, whose functions are C, leaves none.
    unpatched = module.is_tracing is _UNPATCHED[0] and module._get_traces is _UNPATCHED[1]
    if not (_heapscope.is_tracing() if unpatched else module.is_tracing()):
        raise RuntimeError(
            "the tracemalloc module must be tracing memory allocations to take a snapshot"
        )
    traces = _RawTraces(_heapscope._frozen_traces()) if unpatched else module._get_traces()
    traceback_limit = module.get_traceback_limit()
    return Snapshot(traces, traceback_limit)


_UNPATCHED = (is_tracing, _get_traces)  # as defined here, whatever replaces them later


def install():
    """Make ``import tracemalloc`` resolve to heapscope from now on.

    Modules that imported the standard module before this call keep it.
    Returns the module that ``tracemalloc`` named before, or None.
    """
    previous = sys.modules.get("tracemalloc")
    sys.modules["tracemalloc"] = sys.modules[__name__]
    return previous if previous is not sys.modules[__name__] else None


CONFIDENCE_LEVEL = 0.95  # of Statistic.size_ci / count_ci in sampled snapshots


def dropped_traces():
    """How many blocks went untraced because the tracer ran out of memory
    for its tables (the standard module aborts the process instead)."""
    return _heapscope._dropped_traces()


# The module itself, for take_snapshot() once sys.modules has been emptied
# at interpreter shutdown.
_THIS_MODULE = sys.modules[__name__]


def _quiet_leak_warnings_at_exit() -> None:
    """At exit, daemon threads may still hold heapscope objects (a snapshot,
    a trace): the interpreter never frees them, and nanobind would report
    them as "leaked instances" though nothing leaked. Its report stays on
    when no other thread is left, where it can point at a real leak."""
    # sys._current_frames() also sees threads started with _thread, which
    # threading.enumerate() does not list.
    others = len(sys._current_frames()) > 1
    threading = sys.modules.get('threading')
    if threading is not None:
        main = threading.main_thread()
        others = others or any(thread is not main and thread.is_alive()
                               for thread in threading.enumerate())
    if others:
        _heapscope._quiet_leak_warnings()


atexit.register(_quiet_leak_warnings_at_exit)
