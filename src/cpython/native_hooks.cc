#include "native_hooks.h"

#include <malloc.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "allocator_hooks.h"
#include "block_recorder.h"
#include "tracer.h"

namespace heapscope::cpython {

namespace {

// Set by start(native=True), cleared by stop(): a thread that read a slot
// just before stop() put it back, or before a start() without native,
// still reaches a hook, which must then only pass the call through.
std::atomic<bool> g_native{false};

// Marks the thread as inside a hook while a block is recorded, so that
// nothing the recording does is traced again (it allocates only through
// heapscope's own slots, which lead to the C library; this keeps it so if
// that ever changes). Restores what was there: the thread may have been in
// an untraced region already.
class Recording {
 public:
  Recording() noexcept : was_inside_(in_untraced_region()) { enter_untraced_region(); }
  ~Recording() {
    if (!was_inside_) leave_untraced_region();
  }
  Recording(const Recording&) = delete;
  Recording& operator=(const Recording&) = delete;

 private:
  bool was_inside_;
};

[[gnu::always_inline]] inline bool watching() noexcept {
  return g_native.load(std::memory_order_relaxed) && !in_untraced_region();
}

// Errno as the caller's allocator left it: recording must not change it
// (a caller may look at errno after a successful call, and a failed one's
// ENOMEM must reach it).
class KeepErrno {
 public:
  KeepErrno() noexcept : saved_(errno) {}
  ~KeepErrno() { errno = saved_; }
  KeepErrno(const KeepErrno&) = delete;
  KeepErrno& operator=(const KeepErrno&) = delete;

 private:
  int saved_;
};

[[gnu::noinline]] void note_allocated(void* block, std::size_t size) noexcept {
  KeepErrno keep;
  Recording recording;
  const auto address = reinterpret_cast<std::uintptr_t>(block);
  if (should_trace_block(size, address)) {
    record_tracked_block(kNativeDomain, address, size);
  } else {
    // Sampled mode, no sample point in this block: a trace left at this
    // address (its free went through a slot heapscope does not divert)
    // describes a block that is gone.
    forget_tracked_block(kNativeDomain, address);
  }
}

[[gnu::noinline]] void note_freed(void* block) noexcept {
  KeepErrno keep;
  forget_tracked_block(kNativeDomain, reinterpret_cast<std::uintptr_t>(block));
}

// The replacements. Each calls the C library's function through
// heapscope's own slot (never rewritten), then records.

void* native_malloc(std::size_t size) {
  void* block = std::malloc(size);
  if (block != nullptr && watching()) note_allocated(block, size);
  return block;
}

void* native_calloc(std::size_t count, std::size_t size) {
  void* block = std::calloc(count, size);
  // calloc checked count * size for overflow before returning a block.
  if (block != nullptr && watching()) note_allocated(block, count * size);
  return block;
}

void native_free(void* block) {
  // The trace goes before the block: once freed, another thread may get
  // the address and trace it.
  if (block != nullptr && watching()) note_freed(block);
  std::free(block);
}

// realloc and reallocarray: the old block's trace is taken before the call
// (for the same reason as free) and put back if the call fails.
template <typename Call>
void* moved(void* old_block, std::size_t size, Call&& call) {
  if (old_block == nullptr || !watching()) {
    void* block = call();
    if (old_block == nullptr && block != nullptr && watching()) note_allocated(block, size);
    return block;
  }
  core::Engine::TakenDomainTrace taken;
  bool had;
  {
    KeepErrno keep;
    had = tracer().engine.take_domain_trace(kNativeDomain,
                                            reinterpret_cast<std::uintptr_t>(old_block), &taken);
  }
  void* block = call();
  if (block != nullptr) {
    note_allocated(block, size);
  } else if (had && size != 0) {
    // Failed: the old block is still there. (A size of 0 freed it.)
    KeepErrno keep;
    tracer().engine.restore_domain_trace(taken);
  }
  return block;
}

void* native_realloc(void* old_block, std::size_t size) {
  return moved(old_block, size, [&] { return std::realloc(old_block, size); });
}

void* native_reallocarray(void* old_block, std::size_t count, std::size_t size) {
  std::size_t bytes;
  if (__builtin_mul_overflow(count, size, &bytes)) {
    errno = ENOMEM;  // as the C library does; the old block is untouched
    return nullptr;
  }
  return moved(old_block, bytes, [&] { return reallocarray(old_block, count, size); });
}

int native_posix_memalign(void** out, std::size_t alignment, std::size_t size) {
  const int result = posix_memalign(out, alignment, size);
  if (result == 0 && *out != nullptr && watching()) note_allocated(*out, size);
  return result;
}

void* native_aligned_alloc(std::size_t alignment, std::size_t size) {
  void* block = aligned_alloc(alignment, size);
  if (block != nullptr && watching()) note_allocated(block, size);
  return block;
}

void* native_memalign(std::size_t alignment, std::size_t size) {
  void* block = memalign(alignment, size);
  if (block != nullptr && watching()) note_allocated(block, size);
  return block;
}

void* native_valloc(std::size_t size) {
  void* block = valloc(size);
  if (block != nullptr && watching()) note_allocated(block, size);
  return block;
}

void* native_pvalloc(std::size_t size) {
  void* block = pvalloc(size);
  if (block != nullptr && watching()) note_allocated(block, size);
  return block;
}

bool starts_with(std::string_view text, std::string_view prefix) noexcept {
  return text.substr(0, prefix.size()) == prefix;
}

}  // namespace

bool native_hooks_wanted(const core::symbol_slots::LoadedObject& object) noexcept {
  if (object.path.empty()) return false;  // the main program: the interpreter
  std::string_view name = object.path;
  const std::size_t slash = name.rfind('/');
  if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
  for (std::string_view excluded :
       {"libpython", "libc.so", "libc-", "ld-linux", "ld-", "ld64.so", "libpthread", "libdl",
        "libstdc++", "libgcc_s", "linux-vdso", "linux-gate"}) {
    if (starts_with(name, excluded)) return false;
  }
  return true;
}

std::size_t native_hooks(core::symbol_slots::Hook* out) noexcept {
  const core::symbol_slots::ObjectFilter wanted = &native_hooks_wanted;
  std::size_t count = 0;
  auto add = [&](const char* symbol, void* replacement) {
    out[count++] = core::symbol_slots::Hook{symbol, replacement, wanted};
  };
  add("malloc", reinterpret_cast<void*>(&native_malloc));
  add("calloc", reinterpret_cast<void*>(&native_calloc));
  add("realloc", reinterpret_cast<void*>(&native_realloc));
  add("reallocarray", reinterpret_cast<void*>(&native_reallocarray));
  add("free", reinterpret_cast<void*>(&native_free));
  add("posix_memalign", reinterpret_cast<void*>(&native_posix_memalign));
  add("aligned_alloc", reinterpret_cast<void*>(&native_aligned_alloc));
  add("memalign", reinterpret_cast<void*>(&native_memalign));
  add("valloc", reinterpret_cast<void*>(&native_valloc));
  add("pvalloc", reinterpret_cast<void*>(&native_pvalloc));
  return count;
}

void set_native_tracing(bool on) noexcept { g_native.store(on, std::memory_order_relaxed); }
bool native_tracing() noexcept { return g_native.load(std::memory_order_relaxed); }

}  // namespace heapscope::cpython
