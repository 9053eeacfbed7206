// RingQueue: a FIFO on a circular buffer that keeps its capacity, so a queue
// that fills and empties in steady state stops allocating (std::deque frees
// and allocates a block every few elements as it rolls).
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace sluice {

template <typename T>
class RingQueue {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  T& front() { return slots_[head_]; }
  const T& front() const { return slots_[head_]; }
  T& at(size_t i) { return slots_[(head_ + i) % slots_.size()]; }
  const T& at(size_t i) const { return slots_[(head_ + i) % slots_.size()]; }
  T& back() { return at(size_ - 1); }

  T& emplace_back() {
    if (size_ == slots_.size()) grow();
    T& slot = slots_[(head_ + size_) % slots_.size()];
    ++size_;
    return slot;
  }
  void push_back(T value) { emplace_back() = std::move(value); }
  void pop_front() {
    slots_[head_] = T{};
    head_ = (head_ + 1) % slots_.size();
    --size_;
  }

 private:
  void grow() {
    std::vector<T> bigger(slots_.empty() ? 4 : slots_.size() * 2);
    for (size_t i = 0; i < size_; ++i) bigger[i] = std::move(at(i));
    slots_ = std::move(bigger);
    head_ = 0;
  }

  std::vector<T> slots_;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace sluice
