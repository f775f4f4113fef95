#include "allocator_hooks.h"

#include <Python.h>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <utility>

#include "block_recorder.h"
#include "core/sampling/byte_sampler.h"
#include "core/sampling/weights.h"
#include "tracer.h"

namespace heapscope::cpython {

namespace {

// What one installation of our hooks wraps. Hooks installed twice in one
// chain (ours, someone else's, ours) each forward to their own next
// allocator through their own Link, and never loop.
struct Link {
  PyMemAllocatorDomain domain;
  PyMemAllocatorEx next;
};

// MEM/OBJ hooks receive their Link as `ctx`. Links are never freed: a hook
// may be buried in someone else's chain long after we unhook. A deque keeps
// their addresses stable. Guarded by the GIL.
std::deque<Link>& links() {
  static auto* all = new std::deque<Link>();
  return *all;
}
const Link& link_from_ctx(void* ctx) { return *static_cast<const Link*>(ctx); }

// RAW hooks are different: threads call the raw allocator without the GIL
// while PyMem_SetAllocator rewrites it, and may read the new functions with
// the old ctx. So a RAW installation keeps the wrapped allocator's own ctx
// and finds its Link through its function instead (one instantiation per
// slot): any mix of old and new fields a racing reader sees still works.
// For the same reason RAW hooks are never removed, only switched off.
// CPython's tracemalloc, started before us and stopped after, restores the
// allocator it wrapped, our previous RAW hooks, so every such round takes a
// slot; 64 rounds cost about 75 KiB of code (1.2 KiB per slot).
constexpr int kRawSlots = 64;
Link raw_links[kRawSlots];
int raw_slots_used = 0;  // guarded by the GIL
template <int N>
const Link& raw_link(void*) {
  return raw_links[N];
}

// True while this thread runs inside one of our hooks: a nested allocation
// (pymalloc falling back to the raw allocator, or the engine's own work) is
// passed through untraced, so each block is traced once. Initial-exec TLS
// keeps the check to one instruction in a dlopen'ed module.
thread_local bool t_inside_hook __attribute__((tls_model("initial-exec"))) = false;

class InsideHook {
 public:
  InsideHook() noexcept { t_inside_hook = true; }
  ~InsideHook() { t_inside_hook = false; }
  InsideHook(const InsideHook&) = delete;
  InsideHook& operator=(const InsideHook&) = delete;
};

// Sampled mode: this thread's byte sampler, and the generation it was last
// seeded for (the tracer bumps it at start, fork and reseed).
thread_local core::sampling::ByteSampler t_sampler __attribute__((tls_model("initial-exec")));
thread_local std::uint64_t t_sampler_generation __attribute__((tls_model("initial-exec"))) = 0;
thread_local bool t_probe_armed __attribute__((tls_model("initial-exec"))) = false;
thread_local std::int64_t t_probe_saved_countdown __attribute__((tls_model("initial-exec"))) = 0;

std::uint64_t mix(std::uint64_t z) {
  z = (z ^ (z >> 33)) * 0xFF51AFD7ED558CCDull;
  z = (z ^ (z >> 33)) * 0xC4CEB9FE1A85EC53ull;
  return z ^ (z >> 33);
}

// The rare part of should_record: a sample point may lie in this block, or
// a probe is armed.
[[gnu::noinline]] bool sampler_crossed(std::uintptr_t address) noexcept {
  if (t_probe_armed) {
    t_probe_armed = false;
    t_sampler.set_countdown(t_probe_saved_countdown);
    note_recent_block(address);
    return false;
  }
  t_sampler.cross();
  return true;
}

// Seeds this thread's sampler for the current generation, then counts the block.
[[gnu::noinline]] bool sampler_restarted(std::uint64_t generation, std::size_t size,
                                         std::uintptr_t address) noexcept {
  Tracer& t = tracer();
  // Acquire pairs with start()'s release of the generation: the interval
  // read next is the one of that generation (0 only if a concurrent stop()
  // and exact start() won the race: then this block is simply traced).
  generation = t.sampler_generation.load(std::memory_order_acquire);
  const std::uint64_t interval = t.engine.sample_interval();
  if (generation == 0 || interval == 0) return true;
  const std::uint64_t arrival = t.sampler_threads.fetch_add(1, std::memory_order_relaxed);
  t_sampler.reset(interval, mix(t.sampler_seed.load(std::memory_order_relaxed) ^ mix(generation) ^
                                mix(arrival + 1)));
  t_sampler_generation = generation;
  if (t_probe_armed) {
    t_probe_armed = false;
    note_recent_block(address);
    return false;
  }
  if (!t_sampler.consume(core::sampling::sampled_size(size))) return false;
  t_sampler.cross();
  return true;
}

// Whether a block just allocated is to be traced: always in exact mode; in
// sampled mode when a sample point of this thread's sampler falls in it.
[[gnu::always_inline]] inline bool should_record(std::size_t size, void* ptr) noexcept {
  const std::uint64_t generation = tracer().sampler_generation.load(std::memory_order_relaxed);
  if (generation == 0) return true;
  const auto address = reinterpret_cast<std::uintptr_t>(ptr);
  if (generation != t_sampler_generation) [[unlikely]]
    return sampler_restarted(generation, size, address);
  if (!t_sampler.consume(core::sampling::sampled_size(size))) [[likely]]
    return false;
  return sampler_crossed(address);
}

// Untraces a block about to be freed; in sampled mode a block the filter
// rules out costs no lock.
[[gnu::always_inline]] inline void untrace(core::Engine& engine, void* ptr) noexcept {
  const auto address = reinterpret_cast<std::uintptr_t>(ptr);
  if (engine.may_be_traced(address)) engine.remove_trace(address);
}

template <const Link& (*LinkOf)(void*)>
void* hook_malloc(void* ctx, std::size_t size) {
  const Link& link = LinkOf(ctx);
  if (t_inside_hook || !tracer().engine.tracing()) return link.next.malloc(link.next.ctx, size);
  InsideHook inside;
  void* ptr = link.next.malloc(link.next.ctx, size);
  if (ptr != nullptr && should_record(size, ptr)) {
    record_new_block(link.domain == PYMEM_DOMAIN_RAW, reinterpret_cast<std::uintptr_t>(ptr), size);
  }
  return ptr;
}

template <const Link& (*LinkOf)(void*)>
void* hook_calloc(void* ctx, std::size_t nelem, std::size_t elsize) {
  const Link& link = LinkOf(ctx);
  if (t_inside_hook || !tracer().engine.tracing()) {
    return link.next.calloc(link.next.ctx, nelem, elsize);
  }
  InsideHook inside;
  void* ptr = link.next.calloc(link.next.ctx, nelem, elsize);
  // A successful calloc means nelem * elsize did not overflow.
  if (ptr != nullptr && should_record(nelem * elsize, ptr)) {
    record_new_block(link.domain == PYMEM_DOMAIN_RAW, reinterpret_cast<std::uintptr_t>(ptr),
                     nelem * elsize);
  }
  return ptr;
}

template <const Link& (*LinkOf)(void*)>
void* hook_realloc(void* ctx, void* ptr, std::size_t new_size) {
  const Link& link = LinkOf(ctx);
  core::Engine& engine = tracer().engine;
  if (!engine.tracing()) return link.next.realloc(link.next.ctx, ptr, new_size);
  if (t_inside_hook) {
    // A nested realloc (pymalloc resizing through the raw allocator): the
    // old block is gone, and the outer hook traces the new one.
    void* moved = link.next.realloc(link.next.ctx, ptr, new_size);
    if (moved != nullptr && ptr != nullptr) untrace(engine, ptr);
    return moved;
  }
  InsideHook inside;
  // Take the old trace out first: once realloc frees the old block, another
  // thread may be handed its address and trace it before we could remove it.
  core::Engine::TakenTrace old{};
  const auto old_address = reinterpret_cast<std::uintptr_t>(ptr);
  const bool had_old =
      ptr != nullptr && engine.may_be_traced(old_address) && engine.take_trace(old_address, &old);
  void* moved = link.next.realloc(link.next.ctx, ptr, new_size);
  // In sampled mode the resized block is a new draw of new_size bytes.
  if (moved != nullptr && should_record(new_size, moved)) {
    record_new_block(link.domain == PYMEM_DOMAIN_RAW, reinterpret_cast<std::uintptr_t>(moved),
                     new_size);
  } else if (moved == nullptr && had_old) {
    engine.restore_trace(old);  // the old block is still alive and unchanged
  }
  return moved;
}

template <const Link& (*LinkOf)(void*)>
void hook_free(void* ctx, void* ptr) {
  const Link& link = LinkOf(ctx);
  // Untrace before freeing, for the same reason as in realloc. Frees are
  // untraced even from nested calls: the block is gone either way.
  if (ptr != nullptr && tracer().engine.tracing()) {
    Tracer& t = tracer();
    const auto address = reinterpret_cast<std::uintptr_t>(ptr);
    // Code objects die through PyObject_Free on every version: the frame
    // cache forgets one before its address can be handed out again.
    if (link.domain == PYMEM_DOMAIN_OBJ && t.resolver.may_hold(address)) [[unlikely]]
      forget_code(address);
    untrace(t.engine, ptr);
  }
  link.next.free(link.next.ctx, ptr);
}

template <const Link& (*LinkOf)(void*)>
PyMemAllocatorEx hooks_with(void* ctx) {
  return PyMemAllocatorEx{ctx, hook_malloc<LinkOf>, hook_calloc<LinkOf>, hook_realloc<LinkOf>,
                          hook_free<LinkOf>};
}

template <int... N>
PyMemAllocatorEx raw_hooks_for_slot(int slot, void* ctx, std::integer_sequence<int, N...>) {
  PyMemAllocatorEx result{};
  ((slot == N ? (result = hooks_with<raw_link<N>>(ctx), 0) : 0), ...);
  return result;
}

template <int... N>
bool is_raw_hook(const PyMemAllocatorEx& allocator, std::integer_sequence<int, N...>) {
  return ((allocator.malloc == hook_malloc<raw_link<N>>) || ...);
}

bool is_ours(const PyMemAllocatorEx& allocator) {
  return allocator.malloc == hook_malloc<link_from_ctx> ||
         is_raw_hook(allocator, std::make_integer_sequence<int, kRawSlots>{});
}

void install_raw_hooks() {
  PyMemAllocatorEx current;
  PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &current);
  if (is_ours(current)) return;             // still on top, switched off since the last stop()
  if (raw_slots_used == kRawSlots) return;  // start() warned: RAW stays untraced
  const int slot = raw_slots_used++;
  raw_links[slot] = Link{PYMEM_DOMAIN_RAW, current};
  std::atomic_thread_fence(std::memory_order_release);  // the Link before the hooks
  PyMemAllocatorEx ours =
      raw_hooks_for_slot(slot, current.ctx, std::make_integer_sequence<int, kRawSlots>{});
  PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &ours);
}

constexpr PyMemAllocatorDomain kGilDomains[] = {PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};

}  // namespace

void install_hooks() {
  install_raw_hooks();
  for (PyMemAllocatorDomain domain : kGilDomains) {
    PyMemAllocatorEx current;
    PyMem_GetAllocator(domain, &current);
    if (is_ours(current)) continue;
    Link& link = links().emplace_back(Link{domain, current});
    PyMemAllocatorEx ours = hooks_with<link_from_ctx>(&link);
    PyMem_SetAllocator(domain, &ours);
  }
}

bool raw_hooks_exhausted() {
  PyMemAllocatorEx current;
  PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &current);
  return !is_ours(current) && raw_slots_used == kRawSlots;
}

void uninstall_hooks() {
  for (PyMemAllocatorDomain domain : kGilDomains) {
    PyMemAllocatorEx current;
    PyMem_GetAllocator(domain, &current);
    if (current.malloc != hook_malloc<link_from_ctx>) continue;
    PyMemAllocatorEx next = link_from_ctx(current.ctx).next;
    PyMem_SetAllocator(domain, &next);
  }
}

bool should_trace_block(std::size_t size, std::uintptr_t address) noexcept {
  return should_record(size, reinterpret_cast<void*>(address));
}

void arm_probe() noexcept {
  disarm_probe();
  t_probe_saved_countdown = t_sampler.countdown();
  t_sampler.set_countdown(0);  // any block of one byte or more reaches sampler_crossed
  t_probe_armed = true;
}

void disarm_probe() noexcept {
  if (!t_probe_armed) return;
  t_probe_armed = false;
  t_sampler.set_countdown(t_probe_saved_countdown);
}

bool in_untraced_region() noexcept { return t_inside_hook; }
void enter_untraced_region() noexcept { t_inside_hook = true; }
void leave_untraced_region() noexcept { t_inside_hook = false; }

}  // namespace heapscope::cpython
