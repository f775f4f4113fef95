#include "domain_traces.h"

#include "allocation.h"

namespace heapscope::core {

DomainTraces::~DomainTraces() { release(slots_); }

std::size_t DomainTraces::home(std::uint32_t domain, std::uintptr_t address) const noexcept {
  const std::uint64_t key = (static_cast<std::uint64_t>(address) >> 3) ^
                            (static_cast<std::uint64_t>(domain) * 0xD6E8FEB86659FD93ull);
  return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> 32) & (capacity_ - 1);
}

std::size_t DomainTraces::probe(std::uint32_t domain, std::uintptr_t address) const noexcept {
  std::size_t i = home(domain, address);
  while (slots_[i].traceback != kEmpty &&
         (slots_[i].address != address || slots_[i].domain != domain)) {
    i = (i + 1) & (capacity_ - 1);
  }
  return i;
}

bool DomainTraces::grow() noexcept {
  const std::size_t capacity = capacity_ == 0 ? 16 : 2 * capacity_;
  Trace* grown = allocate_array<Trace>(capacity);
  if (grown == nullptr) return false;
  for (std::size_t i = 0; i < capacity; ++i) grown[i].traceback = kEmpty;
  Trace* old = slots_;
  const std::size_t old_capacity = capacity_;
  slots_ = grown;
  capacity_ = capacity;
  for (std::size_t i = 0; i < old_capacity; ++i) {
    if (old[i].traceback != kEmpty) slots_[probe(old[i].domain, old[i].address)] = old[i];
  }
  release(old);
  return true;
}

bool DomainTraces::insert(std::uint32_t domain, std::uintptr_t address, std::size_t size,
                          std::uint32_t traceback, std::size_t* replaced_size) noexcept {
  *replaced_size = kNothingReplaced;
  if ((count_ + 1) * 4 > capacity_ * 3 && !grow()) {
    // Could not grow: a replacement still fits, and so does a new trace
    // while one slot stays empty (every probe ends at an empty slot).
    if (capacity_ == 0) return false;
    if (slots_[probe(domain, address)].traceback == kEmpty && count_ + 2 > capacity_) return false;
  }
  Trace& slot = slots_[probe(domain, address)];
  if (slot.traceback != kEmpty) {
    *replaced_size = slot.size;
  } else {
    ++count_;
  }
  slot = Trace{address, size, domain, traceback};
  return true;
}

bool DomainTraces::erase(std::uint32_t domain, std::uintptr_t address, Trace* removed) noexcept {
  if (count_ == 0) return false;
  std::size_t hole = probe(domain, address);
  if (slots_[hole].traceback == kEmpty) return false;
  if (removed != nullptr) *removed = slots_[hole];
  // Backward shift: move each later member of the run whose home does not
  // lie strictly between the hole and itself into the hole.
  for (std::size_t i = (hole + 1) & (capacity_ - 1); slots_[i].traceback != kEmpty;
       i = (i + 1) & (capacity_ - 1)) {
    const std::size_t wanted = home(slots_[i].domain, slots_[i].address);
    const bool stays = hole <= i ? (hole < wanted && wanted <= i) : (hole < wanted || wanted <= i);
    if (stays) continue;
    slots_[hole] = slots_[i];
    hole = i;
  }
  slots_[hole].traceback = kEmpty;
  --count_;
  if (count_ == 0) clear();
  return true;
}

bool DomainTraces::find(std::uint32_t domain, std::uintptr_t address, Trace* out) const noexcept {
  if (count_ == 0) return false;
  const Trace& slot = slots_[probe(domain, address)];
  if (slot.traceback == kEmpty) return false;
  *out = slot;
  return true;
}

void DomainTraces::clear() noexcept {
  release(slots_);
  slots_ = nullptr;
  capacity_ = 0;
  count_ = 0;
}

}  // namespace heapscope::core
