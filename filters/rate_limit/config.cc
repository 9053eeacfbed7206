#include "filters/rate_limit/config.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/headers.h"
#include "core/json_reader.h"
#include "core/method_match.h"
#include "core/reload_shared.h"
#include "filters/rate_limit/filter.h"

namespace sluice::filters::rate_limit {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxRate = 1'000'000'000;
constexpr uint64_t kMaxKeysLimit = 10'000'000;

// The bucket table for the filter entry `reload_key` (FilterBuildContext)
// with config `text`: the one a live config already uses for the same entry
// unchanged (a reload that changed routes or clusters, or added a filter
// before it, must not hand every caller a full bucket), else a new one.
std::shared_ptr<BucketTable> tableFor(const std::string& reload_key, const std::string& text,
                                      const RateLimitConfig& config) {
  return sharedAcrossReloads<BucketTable>(reload_key + "\n" + text, [&] {
    return std::make_shared<BucketTable>(config.max_keys, config.rules.size(), config.rules.size() * 2);
  });
}

class RateLimitFilterFactory : public FilterFactory {
 public:
  RateLimitFilterFactory(std::shared_ptr<const RateLimitConfig> config, std::shared_ptr<BucketTable> table)
      : config_(std::move(config)), table_(std::move(table)) {}
  FilterPtr createFilter(StreamContext&) const override {
    return std::make_unique<RateLimitFilter>(*config_, *table_);
  }

 private:
  std::shared_ptr<const RateLimitConfig> config_;
  // Buckets are state shared by every stream; the table synchronises itself.
  std::shared_ptr<BucketTable> table_;
};

// {"rate": N, "per": "second"|"minute"|"hour", "burst": M (default N)}
std::optional<Limit> readLimit(JsonObject& parent, std::string_view key, std::string_view unit) {
  const json* value = parent.object(key);
  if (value == nullptr) return std::nullopt;
  JsonObject obj(*value, parent.pathOf(key), parent.errors());
  auto rate = obj.unsignedInt("rate", 1, kMaxRate, true);
  auto per = obj.string("per").value_or("second");
  auto burst = obj.unsignedInt("burst", 1, kMaxRate);
  obj.finish();
  double seconds = 0;
  if (per == "second") {
    seconds = 1;
  } else if (per == "minute") {
    seconds = 60;
  } else if (per == "hour") {
    seconds = 3600;
  } else {
    parent.errors().add(obj.pathOf("per"), fmt::format("expected \"second\", \"minute\" or \"hour\", got \"{}\"", per));
    return std::nullopt;
  }
  if (!rate) return std::nullopt;
  Limit limit;
  limit.bucket.refill_per_second = static_cast<double>(*rate) / seconds;
  limit.bucket.capacity = static_cast<double>(burst.value_or(*rate));
  limit.description = fmt::format("{} {} per {}", *rate, unit, per);
  return limit;
}

RateLimitRule readRule(const json& value, const std::string& path, ConfigErrors& errors) {
  RateLimitRule rule;
  JsonObject obj(value, path, errors);
  rule.match = readMethodMatch(obj, "match", false);
  if (auto key = obj.string("key")) {
    if (!isValidMetadataKey(*key)) {
      errors.add(obj.pathOf("key"), fmt::format("\"{}\" is not a metadata key (lower-case letters, digits, '-', '_', '.')",
                                               *key));
    } else if (auto why = whyNotACallerKey(*key); !why.empty()) {
      // Every call its own full bucket: nothing would ever be limited.
      errors.add(obj.pathOf("key"), fmt::format("\"{}\" does not name a caller: {}", *key, why));
    }
    rule.key = *key;
  }
  rule.calls = readLimit(obj, "calls", "calls");
  rule.messages = readLimit(obj, "messages", "messages");
  if (obj.isObject() && obj.value("calls") == nullptr && obj.value("messages") == nullptr) {
    errors.add(path, "a rule needs \"calls\", \"messages\" or both");
  }
  obj.finish();
  return rule;
}

}  // namespace

const RateLimitRule* RateLimitConfig::ruleFor(std::string_view path, std::string_view service,
                                              const HeaderMap& headers) const {
  return firstMatchingRule(rules, path, service, headers);
}

FilterFactorySharedPtr RateLimitConfigFactory::create(const json& config, const std::string& path,
                                                      FilterBuildContext& ctx) const {
  auto out = std::make_shared<RateLimitConfig>();
  size_t errors_before = ctx.errors.size();
  JsonObject obj(config, path, ctx.errors);
  if (const json* rules = obj.array("rules", true)) {
    if (rules->empty()) ctx.errors.add(obj.pathOf("rules"), "at least one rule is needed");
    for (size_t i = 0; i < rules->size(); ++i) {
      out->rules.push_back(readRule((*rules)[i], jsonPath(obj.pathOf("rules"), i), ctx.errors));
    }
  }
  if (auto m = obj.unsignedInt("max_keys", 1, kMaxKeysLimit)) out->max_keys = *m;
  // Each keyed rule keeps up to max_keys buckets of its own: the bound is on
  // all of them together.
  const size_t keyed = static_cast<size_t>(
      std::count_if(out->rules.begin(), out->rules.end(), [](const RateLimitRule& r) { return !r.key.empty(); }));
  if (keyed > 1 && out->max_keys * keyed > kMaxKeysLimit) {
    ctx.errors.add(obj.pathOf("max_keys"), fmt::format("{} per rule with a key, {} such rules: more than {} buckets in all",
                                                      out->max_keys, keyed, kMaxKeysLimit));
  }
  obj.finish();
  if (ctx.errors.size() != errors_before) return nullptr;
  auto table = tableFor(ctx.reload_key, config.dump(), *out);
  return std::make_shared<RateLimitFilterFactory>(std::move(out), std::move(table));
}

}  // namespace sluice::filters::rate_limit
