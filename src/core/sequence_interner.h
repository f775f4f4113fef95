// Gives each distinct sequence of 32-bit words a dense id, 0, 1, 2...
//
// Frames are interned as (filename id, line) and tracebacks as
// (total_nframe, frame ids...), so equal tracebacks share one id and one copy
// of their words, and a trace only stores that id. Ids live until clear().
// All words sit in one growing array: no allocation per sequence.
//
// Not thread-safe: the owner (Engine) serialises every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "nothrow_vector.h"

namespace heapscope::core {

class SequenceInterner {
 public:
  static constexpr std::uint32_t kNoId = UINT32_MAX;

  // The id of `words`, adding it if new; kNoId when memory ran out.
  std::uint32_t intern(std::span<const std::uint32_t> words) noexcept;

  std::span<const std::uint32_t> get(std::uint32_t id) const noexcept {
    const Entry& e = entries_[id];
    return {words_.data() + e.offset, e.length};
  }

  std::size_t size() const noexcept { return entries_.size(); }
  // A copy of `other`; false (this unchanged) without memory.
  [[nodiscard]] bool assign(const SequenceInterner& other) noexcept;
  void clear() noexcept;
  std::size_t memory_bytes() const noexcept;

 private:
  struct Entry {
    std::uint64_t offset;
    std::uint32_t length;
    std::uint32_t hash;
  };

  static std::uint32_t hash_of(std::span<const std::uint32_t> words) noexcept;
  bool equal(const Entry& e, std::span<const std::uint32_t> words) const noexcept;
  bool grow_index() noexcept;

  NothrowVector<std::uint32_t> words_;
  NothrowVector<Entry> entries_;
  NothrowVector<std::uint32_t> index_;  // open addressing over entry ids; kNoId = empty
};

}  // namespace heapscope::core
