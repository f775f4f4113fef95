"""The entry point: parse the command line, run one subcommand, and turn
every failure of ours into one line on stderr and an exit status."""

import importlib
import os
import sys

from .errors import INTERNAL_ERROR, CliError
from .parser import build_parser
from .run_arguments import split_run_arguments

# Set to see the traceback behind an "internal error" line.
DEBUG_VARIABLE = 'HEAPSCOPE_DEBUG'


def main(argv=None):
    """Run ``heapscope ARGS``; return the exit status (``run``: the program's)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _stop_startup_tracing()
    try:
        program = None
        if argv[:1] == ['run']:
            # Everything from the script on belongs to the program, including
            # options that look like ours: argparse must not see it.
            options, program = split_run_arguments(argv[1:])
            argv = ['run'] + options
        args = build_parser().parse_args(argv)
        command = importlib.import_module('%s.%s' % (__package__, args.command))
        if args.command == 'run':
            return command.main(args, program)
        return command.main(args)
    except CliError as exc:
        _report('heapscope: error: %s' % exc.message)
        return exc.status
    except KeyboardInterrupt:
        # top/diff/report/export interrupted while loading or rendering
        _report('heapscope: interrupted')
        return 130
    except BrokenPipeError:
        # `heapscope top x | head`: the reader is gone; nothing more to say.
        _silence_stdout()
        return 1
    except Exception as exc:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        _report('heapscope: internal error: %s: %s (set %s=1 to see the traceback)'
                % (type(exc).__name__, exc, DEBUG_VARIABLE))
        return INTERNAL_ERROR


def _stop_startup_tracing():
    """HEAPSCOPE_TRACE set in the environment traced this very process from
    startup: the command line is not the program to trace (``run`` starts
    its own session, with its own options)."""
    startup = sys.modules.get('_heapscope_startup')
    if startup is not None:
        startup.cancel()


def _report(line):
    try:
        sys.stderr.write(line + '\n')
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _silence_stdout():
    # Python would complain again when flushing stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
