#include "upstream/cluster_manager.h"

#include "core/stats.h"
#include "upstream/cluster.h"

namespace sluice {

ClusterManager::ClusterManager(Dispatcher& dispatcher, const GatewayConfig& config, WorkerStats& stats,
                               const HealthRole& role, ClusterManager* previous) {
  for (const auto& c : config.clusters) {
    clusters_.push_back(std::make_unique<Cluster>(dispatcher, c, stats, role));
    if (previous != nullptr) {
      if (Cluster* before = previous->find(c.name)) clusters_.back()->adoptStateOf(*before);
    }
    clusters_.back()->startHealthChecks();
  }
}

ClusterManager::~ClusterManager() = default;

Cluster* ClusterManager::find(std::string_view name) {
  for (auto& c : clusters_) {
    if (c->name() == name) return c.get();
  }
  return nullptr;
}

void ClusterManager::retire() {
  for (auto& c : clusters_) c->retire();
}

void ClusterManager::closeAll() {
  for (auto& c : clusters_) c->closeAll();
}

}  // namespace sluice
