#include "reference_tracer.h"

#include <Python.h>

#include "reused_object.h"

namespace heapscope::cpython {

#if PY_VERSION_HEX >= 0x030D0000

namespace {

// The tracer the rest of the process has set, as it would read it back:
// the one found at install, then whatever PyRefTracer_SetTracer was given
// while ours held the slot. Ours calls it after its own work. Guarded by
// the GIL (CPython's SetTracer and the tracer calls hold it).
PyRefTracer chained_tracer = nullptr;
void* chained_data = nullptr;

// The object whose event ours is passing to the chained tracer. A tracer
// that read ours as the one below it through a call heapscope did not
// divert, and that ours then chains (repair_reference_tracer()), calls ours
// back for the same event: that call is not passed on again, which would
// never end.
PyObject* forwarding = nullptr;

int on_reference_event(PyObject* obj, PyRefTracerEvent event, void* /*data*/) {
  if (obj == forwarding) return 0;
  if (event == PyRefTracer_CREATE) retrace_if_reused(obj);
  if (chained_tracer == nullptr) return 0;
  PyObject* const outer = forwarding;
  forwarding = obj;
  const int result = chained_tracer(obj, event, chained_data);
  forwarding = outer;
  return result;
}

bool ours_is_set() {
  void* data = nullptr;
  return PyRefTracer_GetTracer(&data) == on_reference_event;
}

// The replacements. heapscope's own calls above reach the real functions
// (its own slots are never rewritten). While ours holds the slot, a tracer
// set by someone else (CPython's tracemalloc.start(), NULL from its stop())
// becomes the chained one instead of pushing ours out; otherwise the call
// goes through unchanged (heapscope not tracing, or the slot was taken by
// a caller that was not diverted: repair_reference_tracer()).
int set_tracer(PyRefTracer tracer, void* data) {
  if (!ours_is_set()) return PyRefTracer_SetTracer(tracer, data);
  chained_tracer = tracer;
  chained_data = data;
  return 0;
}

PyRefTracer get_tracer(void** data) {
  if (!ours_is_set()) return PyRefTracer_GetTracer(data);
  if (data != nullptr) *data = chained_data;
  return chained_tracer;
}

void set_ours_over_current() {
  void* data = nullptr;
  PyRefTracer current = PyRefTracer_GetTracer(&data);
  chained_tracer = current;
  chained_data = data;
  PyRefTracer_SetTracer(on_reference_event, nullptr);
}

}  // namespace

void install_reference_tracer() {
  if (!ours_is_set()) set_ours_over_current();
}

void uninstall_reference_tracer() {
  if (!ours_is_set()) return;
  PyRefTracer_SetTracer(chained_tracer, chained_data);
  chained_tracer = nullptr;
  chained_data = nullptr;
}

bool repair_reference_tracer() {
  if (ours_is_set()) return false;
  set_ours_over_current();
  return true;
}

std::size_t reference_tracer_hooks(core::symbol_slots::Hook* out) noexcept {
  out[0] = {"PyRefTracer_SetTracer", reinterpret_cast<void*>(&set_tracer), nullptr};
  out[1] = {"PyRefTracer_GetTracer", reinterpret_cast<void*>(&get_tracer), nullptr};
  return 2;
}

#else

void install_reference_tracer() {}
void uninstall_reference_tracer() {}
bool repair_reference_tracer() { return false; }
std::size_t reference_tracer_hooks(core::symbol_slots::Hook*) noexcept { return 0; }

#endif

}  // namespace heapscope::cpython
