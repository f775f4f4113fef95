#include "tracer.h"

#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "allocator_hooks.h"
#include "block_recorder.h"
#include "call_slots.h"
#include "reference_tracer.h"

namespace heapscope::cpython {

namespace {

// Empties the engine and the frame cache together (frame ids die with the
// engine's tables), then drops the code references the cache owned, outside
// the lock, since a code object's deallocation re-enters our hooks.
void clear_tables(bool stop_tracing) {
  Tracer& t = tracer();
  std::vector<PyObject*> owned;
  {
    std::lock_guard lock(t.engine.mutex());
    if (stop_tracing) t.engine.set_tracing_unlocked(false);
    t.engine.clear_unlocked();
    owned = t.resolver.clear_unlocked();
    t.captures.release();
    t.epoch.fetch_add(1, std::memory_order_release);
  }
  for (PyObject* code : owned) Py_DECREF(code);
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

#if PY_VERSION_HEX >= 0x030C0000
int on_code_event(PyCodeEvent event, PyCodeObject* code) {
  if (event == PY_CODE_EVENT_DESTROY) {
    Tracer& t = tracer();
    std::lock_guard lock(t.engine.mutex());
    if (t.resolver.forget_code_unlocked(code)) t.epoch.fetch_add(1, std::memory_order_release);
  }
  return 0;
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
#if PY_VERSION_HEX >= 0x030C0000
  if (PyCode_AddWatcher(on_code_event) < 0) return false;
#endif
  done = true;
  return true;
}

bool start(int nframe, std::uint64_t sample_interval) {
  Tracer& t = tracer();
  if (t.engine.tracing()) return t.engine.sample_interval() == sample_interval;
  t.max_nframe.store(nframe, std::memory_order_relaxed);
  install_hooks();
  install_reference_tracer();
  // Out of memory, the calls stay CPython's: tracing goes on without them.
  install_call_slots();
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
  return true;
}

std::size_t memory_usage() {
  Tracer& t = tracer();
  std::size_t bytes = sizeof(Tracer) + t.engine.memory_bytes();
  std::lock_guard lock(t.engine.mutex());
  return bytes + t.resolver.memory_bytes_unlocked() + t.captures.memory_bytes();
}

}  // namespace heapscope::cpython
