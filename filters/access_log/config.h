// Access log config: where the JSON lines go (a file, or stdout when "path" is
// absent) and which request metadata keys to copy into each line.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/registry.h"
#include "filters/access_log/log_sink.h"

namespace sluice::filters::access_log {

struct AccessLogConfig {
  std::string path;  // empty: stdout
  std::vector<std::string> request_metadata;
};

class AccessLogConfigFactory : public FilterConfigFactory {
 public:
  FilterFactorySharedPtr create(const nlohmann::json& config, const std::string& path,
                                FilterBuildContext& ctx) const override;
};

}  // namespace sluice::filters::access_log
