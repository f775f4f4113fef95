#include "trace_table.h"

#include <algorithm>

namespace heapscope::core {

namespace {

constexpr std::uint32_t kInitialRegionCapacity = 8;
// How much a table that drained grows at once while below its peak.
constexpr std::uint32_t kRegrowthStep = 8;
// Spare slot arrays kept: at least this much, more while the live tables
// are big (a quarter of them), so a round of building and dropping a
// structure of ~100k blocks reuses its arrays and a million live traces
// pay at most a few percent more.
constexpr std::size_t kMinSpareBytes = std::size_t{1} << 20;
constexpr std::size_t kKeptEmptyRegions = 64;
constexpr std::uint64_t kFibonacci = 0x9E3779B97F4A7C15ULL;

}  // namespace

TraceTable::TraceTable() { forget_young(); }
TraceTable::~TraceTable() { release_all(); }

void TraceTable::release_all() noexcept {
  for (Region* region : regions_) {
    release(region->slots);
    release(region);
  }
  regions_.reset();
  for (auto& spares : spare_) {
    for (Slot* slots : spares) release(slots);
    spares.reset();
  }
}

std::size_t TraceTable::size_of(std::uintptr_t address, const Slot& slot) const noexcept {
  if (slot.size != kBigSize) return slot.size;
  const std::size_t* size = big_sizes_.find(address);
  return size == nullptr ? kBigSize : *size;
}

TraceTable::Region* TraceTable::find_region_slow(std::uintptr_t number) const noexcept {
  if (directory_.empty()) return nullptr;
  const std::size_t mask = directory_.size() - 1;
  for (std::size_t i = (number * kFibonacci) >> directory_shift_;; i = (i + 1) & mask) {
    const std::int32_t index = directory_[i];
    if (index < 0) return nullptr;
    Region* region = regions_[static_cast<std::size_t>(index)];
    if (region->number == number) {
      region_cache_[number % kRegionCacheSize] = RegionCacheEntry{number, region};
      return region;
    }
  }
}

bool TraceTable::grow_directory() noexcept {
  return rebuild_directory(directory_.empty() ? 64 : directory_.size() * 2);
}

bool TraceTable::rebuild_directory(std::size_t capacity) noexcept {
  // At most half full, so probing always ends at an empty slot.
  if (regions_.size() * 2 > capacity) return false;
  NothrowVector<std::int32_t> fresh;
  if (!fresh.assign_filled(capacity, -1)) return false;
  {
    const unsigned shift = 64 - static_cast<unsigned>(__builtin_ctzll(capacity));
    for (std::size_t index = 0; index < regions_.size(); ++index) {
      std::size_t i = (regions_[index]->number * kFibonacci) >> shift;
      while (fresh[i] >= 0) i = (i + 1) & (capacity - 1);
      fresh[i] = static_cast<std::int32_t>(index);
    }
    directory_.swap(fresh);
    directory_shift_ = shift;
    return true;
  }
}

TraceTable::Region* TraceTable::find_or_add_region(std::uintptr_t number) noexcept {
  if (Region* region = find_region(number)) return region;
  if ((regions_.size() + 1) * 2 > directory_.size() && !grow_directory()) return nullptr;
  if (regions_.size() >= static_cast<std::size_t>(INT32_MAX)) return nullptr;
  Region* region = allocate_array<Region>(1);
  if (region == nullptr) return nullptr;
  *region = Region{number, 0, 0, 0, 0, nullptr};
  if (!regions_.push_back(region)) {
    release(region);
    return nullptr;
  }
  ++empty_regions_;  // until its first trace
  const std::size_t mask = directory_.size() - 1;
  std::size_t i = (number * kFibonacci) >> directory_shift_;
  while (directory_[i] >= 0) i = (i + 1) & mask;
  directory_[i] = static_cast<std::int32_t>(regions_.size() - 1);
  region_cache_[number % kRegionCacheSize] = RegionCacheEntry{number, region};
  return region;
}

TraceTable::Slot* TraceTable::take_slots(std::uint32_t capacity) noexcept {
  const auto log2 = static_cast<unsigned>(__builtin_ctz(capacity));
  Slot* slots;
  if (log2 < kCapacityClasses && !spare_[log2].empty()) {
    slots = spare_[log2].back();
    spare_[log2].pop_back();
    spare_bytes_ -= capacity * sizeof(Slot);
  } else {
    slots = allocate_array<Slot>(capacity);
    if (slots == nullptr) return nullptr;
  }
  std::fill_n(slots, capacity, Slot{0, 0, kEmpty});
  return slots;
}

void TraceTable::keep_slots(Slot* slots, std::uint32_t capacity) noexcept {
  const auto log2 = static_cast<unsigned>(__builtin_ctz(capacity));
  const std::size_t bytes = capacity * sizeof(Slot);
  if (slots == nullptr || log2 >= kCapacityClasses ||
      spare_bytes_ + bytes > std::max(kMinSpareBytes, slot_bytes_ / 4) ||
      !spare_[log2].push_back(slots)) {
    release(slots);  // not worth keeping, or no room to remember it
    return;
  }
  spare_bytes_ += bytes;
}

bool TraceTable::resize_region(Region& region, std::uint32_t capacity) noexcept {
  Slot* fresh = take_slots(capacity);
  if (fresh == nullptr) return false;
  Slot* old = region.slots;
  const std::uint32_t old_capacity = region.capacity;
  region.slots = fresh;
  region.capacity = capacity;
  region.shift = 64 - static_cast<unsigned>(__builtin_ctz(capacity));
  region.peak_capacity = std::max(region.peak_capacity, capacity);
  slot_bytes_ = slot_bytes_ + capacity * sizeof(Slot) - old_capacity * sizeof(Slot);
  for (std::uint32_t j = 0; j < old_capacity; ++j) {
    if (old[j].traceback == kEmpty) continue;
    std::uint32_t i = home_of(region, old[j].offset);
    while (region.slots[i].traceback != kEmpty) i = (i + 1) & (capacity - 1);
    region.slots[i] = old[j];
  }
  if (old_capacity != 0) keep_slots(old, old_capacity);
  return true;
}

void TraceTable::drop_empty_regions() noexcept {
  // Compact regions_ in place, then rebuild the directory at the size the
  // survivors need. Amortised: runs only once empties outnumber the living.
  std::size_t kept = 0;
  for (std::size_t i = 0; i < regions_.size(); ++i) {
    Region* region = regions_[i];
    if (region->count != 0) {
      regions_[kept++] = region;
      continue;
    }
    if (region->capacity != 0) {
      slot_bytes_ -= region->capacity * sizeof(Slot);
      keep_slots(region->slots, region->capacity);
    }
    release(region);
  }
  regions_.truncate(kept);
  empty_regions_ = 0;
  forget_cached_regions();
  std::size_t capacity = 64;
  while ((regions_.size() + 1) * 2 > capacity) capacity *= 2;
  if (capacity < directory_.size() && rebuild_directory(capacity)) return;
  // No memory for a smaller directory: re-index in the one we have, which
  // was big enough for more regions than are left, without allocating.
  std::fill(directory_.begin(), directory_.end(), -1);
  const std::size_t mask = directory_.size() - 1;
  for (std::size_t index = 0; index < regions_.size(); ++index) {
    std::size_t i = (regions_[index]->number * kFibonacci) >> directory_shift_;
    while (directory_[i] >= 0) i = (i + 1) & mask;
    directory_[i] = static_cast<std::int32_t>(index);
  }
}

bool TraceTable::insert_unaligned(std::uintptr_t address, std::size_t size,
                                  std::uint32_t traceback) noexcept {
  bool added = false;
  if (!unaligned_.put(address, TraceRecord{address, size, traceback}, &added)) return false;
  if (added) ++count_;
  return true;
}

bool TraceTable::insert(std::uintptr_t address, std::size_t size, std::uint32_t traceback,
                        std::size_t* replaced_size) noexcept {
  // As insert_fresh(), once no region holds a trace at `address`.
  if (fits_a_slot(address, size, traceback) && young_[young_index(address)].address != address) {
    const Region* region = find_region(address >> kRegionShift);
    if (region != nullptr &&
        find_slot(*region, static_cast<std::uint16_t>(address >> kOffsetShift)) != nullptr) {
      return insert_into_regions(address, size, traceback, replaced_size);  // replaced there
    }
  }
  return insert_fresh(address, size, traceback, replaced_size);
}

bool TraceTable::insert_not_young(std::uintptr_t address, std::size_t size, std::uint32_t traceback,
                                  std::size_t* replaced_size) noexcept {
  // A big or unaligned trace lives in the regions; one that was young at
  // the same address (a block grown in place past kBigSize) is dropped.
  YoungTrace* young = find_young(address);
  if (!insert_into_regions(address, size, traceback, replaced_size)) return false;
  if (young != nullptr) {
    if (replaced_size) {
      *replaced_size =
          *replaced_size == kNothingReplaced ? young->size : *replaced_size + young->size;
    }
    young->address = kNoYoung;
    --count_;
  }
  return true;
}

bool TraceTable::insert_beside_young(std::uintptr_t address, std::size_t size,
                                     std::uint32_t traceback, std::size_t* replaced_size) noexcept {
  // No memory to move the older trace out: it stays young, and the new one
  // goes to its own region if that has room (or is reported not inserted).
  return insert_into_regions(address, size, traceback, replaced_size);
}

bool TraceTable::insert_slow(std::uintptr_t address, std::size_t size, std::uint32_t traceback,
                             std::size_t* replaced_size) noexcept {
  if (replaced_size) *replaced_size = kNothingReplaced;
  if (traceback == kEmpty) return false;  // reserved for free slots
  if (address & ((1u << kOffsetShift) - 1)) {
    if (replaced_size) {
      if (const TraceRecord* old = unaligned_.find(address)) *replaced_size = old->size;
    }
    return insert_unaligned(address, size, traceback);
  }
  Region* region = find_or_add_region(address >> kRegionShift);
  if (region == nullptr) return false;
  const auto offset = static_cast<std::uint16_t>(address >> kOffsetShift);
  const bool big = size >= kBigSize;
  const auto slot_size = big ? kBigSize : static_cast<std::uint16_t>(size);
  // One probe run finds either the trace to replace or the empty slot that
  // ends the run, which is where a new trace goes unless the table grows.
  std::uint32_t i = 0;
  if (region->capacity != 0) {
    const std::uint32_t mask = region->capacity - 1;
    for (i = home_of(*region, offset); region->slots[i].traceback != kEmpty; i = (i + 1) & mask) {
      Slot& slot = region->slots[i];
      if (slot.offset != offset) continue;
      const std::size_t old_size = size_of(address, slot);
      if (big) {
        if (!big_sizes_.put(address, size)) return false;
      } else if (slot.size == kBigSize) {
        big_sizes_.erase(address);
      }
      slot.size = slot_size;
      slot.traceback = traceback;
      if (replaced_size) *replaced_size = old_size;
      return true;
    }
  }
  if (region->capacity == 0 || over_load(region->count + 1, region->capacity)) {
    std::uint32_t grown = region->capacity ? region->capacity * 2 : kInitialRegionCapacity;
    if (region->peak_capacity > grown) {
      grown = std::min(region->peak_capacity, std::max(grown, region->capacity * kRegrowthStep));
    }
    if (!resize_region(*region, grown)) return false;
    const std::uint32_t mask = region->capacity - 1;
    for (i = home_of(*region, offset); region->slots[i].traceback != kEmpty; i = (i + 1) & mask) {
    }
  }
  if (big && !big_sizes_.put(address, size)) return false;
  region->slots[i] = Slot{offset, slot_size, traceback};
  if (region->count++ == 0) --empty_regions_;
  ++count_;
  return true;
}

bool TraceTable::erase_unaligned(std::uintptr_t address, TraceRecord* removed) noexcept {
  const TraceRecord* record = unaligned_.find(address);
  if (record == nullptr) return false;
  if (removed) *removed = *record;
  unaligned_.erase(address);
  --count_;
  return true;
}

std::size_t TraceTable::erase_big_size(std::uintptr_t address) noexcept {
  const std::size_t* found = big_sizes_.find(address);
  if (found == nullptr) return kBigSize;
  const std::size_t size = *found;
  big_sizes_.erase(address);
  return size;
}

bool TraceTable::erase_from_regions(std::uintptr_t address, TraceRecord* removed) noexcept {
  if (count_ == 0) return false;
  if (address & ((1u << kOffsetShift) - 1)) return erase_unaligned(address, removed);
  Region* region = find_region(address >> kRegionShift);
  if (region == nullptr) return false;
  Slot* slot = find_slot(*region, static_cast<std::uint16_t>(address >> kOffsetShift));
  if (slot == nullptr) return false;
  const std::size_t size = slot->size == kBigSize ? erase_big_size(address) : slot->size;
  if (removed) *removed = TraceRecord{address, size, slot->traceback};
  // Backward-shift deletion: pull later members of the probe run into the
  // hole so lookups never need tombstones.
  const std::uint32_t mask = region->capacity - 1;
  auto hole = static_cast<std::uint32_t>(slot - region->slots);
  for (std::uint32_t j = (hole + 1) & mask; region->slots[j].traceback != kEmpty;
       j = (j + 1) & mask) {
    const std::uint32_t home = home_of(*region, region->slots[j].offset);
    // Slot j may move into the hole unless its home lies cyclically in (hole, j].
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      region->slots[hole] = region->slots[j];
      hole = j;
    }
  }
  region->slots[hole] = Slot{0, 0, kEmpty};
  --region->count;
  --count_;
  // give_back_memory acts only on a table under 1/10 full (which an empty
  // region's is): tested here so the common erase makes no call.
  if (region->count * 10 < region->capacity) give_back_memory(*region);
  return true;
}

void TraceTable::give_back_memory(Region& region) noexcept {
  // Shrink a table under 1/10 full to twice its need, so memory follows
  // the live traces, not the peak. The 8x gap to the growth threshold keeps
  // an alternating insert/erase from resizing every time.
  if (region.capacity > kInitialRegionCapacity && region.count * 10 < region.capacity) {
    std::uint32_t capacity = kInitialRegionCapacity;
    while (over_load(region.count * 2, capacity)) capacity *= 2;
    resize_region(region, capacity);  // on failure the bigger table simply stays
  }
  if (region.count == 0) {
    ++empty_regions_;
    // Keep a few empty regions: a block allocated and freed in a loop in an
    // otherwise empty region must not cost a malloc per trace.
    if (empty_regions_ > kKeptEmptyRegions && empty_regions_ * 2 > regions_.size()) {
      drop_empty_regions();
    }
  }
}

bool TraceTable::find(std::uintptr_t address, TraceRecord* out) const noexcept {
  if (count_ == 0) return false;
  if (const YoungTrace* young = find_young(address)) {
    *out = TraceRecord{address, young->size, young->traceback};
    return true;
  }
  if (address & ((1u << kOffsetShift) - 1)) {
    const TraceRecord* record = unaligned_.find(address);
    if (record == nullptr) return false;
    *out = *record;
    return true;
  }
  const Region* region = find_region(address >> kRegionShift);
  if (region == nullptr) return false;
  const Slot* slot = find_slot(*region, static_cast<std::uint16_t>(address >> kOffsetShift));
  if (slot == nullptr) return false;
  *out = TraceRecord{address, size_of(address, *slot), slot->traceback};
  return true;
}

bool TraceTable::set_traceback(std::uintptr_t address, std::uint32_t traceback) noexcept {
  if (count_ == 0 || traceback == kEmpty) return false;
  if (YoungTrace* young = find_young(address)) {
    young->traceback = traceback;
    return true;
  }
  if (address & ((1u << kOffsetShift) - 1)) {
    TraceRecord* record = unaligned_.find(address);
    if (record == nullptr) return false;
    record->traceback = traceback;
    return true;
  }
  Region* region = find_region(address >> kRegionShift);
  if (region == nullptr) return false;
  Slot* slot = find_slot(*region, static_cast<std::uint16_t>(address >> kOffsetShift));
  if (slot == nullptr) return false;
  slot->traceback = traceback;
  return true;
}

void TraceTable::clear() noexcept {
  // Release the memory, not just the contents: clear_traces() gives it back.
  release_all();
  directory_.reset();
  directory_shift_ = 64;
  forget_cached_regions();
  empty_regions_ = 0;
  spare_bytes_ = 0;
  slot_bytes_ = 0;
  forget_young();
  count_ = 0;
  big_sizes_.reset();
  unaligned_.reset();
}

std::size_t TraceTable::memory_bytes() const noexcept {
  std::size_t bytes = sizeof(*this) + directory_.capacity() * sizeof(std::int32_t) +
                      regions_.capacity() * sizeof(Region*);
  bytes += regions_.size() * sizeof(Region) + slot_bytes_ + spare_bytes_;
  for (const auto& spares : spare_) bytes += spares.capacity() * sizeof(Slot*);
  return bytes + big_sizes_.memory_bytes() + unaligned_.memory_bytes();
}

}  // namespace heapscope::core
