// Access log config: where the JSON lines go (a file, or stdout when "path" is
// absent) and which request metadata keys to copy into each line.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/registry.h"
#include "filters/access_log/log_sink.h"

namespace sluice {
class StreamContext;
}

namespace sluice::filters::access_log {

struct AccessLogConfig {
  std::string path;  // empty: stdout
  std::vector<std::string> request_metadata;
  // Which calls get a line: `sample_percent` of them, drawn per call, and
  // always those that failed (unless always_log_failed is off) or took at
  // least always_log_slower_than (when set).
  double sample_percent = 100;
  bool always_log_failed = true;
  std::optional<std::chrono::milliseconds> always_log_slower_than;

  // Whether the finished call `ctx`, which took `elapsed`, gets a line.
  bool logs(StreamContext& ctx, std::chrono::steady_clock::duration elapsed) const;
};

class AccessLogConfigFactory : public FilterConfigFactory {
 public:
  FilterFactorySharedPtr create(const nlohmann::json& config, const std::string& path,
                                FilterBuildContext& ctx) const override;
};

}  // namespace sluice::filters::access_log
