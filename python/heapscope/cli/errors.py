"""The errors the command line reports as one line, and its exit statuses."""

import pickle

# Exit status of a problem with the command line itself: a bad option, an
# input file that cannot be read, an output that cannot be written. Python
# exits with 2 for a script it cannot open, argparse for a bad option.
COMMAND_LINE_ERROR = 2

# Exit status when heapscope itself fails (a bug): still one line, no traceback.
INTERNAL_ERROR = 1


class CliError(Exception):
    """A problem with what was asked; shown as ``heapscope: error: <message>``."""

    def __init__(self, message, status=COMMAND_LINE_ERROR):
        super().__init__(message)
        self.message = message
        self.status = status


def file_error(path, exc):
    """The CliError for a file that could not be read or written."""
    if isinstance(exc, pickle.UnpicklingError):
        # SnapshotFileError: its message already names the file and the problem.
        return CliError(str(exc))
    if isinstance(exc, OSError) and exc.strerror:
        return CliError('%s: %s' % (path, exc.strerror))
    return CliError('%s: %s' % (path, exc))
