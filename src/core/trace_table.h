// The live traces: block address -> (size, traceback id).
//
// Open addressing with linear probing and backward-shift deletion, so a trace
// costs one 16-byte slot and no allocation of its own.
//
// The slot index is a scramble of the address (Fibonacci hashing). Keeping pymalloc's
// neighbouring blocks in neighbouring slots (scrambling only the 64 KiB
// region above them) was measured first and lost badly: dense pools fill
// long runs of slots, linear probing then merges runs from different
// regions, and every free of an untraced block walks a whole run.
// callgrind, json+ast workload, CPython 3.11, nframe=1: 2.43 G instructions
// with 64 KiB regions, 0.85 G with 1 KiB, 0.77 G with 256 B, 0.74 G fully
// scrambled (no tracing: 0.46 G).
//
// Not thread-safe: the owner (Engine) serialises every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>

namespace heapscope::core {

struct TraceRecord {
  std::uintptr_t address;
  std::size_t size;
  std::uint32_t traceback;
};

class TraceTable {
 public:
  TraceTable();

  // Inserts or replaces the trace of `address`. Returns false, leaving the
  // table unchanged, when growing it failed for lack of memory.
  bool insert(std::uintptr_t address, std::size_t size, std::uint32_t traceback) noexcept;

  // Removes the trace of `address`, copying it to `*removed` when given.
  // Returns false when the address was not traced.
  bool erase(std::uintptr_t address, TraceRecord* removed) noexcept;

  bool find(std::uintptr_t address, TraceRecord* out) const noexcept;

  // Points the trace of `address` at another traceback; false when untraced.
  bool set_traceback(std::uintptr_t address, std::uint32_t traceback) noexcept;

  void clear() noexcept;

  std::size_t size() const noexcept { return count_; }
  std::size_t memory_bytes() const noexcept;

  template <typename F>
  void for_each(F&& visit) const {
    for (std::size_t i = 0; i < capacity_; ++i) {
      const Slot& slot = slots_[i];
      if (slot.address != kEmpty) visit(TraceRecord{slot.address, size_of(slot), slot.traceback});
    }
  }

 private:
  // Sizes that do not fit 32 bits are rare (a >4 GiB block) and live in a side map.
  static constexpr std::uint32_t kBigSize = UINT32_MAX;
  static constexpr std::uintptr_t kEmpty = 0;

  struct Slot {
    std::uintptr_t address;
    std::uint32_t traceback;
    std::uint32_t size;
  };
  static_assert(sizeof(Slot) == 16);

  std::size_t index_of(std::uintptr_t address) const noexcept;
  std::size_t size_of(const Slot& slot) const noexcept;
  bool grow() noexcept;
  void place(const Slot& slot) noexcept;

  std::unique_ptr<Slot[]> slots_;
  std::size_t capacity_ = 0;  // a power of two
  unsigned shift_ = 63;       // 64 - log2(capacity_)
  std::size_t count_ = 0;
  std::unordered_map<std::uintptr_t, std::size_t> big_sizes_;
};

}  // namespace heapscope::core
