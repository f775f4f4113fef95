#include "fork_return.h"

#include <Python.h>
#include <sys/types.h>
#include <unistd.h>

#include "allocator_hooks.h"

#if PY_VERSION_HEX >= 0x030D0000
// Exported by every CPython 3 (Modules/signalmodule.c), declared in 3.13 only
// in an internal header.
extern "C" int _PyOS_IsMainThread(void);
#endif

namespace heapscope::cpython {
namespace {

#if PY_VERSION_HEX >= 0x030D0000

// How many times the pending call may find os.fork() possibly not returned
// and put itself back before running the callback anyway. Reached only when
// os.fork() was called from C code that then runs Python for long before it
// returns to its Python caller; otherwise the hooks that run after ours end
// within a few boundaries (and each boundary runs the queue up to 32 times).
constexpr int kMaxDeferrals = 100'000;

struct Scheduled {
  void (*callback)() = nullptr;  // null: nothing scheduled
  bool (*due)() = nullptr;
  PyFrameObject* caller = nullptr;  // strong: the frame that called os.fork()
  int caller_lasti = -1;            // its instruction then
  pid_t pid = 0;                    // the process that scheduled it
  int deferrals = 0;
  // The process whose pending-call queue holds our call (a fork child
  // inherits the flag, and may not inherit the queue).
  pid_t queued_in = 0;
};
Scheduled g_scheduled;  // touched with the GIL held, in the main thread

// The frame objects that PyEval_GetFrame and PyFrame_GetBack make for
// frames that had none are heapscope's, not the program's: not traced.
// (Frees are untraced whatever the region: nothing is left behind.)
// Each such call runs in an UntracedScope (allocator_hooks.h).

// Whether os.fork() may not have returned yet: its caller is still in the
// instruction that called it, with deeper frames (an after-fork hook, or
// what the hook calls) running on top. Wrong only the safe way: C code that
// called os.fork() and runs Python before returning looks the same.
bool may_still_be_in_fork() {
  UntracedScope untraced;
  PyFrameObject* top = PyEval_GetFrame();  // borrowed
  if (top == nullptr || top == g_scheduled.caller) return false;
  if (PyFrame_GetLasti(g_scheduled.caller) != g_scheduled.caller_lasti) return false;
  // Frames that are running stay alive while we hold these references.
  PyFrameObject* frame = PyFrame_GetBack(top);
  while (frame != nullptr && frame != g_scheduled.caller) {
    PyFrameObject* back = PyFrame_GetBack(frame);
    Py_DECREF(frame);
    frame = back;
  }
  const bool below = frame != nullptr;
  Py_XDECREF(frame);
  return below;
}

void forget() {
  g_scheduled.callback = nullptr;
  g_scheduled.due = nullptr;
  // Last: an ended frame's locals may run Python code as they go.
  Py_CLEAR(g_scheduled.caller);
}

int on_pending_call(void*) {
  const pid_t pid = getpid();
  g_scheduled.queued_in = 0;
  if (g_scheduled.callback == nullptr) return 0;
  if (g_scheduled.pid != pid) {
    // A fork child inherited the queue: the parent's callback is not ours.
    forget();
    return 0;
  }
  if (g_scheduled.deferrals < kMaxDeferrals && !g_scheduled.due() && may_still_be_in_fork() &&
      Py_AddPendingCall(on_pending_call, nullptr) == 0) {
    ++g_scheduled.deferrals;
    g_scheduled.queued_in = pid;
    return 0;
  }
  void (*callback)() = g_scheduled.callback;
  forget();
  callback();
  return 0;
}

#endif

}  // namespace

bool call_after_fork_returns(void (*callback)(), bool (*due)()) {
#if PY_VERSION_HEX >= 0x030D0000
  if (!_PyOS_IsMainThread()) return false;
  PyFrameObject* caller = nullptr;
  {
    UntracedScope untraced;
    PyFrameObject* hook = PyEval_GetFrame();  // borrowed: the hook calling us
    if (hook != nullptr) caller = PyFrame_GetBack(hook);
  }
  if (caller == nullptr) return false;
  const pid_t pid = getpid();
  if (g_scheduled.callback != nullptr && g_scheduled.pid == pid) {
    // An os.fork() inside an after-fork hook of another: the outer one
    // counts last, and its caller is the frame to wait for.
    g_scheduled.callback = callback;
    g_scheduled.due = due;
    Py_DECREF(caller);
    return true;
  }
  if (g_scheduled.queued_in != pid) {
    if (Py_AddPendingCall(on_pending_call, nullptr) != 0) {
      Py_DECREF(caller);
      return false;
    }
    g_scheduled.queued_in = pid;
  }
  PyFrameObject* previous = g_scheduled.caller;
  g_scheduled.callback = callback;
  g_scheduled.due = due;
  g_scheduled.caller = caller;
  g_scheduled.caller_lasti = PyFrame_GetLasti(caller);
  g_scheduled.pid = pid;
  g_scheduled.deferrals = 0;
  Py_XDECREF(previous);
  return true;
#else
  (void)callback;
  (void)due;
  return false;
#endif
}

}  // namespace heapscope::cpython
