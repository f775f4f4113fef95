#include "engine.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "op_log.h"
#include "sampling/weights.h"

namespace heapscope::core {

namespace {
constexpr std::string_view kUnknownFilename = "<unknown>";
}

TracebackView FrozenTraces::traceback(std::uint32_t id) const noexcept {
  auto words = tracebacks.get(id);
  return TracebackView{words[0], words.subspan(1)};
}

Engine::Engine() = default;

std::uint32_t Engine::intern_filename_unlocked(std::string_view utf8) noexcept {
  if (utf8.size() > UINT32_MAX - 4) return kNoId;
  const std::size_t count = 1 + (utf8.size() + 3) / 4;
  // Paths are short: pack on the stack when they fit.
  std::array<std::uint32_t, 256> small;
  NothrowVector<std::uint32_t> large;
  std::uint32_t* words = small.data();
  if (count > small.size()) {
    if (!large.assign_filled(count, 0)) return kNoId;
    words = large.data();
  }
  words[0] = static_cast<std::uint32_t>(utf8.size());
  words[count - 1] = 0;  // the padding bytes of the last word
  std::memcpy(words + 1, utf8.data(), utf8.size());
  return filenames_.intern({words, count});
}

std::uint32_t Engine::intern_frame_unlocked(std::uint32_t filename, int lineno) noexcept {
  const std::array<std::uint32_t, 2> words{filename, static_cast<std::uint32_t>(lineno)};
  return frames_.intern(words);
}

std::uint32_t Engine::intern_traceback_unlocked(std::uint32_t total_nframe,
                                                std::span<const std::uint32_t> frames) noexcept {
  // Tracebacks are short (nframe <= 65535, usually 1..25): build the key on
  // the stack when it fits, to keep the hot path free of allocation.
  constexpr std::size_t kInline = 64;
  std::array<std::uint32_t, kInline + 1> small;
  NothrowVector<std::uint32_t> large;
  std::uint32_t* key = small.data();
  if (frames.size() > kInline) {
    if (!large.assign_filled(frames.size() + 1, 0)) return kNoId;
    key = large.data();
  }
  key[0] = std::min(total_nframe, kMaxTotalFrames);
  std::copy(frames.begin(), frames.end(), key + 1);
  return tracebacks_.intern({key, frames.size() + 1});
}

std::uint32_t Engine::unknown_traceback_unlocked() noexcept {
  if (unknown_traceback_ != kNoId) return unknown_traceback_;
  const std::uint32_t filename = intern_filename_unlocked(kUnknownFilename);
  if (filename == kNoId) return kNoId;
  const std::uint32_t frame = intern_frame_unlocked(filename, 0);
  if (frame == kNoId) return kNoId;
  unknown_traceback_ = intern_traceback_unlocked(1, {&frame, 1});
  return unknown_traceback_;
}

void Engine::add_trace_rarely(std::uint64_t interval, std::uintptr_t address, std::size_t size,
                              std::uint32_t traceback) noexcept {
  if (traceback == kNoId) {
    // The block is new even if untraceable: a trace left at its address
    // would describe a block that no longer exists.
    remove_trace_unlocked(address);
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  add_trace_to(sampled_traces_, interval, address, size, traceback);
}

void Engine::remove_sampled_trace(std::uintptr_t address) noexcept {
  TraceRecord removed;
  if (sampled_traces_.erase(address, &removed)) note_erased(removed, sample_interval());
}

std::size_t Engine::sampled_weight(std::size_t size, std::uint64_t interval) noexcept {
  return static_cast<std::size_t>(sampling::size_weight(size, interval));
}

void Engine::retrace_unlocked(std::uintptr_t address, std::uint32_t traceback) noexcept {
  if (traceback == kNoId) return;
  with_traces([&](auto& traces) { return traces.set_traceback(address, traceback); });
}

bool Engine::track_unlocked(std::uint32_t domain, std::uintptr_t address, std::size_t size,
                            std::uint32_t traceback) noexcept {
  if (traceback == kNoId) return false;
  const std::uint64_t interval = sample_interval();
  std::size_t replaced = TraceTable::kNothingReplaced;
  if (domain == 0) {
    op_log::record(op_log::Op::kInsert, address, size);
    if (!with_traces(
            [&](auto& traces) { return traces.insert(address, size, traceback, &replaced); }))
      return false;
    note_inserted(address, size, replaced, interval);
    return true;
  }
  if (!domain_traces_.insert(domain, address, size, traceback, &replaced)) return false;
  if (replaced != DomainTraces::kNothingReplaced)
    memory_.current -= counted_size(replaced, interval);
  memory_.current += counted_size(size, interval);
  if (memory_.current > memory_.peak) memory_.peak = memory_.current;
  return true;
}

void Engine::untrack_unlocked(std::uint32_t domain, std::uintptr_t address) noexcept {
  if (domain == 0) {
    remove_trace_unlocked(address);
    return;
  }
  DomainTraces::Trace removed;
  if (domain_traces_.erase(domain, address, &removed))
    memory_.current -= counted_size(removed.size, sample_interval());
}

bool Engine::take_trace(std::uintptr_t address, TakenTrace* taken) noexcept {
  std::lock_guard lock(mutex_);
  op_log::record(op_log::Op::kErase, address, 0);
  if (!with_traces([&](auto& traces) { return traces.erase(address, &taken->record); })) {
    return false;
  }
  note_erased(taken->record, sample_interval());
  taken->generation = generation_;
  return true;
}

void Engine::restore_trace(const TakenTrace& taken) noexcept {
  std::lock_guard lock(mutex_);
  if (tracing() && taken.generation == generation_) {
    add_trace_unlocked(taken.record.address, taken.record.size, taken.record.traceback);
  }
}

bool Engine::take_domain_trace(std::uint32_t domain, std::uintptr_t address,
                               TakenDomainTrace* taken) noexcept {
  std::lock_guard lock(mutex_);
  return take_domain_trace_unlocked(domain, address, taken);
}

void Engine::restore_domain_trace(const TakenDomainTrace& taken) noexcept {
  std::lock_guard lock(mutex_);
  restore_domain_trace_unlocked(taken);
}

bool Engine::take_domain_trace_unlocked(std::uint32_t domain, std::uintptr_t address,
                                        TakenDomainTrace* taken) noexcept {
  if (!tracing() || !domain_traces_.erase(domain, address, &taken->trace)) return false;
  memory_.current -= counted_size(taken->trace.size, sample_interval());
  taken->generation = generation_;
  return true;
}

bool Engine::restore_domain_trace_unlocked(const TakenDomainTrace& taken) noexcept {
  return tracing() && taken.generation == generation_ &&
         track_unlocked(taken.trace.domain, taken.trace.address, taken.trace.size,
                        taken.trace.traceback);
}

MemoryCounters Engine::memory() const noexcept {
  std::lock_guard lock(mutex_);
  return memory_;
}

void Engine::reset_peak() noexcept {
  std::lock_guard lock(mutex_);
  memory_.peak = memory_.current;
}

void Engine::clear_unlocked() noexcept {
  traces_.clear();
  sampled_traces_.clear();
  domain_traces_.clear();
  sampled_.clear();
  frames_.clear();
  tracebacks_.clear();
  filenames_.clear();
  memory_ = MemoryCounters{};
  unknown_traceback_ = kNoId;
  ++generation_;
  dropped_.store(0, std::memory_order_relaxed);
}

std::size_t Engine::memory_bytes() const noexcept {
  std::lock_guard lock(mutex_);
  return sizeof(*this) + traces_.memory_bytes() + sampled_traces_.memory_bytes() +
         domain_traces_.memory_bytes() +
         frames_.memory_bytes() + tracebacks_.memory_bytes() + filenames_.memory_bytes();
}

std::size_t Engine::trace_count() const noexcept {
  std::lock_guard lock(mutex_);
  return traces_.size() + sampled_traces_.size() + domain_traces_.size();
}

}  // namespace heapscope::core
