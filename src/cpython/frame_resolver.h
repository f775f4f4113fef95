// Turns a captured (code object, instruction offset) into the engine's frame
// id, caching the answer so the line table is decoded once per instruction
// rather than once per allocation (CPython's module decodes it every time).
//
// Code-object address reuse: an entry must die with its code object, or a
// new code object at the same address would inherit its lines. On 3.12+ a
// code watcher tells us when a code object is destroyed; before 3.12 the
// cache owns a strong reference to every code object it holds, released by
// clear() (which needs the GIL). Without the GIL before 3.12 (RAW domain),
// nothing is cached: the frame is resolved directly.
//
// Guarded by the engine's mutex: every method expects the caller to hold it.
#pragma once

#include <Python.h>

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/engine.h"
#include "frames/frame_capture.h"

namespace heapscope::cpython {

class FrameResolver {
 public:
  // Whether code-object lifetimes are tracked by a code watcher (3.12+)
  // rather than by owning a reference.
  static constexpr bool kHasCodeWatchers = PY_VERSION_HEX >= 0x030C0000;

  // The frame id of `frame`, or core::kNoId when memory ran out.
  // `*known` (when given) becomes false if the code object has no entry here
  // (no memory, or no GIL before 3.12): its death would then go unnoticed,
  // so captures naming it must not be remembered by address.
  std::uint32_t resolve_unlocked(core::Engine& engine, const hs_raw_frame& frame, bool have_gil,
                                 bool* known = nullptr) noexcept;

  // Called when a code object dies (3.12+): its entry must not outlive it.
  // Returns whether the cache knew the code object.
  bool forget_code_unlocked(PyCodeObject* code) noexcept;

  // Empties the cache (frame ids become invalid when the engine clears).
  // Returns the code objects whose references the cache owned: the caller
  // releases them after unlocking, with the GIL.
  std::vector<PyObject*> clear_unlocked() noexcept;

  std::size_t memory_bytes_unlocked() const noexcept;

 private:
  struct CodeEntry {
    std::uint32_t filename = core::kNoId;
    std::uint32_t units = 0;
    std::unique_ptr<std::uint32_t[]> frame_by_unit;  // kNoId until first seen
    bool owns_reference = false;
  };

  CodeEntry* entry_for_unlocked(core::Engine& engine, PyCodeObject* code, bool have_gil) noexcept;
  static std::uint32_t filename_of_unlocked(core::Engine& engine, PyCodeObject* code) noexcept;

  std::unordered_map<PyCodeObject*, CodeEntry> codes_;
};

}  // namespace heapscope::cpython
