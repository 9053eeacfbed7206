// Router config: an ordered list of routes, each matching a call by service,
// exact method or path prefix (and request headers), and naming the cluster
// that serves it, or several with weights (a canary taking a share).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/method_match.h"
#include "core/registry.h"
#include "core/route.h"

namespace sluice::filters::router {

struct RouteEntry {
  MethodMatch match;
  // One Route per cluster ("cluster", or each of "weighted_clusters"), with
  // the entry's timeout and retry policy.
  std::vector<Route> targets;
  // Running totals of the targets' weights: a call drawing r in
  // [0, total) goes to the first target whose total exceeds r.
  std::vector<uint64_t> weight_totals;
  // weighted_clusters' "hash_header": calls carrying it draw by its value's
  // hash, so one user (session, tenant) stays on one cluster. Lower case.
  std::string hash_header;

  // The target for a call drawing `draw` (uniform over 64 bits; its place in
  // the weights is draw / 2^64).
  const Route& pick(uint64_t draw) const;
};

struct RouterConfig {
  std::vector<RouteEntry> routes;
  // The first route matching `path` ("/pkg.Svc/Method", service "pkg.Svc")
  // and `headers`, or nullptr.
  const RouteEntry* match(std::string_view path, std::string_view service, const HeaderMap& headers) const;
};

class RouterConfigFactory : public FilterConfigFactory {
 public:
  FilterFactorySharedPtr create(const nlohmann::json& config, const std::string& path,
                                FilterBuildContext& ctx) const override;
};

}  // namespace sluice::filters::router
