#include "filters/proxy/config.h"

#include <nlohmann/json.hpp>

#include "core/json_reader.h"
#include "filters/proxy/filter.h"

namespace sluice::filters::proxy {
namespace {

class ProxyFilterFactory : public FilterFactory {
 public:
  FilterPtr createFilter(StreamContext& ctx) const override { return std::make_unique<ProxyFilter>(ctx); }
};

}  // namespace

FilterFactorySharedPtr ProxyConfigFactory::create(const nlohmann::json& config, const std::string& path,
                                                  FilterBuildContext& ctx) const {
  if (!config.is_null()) {
    size_t before = ctx.errors.size();
    JsonObject obj(config, path, ctx.errors);
    obj.finish();
    if (ctx.errors.size() != before) return nullptr;
  }
  return std::make_shared<ProxyFilterFactory>();
}

}  // namespace sluice::filters::proxy
