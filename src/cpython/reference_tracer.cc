#include "reference_tracer.h"

#include <Python.h>

#include "reused_object.h"

namespace heapscope::cpython {

#if PY_VERSION_HEX >= 0x030D0000

namespace {

// The tracer that was set before ours, called after ours. Guarded by the GIL.
PyRefTracer previous_tracer = nullptr;
void* previous_data = nullptr;

int on_reference_event(PyObject* obj, PyRefTracerEvent event, void* /*data*/) {
  if (event == PyRefTracer_CREATE) retrace_if_reused(obj);
  return previous_tracer ? previous_tracer(obj, event, previous_data) : 0;
}

}  // namespace

void install_reference_tracer() {
  void* data = nullptr;
  PyRefTracer current = PyRefTracer_GetTracer(&data);
  if (current == on_reference_event) return;
  previous_tracer = current;
  previous_data = data;
  PyRefTracer_SetTracer(on_reference_event, nullptr);
}

void uninstall_reference_tracer() {
  void* data = nullptr;
  if (PyRefTracer_GetTracer(&data) != on_reference_event) return;
  PyRefTracer_SetTracer(previous_tracer, previous_data);
  previous_tracer = nullptr;
  previous_data = nullptr;
}

#else

void install_reference_tracer() {}
void uninstall_reference_tracer() {}

#endif

}  // namespace heapscope::cpython
