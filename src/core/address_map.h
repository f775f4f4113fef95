// A hash map from a block address to a value, for the allocation path's
// side tables (big sizes, unaligned traces): open addressing with linear
// probing and backward-shift deletion, in one NothrowVector. Insertion
// reports failure instead of throwing. Address 0 marks a free slot (no
// traced block lives at 0).
#pragma once

#include <cstddef>
#include <cstdint>

#include "nothrow_vector.h"

namespace heapscope::core {

template <typename V>
class AddressMap {
 public:
  V* find(std::uintptr_t address) noexcept {
    if (size_ == 0 || address == 0) return nullptr;
    for (std::size_t i = home(address);; i = (i + 1) & mask()) {
      if (slots_[i].address == address) return &slots_[i].value;
      if (slots_[i].address == 0) return nullptr;
    }
  }
  const V* find(std::uintptr_t address) const noexcept {
    return const_cast<AddressMap*>(this)->find(address);
  }
  // Sets the value at `address`, adding it if new; false without memory.
  [[nodiscard]] bool put(std::uintptr_t address, const V& value, bool* added = nullptr) noexcept {
    if (added) *added = false;
    if (V* existing = find(address)) {
      *existing = value;
      return true;
    }
    if ((size_ + 1) * 2 > slots_.size() && !grow()) return false;
    std::size_t i = home(address);
    while (slots_[i].address != 0) i = (i + 1) & mask();
    slots_[i] = Entry{address, value};
    ++size_;
    if (added) *added = true;
    return true;
  }
  bool erase(std::uintptr_t address) noexcept {
    if (size_ == 0 || address == 0) return false;
    std::size_t hole = home(address);
    while (slots_[hole].address != address) {
      if (slots_[hole].address == 0) return false;
      hole = (hole + 1) & mask();
    }
    for (std::size_t j = (hole + 1) & mask(); slots_[j].address != 0; j = (j + 1) & mask()) {
      const std::size_t at = home(slots_[j].address);
      // Entry j may move into the hole unless its home lies cyclically in (hole, j].
      if (((j - at) & mask()) >= ((j - hole) & mask())) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole].address = 0;
    --size_;
    return true;
  }
  template <typename F>
  void for_each(F&& visit) const {
    for (const Entry& e : slots_) {
      if (e.address != 0) visit(e.address, e.value);
    }
  }
  std::size_t size() const noexcept { return size_; }
  std::size_t memory_bytes() const noexcept { return slots_.capacity() * sizeof(Entry); }
  void reset() noexcept {
    slots_.reset();
    size_ = 0;
  }

 private:
  struct Entry {
    std::uintptr_t address;
    V value;
  };
  std::size_t mask() const noexcept { return slots_.size() - 1; }
  std::size_t home(std::uintptr_t address) const noexcept {
    return static_cast<std::size_t>(((address >> 3) * 0x9E3779B97F4A7C15ULL) >> shift_);
  }
  bool grow() noexcept {
    const std::size_t capacity = slots_.empty() ? 16 : slots_.size() * 2;
    NothrowVector<Entry> fresh;
    if (!fresh.assign_filled(capacity, Entry{0, V{}})) return false;
    const unsigned shift = 64 - static_cast<unsigned>(__builtin_ctzll(capacity));
    for (const Entry& e : slots_) {
      if (e.address == 0) continue;
      std::size_t i = static_cast<std::size_t>(((e.address >> 3) * 0x9E3779B97F4A7C15ULL) >> shift);
      while (fresh[i].address != 0) i = (i + 1) & (capacity - 1);
      fresh[i] = e;
    }
    slots_.swap(fresh);
    shift_ = shift;
    return true;
  }

  NothrowVector<Entry> slots_;
  std::size_t size_ = 0;
  unsigned shift_ = 64;
};

}  // namespace heapscope::core
