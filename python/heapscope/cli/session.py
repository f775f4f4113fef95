"""Tracing from now until the process ends, then a snapshot file and a summary.

Shared by ``heapscope run`` and the ``HEAPSCOPE_TRACE`` environment variable.
The snapshot is taken once, however the process ends:

- normally, by an uncaught exception or sys.exit(): from an atexit handler
  registered before the program runs, so it runs after the program's own
  handlers and after Python has joined the non-daemon threads;
- on SIGTERM or SIGHUP (when their default action, death, is in force): by
  the native signal watcher (src/cpython/signal_watcher.h), which writes it
  without Python, even while the program is inside long C code, and then
  dies from the same signal, so the parent sees the status it would have
  seen without heapscope. No Python-level handler is installed:
  ``signal.getsignal`` reports what the program set, and a handler the
  program sets replaces ours (the exit write then takes the snapshot);
- after Ctrl-C, ``run`` asks (``die_at_exit``) to die from SIGINT once the
  snapshot is written, as python does after printing the KeyboardInterrupt.

A forked child inherits the session: it writes its own snapshot only when
there is a per-process file name for it (``child_output``), never over its
parent's file, and only then watches signals (the fork starts it with
SIG_DFL). Children forked by multiprocessing end with os._exit(), which
skips atexit: for them the snapshot is taken by a multiprocessing finalizer.
"""

import atexit
import os
import signal
import sys

import heapscope
from heapscope import _heapscope as _native

from . import exit_summary, our_frames

# How long the exit write waits for a signal's snapshot being written (the
# watcher then ends the process) before going on without writing.
_WAIT_FOR_SIGNAL_WRITE = 30.0

# multiprocessing runs finalizers by decreasing priority: this one runs last.
_MP_FINALIZER_PRIORITY = -(1 << 30)


class TracingSession:
    """One process's tracing until exit.

    output is the snapshot path ('{pid}' replaced by the process id); top
    the number of lines printed at exit (0: only where the file went).
    child_output/child_top are the same for forked children (None: they
    write nothing).
    """

    def __init__(self, nframe, output, top, sample_interval=None,
                 child_output=None, child_top=0, label=None, entry_file=None,
                 tool='heapscope', native=False):
        self.nframe = nframe
        self.native = native  # trace the C allocator too (start(native=True))
        self.output = output
        self.top = top
        self.sample_interval = sample_interval
        self.child_output = child_output
        self.child_top = child_top
        self.label = label  # how the summary names the program (default: sys.argv)
        self.entry_file = entry_file  # the `heapscope` script running us, if any
        self.tool = tool  # how the summary tells to run `top`: as we were run
        self._pid = os.getpid()
        self._active = False
        self._finished = False
        self._exit_signal = None
        self._watching = False
        self._multiprocessing_hooked = False
        self._fork_hook_registered = False

    def start(self):
        """Start tracing and arrange for the snapshot at exit."""
        # Hooks first, tracing last: what the hooks allocate is not the program's.
        atexit.register(self._at_exit)
        self._watch_signals(self.output)
        if hasattr(os, 'register_at_fork') and not self._fork_hook_registered:
            # cannot be unregistered: the callbacks check _active
            os.register_at_fork(before=self._before_fork,
                                after_in_parent=self._after_fork_in_parent,
                                after_in_child=self._after_fork_in_child)
            self._fork_hook_registered = True
        self._active = True
        try:
            options = {}
            if self.sample_interval is not None:
                options['sample_interval'] = self.sample_interval
            if self.native:
                options['native'] = True
            heapscope.start(self.nframe, **options)
        except TypeError:
            self.cancel()
            raise RuntimeError('this heapscope cannot %s (no %s in heapscope.start)'
                               % (('trace native memory', 'native') if self.native else
                                  ('sample', 'sample_interval'))) from None
        except BaseException:
            self.cancel()
            raise

    def cancel(self):
        """Stop tracing and forget the exit snapshot (nothing is written)."""
        if not self._active:
            return
        self._active = False
        atexit.unregister(self._at_exit)
        if self._watching:
            _native._unwatch_signals()
            self._watching = False
        if heapscope.is_tracing():
            heapscope.stop()

    def die_at_exit(self, signum):
        """After the exit snapshot, die from this signal (as python does
        after an uncaught KeyboardInterrupt)."""
        self._exit_signal = signum

    def finish(self, when):
        """Take the snapshot, write it, print the summary. Once per process;
        never raises: a failure is one line on stderr."""
        if not self._active or self._finished:
            return
        self._finished = True
        pid = os.getpid()
        in_child = pid != self._pid
        template = self.child_output if in_child else self.output
        if template is None:
            return
        path = output_path(template, pid)
        # The signal watcher may be writing (then it ends the process).
        if not _native._begin_exit_write(_WAIT_FOR_SIGNAL_WRITE):
            return
        try:
            if not heapscope.is_tracing():
                exit_summary.say('tracing was stopped by the program before it ended; '
                                 'no snapshot written')
                return
            snapshot = heapscope.take_snapshot()
            # Nothing after this point is the program's memory.
            heapscope.stop()
            snapshot = our_frames.without_ours(snapshot, self.entry_file)
            write_snapshot(snapshot, path)
            exit_summary.show(snapshot, path, when, self.child_top if in_child else self.top,
                              self.label, self.tool)
        except KeyboardInterrupt:
            exit_summary.say('interrupted while writing the snapshot to %s' % path)
        except Exception as exc:
            exit_summary.say('could not write the snapshot to %s: %s'
                             % (path, getattr(exc, 'strerror', None) or exc))
        finally:
            _native._end_exit_write()

    def _at_exit(self):
        self.finish('at exit')
        if self._exit_signal is not None and os.getpid() == self._pid:
            _die_from(self._exit_signal)

    def _watch_signals(self, template):
        """Write the snapshot natively if SIGTERM or SIGHUP ends the process."""
        directory, outer_files = our_frames.native_plan(self.entry_file)
        try:
            _native._watch_signals(output_path(template, os.getpid()),
                                   self.label or exit_summary.command(), directory,
                                   outer_files)
            self._watching = True
        except RuntimeError as exc:
            exit_summary.say('no snapshot on SIGTERM or SIGHUP: %s' % exc)

    def _child_watches(self):
        return self._active and not self._finished and self.child_output is not None

    def _after_fork_in_child(self):
        # The child has no watcher: one with a file of its own starts its
        # own (a signal that came first was held for it), any other gets
        # SIG_DFL back (and a held signal, delivered).
        self._watching = False
        if self._child_watches():
            self._watch_signals(self.child_output)
        else:
            _native._unwatch_signals()

    def _after_fork_in_parent(self):
        if self._watching:
            _native._python_fork_ended()

    def _before_fork(self):
        if self._watching:
            _native._python_fork_begins(self._child_watches())
        # Children forked by multiprocessing leave through os._exit(), which
        # skips atexit; multiprocessing runs its finalizers just before.
        # Its after-fork hooks are the first code of ours to run there.
        if not self._active or self._multiprocessing_hooked:
            return
        util = sys.modules.get('multiprocessing.util')
        if util is not None:
            self._multiprocessing_hooked = True
            util.register_after_fork(self, _finish_in_multiprocessing_child)


def _finish_in_multiprocessing_child(session):
    util = sys.modules['multiprocessing.util']
    util.Finalize(None, session.finish, args=('at exit',), exitpriority=_MP_FINALIZER_PRIORITY)


def output_path(template, pid):
    """The snapshot path for a process: '{pid}' in template replaced."""
    return template.replace('{pid}', str(pid))


def write_snapshot(snapshot, path):
    """Write the file whole or not at all: a reader never sees half a file."""
    partial = '%s.%d.partial' % (path, os.getpid())
    try:
        snapshot.dump(partial)
        os.replace(partial, path)
    except BaseException:
        try:
            os.unlink(partial)
        except OSError:
            pass
        raise


def _die_from(signum):
    """Die from signum once the exit snapshot is written (Ctrl-C in ``run``)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    # Still here: the signal is blocked in this thread. Exit as a shell
    # reports a death by that signal.
    os._exit(128 + signum)
