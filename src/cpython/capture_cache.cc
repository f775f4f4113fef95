#include "capture_cache.h"

#include <algorithm>
#include <cstring>

namespace heapscope::cpython {

namespace {

constexpr std::uint64_t kMix = 0x9E3779B97F4A7C15ULL;

}  // namespace

std::uint64_t CaptureCache::hash(const Capture& capture) noexcept {
  const hs_raw_frame* frames = capture.frames;
  std::uint64_t h = (static_cast<std::uint64_t>(capture.total) << 32 |
                     static_cast<std::uint32_t>(capture.count)) *
                    kMix;
  for (int i = 0; i < capture.count; ++i) {
    const auto code = reinterpret_cast<std::uintptr_t>(frames[i].code);
    const auto where =
        static_cast<std::uint64_t>(static_cast<std::uint32_t>(frames[i].byte_offset)) |
        static_cast<std::uint64_t>(static_cast<std::uint32_t>(frames[i].lineno_override)) << 32;
    h = (h ^ code) * kMix;
    h = (h ^ where) * kMix;
  }
  return h ^ (h >> 31);
}

void CaptureCache::start_generation(std::uint64_t epoch) noexcept {
  epoch_ = epoch;
  entries_ = 0;
  pool_used_ = 0;
  if (++generation_ == 0) {
    // Wrapped after 2^32 generations: slots of generation 0 must read as
    // empty again, so wipe them once.
    for (std::uint32_t i = 0; i < capacity_; ++i) slots_[i].generation = 0;
    generation_ = 1;
  }
}

std::uint32_t CaptureCache::find(std::uint64_t epoch, std::uint64_t hash,
                                 const Capture& capture) noexcept {
  if (epoch != epoch_) start_generation(epoch);
  if (entries_ != 0) {
    const std::uint32_t mask = capacity_ - 1;
    for (std::uint32_t i = static_cast<std::uint32_t>(hash) & mask;; i = (i + 1) & mask) {
      const Slot& slot = slots_[i];
      if (!live(slot)) break;
      if (slot.hash == hash && slot.count == static_cast<std::uint32_t>(capture.count) &&
          slot.total == capture.total &&
          same_raw_frames(&pool_[slot.first], capture.frames, capture.count)) {
        misses_in_a_row_ = 0;
        next_skip_ = 1;
        return slot.traceback;
      }
    }
  }
  if (++misses_in_a_row_ >= kMissRun) {
    // After a skip, a few misses in a row are enough to skip again.
    misses_in_a_row_ = kMissRun - kMissesAfterSkip;
    skip_left_ = next_skip_;
    next_skip_ = std::min(next_skip_ * 2, kMaxSkip);
  }
  return kAbsent;
}

bool CaptureCache::grow() noexcept {
  const std::uint32_t capacity = capacity_ ? capacity_ * 2 : kInitialSlots;
  std::unique_ptr<Slot[], core::Releaser> fresh(core::allocate_array<Slot>(capacity));
  if (!fresh) return false;
  for (std::uint32_t i = 0; i < capacity; ++i) fresh[i] = Slot{0, 0, 0, 0, 0, 0};
  const std::uint32_t mask = capacity - 1;
  for (std::uint32_t j = 0; j < capacity_; ++j) {
    if (!live(slots_[j])) continue;
    std::uint32_t i = static_cast<std::uint32_t>(slots_[j].hash) & mask;
    while (live(fresh[i])) i = (i + 1) & mask;
    fresh[i] = slots_[j];
  }
  slots_ = std::move(fresh);
  capacity_ = capacity;
  return true;
}

void CaptureCache::insert(std::uint64_t epoch, std::uint64_t hash, const Capture& capture,
                          std::uint32_t traceback) noexcept {
  const auto need = static_cast<std::uint32_t>(capture.count);
  // A capture the pool could never hold is not cached (and empties nothing).
  if (capture.count <= 0 || need > kMaxPoolFrames) return;
  if (epoch != epoch_ || entries_ >= kMaxEntries || need > kMaxPoolFrames - pool_used_) {
    start_generation(epoch);
  }
  // At most half full, so every probe ends at an empty slot.
  if ((entries_ + 1) * 2 > capacity_ && !grow()) return;
  if (pool_used_ + need > pool_capacity_) {
    std::uint32_t capacity = std::max<std::uint32_t>(pool_capacity_ * 2, 1024);
    while (capacity < pool_used_ + need) capacity *= 2;
    capacity = std::min(capacity, kMaxPoolFrames);
    std::unique_ptr<hs_raw_frame[], core::Releaser> fresh(
        core::allocate_array<hs_raw_frame>(capacity));
    if (!fresh) return;
    if (pool_used_ != 0) std::memcpy(fresh.get(), pool_.get(), sizeof(hs_raw_frame) * pool_used_);
    pool_ = std::move(fresh);
    pool_capacity_ = capacity;
  }
  std::memcpy(&pool_[pool_used_], capture.frames, sizeof(hs_raw_frame) * need);
  const std::uint32_t mask = capacity_ - 1;
  std::uint32_t i = static_cast<std::uint32_t>(hash) & mask;
  while (live(slots_[i])) i = (i + 1) & mask;
  slots_[i] = Slot{hash, generation_, pool_used_, need, capture.total, traceback};
  pool_used_ += need;
  ++entries_;
}

void CaptureCache::release() noexcept {
  slots_.reset();
  capacity_ = 0;
  entries_ = 0;
  pool_.reset();
  pool_capacity_ = 0;
  pool_used_ = 0;
  epoch_ = 0;
  misses_in_a_row_ = 0;
  skip_left_ = 0;
  next_skip_ = 1;
}

std::size_t CaptureCache::memory_bytes() const noexcept {
  return sizeof(*this) + std::size_t{capacity_} * sizeof(Slot) +
         std::size_t{pool_capacity_} * sizeof(hs_raw_frame);
}

}  // namespace heapscope::cpython
