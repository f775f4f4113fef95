#include "call_slots.h"

#include "core/symbol_slots.h"
#include "native_hooks.h"
#include "new_reference_hook.h"
#include "reference_tracer.h"
#include "tracking_api.h"

namespace heapscope::cpython {

namespace slots = core::symbol_slots;

bool install_call_slots(bool native) noexcept {
  slots::Hook hooks[slots::kMaxHooks];
  std::size_t count = new_reference_hooks(hooks);
  count += reference_tracer_hooks(hooks + count);
  count += tracking_api_hooks(hooks + count);
  if (native) count += native_hooks(hooks + count);
  return slots::install(hooks, count) >= 0;
}

void uninstall_call_slots() noexcept { slots::remove_all(); }

std::size_t call_slots_patched(std::string_view symbol) noexcept {
  return slots::patched_slots(symbol);
}

}  // namespace heapscope::cpython
