"""The module functions take the arguments the standard module takes, odd
but legal ones included (None, objects that are never traced), and refuse
the others with the standard module's exception and message - its module
name aside: ``_tracemalloc.stop()`` there is ``heapscope.stop()`` here."""

import tracemalloc as cpython

import pytest

heapscope = pytest.importorskip('heapscope')

NO_ARGUMENT_FUNCTIONS = ['stop', 'is_tracing', 'clear_traces', 'get_traceback_limit',
                         'get_traced_memory', 'get_tracemalloc_memory', 'reset_peak']


def outcome(module, name, *args, **kwargs):
    """('ok', result) or (exception type name, message with the module's
    name made neutral)."""
    try:
        return 'ok', getattr(module, name)(*args, **kwargs)
    except Exception as exc:
        return type(exc).__name__, str(exc).replace('_tracemalloc.', 'M.').replace(
            'heapscope.', 'M.')


@pytest.fixture(params=[False, True], ids=['idle', 'tracing'])
def tracing(request):
    if request.param:
        heapscope.start(3)
        cpython.start(3)
    yield request.param
    heapscope.stop()
    cpython.stop()


@pytest.mark.parametrize('name', ['get_object_traceback', '_get_object_traceback'])
@pytest.mark.parametrize('obj', [None, True, 1, 'text', (), object], ids=repr)
def test_untraced_objects_have_no_traceback(tracing, name, obj):
    assert outcome(heapscope, name, obj) == outcome(cpython, name, obj) == ('ok', None)


def test_a_traced_object_still_has_its_traceback(tracing):
    block = bytearray(1000)
    found = heapscope.get_object_traceback(block)
    assert (found is not None) == tracing
    if tracing:
        assert found[-1].filename == __file__


@pytest.mark.parametrize('name', NO_ARGUMENT_FUNCTIONS)
@pytest.mark.parametrize('args, kwargs', [((1,), {}), ((None, 2), {}), ((), {'x': 1}),
                                          ((1,), {'x': 1})], ids=['one', 'two', 'keyword', 'both'])
def test_extra_arguments_are_refused_as_the_standard_module_does(tracing, name, args, kwargs):
    theirs = outcome(cpython, name, *args, **kwargs)
    assert theirs[0] == 'TypeError'
    assert outcome(heapscope, name, *args, **kwargs) == theirs


@pytest.mark.parametrize('args, kwargs', [((), {}), ((1, 2), {}), ((), {'obj': 1})],
                         ids=['none', 'two', 'keyword'])
def test_get_object_traceback_argument_count_as_the_standard_module(args, kwargs):
    for name in ('get_object_traceback', '_get_object_traceback'):
        theirs = outcome(cpython, name, *args, **kwargs)
        assert outcome(heapscope, name, *args, **kwargs) == theirs


@pytest.mark.parametrize('name', NO_ARGUMENT_FUNCTIONS)
def test_the_functions_keep_their_names_and_docs(name):
    function = getattr(heapscope, name)
    assert function.__name__ == name and function.__doc__
