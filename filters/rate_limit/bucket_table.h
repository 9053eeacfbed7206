// BucketTable: token buckets by key, bounded, least recently used evicted.
//
// One table per rate_limit filter entry, owned by its factory and shared by
// every worker, hence the mutex (held for a hash lookup and a few flops). The
// bound matters: keys come from client metadata, so a client cycling through
// a million values would otherwise grow memory without limit. An evicted key
// starts again with a full bucket, which only ever helps a key that has been
// idle longer than every other key in the table.
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice::filters::rate_limit {

struct BucketSpec {
  double capacity = 1;           // burst: tokens a full bucket holds
  double refill_per_second = 1;  // sustained rate
};

class BucketTable {
 public:
  using Clock = std::chrono::steady_clock;

  explicit BucketTable(size_t max_keys) : max_keys_(max_keys) {}

  struct Result {
    bool allowed;
    // When refused: how long until one token is back.
    std::chrono::milliseconds retry_after{0};
  };
  // Takes one token from `key`'s bucket (new keys start full).
  Result take(std::string_view key, const BucketSpec& spec, Clock::time_point now);

  size_t size() const;
  size_t maxKeys() const { return max_keys_; }

 private:
  struct Entry {
    std::string key;
    double tokens;
    Clock::time_point updated;
  };
  using List = std::list<Entry>;

  const size_t max_keys_;
  mutable std::mutex mutex_;
  List lru_;  // most recently used first
  // Views into the list's keys: list nodes never move.
  std::unordered_map<std::string_view, List::iterator> index_;
};

}  // namespace sluice::filters::rate_limit
