"""The interpreter's settings a program can read, which a tracer has no
reason to change: trace and profile functions, sys.monitoring tools,
collector thresholds, hooks, threads, the recursion limit and the depth at
which RecursionError comes, at the start and after a workload.
"""

import faulthandler
import gc
import sys
import threading

from _no_harm import report, report_tracers, start_tracer


def named(thing):
    if thing is None:
        return None
    return '%s.%s' % (getattr(thing, '__module__', '?'),
                      getattr(thing, '__qualname__', type(thing).__name__))


def settings():
    state = {
        'sys.gettrace': named(sys.gettrace()),
        'sys.getprofile': named(sys.getprofile()),
        'sys.getrecursionlimit': sys.getrecursionlimit(),
        'sys.getswitchinterval': sys.getswitchinterval(),
        'sys.excepthook is sys.__excepthook__': sys.excepthook is sys.__excepthook__,
        'sys.unraisablehook is sys.__unraisablehook__':
            sys.unraisablehook is sys.__unraisablehook__,
        'sys.displayhook is sys.__displayhook__': sys.displayhook is sys.__displayhook__,
        'streams': [type(stream).__name__ for stream in (sys.stdin, sys.stdout, sys.stderr)],
        'gc.isenabled': gc.isenabled(),
        'gc.get_threshold': list(gc.get_threshold()),
        'gc.get_debug': gc.get_debug(),
        'gc.get_freeze_count': gc.get_freeze_count(),
        'faulthandler.is_enabled': faulthandler.is_enabled(),
        'threads': [thread.name for thread in threading.enumerate()],
        'threading.gettrace': named(getattr(threading, 'gettrace', lambda: None)()),
        'threading.getprofile': named(getattr(threading, 'getprofile', lambda: None)()),
    }
    monitoring = getattr(sys, 'monitoring', None)
    if monitoring is not None:  # 3.12+
        state['sys.monitoring tools'] = [monitoring.get_tool(tool) for tool in range(6)]
    return state


def depth_reached():
    def down(depth):
        try:
            return down(depth + 1)
        except RecursionError:
            return depth
    return down(1)


def main():
    start_tracer()
    report('at start', settings())
    report('depth at RecursionError', depth_reached())
    kept = [[i] * 3 for i in range(10000)]
    report('after allocating', settings())
    report('kept', len(kept))
    report_tracers()


if __name__ == '__main__':
    main()
