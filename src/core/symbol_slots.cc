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
constexpr unsigned kAbsolute = R_X86_64_64;
#elif defined(__aarch64__) && defined(__LP64__)
constexpr bool kSupported = true;
constexpr unsigned kJumpSlot = R_AARCH64_JUMP_SLOT;
constexpr unsigned kGlobDat = R_AARCH64_GLOB_DAT;
constexpr unsigned kAbsolute = R_AARCH64_ABS64;
#else
constexpr bool kSupported = false;
constexpr unsigned kJumpSlot = ~0u;
constexpr unsigned kGlobDat = ~0u;
constexpr unsigned kAbsolute = ~0u;
#endif

// A slot naming one of the hooks' symbols, found by a scan of the loaded
// objects. The catalogue of them is kept across stop() and start(): while
// no object was loaded or unloaded since the scan (dl_iterate_phdr's
// counters), start() rewrites the catalogued slots without reading any
// relocation table again (a test that starts and stops tens of thousands of
// times spent its time there).
struct Slot {
  std::uintptr_t slot;
  std::size_t hook;  // index into g_hooks
  bool relro;        // on a page the loader makes read-only
  int protection;    // that page's protection once read, else -1
  bool patched;      // holds, or held, our replacement; `saved` is valid
  bool seen;         // found again by the current scan
  void* saved;       // its value before us
  // A function pointer in the object's data (an absolute relocation, e.g.
  // libxml2's `xmlMalloc = malloc`), not a call slot: rewritten only while
  // it holds the function the loader put there (g_real), never a value the
  // library stored itself (xmlMemSetup).
  bool data;
};

// Everything below is guarded by g_lock, except g_active and the counters,
// which the dlopen wrapper reads first without it.
pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
Hook g_hooks[kMaxHooks + 1];  // the caller's, then dlopen's
void* g_real[kMaxHooks + 1];  // each hook's function as the loader resolves it
std::size_t g_hook_count = 0;
Slot* g_slots = nullptr;  // malloc'ed: no C++ exception on any path
std::size_t g_slot_count = 0;
std::size_t g_slot_capacity = 0;
bool g_out_of_memory = false;
long g_rewritten = 0;  // slots rewritten by the current install
std::atomic<bool> g_active{false};
// dl_iterate_phdr's counters of objects added and removed when the
// catalogue was last brought up to date; adds also read by the wrapper.
std::atomic<unsigned long long> g_seen_adds{~0ull};
unsigned long long g_seen_subs = ~0ull;

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

// Calls visit(slot, name, data) for each JUMP_SLOT or GLOB_DAT relocation
// (data false) and each absolute word-sized relocation with no addend, the
// way a function's address is stored in initialised data (data true).
template <typename Visit>
void for_each_slot(const LoadedObject& object, Visit&& visit) noexcept {
  Relocations r;
  if (!read_relocations(object, &r)) return;
  for (int t = 0; t < 2; ++t) {
    for (std::size_t i = 0; i < r.counts[t]; ++i) {
      const ElfW(Rela) & rel = r.tables[t][i];
      const auto type = static_cast<unsigned>(ELF64_R_TYPE(rel.r_info));
      const bool data = type == kAbsolute && rel.r_addend == 0;
      if (type != kJumpSlot && type != kGlobDat && !data) continue;
      const auto sym = ELF64_R_SYM(rel.r_info);
      if (sym == 0) continue;
      const std::size_t name = r.symtab[sym].st_name;
      if (name == 0 || (r.strsz != 0 && name >= r.strsz)) continue;
      visit(object.bias + rel.r_offset, r.strtab + name, data);
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
// given back its protection (read once from /proc/self/maps, then kept);
// a page the loader has not protected yet (an object another thread is
// still loading) is written as it is.
bool store_slot(Slot& entry, void* value) noexcept {
  auto* word = reinterpret_cast<void**>(entry.slot);
  if (!entry.relro) {
    __atomic_store_n(word, value, __ATOMIC_RELEASE);
    return true;
  }
  const auto page_size = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const std::uintptr_t page = entry.slot & ~(page_size - 1);
  int protection = entry.protection;
  if (protection < 0) protection = page_protection(page);
  if (protection < 0) return false;
  if (protection & PROT_WRITE) {
    __atomic_store_n(word, value, __ATOMIC_RELEASE);
    return true;
  }
  entry.protection = protection;
  auto* start = reinterpret_cast<void*>(page);
  if (mprotect(start, page_size, protection | PROT_WRITE) != 0) return false;
  __atomic_store_n(word, value, __ATOMIC_RELEASE);
  mprotect(start, page_size, protection);
  return true;
}

void* load_slot(const Slot& entry) noexcept {
  return __atomic_load_n(reinterpret_cast<void**>(entry.slot), __ATOMIC_ACQUIRE);
}

// Points a catalogued slot at our replacement, saving what it held.
void patch(Slot& entry) noexcept {
  void* replacement = g_hooks[entry.hook].replacement;
  void* current = load_slot(entry);
  if (current == replacement) return;  // ours already (a fork's parent, a second scan)
  if (entry.data && (current == nullptr || current != g_real[entry.hook])) return;
  entry.saved = current;
  entry.patched = true;
  if (store_slot(entry, replacement)) ++g_rewritten;
}

// Puts back a slot that still holds our replacement.
void restore(Slot& entry) noexcept {
  if (!entry.patched) return;
  entry.patched = false;
  if (load_slot(entry) == g_hooks[entry.hook].replacement) store_slot(entry, entry.saved);
}

void catalogue(std::uintptr_t slot, std::size_t hook, bool relro, bool data) noexcept {
  for (std::size_t i = 0; i < g_slot_count; ++i) {
    Slot& entry = g_slots[i];
    if (entry.slot != slot) continue;
    if (entry.hook != hook || entry.relro != relro || entry.data != data) {  // another object
      entry = Slot{slot, hook, relro, -1, false, true, nullptr, data};
    }
    entry.seen = true;
    return;
  }
  if (g_slot_count == g_slot_capacity) {
    const std::size_t capacity = g_slot_capacity == 0 ? 64 : 2 * g_slot_capacity;
    void* grown = std::realloc(g_slots, capacity * sizeof(Slot));
    if (grown == nullptr) {
      g_out_of_memory = true;
      return;
    }
    g_slots = static_cast<Slot*>(grown);
    g_slot_capacity = capacity;
  }
  g_slots[g_slot_count++] = Slot{slot, hook, relro, -1, false, true, nullptr, data};
}

// dl_iterate_phdr callback: catalogues one object's slots for the hooks.
int scan_object(dl_phdr_info* info, std::size_t, void*) {
  const LoadedObject object = object_of(*info);
  if (is_self(object)) return 0;
  bool wanted[kMaxHooks + 1];
  bool any = false;
  for (std::size_t h = 0; h < g_hook_count; ++h) {
    wanted[h] = g_hooks[h].wanted == nullptr || g_hooks[h].wanted(object);
    any = any || wanted[h];
  }
  if (!any) return 0;
  const auto page_size = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  for_each_slot(object, [&](std::uintptr_t slot, const char* name, bool data) {
    for (std::size_t h = 0; h < g_hook_count; ++h) {
      if (wanted[h] && std::strcmp(name, g_hooks[h].symbol) == 0) {
        catalogue(slot, h, in_relro(object, slot, page_size), data);
      }
    }
  });
  return 0;
}

int read_counters(dl_phdr_info* info, std::size_t, void* out) {
  auto* counters = static_cast<unsigned long long*>(out);
  counters[0] = info->dlpi_adds;
  counters[1] = info->dlpi_subs;
  return 1;  // the counters are the same in every entry: one is enough
}

void loaded_object_counters(unsigned long long* adds, unsigned long long* subs) noexcept {
  unsigned long long counters[2] = {0, 0};
  dl_iterate_phdr(read_counters, counters);
  *adds = counters[0];
  *subs = counters[1];
}

// Brings the catalogue up to date with the loaded objects, when any was
// loaded or unloaded since the last scan. Slots of objects unloaded since
// are dropped without being written (their memory is gone or reused).
void update_catalogue_locked() noexcept {
  unsigned long long adds, subs;
  loaded_object_counters(&adds, &subs);
  if (adds == g_seen_adds.load(std::memory_order_relaxed) && subs == g_seen_subs) return;
  for (std::size_t i = 0; i < g_slot_count; ++i) g_slots[i].seen = false;
  dl_iterate_phdr(scan_object, nullptr);
  std::size_t kept = 0;
  for (std::size_t i = 0; i < g_slot_count; ++i) {
    if (g_slots[i].seen) g_slots[kept++] = g_slots[i];
  }
  g_slot_count = kept;
  g_seen_adds.store(adds, std::memory_order_relaxed);
  g_seen_subs = subs;
}

void restore_all_locked() noexcept {
  g_active.store(false, std::memory_order_release);
  update_catalogue_locked();  // never write into an object unloaded since
  for (std::size_t i = 0; i < g_slot_count; ++i) restore(g_slots[i]);
}

void patch_all_locked() noexcept {
  update_catalogue_locked();
  for (std::size_t i = 0; i < g_slot_count; ++i) patch(g_slots[i]);
}

// A new set of hooks (other symbols, other replacements) makes the
// catalogue meaningless.
bool same_hooks(const Hook* hooks, std::size_t count) noexcept {
  if (count + 1 != g_hook_count) return false;
  for (std::size_t i = 0; i < count; ++i) {
    if (std::strcmp(hooks[i].symbol, g_hooks[i].symbol) != 0 ||
        hooks[i].replacement != g_hooks[i].replacement || hooks[i].wanted != g_hooks[i].wanted) {
      return false;
    }
  }
  return true;
}

void* dlopen_wrapper(const char* file, int mode) {
  // Our own slot for dlopen is never rewritten: this is the real one.
  void* handle = dlopen(file, mode);
  if (handle == nullptr || !g_active.load(std::memory_order_acquire)) return handle;
  const int saved_errno = errno;
  unsigned long long adds, subs;
  loaded_object_counters(&adds, &subs);
  if (adds != g_seen_adds.load(std::memory_order_relaxed)) {
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
  if (!same_hooks(hooks, count)) {
    g_slot_count = 0;
    g_seen_adds.store(~0ull, std::memory_order_relaxed);  // scan again
    g_seen_subs = ~0ull;
    for (std::size_t i = 0; i < count; ++i) g_hooks[i] = hooks[i];
    g_hooks[count] = Hook{"dlopen", reinterpret_cast<void*>(&dlopen_wrapper), nullptr};
    g_hook_count = count + 1;
    // Resolved here, outside dl_iterate_phdr (which holds the loader's lock).
    for (std::size_t i = 0; i < g_hook_count; ++i) g_real[i] = dlsym(RTLD_DEFAULT, g_hooks[i].symbol);
  }
  g_out_of_memory = false;
  g_rewritten = 0;
  g_active.store(true, std::memory_order_release);
  patch_all_locked();
  if (g_out_of_memory) {
    restore_all_locked();
    g_slot_count = 0;
    g_seen_adds.store(~0ull, std::memory_order_relaxed);
    g_seen_subs = ~0ull;
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
  LockGuard lock;
  update_catalogue_locked();
  std::size_t found = 0;
  for (std::size_t i = 0; i < g_slot_count; ++i) {
    const Slot& entry = g_slots[i];
    if (g_hooks[entry.hook].symbol == symbol && load_slot(entry) == g_hooks[entry.hook].replacement)
      ++found;
  }
  return found;
}

}  // namespace heapscope::core::symbol_slots
