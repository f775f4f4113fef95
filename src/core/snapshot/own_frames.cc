#include "core/snapshot/own_frames.h"

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <utility>

namespace heapscope::core::snapshot {
namespace {

// Matches fnmatch's `directory/*` as our_frames.py's Filter uses it: '*'
// crosses '/', so anything under the directory.
bool under(std::string_view filename, std::string_view directory) {
  return filename.size() > directory.size() && filename.starts_with(directory) &&
         filename[directory.size()] == '/';
}

// our_frames._is_ours: an outer file, or a file directly in the directory.
bool is_own_frame(std::string_view filename, const OwnFiles& own) {
  if (std::find(own.outer_files.begin(), own.outer_files.end(), filename) !=
      own.outer_files.end()) {
    return true;
  }
  return under(filename, own.directory) &&
         filename.find('/', own.directory.size() + 1) == std::string_view::npos;
}

}  // namespace

Snapshot without_own(const Snapshot& snap, const OwnFiles& own) {
  const Tables& tables = *snap.tables;
  auto filename_of = [&](std::uint32_t frame) -> const std::string& {
    return tables.filenames[tables.frames[frame].filename];
  };
  Snapshot kept;
  kept.sample_interval = snap.sample_interval;
  bool marked = false;  // some kept traceback has a frame in the directory
  for (std::size_t i = 0; i < snap.size(); ++i) {
    auto frames = tables.traceback(snap.tracebacks[i]);
    if (!frames.empty() && under(filename_of(frames[0]), own.directory)) continue;
    for (std::uint32_t f : frames) marked = marked || under(filename_of(f), own.directory);
    kept.domains.push_back(snap.domains[i]);
    kept.sizes.push_back(snap.sizes[i]);
    kept.tracebacks.push_back(snap.tracebacks[i]);
  }
  if (!marked) {
    kept.tables = snap.tables;
    return kept;
  }
  // Re-intern the cut tracebacks: tables are immutable and shared.
  TablesBuilder builder;
  std::vector<std::uint32_t> new_ids(tables.traceback_count(), UINT32_MAX);
  std::vector<std::uint32_t> frame_ids;
  for (std::uint32_t& id : kept.tracebacks) {
    std::uint32_t& cut = new_ids[id];
    if (cut == UINT32_MAX) {
      auto frames = tables.traceback(id);
      std::size_t end = frames.size();
      while (end > 1 && is_own_frame(filename_of(frames[end - 1]), own)) --end;
      frame_ids.clear();
      for (std::size_t k = 0; k < end; ++k) {
        const Frame& frame = tables.frames[frames[k]];
        frame_ids.push_back(builder.frame(builder.filename(tables.filenames[frame.filename]),
                                          frame.lineno));
      }
      const std::uint64_t dropped = frames.size() - end;
      cut = builder.traceback(tables.total_nframe[id] - dropped, frame_ids);
    }
    id = cut;
  }
  kept.tables = builder.finish();
  return kept;
}

}  // namespace heapscope::core::snapshot
