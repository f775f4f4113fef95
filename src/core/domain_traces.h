// Traces of blocks reported in domains other than 0: memory an extension
// allocates itself and reports with PyTraceMalloc_Track(domain, ptr, size)
// (numpy's array data in domain 389047, pandas' hash tables in 424242...).
//
// Few and long-lived next to the allocator's blocks, so a plain
// open-addressing table keyed by (domain, address): linear probing,
// backward-shift deletion, grown at 3/4 full. Allocates with nothrow new
// only (no C++ exception anywhere). Not thread-safe: the Engine serialises
// every call under its lock.
#pragma once

#include <cstddef>
#include <cstdint>

namespace heapscope::core {

class DomainTraces {
 public:
  struct Trace {
    std::uintptr_t address;
    std::size_t size;
    std::uint32_t domain;
    std::uint32_t traceback;
  };
  static constexpr std::size_t kNothingReplaced = SIZE_MAX;

  DomainTraces() = default;
  ~DomainTraces();
  DomainTraces(const DomainTraces&) = delete;
  DomainTraces& operator=(const DomainTraces&) = delete;

  // Inserts or replaces the trace of (domain, address); `*replaced_size`
  // receives the replaced trace's size or kNothingReplaced. False, the
  // table unchanged, when it could not grow.
  bool insert(std::uint32_t domain, std::uintptr_t address, std::size_t size,
              std::uint32_t traceback, std::size_t* replaced_size) noexcept;
  // Removes the trace of (domain, address); false when there was none.
  bool erase(std::uint32_t domain, std::uintptr_t address, Trace* removed) noexcept;
  bool find(std::uint32_t domain, std::uintptr_t address, Trace* out) const noexcept;
  void clear() noexcept;

  std::size_t size() const noexcept { return count_; }
  std::size_t memory_bytes() const noexcept { return capacity_ * sizeof(Trace); }

  template <typename F>
  void for_each(F&& visit) const {
    for (std::size_t i = 0; i < capacity_; ++i) {
      if (slots_[i].traceback != kEmpty) visit(slots_[i]);
    }
  }

 private:
  static constexpr std::uint32_t kEmpty = UINT32_MAX;  // never a traceback id
  Trace* slots_ = nullptr;
  std::size_t capacity_ = 0;  // a power of two, or 0
  std::size_t count_ = 0;

  std::size_t home(std::uint32_t domain, std::uintptr_t address) const noexcept;
  // The slot holding (domain, address), or the empty slot ending its run.
  std::size_t probe(std::uint32_t domain, std::uintptr_t address) const noexcept;
  bool grow() noexcept;
};

}  // namespace heapscope::core
