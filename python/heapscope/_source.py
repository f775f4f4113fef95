"""Source text and function names for the frames of a traceback.

A traced frame is only ``(filename, lineno)``: the reports and exports want the
line's text and the name of the function it belongs to. Both are read from the
source file as it is now (through ``linecache``), so a file edited since the
snapshot was taken gives today's text; a file that cannot be read or parsed
gives ``''`` for the line and a fallback name (see ``function_name``), never an
exception.

``function_name`` parses each file once with ``ast`` and keeps, per file, the
sorted line numbers where the enclosing scope changes; a lookup is one bisect.
"""

import ast
import bisect
import functools
import linecache
import os.path
import warnings

__all__ = ['function_name', 'function_scope', 'source_line']

MODULE_SCOPE = '<module>'
_MODULE = (MODULE_SCOPE, 0)

# Files whose scope tables are kept; a snapshot rarely spans more, and the
# tables are small (two entries per def or class).
_CACHED_FILES = 512

_SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def source_line(filename, lineno):
    """The stripped text of line ``lineno`` of ``filename``, '' when unavailable."""
    if not isinstance(filename, str) or not isinstance(lineno, int) or lineno < 1:
        return ''
    try:
        return linecache.getline(filename, lineno).strip()
    except Exception:  # linecache may meet any broken loader or file
        return ''


def function_name(filename, lineno):
    """The qualified name of the innermost def or class enclosing a line.

    Names follow ``__qualname__``: ``Cache.put``, ``main.<locals>.helper``,
    ``<module>`` at module level. The def line itself belongs to the
    function; decorator lines belong to the enclosing scope, where they run.
    Lambdas and comprehensions share lines with their enclosing statement, so
    their lines are named after the enclosing def.

    When the source cannot be read or parsed (a file that moved since the
    snapshot, ``<frozen ...>``, ``<string>``, a syntax error), the name is the
    file's base name (``app.py``), or the filename itself when it has none,
    so frames of different files stay apart.
    """
    return function_scope(filename, lineno)[0]


def function_scope(filename, lineno):
    """``(function_name(filename, lineno), the line its def or class is on)``.

    The line is 0 at module level and when the source is unavailable.
    """
    table = _scope_table(filename)
    if table is None:
        return _fallback_name(filename), 0
    starts, scopes = table
    if not isinstance(lineno, int):
        lineno = 0
    index = bisect.bisect_right(starts, lineno) - 1
    return scopes[index] if index >= 0 else _MODULE


def _fallback_name(filename):
    if not isinstance(filename, str):
        return '<unknown>'
    return os.path.basename(filename) or filename or '<unknown>'


@functools.lru_cache(maxsize=_CACHED_FILES)
def _scope_table(filename):
    """(starts, scopes): scopes[i], a (qualname, def line) pair, holds from
    line starts[i] on; None when the file cannot be read or parsed."""
    tree = _parse(filename)
    if tree is None:
        return None
    changes = [(1, _MODULE)]
    try:
        _add_scopes(tree, '', _MODULE, changes)
    except RecursionError:  # absurdly nested code: give up on the file
        return None
    # A stable sort keeps, among changes at one line, the order they were
    # recorded in: a scope's end before a later scope's start, outer before
    # inner. bisect_right then lands on the last, the right one.
    changes.sort(key=lambda change: change[0])
    return tuple(line for line, _ in changes), tuple(scope for _, scope in changes)


def _parse(filename):
    if not isinstance(filename, str) or not filename:
        return None
    try:
        lines = linecache.getlines(filename)
        if not lines:
            return None
        with warnings.catch_warnings():
            # Invalid escapes and the like are the file's business, not ours.
            warnings.simplefilter('ignore')
            return ast.parse(''.join(lines), filename)
    except Exception:  # SyntaxError, ValueError (null bytes), RecursionError...
        return None


def _add_scopes(node, prefix, enclosing, changes):
    """Append to ``changes`` a (line, scope) for every line where the scope
    changes inside ``node``: where each def/class starts and where the
    ``enclosing`` scope takes over again after it ends. A scope is a
    (qualname, def line) pair.

    ``prefix`` is the qualname prefix of defs found here (``'Cache.'``,
    ``'main.<locals>.'``, ``''`` at module level).
    """
    if not isinstance(node, _SCOPE_NODES):
        for child in ast.iter_child_nodes(node):
            _add_scopes(child, prefix, enclosing, changes)
        return
    # Decorators run in the enclosing scope, before the def line.
    decorators = node.decorator_list
    for decorator in decorators:
        _add_scopes(decorator, prefix, enclosing, changes)
    qualname = prefix + node.name
    scope = (qualname, node.lineno)
    changes.append((node.lineno, scope))
    inner = qualname + ('.' if isinstance(node, ast.ClassDef) else '.<locals>.')
    for child in ast.iter_child_nodes(node):
        if not any(child is decorator for decorator in decorators):
            _add_scopes(child, inner, scope, changes)
    end = getattr(node, 'end_lineno', None) or node.lineno
    changes.append((end + 1, enclosing))
