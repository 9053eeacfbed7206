// BucketTable: the token buckets of one rate_limit filter entry.
//
// Shared by every worker (and by the configs of consecutive reloads that left
// the entry unchanged), hence the mutexes (held for a hash lookup and a few
// flops). Two kinds of bucket:
// - shared ones, a fixed number (one per rule and kind, for callers a rule
//   does not tell apart), never evicted;
// - keyed ones (one entry per metadata value, holding that caller's bucket
//   of each kind), in one partition per rule, each bounded and least
//   recently used evicted. The bound matters: keys come
//   from client metadata, so a client cycling through a million values would
//   otherwise grow memory without limit. An evicted key starts again with a
//   full bucket, which only ever helps a key that has been idle longer than
//   every other key of its rule. Partitions keep it that way: a client
//   cycling a key it makes up (say a request id on a cheap method) can evict
//   only buckets of that rule, never its own bucket of another rule keyed by
//   who it is, and never a shared bucket.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sluice::filters::rate_limit {

struct BucketSpec {
  double capacity = 1;           // burst: tokens a full bucket holds
  double refill_per_second = 1;  // sustained rate
};

// What a bucket limits: a rule may limit both, each with its own bucket.
enum class BucketKind : uint8_t { Calls = 0, Messages = 1 };

class BucketTable {
 public:
  using Clock = std::chrono::steady_clock;

  // `max_keys` keyed entries (callers) in each of `partitions`.
  BucketTable(size_t max_keys, size_t partitions = 1, size_t shared_buckets = 0);

  struct Result {
    bool allowed = false;
    // When refused: how long until one token is back.
    std::chrono::milliseconds retry_after{0};
  };
  // Takes one token from `key`'s `kind` bucket in `partition` (new keys
  // start full). A key's buckets of both kinds are one entry: a caller
  // limited on both is evicted as one, not its calls bucket by its own
  // messages bucket (which would make a rule with both kinds stop limiting
  // once half of max_keys callers were active).
  Result take(size_t partition, std::string_view key, BucketKind kind, const BucketSpec& spec,
              Clock::time_point now);
  // Takes one token from shared bucket `slot` (< shared_buckets; full at first).
  Result takeShared(size_t slot, const BucketSpec& spec, Clock::time_point now);

  // Keyed entries (callers) held by `partition`.
  size_t size(size_t partition = 0) const;
  size_t maxKeys() const { return max_keys_; }

 private:
  struct Bucket {
    double tokens = -1;  // < 0: never used (full)
    Clock::time_point updated;
  };
  struct Entry {
    std::string key;
    Bucket buckets[2];  // by BucketKind
  };
  using List = std::list<Entry>;

  static Result takeFrom(Bucket& bucket, const BucketSpec& spec, Clock::time_point now);

  struct Partition {
    mutable std::mutex mutex;
    List lru;  // most recently used first
    // Views into the list's keys: list nodes never move.
    std::unordered_map<std::string_view, List::iterator> index;
  };

  const size_t max_keys_;
  std::vector<Partition> partitions_;  // never resized: holds mutexes
  mutable std::mutex shared_mutex_;
  std::vector<Bucket> shared_;
};

}  // namespace sluice::filters::rate_limit
