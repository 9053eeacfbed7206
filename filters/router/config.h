// Router config: an ordered list of routes, each matching a call by service,
// exact method or path prefix and naming the cluster that serves it.
#pragma once

#include <string>
#include <vector>

#include "core/method_match.h"
#include "core/registry.h"
#include "core/route.h"

namespace sluice::filters::router {

struct RouteEntry {
  MethodMatch match;
  Route route;
};

struct RouterConfig {
  std::vector<RouteEntry> routes;
  // The first route matching `path` ("/pkg.Svc/Method", service "pkg.Svc"), or nullptr.
  const Route* match(std::string_view path, std::string_view service) const;
};

class RouterConfigFactory : public FilterConfigFactory {
 public:
  FilterFactorySharedPtr create(const nlohmann::json& config, const std::string& path,
                                FilterBuildContext& ctx) const override;
};

}  // namespace sluice::filters::router
