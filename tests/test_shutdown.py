"""heapscope at interpreter shutdown: a snapshot taken from a finalizer, and
heapscope objects still held by threads the interpreter never joins. One
subprocess per scenario: shutdown happens once per process."""

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip('heapscope')

TIMEOUT = 60


def run(source):
    return subprocess.run([sys.executable, '-c', textwrap.dedent(source)],
                          capture_output=True, text=True, timeout=TIMEOUT)


@pytest.mark.parametrize('holder', ['global', 'cycle'])
def test_take_snapshot_from_a_finalizer_at_shutdown(holder):
    # The finalizer runs while the interpreter tears modules down: from the
    # clearing of __main__ (a global), or from the last collection (a cycle).
    result = run('''
        import heapscope
        heapscope.start()

        class Leaky:
            def __del__(self):
                snapshot = heapscope.take_snapshot()
                stats = snapshot.statistics('lineno')
                print('snapshot', len(snapshot.traces) > 0, len(stats) > 0,
                      snapshot.traceback_limit)

        keep = [bytearray(100) for _ in range(10)]
        if %r == 'cycle':
            leaky = Leaky()
            leaky.me = leaky
            del leaky
        else:
            leaky = Leaky()
    ''' % holder)
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'snapshot True True 1\n', (result.stdout, result.stderr)
    assert result.stderr == ''


@pytest.mark.parametrize('held', ['snapshot', 'statistics', 'traces', 'sampled'])
def test_no_leak_report_when_a_daemon_thread_holds_heapscope_objects(held):
    result = run('''
        import threading, time
        import heapscope

        heapscope.start(5, **({'sample_interval': 4096} if %r == 'sampled' else {}))
        snapshot = heapscope.take_snapshot()
        heapscope.stop()
        held = {'snapshot': snapshot, 'sampled': snapshot,
                'statistics': snapshot.statistics('lineno'),
                'traces': snapshot.traces._traces}[%r]
        started = threading.Event()

        def hold(value=held):
            started.set()
            time.sleep(3600)

        threading.Thread(target=hold, daemon=True).start()
        started.wait()
        del snapshot, held
        print('exiting')
    ''' % (held, held))
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'exiting\n'
    assert 'leaked' not in result.stderr and result.stderr == '', result.stderr


def test_a_raw_thread_holding_a_snapshot_leaves_no_leak_report():
    # _thread threads are not in threading.enumerate()
    result = run('''
        import _thread, time
        import heapscope

        heapscope.start()
        snapshot = heapscope.take_snapshot()
        heapscope.stop()
        ready = _thread.allocate_lock()
        ready.acquire()

        def hold(value):
            ready.release()
            time.sleep(3600)

        _thread.start_new_thread(hold, (snapshot,))
        ready.acquire()
        del snapshot
    ''')
    assert result.returncode == 0, result.stderr
    assert result.stderr == '', result.stderr
