#include "object_address.h"

namespace heapscope::cpython {

namespace {

// sizeof(PyGC_Head): two words on every supported version.
constexpr std::size_t kGcHeaderSize = 2 * sizeof(std::uintptr_t);

std::size_t pre_header_size(PyTypeObject* type) noexcept {
  std::size_t size = PyType_IS_GC(type) ? kGcHeaderSize : 0;
#if PY_VERSION_HEX >= 0x030C0000
  if (PyType_HasFeature(type, Py_TPFLAGS_MANAGED_DICT | Py_TPFLAGS_MANAGED_WEAKREF)) {
    size += 2 * sizeof(PyObject*);
  }
#elif PY_VERSION_HEX >= 0x030B0000
  if (PyType_HasFeature(type, Py_TPFLAGS_MANAGED_DICT)) size += 2 * sizeof(PyObject*);
#endif
  return size;
}

}  // namespace

std::uintptr_t block_address(PyObject* obj) noexcept {
  return reinterpret_cast<std::uintptr_t>(obj) - pre_header_size(Py_TYPE(obj));
}

}  // namespace heapscope::cpython
