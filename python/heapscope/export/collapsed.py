"""The snapshot as folded stacks, the input of flamegraph.pl and friends.

One line per traceback: its frames outermost first, joined by ``;``, a
space, then its size in bytes. A frame reads ``function (file:line)``.
``%``, ``;`` and line breaks inside a frame are percent-encoded (``%25``,
``%3B``, ``%0A``, ``%0D``) so that no name can split a frame or a line.
"""

from ._stacks import FrameNames, stacks

_ESCAPES = {'%': '%25', ';': '%3B', '\n': '%0A', '\r': '%0D'}
_ESCAPE_TABLE = str.maketrans(_ESCAPES)


def render(snapshot):
    names = FrameNames()
    labels = {}
    lines = []
    for stack in stacks(snapshot):
        parts = []
        for frame in reversed(stack.frames):  # outermost first
            label = labels.get(frame)
            if label is None:
                label = labels[frame] = escape(
                    '%s (%s:%d)' % (names.name(frame), frame[0], frame[1]))
            parts.append(label)
        lines.append('%s %d\n' % (';'.join(parts), stack.size))
    # surrogateescape: a filename that was not valid UTF-8 comes back as
    # the bytes it was made of.
    return ''.join(lines).encode('utf-8', 'surrogateescape')


def escape(label):
    return label.translate(_ESCAPE_TABLE)
