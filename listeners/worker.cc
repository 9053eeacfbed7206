#include "listeners/worker.h"

#include "listeners/grpc_listener.h"
#include "upstream/cluster_manager.h"

namespace sluice {

Worker::Worker(GatewayConfigConstPtr config)
    : config_(std::move(config)),
      dispatcher_(std::make_unique<Dispatcher>()),
      clusters_(std::make_unique<ClusterManager>(*dispatcher_, *config_)) {
  for (const auto& l : config_->listeners) listeners_.push_back(std::make_unique<GrpcListener>(*this, l));
}

Worker::~Worker() {
  shutdown();
  listeners_.clear();
  dispatcher_->drainPostedWork();
  clusters_.reset();
  dispatcher_.reset();
}

Status Worker::start() {
  for (auto& l : listeners_) {
    Status s = l->start();
    if (!s.isOk()) return s;
  }
  return Status::ok();
}

std::vector<std::pair<std::string, SocketAddress>> Worker::boundListeners() const {
  std::vector<std::pair<std::string, SocketAddress>> out;
  for (const auto& l : listeners_) out.emplace_back(l->config().name, l->boundAddress());
  return out;
}

void Worker::run() { dispatcher_->run(); }

void Worker::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  for (auto& l : listeners_) {
    l->stopAccepting();
    l->closeConnections();
  }
  clusters_->closeAll();
  for (const auto& l : config_->listeners) {
    for (const auto& f : l.filters) f.factory->close();
  }
  dispatcher_->drainPostedWork();
}

}  // namespace sluice
