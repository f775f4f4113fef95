#include "core/snapshot/analysis.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string_view>
#include <unordered_map>

namespace heapscope::core::snapshot {

namespace {

using Wide = __int128;

struct Group {
  Key key;
  Wide size = 0;
  Wide count = 0;
};

// Sums per traceback id: one pass over the trace columns.
void sum_per_traceback(const Snapshot& snap, std::vector<std::uint64_t>* sizes, std::vector<std::uint64_t>* counts) {
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
    }
    return groups;
  }

  // 'lineno' keys are frame ids, 'filename' keys filename ids; one slot
  // more for the empty traceback ('lineno' keys it as an empty Traceback).
  const bool by_line = key_type == KeyType::kLineno;
  const std::size_t nkeys = by_line ? t.frames.size() : t.filenames.size();
  std::vector<Wide> key_size(nkeys + 1, 0), key_count(nkeys + 1, 0);
  for (std::uint32_t id = 0; id < ntb; ++id) {
    if (tb_count[id] == 0) continue;
    auto frames = t.traceback(id);
    if (frames.empty()) {
      if (cumulative) continue;
      if (!by_line) throw Unsupported("'filename' statistics of an empty traceback");
      key_size[nkeys] += tb_size[id];
      key_count[nkeys] += tb_count[id];
      continue;
    }
    const std::size_t used = cumulative ? frames.size() : 1;
    for (std::size_t k = 0; k < used; ++k) {
      const std::size_t key = by_line ? frames[k] : t.frames[frames[k]].filename;
      key_size[key] += tb_size[id];
      key_count[key] += tb_count[id];
    }
  }
  for (std::size_t key = 0; key <= nkeys; ++key) {
    if (key_count[key] == 0) continue;
    Group g{Key{&t, {}}, key_size[key], key_count[key]};
    if (key < nkeys) {
      g.key.frames.push_back(by_line ? t.frames[key] : Frame{static_cast<std::uint32_t>(key), 0});
    }
    groups.push_back(std::move(g));
  }
  return groups;
}

std::int64_t narrow(Wide v) {
  if (v > std::numeric_limits<std::int64_t>::max() || v < std::numeric_limits<std::int64_t>::min()) {
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
    std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
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

std::vector<StatRow> statistics(const Snapshot& snap, KeyType key_type, bool cumulative) {
  std::vector<Group> groups = group(snap, key_type, cumulative);
  std::vector<StatRow> rows;
  rows.reserve(groups.size());
  for (Group& g : groups) rows.push_back(StatRow{std::move(g.key), narrow(g.size), narrow(g.count)});
  Ranks ranks({snap.tables.get()});
  // returns >0 when a sorts before b (is bigger)
  sort_rows(&rows, ranks, [](const StatRow& a, const StatRow& b) {
    if (int c = three_way(a.size, b.size)) return c;
    return three_way(a.count, b.count);
  });
  return rows;
}

std::vector<DiffRow> compare(const Snapshot& now, const Snapshot& old, KeyType key_type, bool cumulative) {
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
  for (std::size_t i = 0; i < old_groups.size(); ++i) old_index.emplace(encode(old_groups[i].key), i);
  std::vector<bool> matched(old_groups.size(), false);

  std::vector<DiffRow> rows;
  rows.reserve(new_groups.size() + old_groups.size());
  for (Group& g : new_groups) {
    Wide old_size = 0, old_count = 0;
    if (auto it = old_index.find(encode(g.key)); it != old_index.end()) {
      matched[it->second] = true;
      old_size = old_groups[it->second].size;
      old_count = old_groups[it->second].count;
    }
    rows.push_back(DiffRow{std::move(g.key), narrow(g.size), narrow(g.size - old_size), narrow(g.count),
                           narrow(g.count - old_count)});
  }
  for (std::size_t i = 0; i < old_groups.size(); ++i) {
    if (matched[i]) continue;
    Group& g = old_groups[i];
    rows.push_back(DiffRow{std::move(g.key), 0, narrow(-g.size), 0, narrow(-g.count)});
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
      frame_fits[i] = name_fits[fr.filename] && !f.lineno_never && (!f.lineno || fr.lineno == *f.lineno);
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
  for (std::size_t k = 0; k < filters.size(); ++k) (filters[k].inclusive ? include : exclude).push_back(k);

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
