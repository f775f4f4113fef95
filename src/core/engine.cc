#include "engine.h"

#include <algorithm>
#include <array>
#include <new>

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
  if (auto it = filename_ids_.find(utf8); it != filename_ids_.end()) return it->second;
  try {
    const auto id = static_cast<std::uint32_t>(filenames_.size());
    filenames_.emplace_back(utf8);
    try {
      filename_ids_.emplace(filenames_.back(), id);
    } catch (const std::bad_alloc&) {
      filenames_.pop_back();
      return kNoId;
    }
    return id;
  } catch (const std::bad_alloc&) {
    return kNoId;
  }
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
  std::vector<std::uint32_t> large;
  std::uint32_t* key = small.data();
  if (frames.size() > kInline) {
    try {
      large.resize(frames.size() + 1);
    } catch (const std::bad_alloc&) {
      return kNoId;
    }
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

bool Engine::traceback_of(std::uintptr_t address, std::vector<std::uint32_t>* frames_out,
                          std::uint32_t* total_out) const {
  std::lock_guard lock(mutex_);
  TraceRecord record;
  if (!with_traces([&](const auto& traces) { return traces.find(address, &record); })) {
    return false;
  }
  auto words = tracebacks_.get(record.traceback);
  *total_out = words[0];
  frames_out->assign(words.begin() + 1, words.end());
  return true;
}

bool Engine::traceback_of(std::uint32_t domain, std::uintptr_t address,
                          std::vector<std::uint32_t>* frames_out, std::uint32_t* total_out) const {
  if (domain == 0) return traceback_of(address, frames_out, total_out);
  std::lock_guard lock(mutex_);
  DomainTraces::Trace trace;
  if (!domain_traces_.find(domain, address, &trace)) return false;
  auto words = tracebacks_.get(trace.traceback);
  *total_out = words[0];
  frames_out->assign(words.begin() + 1, words.end());
  return true;
}

std::string Engine::filename_of_frame_unlocked(std::uint32_t frame_id, int* lineno) const {
  auto words = frames_.get(frame_id);
  *lineno = static_cast<int>(words[1]);
  return filenames_[words[0]];
}

FrozenTraces Engine::take_snapshot() const {
  FrozenTraces frozen;
  std::lock_guard lock(mutex_);
  with_traces([&](const auto& traces) {
    frozen.traces.reserve(traces.size());
    traces.for_each([&](const TraceRecord& r) {
      frozen.traces.push_back(FrozenTraces::Trace{0, r.traceback, r.size});
    });
  });
  frozen.traces.reserve(frozen.traces.size() + domain_traces_.size());
  domain_traces_.for_each([&](const DomainTraces::Trace& t) {
    frozen.traces.push_back(FrozenTraces::Trace{t.domain, t.traceback, t.size});
  });
  frozen.frames = frames_;
  frozen.tracebacks = tracebacks_;
  frozen.filenames.assign(filenames_.begin(), filenames_.end());
  frozen.sample_interval = sample_interval();
  return frozen;
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
  filename_ids_.clear();
  filenames_.clear();
  memory_ = MemoryCounters{};
  unknown_traceback_ = kNoId;
  ++generation_;
  dropped_.store(0, std::memory_order_relaxed);
}

std::size_t Engine::memory_bytes() const noexcept {
  std::lock_guard lock(mutex_);
  std::size_t bytes = sizeof(*this) + traces_.memory_bytes() + sampled_traces_.memory_bytes() +
                      domain_traces_.memory_bytes() + frames_.memory_bytes() +
                      tracebacks_.memory_bytes();
  for (const std::string& name : filenames_) bytes += sizeof(std::string) + name.capacity();
  // Each map node holds a view and an id plus the bucket pointer.
  bytes +=
      filename_ids_.size() * (sizeof(std::string_view) + sizeof(std::uint32_t) + 2 * sizeof(void*));
  bytes += filename_ids_.bucket_count() * sizeof(void*);
  return bytes;
}

std::size_t Engine::trace_count() const noexcept {
  std::lock_guard lock(mutex_);
  return traces_.size() + sampled_traces_.size() + domain_traces_.size();
}

}  // namespace heapscope::core
