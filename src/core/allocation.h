// The one way the tracer's allocation path gets memory: malloc, nothrow,
// every result checked by the caller.
//
// The engine runs inside Python's allocator hooks, so running out of memory
// there must cost a dropped trace, never the program. std::bad_alloc cannot
// be the signal: throwing makes libstdc++ allocate its per-thread exception
// state (dynamic TLS of a dlopen()ed library), and when that fails glibc
// aborts the process ("cannot allocate memory for thread-local data").
// `operator new(std::nothrow)` is no way out either: libstdc++ implements it
// as a try/catch around the throwing `operator new`. So the hot-path files
// are compiled with -fno-exceptions and allocate only through here.
//
// Fault injection (builds with HEAPSCOPE_FAULT_INJECTION): `allocate` fails
// on its Nth call after `fail_allocation_at(N)`, so a test can make every
// allocation of a traced workload fail in turn (tests/fault_injection/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace heapscope::core {

#ifdef HEAPSCOPE_FAULT_INJECTION
// Calls counted since the last fail_allocation_at(); 0 disarms it.
void fail_allocation_at(std::uint64_t nth) noexcept;
std::uint64_t allocations_counted() noexcept;
bool injected_failure() noexcept;
#endif

// `bytes` of uninitialised memory, or nullptr.
inline void* allocate(std::size_t bytes) noexcept {
#ifdef HEAPSCOPE_FAULT_INJECTION
  if (injected_failure()) return nullptr;
#endif
  return std::malloc(bytes);
}

inline void release(void* memory) noexcept { std::free(memory); }

// For std::unique_ptr<T, Releaser> of memory from `allocate`.
struct Releaser {
  void operator()(void* memory) const noexcept { release(memory); }
};

// Room for `count` objects of T (trivially constructible ones: nothing is
// constructed), or nullptr, also when the byte count would overflow.
template <typename T>
T* allocate_array(std::size_t count) noexcept {
  if (count > SIZE_MAX / sizeof(T)) return nullptr;
  return static_cast<T*>(allocate(count * sizeof(T)));
}

}  // namespace heapscope::core
