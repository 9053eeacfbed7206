#include "listeners/generation.h"

#include "upstream/cluster_manager.h"

namespace sluice {

Generation::Generation(Dispatcher& dispatcher, WorkerStats& stats, GatewayConfigConstPtr config,
                       const HealthRole& health_role, Generation* previous)
    : dispatcher_(dispatcher),
      stats_(stats),
      config_(std::move(config)),
      clusters_(std::make_unique<ClusterManager>(dispatcher, *config_, stats, health_role,
                                                 previous != nullptr ? previous->clusters_.get() : nullptr)) {}

// The clusters only this generation held close as they are destroyed
// (Cluster::~Cluster); those a later config kept go on.
Generation::~Generation() = default;

const ListenerConfig* Generation::listener(std::string_view name) const {
  for (const auto& l : config_->listeners) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

void Generation::retire(const Generation& successor) {
  retired_ = true;
  clusters_->retire(*successor.clusters_);
}

void Generation::close() {
  if (closed_) return;
  closed_ = true;
  // Only the clusters, which are this worker's own. The filter factories are
  // shared by every worker (and by calls still running on them): the Gateway
  // closes them once, after all workers have stopped.
  clusters_->closeAll();
}

}  // namespace sluice
