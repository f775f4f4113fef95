#include "core/sampling/sampled_trace_table.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <iterator>

namespace heapscope::core::sampling {

namespace {

// What glibc's malloc takes for a request of n bytes: the request plus an
// 8-byte header, rounded up to 16, and at least 32.
std::size_t malloc_chunk(std::size_t n) noexcept {
  return std::max<std::size_t>(32, (n + 8 + 15) & ~std::size_t{15});
}

// The bytes a buffer of n bytes may use for free: the rest of its malloc
// chunk. Allocating them costs nothing and lets most updates fit in place.
std::size_t usable(std::size_t n) noexcept { return malloc_chunk(n) - 8; }

// Spare bytes a growing buffer gets: about four entries.
constexpr std::size_t kSlack = 32;

std::uint8_t* put_varint(std::uint8_t* p, std::uint64_t v) noexcept {
  while (v >= 0x80) {
    *p++ = static_cast<std::uint8_t>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<std::uint8_t>(v);
  return p;
}

std::size_t varint_length(std::uint64_t v) noexcept {
  return (static_cast<std::size_t>(std::bit_width(v | 1)) + 6) / 7;
}

std::uint8_t* put_entry(std::uint8_t* p, std::uintptr_t delta, std::size_t size,
                        std::uint32_t traceback) noexcept {
  p = put_varint(p, delta);
  p = put_varint(p, size);
  return put_varint(p, traceback);
}

const std::uint8_t* skip_varint(const std::uint8_t* p) noexcept {
  while (*p++ & 0x80) {
  }
  return p;
}

}  // namespace

SampledTraceTable::SampledTraceTable() = default;
SampledTraceTable::~SampledTraceTable() { clear(); }

std::size_t SampledTraceTable::chunk_for(std::uintptr_t address) const noexcept {
  // The last chunk starting at or below the address; the first one for an
  // address below every chunk (an insert there makes it the new base).
  auto it = std::upper_bound(chunks_.begin(), chunks_.end(), address,
                             [](std::uintptr_t a, const Chunk& c) { return a < c.base; });
  return it == chunks_.begin() ? 0 : static_cast<std::size_t>(it - chunks_.begin()) - 1;
}

SampledTraceTable::Position SampledTraceTable::locate(const Chunk& chunk,
                                                      std::uintptr_t address) noexcept {
  const std::uint8_t* const data = chunk.data;
  const std::uint8_t* p = data;
  std::uintptr_t previous = chunk.base;
  for (std::uint32_t i = 0; i < chunk.count; ++i) {
    const std::uint8_t* const start = p;
    std::uint64_t delta;
    p = get_varint(p, &delta);
    const std::uintptr_t current = previous + delta;
    if (current >= address) {
      Position at{i, static_cast<std::uint32_t>(start - data), 0, previous, {}, current == address};
      at.end = static_cast<std::uint32_t>(get_entry(start, previous, &at.entry) - data);
      return at;
    }
    p = skip_varint(skip_varint(p));  // size and traceback
    previous = current;
  }
  return Position{chunk.count, chunk.bytes, chunk.bytes, previous, {}, false};
}

bool SampledTraceTable::splice(Chunk& chunk, std::uint32_t from, std::uint32_t to,
                               const std::uint8_t* in, std::size_t n) noexcept {
  // Replaces bytes [from, to) of the chunk's data with in[0, n).
  const std::size_t tail = chunk.bytes - to;
  const std::size_t length = from + n + tail;
  // A buffer grows with room for a few more entries and shrinks only once
  // that much is unused: reallocating at every size step left freed
  // buffers of every size behind, which malloc could not reuse (RSS per
  // sampled block 14-17 B against 10.7 B of live buffers, 17k blocks).
  std::size_t wanted = chunk.capacity;
  if (length > chunk.capacity) {
    wanted = usable(length + kSlack);
  } else if (chunk.capacity - length > 2 * kSlack) {
    wanted = usable(length + kSlack);
  }
  std::uint8_t* fresh = nullptr;
  if (wanted != chunk.capacity) {
    fresh = allocate_array<std::uint8_t>(wanted);
    // Without memory a shrink is still done in place (so erase never fails).
    if (fresh == nullptr && length > chunk.capacity) return false;
  }
  if (fresh != nullptr) {
    std::memcpy(fresh, chunk.data, from);
    std::memcpy(fresh + from + n, chunk.data + to, tail);
    release(chunk.data);
    chunk.data = fresh;
    chunk.capacity = static_cast<std::uint16_t>(wanted);
  } else {
    std::memmove(chunk.data + from + n, chunk.data + to, tail);
  }
  std::memcpy(chunk.data + from, in, n);
  chunk.bytes = static_cast<std::uint16_t>(length);
  return true;
}

bool SampledTraceTable::rewrite(Chunk& chunk, const Position& at, std::size_t size,
                                std::uint32_t traceback) noexcept {
  std::uint8_t buffer[kMaxEntryBytes];
  const std::uint8_t* end = put_entry(buffer, at.entry.address - at.previous, size, traceback);
  return splice(chunk, at.offset, at.end, buffer, static_cast<std::size_t>(end - buffer));
}

bool SampledTraceTable::make_chunk(const TraceRecord* entries, std::uint32_t n,
                                   Chunk* out) noexcept {
  std::size_t length = 0;
  std::uintptr_t previous = entries[0].address;
  for (std::uint32_t i = 0; i < n; ++i) {
    length += varint_length(entries[i].address - previous) + varint_length(entries[i].size) +
              varint_length(entries[i].traceback);
    previous = entries[i].address;
  }
  std::uint8_t* data = allocate_array<std::uint8_t>(usable(length));
  if (data == nullptr) return false;
  std::uint8_t* p = data;
  previous = entries[0].address;
  for (std::uint32_t i = 0; i < n; ++i) {
    p = put_entry(p, entries[i].address - previous, entries[i].size, entries[i].traceback);
    previous = entries[i].address;
  }
  out->base = entries[0].address;
  out->data = data;
  out->count = static_cast<std::uint16_t>(n);
  out->bytes = static_cast<std::uint16_t>(length);
  out->capacity = static_cast<std::uint16_t>(usable(length));
  return true;
}

void SampledTraceTable::decode(const Chunk& chunk, TraceRecord* out) noexcept {
  const std::uint8_t* p = chunk.data;
  std::uintptr_t previous = chunk.base;
  for (std::uint32_t i = 0; i < chunk.count; ++i) {
    p = get_entry(p, previous, &out[i]);
    previous = out[i].address;
  }
}

bool SampledTraceTable::insert(std::uintptr_t address, std::size_t size, std::uint32_t traceback,
                               std::size_t* replaced_size) noexcept {
  if (replaced_size) *replaced_size = kNothingReplaced;
  const TraceRecord added{address, size, traceback};
  if (chunks_.empty()) {
    Chunk chunk;
    if (!make_chunk(&added, 1, &chunk)) return false;
    if (!chunks_.push_back(chunk)) {
      release(chunk.data);
      return false;
    }
    ++count_;
    return true;
  }
  const std::size_t i = chunk_for(address);
  Chunk& chunk = chunks_[i];
  const Position at = locate(chunk, address);
  if (at.found) {
    if (!rewrite(chunk, at, size, traceback)) return false;
    if (replaced_size) *replaced_size = at.entry.size;
    return true;
  }
  if (chunk.count == kMaxEntries) return split_insert(i, at, added);
  // The new entry, then the one it now precedes, whose delta shrinks. Only
  // the first chunk can take an address below its base: that entry becomes
  // the base (delta 0).
  std::uint8_t buffer[2 * kMaxEntryBytes];
  std::uint8_t* p =
      put_entry(buffer, address - (at.index == 0 ? address : at.previous), size, traceback);
  std::uint32_t to = at.offset;
  if (at.index < chunk.count) {
    p = put_entry(p, at.entry.address - address, at.entry.size, at.entry.traceback);
    to = at.end;
  }
  if (!splice(chunk, at.offset, to, buffer, static_cast<std::size_t>(p - buffer))) return false;
  if (at.index == 0) chunk.base = address;
  ++chunk.count;
  ++count_;
  return true;
}

bool SampledTraceTable::split_insert(std::size_t i, const Position& at,
                                     const TraceRecord& added) noexcept {
  // A full chunk: decode it with the new entry in place, and re-encode it as
  // two halves. Everything that can fail happens before the table changes.
  TraceRecord entries[kMaxEntries + 1];
  decode(chunks_[i], entries);
  std::copy_backward(entries + at.index, entries + kMaxEntries, entries + kMaxEntries + 1);
  entries[at.index] = added;
  // Halves, except when the new entry is at either end: addresses that come
  // in order (mmap hands out falling addresses) then leave full chunks
  // behind rather than half-full ones, halving their share of headers.
  std::uint32_t left_count = (kMaxEntries + 1) / 2;
  if (at.index == 0) left_count = 1;
  if (at.index == kMaxEntries) left_count = kMaxEntries;
  Chunk left, right;
  if (!make_chunk(entries, left_count, &left)) return false;
  if (!make_chunk(entries + left_count, kMaxEntries + 1 - left_count, &right) ||
      !chunks_.insert(i + 1, right)) {
    release(left.data);
    release(right.data);
    return false;
  }
  release(chunks_[i].data);
  chunks_[i] = left;
  ++count_;
  return true;
}

bool SampledTraceTable::erase(std::uintptr_t address, TraceRecord* removed) noexcept {
  if (count_ == 0 || address < chunks_.front().base) return false;
  const std::size_t i = chunk_for(address);
  Chunk& chunk = chunks_[i];
  const Position at = locate(chunk, address);
  if (!at.found) return false;
  if (removed) *removed = at.entry;
  --count_;
  if (chunk.count == 1) {
    remove_chunk(i);
    return true;
  }
  // Drop the entry and re-encode the next one against the entry before (or
  // as the new base). The result is always shorter, so this cannot fail.
  std::uint8_t buffer[kMaxEntryBytes];
  std::size_t n = 0;
  std::uint32_t to = at.end;
  std::uintptr_t next_address = 0;
  if (at.index + 1 < chunk.count) {
    TraceRecord next;
    to = static_cast<std::uint32_t>(get_entry(chunk.data + at.end, address, &next) - chunk.data);
    next_address = next.address;
    const std::uintptr_t previous = at.index == 0 ? next.address : at.previous;
    n = static_cast<std::size_t>(
        put_entry(buffer, next.address - previous, next.size, next.traceback) - buffer);
  }
  splice(chunk, at.offset, to, buffer, n);
  if (at.index == 0) chunk.base = next_address;
  --chunk.count;
  if (chunk.count < kMergeBelow) merge_small(i);
  return true;
}

void SampledTraceTable::merge_small(std::size_t i) noexcept {
  // Join the smaller neighbour that fits, so chunks stay large enough for
  // their fixed cost to stay small; without memory, just stay apart.
  std::size_t j = i;
  const auto fits = [&](std::size_t k) {
    return static_cast<std::uint32_t>(chunks_[k].count + chunks_[i].count) <= kMaxEntries;
  };
  if (i > 0 && fits(i - 1)) j = i - 1;
  if (i + 1 < chunks_.size() && fits(i + 1) &&
      (j == i || chunks_[i + 1].count < chunks_[j].count)) {
    j = i + 1;
  }
  if (j == i) return;
  const std::size_t first = std::min(i, j);
  TraceRecord entries[kMaxEntries];
  decode(chunks_[first], entries);
  decode(chunks_[first + 1], entries + chunks_[first].count);
  Chunk merged;
  if (!make_chunk(entries, chunks_[first].count + chunks_[first + 1].count, &merged)) return;
  release(chunks_[first].data);
  chunks_[first] = merged;
  remove_chunk(first + 1);
}

void SampledTraceTable::remove_chunk(std::size_t i) noexcept {
  release(chunks_[i].data);
  chunks_.erase(i);
  // Give the vector's memory back as the traces go, not only at clear().
  // Without memory for a smaller one, the bigger one stays.
  if (chunks_.capacity() > 16 && chunks_.size() * 4 < chunks_.capacity()) {
    NothrowVector<Chunk> smaller;
    if (smaller.reserve(chunks_.size() * 2) && smaller.append({chunks_.data(), chunks_.size()})) {
      chunks_.swap(smaller);
    }
  }
}

bool SampledTraceTable::find(std::uintptr_t address, TraceRecord* out) const noexcept {
  if (count_ == 0 || address < chunks_.front().base) return false;
  const Position at = locate(chunks_[chunk_for(address)], address);
  if (!at.found) return false;
  *out = at.entry;
  return true;
}

bool SampledTraceTable::set_traceback(std::uintptr_t address, std::uint32_t traceback) noexcept {
  if (count_ == 0 || address < chunks_.front().base) return false;
  Chunk& chunk = chunks_[chunk_for(address)];
  const Position at = locate(chunk, address);
  return at.found && rewrite(chunk, at, at.entry.size, traceback);
}

void SampledTraceTable::clear() noexcept {
  for (const Chunk& chunk : chunks_) release(chunk.data);
  chunks_.reset();  // the memory too, not just the contents
  count_ = 0;
}

std::size_t SampledTraceTable::memory_bytes() const noexcept {
  std::size_t bytes = sizeof(*this);
  if (chunks_.capacity() != 0) bytes += malloc_chunk(chunks_.capacity() * sizeof(Chunk));
  for (const Chunk& chunk : chunks_) bytes += malloc_chunk(chunk.capacity);
  return bytes;
}

}  // namespace heapscope::core::sampling
