// The calls heapscope diverts through relocation slots while it traces
// (core/symbol_slots.h): object creation before 3.13
// (new_reference_hook.h), the reference tracer's slot on 3.13
// (reference_tracer.h), the tracking C API (tracking_api.h) and, with
// start(native=True), the C allocator (native_hooks.h). Listed,
// with why each is safe and how it is undone, in docs/architecture.md.
#pragma once

#include <cstddef>
#include <string_view>

namespace heapscope::cpython {

// Rewrites the slots in every loaded object and in objects loaded later
// (start()); the C allocator's too when `native`. Returns false when they
// could not all be recorded (out of memory): then none is rewritten. GIL.
bool install_call_slots(bool native) noexcept;
// Puts every slot back (stop()). GIL.
void uninstall_call_slots() noexcept;
// Slots that currently hold heapscope's replacement for `symbol` (tests).
std::size_t call_slots_patched(std::string_view symbol) noexcept;

}  // namespace heapscope::cpython
