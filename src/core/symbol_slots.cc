#include "symbol_slots.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace heapscope::core::symbol_slots {

namespace {

#if defined(__x86_64__) && defined(__LP64__)
constexpr bool kSupported = true;
constexpr unsigned kJumpSlot = R_X86_64_JUMP_SLOT;
constexpr unsigned kGlobDat = R_X86_64_GLOB_DAT;
#elif defined(__aarch64__) && defined(__LP64__)
constexpr bool kSupported = true;
constexpr unsigned kJumpSlot = R_AARCH64_JUMP_SLOT;
constexpr unsigned kGlobDat = R_AARCH64_GLOB_DAT;
#else
constexpr bool kSupported = false;
constexpr unsigned kJumpSlot = ~0u;
constexpr unsigned kGlobDat = ~0u;
#endif

// One slot we rewrote.
struct Patched {
  std::uintptr_t slot;
  void* saved;  // its value before us
  void* replacement;
  const char* symbol;
};

// Everything below is guarded by g_lock, except g_active and g_seen_adds,
// which the dlopen wrapper reads first without it.
pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
Hook g_hooks[kMaxHooks + 1];  // the caller's, then dlopen's
std::size_t g_hook_count = 0;
Patched* g_patched = nullptr;  // malloc'ed: no C++ exception on any path
std::size_t g_patched_count = 0;
std::size_t g_patched_capacity = 0;
bool g_out_of_memory = false;
long g_rewritten = 0;  // slots rewritten by the current pass
std::atomic<bool> g_active{false};
std::atomic<unsigned long long> g_seen_adds{0};

void* dlopen_wrapper(const char* file, int mode);

struct LockGuard {
  LockGuard() noexcept { pthread_mutex_lock(&g_lock); }
  ~LockGuard() { pthread_mutex_unlock(&g_lock); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;
};

// fork(): the child must not inherit the lock held by a thread that does
// not exist there. The slots themselves are inherited as they are, with the
// records describing them: nothing else to do.
void lock_for_fork() { pthread_mutex_lock(&g_lock); }
void unlock_after_fork() { pthread_mutex_unlock(&g_lock); }
pthread_once_t g_fork_handlers_once = PTHREAD_ONCE_INIT;
void register_fork_handlers() {
  pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
}

LoadedObject object_of(const dl_phdr_info& info) noexcept {
  return LoadedObject{info.dlpi_name != nullptr ? info.dlpi_name : "", info.dlpi_addr,
                      info.dlpi_phdr, static_cast<unsigned>(info.dlpi_phnum)};
}

// The object holding this code: never patched (its slots reach the real
// functions the replacements call).
bool is_self(const LoadedObject& object) noexcept {
  return object.contains(reinterpret_cast<std::uintptr_t>(&supported));
}

// The relocation tables of one object, from its PT_DYNAMIC.
struct Relocations {
  const ElfW(Rela) * tables[2] = {nullptr, nullptr};
  std::size_t counts[2] = {0, 0};
  const ElfW(Sym) * symtab = nullptr;
  const char* strtab = nullptr;
  std::size_t strsz = 0;
};

// glibc rewrites the d_ptr entries of a loaded object's dynamic section to
// run-time addresses; others (the vDSO, other C libraries) leave them
// relative to the load bias.
std::uintptr_t run_time_address(std::uintptr_t value, std::uintptr_t bias) noexcept {
  return value < bias ? value + bias : value;
}

bool read_relocations(const LoadedObject& object, Relocations* out) noexcept {
  const auto* phdrs = static_cast<const ElfW(Phdr)*>(object.phdrs);
  const ElfW(Dyn)* dyn = nullptr;
  for (unsigned i = 0; i < object.phnum; ++i) {
    if (phdrs[i].p_type == PT_DYNAMIC) {
      dyn = reinterpret_cast<const ElfW(Dyn)*>(object.bias + phdrs[i].p_vaddr);
    }
  }
  if (dyn == nullptr) return false;
  std::uintptr_t jmprel = 0, pltrelsz = 0, pltrel = 0, rela = 0, relasz = 0;
  std::uintptr_t relaent = sizeof(ElfW(Rela)), symtab = 0, strtab = 0, strsz = 0;
  for (; dyn->d_tag != DT_NULL; ++dyn) {
    switch (dyn->d_tag) {
      case DT_JMPREL:
        jmprel = dyn->d_un.d_ptr;
        break;
      case DT_PLTRELSZ:
        pltrelsz = dyn->d_un.d_val;
        break;
      case DT_PLTREL:
        pltrel = dyn->d_un.d_val;
        break;
      case DT_RELA:
        rela = dyn->d_un.d_ptr;
        break;
      case DT_RELASZ:
        relasz = dyn->d_un.d_val;
        break;
      case DT_RELAENT:
        relaent = dyn->d_un.d_val;
        break;
      case DT_SYMTAB:
        symtab = dyn->d_un.d_ptr;
        break;
      case DT_STRTAB:
        strtab = dyn->d_un.d_ptr;
        break;
      case DT_STRSZ:
        strsz = dyn->d_un.d_val;
        break;
      default:
        break;
    }
  }
  if (symtab == 0 || strtab == 0 || relaent != sizeof(ElfW(Rela))) return false;
  out->symtab = reinterpret_cast<const ElfW(Sym)*>(run_time_address(symtab, object.bias));
  out->strtab = reinterpret_cast<const char*>(run_time_address(strtab, object.bias));
  out->strsz = strsz;
  // x86-64 and aarch64 use RELA only; a REL-format PLT table is skipped.
  if (jmprel != 0 && pltrel == DT_RELA) {
    out->tables[0] = reinterpret_cast<const ElfW(Rela)*>(run_time_address(jmprel, object.bias));
    out->counts[0] = pltrelsz / sizeof(ElfW(Rela));
  }
  if (rela != 0) {
    out->tables[1] = reinterpret_cast<const ElfW(Rela)*>(run_time_address(rela, object.bias));
    out->counts[1] = relasz / sizeof(ElfW(Rela));
  }
  return true;
}

// Calls visit(slot, name) for each JUMP_SLOT or GLOB_DAT relocation.
template <typename Visit>
void for_each_slot(const LoadedObject& object, Visit&& visit) noexcept {
  Relocations r;
  if (!read_relocations(object, &r)) return;
  for (int t = 0; t < 2; ++t) {
    for (std::size_t i = 0; i < r.counts[t]; ++i) {
      const ElfW(Rela) & rel = r.tables[t][i];
      const auto type = static_cast<unsigned>(ELF64_R_TYPE(rel.r_info));
      if (type != kJumpSlot && type != kGlobDat) continue;
      const auto sym = ELF64_R_SYM(rel.r_info);
      if (sym == 0) continue;
      const std::size_t name = r.symtab[sym].st_name;
      if (name == 0 || (r.strsz != 0 && name >= r.strsz)) continue;
      visit(object.bias + rel.r_offset, r.strtab + name);
    }
  }
}

// The current protection of the page at `page`, from /proc/self/maps, or
// -1. Read without allocating, a buffer at a time.
int page_protection(std::uintptr_t page) noexcept {
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buffer[4096];
  std::size_t kept = 0;
  int result = -1;
  for (;;) {
    const ssize_t got = read(fd, buffer + kept, sizeof(buffer) - kept);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    std::size_t size = kept + static_cast<std::size_t>(got);
    std::size_t start = 0;
    for (std::size_t i = 0; i < size && result < 0; ++i) {
      if (buffer[i] != '\n') continue;
      // "start-end perms ...": hexadecimal addresses, then "rwxp".
      char* cursor = buffer + start;
      buffer[i] = '\0';
      const unsigned long low = std::strtoul(cursor, &cursor, 16);
      const unsigned long high = *cursor == '-' ? std::strtoul(cursor + 1, &cursor, 16) : 0;
      if (page >= low && page < high && cursor[0] == ' ' && cursor[1] != '\0') {
        result = (cursor[1] == 'r' ? PROT_READ : 0) | (cursor[2] == 'w' ? PROT_WRITE : 0) |
                 (cursor[3] == 'x' ? PROT_EXEC : 0);
      }
      start = i + 1;
    }
    if (result >= 0) break;
    kept = size - start;
    if (kept == sizeof(buffer)) kept = 0;  // a line longer than the buffer: not ours
    std::memmove(buffer, buffer + start, kept);
  }
  close(fd);
  return result;
}

// Whether `slot` lies in the object's PT_GNU_RELRO pages (the ones the
// loader makes read-only once relocated: the range's end is rounded down).
bool in_relro(const LoadedObject& object, std::uintptr_t slot, std::uintptr_t page_size) noexcept {
  const auto* phdrs = static_cast<const ElfW(Phdr)*>(object.phdrs);
  for (unsigned i = 0; i < object.phnum; ++i) {
    if (phdrs[i].p_type != PT_GNU_RELRO) continue;
    const std::uintptr_t start = (object.bias + phdrs[i].p_vaddr) & ~(page_size - 1);
    const std::uintptr_t end =
        (object.bias + phdrs[i].p_vaddr + phdrs[i].p_memsz) & ~(page_size - 1);
    if (slot >= start && slot < end) return true;
  }
  return false;
}

// One aligned word-sized store, so a concurrent caller reads the old or the
// new function. A read-only page (RELRO) is made writable around it and
// given back its protection; a page the loader has not protected yet (an
// object another thread is still loading) is written as it is.
bool store_slot(const LoadedObject& object, std::uintptr_t slot, void* value) noexcept {
  auto* word = reinterpret_cast<void**>(slot);
  const auto page_size = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  if (!in_relro(object, slot, page_size)) {
    __atomic_store_n(word, value, __ATOMIC_RELEASE);
    return true;
  }
  const std::uintptr_t page = slot & ~(page_size - 1);
  const int protection = page_protection(page);
  if (protection < 0) return false;
  if (protection & PROT_WRITE) {
    __atomic_store_n(word, value, __ATOMIC_RELEASE);
    return true;
  }
  auto* start = reinterpret_cast<void*>(page);
  if (mprotect(start, page_size, protection | PROT_WRITE) != 0) return false;
  __atomic_store_n(word, value, __ATOMIC_RELEASE);
  mprotect(start, page_size, protection);
  return true;
}

bool remember(std::uintptr_t slot, void* saved, const Hook& hook) noexcept {
  for (std::size_t i = 0; i < g_patched_count; ++i) {
    if (g_patched[i].slot == slot) {  // an object unloaded, another loaded at its address
      g_patched[i] = Patched{slot, saved, hook.replacement, hook.symbol};
      return true;
    }
  }
  if (g_patched_count == g_patched_capacity) {
    const std::size_t capacity = g_patched_capacity == 0 ? 64 : 2 * g_patched_capacity;
    void* grown = std::realloc(g_patched, capacity * sizeof(Patched));
    if (grown == nullptr) return false;
    g_patched = static_cast<Patched*>(grown);
    g_patched_capacity = capacity;
  }
  g_patched[g_patched_count++] = Patched{slot, saved, hook.replacement, hook.symbol};
  return true;
}

// dl_iterate_phdr callback: patches one object's slots for the active hooks.
int patch_object(dl_phdr_info* info, std::size_t, void*) {
  const LoadedObject object = object_of(*info);
  if (is_self(object)) return 0;
  bool wanted[kMaxHooks + 1];
  bool any = false;
  for (std::size_t h = 0; h < g_hook_count; ++h) {
    wanted[h] = g_hooks[h].wanted == nullptr || g_hooks[h].wanted(object);
    any = any || wanted[h];
  }
  if (!any) return 0;
  for_each_slot(object, [&](std::uintptr_t slot, const char* name) {
    for (std::size_t h = 0; h < g_hook_count; ++h) {
      const Hook& hook = g_hooks[h];
      if (!wanted[h] || std::strcmp(name, hook.symbol) != 0) continue;
      void* current = __atomic_load_n(reinterpret_cast<void**>(slot), __ATOMIC_ACQUIRE);
      if (current == hook.replacement) continue;  // patched already
      if (!remember(slot, current, hook)) {
        g_out_of_memory = true;
        continue;
      }
      if (store_slot(object, slot, hook.replacement)) ++g_rewritten;
    }
  });
  return 0;
}

// dl_iterate_phdr callback: puts back the recorded slots lying in this
// object (a recorded slot in no loaded object belonged to one unloaded
// since, whose memory is not to be written).
int restore_object(dl_phdr_info* info, std::size_t, void*) {
  const LoadedObject object = object_of(*info);
  if (is_self(object)) return 0;
  for (std::size_t i = g_patched_count; i-- > 0;) {
    Patched& p = g_patched[i];
    if (p.slot == 0 || !object.contains(p.slot)) continue;
    void* current = __atomic_load_n(reinterpret_cast<void**>(p.slot), __ATOMIC_ACQUIRE);
    if (current == p.replacement) store_slot(object, p.slot, p.saved);
    p.slot = 0;
  }
  return 0;
}

int read_adds(dl_phdr_info* info, std::size_t, void* out) {
  *static_cast<unsigned long long*>(out) = info->dlpi_adds;
  return 1;  // the counter is the same in every entry: one is enough
}

unsigned long long loaded_objects_added() noexcept {
  unsigned long long adds = 0;
  dl_iterate_phdr(read_adds, &adds);
  return adds;
}

void restore_all_locked() noexcept {
  g_active.store(false, std::memory_order_release);
  if (g_patched_count != 0) dl_iterate_phdr(restore_object, nullptr);
  g_patched_count = 0;
  g_hook_count = 0;
}

// A pass over every loaded object, under g_lock.
void patch_all_locked() noexcept {
  g_seen_adds.store(loaded_objects_added(), std::memory_order_relaxed);
  dl_iterate_phdr(patch_object, nullptr);
}

void* dlopen_wrapper(const char* file, int mode) {
  // Our own slot for dlopen is never rewritten: this is the real one.
  void* handle = dlopen(file, mode);
  if (handle == nullptr || !g_active.load(std::memory_order_acquire)) return handle;
  const int saved_errno = errno;
  if (loaded_objects_added() != g_seen_adds.load(std::memory_order_relaxed)) {
    LockGuard lock;
    if (g_active.load(std::memory_order_relaxed)) patch_all_locked();
  }
  errno = saved_errno;
  return handle;
}

}  // namespace

bool LoadedObject::contains(std::uintptr_t address) const noexcept {
  const auto* headers = static_cast<const ElfW(Phdr)*>(phdrs);
  for (unsigned i = 0; i < phnum; ++i) {
    if (headers[i].p_type != PT_LOAD) continue;
    const std::uintptr_t start = bias + headers[i].p_vaddr;
    if (address >= start && address < start + headers[i].p_memsz) return true;
  }
  return false;
}

bool supported() noexcept { return kSupported; }

long install(const Hook* hooks, std::size_t count) noexcept {
  if (!kSupported) return 0;
  if (count > kMaxHooks) return -1;
  pthread_once(&g_fork_handlers_once, register_fork_handlers);
  LockGuard lock;
  restore_all_locked();
  for (std::size_t i = 0; i < count; ++i) g_hooks[i] = hooks[i];
  g_hooks[count] = Hook{"dlopen", reinterpret_cast<void*>(&dlopen_wrapper), nullptr};
  g_hook_count = count + 1;
  g_out_of_memory = false;
  g_rewritten = 0;
  g_active.store(true, std::memory_order_release);
  patch_all_locked();
  if (g_out_of_memory) {
    restore_all_locked();
    return -1;
  }
  return g_rewritten;
}

void remove_all() noexcept {
  if (!kSupported) return;
  LockGuard lock;
  restore_all_locked();
}

std::size_t patched_slots(std::string_view symbol) noexcept {
  struct Count {
    std::string_view symbol;
    std::size_t found = 0;
  } count{symbol};
  LockGuard lock;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* arg) {
        auto* c = static_cast<Count*>(arg);
        const LoadedObject object = object_of(*info);
        for (std::size_t i = 0; i < g_patched_count; ++i) {
          const Patched& p = g_patched[i];
          if (p.slot == 0 || p.symbol != c->symbol || !object.contains(p.slot)) continue;
          if (__atomic_load_n(reinterpret_cast<void**>(p.slot), __ATOMIC_ACQUIRE) ==
              p.replacement) {
            ++c->found;
          }
        }
        return 0;
      },
      &count);
  return count.found;
}

}  // namespace heapscope::core::symbol_slots
