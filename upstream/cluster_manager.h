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
  // `previous`: the clusters of the config a reload replaces, whose knowledge
  // of the endpoints carries over (Cluster::adoptStateOf) before health
  // checks start.
  ClusterManager(Dispatcher& dispatcher, const GatewayConfig& config, WorkerStats& stats,
                 ClusterManager* previous = nullptr);
  ~ClusterManager();

  Cluster* find(std::string_view name);
  const std::vector<std::unique_ptr<Cluster>>& clusters() const { return clusters_; }
  // Gateway shutdown: close every upstream connection, stop health checks.
  void closeAll();
  // A reload replaced this config: its clusters stop their health checks
  // and DNS refreshes.
  void retire();

 private:
  std::vector<std::unique_ptr<Cluster>> clusters_;
};

}  // namespace sluice
