// GatewayConfig: the parsed and validated JSON config.
//
// Built once by loadConfig(); immutable afterwards and shared (read-only) by
// every worker. Filter entries hold the factories their parsers built.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/cluster_config.h"
#include "core/filter.h"
#include "core/socket_address.h"

namespace sluice {

class ConfigErrors;
class FilterRegistry;

struct FilterEntryConfig {
  std::string name;
  FilterFactorySharedPtr factory;
};

struct ListenerConfig {
  std::string name;
  SocketAddress address;
  uint32_t max_message_bytes = 16u << 20;
  std::vector<FilterEntryConfig> filters;
};


struct GatewayConfig {
  std::vector<ListenerConfig> listeners;
  std::vector<ClusterConfig> clusters;
  std::string log_level;  // empty: keep the command line's
  std::optional<SocketAddress> admin_address;  // the admin listener; off when absent
  uint32_t drain_timeout_ms = 10000;
  std::string source_text;  // the JSON as loaded, for /config_dump

  const ClusterConfig* findCluster(std::string_view name) const;
};
using GatewayConfigConstPtr = std::shared_ptr<const GatewayConfig>;

// Parses `text` (JSON). On mistakes adds every one found to `errors` (each
// naming its JSON path) and returns nullptr.
GatewayConfigConstPtr loadConfig(const std::string& text, const FilterRegistry& registry,
                                 ConfigErrors& errors);
GatewayConfigConstPtr loadConfigFile(const std::string& file, const FilterRegistry& registry,
                                     ConfigErrors& errors);

}  // namespace sluice
