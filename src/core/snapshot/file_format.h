// heapscope's snapshot file: versioned, compact, checksummed. The layout is
// drawn in docs/snapshot-format.md; keep the two in step.
//
// decode() validates everything before it builds anything: the magic, the
// version, the declared payload size against the real one, the checksum,
// every count against the bytes left (so no count can trigger a huge
// allocation), every id against its table, every filename as UTF-8, and that
// the payload ends exactly where its last section does. It returns the
// snapshot whole or an error message naming the problem, never a part.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/snapshot/frozen_snapshot.h"

namespace heapscope::core::snapshot {

inline constexpr char kMagic[8] = {'\x89', 'H', 'S', 'N', 'A', 'P', '\r', '\n'};
inline constexpr std::uint32_t kFormatVersion = 1;
inline constexpr std::size_t kHeaderSize = 40;
// Header flag: a sampled snapshot; the payload starts with its interval.
inline constexpr std::uint32_t kFlagSampled = 1;

std::string encode(const Snapshot& snap, std::int64_t traceback_limit);

struct Decoded {
  Snapshot snapshot;
  std::int64_t traceback_limit = 0;
};

// Empty on success, else why the bytes are not a snapshot.
std::string decode(std::string_view bytes, Decoded* out);

// The payload checksum (64-bit, word-at-a-time multiply-xor mixing).
std::uint64_t checksum(std::string_view bytes) noexcept;

}  // namespace heapscope::core::snapshot
