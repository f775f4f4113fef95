// Objects reusing a traced block (CPython freelists) get the traceback of
// their creation, as in CPython's module. CPython 3.13 reports object
// creation to a public reference tracer; before 3.13 the same is done by
// wrapping _Py_NewReference (new_reference_hook.h), and these do nothing.
#pragma once

namespace heapscope::cpython {

// Installs our reference tracer, chaining to any tracer already set. GIL.
void install_reference_tracer();
// Restores the previous tracer when ours is still the one set. GIL.
void uninstall_reference_tracer();

}  // namespace heapscope::cpython
