#include "frame_resolver.h"

#include <algorithm>
#include <new>
#include <string>

#include "unicode_utf8.h"

namespace heapscope::cpython {

namespace {

int line_at(PyCodeObject* code, int byte_offset) {
  // CPython reports a negative line (no line information) as 0.
  return std::max(0, PyCode_Addr2Line(code, byte_offset));
}

}  // namespace

std::uint32_t FrameResolver::filename_of_unlocked(core::Engine& engine,
                                                  PyCodeObject* code) noexcept {
  PyObject* filename = code->co_filename;
  if (filename == nullptr || !PyUnicode_Check(filename)) return core::kNoId;
  try {
    std::string utf8;
    if (!append_utf8(filename, utf8)) return core::kNoId;
    return engine.intern_filename_unlocked(utf8);
  } catch (const std::bad_alloc&) {
    return core::kNoId;
  }
}

FrameResolver::CodeEntry* FrameResolver::entry_for_unlocked(core::Engine& engine,
                                                            PyCodeObject* code,
                                                            bool have_gil) noexcept {
  if (auto it = codes_.find(code); it != codes_.end()) return &it->second;
  // Before 3.12 an entry needs a reference, and taking one needs the GIL.
  if (!kHasCodeWatchers && !have_gil) return nullptr;
  const Py_ssize_t units = hs_code_units(code);
  if (units <= 0 || units > INT32_MAX) return nullptr;
  CodeEntry entry;
  entry.filename = filename_of_unlocked(engine, code);
  entry.units = static_cast<std::uint32_t>(units);
  entry.frame_by_unit.reset(new (std::nothrow) std::uint32_t[entry.units]);
  if (!entry.frame_by_unit) return nullptr;
  std::fill_n(entry.frame_by_unit.get(), entry.units, core::kNoId);
  try {
    auto [it, inserted] = codes_.emplace(code, std::move(entry));
    if (!kHasCodeWatchers) {
      Py_INCREF(code);
      it->second.owns_reference = true;
    }
    return &it->second;
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

std::uint32_t FrameResolver::resolve_unlocked(core::Engine& engine, const hs_raw_frame& frame,
                                              bool have_gil, bool* known) noexcept {
  CodeEntry* entry = entry_for_unlocked(engine, frame.code, have_gil);
  if (known != nullptr && entry == nullptr) *known = false;
  const std::uint32_t filename = entry ? entry->filename : filename_of_unlocked(engine, frame.code);
  if (filename == core::kNoId) {
    // No usable filename: CPython reports the frame as ("<unknown>", 0).
    const std::uint32_t unknown = engine.intern_filename_unlocked("<unknown>");
    return unknown == core::kNoId ? core::kNoId : engine.intern_frame_unlocked(unknown, 0);
  }
  if (frame.lineno_override >= 0)
    return engine.intern_frame_unlocked(filename, frame.lineno_override);

  const bool cacheable = entry != nullptr && frame.byte_offset >= 0 &&
                         static_cast<std::uint32_t>(frame.byte_offset / 2) < entry->units;
  if (!cacheable) {
    return engine.intern_frame_unlocked(filename, line_at(frame.code, frame.byte_offset));
  }
  std::uint32_t& slot = entry->frame_by_unit[frame.byte_offset / 2];
  if (slot == core::kNoId) {
    slot = engine.intern_frame_unlocked(filename, line_at(frame.code, frame.byte_offset));
  }
  return slot;
}

bool FrameResolver::forget_code_unlocked(PyCodeObject* code) noexcept {
  return codes_.erase(code) != 0;
}

std::vector<PyObject*> FrameResolver::clear_unlocked() noexcept {
  std::vector<PyObject*> owned;
  try {
    owned.reserve(codes_.size());
  } catch (const std::bad_alloc&) {
    // Keep going: references we cannot hand back are leaked, never freed twice.
  }
  for (auto& [code, entry] : codes_) {
    if (entry.owns_reference && owned.size() < owned.capacity()) {
      owned.push_back(reinterpret_cast<PyObject*>(code));
    }
  }
  codes_.clear();
  return owned;
}

std::size_t FrameResolver::memory_bytes_unlocked() const noexcept {
  std::size_t bytes = sizeof(*this) + codes_.bucket_count() * sizeof(void*);
  for (const auto& [code, entry] : codes_) {
    bytes += sizeof(CodeEntry) + sizeof(void*) * 2 + entry.units * sizeof(std::uint32_t);
  }
  return bytes;
}

}  // namespace heapscope::cpython
