// Objects reusing a traced block (CPython freelists) get the traceback of
// their creation, as in CPython's module. CPython 3.13 reports object
// creation to a public reference tracer; before 3.13 only CPython's own
// tracemalloc is told (a private call), so there these hooks do nothing and
// a reused block keeps the traceback of its first allocation.
#pragma once

namespace heapscope::cpython {

// Installs our reference tracer, chaining to any tracer already set. GIL.
void install_reference_tracer();
// Restores the previous tracer when ours is still the one set. GIL.
void uninstall_reference_tracer();

}  // namespace heapscope::cpython
