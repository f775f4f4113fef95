// Which addresses may be traced, answered without the engine's lock: in
// sampled mode almost no freed block was recorded, and a free must not pay
// for a lock and a table probe to learn that.
//
// A counting filter with one hash: 64 Ki one-byte counters, each the number
// of traced addresses hashing to it. The engine changes counters under its
// lock, right after the table; readers load them relaxed. A reader that
// frees a block saw its allocation return (the program's own ordering), and
// the counter was raised before that return, so it never misses a traced
// block. False positives only cost the locked lookup. A counter that reaches
// 255 stays there (the filter then over-approximates, never under).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace heapscope::core::sampling {

class AddressFilter {
 public:
  [[gnu::always_inline]] bool may_contain(std::uintptr_t address) const noexcept {
    return counts_[slot(address)].load(std::memory_order_relaxed) != 0;
  }

  // Under the owner's lock.
  void add(std::uintptr_t address) noexcept {
    auto& c = counts_[slot(address)];
    const std::uint8_t v = c.load(std::memory_order_relaxed);
    if (v != kStuck) c.store(static_cast<std::uint8_t>(v + 1), std::memory_order_relaxed);
  }
  void remove(std::uintptr_t address) noexcept {
    auto& c = counts_[slot(address)];
    const std::uint8_t v = c.load(std::memory_order_relaxed);
    if (v != kStuck && v != 0) c.store(static_cast<std::uint8_t>(v - 1), std::memory_order_relaxed);
  }
  void clear() noexcept {
    for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
  }

 private:
  static constexpr unsigned kBits = 16;
  static constexpr std::uint8_t kStuck = 255;
  static std::size_t slot(std::uintptr_t address) noexcept {
    // Fibonacci hashing of the 16-byte granule: blocks are at least 16-byte
    // aligned in practice, and neighbours land far apart.
    return static_cast<std::size_t>(((address >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - kBits));
  }
  std::array<std::atomic<std::uint8_t>, std::size_t{1} << kBits> counts_{};
};

}  // namespace heapscope::core::sampling
