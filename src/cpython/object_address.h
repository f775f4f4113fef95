// Where an object's memory block starts: what get_object_traceback looks up.
#pragma once

#include <Python.h>

#include <cstdint>

namespace heapscope::cpython {

// The address the allocator returned for `obj`: objects of GC types carry
// the GC header in front of them and, from 3.11, types with a managed dict
// (3.12+: or managed weakref list) two more pointers before that.
std::uintptr_t block_address(PyObject* obj) noexcept;

}  // namespace heapscope::cpython
