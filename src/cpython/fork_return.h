// Running something in the parent once os.fork() has returned to its caller.
//
// Python 3.13 counts the process's threads for its "multi-threaded, use of
// fork()" DeprecationWarning after the os.register_at_fork after-in-parent
// hooks have run: os_fork_impl calls PyOS_AfterFork_Parent() (which ends by
// running those hooks) and only then warn_about_fork_with_threads(), which
// reads num_threads from /proc/self/stat. A thread started from one of the
// hooks is counted. (3.12 counts before PyOS_AfterFork_Parent().)
//
// So a hook that must start a thread without it being counted schedules the
// start with Py_AddPendingCall instead. A pending call runs in the main
// thread at its next bytecode boundary, which may still be inside os.fork():
// the hooks registered after ours are Python functions too (logging's), and
// each of their calls, loops and returns is such a boundary. The pending call
// therefore looks at the frame that called os.fork() (the one beneath the
// hook that scheduled it): as long as that frame is still suspended in the
// same instruction and deeper frames run on top of it, os.fork() may not
// have counted yet, and the call puts itself back in the queue. It runs the
// callback at the first boundary where that frame is on top again (os.fork()
// returned: CPython checks for pending calls right after each call returns),
// has moved on, or has ended (os.fork() raised).
#pragma once

namespace heapscope::cpython {

// From an os.register_at_fork after_in_parent hook, with the GIL: runs
// `callback` in this thread once os.fork() has returned, or earlier at the
// first bytecode boundary where `due()` is true. Returns false where nothing
// is scheduled and the caller is to run the callback now: Python before
// 3.13 (it counted before the hooks), a thread other than the main one
// (pending calls run in the main thread; and a process whose main thread is
// not the one forking has two threads without us), no Python frame, or a
// full pending-call queue. At most one call is scheduled at a time: a second
// (an os.fork() from an after-fork hook) replaces the first's callback and
// keeps waiting for the first os.fork() to return. The callback runs with the GIL, and must
// itself check whether it is still wanted.
bool call_after_fork_returns(void (*callback)(), bool (*due)());

}  // namespace heapscope::cpython
