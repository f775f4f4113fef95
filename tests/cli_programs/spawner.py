"""Starts Python children: one with subprocess, one forked by
multiprocessing. Each keeps a block of a size of its own, so
tests/test_cli_run.py and tests/test_startup_env.py can tell their
snapshots apart."""

import multiprocessing
import subprocess
import sys

PARENT = bytearray(111_000)  # the parent's block

CHILD_CODE = 'kept = bytearray(222_000)  # the subprocess child block'


def forked_child():
    global FORKED
    FORKED = bytearray(333_000)  # the forked child's block


if __name__ == '__main__':
    subprocess.run([sys.executable, '-c', CHILD_CODE], check=True)
    if sys.platform.startswith('linux'):
        process = multiprocessing.get_context('fork').Process(target=forked_child)
        process.start()
        process.join()
        if process.exitcode != 0:
            sys.exit('forked child failed: %s' % process.exitcode)
    print('spawned', flush=True)
