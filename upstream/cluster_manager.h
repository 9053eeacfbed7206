// ClusterManager: the clusters of one config on one worker, by name.
//
// Owned by the worker's Generation. A cluster that a reload leaves unchanged
// (the same JSON object) is not rebuilt: the new config's manager holds the
// running one too, with its connections, counts, health and lookups, as Envoy
// keeps a cluster its update leaves alone; it lives until the last config
// holding it is gone. Nothing here is shared between workers: each has its
// own pools and balancers. Health checks run on one worker, which reports to
// the others (HealthRole).
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
  // `previous`: the clusters of the config a reload replaces: those whose
  // JSON is unchanged are kept as they run; a changed one is built anew,
  // starting from what the old one of its name knew of the endpoints
  // (Cluster::adoptStateOf) before its health checks start.
  // `role`: the worker's, outliving every cluster.
  ClusterManager(Dispatcher& dispatcher, const GatewayConfig& config, WorkerStats& stats, const HealthRole& role,
                 ClusterManager* previous = nullptr);
  ~ClusterManager();

  Cluster* find(std::string_view name);
  const std::vector<std::shared_ptr<Cluster>>& clusters() const { return clusters_; }
  // Gateway shutdown: close every upstream connection, stop health checks.
  void closeAll();
  // A reload replaced this config with `successor`'s: the clusters it did
  // not keep stop their health checks and DNS refreshes.
  void retire(const ClusterManager& successor);

 private:
  bool holds(const Cluster& cluster) const;

  // Shared only with the managers of this worker's other configs (the one
  // before or after a reload) holding the same unchanged cluster.
  std::vector<std::shared_ptr<Cluster>> clusters_;
};

}  // namespace sluice
