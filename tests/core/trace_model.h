// The expected contents of a trace table in the model tests: the live traces
// in an ordinary map, and their addresses in a vector, so that a test can
// pick a random live address and remove any trace in O(1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <unordered_map>
#include <vector>

namespace heapscope::core::test_model {

struct TraceValue {
  std::size_t size;
  std::uint32_t traceback;
  bool operator==(const TraceValue&) const = default;
};

class TraceModel {
 public:
  bool contains(std::uintptr_t a) const { return map_.count(a) != 0; }
  const TraceValue& at(std::uintptr_t a) const { return map_.at(a); }
  std::size_t size() const { return map_.size(); }
  // Ordered, so a table that visits in address order can be compared as is.
  const std::map<std::uintptr_t, TraceValue>& map() const { return map_; }

  void put(std::uintptr_t a, TraceValue v) {
    if (map_.insert_or_assign(a, v).second) {
      position_[a] = keys_.size();
      keys_.push_back(a);
    }
  }
  bool remove(std::uintptr_t a) {
    if (map_.erase(a) == 0) return false;
    const std::size_t at = position_.at(a);
    position_.erase(a);
    if (at + 1 != keys_.size()) {
      keys_[at] = keys_.back();
      position_[keys_[at]] = at;
    }
    keys_.pop_back();
    return true;
  }
  void clear() {
    map_.clear();
    keys_.clear();
    position_.clear();
  }
  std::uintptr_t pick(std::mt19937_64& rng) const {
    return keys_[std::uniform_int_distribution<std::size_t>(0, keys_.size() - 1)(rng)];
  }

 private:
  std::map<std::uintptr_t, TraceValue> map_;
  std::vector<std::uintptr_t> keys_;
  std::unordered_map<std::uintptr_t, std::size_t> position_;
};

}  // namespace heapscope::core::test_model
