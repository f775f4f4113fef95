"""The command line's options: one argparse sub-parser per subcommand.

Parsing only: each subcommand's module (``heapscope.cli.<command>``) does
the work, imported once the command line is known to be valid, so that
``--help`` and option errors stay fast.
"""

import argparse
import os
import re
import sys

from ..export import FORMATS as EXPORT_FORMATS  # light: the formats load on use
from .errors import COMMAND_LINE_ERROR

# tracemalloc's own bounds on nframe (start() raises outside them)
MIN_NFRAME = 1
MAX_NFRAME = 65535

DEFAULT_TOP = 10
DEFAULT_OUTPUT = 'heapscope.{pid}.hsnap'
KEY_TYPES = ('lineno', 'filename', 'traceback')

_UNITS = {'': 1, 'b': 1, 'k': 1024, 'kb': 1024, 'kib': 1024,
          'm': 1024 ** 2, 'mb': 1024 ** 2, 'mib': 1024 ** 2,
          'g': 1024 ** 3, 'gb': 1024 ** 3, 'gib': 1024 ** 3}


def program_name():
    """How the user invoked us, for usage lines: the script or ``python -m``."""
    if os.path.basename(sys.argv[0] or '') in ('__main__.py', '-m', '-c'):
        return 'python -m heapscope'
    return 'heapscope'


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (argparse prints
    the whole usage first), pointing at --help for the rest."""

    def error(self, message):
        self.exit(COMMAND_LINE_ERROR, 'heapscope: error: %s (see %s --help)\n'
                  % (message, self.prog))


def nframe(text):
    """-n: a number of frames, bounded as tracemalloc.start() bounds it."""
    value = _integer(text)
    if not MIN_NFRAME <= value <= MAX_NFRAME:
        raise argparse.ArgumentTypeError(
            'the number of frames must be in range [%d; %d], not %d'
            % (MIN_NFRAME, MAX_NFRAME, value))
    return value


def count(text):
    """--top, --limit: 0 or more."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError('expected 0 or more, not %d' % value)
    return value


def domain(text):
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError('a domain is 0 or more, not %d' % value)
    return value


def byte_count(text):
    """--sample-interval: bytes, with an optional binary unit (512KiB, 1M)."""
    match = re.fullmatch(r'\s*(\d+)\s*([a-zA-Z]*)\s*', text)
    unit = match.group(2).lower() if match else None
    if unit not in _UNITS:
        raise argparse.ArgumentTypeError(
            'expected a number of bytes such as 524288, 512KiB or 1MiB, not %r' % text)
    value = int(match.group(1)) * _UNITS[unit]
    if value < 1:
        raise argparse.ArgumentTypeError('the sample interval must be at least 1 byte')
    return value


def _integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('expected an integer, not %r' % text) from None


def build_parser():
    prog = program_name()
    parser = OneLineErrorParser(
        prog=prog, allow_abbrev=False,
        description='Trace the memory a Python program allocates, and read the snapshots.',
        epilog="Run '%s COMMAND --help' for a command's options." % prog)
    parser.add_argument('--version', action='version', version=_version())
    commands = parser.add_subparsers(dest='command', metavar='COMMAND',
                                     parser_class=OneLineErrorParser)
    commands.required = True
    _add_run(commands)
    _add_top(commands)
    _add_diff(commands)
    _add_report(commands)
    _add_export(commands)
    return parser


def _version():
    from .. import __version__  # the package is already imported: no cost
    return 'heapscope %s' % __version__


def _add_run(commands):
    run = commands.add_parser(
        'run', allow_abbrev=False, help='run a Python program with tracing on from its first line',
        usage='%(prog)s [options] script.py [args...]\n'
              '       %(prog)s [options] -m module [args...]',
        description='Run a script or module as `python` would, with heapscope tracing '
                    'from its first line. When it ends (normally, by an exception, '
                    'sys.exit(), Ctrl-C or SIGTERM) the snapshot is written to a file '
                    'and its top lines are printed on stderr. Options go before the '
                    'script; everything after it is the program\'s own arguments.')
    run.add_argument('-m', dest='module', metavar='MODULE',
                     help='run a library module as a script, like python -m')
    run.add_argument('-n', '--nframe', type=nframe, default=MIN_NFRAME, metavar='NFRAME',
                     help='frames to keep per traceback, %d to %d (default: %d), '
                          'as in -X tracemalloc=NFRAME' % (MIN_NFRAME, MAX_NFRAME, MIN_NFRAME))
    run.add_argument('-o', '--output', default=DEFAULT_OUTPUT, metavar='FILE',
                     help="snapshot file; '{pid}' is replaced by the process id "
                          '(default: %s)' % DEFAULT_OUTPUT.replace('%', '%%'))
    run.add_argument('--top', type=count, default=DEFAULT_TOP, metavar='N',
                     help='lines printed at exit; 0 prints only the file name '
                          '(default: %d)' % DEFAULT_TOP)
    run.add_argument('--sample-interval', type=byte_count, metavar='BYTES',
                     help='sample allocations about every BYTES bytes (e.g. 512KiB) '
                          'instead of tracing each one')
    run.add_argument('--native', action='store_true',
                     help='trace what extension modules and the libraries under them '
                          'allocate from the C allocator too, in the native domain '
                          '(see the README, "Native memory")')
    run.add_argument('--trace-children', action='store_true',
                     help='trace the Python processes the program starts too, each '
                          'writing its own snapshot (needs heapscope installed with pip)')


def _add_analysis_options(parser, what):
    parser.add_argument('--key', choices=KEY_TYPES, default='lineno',
                        help='group %s by line, file or whole traceback (default: lineno)' % what)
    parser.add_argument('--cumulative', action='store_true',
                        help='count a block in every frame of its traceback, '
                             'not only where it was allocated')
    parser.add_argument('--limit', type=count, default=DEFAULT_TOP, metavar='N',
                        help='show the first N entries, 0 for all (default: %d)' % DEFAULT_TOP)
    _add_filter_options(parser)
    parser.add_argument('--json', action='store_true',
                        help='print JSON instead of a table (see docs/cli.md)')


def _add_filter_options(parser):
    parser.add_argument('--include', action='append', default=[], metavar='PATTERN',
                        help='keep only blocks allocated in files matching this '
                             'fnmatch pattern (repeatable)')
    parser.add_argument('--exclude', action='append', default=[], metavar='PATTERN',
                        help='drop blocks allocated in files matching this pattern (repeatable)')
    parser.add_argument('--all-frames', action='store_true',
                        help='match --include/--exclude against every frame of a '
                             'traceback, not only the most recent')
    parser.add_argument('--domain', action='append', type=domain, default=[], metavar='N',
                        help='keep only blocks of this address space (0 is Python; repeatable)')


def _add_top(commands):
    top = commands.add_parser('top', allow_abbrev=False,
                              help='the lines (files, tracebacks) holding the most memory',
                              description='Show where the memory of a snapshot was allocated, '
                                          'biggest first.')
    top.add_argument('file', metavar='FILE', help='a snapshot (heapscope or tracemalloc pickle)')
    _add_analysis_options(top, 'blocks')


def _add_diff(commands):
    diff = commands.add_parser('diff', allow_abbrev=False,
                               help='what changed between two snapshots',
                               description='Compare two snapshots of one program: the lines '
                                           'whose memory changed the most come first.')
    diff.add_argument('old', metavar='OLD', help='the earlier snapshot')
    diff.add_argument('new', metavar='NEW', help='the later snapshot')
    _add_analysis_options(diff, 'changes')


def _add_report(commands):
    report = commands.add_parser('report', allow_abbrev=False,
                                 help='a self-contained HTML report of a snapshot',
                                 description='Write an HTML page (no network needed to view '
                                             'it) with a flame graph and sortable tables.')
    report.add_argument('file', metavar='FILE', help='the snapshot to report on')
    report.add_argument('--diff', metavar='OLD', help='an earlier snapshot to compare with')
    report.add_argument('-o', '--output', required=True, metavar='OUT',
                        help='the HTML file to write')
    report.add_argument('--title', help="the page's heading (default: 'Memory report', "
                                        "or 'Memory growth' with --diff)")
    _add_filter_options(report)


def _add_export(commands):
    export = commands.add_parser('export', allow_abbrev=False,
                                 help='convert a snapshot for pprof, flame graph tools '
                                      'or speedscope',
                                 description='Write a snapshot in another tool\'s format.')
    export.add_argument('file', metavar='FILE', help='the snapshot to export')
    export.add_argument('--format', required=True, choices=EXPORT_FORMATS,
                        help='pprof (protobuf, gzipped), collapsed (flamegraph.pl, one '
                             'stack per line) or speedscope (JSON)')
    export.add_argument('-o', '--output', required=True, metavar='OUT', help='the file to write')
    _add_filter_options(export)
