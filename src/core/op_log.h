// A log of the trace table's operations, for benchmarks/table_replay.sh:
// compiled in only with the CMake option HEAPSCOPE_OPLOG=ON (never in a
// release build), and then written only when the environment variable
// HEAPSCOPE_OPLOG names a file. It lets a change to TraceTable be measured
// on the exact insert/erase sequence of a real program, deterministically,
// without Python in the loop.
//
// Record: 16 bytes, native byte order: the block's address, then
// (operation << 62) | size, with operation 1 = insert, 2 = erase.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace heapscope::core::op_log {

#ifdef HEAPSCOPE_OPLOG
inline constexpr bool kCompiledIn = true;
#else
inline constexpr bool kCompiledIn = false;
#endif

enum class Op : std::uint64_t { kInsert = 1, kErase = 2 };
inline constexpr unsigned kOpShift = 62;

inline void record(Op op, std::uintptr_t address, std::size_t size) noexcept {
  if constexpr (kCompiledIn) {
    // Opened on first use, closed (and flushed) by the C library at exit.
    static std::FILE* const out = [] {
      const char* path = std::getenv("HEAPSCOPE_OPLOG");
      return path != nullptr ? std::fopen(path, "wb") : nullptr;
    }();
    if (out == nullptr) return;
    const std::uint64_t words[2] = {address, static_cast<std::uint64_t>(op) << kOpShift |
                                                 (size & ((std::uint64_t{1} << kOpShift) - 1))};
    std::fwrite(words, sizeof(words), 1, out);
  }
}

}  // namespace heapscope::core::op_log
