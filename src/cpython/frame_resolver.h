// Turns a captured (code object, instruction offset) into the engine's frame
// id, caching the answer so the line table is decoded once per instruction
// rather than once per allocation (CPython's module decodes it every time).
//
// The cache holds no reference to the code objects it knows: tracing must
// not keep alive code the program dropped (exec, compile, templates). An
// entry must still die with its code object, or a new code object at the
// same address would inherit its lines. Every version frees a code object
// with PyObject_Free, through our OBJ-domain free hook, in every
// interpreter: the hook asks may_hold() (a counting filter read without a
// lock) and, when it may, forget_code_unlocked() under the engine's lock,
// before the memory is released. So while an entry exists its code object
// is alive, and a capture that names a code object (taken from a live frame
// of the calling thread, which keeps it alive) may cache it, GIL or not.
//
// Guarded by the engine's mutex: every method expects the caller to hold it,
// except may_hold(). Nothing here throws or allocates through Python: it
// runs inside the allocator hooks.
#pragma once

#include <Python.h>

#include <cstddef>
#include <cstdint>

#include "core/engine.h"
#include "core/sampling/address_filter.h"
#include "frames/frame_capture.h"

namespace heapscope::cpython {

class FrameResolver {
 public:
  FrameResolver() = default;
  FrameResolver(const FrameResolver&) = delete;
  FrameResolver& operator=(const FrameResolver&) = delete;
  ~FrameResolver();

  // The frame id of `frame`, or core::kNoId when memory ran out. `*known`
  // (when given) becomes false if the code object has no entry here (no
  // memory): its death would then go unnoticed, so captures naming it must
  // not be remembered by address.
  std::uint32_t resolve_unlocked(core::Engine& engine, const hs_raw_frame& frame,
                                 bool* known = nullptr) noexcept;

  // Whether a block about to be freed at `address` may be a code object the
  // cache knows. No lock: the filter is raised, under the lock, before the
  // entry exists, so a code object's free (which follows, in the program's
  // own order, the capture that cached it) always finds it raised. False
  // positives only cost the locked lookup.
  [[gnu::always_inline]] bool may_hold(std::uintptr_t address) const noexcept {
    return filter_.may_contain(address);
  }

  // Drops the entry of the code object at `address`, which is being freed.
  // Returns whether there was one.
  bool forget_code_unlocked(std::uintptr_t address) noexcept;

  // Empties the cache (frame ids become invalid when the engine clears, and
  // code deaths may have gone unseen while our hooks were out of the chain).
  void clear_unlocked() noexcept;

  std::size_t memory_bytes_unlocked() const noexcept;

 private:
  // One code object's frame ids, by instruction (kNoId until first seen).
  // A slot with a null `code` is empty.
  struct CodeEntry {
    const PyCodeObject* code;
    std::uint32_t filename;
    std::uint32_t units;
    std::uint32_t* frame_by_unit;  // malloc'ed, `units` ids
  };

  CodeEntry* find_unlocked(const PyCodeObject* code) const noexcept;
  CodeEntry* insert_unlocked(core::Engine& engine, PyCodeObject* code) noexcept;
  bool grow_unlocked() noexcept;
  std::size_t home_of(const PyCodeObject* code) const noexcept;
  std::uint32_t filename_of_unlocked(core::Engine& engine, PyCodeObject* code) noexcept;

  // Open addressing, linear probing, at most half full; erasing shifts the
  // entries after a hole back, so there are no tombstones.
  CodeEntry* slots_ = nullptr;
  std::size_t capacity_ = 0;  // a power of two, or 0
  std::size_t size_ = 0;
  std::size_t most_entries_ = 0;  // the largest size_ since the last clear
  // The addresses of the code objects in slots_, for the free hook.
  core::sampling::AddressFilter filter_;
  // A filename's UTF-8 while it is interned (grown with realloc).
  char* utf8_ = nullptr;
  std::size_t utf8_capacity_ = 0;
};

}  // namespace heapscope::cpython
