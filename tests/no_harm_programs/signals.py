"""signal.getsignal() for every catchable signal, as the program sees it
at its start, after it sets handlers of its own, in a child it forks, and
in multiprocessing workers started by fork, spawn and forkserver (their
pools ended by close()/join(), terminate() and the context manager).
"""

import multiprocessing
import os
import signal
import sys

from _no_harm import report, report_tracers, start_tracer

UNCATCHABLE = {'SIGKILL', 'SIGSTOP'}


def described(handler):
    if handler is signal.SIG_DFL:
        return 'SIG_DFL'
    if handler is signal.SIG_IGN:
        return 'SIG_IGN'
    if handler is None:
        return 'None (not set from Python)'
    if handler is signal.default_int_handler:
        return 'default_int_handler'
    return 'handler %s.%s' % (getattr(handler, '__module__', '?'),
                              getattr(handler, '__qualname__', repr(handler)))


def dispositions():
    table = {}
    for signum in sorted(signal.valid_signals()):
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = 'signal %d' % signum  # real-time signals have no name
        if name in UNCATCHABLE:
            continue
        table[name] = described(signal.getsignal(signum))
    return table


def on_usr1(signum, frame):
    pass


def in_forked_child():
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os.write(write_end, repr(dispositions()).encode())
        os._exit(0)
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    return [b''.join(chunks).decode(), os.waitstatus_to_exitcode(status)
            if hasattr(os, 'waitstatus_to_exitcode') else status]


def in_pool(method, ending):
    with multiprocessing.get_context(method).Pool(1) as pool:
        seen = pool.apply(dispositions)
        if ending == 'close':
            pool.close()
            pool.join()
        elif ending == 'terminate':
            pool.terminate()
            pool.join()
        # else the context manager's exit terminates the pool
    return seen


def main():
    start_tracer()
    report('at start', dispositions())
    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    report('after the program set SIGUSR1 and SIGUSR2', dispositions())
    report('in a forked child (table, exit status)', in_forked_child())
    # one pool per start method, each ended another way (the many runs
    # of every ending, looking for hangs, are a stress test's job, not this one's)
    endings = dict(zip(multiprocessing.get_all_start_methods(), ['close', 'terminate', 'with']))
    for method in sys.argv[1:] or endings:
        report('in %s pool workers' % method, in_pool(method, endings[method]))
    report('at the end', dispositions())
    report_tracers()


if __name__ == '__main__':
    main()
