#include "filters/router/config.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/json_reader.h"
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
  }
  if (auto n = obj.unsignedInt("num_retries", 0, 10)) p.num_retries = static_cast<uint32_t>(*n);
  constexpr uint64_t kDay = 24ull * 3600 * 1000;
  if (auto v = obj.unsignedInt("per_try_timeout_ms", 1, kDay)) p.per_try_timeout_ms = static_cast<uint32_t>(*v);
  if (auto v = obj.unsignedInt("backoff_base_ms", 1, kDay)) p.backoff_base_ms = static_cast<uint32_t>(*v);
  if (auto v = obj.unsignedInt("backoff_max_ms", 1, kDay)) p.backoff_max_ms = static_cast<uint32_t>(*v);
  if (auto v = obj.unsignedInt("replay_buffer_bytes", 0, 64ull << 20)) p.replay_buffer_bytes = static_cast<uint32_t>(*v);
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

std::optional<RouteEntry> readRoute(const json& value, const std::string& path, FilterBuildContext& ctx) {
  JsonObject obj(value, path, ctx.errors);
  RouteEntry entry{};
  bool ok = obj.isObject();
  if (auto match = readMethodMatch(obj, "match", true)) {
    entry.match = std::move(*match);
  } else {
    ok = false;
  }
  if (auto t = obj.unsignedInt("timeout_ms", 1, 24ull * 3600 * 1000)) entry.route.timeout_ms = static_cast<uint32_t>(*t);
  if (const json* retry = obj.object("retry")) {
    if (auto policy = readRetry(*retry, obj.pathOf("retry"), ctx)) {
      entry.route.retry = std::move(*policy);
    } else {
      ok = false;
    }
  }
  if (auto cluster = obj.string("cluster", true)) {
    if (ctx.cluster_names.count(*cluster) == 0) {
      ctx.errors.add(obj.pathOf("cluster"), fmt::format("unknown cluster \"{}\"", *cluster));
      ok = false;
    }
    entry.route.cluster = *cluster;
  } else {
    ok = false;
  }
  obj.finish();
  if (!ok) return std::nullopt;
  return entry;
}

}  // namespace

const Route* RouterConfig::match(std::string_view path, std::string_view service) const {
  for (const auto& r : routes) {
    if (r.match.matches(path, service)) return &r.route;
  }
  return nullptr;
}

FilterFactorySharedPtr RouterConfigFactory::create(const json& config, const std::string& path,
                                                   FilterBuildContext& ctx) const {
  auto out = std::make_shared<RouterConfig>();
  size_t errors_before = ctx.errors.size();
  JsonObject obj(config, path, ctx.errors);
  if (const json* routes = obj.array("routes", true)) {
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
