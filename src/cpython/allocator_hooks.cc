#include "allocator_hooks.h"

#include <Python.h>

#include <deque>
#include <memory>
#include <mutex>

#include "block_recorder.h"
#include "tracer.h"

namespace heapscope::cpython {

namespace {

// What one installation of our hooks wraps. Each hook receives its Link as
// `ctx`, so hooks installed twice in one chain (ours, someone else's, ours)
// each forward to their own next allocator and never loop.
struct Link {
  PyMemAllocatorDomain domain;
  PyMemAllocatorEx next;
};

// Links are never freed: a hook may still be running on another thread, or
// be buried in someone else's chain, long after we unhook. A deque keeps
// their addresses stable. Guarded by the GIL.
std::deque<Link>& links() {
  static auto* all = new std::deque<Link>();
  return *all;
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

void* hook_malloc(void* ctx, std::size_t size) {
  const Link& link = *static_cast<const Link*>(ctx);
  if (t_inside_hook || !tracer().engine.tracing()) return link.next.malloc(link.next.ctx, size);
  InsideHook inside;
  void* ptr = link.next.malloc(link.next.ctx, size);
  if (ptr != nullptr) record_new_block(link.domain == PYMEM_DOMAIN_RAW, reinterpret_cast<std::uintptr_t>(ptr), size);
  return ptr;
}

void* hook_calloc(void* ctx, std::size_t nelem, std::size_t elsize) {
  const Link& link = *static_cast<const Link*>(ctx);
  if (t_inside_hook || !tracer().engine.tracing()) {
    return link.next.calloc(link.next.ctx, nelem, elsize);
  }
  InsideHook inside;
  void* ptr = link.next.calloc(link.next.ctx, nelem, elsize);
  // A successful calloc means nelem * elsize did not overflow.
  if (ptr != nullptr) record_new_block(link.domain == PYMEM_DOMAIN_RAW, reinterpret_cast<std::uintptr_t>(ptr), nelem * elsize);
  return ptr;
}

void* hook_realloc(void* ctx, void* ptr, std::size_t new_size) {
  const Link& link = *static_cast<const Link*>(ctx);
  core::Engine& engine = tracer().engine;
  if (!engine.tracing()) return link.next.realloc(link.next.ctx, ptr, new_size);
  if (t_inside_hook) {
    // A nested realloc (pymalloc resizing through the raw allocator): the
    // old block is gone, and the outer hook traces the new one.
    void* moved = link.next.realloc(link.next.ctx, ptr, new_size);
    if (moved != nullptr && ptr != nullptr) engine.remove_trace(reinterpret_cast<std::uintptr_t>(ptr));
    return moved;
  }
  InsideHook inside;
  // Take the old trace out first: once realloc frees the old block, another
  // thread may be handed its address and trace it before we could remove it.
  core::TraceRecord old{};
  const bool had_old = ptr != nullptr && engine.take_trace(reinterpret_cast<std::uintptr_t>(ptr), &old);
  void* moved = link.next.realloc(link.next.ctx, ptr, new_size);
  if (moved != nullptr) {
    record_new_block(link.domain == PYMEM_DOMAIN_RAW, reinterpret_cast<std::uintptr_t>(moved), new_size);
  } else if (had_old) {
    engine.restore_trace(old);  // the old block is still alive and unchanged
  }
  return moved;
}

void hook_free(void* ctx, void* ptr) {
  const Link& link = *static_cast<const Link*>(ctx);
  // Untrace before freeing, for the same reason as in realloc. Frees are
  // untraced even from nested calls: the block is gone either way.
  if (ptr != nullptr && tracer().engine.tracing()) {
    tracer().engine.remove_trace(reinterpret_cast<std::uintptr_t>(ptr));
  }
  link.next.free(link.next.ctx, ptr);
}

constexpr PyMemAllocatorDomain kDomains[] = {PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};

bool is_ours(const PyMemAllocatorEx& allocator) { return allocator.malloc == hook_malloc; }

}  // namespace

void install_hooks() {
  for (PyMemAllocatorDomain domain : kDomains) {
    PyMemAllocatorEx current;
    PyMem_GetAllocator(domain, &current);
    if (is_ours(current)) continue;
    Link& link = links().emplace_back(Link{domain, current});
    PyMemAllocatorEx ours{&link, hook_malloc, hook_calloc, hook_realloc, hook_free};
    PyMem_SetAllocator(domain, &ours);
  }
}

void uninstall_hooks() {
  for (PyMemAllocatorDomain domain : kDomains) {
    PyMemAllocatorEx current;
    PyMem_GetAllocator(domain, &current);
    if (!is_ours(current)) continue;
    PyMemAllocatorEx next = static_cast<Link*>(current.ctx)->next;
    PyMem_SetAllocator(domain, &next);
  }
}

void enter_untraced_region() noexcept { t_inside_hook = true; }
void leave_untraced_region() noexcept { t_inside_hook = false; }

}  // namespace heapscope::cpython
