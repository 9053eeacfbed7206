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
    lru_.push_front({std::string(key), spec.capacity, now});
    index_.emplace(lru_.front().key, lru_.begin());
  } else {
    lru_.splice(lru_.begin(), lru_, it->second);
  }
  Entry& e = lru_.front();
  // Refill for the time since the last look; a clock that went backwards
  // (another thread's `now` taken earlier) refills nothing.
  double elapsed = std::chrono::duration<double>(now - e.updated).count();
  if (elapsed > 0) {
    e.tokens = std::min(spec.capacity, e.tokens + elapsed * spec.refill_per_second);
    e.updated = now;
  }
  if (e.tokens >= 1.0) {
    e.tokens -= 1.0;
    return {true};
  }
  double wait_seconds = (1.0 - e.tokens) / spec.refill_per_second;
  auto wait = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(wait_seconds * 1000.0)));
  return {false, std::max(wait, std::chrono::milliseconds(1))};
}

size_t BucketTable::size() const {
  std::lock_guard lock(mutex_);
  return lru_.size();
}

}  // namespace sluice::filters::rate_limit
