#include "filters/rate_limit/bucket_table.h"

#include <algorithm>
#include <cmath>

namespace sluice::filters::rate_limit {

BucketTable::BucketTable(size_t max_keys, size_t partitions, size_t shared_buckets)
    : max_keys_(max_keys), partitions_(partitions), shared_(shared_buckets) {}

BucketTable::Result BucketTable::take(size_t partition, std::string_view key, BucketKind kind,
                                      const BucketSpec& spec, Clock::time_point now) {
  Partition& p = partitions_.at(partition);
  std::lock_guard lock(p.mutex);
  auto it = p.index.find(key);
  if (it == p.index.end()) {
    if (p.lru.size() >= max_keys_) {
      p.index.erase(p.lru.back().key);
      p.lru.pop_back();
    }
    p.lru.push_front({std::string(key), {}});
    p.index.emplace(p.lru.front().key, p.lru.begin());
  } else {
    p.lru.splice(p.lru.begin(), p.lru, it->second);
  }
  return takeFrom(p.lru.front().buckets[static_cast<size_t>(kind)], spec, now);
}

BucketTable::Result BucketTable::takeShared(size_t slot, const BucketSpec& spec, Clock::time_point now) {
  std::lock_guard lock(shared_mutex_);
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

size_t BucketTable::size(size_t partition) const {
  const Partition& p = partitions_.at(partition);
  std::lock_guard lock(p.mutex);
  return p.lru.size();
}

}  // namespace sluice::filters::rate_limit
