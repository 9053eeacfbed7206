// Proxy config: the terminal filter. It takes no options yet ("config" may be
// absent or an empty object); the route chosen earlier names the cluster.
#pragma once

#include "core/registry.h"

namespace sluice::filters::proxy {

class ProxyConfigFactory : public FilterConfigFactory {
 public:
  FilterFactorySharedPtr create(const nlohmann::json& config, const std::string& path,
                                FilterBuildContext& ctx) const override;
  bool isTerminal() const override { return true; }
};

}  // namespace sluice::filters::proxy
