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
// The newest traces wait in front of the regions, in a small direct-mapped
// array (young_): most Python objects die young, and a trace erased while
// still young never costs a region insert or a backward-shift erase. A
// young trace moves into its region when a newer one needs its slot. In the
// operation logs of benchmarks/table_replay.sh (CPython 3.11, nframe=1),
// 256 slots kept 20% (float) to 99% (raytrace) of traces from ever reaching
// a region; json 38%, ast 27%, deltablue 73%. 2,048 slots also hold a
// structure of a few thousand blocks built and dropped at once (deep_stack's
// lists: 134 -> 61 instructions per table operation in the replay), and
// cost the others little (json 88 -> 86, float 102 -> 101, each with more
// L1 misses: the array is 32 KiB).
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
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "address_map.h"
#include "nothrow_vector.h"

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

  // insert() for a block the allocator has just handed out, which is
  // untraced unless its free went unseen. Such a leftover trace is replaced
  // only when it is young or when the new trace leaves the young slots;
  // until then both are kept and counted, and erasing the new trace leaves
  // the old one as it was before. In exchange no region is searched: for a
  // trace that dies young, no region is touched at all. `*replaced_size`
  // receives the size of any trace the call dropped (the young trace at
  // `address`, or a leftover that a trace moving to its region replaced).
  // Inlined: a trace that takes a free young slot costs a few instructions.
  [[gnu::always_inline]] bool insert_fresh(std::uintptr_t address, std::size_t size,
                                           std::uint32_t traceback,
                                           std::size_t* replaced_size = nullptr) noexcept {
    if (!fits_a_slot(address, size, traceback)) [[unlikely]] {
      return insert_not_young(address, size, traceback, replaced_size);
    }
    YoungTrace& slot = young_[young_index(address)];
    if (slot.address == kNoYoung) {
      if (replaced_size) *replaced_size = kNothingReplaced;
      slot = YoungTrace{address, static_cast<std::uint32_t>(size), traceback};
      ++count_;
      return true;
    }
    if (slot.address == address) {
      if (replaced_size) *replaced_size = slot.size;
      slot.size = static_cast<std::uint32_t>(size);
      slot.traceback = traceback;
      return true;
    }
    return move_out_and_insert(slot, address, size, traceback, replaced_size);
  }

  // Removes the trace of `address`, copying it to `*removed` when given.
  // Returns false when the address was not traced.
  // Inlined: a trace erased while young costs a few instructions.
  [[gnu::always_inline]] bool erase(std::uintptr_t address, TraceRecord* removed) noexcept {
    if (YoungTrace* young = find_young(address)) {
      if (removed) *removed = TraceRecord{address, young->size, young->traceback};
      young->address = kNoYoung;
      --count_;
      return true;
    }
    return erase_from_regions(address, removed);
  }

  bool find(std::uintptr_t address, TraceRecord* out) const noexcept;

  // Points the trace of `address` at another traceback; false when untraced.
  bool set_traceback(std::uintptr_t address, std::uint32_t traceback) noexcept;

  void clear() noexcept;

  std::size_t size() const noexcept { return count_; }
  std::size_t memory_bytes() const noexcept;

  template <typename F>
  void for_each(F&& visit) const {
    for (const Region* region : regions_) {
      for (std::uint32_t i = 0; i < region->capacity; ++i) {
        const Slot& slot = region->slots[i];
        if (slot.traceback == kEmpty) continue;
        const std::uintptr_t address = address_of(region->number, slot.offset);
        visit(TraceRecord{address, size_of(address, slot), slot.traceback});
      }
    }
    unaligned_.for_each([&](std::uintptr_t, const TraceRecord& record) { visit(record); });
    for (const YoungTrace& young : young_) {
      if (young.address != kNoYoung) {
        visit(TraceRecord{young.address, young.size, young.traceback});
      }
    }
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
    Slot* slots;  // owned (allocation.h), nullptr while capacity is 0
  };

  // A young trace: a block that fits a region slot (fits_a_slot), so that it
  // can move there.
  struct YoungTrace {
    std::uintptr_t address;
    std::uint32_t size;
    std::uint32_t traceback;
  };
  static constexpr std::size_t kYoungSlots = 2048;                         // 32 KiB
  static constexpr std::uintptr_t kMisaligned = (1u << kOffsetShift) - 1;  // address bits
  static constexpr std::uintptr_t kNoYoung = 1;  // unaligned: never a young address
  // Whether a trace fits an 8-byte region slot: an aligned address (it has an
  // offset), a size under kBigSize, a traceback that is not the empty mark.
  // Only such traces may be young; others live in the regions' side maps.
  static bool fits_a_slot(std::uintptr_t address, std::size_t size,
                          std::uint32_t traceback) noexcept {
    return (address & kMisaligned) == 0 && size < kBigSize && traceback != kEmpty;
  }
  static std::size_t young_index(std::uintptr_t address) noexcept {
    // Fibonacci hashing: blocks of any one stride spread over every slot.
    return static_cast<std::size_t>(((address >> kOffsetShift) * 0x9E3779B97F4A7C15ULL) >>
                                    (64 - std::countr_zero(kYoungSlots)));
  }
  // The young slot holding `address`, or null. Any address may be asked:
  // an unaligned one (kNoYoung among them) is never young.
  YoungTrace* find_young(std::uintptr_t address) noexcept {
    YoungTrace& young = young_[young_index(address)];
    return young.address == address && (address & kMisaligned) == 0 ? &young : nullptr;
  }
  const YoungTrace* find_young(std::uintptr_t address) const noexcept {
    const YoungTrace& young = young_[young_index(address)];
    return young.address == address && (address & kMisaligned) == 0 ? &young : nullptr;
  }
  // Puts a young trace in `slot` (young_[young_index(address)], holding
  // another address), moving the trace there into its region first.
  // Inlined, as the region insert was before young traces: a call here
  // cost 20 instructions of saved registers per trace that ages.
  [[gnu::always_inline]] bool move_out_and_insert(YoungTrace& slot, std::uintptr_t address,
                                                  std::size_t size, std::uint32_t traceback,
                                                  std::size_t* replaced_size) noexcept {
    // The older trace, counted while young, is counted again as it enters
    // its region (unless it replaces a leftover there, one trace fewer):
    // either way count_ already includes the new trace.
    if (!insert_into_regions(slot.address, slot.size, slot.traceback, replaced_size)) [[unlikely]] {
      return insert_beside_young(address, size, traceback, replaced_size);
    }
    slot = YoungTrace{address, static_cast<std::uint32_t>(size), traceback};
    return true;
  }
  // move_out_and_insert() when its region had no room for the older trace.
  [[gnu::noinline, gnu::cold]] bool insert_beside_young(std::uintptr_t address, std::size_t size,
                                                        std::uint32_t traceback,
                                                        std::size_t* replaced_size) noexcept;
  void forget_young() noexcept { young_.fill(YoungTrace{kNoYoung, 0, 0}); }
  // erase() of a trace that is not young.
  bool erase_from_regions(std::uintptr_t address, TraceRecord* removed) noexcept;
  // insert() and insert_fresh() for a trace that cannot be young.
  [[gnu::noinline]] bool insert_not_young(std::uintptr_t address, std::size_t size,
                                          std::uint32_t traceback,
                                          std::size_t* replaced_size) noexcept;
  // insert() for the regions alone; its common case inlined in each caller.
  [[gnu::always_inline]] bool insert_into_regions(std::uintptr_t address, std::size_t size,
                                                  std::uint32_t traceback,
                                                  std::size_t* replaced_size) noexcept {
    // The common case: an aligned small block in a region whose table has
    // room. One probe run finds the trace to replace or the free slot.
    if (fits_a_slot(address, size, traceback)) [[likely]] {
      Region* region = find_region(address >> kRegionShift);
      if (region != nullptr && region->capacity != 0) [[likely]] {
        const auto offset = static_cast<std::uint16_t>(address >> kOffsetShift);
        const std::uint32_t mask = region->capacity - 1;
        Slot* slots = region->slots;
        std::uint32_t i = home_of(*region, offset);
        for (; slots[i].traceback != kEmpty; i = (i + 1) & mask) {
          if (slots[i].offset != offset) continue;
          if (slots[i].size == kBigSize) break;  // its side-map entry goes too
          if (replaced_size) *replaced_size = slots[i].size;
          slots[i].size = static_cast<std::uint16_t>(size);
          slots[i].traceback = traceback;
          return true;
        }
        if (slots[i].traceback == kEmpty && !over_load(region->count + 1, region->capacity)) {
          if (replaced_size) *replaced_size = kNothingReplaced;
          slots[i] = Slot{offset, static_cast<std::uint16_t>(size), traceback};
          if (region->count++ == 0) --empty_regions_;
          ++count_;
          return true;
        }
      }
    }
    return insert_slow(address, size, traceback, replaced_size);
  }

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
  Slot* take_slots(std::uint32_t capacity) noexcept;
  // Takes `slots` over: kept for reuse while the spares stay within
  // budget, freed otherwise.
  void keep_slots(Slot* slots, std::uint32_t capacity) noexcept;
  // Frees the regions, their slot arrays and the spares.
  void release_all() noexcept;
  [[gnu::noinline]] void give_back_memory(Region& region) noexcept;
  void drop_empty_regions() noexcept;

  // Grow a region's table above 4/5 full: 8-byte slots stay cheap at that
  // load, and linear probing within a few cache lines is still short.
  static bool over_load(std::uint32_t count, std::uint32_t capacity) noexcept {
    return static_cast<std::uint64_t>(count) * 5 > static_cast<std::uint64_t>(capacity) * 4;
  }

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
  NothrowVector<Region*> regions_;  // each owned (allocation.h)
  NothrowVector<std::int32_t> directory_;
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
  std::array<NothrowVector<Slot*>, kCapacityClasses> spare_;  // each owned
  std::size_t spare_bytes_ = 0;
  std::size_t slot_bytes_ = 0;  // in the regions' own tables

  std::array<YoungTrace, kYoungSlots> young_;

  std::size_t count_ = 0;  // young traces included
  AddressMap<std::size_t> big_sizes_;
  AddressMap<TraceRecord> unaligned_;
};

}  // namespace heapscope::core
