#include "filters/router/config.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/headers.h"
#include "core/json_reader.h"
#include "core/message.h"
#include "core/method_match.h"
#include "filters/router/filter.h"

namespace sluice::filters::router {
namespace {

using json = nlohmann::json;

class RouterFilterFactory : public FilterFactory {
 public:
  explicit RouterFilterFactory(std::shared_ptr<const RouterConfig> config) : config_(std::move(config)) {}
  FilterPtr createFilter(StreamContext&) const override { return std::make_unique<RouterFilter>(*config_); }

 private:
  std::shared_ptr<const RouterConfig> config_;
};

std::optional<RetryPolicy> readRetry(const json& value, const std::string& path, FilterBuildContext& ctx) {
  size_t before = ctx.errors.size();
  RetryPolicy p;
  JsonObject obj(value, path, ctx.errors);
  if (const json* on = obj.array("retry_on", true)) {
    for (size_t i = 0; i < on->size(); ++i) {
      const json& v = (*on)[i];
      auto code = v.is_string() ? statusCodeFromName(v.get<std::string>()) : std::nullopt;
      if (!code || *code == StatusCode::Ok) {
        ctx.errors.add(jsonPath(obj.pathOf("retry_on"), i),
                       "expected a gRPC status name other than OK, e.g. \"UNAVAILABLE\"");
        continue;
      }
      p.retry_on.push_back(*code);
    }
    if (on->empty()) {
      ctx.errors.add(obj.pathOf("retry_on"), "at least one status to retry on (a policy that retries nothing is no policy)");
    }
  }
  if (auto n = obj.unsignedInt("num_retries", 0, 10)) p.num_retries = static_cast<uint32_t>(*n);
  constexpr uint64_t kDay = 24ull * 3600 * 1000;
  if (auto v = obj.unsignedInt("per_try_timeout_ms", 1, kDay)) p.per_try_timeout_ms = static_cast<uint32_t>(*v);
  if (auto v = obj.unsignedInt("backoff_base_ms", 1, kDay)) p.backoff_base_ms = static_cast<uint32_t>(*v);
  if (auto v = obj.unsignedInt("backoff_max_ms", 1, kDay)) p.backoff_max_ms = static_cast<uint32_t>(*v);
  if (auto v = obj.unsignedInt("replay_buffer_bytes", 0, 64ull << 20)) {
    p.replay_buffer_bytes = static_cast<uint32_t>(*v);
    // Retrying needs the request kept; fewer bytes than an empty message's
    // 5 would silently make every call of the route unretriable.
    if (*v < kGrpcPrefixBytes) {
      ctx.errors.add(obj.pathOf("replay_buffer_bytes"),
                     fmt::format("{} bytes cannot keep even an empty message ({} bytes), so no call could be "
                                 "retried; to turn retries off, leave out \"retry\"",
                                 *v, kGrpcPrefixBytes));
    }
  }
  obj.finish();
  if (p.backoff_max_ms < p.backoff_base_ms) {
    // Point at the key the user wrote: a base alone meets the default maximum.
    if (value.is_object() && value.contains("backoff_max_ms")) {
      ctx.errors.add(obj.pathOf("backoff_max_ms"),
                     fmt::format("{} must not be less than backoff_base_ms ({})", p.backoff_max_ms, p.backoff_base_ms));
    } else {
      ctx.errors.add(obj.pathOf("backoff_base_ms"),
                     fmt::format("{} exceeds backoff_max_ms ({}, the default): set backoff_max_ms too",
                                 p.backoff_base_ms, p.backoff_max_ms));
    }
  }
  if (p.per_try_timeout_ms == 0 && p.retriable(StatusCode::DeadlineExceeded)) {
    // A deadline without per-try timeouts is the call's own: no time is left to retry in.
    ctx.errors.add(obj.pathOf("retry_on"),
                   "DEADLINE_EXCEEDED is retried only after a per-try timeout: set per_try_timeout_ms");
  }
  if (ctx.errors.size() != before) return std::nullopt;
  return p;
}

// "cluster" must name a configured cluster; mistakes go to ctx.errors at `path`.
bool knownCluster(const std::string& name, const std::string& path, FilterBuildContext& ctx) {
  if (ctx.cluster_names.count(name) != 0) return true;
  ctx.errors.add(path, fmt::format("unknown cluster \"{}\"", name));
  return false;
}

// "weighted_clusters": [{"cluster": "v1", "weight": 95}, {"cluster": "v2", "weight": 5}].
bool readWeightedClusters(const json& list, const std::string& path, const Route& base, RouteEntry& entry,
                          FilterBuildContext& ctx) {
  const size_t errors_before = ctx.errors.size();
  if (list.empty()) ctx.errors.add(path, "give at least one {\"cluster\": ..., \"weight\": ...}");
  uint64_t total = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    JsonObject w(list[i], jsonPath(path, i), ctx.errors);
    auto cluster = w.string("cluster", true);
    auto weight = w.unsignedInt("weight", 0, 1000000, true);
    w.finish();
    if (!cluster || !weight || !knownCluster(*cluster, w.pathOf("cluster"), ctx)) continue;
    for (const Route& t : entry.targets) {
      if (t.cluster == *cluster) ctx.errors.add(w.pathOf("cluster"), fmt::format("cluster \"{}\" is listed twice; "
                                                                               "add the weights up", *cluster));
    }
    Route target = base;
    target.cluster = *cluster;
    entry.targets.push_back(std::move(target));
    total += *weight;
    entry.weight_totals.push_back(total);
  }
  if (ctx.errors.size() == errors_before && total == 0) {
    ctx.errors.add(path, "the weights add up to 0: no cluster would get a call");
  }
  return ctx.errors.size() == errors_before;
}

std::optional<RouteEntry> readRoute(const json& value, const std::string& path, FilterBuildContext& ctx) {
  JsonObject obj(value, path, ctx.errors);
  RouteEntry entry{};
  Route base;
  bool ok = obj.isObject();
  if (auto match = readMethodMatch(obj, "match", true)) {
    entry.match = std::move(*match);
  } else {
    ok = false;
  }
  if (auto t = obj.unsignedInt("timeout_ms", 1, 24ull * 3600 * 1000)) base.timeout_ms = static_cast<uint32_t>(*t);
  if (const json* retry = obj.object("retry")) {
    if (auto policy = readRetry(*retry, obj.pathOf("retry"), ctx)) {
      base.retry = std::move(*policy);
    } else {
      ok = false;
    }
  }
  auto cluster = obj.string("cluster");
  const json* weighted = obj.array("weighted_clusters");
  if ((cluster ? 1 : 0) + (weighted != nullptr ? 1 : 0) != 1) {
    if (obj.isObject()) ctx.errors.add(path, "give exactly one of \"cluster\" or \"weighted_clusters\"");
    ok = false;
  } else if (cluster) {
    if (knownCluster(*cluster, obj.pathOf("cluster"), ctx)) {
      base.cluster = *cluster;
      entry.targets.push_back(std::move(base));
      entry.weight_totals.push_back(1);
    } else {
      ok = false;
    }
  } else if (!readWeightedClusters(*weighted, obj.pathOf("weighted_clusters"), base, entry, ctx)) {
    ok = false;
  }
  if (auto h = obj.string("hash_header")) {
    entry.hash_header = headerName(*h);  // "X-User-Id" means x-user-id
    if (weighted == nullptr) {
      ctx.errors.add(obj.pathOf("hash_header"), "only a route with weighted_clusters draws its cluster");
      ok = false;
    } else if (!isValidMetadataKey(entry.hash_header)) {
      ctx.errors.add(obj.pathOf("hash_header"), fmt::format("\"{}\" is not a metadata key", *h));
      ok = false;
    } else if (auto why = whyNotACallerKey(entry.hash_header); !why.empty()) {
      ctx.errors.add(obj.pathOf("hash_header"), fmt::format("\"{}\" keeps no caller on one cluster: {}", *h, why));
      ok = false;
    }
  }
  obj.finish();
  if (!ok) return std::nullopt;
  return entry;
}

}  // namespace

const Route& RouteEntry::pick(uint64_t draw) const {
  // The draw as a fraction of 2^64 scaled to the total, not taken modulo it:
  // a caller's place then stays where it is when the weights change, and
  // only the callers a cluster's range gains or loses move.
  const auto r = static_cast<uint64_t>((static_cast<unsigned __int128>(draw) * weight_totals.back()) >> 64);
  auto it = std::upper_bound(weight_totals.begin(), weight_totals.end(), r);
  return targets[static_cast<size_t>(it - weight_totals.begin())];
}

const RouteEntry* RouterConfig::match(std::string_view path, std::string_view service, const HeaderMap& headers) const {
  for (const auto& r : routes) {
    if (r.match.matches(path, service, headers)) return &r;
  }
  return nullptr;
}

FilterFactorySharedPtr RouterConfigFactory::create(const json& config, const std::string& path,
                                                   FilterBuildContext& ctx) const {
  auto out = std::make_shared<RouterConfig>();
  size_t errors_before = ctx.errors.size();
  JsonObject obj(config, path, ctx.errors);
  if (const json* routes = obj.array("routes", true)) {
    // No route would answer every call UNIMPLEMENTED "no route": a typo'd
    // or half-written config, not a way to turn a listener off.
    if (routes->empty()) ctx.errors.add(obj.pathOf("routes"), "at least one route is needed");
    for (size_t i = 0; i < routes->size(); ++i) {
      if (auto r = readRoute((*routes)[i], jsonPath(obj.pathOf("routes"), i), ctx)) {
        out->routes.push_back(std::move(*r));
      }
    }
  }
  obj.finish();
  if (ctx.errors.size() != errors_before) return nullptr;
  return std::make_shared<RouterFilterFactory>(std::move(out));
}

}  // namespace sluice::filters::router
