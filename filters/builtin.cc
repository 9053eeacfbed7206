#include "filters/builtin.h"

#include "core/registry.h"
#include "filters/proxy/config.h"
#include "filters/router/config.h"

namespace sluice {

void registerBuiltinFilters(FilterRegistry& registry) {
  registry.add("router", std::make_unique<filters::router::RouterConfigFactory>());
  registry.add("proxy", std::make_unique<filters::proxy::ProxyConfigFactory>());
}

}  // namespace sluice
