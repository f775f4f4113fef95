#include "core/snapshot/analysis.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string_view>
#include <unordered_map>

#include "core/sampling/weights.h"

namespace heapscope::core::snapshot {

namespace {

using Wide = __int128;

using sampling::Estimate;

// Size and count estimates of one group (sampled snapshots only).
struct Estimates {
  Estimate size;
  Estimate count;
  void add(const Estimates& other) noexcept {
    size.add(other.size);
    count.add(other.count);
  }
};

struct Group {
  Key key;
  Wide size = 0;
  Wide count = 0;
  Estimates estimates{};
};

// Estimates per traceback id in a sampled snapshot (empty when exact).
std::vector<Estimates> estimate_per_traceback(const Snapshot& snap) {
  std::vector<Estimates> out;
  if (snap.sample_interval == 0) return out;
  out.resize(snap.tables->traceback_count());
  for (std::size_t i = 0; i < snap.size(); ++i) {
    const double p = sampling::inclusion_probability(snap.sizes[i], snap.sample_interval);
    Estimates& e = out[snap.tracebacks[i]];
    e.size.add_block(static_cast<double>(snap.sizes[i]), p);
    e.count.add_block(1, p);
  }
  return out;
}

std::int64_t rounded(double v) {
  if (!(std::fabs(v) < 0x1.0p62)) throw Unsupported("an estimate does not fit in 64 bits");
  return std::llround(v);
}

// Sums per traceback id: one pass over the trace columns.
void sum_per_traceback(const Snapshot& snap, std::vector<std::uint64_t>* sizes,
                       std::vector<std::uint64_t>* counts) {
  if (!snap.sizes_fit_int64()) throw Unsupported("sizes too large for 64 bits");
  const std::size_t ntb = snap.tables->traceback_count();
  sizes->assign(ntb, 0);
  counts->assign(ntb, 0);
  const std::size_t n = snap.size();
  const std::uint32_t* tb = snap.tracebacks.data();
  const std::uint64_t* sz = snap.sizes.data();
  std::uint64_t* s = sizes->data();
  std::uint64_t* c = counts->data();
  for (std::size_t i = 0; i < n; ++i) {
    s[tb[i]] += sz[i];
    c[tb[i]] += 1;
  }
}

std::vector<Group> group(const Snapshot& snap, KeyType key_type, bool cumulative) {
  const Tables& t = *snap.tables;
  std::vector<std::uint64_t> tb_size, tb_count;
  sum_per_traceback(snap, &tb_size, &tb_count);
  const std::vector<Estimates> tb_est = estimate_per_traceback(snap);
  const bool sampled = !tb_est.empty();
  const std::size_t ntb = t.traceback_count();
  std::vector<Group> groups;

  if (key_type == KeyType::kTraceback) {
    // Tracebacks are interned with their total_nframe; statistics group by
    // frames alone, so ids with equal frames share a group.
    std::unordered_map<std::string_view, std::size_t> index;
    for (std::uint32_t id = 0; id < ntb; ++id) {
      if (tb_count[id] == 0) continue;
      auto frames = t.traceback(id);
      std::string_view bytes(reinterpret_cast<const char*>(frames.data()), frames.size_bytes());
      auto [it, added] = index.try_emplace(bytes, groups.size());
      if (added) {
        Group g{Key{&t, {}}};
        g.key.frames.reserve(frames.size());
        for (std::uint32_t f : frames) g.key.frames.push_back(t.frames[f]);
        groups.push_back(std::move(g));
      }
      groups[it->second].size += tb_size[id];
      groups[it->second].count += tb_count[id];
      if (sampled) groups[it->second].estimates.add(tb_est[id]);
    }
    return groups;
  }

  // 'lineno' keys are frame ids, 'filename' keys filename ids; one slot
  // more for the empty traceback ('lineno' keys it as an empty Traceback).
  const bool by_line = key_type == KeyType::kLineno;
  const std::size_t nkeys = by_line ? t.frames.size() : t.filenames.size();
  std::vector<Wide> key_size(nkeys + 1, 0), key_count(nkeys + 1, 0);
  std::vector<Estimates> key_est(sampled ? nkeys + 1 : 0);
  for (std::uint32_t id = 0; id < ntb; ++id) {
    if (tb_count[id] == 0) continue;
    auto frames = t.traceback(id);
    if (frames.empty()) {
      if (cumulative) continue;
      if (!by_line) throw Unsupported("'filename' statistics of an empty traceback");
      key_size[nkeys] += tb_size[id];
      key_count[nkeys] += tb_count[id];
      if (sampled) key_est[nkeys].add(tb_est[id]);
      continue;
    }
    const std::size_t used = cumulative ? frames.size() : 1;
    for (std::size_t k = 0; k < used; ++k) {
      const std::size_t key = by_line ? frames[k] : t.frames[frames[k]].filename;
      key_size[key] += tb_size[id];
      key_count[key] += tb_count[id];
      if (sampled) key_est[key].add(tb_est[id]);
    }
  }
  for (std::size_t key = 0; key <= nkeys; ++key) {
    if (key_count[key] == 0) continue;
    Group g{Key{&t, {}}, key_size[key], key_count[key], sampled ? key_est[key] : Estimates{}};
    if (key < nkeys) {
      g.key.frames.push_back(by_line ? t.frames[key] : Frame{static_cast<std::uint32_t>(key), 0});
    }
    groups.push_back(std::move(g));
  }
  return groups;
}

std::int64_t narrow(Wide v) {
  if (v > std::numeric_limits<std::int64_t>::max() ||
      v < std::numeric_limits<std::int64_t>::min()) {
    throw Unsupported("a total does not fit in 64 bits");
  }
  return static_cast<std::int64_t>(v);
}

// Filename ranks by code point order across one or two tables: equal
// strings get equal ranks, so ranks also serve to match keys across tables.
class Ranks {
 public:
  explicit Ranks(std::vector<const Tables*> tables) : tables_(std::move(tables)) {
    std::vector<std::pair<std::string_view, std::pair<std::size_t, std::uint32_t>>> all;
    for (std::size_t k = 0; k < tables_.size(); ++k) {
      const auto& names = tables_[k]->filenames;
      ranks_.emplace_back(names.size());
      for (std::uint32_t i = 0; i < names.size(); ++i) all.push_back({names[i], {k, i}});
    }
    std::sort(all.begin(), all.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    std::uint32_t rank = 0;
    for (std::size_t i = 0; i < all.size(); ++i) {
      if (i > 0 && all[i].first != all[i - 1].first) ++rank;
      ranks_[all[i].second.first][all[i].second.second] = rank;
    }
  }

  // A key as (rank, lineno) pairs, oldest frame first: the order Traceback
  // compares in.
  std::vector<std::pair<std::uint32_t, std::int64_t>> ranked(const Key& key) const {
    const std::size_t k = std::find(tables_.begin(), tables_.end(), key.tables) - tables_.begin();
    std::vector<std::pair<std::uint32_t, std::int64_t>> out;
    out.reserve(key.frames.size());
    for (auto it = key.frames.rbegin(); it != key.frames.rend(); ++it) {
      out.emplace_back(ranks_[k][it->filename], it->lineno);
    }
    return out;
  }

 private:
  std::vector<const Tables*> tables_;
  std::vector<std::vector<std::uint32_t>> ranks_;
};

template <typename Row, typename Less>
void sort_rows(std::vector<Row>* rows, const Ranks& ranks, Less less_by_numbers) {
  std::vector<std::vector<std::pair<std::uint32_t, std::int64_t>>> keys;
  keys.reserve(rows->size());
  for (const Row& r : *rows) keys.push_back(ranks.ranked(r.key));
  std::vector<std::size_t> order(rows->size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  // Descending; keys are unique, so the order is total and stable sorting
  // is not needed to match Python's.
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const int numbers = less_by_numbers((*rows)[a], (*rows)[b]);
    if (numbers != 0) return numbers > 0;
    return keys[b] < keys[a];
  });
  std::vector<Row> sorted;
  sorted.reserve(rows->size());
  for (std::size_t i : order) sorted.push_back(std::move((*rows)[i]));
  *rows = std::move(sorted);
}

template <typename T>
int three_way(T a, T b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

}  // namespace

std::string sampled_estimates_problem(const Snapshot& snap) {
  if (snap.sample_interval == 0) return {};
  constexpr double kLimit = 0x1.0p61;
  double size_bound = 0, count_bound = 0;
  for (std::size_t i = 0; i < snap.size(); ++i) {
    const double p = sampling::inclusion_probability(snap.sizes[i], snap.sample_interval);
    const auto depth = static_cast<double>(snap.tables->traceback(snap.tracebacks[i]).size());
    // max(depth, 1): an empty traceback still counts once in a 'lineno' group
    const double times = depth > 1 ? depth : 1;
    size_bound += times * static_cast<double>(snap.sizes[i]) / p;
    count_bound += times / p;
  }
  // `!(x <= limit)` also refuses NaN (p = 0 cannot happen: sizes count as
  // at least one byte).
  if (!(size_bound <= kLimit)) {
    return "the estimated sizes of this sampled snapshot exceed 2^61 bytes (its largest block: " +
           std::to_string(*std::max_element(snap.sizes.begin(), snap.sizes.end())) +
           " bytes)";
  }
  if (!(count_bound <= kLimit)) {
    return "the estimated block counts of this sampled snapshot exceed 2^61 (sampling interval " +
           std::to_string(snap.sample_interval) + " bytes)";
  }
  return {};
}

std::vector<StatRow> statistics(const Snapshot& snap, KeyType key_type, bool cumulative) {
  std::vector<Group> groups = group(snap, key_type, cumulative);
  std::vector<StatRow> rows;
  rows.reserve(groups.size());
  for (Group& g : groups) {
    if (snap.sample_interval == 0) {
      rows.push_back(StatRow{std::move(g.key), narrow(g.size), narrow(g.count)});
      continue;
    }
    const Estimates& e = g.estimates;
    rows.push_back(
        StatRow{std::move(g.key), rounded(e.size.value), rounded(e.count.value),
                sampling::confidence_interval(
                    e.size, sampling::size_continuity(e.size, snap.sample_interval)),
                sampling::confidence_interval(e.count, sampling::count_continuity(e.count))});
  }
  Ranks ranks({snap.tables.get()});
  // returns >0 when a sorts before b (is bigger)
  sort_rows(&rows, ranks, [](const StatRow& a, const StatRow& b) {
    if (int c = three_way(a.size, b.size)) return c;
    return three_way(a.count, b.count);
  });
  return rows;
}

std::vector<DiffRow> compare(const Snapshot& now, const Snapshot& old, KeyType key_type,
                             bool cumulative) {
  std::vector<Group> new_groups = group(now, key_type, cumulative);
  std::vector<Group> old_groups = group(old, key_type, cumulative);
  std::vector<const Tables*> tables{now.tables.get()};
  if (old.tables != now.tables) tables.push_back(old.tables.get());
  Ranks ranks(tables);

  auto encode = [&](const Key& key) {
    auto ranked = ranks.ranked(key);
    std::string bytes(ranked.size() * 12, '\0');
    for (std::size_t i = 0; i < ranked.size(); ++i) {
      std::memcpy(&bytes[i * 12], &ranked[i].first, 4);
      std::memcpy(&bytes[i * 12 + 4], &ranked[i].second, 8);
    }
    return bytes;
  };
  std::unordered_map<std::string, std::size_t> old_index;
  old_index.reserve(old_groups.size());
  for (std::size_t i = 0; i < old_groups.size(); ++i)
    old_index.emplace(encode(old_groups[i].key), i);
  std::vector<bool> matched(old_groups.size(), false);

  std::vector<DiffRow> rows;
  rows.reserve(new_groups.size() + old_groups.size());
  const bool sampled = now.sample_interval != 0 || old.sample_interval != 0;
  auto add_row = [&](Key&& key, const Group* now_group, const Group* old_group) {
    static const Group kNone{};
    const Group& n = now_group ? *now_group : kNone;
    const Group& o = old_group ? *old_group : kNone;
    if (!sampled) {
      rows.push_back(DiffRow{std::move(key), narrow(n.size), narrow(n.size - o.size),
                             narrow(n.count), narrow(n.count - o.count)});
      return;
    }
    const Estimates& ne = n.estimates;
    const Estimates& oe = o.estimates;
    const std::int64_t size = rounded(ne.size.value), count = rounded(ne.count.value);
    using namespace sampling;
    const std::uint64_t interval = std::max(now.sample_interval, old.sample_interval);
    const double size_w =
        std::max(size_continuity(ne.size, interval), size_continuity(oe.size, interval));
    const double count_w = std::max(count_continuity(ne.count), count_continuity(oe.count));
    rows.push_back(DiffRow{
        std::move(key), size, size - rounded(oe.size.value), count, count - rounded(oe.count.value),
        confidence_interval(ne.size, size_continuity(ne.size, now.sample_interval)),
        confidence_interval(ne.count, count_continuity(ne.count)),
        difference_interval(ne.size, oe.size, size_w),
        difference_interval(ne.count, oe.count, count_w)});
  };
  for (Group& g : new_groups) {
    const Group* old_group = nullptr;
    if (auto it = old_index.find(encode(g.key)); it != old_index.end()) {
      matched[it->second] = true;
      old_group = &old_groups[it->second];
    }
    add_row(std::move(g.key), &g, old_group);
  }
  for (std::size_t i = 0; i < old_groups.size(); ++i) {
    if (matched[i]) continue;
    add_row(std::move(old_groups[i].key), nullptr, &old_groups[i]);
  }
  auto abs64 = [](std::int64_t v) { return v < 0 ? -static_cast<Wide>(v) : static_cast<Wide>(v); };
  sort_rows(&rows, ranks, [&](const DiffRow& a, const DiffRow& b) {
    if (int c = three_way(abs64(a.size_diff), abs64(b.size_diff))) return c;
    if (int c = three_way(a.size, b.size)) return c;
    if (int c = three_way(abs64(a.count_diff), abs64(b.count_diff))) return c;
    return three_way(a.count, b.count);
  });
  return rows;
}

Snapshot filter(const Snapshot& snap, const std::vector<FilterSpec>& filters) {
  const Tables& t = *snap.tables;
  const std::size_t ntb = t.traceback_count();
  std::vector<std::uint8_t> used(ntb, 0);
  for (std::uint32_t id : snap.tracebacks) used[id] = 1;

  // Per Filter: whether each used traceback passes it (domain aside).
  std::vector<std::vector<std::uint8_t>> tb_pass(filters.size());
  std::vector<std::u32string> names;  // normalised, decoded once for all filters
  std::u32string decoded;
  for (std::size_t k = 0; k < filters.size(); ++k) {
    const FilterSpec& f = filters[k];
    if (f.domain_filter) continue;
    if (!f.pattern.supported()) throw Unsupported("pattern Python's fnmatch rejects");
    if (names.empty() && !t.filenames.empty()) {
      names.reserve(t.filenames.size());
      for (const std::string& name : t.filenames) {
        if (!decode_utf8(name, &decoded)) throw Unsupported("filename is not UTF-8");
        names.emplace_back(normalize_filename(decoded));
      }
    }
    std::vector<std::uint8_t> name_fits(t.filenames.size());
    for (std::size_t i = 0; i < names.size(); ++i) name_fits[i] = f.pattern.matches(names[i]);
    std::vector<std::uint8_t> frame_fits(t.frames.size());
    for (std::size_t i = 0; i < t.frames.size(); ++i) {
      const Frame& fr = t.frames[i];
      frame_fits[i] =
          name_fits[fr.filename] && !f.lineno_never && (!f.lineno || fr.lineno == *f.lineno);
    }
    auto& pass = tb_pass[k];
    pass.assign(ntb, 0);
    for (std::uint32_t id = 0; id < ntb; ++id) {
      if (!used[id]) continue;
      auto frames = t.traceback(id);
      bool fits = false;
      if (f.all_frames) {
        for (std::uint32_t fr : frames) {
          if (frame_fits[fr]) {
            fits = true;
            break;
          }
        }
      } else {
        if (frames.empty()) throw Unsupported("Filter on an empty traceback");
        fits = frame_fits[frames[0]];
      }
      pass[id] = fits != !f.inclusive;
    }
  }

  auto passes = [&](std::size_t k, std::uint32_t domain, std::uint32_t tb) -> bool {
    const FilterSpec& f = filters[k];
    const bool domain_equal = !f.domain_never && f.domain && *f.domain == domain;
    if (f.domain_filter) return domain_equal != !f.inclusive;
    const bool p = tb_pass[k][tb];
    if (!f.domain && !f.domain_never) return p;
    return f.inclusive ? (p && domain_equal) : (p || !domain_equal);
  };
  std::vector<std::size_t> include, exclude;
  for (std::size_t k = 0; k < filters.size(); ++k)
    (filters[k].inclusive ? include : exclude).push_back(k);

  auto verdict = [&](std::uint32_t domain, std::uint32_t tb) -> bool {
    bool keep = include.empty();
    for (std::size_t k : include) {
      if (passes(k, domain, tb)) {
        keep = true;
        break;
      }
    }
    if (!keep) return false;
    for (std::size_t k : exclude) {
      if (!passes(k, domain, tb)) return false;
    }
    return true;
  };
  // Nearly every block is in domain 0: decide each used traceback once for
  // that domain, and only the other domains trace by trace.
  std::vector<std::uint8_t> in_domain0(ntb, 0);
  for (std::uint32_t id = 0; id < ntb; ++id) {
    if (used[id]) in_domain0[id] = verdict(0, id);
  }
  const std::size_t n = snap.size();
  std::vector<std::uint8_t> keep(n);
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t domain = snap.domains[i];
    const std::uint32_t tb = snap.tracebacks[i];
    keep[i] = domain == 0 ? in_domain0[tb] : verdict(domain, tb);
    kept += keep[i];
  }
  Snapshot out;
  out.tables = snap.tables;
  out.sample_interval = snap.sample_interval;
  out.domains.resize(kept);
  out.sizes.resize(kept);
  out.tracebacks.resize(kept);
  for (std::size_t i = 0, j = 0; i < n; ++i) {
    if (!keep[i]) continue;
    out.domains[j] = snap.domains[i];
    out.sizes[j] = snap.sizes[i];
    out.tracebacks[j] = snap.tracebacks[i];
    ++j;
  }
  return out;
}

}  // namespace heapscope::core::snapshot
