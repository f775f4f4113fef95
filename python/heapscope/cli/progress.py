"""A spinner on stderr for work that takes more than a moment (loading and
grouping a big snapshot), only when stderr is a terminal.

It appears after ``DELAY`` seconds, so quick commands never flash it, and is
erased when the work is done. Loading and grouping run in C++ with the GIL
released, so the spinner's thread keeps turning meanwhile; reading a
CPython pickle holds the GIL and the spinner pauses until it is read.
"""

import sys
import threading

DELAY = 0.5


class Progress:
    """``with Progress() as progress: progress.step('Loading x'); ...``"""

    def __init__(self, stream=None):
        self._stream = stream if stream is not None else sys.stderr
        self._message = ''
        self._status = None
        self._timer = None
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self):
        if _is_terminal(self._stream):
            self._timer = threading.Timer(DELAY, self._show)
            self._timer.daemon = True
            self._timer.start()
        return self

    def step(self, message):
        with self._lock:
            self._message = message
            if self._status is not None:
                self._status.update(message)

    def __exit__(self, *exc_info):
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            if self._status is not None:
                self._status.stop()
        return False

    def _show(self):
        from rich.console import Console

        with self._lock:
            if self._closed:
                return
            console = Console(file=self._stream, highlight=False)
            self._status = console.status(self._message or 'Working')
            self._status.start()


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
