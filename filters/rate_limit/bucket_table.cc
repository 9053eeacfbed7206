#include "filters/rate_limit/bucket_table.h"

#include <algorithm>
#include <cmath>

namespace sluice::filters::rate_limit {

BucketTable::Result BucketTable::take(std::string_view key, const BucketSpec& spec, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = index_.find(key);
  if (it == index_.end()) {
    if (lru_.size() >= max_keys_) {
      index_.erase(lru_.back().key);
      lru_.pop_back();
    }
    lru_.push_front({std::string(key), Bucket{}});
    index_.emplace(lru_.front().key, lru_.begin());
  } else {
    lru_.splice(lru_.begin(), lru_, it->second);
  }
  return takeFrom(lru_.front().bucket, spec, now);
}

BucketTable::Result BucketTable::takeShared(size_t slot, const BucketSpec& spec, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  return takeFrom(shared_.at(slot), spec, now);
}

BucketTable::Result BucketTable::takeFrom(Bucket& b, const BucketSpec& spec, Clock::time_point now) {
  if (b.tokens < 0) {
    b.tokens = spec.capacity;
    b.updated = now;
  }
  // Refill for the time since the last look; a clock that went backwards
  // (another thread's `now` taken earlier) refills nothing.
  double elapsed = std::chrono::duration<double>(now - b.updated).count();
  if (elapsed > 0) {
    b.tokens = std::min(spec.capacity, b.tokens + elapsed * spec.refill_per_second);
    b.updated = now;
  }
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return {true};
  }
  double wait_seconds = (1.0 - b.tokens) / spec.refill_per_second;
  auto wait = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(wait_seconds * 1000.0)));
  return {false, std::max(wait, std::chrono::milliseconds(1))};
}

size_t BucketTable::size() const {
  std::lock_guard lock(mutex_);
  return lru_.size();
}

}  // namespace sluice::filters::rate_limit
