// ClusterManager: one worker's clusters, by name.
//
// Owned by the worker; the config it reads outlives it. Nothing here is shared
// between workers: each has its own pools and balancers. Health checks run on
// one worker, which reports to the others (HealthRole).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "upstream/health_role.h"

namespace sluice {

class Cluster;
class Dispatcher;
class WorkerStats;

class ClusterManager {
 public:
  // `previous`: the clusters of the config a reload replaces, whose knowledge
  // of the endpoints carries over (Cluster::adoptStateOf) before health
  // checks start.
  // `role`: the worker's, outliving every cluster.
  ClusterManager(Dispatcher& dispatcher, const GatewayConfig& config, WorkerStats& stats, const HealthRole& role,
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
