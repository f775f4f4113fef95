"""Source lines and enclosing function names for traced frames."""

import ast
import dis
import textwrap
from unittest import mock

import pytest

from heapscope import _source
from heapscope._source import function_name, function_scope, source_line

# Every line that ends in '# -> NAME' must be named NAME by function_name.
SCOPED_SOURCE = textwrap.dedent('''\
    import functools  # -> <module>

    @functools.lru_cache(  # -> <module>
        maxsize=3)  # -> <module>
    def cached(x):  # -> cached
        return [x] * 3  # -> cached

    class Cache:  # -> Cache
        size = [0] * 10  # -> Cache

        def put(self, key,  # -> Cache.put
                value):  # -> Cache.put
            data = {  # -> Cache.put
                key: value,  # -> Cache.put
            }  # -> Cache.put
            return data  # -> Cache.put
        # -> Cache
        @staticmethod  # -> Cache
        async def fetch():  # -> Cache.fetch
            def helper():  # -> Cache.fetch.<locals>.helper
                return [1]  # -> Cache.fetch.<locals>.helper
            return helper()  # -> Cache.fetch
    # -> <module>
    def main():  # -> main
        class Local:  # -> main.<locals>.Local
            def m(self): return 1  # -> main.<locals>.Local.m
        squares = [i * i  # -> main
                   for i in range(3)]  # -> main
        return (lambda: [2])()  # -> main
    def last(): return 0  # -> last
    x = 1  # -> <module>
''')


def _expected_names(text):
    for lineno, line in enumerate(text.splitlines(), 1):
        if '# -> ' in line:
            yield lineno, line.rsplit('# -> ', 1)[1]


@pytest.fixture
def scoped_file(tmp_path):
    path = tmp_path / 'scoped.py'
    path.write_text(SCOPED_SOURCE, encoding='utf-8')
    return str(path)


def test_source_is_valid_python():
    ast.parse(SCOPED_SOURCE)


def test_every_line_is_named_after_its_innermost_def_or_class(scoped_file):
    expected = list(_expected_names(SCOPED_SOURCE))
    assert len(expected) > 20
    for lineno, name in expected:
        assert function_name(scoped_file, lineno) == name, lineno


def test_names_match_the_qualnames_python_gives(scoped_file):
    namespace = {}
    exec(compile(SCOPED_SOURCE, scoped_file, 'exec'), namespace)
    cache = namespace['Cache']
    for func in (namespace['main'], cache.put, cache.fetch, namespace['last']):
        assert function_name(scoped_file, _last_line(func.__code__)) == func.__qualname__


def _last_line(code):
    """The last line a function's code runs (its body, past any decorator)."""
    lines = [lineno for _, lineno in dis.findlinestarts(code) if lineno]
    return max(lines)


def test_lines_outside_the_file_are_module_level(scoped_file):
    lines = len(SCOPED_SOURCE.splitlines())
    assert function_name(scoped_file, lines + 10) == '<module>'
    assert function_name(scoped_file, 0) == '<module>'


def test_source_line_is_the_stripped_line(scoped_file):
    for lineno, line in enumerate(SCOPED_SOURCE.splitlines(), 1):
        assert source_line(scoped_file, lineno) == line.strip()


@pytest.mark.parametrize('lineno', [0, -1, 10**6, None, '3'])
def test_source_line_out_of_range_is_empty(scoped_file, lineno):
    assert source_line(scoped_file, lineno) == ''


def test_missing_file_gives_empty_line_and_its_basename(tmp_path):
    missing = str(tmp_path / 'gone' / 'app.py')
    assert source_line(missing, 1) == ''
    assert function_name(missing, 1) == 'app.py'


@pytest.mark.parametrize('filename', ['<frozen importlib._bootstrap>', '<string>'])
def test_pseudo_files_are_named_by_themselves(filename):
    assert source_line(filename, 1) == ''
    assert function_name(filename, 1) == filename


def test_unusable_filenames_never_raise():
    assert function_name('', 1) == '<unknown>'
    assert function_name(None, 1) == '<unknown>'
    assert source_line(None, 1) == ''


@pytest.mark.parametrize('content', [
    b'def broken(:\n    pass\n',            # syntax error
    b'x = "\xff\xfe"\ndef f():\n    pass\n',  # not UTF-8, no coding cookie
    b'def f():\n    return "\0"\n',          # null byte
], ids=['syntax-error', 'bad-encoding', 'null-byte'])
def test_unparsable_source_falls_back_to_the_basename(tmp_path, content):
    path = tmp_path / 'weird.py'
    path.write_bytes(content)
    assert function_name(str(path), 2) == 'weird.py'
    source_line(str(path), 2)  # must not raise, whatever it returns


def test_declared_encoding_and_non_ascii_names(tmp_path):
    path = tmp_path / 'données façon.py'
    path.write_bytes('# -*- coding: latin-1 -*-\n'
                     'def café():\n'
                     '    return "é"\n'.encode('latin-1'))
    assert function_name(str(path), 3) == 'café'
    assert source_line(str(path), 3) == 'return "é"'


def test_each_file_is_parsed_once(scoped_file):
    _source._scope_table.cache_clear()
    with mock.patch.object(_source.ast, 'parse', wraps=ast.parse) as parse:
        for _ in range(200):
            for lineno, name in _expected_names(SCOPED_SOURCE):
                assert function_name(scoped_file, lineno) == name
    assert parse.call_count == 1


def test_the_cache_of_files_is_bounded():
    assert _source._scope_table.cache_info().maxsize is not None


def test_function_scope_gives_the_def_line(scoped_file):
    lines = SCOPED_SOURCE.splitlines()
    helper_def = next(i for i, line in enumerate(lines, 1) if 'def helper' in line)
    assert function_scope(scoped_file, helper_def + 1) == (
        'Cache.fetch.<locals>.helper', helper_def)
    assert function_scope(scoped_file, 1) == ('<module>', 0)
    assert function_scope('/no/such/dir/app.py', 5) == ('app.py', 0)
