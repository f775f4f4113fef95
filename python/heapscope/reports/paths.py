"""How reports show file names (no dependency: the exit summary of a traced
process uses it without loading the terminal renderer)."""

import os


def display_path(filename):
    """A filename as shown: relative when it is under the current directory."""
    if not os.path.isabs(filename):
        return filename
    try:
        relative = os.path.relpath(filename)
    except ValueError:  # another drive (Windows)
        return filename
    return filename if relative.startswith(os.pardir) else relative
