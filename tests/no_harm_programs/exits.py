"""Ends the way sys.argv[1] says, printing a line before (and, where the
program would go on, after) the end, so that a tracer that changes how or
when the process ends shows in its exit status or its output.
"""

import itertools
import os
import signal
import sys

from _no_harm import report_tracers, start_tracer


def fail():
    raise ValueError('the program failed')


def main(mode):
    start_tracer()
    report_tracers()  # before the end, which may leave no time for it
    print('started %s' % mode, flush=True)
    if mode == 'normal':
        pass
    elif mode == 'sys.exit(7)':
        sys.exit(7)
    elif mode == 'sys.exit(message)':
        sys.exit('stopped: bad input')
    elif mode == 'exception':
        fail()
    elif mode == 'os._exit(5)':
        sys.stdout.flush()
        os._exit(5)
    elif mode == 'SIGTERM to itself':
        os.kill(os.getpid(), signal.SIGTERM)
    elif mode == 'SIGTERM inside C code':
        print('in C code', flush=True)  # the test sends SIGTERM now
        # tens of seconds in one C call that neither allocates nor checks
        # for signals: only the default action of SIGTERM ends it early
        sum(itertools.repeat(1, 4 * 10**10))
    else:
        raise SystemExit('unknown mode %r' % mode)
    print('done', flush=True)


if __name__ == '__main__':
    main(sys.argv[1])
