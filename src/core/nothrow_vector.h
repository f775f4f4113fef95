// A growable array for the allocation path: every operation that may
// allocate reports failure (false) instead of throwing, and leaves the
// array as it was. Only for trivially copyable elements (they are moved
// with memcpy and never constructed or destroyed).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <type_traits>

#include "allocation.h"

namespace heapscope::core {

template <typename T>
class NothrowVector {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  NothrowVector() noexcept = default;
  ~NothrowVector() { release(data_); }
  NothrowVector(const NothrowVector&) = delete;
  NothrowVector& operator=(const NothrowVector&) = delete;
  NothrowVector(NothrowVector&& other) noexcept { swap(other); }
  NothrowVector& operator=(NothrowVector&& other) noexcept {
    NothrowVector(std::move(other)).swap(*this);
    return *this;
  }

  // A copy of `other`, or false (and this unchanged) without memory.
  [[nodiscard]] bool assign(const NothrowVector& other) noexcept {
    NothrowVector copy;
    if (!copy.append({other.data_, other.size_})) return false;
    swap(copy);
    return true;
  }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return size_ == 0; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T& back() noexcept { return data_[size_ - 1]; }
  T& front() noexcept { return data_[0]; }
  const T& front() const noexcept { return data_[0]; }
  T* begin() noexcept { return data_; }
  T* end() noexcept { return data_ + size_; }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + size_; }

  // Exactly `values`; false (and this emptied) without memory.
  [[nodiscard]] bool assign(std::span<const T> values) noexcept {
    size_ = 0;
    return append(values);
  }
  // `n` elements, the new ones uninitialised; false (this unchanged)
  // without memory.
  [[nodiscard]] bool resize(std::size_t n) noexcept {
    if (n > capacity_ && !reserve(n)) return false;
    size_ = n;
    return true;
  }
  [[nodiscard]] bool push_back(const T& value) noexcept {
    if (size_ == capacity_ && !reserve(grown(size_ + 1))) return false;
    data_[size_++] = value;
    return true;
  }
  [[nodiscard]] bool append(std::span<const T> values) noexcept {
    if (values.size() > capacity_ - size_ && !reserve(grown(size_ + values.size()))) return false;
    if (!values.empty()) std::memcpy(data_ + size_, values.data(), values.size() * sizeof(T));
    size_ += values.size();
    return true;
  }
  // Inserts `value` before position `at` (at <= size()).
  [[nodiscard]] bool insert(std::size_t at, const T& value) noexcept {
    if (size_ == capacity_ && !reserve(grown(size_ + 1))) return false;
    std::memmove(data_ + at + 1, data_ + at, (size_ - at) * sizeof(T));
    data_[at] = value;
    ++size_;
    return true;
  }
  void erase(std::size_t at) noexcept {
    std::memmove(data_ + at, data_ + at + 1, (size_ - at - 1) * sizeof(T));
    --size_;
  }
  void pop_back() noexcept { --size_; }
  // Keeps the first `n` elements (n <= size()).
  void truncate(std::size_t n) noexcept { size_ = n; }
  // Exactly `n` elements, all `value`, in fresh memory of capacity `n`.
  [[nodiscard]] bool assign_filled(std::size_t n, const T& value) noexcept {
    T* fresh = allocate_array<T>(n);
    if (fresh == nullptr && n != 0) return false;
    std::fill_n(fresh, n, value);
    release(data_);
    data_ = fresh;
    size_ = capacity_ = n;
    return true;
  }
  // Room for `n` elements in all.
  [[nodiscard]] bool reserve(std::size_t n) noexcept {
    if (n <= capacity_) return true;
    T* fresh = allocate_array<T>(n);
    if (fresh == nullptr) return false;
    if (size_ != 0) std::memcpy(fresh, data_, size_ * sizeof(T));
    release(data_);
    data_ = fresh;
    capacity_ = n;
    return true;
  }
  // Empties the array and gives its memory back.
  void reset() noexcept { NothrowVector().swap(*this); }
  void swap(NothrowVector& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
  }

 private:
  std::size_t grown(std::size_t needed) const noexcept {
    return std::max({needed, capacity_ * 2, std::size_t{4}});
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace heapscope::core
