"""Keeps a known allocation, then ends the way sys.argv[1] says
(tests/test_signals_harmless.py compares each ending traced and untraced).
"""

import os
import signal
import sys
import time

KEPT = [bytearray(1000) for _ in range(300)]  # kept until the end


def busy_in_c():
    print('ready', flush=True)
    sum(range(10 ** 10))  # minutes inside one C call: no bytecode boundary


def fail():
    raise ValueError('the program failed')


def fork_and_terminate_child():
    """A forked child ended by SIGTERM dies of it; the parent goes on."""
    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    time.sleep(0.2)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    print('child %d ended by signal %d' % (pid, os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0))


def fork_many(count):
    """Forks as programs do: os.fork() called from Python and from C code
    (itertools.starmap), with Python after-fork hooks that run after
    heapscope's in the parent (the logging module's, and one of the
    program's that loops and, every tenth fork, forks again); counts Python 3.12+'s "multi-threaded, use of
    fork()" DeprecationWarnings. (Recorded, not turned into errors: os.fork()
    clears the error that -W error makes of it.)"""
    import itertools
    import logging  # noqa: F401 (its at-fork hooks)
    import warnings

    fork_from_hook = []

    def after_in_parent():
        total = 0
        for number in range(100):
            total += number
        if fork_from_hook:
            fork_from_hook.pop()
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)

    os.register_at_fork(after_in_parent=after_in_parent)
    warned = 0
    for i in range(count):
        if i % 10 == 0:
            fork_from_hook.append(True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            if i % 2:
                pid = os.fork()
            else:
                pid, = itertools.starmap(os.fork, [()])
            if pid == 0:
                os._exit(0)
        os.waitpid(pid, 0)
        warned += sum(issubclass(w.category, DeprecationWarning) for w in caught)
    print('forked %d times, %d warnings' % (count, warned), flush=True)


def terminate_from_fork_hook():
    """SIGTERM to itself from an after-fork hook of the parent: dies there."""
    def after_in_parent():
        os.kill(os.getpid(), signal.SIGTERM)
        print('went on after SIGTERM', flush=True)

    os.register_at_fork(after_in_parent=after_in_parent)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    print('went on after the fork', flush=True)


mode = sys.argv[1]
if mode == 'exit-0':
    pass
elif mode == 'exit-3':
    sys.exit(3)
elif mode == 'exception':
    fail()
elif mode == 'os-exit':
    os._exit(7)
elif mode in ('SIGTERM', 'SIGHUP'):
    os.kill(os.getpid(), getattr(signal, mode))
    time.sleep(60)
elif mode == 'busy':
    busy_in_c()
elif mode == 'fork-sigterm':
    fork_and_terminate_child()
elif mode == 'forks-then-SIGTERM':
    fork_many(int(sys.argv[2]))
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)
elif mode == 'SIGTERM-in-fork-hook':
    terminate_from_fork_hook()
print('done', flush=True)
