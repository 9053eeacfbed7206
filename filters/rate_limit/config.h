// Rate limit config: rules, each matching calls by method (like the router)
// and holding a token bucket for calls and/or one for request messages,
// optionally one bucket per value of a request metadata key.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/method_match.h"
#include "core/registry.h"
#include "filters/rate_limit/bucket_table.h"

namespace sluice::filters::rate_limit {

struct Limit {
  BucketSpec bucket;
  std::string description;  // "10 calls per second", for messages
};

struct RateLimitRule {
  std::optional<MethodMatch> match;  // absent: every call
  std::string key;  // metadata key; empty: one bucket for every caller
  std::optional<Limit> calls;
  std::optional<Limit> messages;
};

struct RateLimitConfig {
  std::vector<RateLimitRule> rules;
  size_t max_keys = 10000;
  // The first rule matching the call, or nullptr (not limited).
  const RateLimitRule* ruleFor(std::string_view path, std::string_view service, const HeaderMap& headers) const;
};

class RateLimitConfigFactory : public FilterConfigFactory {
 public:
  FilterFactorySharedPtr create(const nlohmann::json& config, const std::string& path,
                                FilterBuildContext& ctx) const override;
};

}  // namespace sluice::filters::rate_limit
