// The live traces of sampled mode: block address -> (size, traceback id),
// with the same interface as TraceTable (trace_table.h).
//
// Sampling records about one block per 512 KiB allocated, so the traced
// addresses are sparse: TraceTable, built for dense pymalloc pools, then
// pays a region header and a smallest table (~118 bytes) per block. Here
// memory per trace follows the entropy of the data instead:
//
//   the entries, sorted by address, are cut into chunks of at most
//   kMaxEntries; a chunk is a header in a sorted vector (found by binary
//   search) and one heap buffer holding its entries as LEB128 varints:
//
//     | address - previous address | size | traceback |   (x count)
//
//   where the first entry's previous address is the chunk's base, its own
//   address (so its delta is the byte 0).
//
// For sampled blocks spread over tens of GiB that is ~3 bytes of delta,
// ~2 of size and ~2 of traceback, plus the chunk's share of header and
// malloc overhead: ~9 bytes per trace (tests/core/sampled_trace_table_test.cc).
//
// An update rewrites only the bytes of the entry it changes and of the one
// after it (whose delta changes), so an operation costs a binary search, a
// scan of one chunk and a copy of its buffer: O(log n + kMaxEntries). It is
// on a rare path: once per sampled block, and on the frees the address
// filter lets through. Buffers are allocated at the usable size of the malloc
// chunk they get anyway, so most small updates fit in place.
//
// Not thread-safe: the owner (Engine) serialises every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/nothrow_vector.h"
#include "core/trace_table.h"

namespace heapscope::core::sampling {

class SampledTraceTable {
 public:
  SampledTraceTable();
  ~SampledTraceTable();
  SampledTraceTable(const SampledTraceTable&) = delete;
  SampledTraceTable& operator=(const SampledTraceTable&) = delete;

  static constexpr std::size_t kNothingReplaced = SIZE_MAX;

  // The contract of TraceTable's methods of the same names (trace_table.h),
  // except that an erase never fails for lack of memory (it only shrinks a
  // buffer, in place if need be), set_traceback may (a longer varint),
  // and every traceback id is accepted.
  bool insert(std::uintptr_t address, std::size_t size, std::uint32_t traceback,
              std::size_t* replaced_size = nullptr) noexcept;
  // Sampled blocks are few: no young traces to skip a search for, so a
  // fresh block is inserted like any other.
  bool insert_fresh(std::uintptr_t address, std::size_t size, std::uint32_t traceback,
                    std::size_t* replaced_size = nullptr) noexcept {
    return insert(address, size, traceback, replaced_size);
  }
  bool erase(std::uintptr_t address, TraceRecord* removed) noexcept;
  bool find(std::uintptr_t address, TraceRecord* out) const noexcept;
  bool set_traceback(std::uintptr_t address, std::uint32_t traceback) noexcept;
  void clear() noexcept;

  std::size_t size() const noexcept { return count_; }
  std::size_t memory_bytes() const noexcept;

  // Visits every trace, in address order.
  template <typename F>
  void for_each(F&& visit) const {
    TraceRecord entries[kMaxEntries];
    for (const Chunk& chunk : chunks_) {
      decode(chunk, entries);
      for (std::uint32_t i = 0; i < chunk.count; ++i) visit(entries[i]);
    }
  }

 private:
  // Large enough that a chunk's fixed cost (its 24-byte header and a malloc
  // chunk's 8-byte header and rounding) is ~1 byte per trace, small enough
  // that scanning and copying one chunk stays within ~2000 instructions
  // (callgrind, 100k sparse traces: find ~1500, erase + insert ~3800; 32
  // would cost ~40% less and ~1.2 bytes per trace more).
  static constexpr std::uint32_t kMaxEntries = 64;
  // A chunk left with fewer traces joins a neighbour when they fit together.
  static constexpr std::uint32_t kMergeBelow = kMaxEntries / 4;
  // Varints of a 64-bit delta and size (10 bytes each) and a 32-bit id (5).
  static constexpr std::size_t kMaxEntryBytes = 25;

  struct Chunk {
    std::uintptr_t base = 0;  // the address of its first entry
    std::uint8_t* data = nullptr;  // owned (core/allocation.h)
    std::uint16_t count = 0;     // entries
    std::uint16_t bytes = 0;     // bytes of data in use
    std::uint16_t capacity = 0;  // bytes of data allocated
  };
  static_assert(sizeof(Chunk) == 24);
  static_assert(kMaxEntryBytes * (kMaxEntries + 1) + 64 <= UINT16_MAX);

  // Where an address is, or would go, inside a chunk.
  struct Position {
    std::uint32_t index;      // of the entry at or after the address (count: past the end)
    std::uint32_t offset;     // the byte that entry starts at (bytes: past the end)
    std::uint32_t end;        // one past its last byte
    std::uintptr_t previous;  // the address before it (the base for the first)
    TraceRecord entry;        // that entry, when index < count
    bool found;               // entry.address is the address looked for
  };

  static const std::uint8_t* get_varint(const std::uint8_t* p, std::uint64_t* value) noexcept {
    std::uint64_t v = 0;
    for (unsigned shift = 0;; shift += 7) {
      const std::uint8_t byte = *p++;
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) break;
    }
    *value = v;
    return p;
  }
  static const std::uint8_t* get_entry(const std::uint8_t* p, std::uintptr_t previous,
                                       TraceRecord* out) noexcept {
    std::uint64_t delta, size, traceback;
    p = get_varint(p, &delta);
    p = get_varint(p, &size);
    p = get_varint(p, &traceback);
    // Deltas wrap modulo 2^64, like the addresses they came from.
    *out = TraceRecord{previous + static_cast<std::uintptr_t>(delta),
                       static_cast<std::size_t>(size), static_cast<std::uint32_t>(traceback)};
    return p;
  }

  std::size_t chunk_for(std::uintptr_t address) const noexcept;
  static Position locate(const Chunk& chunk, std::uintptr_t address) noexcept;
  static bool splice(Chunk& chunk, std::uint32_t from, std::uint32_t to, const std::uint8_t* in,
                     std::size_t n) noexcept;
  static bool rewrite(Chunk& chunk, const Position& at, std::size_t size,
                      std::uint32_t traceback) noexcept;
  static bool make_chunk(const TraceRecord* entries, std::uint32_t n, Chunk* out) noexcept;
  static void decode(const Chunk& chunk, TraceRecord* out) noexcept;
  bool split_insert(std::size_t i, const Position& at, const TraceRecord& added) noexcept;
  void merge_small(std::size_t i) noexcept;
  void remove_chunk(std::size_t i) noexcept;

  NothrowVector<Chunk> chunks_;  // sorted by base; none empty
  std::size_t count_ = 0;
};

}  // namespace heapscope::core::sampling
