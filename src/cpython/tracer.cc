#include "tracer.h"

#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <vector>

#include "allocator_hooks.h"
#include "block_recorder.h"
#include "call_slots.h"
#include "native_hooks.h"
#include "reference_tracer.h"

namespace heapscope::cpython {

namespace {

// Empties the engine and the frame cache together (frame ids die with the
// engine's tables).
void clear_tables(bool stop_tracing) {
  Tracer& t = tracer();
  std::lock_guard lock(t.engine.mutex());
  if (stop_tracing) t.engine.set_tracing_unlocked(false);
  t.engine.clear_unlocked();
  t.resolver.clear_unlocked();
  t.captures.release();
  t.epoch.fetch_add(1, std::memory_order_release);
}

// fork(): hold the tables' lock across it so the child never inherits it
// mid-update, then release it on both sides. The forking thread passes its
// own allocations through meanwhile, or it would wait on the lock it holds.
void before_fork() {
  enter_untraced_region();
  tracer().engine.mutex().lock();
}
void after_fork() {
  tracer().engine.mutex().unlock();
  leave_untraced_region();
}
// The child must not repeat the parent's sample points: new seed, new
// generation.
void after_fork_in_child() {
  Tracer& t = tracer();
  t.sampler_seed.fetch_xor(static_cast<std::uint64_t>(getpid()) * 0xD6E8FEB86659FD93ull);
  if (t.sampler_generation.load(std::memory_order_relaxed) != 0) bump_sampler_generation();
  after_fork();
}

#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
// 3.12's depth from the recursion counter is wrong inside greenlets
// (frames_py312.c): note greenlet when it is imported, or if it already was.
bool names_stack_switcher(PyObject* name) {
  if (!PyUnicode_Check(name)) return false;
  const int whole = PyUnicode_CompareWithASCIIString(name, "greenlet");
  if (whole == 0) return true;
  PyObject* prefix = PyUnicode_FromString("greenlet.");
  if (prefix == nullptr) {
    PyErr_Clear();
    return true;  // cannot tell: walking is always exact
  }
  const Py_ssize_t starts = PyUnicode_Tailmatch(name, prefix, 0, PY_SSIZE_T_MAX, -1);
  Py_DECREF(prefix);
  if (starts < 0) PyErr_Clear();
  return starts != 0;
}

// A PEP 578 audit hook: CPython raises "import" (module name first) before
// it looks for a module not yet in sys.modules.
int on_audit_event(const char* event, PyObject* args, void*) {
  if (std::strcmp(event, "import") == 0 && PyTuple_Check(args) && PyTuple_GET_SIZE(args) > 0 &&
      names_stack_switcher(PyTuple_GET_ITEM(args, 0))) {
    hs_note_stack_switcher();
  }
  return 0;
}

void note_loaded_stack_switcher() {
  PyObject* modules = PyImport_GetModuleDict();  // borrowed
  PyObject* names = modules != nullptr ? PyDict_Keys(modules) : nullptr;
  if (names == nullptr) {
    PyErr_Clear();
    hs_note_stack_switcher();  // cannot tell: walking is always exact
    return;
  }
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(names); ++i) {
    if (names_stack_switcher(PyList_GET_ITEM(names, i))) hs_note_stack_switcher();
  }
  Py_DECREF(names);
}
#endif

}  // namespace

bool initialize() {
  static bool done = false;
  if (done) return true;
  tracer().sampler_seed.store(
      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
      (static_cast<std::uint64_t>(getpid()) << 32));
  if (pthread_atfork(before_fork, after_fork, after_fork_in_child) != 0) {
    PyErr_SetString(PyExc_RuntimeError, "heapscope: cannot register fork handlers");
    return false;
  }
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
  // Without the hook (an existing one refused it) imports go unseen: walk.
  if (PySys_AddAuditHook(on_audit_event, nullptr) < 0) {
    PyErr_Clear();
    hs_note_stack_switcher();
  }
#endif
  done = true;
  return true;
}

void forget_code(std::uintptr_t address) noexcept {
  Tracer& t = tracer();
  std::lock_guard lock(t.engine.mutex());
  if (t.resolver.forget_code_unlocked(address)) t.epoch.fetch_add(1, std::memory_order_release);
}

bool start(int nframe, std::uint64_t sample_interval, bool native) {
  Tracer& t = tracer();
  if (t.engine.tracing()) {
    return t.engine.sample_interval() == sample_interval && native_tracing() == native;
  }
  t.max_nframe.store(nframe, std::memory_order_relaxed);
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
  note_loaded_stack_switcher();
#endif
  install_hooks();
  install_reference_tracer();
  // Out of memory, the calls stay CPython's: tracing goes on without them
  // (and without native tracing, which the caller reports).
  set_native_tracing(native);
  if (!install_call_slots(native)) set_native_tracing(false);
  std::lock_guard lock(t.engine.mutex());
  // Not tracing, so the tables are empty (stop() cleared them): the
  // interval can change without reweighting anything.
  t.engine.set_sample_interval_unlocked(sample_interval);
  if (sample_interval == 0) {
    t.sampler_generation.store(0, std::memory_order_release);
  } else {
    bump_sampler_generation();
  }
  t.engine.set_tracing_unlocked(true);
  return true;
}

void bump_sampler_generation() noexcept {
  Tracer& t = tracer();
  t.sampler_threads.store(0, std::memory_order_relaxed);
  t.sampler_generation.store(++t.last_generation, std::memory_order_release);
}

void set_sampling_seed(std::uint64_t seed) noexcept {
  Tracer& t = tracer();
  t.sampler_seed.store(seed);
  if (t.sampler_generation.load() != 0) bump_sampler_generation();
}

void stop() {
  if (!tracer().engine.tracing()) return;
  uninstall_hooks();
  uninstall_reference_tracer();
  set_native_tracing(false);  // before the slots: a late caller passes through
  uninstall_call_slots();
  clear_tables(/*stop_tracing=*/true);
}

void clear_traces() {
  if (!tracer().engine.tracing()) return;
  clear_tables(/*stop_tracing=*/false);
}

bool is_tracing() noexcept { return tracer().engine.tracing(); }

bool repair_hooks() {
  if (!is_tracing()) return false;
  // 3.13: a tracer set by a call heapscope did not divert (reference_tracer.h).
  const bool tracer_repaired = repair_reference_tracer();
  auto seen = [](void* block) {
    return block != nullptr && recently_recorded(reinterpret_cast<std::uintptr_t>(block));
  };
  // In sampled mode the probes would rarely be sampled: the armed probe
  // makes our hook note the next block without recording it. In exact
  // mode the hook records them, noting each.
  note_recorded_blocks(true);
  arm_probe();
  void* raw = PyMem_RawMalloc(1);
  const bool raw_ok = seen(raw);
  PyMem_RawFree(raw);
  arm_probe();
  void* mem = PyMem_Malloc(1);
  const bool mem_ok = seen(mem);
  PyMem_Free(mem);
  arm_probe();
  void* obj = PyObject_Malloc(1);
  const bool obj_ok = seen(obj);
  PyObject_Free(obj);
  disarm_probe();
  note_recorded_blocks(false);
  if (raw_ok && mem_ok && obj_ok) return tracer_repaired;
  install_hooks();  // puts ours on top of whatever is there now
  // Code objects freed while our OBJ hook was out of the chain went unseen:
  // the frame cache may hold entries for addresses new code now occupies.
  Tracer& t = tracer();
  std::lock_guard lock(t.engine.mutex());
  t.resolver.clear_unlocked();
  t.epoch.fetch_add(1, std::memory_order_release);
  return true;
}

std::size_t memory_usage() {
  Tracer& t = tracer();
  std::size_t bytes = sizeof(Tracer) + t.engine.memory_bytes();
  std::lock_guard lock(t.engine.mutex());
  return bytes + t.resolver.memory_bytes_unlocked() + t.captures.memory_bytes();
}

}  // namespace heapscope::cpython
