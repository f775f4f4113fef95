#include "tracking_api.h"

#include <Python.h>
#include <dlfcn.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "allocator_hooks.h"
#include "block_recorder.h"
#include "native_hooks.h"
#include "tracer.h"

namespace heapscope::cpython {

namespace {

using TrackFunction = int (*)(unsigned int, std::uintptr_t, std::size_t);
using UntrackFunction = int (*)(unsigned int, std::uintptr_t);
using GetTracebackFunction = PyObject* (*)(unsigned int, std::uintptr_t);

// CPython's functions, found by name (our own slots are never rewritten,
// so these are the real ones). Set once, under the GIL, before any slot
// points here.
TrackFunction cpython_track = nullptr;
UntrackFunction cpython_untrack = nullptr;
GetTracebackFunction cpython_get_traceback = nullptr;

int track(unsigned int domain, std::uintptr_t ptr, std::size_t size) {
  if (!is_tracing()) return cpython_track(domain, ptr, size);
  // The extension describes this block itself: the native trace of the
  // malloc that made it would count its bytes twice.
  if (domain != kNativeDomain && native_tracing()) forget_tracked_block(kNativeDomain, ptr);
  int result = 0;
  if (should_trace_block(size, ptr)) {
    switch (record_tracked_block(domain, ptr, size)) {
      case TrackResult::kStored:
        result = 0;
        break;
      case TrackResult::kNotStored:
        result = -1;
        break;
      case TrackResult::kNotTracing:
        return cpython_track(domain, ptr, size);  // stop() won
    }
  } else {
    // Sampled mode, no sample point in this block: whatever was traced at
    // (domain, ptr) before describes a block that is gone.
    forget_tracked_block(domain, ptr);
  }
  cpython_track(domain, ptr, size);  // for CPython's module, when it traces too
  return result;
}

int untrack(unsigned int domain, std::uintptr_t ptr) {
  if (!is_tracing()) return cpython_untrack(domain, ptr);
  forget_tracked_block(domain, ptr);
  cpython_untrack(domain, ptr);
  return 0;
}

// The traceback of (domain, ptr) as CPython's function gives it: a tuple of
// (filename, lineno), most recent first, or None when untraced. GIL.
PyObject* get_traceback(unsigned int domain, std::uintptr_t ptr) {
  if (!is_tracing()) return cpython_get_traceback(domain, ptr);
  Tracer& t = tracer();
  std::vector<std::uint32_t> frames;
  std::uint32_t total = 0;
  bool found = false;
  try {
    found = t.engine.traceback_of(domain, ptr, &frames, &total);
  } catch (const std::bad_alloc&) {
    return PyErr_NoMemory();
  }
  if (!found) Py_RETURN_NONE;
  PyObject* tuple = PyTuple_New(static_cast<Py_ssize_t>(frames.size()));
  if (tuple == nullptr) return nullptr;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    std::string filename;
    int lineno = 0;
    {
      std::lock_guard lock(t.engine.mutex());
      filename = t.engine.filename_of_frame_unlocked(frames[i], &lineno);
    }
    PyObject* frame = Py_BuildValue(
        "(Ni)",
        PyUnicode_DecodeUTF8(filename.data(), static_cast<Py_ssize_t>(filename.size()),
                             "surrogatepass"),
        lineno);
    if (frame == nullptr) {
      Py_DECREF(tuple);
      return nullptr;
    }
    PyTuple_SET_ITEM(tuple, static_cast<Py_ssize_t>(i), frame);
  }
  return tuple;
}

template <typename Function>
void find(Function* function, const char* name) noexcept {
  if (*function == nullptr) *function = reinterpret_cast<Function>(dlsym(RTLD_DEFAULT, name));
}

}  // namespace

std::size_t tracking_api_hooks(core::symbol_slots::Hook* out) noexcept {
  find(&cpython_track, "PyTraceMalloc_Track");
  find(&cpython_untrack, "PyTraceMalloc_Untrack");
  find(&cpython_get_traceback, "_PyTraceMalloc_GetTraceback");
  std::size_t count = 0;
  // Track and Untrack go together: one without the other would leave
  // traces that are never removed, or removals of traces never made.
  if (cpython_track != nullptr && cpython_untrack != nullptr) {
    out[count++] = {"PyTraceMalloc_Track", reinterpret_cast<void*>(&track), nullptr};
    out[count++] = {"PyTraceMalloc_Untrack", reinterpret_cast<void*>(&untrack), nullptr};
  }
  if (cpython_get_traceback != nullptr) {
    out[count++] = {"_PyTraceMalloc_GetTraceback", reinterpret_cast<void*>(&get_traceback),
                    nullptr};
  }
  return count;
}

}  // namespace heapscope::cpython
