// The _heapscope extension module: converts values between Python and the
// tracer, nothing more. The public API (argument rules, classes) lives in
// python/heapscope.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "allocator_hooks.h"
#include "call_slots.h"
#include "core/symbol_slots.h"
#include "native_hooks.h"
#include "core/allocation.h"
#include "object_address.h"
#include "signal_watcher.h"
#include "snapshot_binding.h"
#include "tracer.h"

namespace nb = nanobind;

namespace heapscope::cpython {
namespace {

// The traceback limit from start()'s argument, with CPython's messages for a
// non-integer, an out-of-range C int and an out-of-range frame count.
int nframe_from(nb::handle value) {
#if PY_VERSION_HEX < 0x030A0000
  if (PyFloat_Check(value.ptr())) {
    PyErr_SetString(PyExc_TypeError, "integer argument expected, got float");
    throw nb::python_error();
  }
#endif
  int overflow = 0;
  const long wide = PyLong_AsLongAndOverflow(value.ptr(), &overflow);
  if (wide == -1 && PyErr_Occurred()) throw nb::python_error();
  if (overflow != 0 || wide > INT_MAX || wide < INT_MIN) {
    PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to C int");
    throw nb::python_error();
  }
  if (wide < 1 || wide > kMaxFrames) {
    throw nb::value_error("the number of frames must be in range [1; 65535]");
  }
  return static_cast<int>(wide);
}

nb::object steal_or_throw(PyObject* obj) {
  if (obj == nullptr) throw nb::python_error();
  return nb::steal(obj);
}

nb::object get_object_traceback(nb::handle obj) {
  if (!is_tracing()) return nb::none();
  std::vector<std::uint32_t> frame_ids;
  std::uint32_t total = 0;
  if (!tracer().engine.traceback_of(block_address(obj.ptr()), &frame_ids, &total))
    return nb::none();
  nb::object tuple = steal_or_throw(PyTuple_New(static_cast<Py_ssize_t>(frame_ids.size())));
  for (std::size_t i = 0; i < frame_ids.size(); ++i) {
    std::string filename;
    int lineno = 0;
    {
      std::lock_guard lock(tracer().engine.mutex());
      filename = tracer().engine.filename_of_frame_unlocked(frame_ids[i], &lineno);
    }
    nb::object name = steal_or_throw(PyUnicode_DecodeUTF8(
        filename.data(), static_cast<Py_ssize_t>(filename.size()), "surrogatepass"));
    PyTuple_SET_ITEM(tuple.ptr(), static_cast<Py_ssize_t>(i),
                     steal_or_throw(Py_BuildValue("(Oi)", name.ptr(), lineno)).release().ptr());
  }
  return tuple;
}

}  // namespace
}  // namespace heapscope::cpython

NB_MODULE(_heapscope, m) {
  namespace hs = heapscope::cpython;
  if (!hs::initialize()) throw nb::python_error();

  m.def(
      "start",
      [](nb::handle nframe, std::uint64_t sample_interval, bool native) {
        const int limit = hs::nframe_from(nframe);
        if (native && !heapscope::core::symbol_slots::supported()) {
          throw nb::value_error(
              "native tracing needs an ELF64 platform on x86-64 or aarch64 (it diverts the "
              "C allocator's relocation slots), which this build is not");
        }
        if (!hs::is_tracing() && hs::raw_hooks_exhausted() &&
            PyErr_WarnEx(PyExc_RuntimeWarning,
                         "heapscope cannot trace the RAW domain (PyMem_RawMalloc) any more in "
                         "this process: another allocator hook was put over heapscope's at "
                         "too many start() calls (CPython's tracemalloc started before "
                         "heapscope, then stopped, does that each time), and hooks that "
                         "threads may call without the GIL cannot be taken out safely; "
                         "start heapscope first, or keep both running",
                         1) < 0) {
          throw nb::python_error();
        }
        const bool was_tracing = hs::is_tracing();
        if (!hs::start(limit, sample_interval, native)) {
          const std::uint64_t now = hs::tracer().engine.sample_interval();
          const std::string mode = (now == 0 ? std::string("every block (exact mode)")
                                             : "a sample every " + std::to_string(now) + " bytes") +
                                   (hs::native_tracing() ? ", native allocations included"
                                                         : ", native allocations not included");
          throw nb::value_error(("heapscope is already tracing " + mode +
                                 "; call stop() before starting in another mode")
                                    .c_str());
        }
        if (native && !was_tracing && !hs::native_tracing()) {
          hs::stop();
          throw std::bad_alloc();  // the slots could not be recorded: MemoryError
        }
      },
      nb::arg("nframe").none(), nb::arg("sample_interval") = 0, nb::arg("native") = false);
  m.def("is_tracing_native", [] { return hs::is_tracing() && hs::native_tracing(); });
  m.attr("NATIVE_DOMAIN") = hs::kNativeDomain;
  m.def("get_sampling_interval",
        [] { return hs::is_tracing() ? hs::tracer().engine.sample_interval() : 0; });
  m.def("_set_sampling_seed", &hs::set_sampling_seed, nb::arg("seed"),
        "Seeds the samplers of the next sampled session (tests).");
  m.def("stop", &hs::stop);
  m.def("is_tracing", [] {
    if (hs::repair_hooks() &&
        PyErr_WarnEx(PyExc_RuntimeWarning,
                     "another tracer (CPython's tracemalloc.stop()?) removed heapscope's "
                     "allocator hooks or its reference tracer; they are installed again, but "
                     "blocks allocated or objects reused in between were not traced",
                     1) < 0) {
      throw nb::python_error();
    }
    return hs::is_tracing();
  });
  m.def("clear_traces", &hs::clear_traces);
  m.def("get_traceback_limit", [] { return hs::tracer().max_nframe.load(); });
  m.def("get_traced_memory", [] {
    if (!hs::is_tracing()) return nb::make_tuple(0, 0);
    const auto memory = hs::tracer().engine.memory();
    return nb::make_tuple(memory.current, memory.peak);
  });
  m.def("reset_peak", [] {
    if (hs::is_tracing()) hs::tracer().engine.reset_peak();
  });
  m.def("get_tracemalloc_memory", &hs::memory_usage);
  m.def("_get_object_traceback", &hs::get_object_traceback, nb::arg("obj"));
  m.def(
      "_dropped_traces", [] { return hs::tracer().engine.dropped_traces(); },
      "Blocks left untraced because the tracer's tables could not grow.");
  m.def(
      "_patched_slots", [](nb::str symbol) { return hs::call_slots_patched(symbol.c_str()); },
      nb::arg("symbol"),
      "Relocation slots that hold heapscope's replacement for `symbol` (tests).");
  m.def(
      "_watch_signals",
      [](std::string path, std::string label, std::string own_directory,
         std::vector<std::string> outer_files) {
        return hs::watch_signals(hs::SignalSnapshotPlan{std::move(path), std::move(label),
                                                        std::move(own_directory),
                                                        std::move(outer_files)});
      },
      nb::arg("path"), nb::arg("label"), nb::arg("own_directory"), nb::arg("outer_files"),
      "Write the snapshot to path natively when SIGTERM or SIGHUP (where still at SIG_DFL) "
      "ends the process, then die of it; the names of the signals watched.");
  m.def("_unwatch_signals", &hs::unwatch_signals, nb::call_guard<nb::gil_scoped_release>(),
        "Stop watching: SIG_DFL again where our handler is still installed.");
  m.def("_python_fork_begins", &hs::python_fork_begins, nb::arg("child_watches"),
        "os.fork() is about to fork; child_watches: the child's hook will watch or unwatch.");
  m.def("_python_fork_ended", &hs::python_fork_ended,
        "os.fork() has forked: the watcher runs again in the parent.");
  m.def("_begin_exit_write", &hs::begin_exit_write, nb::arg("wait_seconds"),
        nb::call_guard<nb::gil_scoped_release>(),
        "False when a signal's snapshot is being written (after waiting for it to end the "
        "process); else the exit snapshot may be written.");
  m.def("_end_exit_write", &hs::end_exit_write, "The exit snapshot is written (or failed).");
#ifdef HEAPSCOPE_FAULT_INJECTION
  // tests/fault_injection: the Nth allocation of the tracer fails (0: none).
  m.def("_fail_allocation_at", &heapscope::core::fail_allocation_at, nb::arg("nth"));
  m.def("_allocations_counted", &heapscope::core::allocations_counted);
#endif
  hs::register_snapshot_binding(m);
}
