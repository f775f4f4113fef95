#include "core/snapshot/frozen_snapshot.h"

#include <limits>

#include "core/engine.h"

namespace heapscope::core::snapshot {

std::string Tables::validate() const {
  if (traceback_offsets.size() != total_nframe.size() + 1) return "traceback offsets and counts disagree";
  if (traceback_offsets.front() != 0) return "first traceback offset is not 0";
  for (std::size_t i = 1; i < traceback_offsets.size(); ++i) {
    if (traceback_offsets[i] < traceback_offsets[i - 1]) return "traceback offsets decrease";
  }
  if (traceback_offsets.back() != traceback_frames.size()) return "traceback offsets overrun the frame ids";
  if (filenames.size() > std::numeric_limits<std::uint32_t>::max() ||
      frames.size() > std::numeric_limits<std::uint32_t>::max() ||
      total_nframe.size() > std::numeric_limits<std::uint32_t>::max()) {
    return "too many table entries";
  }
  for (const Frame& f : frames) {
    if (f.filename >= filenames.size()) return "frame names a filename out of range";
  }
  for (std::uint32_t id : traceback_frames) {
    if (id >= frames.size()) return "traceback names a frame out of range";
  }
  return {};
}

std::string Snapshot::validate() const {
  if (!tables) return "no tables";
  if (domains.size() != sizes.size() || tracebacks.size() != sizes.size()) return "trace columns differ in length";
  const std::size_t count = tables->traceback_count();
  for (std::uint32_t id : tracebacks) {
    if (id >= count) return "trace names a traceback out of range";
  }
  return {};
}

bool Snapshot::sizes_fit_int64() const noexcept {
  std::uint64_t total = 0;
  for (std::uint64_t s : sizes) {
    if (s > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) - total) return false;
    total += s;
  }
  return true;
}

std::size_t TablesBuilder::Hash::operator()(const std::vector<std::uint64_t>& words) const noexcept {
  std::uint64_t h = 0x9E3779B97F4A7C15ull ^ words.size();
  for (std::uint64_t w : words) {
    h ^= w + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
    h *= 0xBF58476D1CE4E5B9ull;
  }
  return static_cast<std::size_t>(h ^ (h >> 31));
}

std::uint32_t TablesBuilder::filename(std::string_view utf8) {
  auto [it, added] = filename_ids_.try_emplace(std::string(utf8),
                                               static_cast<std::uint32_t>(tables_->filenames.size()));
  if (added) tables_->filenames.emplace_back(utf8);
  return it->second;
}

std::uint32_t TablesBuilder::frame(std::uint32_t filename, std::int64_t lineno) {
  key_.assign({filename, static_cast<std::uint64_t>(lineno)});
  auto it = frame_ids_.find(key_);
  if (it != frame_ids_.end()) return it->second;
  const auto id = static_cast<std::uint32_t>(tables_->frames.size());
  tables_->frames.push_back(Frame{filename, lineno});
  frame_ids_.emplace(key_, id);
  return id;
}

std::uint32_t TablesBuilder::traceback(std::uint64_t total_nframe, std::span<const std::uint32_t> frames) {
  key_.clear();
  key_.push_back(total_nframe);
  key_.insert(key_.end(), frames.begin(), frames.end());
  auto it = traceback_ids_.find(key_);
  if (it != traceback_ids_.end()) return it->second;
  const auto id = static_cast<std::uint32_t>(tables_->total_nframe.size());
  tables_->total_nframe.push_back(total_nframe);
  tables_->traceback_frames.insert(tables_->traceback_frames.end(), frames.begin(), frames.end());
  tables_->traceback_offsets.push_back(tables_->traceback_frames.size());
  traceback_ids_.emplace(key_, id);
  return id;
}

std::shared_ptr<const Tables> TablesBuilder::finish() {
  filename_ids_.clear();
  frame_ids_.clear();
  traceback_ids_.clear();
  std::shared_ptr<const Tables> done(std::move(tables_));
  tables_ = std::make_unique<Tables>();
  return done;
}

Snapshot from_frozen(FrozenTraces&& frozen) {
  auto tables = std::make_shared<Tables>();
  tables->filenames = std::move(frozen.filenames);
  tables->frames.resize(frozen.frames.size());
  for (std::uint32_t i = 0; i < frozen.frames.size(); ++i) {
    auto words = frozen.frames.get(i);
    tables->frames[i] = Frame{words[0], static_cast<std::int64_t>(words[1])};
  }
  const std::size_t tb_count = frozen.tracebacks.size();
  tables->total_nframe.resize(tb_count);
  tables->traceback_offsets.resize(tb_count + 1);
  std::size_t total_frames = 0;
  for (std::uint32_t i = 0; i < tb_count; ++i) total_frames += frozen.tracebacks.get(i).size() - 1;
  tables->traceback_frames.reserve(total_frames);
  for (std::uint32_t i = 0; i < tb_count; ++i) {
    auto words = frozen.tracebacks.get(i);
    tables->total_nframe[i] = words[0];
    tables->traceback_frames.insert(tables->traceback_frames.end(), words.begin() + 1, words.end());
    tables->traceback_offsets[i + 1] = tables->traceback_frames.size();
  }

  // A trace whose traceback id is beyond the tables can only be one that
  // clear_traces() dropped while a failing realloc was putting it back
  // (tests/test_threads.py): it is not live, so it is left out rather than
  // read out of bounds.
  Snapshot snap;
  snap.sample_interval = frozen.sample_interval;
  const std::size_t n = frozen.traces.size();
  snap.domains.reserve(n);
  snap.sizes.reserve(n);
  snap.tracebacks.reserve(n);
  for (const auto& t : frozen.traces) {
    if (t.traceback >= tb_count) continue;
    snap.domains.push_back(t.domain);
    snap.sizes.push_back(t.size);
    snap.tracebacks.push_back(t.traceback);
  }
  frozen.traces = {};
  snap.tables = std::move(tables);
  return snap;
}

}  // namespace heapscope::core::snapshot
