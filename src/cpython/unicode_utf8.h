// Reads a str's characters as UTF-8 without calling into Python.
#pragma once

#include <Python.h>

#include <string>

namespace heapscope::cpython {

// Appends the UTF-8 form of `text` to `out`, encoding lone surrogates as
// three bytes (what Python calls "surrogatepass"), so that every filename
// survives the round trip. Reads the string's PEP 393 buffer directly:
// unlike PyUnicode_AsUTF8 it neither allocates through Python nor writes into
// the object, so it is safe without the GIL on an immutable string.
// Returns false for a str that is not ready (legacy, pre-3.12 only).
bool append_utf8(PyObject* text, std::string& out);

}  // namespace heapscope::cpython
