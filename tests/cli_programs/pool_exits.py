"""Ends multiprocessing pools every way, many times, and checks that each
worker left its snapshot (tests/test_signals_harmless.py runs it).

    python pool_exits.py START_METHOD RUNS SECONDS_PER_RUN

Run i makes a Pool(3) with that start method, gives it work, and ends it the
i-th of three ways: leaving a ``with`` block (Pool.__exit__ calls
terminate()), close() then join(), terminate() then join(). Under
HEAPSCOPE_TRACE with '{pid}' in HEAPSCOPE_OUTPUT, each worker's file must
then be there and load whole (with spawn, each worker that ran a task: one
ended while its interpreter was still starting had not started tracing,
and dies as it would untraced); it is removed before the next run. A run that
takes longer than SECONDS_PER_RUN ends the process with status 1 and every
thread's stack on stderr (faulthandler), so a hang fails quickly.
"""

import faulthandler
import multiprocessing
import os
import sys

ENDINGS = ('with', 'close', 'terminate')


def square(x):
    return os.getpid(), x * x


def run_pool(context, ending):
    """The pids of the pool's workers and of those that ran a task, once
    the pool is ended and they are gone."""
    if ending == 'with':
        with context.Pool(3) as pool:
            pids = [worker.pid for worker in pool._pool]
            results = pool.map(square, range(6))
    else:
        pool = context.Pool(3)
        pids = [worker.pid for worker in pool._pool]
        results = pool.map(square, range(6))
        if ending == 'close':
            pool.close()
        else:
            pool.terminate()
        pool.join()
    assert [square for _, square in results] == [x * x for x in range(6)]
    return pids, {pid for pid, _ in results}


def check_snapshots(template, pids, ending):
    from heapscope import _heapscope

    for pid in pids:
        path = template.replace('{pid}', str(pid))
        if not os.path.exists(path):
            sys.exit('no snapshot from worker %d after %s: %s' % (pid, ending, path))
        with open(path, 'rb') as snapshot:
            _heapscope._core_load(snapshot.read())  # ValueError unless whole
        os.unlink(path)


def main():
    method, runs, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    context = multiprocessing.get_context(method)
    template = os.environ.get('HEAPSCOPE_OUTPUT', '')
    traced = os.environ.get('HEAPSCOPE_TRACE') and '{pid}' in template
    for run in range(runs):
        ending = ENDINGS[run % len(ENDINGS)]
        faulthandler.dump_traceback_later(seconds, exit=True)
        pids, worked = run_pool(context, ending)
        faulthandler.cancel_dump_traceback_later()
        if traced:
            check_snapshots(template, worked if method == 'spawn' else pids, ending)
    print('ran %d' % runs)


if __name__ == '__main__':
    main()
