"""The stack as Python itself shows it, for the tests that check heapscope's
tracebacks and total_nframe frame by frame against it."""


def python_depth(frame):
    """Frames from `frame` to the bottom of its stack: what total_nframe counts."""
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def python_lines(frame, limit):
    """(filename, line) of up to `limit` frames from `frame` down."""
    lines = []
    while frame is not None and len(lines) < limit:
        lines.append((frame.f_code.co_filename, frame.f_lineno))
        frame = frame.f_back
    return tuple(lines)
