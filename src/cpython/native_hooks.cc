#include "native_hooks.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <mutex>
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

// The thread is in an untraced region while a block is recorded, so that
// nothing the recording does is traced again (it allocates only through
// heapscope's own slots, which lead to the C library; this keeps it so if
// that ever changes). (UntracedScope, allocator_hooks.h.)

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
  UntracedScope recording;
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

// ---- Anonymous mappings ----------------------------------------------------
//
// A traced mapping is a trace in kNativeDomain at its start, of its length
// rounded up to whole pages, and an entry in g_regions, the sorted list of
// traced mappings, so that an munmap (or a MAP_FIXED mapping, or an
// mremap) of any part of one finds it: the parts that stay mapped keep its
// traceback, each as a trace of its own. Guarded by the engine lock.

struct Region {
  std::uintptr_t start;
  std::uintptr_t end;
};
Region* g_regions = nullptr;  // malloc'ed through heapscope's own slot
std::size_t g_region_count = 0;
std::size_t g_region_capacity = 0;

std::uintptr_t page_size() noexcept {
  static const auto size = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  return size;
}

std::uintptr_t end_of(void* start, std::size_t length) noexcept {
  const std::uintptr_t page = page_size();
  return reinterpret_cast<std::uintptr_t>(start) + ((length + page - 1) & ~(page - 1));
}

// The index of the first region ending after `address`.
std::size_t first_ending_after(std::uintptr_t address) noexcept {
  std::size_t low = 0, high = g_region_count;
  while (low < high) {
    const std::size_t middle = (low + high) / 2;
    if (g_regions[middle].end <= address) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  return low;
}

// Regions never overlap: callers unmap [start, end) first.
bool insert_region_unlocked(std::uintptr_t start, std::uintptr_t end) noexcept {
  if (g_region_count == g_region_capacity) {
    const std::size_t capacity = g_region_capacity == 0 ? 64 : 2 * g_region_capacity;
    void* grown = std::realloc(g_regions, capacity * sizeof(Region));
    if (grown == nullptr) return false;
    g_regions = static_cast<Region*>(grown);
    g_region_capacity = capacity;
  }
  const std::size_t at = first_ending_after(start);
  std::memmove(g_regions + at + 1, g_regions + at, (g_region_count - at) * sizeof(Region));
  g_regions[at] = Region{start, end};
  ++g_region_count;
  return true;
}

// Takes [start, end) out of the traced mappings it overlaps: what is left
// of each becomes a trace of its own with the same traceback. Returns
// whether any traced mapping overlapped. Engine lock.
bool unmap_unlocked(core::Engine& engine, std::uintptr_t start, std::uintptr_t end) noexcept {
  bool overlapped = false;
  for (;;) {
    const std::size_t i = first_ending_after(start);
    if (i == g_region_count || g_regions[i].start >= end) return overlapped;
    overlapped = true;
    const Region region = g_regions[i];
    std::memmove(g_regions + i, g_regions + i + 1, (g_region_count - i - 1) * sizeof(Region));
    --g_region_count;
    core::Engine::TakenDomainTrace taken;
    if (!engine.take_domain_trace_unlocked(kNativeDomain, region.start, &taken)) continue;
    // The parts left lie outside [start, end): the next search skips them.
    for (const Region part : {Region{region.start, start}, Region{end, region.end}}) {
      if (part.start >= part.end) continue;
      core::Engine::TakenDomainTrace piece = taken;
      piece.trace.address = part.start;
      piece.trace.size = part.end - part.start;
      if (!engine.restore_domain_trace_unlocked(piece)) continue;
      if (!insert_region_unlocked(part.start, part.end)) {
        engine.untrack_unlocked(kNativeDomain, part.start);  // a trace no munmap would find
      }
    }
  }
}

[[gnu::noinline]] bool note_unmapped(void* start, std::size_t length) noexcept {
  KeepErrno keep;
  core::Engine& engine = tracer().engine;
  std::lock_guard lock(engine.mutex());
  return unmap_unlocked(engine, reinterpret_cast<std::uintptr_t>(start), end_of(start, length));
}

[[gnu::noinline]] void note_mapped(void* start, std::size_t length) noexcept {
  KeepErrno keep;
  UntracedScope recording;
  const auto address = reinterpret_cast<std::uintptr_t>(start);
  const std::uintptr_t end = end_of(start, length);
  // A mapping just made covers nothing live: whatever is traced there is
  // left from a mapping unmapped through a call heapscope did not see.
  note_unmapped(start, length);
  if (!should_trace_block(end - address, address)) return;
  if (record_tracked_block(kNativeDomain, address, end - address) != TrackResult::kStored) return;
  core::Engine& engine = tracer().engine;
  std::lock_guard lock(engine.mutex());
  if (!insert_region_unlocked(address, end)) engine.untrack_unlocked(kNativeDomain, address);
}

template <typename Offset>
void* mapped(void* (*call)(void*, std::size_t, int, int, int, Offset), void* address,
             std::size_t length, int protection, int flags, int fd, Offset offset) {
  // MAP_FIXED replaces what was mapped there.
  if ((flags & MAP_FIXED) != 0 && watching()) note_unmapped(address, length);
  void* block = call(address, length, protection, flags, fd, offset);
  if (block != MAP_FAILED && (flags & MAP_ANONYMOUS) != 0 && watching()) {
    note_mapped(block, length);
  }
  return block;
}

void* native_mmap(void* address, std::size_t length, int protection, int flags, int fd,
                  off_t offset) {
  return mapped<off_t>(&mmap, address, length, protection, flags, fd, offset);
}

void* native_mmap64(void* address, std::size_t length, int protection, int flags, int fd,
                    off64_t offset) {
  return mapped<off64_t>(&mmap64, address, length, protection, flags, fd, offset);
}

int native_munmap(void* address, std::size_t length) {
  // Before the call, as for free: once unmapped, another thread may map
  // the range and trace it.
  if (length != 0 && watching()) note_unmapped(address, length);
  return munmap(address, length);
}

// A traced mapping moved or resized keeps being traced (current traceback,
// as realloc); an untraced one stays untraced.
void* native_mremap(void* old_address, std::size_t old_length, std::size_t new_length, int flags,
                    ...) {
  void* new_address = nullptr;
  if ((flags & MREMAP_FIXED) != 0) {
    va_list arguments;
    va_start(arguments, flags);
    new_address = va_arg(arguments, void*);
    va_end(arguments);
  }
  if (!watching()) return mremap(old_address, old_length, new_length, flags, new_address);
  const bool traced = note_unmapped(old_address, old_length);
  if ((flags & MREMAP_FIXED) != 0) note_unmapped(new_address, new_length);
  void* block = mremap(old_address, old_length, new_length, flags, new_address);
  if (traced) {
    if (block != MAP_FAILED) {
      note_mapped(block, new_length);
    } else {
      note_mapped(old_address, old_length);  // failed: the old mapping is as it was
    }
  }
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
  // The interpreter, the C library and the loader, heapscope's C++ runtime,
  // and allocators and sanitizer runtimes that replace malloc for the whole
  // process (LD_PRELOAD): their own mappings back every block, Python's
  // included, and would be counted a second time.
  for (std::string_view excluded :
       {"libpython", "libc.so", "libc-", "ld-linux", "ld-", "ld64.so", "libpthread", "libdl",
        "libstdc++", "libgcc_s", "linux-vdso", "linux-gate", "libjemalloc", "libtcmalloc",
        "libmimalloc", "libhoard", "libasan", "libtsan", "liblsan", "libubsan", "libhwasan",
        "libmemusage", "libc_malloc_debug", "vgpreload"}) {
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
  add("mmap", reinterpret_cast<void*>(&native_mmap));
  add("mmap64", reinterpret_cast<void*>(&native_mmap64));
  add("munmap", reinterpret_cast<void*>(&native_munmap));
  add("mremap", reinterpret_cast<void*>(&native_mremap));
  return count;
}

void set_native_tracing(bool on) noexcept {
  g_native.store(on, std::memory_order_relaxed);
  if (on) return;
  // stop() drops every trace: the list of traced mappings goes with them.
  core::Engine& engine = tracer().engine;
  std::lock_guard lock(engine.mutex());
  g_region_count = 0;
}
bool native_tracing() noexcept { return g_native.load(std::memory_order_relaxed); }

}  // namespace heapscope::cpython
