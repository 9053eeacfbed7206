#include "upstream/cluster_manager.h"

#include "core/stats.h"
#include "upstream/cluster.h"

namespace sluice {

ClusterManager::ClusterManager(Dispatcher& dispatcher, const GatewayConfig& config, WorkerStats& stats,
                               const HealthRole& role, ClusterManager* previous) {
  for (const auto& c : config.clusters) {
    std::shared_ptr<Cluster>* before = nullptr;
    if (previous != nullptr) {
      for (auto& p : previous->clusters_) {
        if (p->name() == c.name) before = &p;
      }
    }
    if (before != nullptr && (*before)->config().source == c.source) {
      clusters_.push_back(*before);
      clusters_.back()->refreshHostNames();
      continue;
    }
    clusters_.push_back(std::make_shared<Cluster>(dispatcher, c, stats, role));
    if (before != nullptr) clusters_.back()->adoptStateOf(**before);
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

bool ClusterManager::holds(const Cluster& cluster) const {
  for (const auto& c : clusters_) {
    if (c.get() == &cluster) return true;
  }
  return false;
}

void ClusterManager::retire(const ClusterManager& successor) {
  for (auto& c : clusters_) {
    if (!successor.holds(*c)) c->retire();
  }
}

void ClusterManager::closeAll() {
  for (auto& c : clusters_) c->closeAll();
}

}  // namespace sluice
