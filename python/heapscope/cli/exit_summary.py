"""What a traced process prints on stderr when it ends: its top lines and
where its snapshot went.

Written to the process's original stderr (``sys.__stderr__``): the program
may have replaced ``sys.stderr`` with something of its own by then.
"""

import os
import sys

# How much of the program's command line names it in the summary.
_MAX_COMMAND_LENGTH = 60


def say(message):
    """One line, ``heapscope: <message>``."""
    stream = _stream()
    if stream is None:
        return
    try:
        stream.write('heapscope: %s\n' % message)
        stream.flush()
    except (OSError, ValueError):
        pass  # stderr closed by the program: nowhere to say it


def show(snapshot, path, when, top, label=None, tool='heapscope'):
    """The top ``top`` lines of the snapshot, then the file; only the file
    when top is 0 or nothing was live."""
    stream = _stream()
    if stream is None:
        return
    from ..reports.paths import display_path

    shown = display_path(path)
    try:
        # The terminal renderer (rich) is loaded only to print a table: a
        # quiet process (top 0, as traced children are) prints one plain
        # line and ends without paying for the import.
        stats = snapshot.statistics('lineno') if top else []
        if stats:
            _show_top(stream, stats, shown, when, top, label, tool)
        else:
            stream.write('heapscope: pid %d (%s): snapshot written to %s\n'
                         % (os.getpid(), label or command(), shown))
        stream.flush()
    except (OSError, ValueError):
        pass


def _show_top(stream, stats, shown, when, top, label, tool):
    # Imported only now: a traced process that never ends pays nothing.
    from .._frames import _format_size
    from ..reports import terminal

    console = terminal.make_console(stream)
    shown_lines = min(top, len(stats))
    terminal.print_line(console, 'heapscope: %s in %s live %s of pid %d (%s), %s:' % (
        _format_size(sum(stat.size for stat in stats), False),
        terminal.blocks(sum(stat.count for stat in stats)), when, os.getpid(),
        label or command(),
        'top line' if shown_lines == 1 else 'top %d lines' % shown_lines))
    terminal.print_statistics(console, stats, 'lineno', top)
    terminal.print_line(console, 'heapscope: snapshot written to %s; more with: '
                        '%s top %s' % (shown, tool, _quoted(shown)), '')


def _stream():
    stream = sys.__stderr__
    return stream if stream is not None and not stream.closed else None


def command():
    """How the summary names the program: its command line, shortened."""
    command = ' '.join(sys.argv) if sys.argv and sys.argv != [''] else 'python'
    if len(command) > _MAX_COMMAND_LENGTH:
        command = command[:_MAX_COMMAND_LENGTH - 3] + '...'
    return command


def _quoted(path):
    import shlex
    return shlex.quote(path)
