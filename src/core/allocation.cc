#include "allocation.h"

#ifdef HEAPSCOPE_FAULT_INJECTION
#include <atomic>

namespace heapscope::core {

namespace {
std::atomic<std::uint64_t> fail_at{0};
std::atomic<std::uint64_t> counted{0};
}  // namespace

void fail_allocation_at(std::uint64_t nth) noexcept {
  counted.store(0, std::memory_order_relaxed);
  fail_at.store(nth, std::memory_order_relaxed);
}

std::uint64_t allocations_counted() noexcept { return counted.load(std::memory_order_relaxed); }

bool injected_failure() noexcept {
  const std::uint64_t n = counted.fetch_add(1, std::memory_order_relaxed) + 1;
  return n == fail_at.load(std::memory_order_relaxed);
}

}  // namespace heapscope::core
#endif
