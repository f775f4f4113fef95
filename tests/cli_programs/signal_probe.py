"""Prints what a program can see of its signals, in itself and in the
children it starts every way; tests/test_signals_harmless.py compares the
output traced and untraced.

    python signal_probe.py default|own

'own' sets a SIGTERM handler of the program's first, as servers do.
"""

import multiprocessing
import os
import signal
import sys

SIGNALS = ('SIGTERM', 'SIGHUP', 'SIGINT', 'SIGUSR1', 'SIGCHLD', 'SIGPIPE')


def on_term(signum, frame):
    pass


def describe(handler):
    if callable(handler):
        return handler.__qualname__
    return 'None' if handler is None else str(int(handler))


def seen(where):
    return '%s: %s' % (where, ' '.join(
        '%s=%s' % (name, describe(signal.getsignal(getattr(signal, name)))) for name in SIGNALS))


def caught_in_c():
    """Which of SIGTERM and SIGHUP have a C-level handler (the kernel's view)."""
    with open('/proc/self/status') as status:
        line = next(line for line in status if line.startswith('SigCgt:'))
    mask = int(line.split()[1], 16)
    return ' '.join('%s=%d' % (name, (mask >> (getattr(signal, name) - 1)) & 1)
                    for name in ('SIGTERM', 'SIGHUP'))


def report(queue, where):
    queue.put(seen(where))


def main():
    if sys.argv[1] == 'own':
        signal.signal(signal.SIGTERM, on_term)
    print(seen('program'), flush=True)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write_end, ('%s\nfork child, C level: %s\n'
                             % (seen('fork child'), caught_in_c())).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as child:
        print(child.read(), end='', flush=True)
    for method in ('fork', 'spawn', 'forkserver'):
        context = multiprocessing.get_context(method)
        queue = context.Queue()
        process = context.Process(target=report, args=(queue, method + ' worker'))
        process.start()
        print(queue.get(timeout=60), flush=True)
        process.join()


if __name__ == '__main__':
    main()
