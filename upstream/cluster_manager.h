// ClusterManager: one worker's view of the configured clusters: for each one,
// its endpoints' connection pools and the round-robin cursor.
//
// Owned by the worker; the config it reads outlives it. Nothing here is shared
// between workers.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"

namespace sluice {

class ConnectionPool;
class Dispatcher;

class Cluster {
 public:
  Cluster(Dispatcher& dispatcher, const ClusterConfig& config);
  ~Cluster();

  const std::string& name() const { return config_.name; }
  // The next endpoint's pool, round robin.
  ConnectionPool& pickEndpoint();
  void closeAll();

 private:
  const ClusterConfig& config_;
  std::vector<std::unique_ptr<ConnectionPool>> pools_;
  size_t next_ = 0;
};

class ClusterManager {
 public:
  ClusterManager(Dispatcher& dispatcher, const GatewayConfig& config);
  ~ClusterManager();

  Cluster* find(std::string_view name);
  // Gateway shutdown: close every upstream connection.
  void closeAll();

 private:
  std::vector<std::unique_ptr<Cluster>> clusters_;
};

}  // namespace sluice
