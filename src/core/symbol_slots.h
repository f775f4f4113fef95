// Rewriting the relocation slots through which loaded ELF objects call a
// named function, and putting them back.
//
// A shared object calls a function of another object (or an interposable
// function of its own) through a slot its relocations name: a JUMP_SLOT
// (the PLT's GOT entry) or a GLOB_DAT (a GOT entry: -fno-plt calls, taken
// addresses). The dynamic linker fills the slot with the function's
// address. Writing another address there diverts every call that object
// makes, without touching code: this is how heapscope sees calls that
// CPython made no hook for (`PyTraceMalloc_Track` from extensions,
// `_Py_NewReference` inside libpython).
//
// What install() does, in every loaded object the hook's filter accepts
// (never in the object holding this code: its own slots are how the
// replacements reach the real functions):
//  - reads PT_DYNAMIC (DT_JMPREL/DT_PLTRELSZ, DT_RELA/DT_RELASZ, DT_SYMTAB,
//    DT_STRTAB) and finds each JUMP_SLOT or GLOB_DAT relocation whose symbol
//    has the hook's name;
//  - records the slot's value, then stores the replacement with one aligned
//    word-sized store, so a thread calling through the slot meanwhile calls
//    either the old or the new function. A slot under PT_GNU_RELRO (full
//    RELRO: read-only after relocation) has its page made writable around
//    the store and read-only again;
//  - also rewrites a function's address stored in the object's initialised
//    data (an absolute relocation naming the symbol, no addend: libxml2's
//    `xmlMalloc = malloc`), but only while it holds what the loader put
//    there, so a pointer the library set itself (xmlMemSetup) is left alone;
//  - replaces `dlopen` the same way, so that objects loaded later (an
//    extension imported, ctypes.CDLL, dlopen from C) are patched as soon as
//    the real dlopen returns.
// remove_all() puts back each recorded slot whose object is still loaded
// and which still holds our replacement (someone who rewrote it since keeps
// theirs), and stops patching new objects.
//
// Slots are written only by install(), remove_all() and the dlopen wrapper,
// never from an allocator hook. ELF64 on x86-64 and aarch64; elsewhere
// install() patches nothing (supported() is false).
//
// One caller-visible difference: glibc's dlopen searches the DT_RPATH of the
// object that called it; with the wrapper in between, that caller is the
// object holding this code. Python's imports pass absolute paths and are not
// affected; a C library that relies on its own DT_RPATH (not DT_RUNPATH) to
// dlopen a bare name would not find it while the slots are installed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace heapscope::core::symbol_slots {

// A loaded object, as a hook's filter sees it.
struct LoadedObject {
  std::string_view path;  // empty for the main program
  std::uintptr_t bias;    // load bias (dl_iterate_phdr's dlpi_addr)
  const void* phdrs;      // its program headers (ElfW(Phdr)*)
  unsigned phnum;
  // Whether `address` lies in one of its loaded segments.
  bool contains(std::uintptr_t address) const noexcept;
};

// Whether a hook applies to `object`; null means every object.
using ObjectFilter = bool (*)(const LoadedObject& object);

struct Hook {
  const char* symbol;  // e.g. "PyTraceMalloc_Track"
  void* replacement;
  ObjectFilter wanted;
};

inline constexpr std::size_t kMaxHooks = 24;

// Whether this build can patch slots (ELF64, x86-64 or aarch64).
bool supported() noexcept;

// Makes `hooks` (at most kMaxHooks; the strings and functions must outlive
// them) the active set, patches every loaded object, and patches objects
// loaded later until remove_all(). Slots of a previous set are put back
// first. Returns the number of slots rewritten, dlopen's included, or -1
// when the set is too large or the bookkeeping could not grow (then
// nothing stays patched).
long install(const Hook* hooks, std::size_t count) noexcept;

// Puts back every slot still holding one of our replacements; objects
// loaded later are no longer patched.
void remove_all() noexcept;

// Slots currently holding our replacement for `symbol` (tests, docs).
std::size_t patched_slots(std::string_view symbol) noexcept;

}  // namespace heapscope::core::symbol_slots
