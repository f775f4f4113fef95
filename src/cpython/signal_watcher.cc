#include "signal_watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "core/snapshot/file_format.h"
#include "core/snapshot/frozen_snapshot.h"
#include "core/snapshot/own_frames.h"
#include "allocator_hooks.h"
#include "fork_return.h"
#include "tracer.h"

namespace heapscope::cpython {
namespace {

// Python 3.12+ warns (DeprecationWarning) when a process with more than one
// OS thread forks: there the watcher is ended before each fork and started
// again after, which costs the parent a wake-up of the watcher per fork
// (forkcost: min 350 -> 460 us per os.fork(), 3.11.7, at load 30). Before
// 3.12 nothing counts threads, and the watcher stays.
#if PY_VERSION_HEX >= 0x030C0000
constexpr bool kEndWatcherAcrossFork = true;
#else
constexpr bool kEndWatcherAcrossFork = false;
#endif

namespace snap = core::snapshot;

constexpr int kWatched[] = {SIGTERM, SIGHUP};
constexpr int kWatchedCount = sizeof(kWatched) / sizeof(kWatched[0]);
// How long one writer waits for the other before the process goes on (to
// its death or its exit) without it.
constexpr auto kWriterWait = std::chrono::seconds(30);

// Who writes this process's snapshot. Moves forward only, except in a fork
// child, which starts again at kIdle.
enum ExitWrite : int { kIdle, kExitWriting, kExitWritten, kWatcherWriting };

// Read by the signal handler: plain atomics, nothing else.
std::atomic<int> g_write_fd{-1};  // the pipe's write end (non-blocking)
std::atomic<pid_t> g_owner{0};    // the process whose watcher reads the pipe
// A child of os.fork() whose Python fork hook will start its own watcher:
// until then a signal is held here (the child may not have run at all yet
// when Pool.terminate() sends SIGTERM).
std::atomic<pid_t> g_awaiting_watcher{0};
std::atomic<int> g_held_signal{0};
// Set from python_fork_begins() to the parent's end of fork(), so that in
// the child it is true from its first instant: a signal sent before the
// child ever ran is delivered then, before the child's fork handler.
std::atomic<bool> g_child_will_watch{false};

std::atomic<int> g_exit_write{kIdle};

// Whether the watcher is reading the pipe. While it is not (ended across a
// fork, until it starts again), a signal's byte waits in the pipe and the
// handler only notes that one came: the thread that starts the watcher again
// then waits for it to end the process, as the signalled thread would have.
// (The handler cannot wait itself: the thread it interrupted may be the one
// that is to start the watcher.)
std::atomic<bool> g_watcher_up{false};
std::atomic<bool> g_signal_while_down{false};

// The rest is changed with the GIL held (watch/unwatch) or in the fork
// handlers (the forking thread holds the GIL too, or is the only thread).
int g_read_fd = -1;
bool g_installed[kWatchedCount] = {};
pthread_t g_thread;
bool g_thread_running = false;
bool g_restart_after_fork = false;
bool g_fork_handlers_registered = false;
// Set by python_fork_begins() in the thread about to call fork() from
// os.fork(), whose child runs Python's after-fork hooks; any other fork
// (C code, _posixsubprocess) may never run them.
bool g_python_fork = false;
bool g_python_child_watches = false;
pthread_t g_python_forking_thread;
// Python 3.12+ counts threads after fork() returns (3.12 before its
// after-fork hooks, 3.13 after them): the watcher ended for an os.fork() is
// started again from python_fork_ended(), not by the fork handler; on 3.13
// once os.fork() has returned (fork_return.h). Atomic: unwatch_signals()
// runs without the GIL.
std::atomic<bool> g_restart_deferred{false};
std::atomic<pid_t> g_watcher_tid{0};  // the watcher's kernel thread id

std::mutex g_plan_mutex;  // guards g_plan: the watcher copies it when it wakes
SignalSnapshotPlan g_plan;

const char* signal_name(int signum) {
  switch (signum) {
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "a signal";
  }
}

void set_default(int signum) noexcept {
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  sigaction(signum, &action, nullptr);
}

// Under SIG_DFL the thread that takes the signal never runs another
// instruction; here the watcher ends the process once the snapshot is
// written, so the thread waits for that instead of running on (a program
// that signals itself would otherwise print what it never printed
// untraced). It does not wait where the watcher may need something it
// holds: inside one of our hooks, or whenever the engine lock is held (a
// free untraces under it without marking the thread as inside a hook, and
// the lock does not know its holder: waiting there held the process for
// the whole bound, 3 runs in 8 on a loaded machine), or while the exit
// snapshot is being written (the watcher waits for that write). The thread
// then runs on until the watcher has the lock and ends the process.
// Bounded, in case the watcher is held up anyway (a lock this thread took
// outside a hook): after kHandlerWait the thread goes on until the watcher
// is done.
constexpr int kHandlerWaitMs = 10'000;
void hold_until_the_watcher_ends_us() noexcept {
  if (in_untraced_region() || tracer().engine.mutex().held() ||
      g_exit_write.load(std::memory_order_acquire) == kExitWriting)
    return;
  for (int waited = 0; waited < kHandlerWaitMs; waited += 100) poll(nullptr, 0, 100);
}

// Async-signal-safe only: getpid, write, poll, sigaction, raise.
extern "C" void on_signal(int signum) {
  const int saved_errno = errno;
  const int fd = g_write_fd.load(std::memory_order_acquire);
  bool woke = false;
  const pid_t pid = getpid();
  if (fd >= 0 && pid == g_owner.load(std::memory_order_acquire)) {
    const unsigned char byte = static_cast<unsigned char>(signum);
    woke = write(fd, &byte, 1) == 1;
    if (woke) {
      if (!g_watcher_up.load()) g_signal_while_down.store(true);
      // Up, or started again since (maybe before it saw the note): wait.
      if (g_watcher_up.load()) hold_until_the_watcher_ends_us();
    }
  } else if (pid == g_awaiting_watcher.load(std::memory_order_acquire) ||
             (g_child_will_watch.load(std::memory_order_acquire) &&
              getppid() == g_owner.load(std::memory_order_acquire))) {
    int none = 0;
    g_held_signal.compare_exchange_strong(none, signum);
    woke = true;
  }
  if (!woke) {
    // Not the process that installed us (a fork child before its fork
    // handler ran), or no way to wake the watcher: what SIG_DFL does. The
    // signal is blocked while we run, so it is delivered on return.
    set_default(signum);
    raise(signum);
  }
  errno = saved_errno;
}

bool ours(int signum) {
  struct sigaction current {};
  if (sigaction(signum, nullptr, &current) != 0) return false;
  return !(current.sa_flags & SA_SIGINFO) && current.sa_handler == on_signal;
}

void say(const std::string& message) {
  const std::string line = "heapscope: " + message + "\n";
  const char* data = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t n = write(STDERR_FILENO, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr closed: nowhere to say it
    data += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::string error_text(int error) {
  char buffer[256];
  // GNU strerror_r returns the message, which may not be in buffer.
  return strerror_r(error, buffer, sizeof buffer);
}

// Whole or not at all: written under a temporary name, then renamed.
// Empty on success, else why not.
std::string write_whole(const std::string& path, const std::string& bytes) {
  const std::string partial = path + "." + std::to_string(getpid()) + ".partial";
  const int fd = open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return error_text(errno);
  const char* data = bytes.data();
  std::size_t left = bytes.size();
  int error = 0;
  while (left > 0 && error == 0) {
    const ssize_t n = write(fd, data, left);
    if (n < 0) {
      if (errno != EINTR) error = errno;
      continue;
    }
    data += n;
    left -= static_cast<std::size_t>(n);
  }
  if (close(fd) != 0 && error == 0) error = errno;
  if (error == 0 && rename(partial.c_str(), path.c_str()) != 0) error = errno;
  if (error != 0) {
    unlink(partial.c_str());
    return error_text(error);
  }
  return {};
}

// The engine's traces now, without heapscope's own part, in our file format.
std::string encoded_snapshot(const SignalSnapshotPlan& plan) {
  snap::Snapshot s = snap::from_frozen(tracer().engine.take_snapshot());
  std::string problem = s.tables->validate();
  if (problem.empty()) problem = s.validate();
  if (!problem.empty()) throw std::runtime_error("the tracer's traces are inconsistent: " + problem);
  s = snap::without_own(s, snap::OwnFiles{plan.own_directory, plan.outer_files});
  return snap::encode(s, tracer().max_nframe.load(std::memory_order_relaxed));
}

void write_snapshot_for(int signum) {
  SignalSnapshotPlan plan;
  try {
    {
      std::lock_guard lock(g_plan_mutex);
      plan = g_plan;
    }
    if (!is_tracing()) {
      say("tracing was stopped by the program before it ended; no snapshot written");
      return;
    }
    const std::string problem = write_whole(plan.path, encoded_snapshot(plan));
    if (problem.empty()) {
      say("pid " + std::to_string(getpid()) + " (" + plan.label + "): snapshot written to " +
          plan.path + " on " + signal_name(signum));
    } else {
      say("could not write the snapshot to " + plan.path + ": " + problem);
    }
  } catch (const std::exception& exc) {
    say("could not write the snapshot to " + plan.path + ": " + exc.what());
  }
}

[[noreturn]] void die_from(int signum) {
  set_default(signum);
  sigset_t only;
  sigemptyset(&only);
  sigaddset(&only, signum);
  pthread_sigmask(SIG_UNBLOCK, &only, nullptr);
  raise(signum);  // this thread: its default action ends the whole process
  _exit(128 + signum);
}

void on_watched_signal(int signum) {
  int state = kIdle;
  if (g_exit_write.compare_exchange_strong(state, kWatcherWriting)) {
    write_snapshot_for(signum);
  } else if (state == kExitWriting) {
    // The exit write is under way: let it finish, then die as untraced.
    const auto deadline = std::chrono::steady_clock::now() + kWriterWait;
    while (g_exit_write.load() == kExitWriting && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  die_from(signum);
}

extern "C" void* watch(void*) {
  g_watcher_tid.store(static_cast<pid_t>(syscall(SYS_gettid)));
  const int fd = g_read_fd;
  for (;;) {
    unsigned char byte = 0;
    const ssize_t n = read(fd, &byte, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || byte == 0) return nullptr;  // closed, or asked to stop
    on_watched_signal(byte);
  }
}

// With every signal blocked: the watcher must not take a signal meant for
// the program's threads (a Ctrl-C that should interrupt the main thread's
// sleep), nor ours, which its own death re-raises.
bool start_thread() {
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  const bool started = pthread_create(&g_thread, nullptr, watch, nullptr) == 0;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  g_thread_running = started;
  g_watcher_up.store(started);
  return started;
}

void stop_thread() {
  if (!g_thread_running) return;
  g_watcher_up.store(false);
  const unsigned char stop = 0;
  const int fd = g_write_fd.load();
  while (write(fd, &stop, 1) < 0 && errno == EINTR) {
  }
  pthread_join(g_thread, nullptr);
  g_thread_running = false;
  // join returns when the thread's stack is free, a moment before the
  // kernel stops counting it (/proc/self/stat, which Python 3.12+'s fork
  // warning reads): wait until the thread id is gone.
  if (const pid_t tid = g_watcher_tid.exchange(0); tid != 0) {
    while (syscall(SYS_tgkill, getpid(), tid, 0) == 0) sched_yield();
  }
}

void restore_defaults() {
  for (int i = 0; i < kWatchedCount; ++i) {
    if (g_installed[i] && ours(kWatched[i])) set_default(kWatched[i]);
    g_installed[i] = false;
  }
}

void close_pipe() {
  const int write_fd = g_write_fd.exchange(-1);
  if (write_fd >= 0) close(write_fd);
  if (g_read_fd >= 0) close(g_read_fd);
  g_read_fd = -1;
  g_owner.store(0);
}

// Prepare runs before the tracer's (registered later), which takes the
// engine lock that a writing watcher may need. The plan's lock is held
// across fork() so that the child never inherits it held by the watcher.
void before_fork() {
  g_restart_after_fork =
      kEndWatcherAcrossFork && g_thread_running && g_owner.load() == getpid();
  if (g_restart_after_fork) stop_thread();
  g_plan_mutex.lock();
}

// The first signal whose byte waits in the pipe, if any (0: none).
int signal_in_pipe() {
  pollfd readable{g_read_fd, POLLIN, 0};
  unsigned char byte = 0;
  while (g_read_fd >= 0 && poll(&readable, 1, 0) == 1 && read(g_read_fd, &byte, 1) == 1) {
    if (byte != 0) return byte;
  }
  return 0;
}

void restart_thread() {
  if (start_thread()) {
    // A signal came while no watcher ran: it is handled now, and this
    // thread waits for the end, as the one it was sent to would have.
    if (g_signal_while_down.exchange(false)) hold_until_the_watcher_ends_us();
    return;
  }
  // Nobody would read the pipe: SIG_DFL again, and a signal that came
  // meanwhile does what SIG_DFL does.
  const int held = signal_in_pipe();
  g_signal_while_down.store(false);
  restore_defaults();
  close_pipe();
  if (held != 0) raise(held);
}

// The watcher ended for an os.fork() starts again, unless unwatch_signals()
// or watch_signals() came first.
void restart_after_python_fork() {
  if (g_restart_deferred.exchange(false) && g_owner.load() == getpid()) restart_thread();
}

bool signal_came_while_down() { return g_signal_while_down.load(); }

void after_fork_in_parent() {
  g_plan_mutex.unlock();
  g_child_will_watch.store(false);
  const bool python_fork = g_python_fork && pthread_equal(g_python_forking_thread, pthread_self());
  g_python_fork = false;
  if (!g_restart_after_fork) return;
  g_restart_after_fork = false;
  if (python_fork) {
    g_restart_deferred.store(true);
  } else {
    restart_thread();
  }
}

// Only async-signal-safe calls: the child of a multi-threaded process.
// A child of os.fork() asked to keep watching (python_fork_begins) keeps
// our handler, which holds a signal until watch_signals() or
// unwatch_signals() runs there; any other child gets SIG_DFL back now.
void after_fork_in_child() {
  g_plan_mutex.unlock();
  const bool awaits = g_python_fork && g_python_child_watches &&
                     pthread_equal(g_python_forking_thread, pthread_self());
  g_python_fork = false;
  g_restart_after_fork = false;
  g_restart_deferred.store(false);
  g_thread_running = false;
  g_watcher_up.store(false);
  g_signal_while_down.store(false);
  g_awaiting_watcher.store(awaits ? getpid() : 0);
  g_child_will_watch.store(false);
  close_pipe();
  g_exit_write.store(kIdle);
  if (!awaits) {
    restore_defaults();
    // Held in the instant before this handler ran: delivered as SIG_DFL.
    if (const int held = g_held_signal.exchange(0); held != 0) raise(held);
  }
}

// The signal held while no watcher ran, if any; no longer holding.
int take_held_signal() {
  g_awaiting_watcher.store(0);
  return g_held_signal.exchange(0);
}

}  // namespace

std::vector<std::string> watch_signals(SignalSnapshotPlan plan) {
  if (!g_fork_handlers_registered) {
    if (pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child) != 0) {
      throw std::runtime_error("cannot register fork handlers");
    }
    g_fork_handlers_registered = true;
  }
  {
    std::lock_guard lock(g_plan_mutex);
    g_plan = std::move(plan);
  }
  restart_after_python_fork();  // if still ended for an os.fork()
  if (!(g_thread_running && g_owner.load() == getpid())) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      throw std::runtime_error("cannot make a pipe: " + error_text(errno));
    }
    fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    g_read_fd = fds[0];
    g_write_fd.store(fds[1]);
    g_owner.store(getpid());
    if (!start_thread()) {
      close_pipe();
      throw std::runtime_error("cannot start the signal watcher thread");
    }
  }
  if (const int held = take_held_signal(); held != 0) {
    const unsigned char byte = static_cast<unsigned char>(held);
    while (write(g_write_fd.load(), &byte, 1) < 0 && errno == EINTR) {
    }
  }
  std::vector<std::string> watched;
  for (int i = 0; i < kWatchedCount; ++i) {
    const int signum = kWatched[i];
    if (!g_installed[i]) {
      struct sigaction current {};
      if (sigaction(signum, nullptr, &current) != 0) continue;
      // Ignored (nohup) or handled by someone: left as it is.
      if ((current.sa_flags & SA_SIGINFO) || current.sa_handler != SIG_DFL) continue;
      struct sigaction action {};
      action.sa_handler = on_signal;
      sigemptyset(&action.sa_mask);
      action.sa_flags = SA_RESTART;
      g_installed[i] = sigaction(signum, &action, nullptr) == 0;
    }
    if (g_installed[i]) watched.push_back(signal_name(signum));
  }
  return watched;
}

void unwatch_signals() noexcept {
  g_restart_deferred.store(false);  // a scheduled restart does nothing
  restore_defaults();
  // A signal held for a watcher that will not come: what SIG_DFL does.
  if (const int held = take_held_signal(); held != 0) raise(held);
  if (g_owner.load() != getpid()) return;
  stop_thread();
  // A signal that came while no watcher ran (or after it stopped): what
  // SIG_DFL, now back, does.
  const int waiting = signal_in_pipe();
  g_signal_while_down.store(false);
  close_pipe();
  if (waiting != 0) raise(waiting);
}

void python_fork_begins(bool child_watches) noexcept {
  if (g_owner.load() != getpid()) return;
  g_python_fork = true;
  g_python_child_watches = child_watches;
  g_python_forking_thread = pthread_self();
  g_held_signal.store(0);
  g_child_will_watch.store(child_watches);
}

void python_fork_ended() noexcept {
  if (!g_restart_deferred.load()) return;
  if (call_after_fork_returns(restart_after_python_fork, signal_came_while_down)) return;
  restart_after_python_fork();
}

bool begin_exit_write(double wait_seconds) noexcept {
  int state = kIdle;
  if (g_exit_write.compare_exchange_strong(state, kExitWriting) || state != kWatcherWriting) {
    return true;
  }
  // The watcher is writing and will end the process.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

void end_exit_write() noexcept {
  int state = kExitWriting;
  g_exit_write.compare_exchange_strong(state, kExitWritten);
}

}  // namespace heapscope::cpython
