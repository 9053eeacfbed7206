#include "listeners/generation.h"

#include "upstream/cluster_manager.h"

namespace sluice {

Generation::Generation(Dispatcher& dispatcher, WorkerStats& stats, GatewayConfigConstPtr config)
    : dispatcher_(dispatcher),
      stats_(stats),
      config_(std::move(config)),
      clusters_(std::make_unique<ClusterManager>(dispatcher, *config_, stats)) {}

Generation::~Generation() { close(); }

const ListenerConfig* Generation::listener(std::string_view name) const {
  for (const auto& l : config_->listeners) {
    if (l.name == name) return &l;
  }
  return nullptr;
}

void Generation::close() {
  if (closed_) return;
  closed_ = true;
  clusters_->closeAll();
  for (const auto& l : config_->listeners) {
    for (const auto& f : l.filters) f.factory->close();
  }
}

}  // namespace sluice
