// statistics, compare_to and filter_traces over frozen snapshots, with the
// results (and orders, ties included) of tracemalloc's Python code.
//
// Grouping works on ids: traces are first summed per traceback id, then each
// used traceback is expanded into its keys (a line, a file, or its whole
// frame sequence), so the cost is one pass over the traces plus one over the
// distinct tracebacks. Keys are ordered as tracemalloc orders Traceback
// objects: by their frames oldest first, each (filename, lineno), with
// filenames compared by code point (= by UTF-8 bytes).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/sampling/estimate.h"
#include "core/snapshot/fnmatch.h"
#include "core/snapshot/frozen_snapshot.h"

namespace heapscope::core::snapshot {

enum class KeyType { kTraceback, kFilename, kLineno };

// Raised when a snapshot holds data the Python reference would fail on in
// its own way (an empty traceback grouped by 'filename', say): the caller
// runs the reference instead, which raises the exact Python error.
struct Unsupported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A statistic's traceback: frames most recent first, filename ids in `tables`.
struct Key {
  const Tables* tables;
  std::vector<Frame> frames;
};

// In a sampled snapshot (sample_interval > 0) sizes and counts are the
// rounded estimates, and each has its confidence interval; exact snapshots
// leave the intervals empty.
struct StatRow {
  Key key;
  std::int64_t size;
  std::int64_t count;
  std::optional<sampling::Bounds> size_ci{};
  std::optional<sampling::Bounds> count_ci{};
};

struct DiffRow {
  Key key;
  std::int64_t size;
  std::int64_t size_diff;
  std::int64_t count;
  std::int64_t count_diff;
  std::optional<sampling::Bounds> size_ci{};
  std::optional<sampling::Bounds> count_ci{};
  std::optional<sampling::Bounds> size_diff_ci{};
  std::optional<sampling::Bounds> count_diff_ci{};
};

// Why the analysis of this sampled snapshot could fail, or an empty string
// when every statistics() and compare() of it (and of any snapshot filtered
// from it) is computable. The bound: each estimate of a group is a sum over
// its traces of size / p (or 1 / p), a trace counted at most once per frame
// of its traceback (cumulative mode), so the sum over all traces of depth x
// size / p bounds every group's estimate; at most 2^61 for sizes and counts,
// estimates fit the 2^62 that `statistics` rounds into, and a difference of
// two of them fits int64. Exact snapshots always return empty: their sums
// fall back to Python's unbounded ints.
std::string sampled_estimates_problem(const Snapshot& snap);

// Sorted as Snapshot.statistics sorts: (size, count, traceback), descending.
std::vector<StatRow> statistics(const Snapshot& snap, KeyType key_type, bool cumulative);

// Sorted as Snapshot.compare_to sorts (both snapshots exact, or both
// sampled: the caller refuses a mix):
// (|size_diff|, size, |count_diff|, count, traceback), descending.
std::vector<DiffRow> compare(const Snapshot& now, const Snapshot& old, KeyType key_type,
                             bool cumulative);

struct FilterSpec {
  bool domain_filter = false;  // DomainFilter: only inclusive and domain count
  bool inclusive = true;
  Pattern pattern;  // already normalised (".pyc" -> ".py")
  // lineno / domain: nullopt means None; `never` means a value no trace's
  // lineno / domain can equal (a string, 1.5, -1...).
  std::optional<std::int64_t> lineno;
  bool lineno_never = false;
  bool all_frames = false;
  std::optional<std::uint64_t> domain;
  bool domain_never = false;
};

// The traces that pass: at least one inclusive filter (if any) and every
// exclusive one. Throws Unsupported where the reference would raise.
Snapshot filter(const Snapshot& snap, const std::vector<FilterSpec>& filters);

}  // namespace heapscope::core::snapshot
