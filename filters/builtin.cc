#include "filters/builtin.h"

#include "core/registry.h"
#include "filters/access_log/config.h"
#include "filters/auth/config.h"
#include "filters/fault/config.h"
#include "filters/metadata/config.h"
#include "filters/proxy/config.h"
#include "filters/rate_limit/config.h"
#include "filters/router/config.h"

namespace sluice {

void registerBuiltinFilters(FilterRegistry& registry) {
  registry.add("router", std::make_unique<filters::router::RouterConfigFactory>());
  registry.add("proxy", std::make_unique<filters::proxy::ProxyConfigFactory>());
  registry.add("metadata", std::make_unique<filters::metadata::MetadataConfigFactory>());
  registry.add("access_log", std::make_unique<filters::access_log::AccessLogConfigFactory>());
  registry.add("auth", std::make_unique<filters::auth::AuthConfigFactory>());
  registry.add("rate_limit", std::make_unique<filters::rate_limit::RateLimitConfigFactory>());
  registry.add("fault", std::make_unique<filters::fault::FaultConfigFactory>());
}

}  // namespace sluice
