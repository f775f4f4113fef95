// A tool's own part of a snapshot, taken out without Python: the native
// counterpart of python/heapscope/cli/our_frames.py, used where a snapshot is
// written with no interpreter to run that code (on SIGTERM, from a thread
// that holds no GIL). The two must agree; tests/test_signals_harmless.py
// compares their results on the same program.
#pragma once

#include <string>
#include <vector>

#include "core/snapshot/frozen_snapshot.h"

namespace heapscope::core::snapshot {

struct OwnFiles {
  // Blocks whose most recent frame is a file directly in this directory are
  // the tool's (its command line), and so is any frame of such a file.
  std::string directory;
  // Files whose frames sit below the program's (runpy, the entry script).
  std::vector<std::string> outer_files;
};

// `snap` without the tool's blocks; then, when some traceback left still
// holds one of the tool's frames (the program runs inside the tool), each
// traceback without its outermost run of the tool's frames (one frame is
// always kept), total_nframe reduced by as many.
Snapshot without_own(const Snapshot& snap, const OwnFiles& own);

}  // namespace heapscope::core::snapshot
