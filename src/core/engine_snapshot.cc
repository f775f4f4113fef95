// The Engine methods that build C++ objects for a snapshot or a query from
// Python. Compiled with exceptions (unlike engine.cc): they run under the
// GIL outside any allocator hook, and report a lack of memory by throwing
// std::bad_alloc, which the binding turns into MemoryError.
#include <cstring>
#include <mutex>
#include <new>

#include "engine.h"

namespace heapscope::core {

std::string Engine::filename_unlocked(std::uint32_t id) const {
  auto words = filenames_.get(id);
  std::string name(words[0], '\0');
  std::memcpy(name.data(), words.data() + 1, name.size());
  return name;
}

bool Engine::traceback_of(std::uintptr_t address, std::vector<std::uint32_t>* frames_out,
                          std::uint32_t* total_out) const {
  std::lock_guard lock(mutex_);
  TraceRecord record;
  if (!with_traces([&](const auto& traces) { return traces.find(address, &record); })) {
    return false;
  }
  auto words = tracebacks_.get(record.traceback);
  *total_out = words[0];
  frames_out->assign(words.begin() + 1, words.end());
  return true;
}

bool Engine::traceback_of(std::uint32_t domain, std::uintptr_t address,
                          std::vector<std::uint32_t>* frames_out, std::uint32_t* total_out) const {
  if (domain == 0) return traceback_of(address, frames_out, total_out);
  std::lock_guard lock(mutex_);
  DomainTraces::Trace trace;
  if (!domain_traces_.find(domain, address, &trace)) return false;
  auto words = tracebacks_.get(trace.traceback);
  *total_out = words[0];
  frames_out->assign(words.begin() + 1, words.end());
  return true;
}

std::string Engine::filename_of_frame_unlocked(std::uint32_t frame_id, int* lineno) const {
  auto words = frames_.get(frame_id);
  *lineno = static_cast<int>(words[1]);
  return filename_unlocked(words[0]);
}

FrozenTraces Engine::take_snapshot() const {
  FrozenTraces frozen;
  std::lock_guard lock(mutex_);
  with_traces([&](const auto& traces) {
    frozen.traces.reserve(traces.size());
    traces.for_each([&](const TraceRecord& r) {
      frozen.traces.push_back(FrozenTraces::Trace{0, r.traceback, r.size});
    });
  });
  frozen.traces.reserve(frozen.traces.size() + domain_traces_.size());
  domain_traces_.for_each([&](const DomainTraces::Trace& t) {
    frozen.traces.push_back(FrozenTraces::Trace{t.domain, t.traceback, t.size});
  });
  if (!frozen.frames.assign(frames_) || !frozen.tracebacks.assign(tracebacks_)) {
    throw std::bad_alloc();
  }
  frozen.filenames.reserve(filenames_.size());
  for (std::uint32_t id = 0; id < filenames_.size(); ++id) {
    frozen.filenames.push_back(filename_unlocked(id));
  }
  frozen.sample_interval = sample_interval();
  return frozen;
}

}  // namespace heapscope::core
