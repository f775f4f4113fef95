// A snapshot frozen for analysis: the traces as three parallel columns, and
// the interned tables (filenames, frames, tracebacks) their ids point into.
//
//   traces (one row per live block)        tables (shared, immutable)
//   +--------+------+-----------+          filenames: UTF-8 (surrogatepass)
//   | domain | size | traceback | ---+     frames:    (filename id, lineno)
//   +--------+------+-----------+    +-->  tracebacks: total_nframe and
//                                           frame ids, most recent first
//
// Tables are immutable once built and shared (shared_ptr) by the snapshots
// derived from one another: filter_traces only writes new columns. Every id
// stored in a column or table is checked to be in range when the snapshot is
// built (`validate`), so analysis can index without checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace heapscope::core {
struct FrozenTraces;
}

namespace heapscope::core::snapshot {

struct Frame {
  std::uint32_t filename;
  std::int64_t lineno;
};

struct Tables {
  std::vector<std::string> filenames;
  std::vector<Frame> frames;
  // Traceback i: frame ids traceback_frames[offsets[i] .. offsets[i+1]),
  // most recent first, and its total_nframe.
  std::vector<std::uint64_t> traceback_offsets{0};
  std::vector<std::uint32_t> traceback_frames;
  std::vector<std::uint64_t> total_nframe;

  std::size_t traceback_count() const noexcept { return total_nframe.size(); }
  std::span<const std::uint32_t> traceback(std::uint32_t id) const noexcept {
    return {traceback_frames.data() + traceback_offsets[id],
            static_cast<std::size_t>(traceback_offsets[id + 1] - traceback_offsets[id])};
  }
  // An empty string when every id and offset is in range, else what is wrong.
  std::string validate() const;
};

struct Snapshot {
  std::shared_ptr<const Tables> tables;
  std::vector<std::uint32_t> domains;
  std::vector<std::uint64_t> sizes;
  std::vector<std::uint32_t> tracebacks;
  // 0 for an exact snapshot; else the mean bytes between samples of the
  // sampler that recorded these blocks (statistics weight each block).
  std::uint64_t sample_interval = 0;

  std::size_t size() const noexcept { return sizes.size(); }
  // An empty string when the columns agree and point into the tables.
  std::string validate() const;
  // Whether the sum of all sizes fits in int64, so every statistic and
  // difference computed from it does too.
  bool sizes_fit_int64() const noexcept;
};

// Builds tables by interning, so equal filenames / frames / tracebacks share
// one id however often they are added. Used to convert raw Python traces and
// to read snapshot files.
class TablesBuilder {
 public:
  std::uint32_t filename(std::string_view utf8);
  std::uint32_t frame(std::uint32_t filename, std::int64_t lineno);
  std::uint32_t traceback(std::uint64_t total_nframe, std::span<const std::uint32_t> frames);
  std::shared_ptr<const Tables> finish();

 private:
  struct Hash {
    std::size_t operator()(const std::vector<std::uint64_t>& words) const noexcept;
  };
  std::unique_ptr<Tables> tables_ = std::make_unique<Tables>();
  std::unordered_map<std::string, std::uint32_t> filename_ids_;
  std::unordered_map<std::vector<std::uint64_t>, std::uint32_t, Hash> frame_ids_;
  std::unordered_map<std::vector<std::uint64_t>, std::uint32_t, Hash> traceback_ids_;
  std::vector<std::uint64_t> key_;
};

// The engine's frozen traces as a snapshot: a copy at memory speed.
Snapshot from_frozen(FrozenTraces&& frozen);

}  // namespace heapscope::core::snapshot
