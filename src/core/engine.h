// The tracing engine: every table the tracer keeps, and the lock that guards them.
//
// The CPython layer drives it from its allocator hooks. One lock (`mutex()`)
// guards all state below except the atomics; methods whose name ends in
// `_unlocked` expect the caller to hold it, the others take it themselves.
// The engine allocates only with libc's malloc (allocation.h), never through
// Python's allocators, so it can run inside Python's allocator hooks; the
// methods the hooks call neither throw nor catch (engine.cc is compiled
// with -fno-exceptions). Those that build the C++ objects a snapshot hands
// out (engine_snapshot.cc) may throw std::bad_alloc, and are never called
// from a hook.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "domain_traces.h"
#include "op_log.h"
#include "sampling/address_filter.h"
#include "sampling/sampled_trace_table.h"
#include "sequence_interner.h"
#include "spin_lock.h"
#include "trace_table.h"

namespace heapscope::core {

inline constexpr std::uint32_t kNoId = SequenceInterner::kNoId;
inline constexpr std::uint32_t kMaxTotalFrames = UINT16_MAX;  // as CPython caps total_nframe

// A traceback as plain data: frame ids most recent first, and the real depth.
struct TracebackView {
  std::uint32_t total_nframe;
  std::span<const std::uint32_t> frames;
};

// What `take_snapshot` copies out: the live traces and the tables their ids
// point into, frozen, so analysis runs without the lock.
struct FrozenTraces {
  struct Trace {
    std::uint32_t domain;
    std::uint32_t traceback;
    std::size_t size;
  };
  std::vector<Trace> traces;
  SequenceInterner frames;      // (filename id, line)
  SequenceInterner tracebacks;  // (total_nframe, frame ids most recent first...)
  std::vector<std::string> filenames;
  std::uint64_t sample_interval = 0;  // 0: every block traced

  TracebackView traceback(std::uint32_t id) const noexcept;
};

struct MemoryCounters {
  std::size_t current = 0;
  std::size_t peak = 0;
};

class Engine {
 public:
  Engine();

  SpinLock& mutex() noexcept { return mutex_; }

  // Whether hooks should record; read without the lock on the fast path and
  // confirmed under it before anything is inserted.
  [[gnu::always_inline]] bool tracing() const noexcept {
    return tracing_.load(std::memory_order_acquire);
  }
  void set_tracing_unlocked(bool on) noexcept { tracing_.store(on, std::memory_order_release); }

  // Sampled mode: 0 traces every block; N > 0 means the hooks record a
  // Poisson sample of mean N bytes between samples, and the memory counters
  // hold estimates (each block weighted, sampling/weights.h). Set only while
  // the tables are empty (not tracing, or just cleared).
  [[gnu::always_inline]] std::uint64_t sample_interval() const noexcept {
    return sample_interval_.load(std::memory_order_relaxed);
  }
  void set_sample_interval_unlocked(std::uint64_t interval) noexcept {
    sample_interval_.store(interval, std::memory_order_relaxed);
  }
  // False when `address` is certainly not traced; read without the lock, so
  // a free in sampled mode skips the lock for the blocks never recorded.
  [[gnu::always_inline]] bool may_be_traced(std::uintptr_t address) const noexcept {
    return sample_interval() == 0 || sampled_.may_contain(address);
  }

  // Interning. Each returns kNoId when memory ran out.
  std::uint32_t intern_filename_unlocked(std::string_view utf8) noexcept;
  std::uint32_t intern_frame_unlocked(std::uint32_t filename, int lineno) noexcept;
  std::uint32_t intern_traceback_unlocked(std::uint32_t total_nframe,
                                          std::span<const std::uint32_t> frames) noexcept;
  // The traceback of a thread with no Python frame: ("<unknown>", 0).
  std::uint32_t unknown_traceback_unlocked() noexcept;

  // Records a block the allocator has just handed out. A trace left at its
  // address by a block whose free went unseen is replaced, at the latest
  // when the new trace leaves the young traces (TraceTable::insert_fresh).
  // A block that cannot be recorded for lack of memory is counted in
  // `dropped_traces`. Exact mode's common case is inlined into the hooks.
  [[gnu::always_inline]] void add_trace_unlocked(std::uintptr_t address, std::size_t size,
                                                 std::uint32_t traceback) noexcept {
    op_log::record(op_log::Op::kInsert, address, size);
    const std::uint64_t interval = sample_interval();
    if (interval == 0 && traceback != kNoId) [[likely]] {
      add_trace_to(traces_, 0, address, size, traceback);
      return;
    }
    add_trace_rarely(interval, address, size, traceback);
  }
  // Inlined into the hooks, like add_trace_unlocked.
  [[gnu::always_inline]] void remove_trace_unlocked(std::uintptr_t address) noexcept {
    op_log::record(op_log::Op::kErase, address, 0);
    if (sample_interval() == 0) [[likely]] {
      TraceRecord removed;
      if (traces_.erase(address, &removed)) note_erased(removed, 0);
    } else {
      remove_sampled_trace(address);
    }
  }
  // The tracking C API (PyTraceMalloc_Track / Untrack): a block an
  // extension allocated itself, in `domain`. Domain 0 shares the
  // allocator's table (a Track of a traced address replaces its trace, an
  // Untrack removes it); other domains have their own. Another Track of the
  // same (domain, address) replaces the first. Both count in the memory
  // counters. False when the trace could not be stored (no traceback, no
  // memory), the table unchanged.
  bool track_unlocked(std::uint32_t domain, std::uintptr_t address, std::size_t size,
                      std::uint32_t traceback) noexcept;
  // Removes the trace of (domain, address), if any.
  void untrack_unlocked(std::uint32_t domain, std::uintptr_t address) noexcept;

  // A traced block now belongs to a new object (CPython reused it from a
  // freelist): its trace takes the new traceback, keeping its size.
  void retrace_unlocked(std::uintptr_t address, std::uint32_t traceback) noexcept;
  [[gnu::always_inline]] void remove_trace(std::uintptr_t address) noexcept {
    std::lock_guard lock(mutex_);
    remove_trace_unlocked(address);
  }
  // Removes a trace and hands it back, so a failed realloc can restore it.
  // The restore is skipped when the tables were cleared in between: the
  // taken trace's traceback id would point into tables that are gone.
  struct TakenTrace {
    TraceRecord record;
    std::uint64_t generation;
  };
  bool take_trace(std::uintptr_t address, TakenTrace* taken) noexcept;
  void restore_trace(const TakenTrace& taken) noexcept;
  // The same for a block of a domain other than 0 (a native realloc takes
  // the trace of the block it moves, and puts it back when it fails).
  struct TakenDomainTrace {
    DomainTraces::Trace trace;
    std::uint64_t generation;
  };
  bool take_domain_trace(std::uint32_t domain, std::uintptr_t address,
                         TakenDomainTrace* taken) noexcept;
  void restore_domain_trace(const TakenDomainTrace& taken) noexcept;
  // The same under the lock the caller holds; restore says whether the
  // trace was stored.
  bool take_domain_trace_unlocked(std::uint32_t domain, std::uintptr_t address,
                                  TakenDomainTrace* taken) noexcept;
  bool restore_domain_trace_unlocked(const TakenDomainTrace& taken) noexcept;

  // The traceback of a traced block, copied out; false when untraced.
  bool traceback_of(std::uintptr_t address, std::vector<std::uint32_t>* frames_out,
                    std::uint32_t* total_out) const;
  // The same for a block of any domain (domain 0: the allocator's blocks
  // and those tracked in domain 0).
  bool traceback_of(std::uint32_t domain, std::uintptr_t address,
                    std::vector<std::uint32_t>* frames_out, std::uint32_t* total_out) const;
  std::string filename_of_frame_unlocked(std::uint32_t frame_id, int* lineno) const;

  FrozenTraces take_snapshot() const;

  MemoryCounters memory() const noexcept;
  void reset_peak() noexcept;
  // Drops traces and interned tables; keeps tracing on or off as it was.
  void clear_unlocked() noexcept;

  std::size_t memory_bytes() const noexcept;
  std::size_t dropped_traces() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  std::size_t trace_count() const noexcept;

 private:
  mutable SpinLock mutex_;
  std::atomic<bool> tracing_{false};
  std::atomic<std::size_t> dropped_{0};
  std::atomic<std::uint64_t> sample_interval_{0};
  sampling::AddressFilter sampled_;  // the traced addresses, in sampled mode

  // guarded by mutex_
  TraceTable traces_;                           // exact mode: every block, dense
  sampling::SampledTraceTable sampled_traces_;  // sampled mode: sparse blocks
  DomainTraces domain_traces_;                  // tracked blocks of domains other than 0
  SequenceInterner frames_;
  SequenceInterner tracebacks_;
  // A filename is interned as its byte length then its bytes packed four to
  // a word (little-endian), so its id is its SequenceInterner id.
  SequenceInterner filenames_;
  MemoryCounters memory_;
  std::uint32_t unknown_traceback_ = kNoId;
  std::uint64_t generation_ = 0;  // bumped by every clear

  std::string filename_unlocked(std::uint32_t id) const;

  // add_trace_unlocked in sampled mode, or for a block that has no traceback.
  [[gnu::noinline]] void add_trace_rarely(std::uint64_t interval, std::uintptr_t address,
                                          std::size_t size, std::uint32_t traceback) noexcept;
  // remove_trace_unlocked in sampled mode: out of line, so that exact mode's
  // free saves no registers for it.
  [[gnu::noinline]] void remove_sampled_trace(std::uintptr_t address) noexcept;
  // Inserts into `traces` (the table of `interval`'s mode) and counts it.
  template <typename Table>
  [[gnu::always_inline]] void add_trace_to(Table& traces, std::uint64_t interval,
                                           std::uintptr_t address, std::size_t size,
                                           std::uint32_t traceback) noexcept {
    std::size_t replaced = TraceTable::kNothingReplaced;
    if (!traces.insert_fresh(address, size, traceback, &replaced)) [[unlikely]] {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    note_inserted(address, size, replaced, interval);
  }

  // Calls `f` with the table of the current mode (the interval only changes
  // while both are empty). Exact mode pays one predictable branch.
  template <typename F>
  [[gnu::always_inline]] decltype(auto) with_traces(F&& f) {
    if (sample_interval() != 0) [[unlikely]]
      return f(sampled_traces_);
    return f(traces_);
  }
  template <typename F>
  [[gnu::always_inline]] decltype(auto) with_traces(F&& f) const {
    if (sample_interval() != 0) [[unlikely]]
      return f(sampled_traces_);
    return f(traces_);
  }

  // What a block of `size` bytes adds to the memory counters: its size, or
  // in sampled mode (a non-zero `interval`, read once by the caller) the
  // estimate it stands for.
  [[gnu::always_inline]] static std::size_t counted_size(std::size_t size,
                                                         std::uint64_t interval) noexcept {
    return interval == 0 ? size : sampled_weight(size, interval);
  }
  static std::size_t sampled_weight(std::size_t size, std::uint64_t interval) noexcept;
  [[gnu::always_inline]] void note_inserted(std::uintptr_t address, std::size_t size,
                                            std::size_t replaced, std::uint64_t interval) noexcept {
    if (replaced != TraceTable::kNothingReplaced) {
      memory_.current -= counted_size(replaced, interval);
    } else if (interval != 0) {
      sampled_.add(address);
    }
    memory_.current += counted_size(size, interval);
    if (memory_.current > memory_.peak) memory_.peak = memory_.current;
  }
  [[gnu::always_inline]] void note_erased(const TraceRecord& removed,
                                          std::uint64_t interval) noexcept {
    memory_.current -= counted_size(removed.size, interval);
    if (interval != 0) sampled_.remove(removed.address);
  }
};

}  // namespace heapscope::core
