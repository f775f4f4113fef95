"""Run a script or a module as ``python`` runs it, in this process.

What ``python script.py`` / ``python -m module`` / ``python dir_or.zip`` set
up is reproduced: ``sys.argv``, ``sys.path[0]``, a fresh ``__main__`` module
that stays in ``sys.modules`` until exit (its ``__file__`` absolute, as
since Python 3.9), the exit status, and an uncaught exception's traceback
printed by ``sys.excepthook`` - with heapscope's and runpy's frames taken off
its top, so the program's traceback is what ``python`` would show.

runpy's public ``run_module``/``run_path`` are not used to run the code:
they put the previous ``__main__`` back when the program returns, so its
globals would be freed before the exit snapshot. The module lookup is
runpy's own (``_get_module_details``, the function ``python -m`` uses,
unchanged from 3.9 to 3.13), so its rules and messages are python's.
"""

import builtins
import importlib.machinery
import io
import os
import runpy
import signal
import sys
import types
import zipfile

from .errors import CliError

# Leading traceback entries in these files are ours, not the program's.
_CLI_DIR = os.path.dirname(os.path.abspath(__file__))
_RUNPY_FILES = {runpy.__file__, '<frozen runpy>'}


class ProgramNotFound(Exception):
    """The module or the __main__ of a directory does not exist: python's
    one line, exit status 1, and no snapshot (the program never ran)."""


def check_script(path):
    """Fail as python does when the script cannot be opened (status 2)."""
    if path == '-':
        return
    try:
        with open(path, 'rb'):
            pass
    except IsADirectoryError:
        pass  # a directory with a __main__.py: run() says if it has none
    except OSError as exc:
        raise CliError("can't open file %r: [Errno %d] %s"
                       % (os.path.abspath(path), exc.errno, exc.strerror)) from None


def prepare(program):
    """Set sys.argv and sys.path[0] as python would for this program."""
    if program.kind == 'module':
        # python sets argv[0] to '-m' while it looks the module up, then
        # to the module's file (see run()).
        sys.argv[:] = ['-m'] + list(program.argv)
        first_path = os.getcwd()
    else:
        sys.argv[:] = [program.target] + list(program.argv)
        if program.target == '-':
            first_path = ''
        elif _is_script_file(program.target):
            first_path = os.path.dirname(os.path.realpath(program.target))
        else:  # a directory or a zip file: __main__ is looked up in it
            first_path = os.path.abspath(program.target)
    # sys.path[0] is where `heapscope` / `python -m heapscope` was started
    # from; the program expects its own directory there instead. With -P
    # (safe_path, 3.11+) python adds nothing, so neither do we - except the
    # directory or zip file, which python always puts first.
    safe_path = getattr(sys.flags, 'safe_path', False)
    if sys.path and not safe_path:
        del sys.path[0]
    if not safe_path or (program.kind == 'script' and not _is_script_file(program.target)
                         and program.target != '-'):
        sys.path.insert(0, first_path)


def compile_script(program):
    """The code of a script file or of standard input, compiled before
    tracing starts so that the compiler's memory is not reported as the
    program's. None for modules, directories and zip files.

    SyntaxError (and ValueError for null bytes) propagate: the caller
    prints them as python does, with status 1.
    """
    if program.kind != 'script':
        return None
    if program.target == '-':
        source, filename = sys.stdin.read(), '<stdin>'
    elif _is_script_file(program.target):
        with io.open_code(program.target) as source_file:
            source = source_file.read()
        filename = os.path.abspath(program.target)
    else:
        return None
    return compile(source, filename, 'exec', dont_inherit=True)


def run(program, code=None):
    """Run the program (``code``: compile_script()'s result); return its exit
    status, or minus the signal it must die from. SystemExit is left to
    propagate so Python reports it exactly as for `python script.py`.

    Raises ProgramNotFound when the module, or a directory's __main__, does
    not exist. It is looked up with tracing on, as under python -m: the
    parent packages it imports are the program's memory.
    """
    try:
        if code is not None:
            _run_as_main(code, None)
        elif program.kind == 'module':
            _, spec, module_code = runpy._get_module_details(program.target, ProgramNotFound)
            sys.argv[0] = spec.origin
            _run_as_main(module_code, spec)
        else:
            _, spec, module_code = _main_of_directory(program.target)
            _run_as_main(module_code, spec)
    except (SystemExit, ProgramNotFound):
        raise
    except KeyboardInterrupt as exc:
        print_uncaught(exc)
        return -signal.SIGINT  # python dies from SIGINT after printing it
    except BaseException as exc:
        print_uncaught(exc)
        return 1
    return 0


def print_uncaught(exc):
    """Print the exception as python prints an uncaught one, via sys.excepthook."""
    tb = exc.__traceback__
    while tb is not None and _is_ours(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    exc.__traceback__ = tb
    # Unlike python, sys.last_traceback is not kept: it would keep our
    # frames alive into the exit snapshot, and nothing here is interactive.
    sys.excepthook(type(exc), exc, tb)


def _is_script_file(path):
    return os.path.isfile(path) and not zipfile.is_zipfile(path)


def _main_of_directory(path):
    """The __main__ module of a directory or zip file (prepare() put it in
    sys.path[0]), looked up by runpy as python does."""
    saved = sys.modules.pop('__main__')
    try:
        return runpy._get_module_details('__main__')
    except ImportError as exc:
        if '__main__' in str(exc):
            raise ProgramNotFound("can't find '__main__' module in %r"
                                  % os.path.abspath(path)) from None
        raise
    finally:
        sys.modules['__main__'] = saved


def _run_as_main(code, spec):
    """Run code as the __main__ module, which stays in sys.modules: pickle,
    multiprocessing and the program's atexit handlers look it up there."""
    main = types.ModuleType('__main__')
    if spec is not None:
        main.__dict__.update(__file__=spec.origin, __cached__=spec.cached,
                             __loader__=spec.loader, __package__=spec.parent)
    elif code.co_filename != '<stdin>':
        main.__dict__.update(
            __file__=code.co_filename, __cached__=None,
            __loader__=importlib.machinery.SourceFileLoader('__main__', code.co_filename))
    main.__dict__.update(__builtins__=builtins, __spec__=spec)
    sys.modules['__main__'] = main
    exec(code, main.__dict__)


def _is_ours(filename):
    return filename in _RUNPY_FILES or os.path.dirname(os.path.abspath(filename)) == _CLI_DIR
