"""Keeps a known allocation, then ends the way sys.argv[1] says.

tests/test_cli_run.py runs it under `python` and under `heapscope run`
and compares how each ends (exit status, output) and what the snapshot
holds.
"""

import atexit
import sys
import threading
import time

KEPT = [bytearray(1000) for _ in range(200)]  # kept until exit
LATE = []


def fail():
    raise ValueError('the program failed')


def allocate_late():
    time.sleep(0.1)  # usually still running when the main thread ends
    LATE.append(bytearray(300_000))  # allocated by a thread


def allocate_at_exit():
    LATE.append(bytearray(200_000))  # allocated by an atexit handler


mode = sys.argv[1]
print('started', flush=True)
if mode == 'exit-status':
    sys.exit(3)
elif mode == 'exit-message':
    sys.exit('stopped: bad input')
elif mode == 'exception':
    fail()
elif mode == 'interrupt':
    raise KeyboardInterrupt
elif mode == 'wait':
    print('ready', flush=True)
    time.sleep(60)
elif mode == 'thread':
    threading.Thread(target=allocate_late).start()
elif mode == 'atexit':
    atexit.register(allocate_at_exit)
elif mode == 'chdir':
    import os
    os.chdir(sys.argv[2])
print('done', flush=True)
