#include "frame_resolver.h"

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "core/allocation.h"

namespace heapscope::cpython {

namespace {

int line_at(PyCodeObject* code, int byte_offset) {
  // CPython reports a negative line (no line information) as 0.
  return std::max(0, PyCode_Addr2Line(code, byte_offset));
}

// Writes the UTF-8 form of code point `cp` at `out` (lone surrogates as
// three bytes, Python's "surrogatepass", so every filename round-trips);
// returns the end.
char* put_code_point(std::uint32_t cp, char* out) noexcept {
  if (cp < 0x80) {
    *out++ = static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out++ = static_cast<char>(0xC0 | (cp >> 6));
    *out++ = static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out++ = static_cast<char>(0xE0 | (cp >> 12));
    *out++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out++ = static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out++ = static_cast<char>(0xF0 | (cp >> 18));
    *out++ = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out++ = static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

constexpr std::size_t kFirstCapacity = 64;  // slots; a power of two

}  // namespace

FrameResolver::~FrameResolver() {
  clear_unlocked();
  std::free(slots_);
  std::free(utf8_);
}

std::size_t FrameResolver::home_of(const PyCodeObject* code) const noexcept {
  const auto address = reinterpret_cast<std::uintptr_t>(code);
  return static_cast<std::size_t>(((address >> 4) * 0x9E3779B97F4A7C15ull) >> 32) &
         (capacity_ - 1);
}

// The string's PEP 393 buffer read directly: PyUnicode_AsUTF8 would
// allocate through Python and write a cache into the object.
std::uint32_t FrameResolver::filename_of_unlocked(core::Engine& engine,
                                                  PyCodeObject* code) noexcept {
  PyObject* filename = code->co_filename;
  if (filename == nullptr || !PyUnicode_Check(filename)) return core::kNoId;
#if PY_VERSION_HEX < 0x030C0000
  if (!PyUnicode_IS_READY(filename)) return core::kNoId;
#endif
  const auto length = static_cast<std::size_t>(PyUnicode_GET_LENGTH(filename));
  const void* data = PyUnicode_DATA(filename);
  if (PyUnicode_IS_ASCII(filename)) {
    return engine.intern_filename_unlocked({static_cast<const char*>(data), length});
  }
  if (length > SIZE_MAX / 4) return core::kNoId;
  if (utf8_capacity_ < length * 4) {
    char* bigger = static_cast<char*>(std::realloc(utf8_, length * 4));
    if (bigger == nullptr) return core::kNoId;
    utf8_ = bigger;
    utf8_capacity_ = length * 4;
  }
  const int kind = PyUnicode_KIND(filename);
  char* end = utf8_;
  for (std::size_t i = 0; i < length; ++i) {
    end = put_code_point(PyUnicode_READ(kind, data, static_cast<Py_ssize_t>(i)), end);
  }
  return engine.intern_filename_unlocked({utf8_, static_cast<std::size_t>(end - utf8_)});
}

FrameResolver::CodeEntry* FrameResolver::find_unlocked(const PyCodeObject* code) const noexcept {
  if (size_ == 0) return nullptr;
  for (std::size_t i = home_of(code);; i = (i + 1) & (capacity_ - 1)) {
    CodeEntry& slot = slots_[i];
    if (slot.code == code) return &slot;
    if (slot.code == nullptr) return nullptr;
  }
}

bool FrameResolver::grow_unlocked() noexcept {
  const std::size_t old_capacity = capacity_;
  const std::size_t capacity = old_capacity == 0 ? kFirstCapacity : old_capacity * 2;
  auto* slots = core::allocate_array<CodeEntry>(capacity);
  if (slots == nullptr) return false;
  std::fill_n(slots, capacity, CodeEntry{});
  CodeEntry* old = slots_;
  slots_ = slots;
  capacity_ = capacity;
  for (std::size_t k = 0; k < old_capacity; ++k) {
    if (old[k].code == nullptr) continue;
    std::size_t i = home_of(old[k].code);
    while (slots_[i].code != nullptr) i = (i + 1) & (capacity_ - 1);
    slots_[i] = old[k];
  }
  std::free(old);
  return true;
}

FrameResolver::CodeEntry* FrameResolver::insert_unlocked(core::Engine& engine,
                                                         PyCodeObject* code) noexcept {
  const Py_ssize_t units = hs_code_units(code);
  if (units <= 0 || units > INT32_MAX) return nullptr;
  if ((size_ + 1) * 2 > capacity_ && !grow_unlocked()) return nullptr;
  auto* frame_by_unit = core::allocate_array<std::uint32_t>(static_cast<std::size_t>(units));
  if (frame_by_unit == nullptr) return nullptr;
  std::fill_n(frame_by_unit, units, core::kNoId);
  std::size_t i = home_of(code);
  while (slots_[i].code != nullptr) i = (i + 1) & (capacity_ - 1);
  // The filter before the entry: a free hook that misses the filter must
  // find no entry (see may_hold).
  filter_.add(reinterpret_cast<std::uintptr_t>(code));
  slots_[i] = CodeEntry{code, filename_of_unlocked(engine, code),
                        static_cast<std::uint32_t>(units), frame_by_unit};
  ++size_;
  most_entries_ = std::max(most_entries_, size_);
  return &slots_[i];
}

std::uint32_t FrameResolver::resolve_unlocked(core::Engine& engine, const hs_raw_frame& frame,
                                              bool* known) noexcept {
  CodeEntry* entry = find_unlocked(frame.code);
  if (entry == nullptr) entry = insert_unlocked(engine, frame.code);
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

bool FrameResolver::forget_code_unlocked(std::uintptr_t address) noexcept {
  CodeEntry* entry = find_unlocked(reinterpret_cast<const PyCodeObject*>(address));
  if (entry == nullptr) return false;
  std::free(entry->frame_by_unit);
  filter_.remove(address);
  --size_;
  // Backward-shift deletion: move each later entry of the run into the hole
  // when its home does not lie (cyclically) between the hole and it.
  const std::size_t mask = capacity_ - 1;
  std::size_t hole = static_cast<std::size_t>(entry - slots_);
  for (std::size_t j = (hole + 1) & mask; slots_[j].code != nullptr; j = (j + 1) & mask) {
    const std::size_t home = home_of(slots_[j].code);
    const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    slots_[hole] = slots_[j];
    hole = j;
  }
  slots_[hole] = CodeEntry{};
  return true;
}

void FrameResolver::clear_unlocked() noexcept {
  // Clearing all of the filter writes 64 KiB: only when a counter may have
  // stuck at its maximum (255 entries or more since the last time), which
  // removing the entries one by one would not bring back down. A program
  // that clears often (clear_traces() in a loop) knows few code objects.
  const bool whole_filter = most_entries_ >= 255;
  if (size_ != 0) {
    for (std::size_t i = 0; i < capacity_; ++i) {
      if (slots_[i].code == nullptr) continue;
      if (!whole_filter) filter_.remove(reinterpret_cast<std::uintptr_t>(slots_[i].code));
      std::free(slots_[i].frame_by_unit);
      slots_[i] = CodeEntry{};
    }
  }
  size_ = 0;
  if (whole_filter) filter_.clear();
  most_entries_ = 0;
}

std::size_t FrameResolver::memory_bytes_unlocked() const noexcept {
  std::size_t bytes = sizeof(*this) + capacity_ * sizeof(CodeEntry) + utf8_capacity_;
  for (std::size_t i = 0; i < capacity_; ++i) {
    bytes += slots_[i].units * sizeof(std::uint32_t);
  }
  return bytes;
}

}  // namespace heapscope::cpython
