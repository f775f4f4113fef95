#include "unicode_utf8.h"

#include <cstdint>

namespace heapscope::cpython {

namespace {

void append_code_point(std::uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

bool append_utf8(PyObject* text, std::string& out) {
#if PY_VERSION_HEX < 0x030C0000
  if (!PyUnicode_IS_READY(text)) return false;
#endif
  const Py_ssize_t length = PyUnicode_GET_LENGTH(text);
  const int kind = PyUnicode_KIND(text);
  const void* data = PyUnicode_DATA(text);
  if (PyUnicode_IS_ASCII(text)) {
    out.append(static_cast<const char*>(data), static_cast<std::size_t>(length));
    return true;
  }
  out.reserve(out.size() + static_cast<std::size_t>(length) * 2);
  for (Py_ssize_t i = 0; i < length; ++i) append_code_point(PyUnicode_READ(kind, data, i), out);
  return true;
}

}  // namespace heapscope::cpython
