// The live traces: block address -> (size, traceback id).
//
// Memory per trace is the point of this layout (CPython's module spends
// about 97 bytes of RSS per traced block). Addresses are split into a
// region (the bits above 512 KiB) and an offset inside it; each region that
// holds traces has its own open-addressing table of 8-byte slots:
//
//   slot = | offset: u16 (address bits 3..18) | size: u16 | traceback: u32 |
//
// so a trace costs 8 bytes divided by the table's load, with no allocation
// of its own. A table grows past 4/5 full (to 2/5) and shrinks under 1/10
// full, and regions left empty are freed in batches, so memory follows the
// live traces rather than their peak. Slot arrays a region lets go of are
// kept, up to a budget, for the next region that needs that capacity:
// programs that build and drop big structures in a loop would otherwise
// malloc, fault in and free the same arrays on every round.
// Sizes of 64 KiB and more keep their real size in a side map, and so do
// the rare addresses that are not 8-byte aligned, which have no offset.
//
// Within a region: linear probing on a Fibonacci hash of the offset, with
// backward-shift deletion (no tombstones). A free of an untraced block in a
// region with no traces costs one lookup in the region directory. Keeping
// pymalloc's neighbouring blocks in neighbouring slots of one big table
// was measured first and lost badly: dense pools filled long runs of slots,
// runs from different regions merged, and every free of an untraced block
// walked a whole run (callgrind, json+ast, CPython 3.11, nframe=1: 2.43 G
// instructions against 0.74 G fully scrambled; no tracing: 0.46 G).
//
// Not thread-safe: the owner (Engine) serialises every call.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

namespace heapscope::core {

struct TraceRecord {
  std::uintptr_t address;
  std::size_t size;
  std::uint32_t traceback;
};

class TraceTable {
 public:
  TraceTable();
  ~TraceTable();
  TraceTable(const TraceTable&) = delete;
  TraceTable& operator=(const TraceTable&) = delete;

  static constexpr std::size_t kNothingReplaced = SIZE_MAX;

  // Inserts or replaces the trace of `address`; `*replaced_size`, when
  // given, receives the size of the trace replaced, or kNothingReplaced.
  // Returns false, leaving the table unchanged, when growing it failed for
  // lack of memory.
  bool insert(std::uintptr_t address, std::size_t size, std::uint32_t traceback,
              std::size_t* replaced_size = nullptr) noexcept;

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
    for (const auto& region : regions_) {
      for (std::uint32_t i = 0; i < region->capacity; ++i) {
        const Slot& slot = region->slots[i];
        if (slot.traceback == kEmpty) continue;
        const std::uintptr_t address = address_of(region->number, slot.offset);
        visit(TraceRecord{address, size_of(address, slot), slot.traceback});
      }
    }
    for (const auto& [address, record] : unaligned_) visit(record);
  }

 private:
  static constexpr unsigned kOffsetShift = 3;  // 8-byte alignment
  static constexpr unsigned kRegionShift = kOffsetShift + 16;
  static constexpr std::uint32_t kEmpty = UINT32_MAX;    // traceback of a free slot
  static constexpr std::uint16_t kBigSize = UINT16_MAX;  // real size in big_sizes_

  struct Slot {
    std::uint16_t offset;
    std::uint16_t size;
    std::uint32_t traceback;
  };
  static_assert(sizeof(Slot) == 8);

  struct Region {
    std::uintptr_t number;
    std::uint32_t capacity = 0;  // a power of two
    std::uint32_t count = 0;
    unsigned shift = 0;  // 64 - log2(capacity)
    // The largest capacity the table had: a region that grows again after
    // draining (a structure built and dropped in a loop) goes back toward it
    // in fewer, bigger steps, each of which rehashes every trace.
    std::uint32_t peak_capacity = 0;
    std::unique_ptr<Slot[]> slots;
  };

  static std::uintptr_t address_of(std::uintptr_t region, std::uint16_t offset) noexcept {
    return (region << kRegionShift) | (static_cast<std::uintptr_t>(offset) << kOffsetShift);
  }
  std::size_t size_of(std::uintptr_t address, const Slot& slot) const noexcept;

  Region* find_region(std::uintptr_t number) const noexcept {
    const RegionCacheEntry& cached = region_cache_[number % kRegionCacheSize];
    if (cached.number == number) return cached.region;
    return find_region_slow(number);
  }
  // Looks `number` up in the directory and caches what it finds.
  Region* find_region_slow(std::uintptr_t number) const noexcept;
  void forget_cached_regions() noexcept { region_cache_.fill(RegionCacheEntry{}); }
  Region* find_or_add_region(std::uintptr_t number) noexcept;
  bool grow_directory() noexcept;
  bool rebuild_directory(std::size_t capacity) noexcept;
  bool resize_region(Region& region, std::uint32_t capacity) noexcept;
  // A slot array of `capacity` (a power of two), every slot empty; null
  // when out of memory.
  std::unique_ptr<Slot[]> take_slots(std::uint32_t capacity) noexcept;
  // Keeps `slots` for reuse while the spares stay within budget.
  void keep_slots(std::unique_ptr<Slot[]> slots, std::uint32_t capacity) noexcept;
  [[gnu::noinline]] void give_back_memory(Region& region) noexcept;
  void drop_empty_regions() noexcept;

  // Fibonacci hashing: one multiply; also run for every slot a deletion shifts.
  static std::uint32_t home_of(const Region& region, std::uint16_t offset) noexcept {
    return static_cast<std::uint32_t>((offset * 0x9E3779B97F4A7C15ULL) >> region.shift);
  }
  static Slot* find_slot(const Region& region, std::uint16_t offset) noexcept {
    if (region.count == 0) return nullptr;
    const std::uint32_t mask = region.capacity - 1;
    for (std::uint32_t i = home_of(region, offset);; i = (i + 1) & mask) {
      Slot& slot = region.slots[i];
      if (slot.traceback == kEmpty) return nullptr;
      if (slot.offset == offset) return &slot;
    }
  }

  // The general cases of insert() and erase(): a new region or a table that
  // must grow, sizes of 64 KiB and more, unaligned addresses. Kept out of
  // line so the common case carries none of their registers or code.
  [[gnu::noinline]] bool insert_slow(std::uintptr_t address, std::size_t size,
                                     std::uint32_t traceback, std::size_t* replaced_size) noexcept;
  [[gnu::noinline]] bool erase_unaligned(std::uintptr_t address, TraceRecord* removed) noexcept;
  [[gnu::noinline]] std::size_t erase_big_size(std::uintptr_t address) noexcept;
  bool insert_unaligned(std::uintptr_t address, std::size_t size, std::uint32_t traceback) noexcept;

  // Regions own their slots; the directory indexes them by region number
  // (open addressing over indexes into regions_, -1 = empty).
  std::vector<std::unique_ptr<Region>> regions_;
  std::vector<std::int32_t> directory_;
  unsigned directory_shift_ = 64;
  // Recently used regions, direct-mapped by region number: a program's
  // live blocks sit in a few dozen regions, and calls alternate between
  // them (one slot for the last region missed on a third of json's calls).
  struct RegionCacheEntry {
    std::uintptr_t number = UINTPTR_MAX;  // no region has this number
    Region* region = nullptr;
  };
  static constexpr std::size_t kRegionCacheSize = 64;
  mutable std::array<RegionCacheEntry, kRegionCacheSize> region_cache_{};
  std::size_t empty_regions_ = 0;  // regions holding no trace

  // Spare slot arrays by log2 of their capacity (at most 2^17 slots: an
  // offset has 16 bits and a table is at most 4/5 full).
  static constexpr unsigned kCapacityClasses = 18;
  std::array<std::vector<std::unique_ptr<Slot[]>>, kCapacityClasses> spare_;
  std::size_t spare_bytes_ = 0;
  std::size_t slot_bytes_ = 0;  // in the regions' own tables

  std::size_t count_ = 0;
  std::unordered_map<std::uintptr_t, std::size_t> big_sizes_;
  std::unordered_map<std::uintptr_t, TraceRecord> unaligned_;
};

}  // namespace heapscope::core
