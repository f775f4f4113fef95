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
print('done', flush=True)
