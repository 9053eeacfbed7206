#include "upstream/cluster_manager.h"

#include "upstream/connection_pool.h"

namespace sluice {

Cluster::Cluster(Dispatcher& dispatcher, const ClusterConfig& config) : config_(config) {
  for (const auto& ep : config.endpoints) {
    pools_.push_back(std::make_unique<ConnectionPool>(dispatcher, config.name, ep.address,
                                                      config.connect_timeout_ms));
  }
}

Cluster::~Cluster() = default;

ConnectionPool& Cluster::pickEndpoint() {
  ConnectionPool& pool = *pools_[next_];
  next_ = (next_ + 1) % pools_.size();
  return pool;
}

void Cluster::closeAll() {
  for (auto& p : pools_) p->closeAll();
}

ClusterManager::ClusterManager(Dispatcher& dispatcher, const GatewayConfig& config) {
  for (const auto& c : config.clusters) clusters_.push_back(std::make_unique<Cluster>(dispatcher, c));
}

ClusterManager::~ClusterManager() = default;

Cluster* ClusterManager::find(std::string_view name) {
  for (auto& c : clusters_) {
    if (c->name() == name) return c.get();
  }
  return nullptr;
}

void ClusterManager::closeAll() {
  for (auto& c : clusters_) c->closeAll();
}

}  // namespace sluice
