// RingQueue: a FIFO on a circular buffer that keeps its capacity, so a queue
// that fills and empties in steady state stops allocating (std::deque frees
// and allocates a block every few elements as it rolls).
//
// Queues live and die with calls (a stream's outbound data, its filter
// chain's events), so their first slot array, the size most of them never
// outgrow, is reused per thread: a worker serving unary calls then allocates
// no slots at all once warm. A bounded number are kept per element type and
// thread; larger arrays are freed as usual.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace sluice {

template <typename T>
class RingQueue {
 public:
  RingQueue() = default;
  RingQueue(RingQueue&& other) noexcept
      : slots_(std::move(other.slots_)), head_(std::exchange(other.head_, 0)), size_(std::exchange(other.size_, 0)) {
    other.slots_.clear();
  }
  RingQueue& operator=(RingQueue&& other) noexcept {
    if (this != &other) {
      recycle();
      slots_ = std::move(other.slots_);
      other.slots_.clear();
      head_ = std::exchange(other.head_, 0);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  RingQueue(const RingQueue&) = delete;
  RingQueue& operator=(const RingQueue&) = delete;
  ~RingQueue() { recycle(); }

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
  void push_front(T value) {
    if (size_ == slots_.size()) grow();
    head_ = (head_ + slots_.size() - 1) % slots_.size();
    slots_[head_] = std::move(value);
    ++size_;
  }
  void pop_front() {
    // Moved out and destroyed, not assigned T{}: assigning an empty string
    // keeps the old heap buffer in the slot, and slots outlive calls.
    { [[maybe_unused]] T gone = std::move(slots_[head_]); }
    head_ = (head_ + 1) % slots_.size();
    --size_;
  }

  // Slot arrays this thread keeps for reuse (for tests and accounting).
  static size_t pooledArrays() {
    Pool* p = pool();
    return p != nullptr ? p->arrays.size() : 0;
  }

 private:
  static constexpr size_t kFirstSlots = 4;
  // Enough for the queues of a few hundred calls finishing in one loop turn.
  static constexpr size_t kMaxPooled = 256;

  struct Pool {
    // Reserved once, so giving an array back never allocates (the
    // destructor and move assignment are noexcept).
    Pool() { arrays.reserve(kMaxPooled); }
    ~Pool() { poolGone() = true; }
    std::vector<std::vector<T>> arrays;
  };
  // Set when this thread's pool is destroyed at thread exit: a queue that
  // dies later (say in an embedder's static object) frees its array instead.
  // Constant-initialised and trivially destructible, so readable even then.
  static bool& poolGone() {
    thread_local bool gone = false;
    return gone;
  }
  static Pool* pool() {
    if (poolGone()) return nullptr;
    thread_local Pool p;
    return &p;
  }

  void grow() {
    std::vector<T> bigger;
    Pool* p = slots_.empty() ? pool() : nullptr;
    if (p != nullptr && !p->arrays.empty()) {
      bigger = std::move(p->arrays.back());
      p->arrays.pop_back();
    } else {
      bigger.resize(slots_.empty() ? kFirstSlots : slots_.size() * 2);
    }
    for (size_t i = 0; i < size_; ++i) bigger[i] = std::move(at(i));
    slots_ = std::move(bigger);
    head_ = 0;
  }

  // Empties the queue (what it still holds is destroyed now, not when the
  // array is reused) and gives a first-size array back to the thread's pool.
  void recycle() {
    if (slots_.size() != kFirstSlots) return;  // none, or grown: freed as usual
    // Every slot destroyed and made anew (not assigned T{}, which would keep
    // a string's heap buffer); the array's own storage stays.
    slots_.clear();
    slots_.resize(kFirstSlots);
    size_ = 0;
    head_ = 0;
    Pool* p = pool();
    if (p != nullptr && p->arrays.size() < kMaxPooled) p->arrays.push_back(std::move(slots_));
    slots_ = std::vector<T>();
  }

  std::vector<T> slots_;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace sluice
