"""Split ``heapscope run``'s arguments into ours and the program's.

``python`` stops reading options at the script (or at ``-m module``): what
follows is the program's ``sys.argv``, even ``-n 5`` or ``--help``. argparse
cannot be told that reliably, so the split happens here first and argparse
only ever sees our options.
"""

from collections import namedtuple

from .errors import CliError

# What to run: kind is 'script' (a path, or '-' for standard input) or
# 'module'; argv is the program's arguments after it.
Program = namedtuple('Program', 'kind target argv')

# run's options that take a value (see parser._add_run); any other option
# is a flag, and an unknown one is left for argparse to reject.
_SHORT_WITH_VALUE = ('-n', '-o')
_LONG_WITH_VALUE = ('--nframe', '--output', '--top', '--sample-interval')


def split_run_arguments(args):
    """(our options, Program or None when only options were given)."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == '--':
            rest = args[index + 1:]
            if not rest:
                raise CliError("run: '--' must be followed by the script to run")
            return args[:index], Program('script', rest[0], rest[1:])
        if arg == '-m' or (arg.startswith('-m') and not arg.startswith('--')):
            # python accepts both '-m module' and '-mmodule'
            if arg == '-m':
                if index + 1 >= len(args):
                    raise CliError('run: argument -m: expected a module name')
                module, after = args[index + 1], index + 2
            else:
                module, after = arg[2:], index + 1
            return args[:index], Program('module', module, args[after:])
        if arg == '-' or not arg.startswith('-'):
            return args[:index], Program('script', arg, args[index + 1:])
        index += 2 if _takes_separate_value(arg) else 1
    return args, None


def _takes_separate_value(arg):
    if arg in _SHORT_WITH_VALUE or arg in _LONG_WITH_VALUE:
        return True
    # '-n5', '--top=3' carry their value; flags take none.
    return False
