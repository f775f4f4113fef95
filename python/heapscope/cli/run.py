"""``heapscope run``: run a program as python would, traced from its first line."""

import os
import site
import sys

from . import environment, program as programs
from .errors import CliError, file_error
from .parser import program_name
from .session import TracingSession, output_path

# Installed by pip beside the package; starts tracing in new Python processes.
STARTUP_HOOK = 'heapscope.pth'


def main(args, program):
    if program is None:
        raise CliError('run: expected the script to run, or -m module')
    # Absolute now: the program may change directory before it ends.
    output = os.path.abspath(args.output)
    _check_writable(output_path(output, os.getpid()))
    if program.kind == 'script':
        programs.check_script(program.target)
    child_output = None
    if args.trace_children:
        child_output = environment.children_template(output)
        _trace_children(args, child_output)
    session = TracingSession(args.nframe, output, args.top,
                             sample_interval=args.sample_interval,
                             child_output=child_output, child_top=0,
                             label=_label(program), entry_file=_entry_file(),
                             tool=program_name(), native=args.native)
    programs.prepare(program)
    try:
        code = programs.compile_script(program)
    except (SyntaxError, ValueError) as exc:  # ValueError: null bytes in the source
        programs.print_uncaught(exc)
        return 1
    except OSError as exc:  # the script vanished since check_script
        raise file_error(program.target, exc) from None
    try:
        session.start()
    except RuntimeError as exc:
        raise CliError('%s: %s' % ('--native' if args.native else '--sample-interval',
                                   exc)) from None
    try:
        status = programs.run(program, code)
    except programs.ProgramNotFound as exc:
        session.cancel()  # it never ran: no snapshot
        raise CliError(str(exc), status=1) from None
    if status < 0:  # died from a signal (Ctrl-C): so do we, after the snapshot
        session.die_at_exit(-status)
        return 128 - status
    return status


def _check_writable(path):
    """Fail now rather than after a long run with nowhere to write."""
    directory = os.path.dirname(path)
    if os.path.isdir(path):
        raise CliError('-o %s: is a directory' % path)
    if not os.path.isdir(directory):
        raise CliError('-o %s: no such directory: %s' % (path, directory))
    if not os.access(directory, os.W_OK):
        raise file_error(path, PermissionError(13, 'cannot write in %s' % directory))


def _trace_children(args, child_output):
    os.environ.update(environment.for_children(args.nframe, child_output,
                                                   args.sample_interval, args.native))
    if not _startup_hook_installed():
        sys.stderr.write('heapscope: warning: --trace-children needs heapscope installed '
                         'with pip (%s is not in site-packages): child processes will '
                         'not be traced\n' % STARTUP_HOOK)


def _startup_hook_installed():
    directories = list(getattr(site, 'getsitepackages', lambda: [])())
    if getattr(site, 'ENABLE_USER_SITE', False):
        directories.append(site.getusersitepackages())
    return any(os.path.isfile(os.path.join(d, STARTUP_HOOK)) for d in directories)


def _label(program):
    """The program as the user typed it, for the exit summary."""
    words = (['-m'] if program.kind == 'module' else []) + [program.target] + list(program.argv)
    return ' '.join(words)


def _entry_file():
    """The script python started to run us (the `heapscope` console script,
    or heapscope/__main__.py), whose frame sits below the program's."""
    main = sys.modules.get('__main__')
    path = getattr(main, '__file__', None)
    return os.path.abspath(path) if path else None
