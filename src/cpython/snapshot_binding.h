// Registers the snapshot engine's Python-facing class and functions on the
// _heapscope module: frozen snapshots, their analysis and their file format.
#pragma once

#include <nanobind/nanobind.h>

namespace heapscope::cpython {

void register_snapshot_binding(nanobind::module_& m);

}  // namespace heapscope::cpython
