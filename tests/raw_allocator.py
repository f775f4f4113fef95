"""Python's RAW-domain allocator called WITHOUT the GIL, for the tests.

ctypes.CDLL (unlike ctypes.pythonapi, a PyDLL) releases the GIL for the
duration of every call, which is how C code allocates from threads that do
not hold it.
"""

import ctypes

_nogil = ctypes.CDLL(None)

raw_malloc = _nogil.PyMem_RawMalloc
raw_malloc.restype = ctypes.c_void_p
raw_malloc.argtypes = [ctypes.c_size_t]

raw_realloc = _nogil.PyMem_RawRealloc
raw_realloc.restype = ctypes.c_void_p
raw_realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]

raw_free = _nogil.PyMem_RawFree
raw_free.restype = None
raw_free.argtypes = [ctypes.c_void_p]

# PyGILState_Check called the same way: 0 proves the calls above run without the GIL.
gil_check_without_gil = _nogil.PyGILState_Check
gil_check_without_gil.restype = ctypes.c_int
gil_check_without_gil.argtypes = []
