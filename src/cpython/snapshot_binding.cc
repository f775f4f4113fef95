// The binding of src/core/snapshot: converts values, nothing more.
//
// `_SnapshotCore` holds a frozen snapshot (columns + shared tables) and turns
// rows into CPython's raw tuples on demand, memoising the filename, frame and
// traceback tuples (many traces share them). The Python classes in
// python/heapscope decide when to use it and build the public objects.
#include "snapshot_binding.h"

#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "core/snapshot/analysis.h"
#include "core/snapshot/file_format.h"
#include "core/snapshot/frozen_snapshot.h"
#include "core/snapshot/pickle_scan.h"
#include "tracer.h"
#include "unicode_utf8.h"

namespace nb = nanobind;

namespace heapscope::cpython {
namespace {

namespace snap = core::snapshot;

nb::object steal_or_throw(PyObject* obj) {
  if (obj == nullptr) throw nb::python_error();
  return nb::steal(obj);
}

// Python objects made for one set of tables, shared by the snapshots that
// share those tables.
class ObjectCache {
 public:
  explicit ObjectCache(std::shared_ptr<const snap::Tables> tables) : tables_(std::move(tables)) {}

  const snap::Tables& tables() const { return *tables_; }

  nb::object filename(std::uint32_t id) {
    if (filenames_.empty()) filenames_.resize(tables_->filenames.size());
    nb::object& cached = filenames_[id];
    if (!cached.is_valid()) {
      const std::string& utf8 = tables_->filenames[id];
      cached = steal_or_throw(
          PyUnicode_DecodeUTF8(utf8.data(), static_cast<Py_ssize_t>(utf8.size()), "surrogatepass"));
    }
    return cached;
  }

  nb::object frame_tuple(std::uint32_t filename_id, std::int64_t lineno) {
    return steal_or_throw(
        Py_BuildValue("(OL)", filename(filename_id).ptr(), static_cast<long long>(lineno)));
  }

  nb::object frame(std::uint32_t id) {
    if (frames_.empty()) frames_.resize(tables_->frames.size());
    nb::object& cached = frames_[id];
    if (!cached.is_valid()) {
      const snap::Frame& f = tables_->frames[id];
      cached = frame_tuple(f.filename, f.lineno);
    }
    return cached;
  }

  nb::object traceback(std::uint32_t id) {
    if (tracebacks_.empty()) tracebacks_.resize(tables_->traceback_count());
    nb::object& cached = tracebacks_[id];
    if (!cached.is_valid()) {
      auto frames = tables_->traceback(id);
      nb::object tuple = steal_or_throw(PyTuple_New(static_cast<Py_ssize_t>(frames.size())));
      for (std::size_t i = 0; i < frames.size(); ++i) {
        PyTuple_SET_ITEM(tuple.ptr(), static_cast<Py_ssize_t>(i), frame(frames[i]).release().ptr());
      }
      cached = std::move(tuple);
    }
    return cached;
  }

  // A statistic's key frames (which may not be table frames: 'filename'
  // keys use line 0).
  nb::object key(const snap::Key& key) {
    nb::object tuple = steal_or_throw(PyTuple_New(static_cast<Py_ssize_t>(key.frames.size())));
    for (std::size_t i = 0; i < key.frames.size(); ++i) {
      PyTuple_SET_ITEM(tuple.ptr(), static_cast<Py_ssize_t>(i),
                       frame_tuple(key.frames[i].filename, key.frames[i].lineno).release().ptr());
    }
    return tuple;
  }

 private:
  std::shared_ptr<const snap::Tables> tables_;
  std::vector<nb::object> filenames_;
  std::vector<nb::object> frames_;
  std::vector<nb::object> tracebacks_;
};

struct SnapshotCore {
  std::shared_ptr<const snap::Snapshot> data;
  std::shared_ptr<ObjectCache> cache;

  static SnapshotCore wrap(snap::Snapshot&& s, std::shared_ptr<ObjectCache> cache = nullptr) {
    SnapshotCore core;
    auto data = std::make_shared<snap::Snapshot>(std::move(s));
    if (!cache) cache = std::make_shared<ObjectCache>(data->tables);
    core.data = std::move(data);
    core.cache = std::move(cache);
    return core;
  }

  std::size_t size() const { return data->size(); }

  nb::object trace(std::size_t i) const {
    const snap::Snapshot& s = *data;
    nb::object tb = cache->traceback(s.tracebacks[i]);
    return steal_or_throw(Py_BuildValue(
        "(INOK)", static_cast<unsigned int>(s.domains[i]), PyLong_FromUnsignedLongLong(s.sizes[i]),
        tb.ptr(), static_cast<unsigned long long>(s.tables->total_nframe[s.tracebacks[i]])));
  }

  // `count` traces from `start` every `step` (the caller resolved the slice).
  nb::list slice(Py_ssize_t start, Py_ssize_t count, Py_ssize_t step) const {
    const auto n = static_cast<Py_ssize_t>(size());
    if (count < 0 || (count > 0 && (start < 0 || start >= n || start + (count - 1) * step < 0 ||
                                    start + (count - 1) * step >= n))) {
      throw nb::index_error("trace slice out of range");
    }
    nb::list out = nb::steal<nb::list>(PyList_New(count));
    for (Py_ssize_t k = 0, i = start; k < count; ++k, i += step) {
      PyList_SET_ITEM(out.ptr(), k, trace(static_cast<std::size_t>(i)).release().ptr());
    }
    return out;
  }

  // Same traces in the same order, whatever tables they come from.
  bool equals(const SnapshotCore& other) const {
    const snap::Snapshot& a = *data;
    const snap::Snapshot& b = *other.data;
    if (a.size() != b.size() || a.sample_interval != b.sample_interval) return false;
    if (a.domains != b.domains || a.sizes != b.sizes) return false;
    if (a.tables == b.tables) return a.tracebacks == b.tracebacks;
    const snap::Tables& ta = *a.tables;
    const snap::Tables& tb = *b.tables;
    std::unordered_map<std::uint64_t, bool> seen;  // (a id << 32 | b id) -> equal
    for (std::size_t i = 0; i < a.size(); ++i) {
      const std::uint64_t pair = (std::uint64_t{a.tracebacks[i]} << 32) | b.tracebacks[i];
      auto [it, added] = seen.try_emplace(pair, false);
      if (added) {
        const std::uint32_t ia = a.tracebacks[i], ib = b.tracebacks[i];
        bool same = ta.total_nframe[ia] == tb.total_nframe[ib];
        auto fa = ta.traceback(ia);
        auto fb = tb.traceback(ib);
        same = same && fa.size() == fb.size();
        for (std::size_t k = 0; same && k < fa.size(); ++k) {
          const snap::Frame& x = ta.frames[fa[k]];
          const snap::Frame& y = tb.frames[fb[k]];
          same = x.lineno == y.lineno && ta.filenames[x.filename] == tb.filenames[y.filename];
        }
        it->second = same;
      }
      if (!it->second) return false;
    }
    return true;
  }
};

snap::KeyType key_type_from(const std::string& name) {
  if (name == "traceback") return snap::KeyType::kTraceback;
  if (name == "filename") return snap::KeyType::kFilename;
  if (name == "lineno") return snap::KeyType::kLineno;
  throw nb::value_error("unknown key_type");
}

// A confidence interval as whole units: (floor(low), ceil(high)), as Python
// ints of any size (an upper bound can pass int64 where the estimate does
// not; an infinite or NaN bound raises rather than wrapping).
nb::object bounds(const std::optional<core::sampling::Bounds>& b) {
  return nb::make_tuple(steal_or_throw(PyLong_FromDouble(std::floor(b->low))),
                        steal_or_throw(PyLong_FromDouble(std::ceil(b->high))));
}

// Whether two sequences hold the very same objects in the same order: how
// the Python layer tells that a list of raw traces it converted is unchanged
// (trace tuples are immutable, so the same tuples mean the same traces).
bool same_items(nb::handle a, nb::handle b) {
  nb::object fa = steal_or_throw(PySequence_Fast(a.ptr(), "not a sequence"));
  nb::object fb = steal_or_throw(PySequence_Fast(b.ptr(), "not a sequence"));
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(fa.ptr());
  if (n != PySequence_Fast_GET_SIZE(fb.ptr())) return false;
  PyObject** ia = PySequence_Fast_ITEMS(fa.ptr());
  PyObject** ib = PySequence_Fast_ITEMS(fb.ptr());
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (ia[i] != ib[i]) return false;
  }
  return true;
}

// (frames, size, count) per statistic, sorted, with (size_ci, count_ci)
// appended for a sampled snapshot; None when the reference implementation
// must handle this snapshot.
nb::object statistics(const SnapshotCore& core, const std::string& key_type, bool cumulative) {
  std::vector<snap::StatRow> rows;
  try {
    nb::gil_scoped_release release;
    rows = snap::statistics(*core.data, key_type_from(key_type), cumulative);
  } catch (const snap::Unsupported&) {
    return nb::none();
  }
  nb::list out;
  for (const auto& row : rows) {
    if (row.size_ci) {
      out.append(nb::make_tuple(core.cache->key(row.key), row.size, row.count, bounds(row.size_ci),
                                bounds(row.count_ci)));
    } else {
      out.append(nb::make_tuple(core.cache->key(row.key), row.size, row.count));
    }
  }
  return out;
}

nb::object compare(const SnapshotCore& now, const SnapshotCore& old, const std::string& key_type,
                   bool cumulative) {
  std::vector<snap::DiffRow> rows;
  try {
    nb::gil_scoped_release release;
    rows = snap::compare(*now.data, *old.data, key_type_from(key_type), cumulative);
  } catch (const snap::Unsupported&) {
    return nb::none();
  }
  nb::list out;
  for (const auto& row : rows) {
    ObjectCache& cache = row.key.tables == now.data->tables.get() ? *now.cache : *old.cache;
    if (row.size_ci) {
      out.append(nb::make_tuple(cache.key(row.key), row.size, row.size_diff, row.count,
                                row.count_diff, bounds(row.size_ci), bounds(row.count_ci),
                                bounds(row.size_diff_ci), bounds(row.count_diff_ci)));
    } else {
      out.append(
          nb::make_tuple(cache.key(row.key), row.size, row.size_diff, row.count, row.count_diff));
    }
  }
  return out;
}

// One filter as the Python layer describes it:
// (is_domain_filter, inclusive, pattern, lineno_state, lineno, all_frames,
//  domain_state, domain, python39_fnmatch) where a state is 0 for None,
// 1 for a value and 2 for a value no trace can equal.
snap::FilterSpec filter_spec_from(nb::handle spec) {
  nb::tuple t = nb::cast<nb::tuple>(spec);
  snap::FilterSpec f;
  f.domain_filter = nb::cast<bool>(t[0]);
  f.inclusive = nb::cast<bool>(t[1]);
  const int lineno_state = nb::cast<int>(t[3]);
  const int domain_state = nb::cast<int>(t[6]);
  if (lineno_state == 1) f.lineno = nb::cast<std::int64_t>(t[4]);
  f.lineno_never = lineno_state == 2;
  f.all_frames = nb::cast<bool>(t[5]);
  if (domain_state == 1) f.domain = nb::cast<std::uint64_t>(t[7]);
  f.domain_never = domain_state == 2;
  if (!f.domain_filter) {
    std::string utf8;
    if (!append_utf8(t[2].ptr(), utf8)) throw nb::type_error("pattern is not a ready str");
    std::u32string pattern;
    if (!snap::decode_utf8(utf8, &pattern)) throw nb::value_error("pattern is not valid text");
    f.pattern = snap::Pattern(pattern, nb::cast<bool>(t[8]) ? snap::FnmatchDialect::kPython39
                                                            : snap::FnmatchDialect::kPython310);
  }
  return f;
}

nb::object filter(const SnapshotCore& core, nb::list specs) {
  std::vector<snap::FilterSpec> filters;
  for (nb::handle spec : specs) filters.push_back(filter_spec_from(spec));
  snap::Snapshot kept;
  try {
    nb::gil_scoped_release release;
    kept = snap::filter(*core.data, filters);
  } catch (const snap::Unsupported&) {
    return nb::none();
  }
  return nb::cast(SnapshotCore::wrap(std::move(kept), core.cache));
}

// An exact int in [lo, hi], as int64 or uint64.
template <typename T>
bool exact_int(PyObject* obj, T* out) {
  if (!PyLong_CheckExact(obj)) return false;
  if constexpr (std::is_signed_v<T>) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
      PyErr_Clear();
      return false;
    }
    *out = static_cast<T>(v);
  } else {
    const unsigned long long v = PyLong_AsUnsignedLongLong(obj);
    if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    *out = static_cast<T>(v);
  }
  return true;
}

// CPython's raw traces -> a frozen snapshot; None unless every trace is
// exactly (int domain < 2**32, int size, ((str, int), ...), int total) with
// at least one frame, as the tracer makes them.
nb::object core_from_raw(nb::handle raw, std::uint64_t sample_interval) {
  nb::object seq = steal_or_throw(PySequence_Fast(raw.ptr(), "traces must be a sequence"));
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq.ptr());
  PyObject** items = PySequence_Fast_ITEMS(seq.ptr());
  snap::TablesBuilder builder;
  snap::Snapshot s;
  s.domains.reserve(n);
  s.sizes.reserve(n);
  s.tracebacks.reserve(n);
  std::unordered_map<PyObject*, std::uint32_t> filename_ids;
  std::unordered_map<PyObject*, std::vector<std::uint32_t>> frame_ids;  // per frames tuple
  std::string utf8;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* trace = items[i];
    if (!PyTuple_CheckExact(trace) || PyTuple_GET_SIZE(trace) != 4) return nb::none();
    std::uint64_t domain, size, total;
    if (!exact_int(PyTuple_GET_ITEM(trace, 0), &domain) || domain > UINT32_MAX) return nb::none();
    if (!exact_int(PyTuple_GET_ITEM(trace, 1), &size)) return nb::none();
    if (!exact_int(PyTuple_GET_ITEM(trace, 3), &total)) return nb::none();
    PyObject* frames = PyTuple_GET_ITEM(trace, 2);
    if (!PyTuple_CheckExact(frames) || PyTuple_GET_SIZE(frames) == 0) return nb::none();
    auto found = frame_ids.find(frames);
    if (found == frame_ids.end()) {
      std::vector<std::uint32_t> ids;
      for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(frames); ++k) {
        PyObject* frame = PyTuple_GET_ITEM(frames, k);
        if (!PyTuple_CheckExact(frame) || PyTuple_GET_SIZE(frame) != 2) return nb::none();
        PyObject* name = PyTuple_GET_ITEM(frame, 0);
        std::int64_t lineno;
        if (!PyUnicode_CheckExact(name) || !exact_int(PyTuple_GET_ITEM(frame, 1), &lineno))
          return nb::none();
        auto fid = filename_ids.find(name);
        if (fid == filename_ids.end()) {
          utf8.clear();
          if (!append_utf8(name, utf8)) return nb::none();
          fid = filename_ids.emplace(name, builder.filename(utf8)).first;
        }
        ids.push_back(builder.frame(fid->second, lineno));
      }
      found = frame_ids.emplace(frames, std::move(ids)).first;
    }
    s.domains.push_back(static_cast<std::uint32_t>(domain));
    s.sizes.push_back(size);
    s.tracebacks.push_back(builder.traceback(total, found->second));
  }
  s.tables = builder.finish();
  s.sample_interval = sample_interval;
  // A sample whose estimates would not fit the analysis is refused here, as
  // a file holding it is refused at load.
  if (!snap::sampled_estimates_problem(s).empty()) return nb::none();
  return nb::cast(SnapshotCore::wrap(std::move(s)));
}

SnapshotCore frozen_traces() {
  if (!is_tracing()) {
    snap::Snapshot empty;
    empty.tables = std::make_shared<snap::Tables>();
    return SnapshotCore::wrap(std::move(empty));
  }
  core::FrozenTraces frozen = tracer().engine.take_snapshot();
  snap::Snapshot s = snap::from_frozen(std::move(frozen));
  // The engine's ids are trusted nowhere else: a bad one would be read
  // out of bounds by every later access.
  std::string problem = s.tables->validate();
  if (problem.empty()) problem = s.validate();
  if (!problem.empty()) {
    throw std::runtime_error("heapscope: the tracer's frozen traces are inconsistent: " + problem +
                             " (" + std::to_string(s.size()) + " traces, " +
                             std::to_string(s.tables->traceback_count()) + " tracebacks, " +
                             std::to_string(s.tables->frames.size()) + " frames)");
  }
  return SnapshotCore::wrap(std::move(s));
}

}  // namespace

void register_snapshot_binding(nb::module_& m) {
  nb::class_<SnapshotCore>(m, "_SnapshotCore",
                           "A frozen snapshot: trace columns and interned tables, analysed in C++.")
      .def("__len__", &SnapshotCore::size)
      .def_prop_ro(
          "sample_interval", [](const SnapshotCore& core) { return core.data->sample_interval; },
          "0 for an exact snapshot, else the sampler's mean bytes between samples.")
      .def("trace", &SnapshotCore::trace, "The raw trace tuple at a non-negative index.")
      .def("slice", &SnapshotCore::slice, "Raw trace tuples: count of them from start, every step.")
      .def("equals", &SnapshotCore::equals)
      .def("statistics", &statistics)
      .def("compare", &compare)
      .def("filter", &filter)
      .def(
          "dump",
          [](const SnapshotCore& core, std::int64_t traceback_limit) {
            std::string bytes;
            std::string problem;
            {
              nb::gil_scoped_release release;
              // Never write a file that load() would refuse.
              problem = snap::sampled_estimates_problem(*core.data);
              if (problem.empty()) bytes = snap::encode(*core.data, traceback_limit);
            }
            if (!problem.empty()) throw nb::value_error(("cannot write this snapshot: " + problem).c_str());
            return nb::bytes(bytes.data(), bytes.size());
          },
          "Our snapshot file format, as bytes.");
  m.def("_frozen_traces", &frozen_traces, "The live traces, frozen (empty when not tracing).");
  m.def("_core_from_raw", &core_from_raw, nb::arg("raw"), nb::arg("sample_interval") = 0,
        "CPython's raw trace tuples as a frozen snapshot, or None.");
  m.def(
      "_confidence_interval",
      [](double value, double variance, double observed, double continuity) {
        core::sampling::Estimate e{value, variance, 0, 0, observed};
        return bounds(core::sampling::confidence_interval(e, continuity));
      },
      "(low, high) for an estimate (value, variance, observed) allowing one more block of weight "
      "continuity (tests).");
  m.def("_gamma_quantile", &core::sampling::gamma_quantile, nb::arg("shape"), nb::arg("q"),
        "The q-quantile of the gamma distribution of this shape and scale 1 (tests).");
  m.def(
      "_core_load",
      [](nb::bytes data) {
        snap::Decoded decoded;
        std::string error;
        {
          std::string_view view(data.c_str(), data.size());
          nb::gil_scoped_release release;
          error = snap::decode(view, &decoded);
        }
        if (!error.empty()) throw nb::value_error(error.c_str());
        return nb::make_tuple(SnapshotCore::wrap(std::move(decoded.snapshot)),
                              decoded.traceback_limit);
      },
      "(core, traceback_limit) from our file format; ValueError naming the problem.");
  m.def("_same_items", &same_items, nb::arg("a"), nb::arg("b"),
        "Whether two lists or tuples hold the same objects (by identity) in the same order.");
  m.def(
      "_quiet_leak_warnings", [] { nb::set_leak_warnings(false); },
      "Silence nanobind's report of instances still alive at exit (for when daemon threads "
      "still hold some, which is no leak).");
  m.def(
      "_pickle_bounds_problem",
      [](nb::bytes data) {
        return snap::pickle_bounds_problem(std::string_view(data.c_str(), data.size()));
      },
      "Why unpickling these bytes could allocate far more than their size, or ''.");
}

}  // namespace heapscope::cpython
