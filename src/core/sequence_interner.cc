#include "sequence_interner.h"

#include <algorithm>

namespace heapscope::core {

std::uint32_t SequenceInterner::hash_of(std::span<const std::uint32_t> words) noexcept {
  // FNV-1a over words, then a final avalanche so the low bits used as the
  // index depend on every word.
  std::uint64_t h = 0xcbf29ce484222325ULL ^ words.size();
  for (std::uint32_t w : words) h = (h ^ w) * 0x100000001b3ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return static_cast<std::uint32_t>(h);
}

bool SequenceInterner::equal(const Entry& e, std::span<const std::uint32_t> words) const noexcept {
  return e.length == words.size() &&
         std::equal(words.begin(), words.end(),
                    words_.begin() + e.offset);
}

bool SequenceInterner::grow_index() noexcept {
  const std::size_t capacity = index_.empty() ? 256 : index_.size() * 2;
  NothrowVector<std::uint32_t> fresh;
  if (!fresh.assign_filled(capacity, kNoId)) return false;
  {
    const std::size_t mask = capacity - 1;
    for (std::uint32_t id = 0; id < entries_.size(); ++id) {
      std::size_t i = entries_[id].hash & mask;
      while (fresh[i] != kNoId) i = (i + 1) & mask;
      fresh[i] = id;
    }
    index_.swap(fresh);
    return true;
  }
}

std::uint32_t SequenceInterner::intern(std::span<const std::uint32_t> words) noexcept {
  if ((entries_.size() + 1) * 2 > index_.size() && !grow_index()) return kNoId;
  const std::uint32_t hash = hash_of(words);
  const std::size_t mask = index_.size() - 1;
  std::size_t i = hash & mask;
  while (index_[i] != kNoId) {
    const Entry& e = entries_[index_[i]];
    if (e.hash == hash && equal(e, words)) return index_[i];
    i = (i + 1) & mask;
  }
  if (entries_.size() >= kNoId - 1) return kNoId;
  const auto id = static_cast<std::uint32_t>(entries_.size());
  if (!entries_.push_back(Entry{words_.size(), static_cast<std::uint32_t>(words.size()), hash})) {
    return kNoId;
  }
  if (!words_.append(words)) {
    entries_.pop_back();
    return kNoId;
  }
  index_[i] = id;
  return id;
}

bool SequenceInterner::assign(const SequenceInterner& other) noexcept {
  SequenceInterner copy;
  if (!copy.words_.assign(other.words_) || !copy.entries_.assign(other.entries_) ||
      !copy.index_.assign(other.index_)) {
    return false;
  }
  words_.swap(copy.words_);
  entries_.swap(copy.entries_);
  index_.swap(copy.index_);
  return true;
}

void SequenceInterner::clear() noexcept {
  // Release the memory, not just the contents: clear_traces() should give it back.
  words_.reset();
  entries_.reset();
  index_.reset();
}

std::size_t SequenceInterner::memory_bytes() const noexcept {
  return sizeof(*this) + words_.capacity() * sizeof(std::uint32_t) +
         entries_.capacity() * sizeof(Entry) + index_.capacity() * sizeof(std::uint32_t);
}

}  // namespace heapscope::core
