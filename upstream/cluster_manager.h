// ClusterManager: one worker's clusters, by name.
//
// Owned by the worker; the config it reads outlives it. Nothing here is shared
// between workers: each has its own pools, balancers and health checks.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "core/config.h"

namespace sluice {

class Cluster;
class Dispatcher;
class WorkerStats;

class ClusterManager {
 public:
  ClusterManager(Dispatcher& dispatcher, const GatewayConfig& config, WorkerStats& stats);
  ~ClusterManager();

  Cluster* find(std::string_view name);
  const std::vector<std::unique_ptr<Cluster>>& clusters() const { return clusters_; }
  // Gateway shutdown: close every upstream connection, stop health checks.
  void closeAll();
  // A reload: each cluster takes over what the old config's cluster of the
  // same name knew of its endpoints (Cluster::adoptStateOf)...
  void adoptStateOf(ClusterManager& old);
  // ... and the old config's clusters stop their health checks and DNS refreshes.
  void retire();

 private:
  std::vector<std::unique_ptr<Cluster>> clusters_;
};

}  // namespace sluice
