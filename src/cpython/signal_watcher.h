// The snapshot on SIGTERM/SIGHUP, written without Python.
//
// Startup tracing (HEAPSCOPE_TRACE, `heapscope run`) must write a snapshot
// when a signal whose default action is death ends the process, without
// changing what that signal does. So no Python-level handler (it would show
// in signal.getsignal, be inherited by forked children, and wait for the
// interpreter to reach a bytecode boundary, which long C code delays for
// minutes). Instead:
//
//  - a C-level sigaction handler, installed only where the disposition is
//    SIG_DFL, that does one async-signal-safe thing: writes the signal's
//    number into a pipe (in a process other than the one that installed it,
//    a fork child, it restores SIG_DFL and re-raises, as if never there);
//  - a native watcher thread (all signals blocked, no Python thread state)
//    that reads the pipe, freezes the engine's traces, takes heapscope's
//    own blocks and frames out, writes the file under a temporary name and
//    renames it, then restores SIG_DFL and re-raises the signal: the
//    process dies of it, as it would have untraced.
//
// On Python 3.12+ the watcher thread exists only between forks: a fork
// handler ends it before fork() and it starts again in the parent once
// Python's "multi-threaded, use of fork()" warning has counted the threads,
// so that the count is the one the program gets untraced. 3.12 counts
// before os.fork()'s after-fork hooks: python_fork_ended(), called from the
// session's hook, starts it. 3.13 counts after them: there, for a fork by
// the main thread, python_fork_ended() leaves the start to a pending call
// that runs once os.fork() has returned (fork_return.h). Any other fork
// (C code, _posixsubprocess) starts it from the fork handler. While no
// watcher runs, a signal's byte waits in the pipe; whoever starts the
// watcher then waits for it to end the process (the pending call does not
// wait for os.fork() to return once a signal came).
//
// A child starts with no watcher and SIG_DFL back, except the child of an
// os.fork() announced by python_fork_begins(): there our handler stays and
// holds a signal until the child's Python fork hook calls watch_signals
// (its own snapshot file: the held signal is then handled) or
// unwatch_signals (SIG_DFL, and the held signal re-raised).
//
// The exit writer (Python, at exit) and the watcher never both write:
// begin_exit_write() / end_exit_write() bracket the exit write, and a
// signal during it waits (boundedly) for it to end before dying.
#pragma once

#include <string>
#include <vector>

namespace heapscope::cpython {

struct SignalSnapshotPlan {
  std::string path;   // the snapshot file of this process
  std::string label;  // how the stderr line names the program
  // heapscope's command-line directory and the files below the program
  // (core/snapshot/own_frames.h)
  std::string own_directory;
  std::vector<std::string> outer_files;
};

// Starts watching SIGTERM and SIGHUP (those still at SIG_DFL) in this
// process, or replaces the plan when already watching. Returns the names of
// the signals now watched; throws std::runtime_error when the pipe or the
// thread cannot be made (nothing is left installed then). Needs the GIL.
std::vector<std::string> watch_signals(SignalSnapshotPlan plan);

// Restores SIG_DFL where our handler is still installed and ends the
// watcher. Releases nothing it does not own: a handler the program set
// since is left alone. Call with the GIL released (it joins the thread).
void unwatch_signals() noexcept;

// Called by the Python fork hooks around os.fork(): before (child_watches:
// the child's after-fork hook will call watch_signals or unwatch_signals,
// whatever happens), and in the parent after, where a watcher ended for the
// fork starts again: at once on 3.12 (which counted the threads before the
// hooks) or for a fork by another thread, else once os.fork() has returned.
// Needs the GIL.
void python_fork_begins(bool child_watches) noexcept;
void python_fork_ended() noexcept;

// Whether this process's exit write may go ahead (the watcher is not
// writing); when the watcher is writing, waits up to `wait_seconds` for it
// to end the process and returns false. Call with the GIL released.
bool begin_exit_write(double wait_seconds) noexcept;
// The exit write is over (written or failed): a signal now just kills.
void end_exit_write() noexcept;

}  // namespace heapscope::cpython
