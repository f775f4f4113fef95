#include "new_reference_hook.h"

#include <dlfcn.h>

#include "reused_object.h"

namespace heapscope::cpython {

#if PY_VERSION_HEX < 0x030D0000

namespace {

using NewReference = void (*)(PyObject*);

// The real functions, found by name: every slot we rewrite held them (or
// the lazy-binding stub that leads to them) and our own slots are never
// rewritten. Set once, under the GIL, before any slot points here.
NewReference real_new_reference = nullptr;
#if PY_VERSION_HEX >= 0x030C0000
NewReference real_new_reference_no_total = nullptr;
#endif

// Called for every object CPython creates (an object from a free list, a
// resurrected one, a new one), with the GIL, while the slots are ours.
void new_reference(PyObject* obj) {
  real_new_reference(obj);
  retrace_if_reused(obj);
}

#if PY_VERSION_HEX >= 0x030C0000
void new_reference_no_total(PyObject* obj) {
  real_new_reference_no_total(obj);
  retrace_if_reused(obj);
}
#endif

}  // namespace

std::size_t new_reference_hooks(core::symbol_slots::Hook* out) noexcept {
  std::size_t count = 0;
  if (real_new_reference == nullptr) {
    real_new_reference = reinterpret_cast<NewReference>(dlsym(RTLD_DEFAULT, "_Py_NewReference"));
  }
  if (real_new_reference != nullptr) {
    out[count++] = {"_Py_NewReference", reinterpret_cast<void*>(&new_reference), nullptr};
  }
#if PY_VERSION_HEX >= 0x030C0000
  if (real_new_reference_no_total == nullptr) {
    real_new_reference_no_total =
        reinterpret_cast<NewReference>(dlsym(RTLD_DEFAULT, "_Py_NewReferenceNoTotal"));
  }
  if (real_new_reference_no_total != nullptr) {
    out[count++] = {"_Py_NewReferenceNoTotal", reinterpret_cast<void*>(&new_reference_no_total),
                    nullptr};
  }
#endif
  return count;
}

#else

std::size_t new_reference_hooks(core::symbol_slots::Hook*) noexcept { return 0; }

#endif

}  // namespace heapscope::cpython
