// RateLimitFilter: takes a token per call (at request headers) and per
// request message from the buckets of the first matching rule. An empty
// bucket ends the call with RESOURCE_EXHAUSTED and a grpc-retry-pushback-ms
// trailer saying when a token will be back (gRPC clients with a retry policy
// honour it; others can read it).
#pragma once

#include <string>

#include "core/filter.h"
#include "filters/rate_limit/bucket_table.h"
#include "filters/rate_limit/config.h"

namespace sluice::filters::rate_limit {

class RateLimitFilter : public Filter {
 public:
  RateLimitFilter(const RateLimitConfig& config, BucketTable& table) : config_(config), table_(table) {}

  FilterStatus onRequestHeaders(StreamContext& ctx) override;
  FilterStatus onRequestMessage(StreamContext& ctx, Message& message) override;

 private:
  // False (and the call ended) when the bucket is empty.
  bool take(StreamContext& ctx, const Limit& limit, BucketKind kind);

  const RateLimitConfig& config_;
  BucketTable& table_;
  const RateLimitRule* rule_ = nullptr;
  size_t rule_index_ = 0;
  // This caller's key in the rule's partition of the table, made once per
  // call: the caller's value (bounded). Empty for a rule without a key, or
  // a caller without the key's metadata.
  std::string table_key_;
};

}  // namespace sluice::filters::rate_limit
