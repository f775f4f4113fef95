// The lock guarding the engine's tables.
//
// Hand-written because the critical sections are a few dozen nanoseconds
// and almost never contended (MEM/OBJ hooks already run one at a time under
// the GIL; only RAW calls without the GIL race them): an uncontended
// std::mutex costs two library calls, this costs one atomic exchange and one
// store. A waiter spins briefly, then yields its core so a preempted holder
// can finish.
#pragma once

#include <atomic>
#include <thread>

namespace heapscope::core {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

class SpinLock {
 public:
  // The uncontended case inlines into every hook; waiting stays out of line.
  [[gnu::always_inline]] void lock() noexcept {
    if (!flag_.exchange(true, std::memory_order_acquire)) [[likely]]
      return;
    lock_contended();
  }
  bool try_lock() noexcept { return !flag_.exchange(true, std::memory_order_acquire); }
  [[gnu::always_inline]] void unlock() noexcept { flag_.store(false, std::memory_order_release); }
  // Whether some thread holds the lock now (one lock-free load: a signal
  // handler may ask). A hint, stale as soon as it is read.
  bool held() const noexcept { return flag_.load(std::memory_order_relaxed); }

 private:
  [[gnu::noinline]] void lock_contended() noexcept {
    do {
      int spins = 0;
      while (flag_.load(std::memory_order_relaxed)) {
        if (++spins < 64) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    } while (flag_.exchange(true, std::memory_order_acquire));
  }

  std::atomic<bool> flag_{false};
};

}  // namespace heapscope::core
