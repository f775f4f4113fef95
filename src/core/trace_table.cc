#include "trace_table.h"

#include <new>

namespace heapscope::core {

namespace {

constexpr std::size_t kInitialCapacity = 1024;
// Blocks are at least 16-byte aligned on 64-bit CPython: the low bits carry nothing.
constexpr unsigned kAlignBits = 4;

}  // namespace

TraceTable::TraceTable() = default;

std::size_t TraceTable::index_of(std::uintptr_t address) const noexcept {
  // Fibonacci hashing: one multiply, the top bits index the table. Runs
  // for every slot a deletion shifts, so it must be cheap.
  return static_cast<std::size_t>(((address >> kAlignBits) * 0x9E3779B97F4A7C15ULL) >> shift_);
}

std::size_t TraceTable::size_of(const Slot& slot) const noexcept {
  if (slot.size != kBigSize) return slot.size;
  auto it = big_sizes_.find(slot.address);
  return it == big_sizes_.end() ? kBigSize : it->second;
}

void TraceTable::place(const Slot& slot) noexcept {
  std::size_t i = index_of(slot.address);
  while (slots_[i].address != kEmpty) i = (i + 1) & (capacity_ - 1);
  slots_[i] = slot;
}

bool TraceTable::grow() noexcept {
  const std::size_t new_capacity = capacity_ ? capacity_ * 2 : kInitialCapacity;
  std::unique_ptr<Slot[]> fresh(new (std::nothrow) Slot[new_capacity]);
  if (!fresh) return false;
  for (std::size_t i = 0; i < new_capacity; ++i) fresh[i] = Slot{kEmpty, 0, 0};
  std::unique_ptr<Slot[]> old = std::move(slots_);
  const std::size_t old_capacity = capacity_;
  slots_ = std::move(fresh);
  capacity_ = new_capacity;
  shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(new_capacity));
  for (std::size_t i = 0; i < old_capacity; ++i) {
    if (old[i].address != kEmpty) place(old[i]);
  }
  return true;
}

bool TraceTable::insert(std::uintptr_t address, std::size_t size,
                        std::uint32_t traceback) noexcept {
  // Keep the load factor at or below 3/4 so probe runs stay short.
  if ((count_ + 1) * 4 > capacity_ * 3 && !grow()) return false;
  const std::uint32_t stored = size >= kBigSize ? kBigSize : static_cast<std::uint32_t>(size);
  if (stored == kBigSize) {
    try {
      big_sizes_[address] = size;
    } catch (const std::bad_alloc&) {
      return false;
    }
  }
  std::size_t i = index_of(address);
  while (true) {
    Slot& slot = slots_[i];
    if (slot.address == kEmpty) {
      slot = Slot{address, traceback, stored};
      ++count_;
      return true;
    }
    if (slot.address == address) {
      if (slot.size == kBigSize && stored != kBigSize) big_sizes_.erase(address);
      slot.traceback = traceback;
      slot.size = stored;
      return true;
    }
    i = (i + 1) & (capacity_ - 1);
  }
}

bool TraceTable::erase(std::uintptr_t address, TraceRecord* removed) noexcept {
  if (count_ == 0 || address == kEmpty) return false;
  const std::size_t mask = capacity_ - 1;
  std::size_t i = index_of(address);
  while (slots_[i].address != address) {
    if (slots_[i].address == kEmpty) return false;
    i = (i + 1) & mask;
  }
  if (removed) *removed = TraceRecord{address, size_of(slots_[i]), slots_[i].traceback};
  if (slots_[i].size == kBigSize) big_sizes_.erase(address);
  // Backward-shift deletion: pull later members of the probe run into the
  // hole so lookups never need tombstones.
  std::size_t hole = i;
  std::size_t j = i;
  while (true) {
    j = (j + 1) & mask;
    if (slots_[j].address == kEmpty) break;
    const std::size_t home = index_of(slots_[j].address);
    // Move slot j into the hole unless its home lies cyclically in (hole, j].
    const bool home_after_hole = ((j - home) & mask) < ((j - hole) & mask);
    if (!home_after_hole) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = Slot{kEmpty, 0, 0};
  --count_;
  return true;
}

bool TraceTable::find(std::uintptr_t address, TraceRecord* out) const noexcept {
  if (count_ == 0 || address == kEmpty) return false;
  std::size_t i = index_of(address);
  while (true) {
    const Slot& slot = slots_[i];
    if (slot.address == kEmpty) return false;
    if (slot.address == address) {
      *out = TraceRecord{address, size_of(slot), slot.traceback};
      return true;
    }
    i = (i + 1) & (capacity_ - 1);
  }
}

bool TraceTable::set_traceback(std::uintptr_t address, std::uint32_t traceback) noexcept {
  if (count_ == 0 || address == kEmpty) return false;
  std::size_t i = index_of(address);
  while (true) {
    Slot& slot = slots_[i];
    if (slot.address == kEmpty) return false;
    if (slot.address == address) {
      slot.traceback = traceback;
      return true;
    }
    i = (i + 1) & (capacity_ - 1);
  }
}

void TraceTable::clear() noexcept {
  slots_.reset();
  capacity_ = 0;
  shift_ = 63;
  count_ = 0;
  big_sizes_.clear();
}

std::size_t TraceTable::memory_bytes() const noexcept {
  return sizeof(*this) + capacity_ * sizeof(Slot) +
         big_sizes_.size() * (sizeof(std::uintptr_t) + sizeof(std::size_t) + 2 * sizeof(void*)) +
         big_sizes_.bucket_count() * sizeof(void*);
}

}  // namespace heapscope::core
